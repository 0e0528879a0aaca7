// examples/worker-threads.mjs: an instance in a worker thread is one more peer
import { once } from 'node:events'
import { Worker, isMainThread } from 'node:worker_threads'
import { MemSync } from 'memsync'

const mem = new MemSync('threads', { fromThreads: 0 })
await mem.start()
if (isMainThread) {
  const all = new Promise((resolve) => mem.observe('fromThreads', (n) => n === 2 && resolve()))
  const exits = [1, 2].map(() => once(new Worker(new URL(import.meta.url)), 'exit'))
  await all
  await Promise.all(exits)
  console.log(mem.data.fromThreads) // prints: 2
} else {
  await mem.patch({ $inc: { fromThreads: 1 } })
}
await mem.stop()
