// examples/events.mjs: an event reaches the listeners of every process
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { MemSync } from 'memsync'

const mem = new MemSync('chat')
await mem.start()

if (process.argv[2] === 'listener') {
  mem.events.once('message', async (text, from) => {
    console.log(`${from}: ${text}`)
    await mem.stop()
  })
  process.send('listening')
} else {
  const listener = fork(new URL(import.meta.url), ['listener'])
  await once(listener, 'message')
  mem.events.emit('message', 'hello', 'ann') // prints: ann: hello
  await once(listener, 'exit')
  await mem.stop()
}
