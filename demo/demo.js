'use strict'
// `npm run demo`: one shared object, observed and patched with MongoDB update operators.
const { MemSync } = require('..')

async function main () {
  const mem = new MemSync('memsync-demo', { done: 0, queue: [], workers: {} })
  console.log('role:', await mem.start())

  mem.observe('queue', (queue) => console.log('  observer  queue ->', JSON.stringify(queue)))
  mem.observe('done', (done) => console.log('  observer  done  ->', done))

  const show = (label) => console.log(label.padEnd(44), JSON.stringify(mem.data))
  await mem.patch({ $push: { queue: { $each: ['a', 'b', 'c'] } } })
  show('$push $each [a, b, c]')
  await mem.patch({ $inc: { done: 1 }, $pop: { queue: -1 }, $set: { 'workers.w1': { pid: process.pid } } })
  show('$inc done, $pop queue, $set workers.w1')
  await mem.patch({ $pull: { queue: { $in: ['b'] } }, $currentDate: { 'workers.w1.seen': true } })
  show('$pull queue b, $currentDate workers.w1.seen')

  await mem.patch({ $inc: { queue: 1 } }).catch((error) => {
    console.log(`rejected as expected: ${error.code}: ${error.message}`)
  })
  show('data unchanged after the rejected patch')
  await mem.stop()
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
