// examples/quickstart.cjs
const { MemSync } = require('memsync')

async function main () {
  const mem = new MemSync('jobs', { done: 0, queue: [] })
  console.log(await mem.start()) // prints: host
  mem.observe('queue', (queue) => console.log('queue:', queue))
  await mem.patch({ $inc: { done: 1 }, $push: { queue: 'x' } }) // prints: queue: [ 'x' ]
  console.log(mem.data) // prints: { done: 1, queue: [ 'x' ] }
  await mem.stop()
}

main()
