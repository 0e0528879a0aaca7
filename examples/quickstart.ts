// examples/quickstart.ts
import { MemSync } from 'memsync'

interface Jobs {
  done: number
  queue: string[]
}

// The type parameter types data, patch() and observe(); without it, queue would be never[].
const mem = new MemSync<Jobs>('jobs', { done: 0, queue: [] })
console.log(await mem.start()) // prints: host
mem.observe('queue', (queue) => console.log('queue:', queue))
await mem.patch({ $inc: { done: 1 }, $push: { queue: 'x' } }) // prints: queue: [ 'x' ]
console.log(mem.data) // prints: { done: 1, queue: [ 'x' ] }
await mem.stop()
