// examples/locks.cjs: two processes read, then write, and lose no increment
const { fork } = require('node:child_process')
const { once } = require('node:events')
const { MemSync } = require('memsync')

async function main () {
  const mem = new MemSync('locked', { n: 0 })
  await mem.start()
  const workerExit = process.argv[2] === 'worker' ? null : once(fork(__filename, ['worker']), 'exit')
  for (let i = 0; i < 100; i++) {
    // No other process holds 'counter' between this read and this write.
    await mem.lock('counter', () => mem.patch({ $set: { n: mem.data.n + 1 } }))
  }
  if (workerExit) {
    await workerExit
    // Under the lock, data shows every patch the previous holder awaited.
    await mem.lock('counter', () => console.log(mem.data.n)) // prints: 200
  }
  await mem.stop()
}

main()
