// examples/cluster.cjs: node:cluster workers share the object like any processes
const cluster = require('node:cluster')
const { MemSync } = require('memsync')

async function main () {
  const mem = new MemSync('workers', { ready: 0 })
  await mem.start()
  if (cluster.isPrimary) {
    const all = new Promise((resolve) => mem.observe('ready', (ready) => ready === 2 && resolve()))
    cluster.fork()
    cluster.fork()
    await all
    console.log(`${mem.data.ready} workers ready`) // prints: 2 workers ready
  } else {
    await mem.patch({ $inc: { ready: 1 } }) // a worker would serve requests from here on
  }
  await mem.stop()
  if (cluster.isWorker) cluster.worker.disconnect() // lets the worker exit
}

main()
