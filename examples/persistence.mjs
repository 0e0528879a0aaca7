// examples/persistence.mjs: the host saves the object; the next first process loads it
import fs from 'node:fs'
import { MemSync } from 'memsync'

const file = { path: 'visits.json' } // relative to the working directory
const first = new MemSync('visits', { count: 0 }, { file })
await first.start()
await first.patch({ $inc: { count: 1 } })
await first.stop() // a host saves when it stops (and at most 100 ms after a change)

const next = new MemSync('visits', { count: 0 }, { file })
await next.start()
console.log(next.data.count) // prints: 1
await next.stop()
fs.rmSync(file.path) // so that the next run starts from 0 again
