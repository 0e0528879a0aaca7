// examples/rpc.cjs: one process offers a function, another calls it
const { fork } = require('node:child_process')
const { once } = require('node:events')
const { MemSync } = require('memsync')

async function main () {
  if (process.argv[2] === 'callee') {
    const mem = new MemSync({ name: 'math', rpc: { add: async (a, b) => a + b } })
    await mem.start()
    process.send('ready')
    process.once('disconnect', () => mem.stop()) // serves until the caller is done
    return
  }
  const mem = new MemSync('math')
  await mem.start()
  const callee = fork(__filename, ['callee'])
  await once(callee, 'message')
  console.log((await mem.call('add', 2, 3)).result) // prints: 5
  await mem.call('sub', 2, 3).catch((error) => console.log(error.code)) // prints: ERR_RPC_NOT_FOUND
  callee.disconnect()
  await once(callee, 'exit')
  await mem.stop()
}

main()
