// examples/errors.mjs
import { MemSync, MemErrors } from 'memsync'

const mem = new MemSync('errors', { title: 'draft' })
mem.on('error', (error) => console.error(error.code, error.message)) // failures in the background
await mem.start()
try {
  await mem.patch({ $inc: { title: 1 } })
} catch (error) {
  console.log(error.code === MemErrors.ERR_TYPE_MISMATCH) // prints: true
  console.log(mem.data.title) // prints: draft
}
await mem.stop()
