// examples/modern.ts: await using, changes() and AbortSignal
import { MemSync } from 'memsync'

async function count () {
  await using mem = new MemSync('modern', { n: 0 }) // stop() when this scope ends
  await mem.start({ signal: AbortSignal.timeout(5000) })
  const changes = mem.changes() // the patches applied here from now on, in order
  await mem.patch({ $inc: { n: 1 } })
  await mem.patch({ $inc: { n: 2 } }, { signal: AbortSignal.timeout(1000) })
  for await (const { version, patch } of changes) {
    console.log(version, JSON.stringify(patch))
    // prints: 1 {"$inc":{"n":1}}
    // prints: 2 {"$inc":{"n":2}}
    if (version === 2) break
  }
  return mem
}

const stopped = await count()
await stopped.patch({ $inc: { n: 1 } }).catch((error) => console.log(error.code)) // prints: ERR_STOPPED
