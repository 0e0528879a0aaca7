// examples/processes.mjs: three processes count to 300 together
import { fork } from 'node:child_process'
import { MemSync } from 'memsync'

const mem = new MemSync('hits', { hits: 0 })
await mem.start() // the first process of a name hosts it; the others join as clients

if (process.argv[2] === 'worker') {
  for (let i = 0; i < 100; i++) await mem.patch({ $inc: { hits: 1 } })
} else {
  const all = new Promise((resolve) => mem.observe('hits', (hits) => hits === 300 && resolve()))
  fork(new URL(import.meta.url), ['worker'])
  fork(new URL(import.meta.url), ['worker'])
  for (let i = 0; i < 100; i++) await mem.patch({ $inc: { hits: 1 } })
  await all // the workers' patches reach this process's data too
  console.log(mem.data.hits) // prints: 300
}
await mem.stop()
