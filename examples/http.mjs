// examples/http.mjs: the host serves the object over HTTP, on 127.0.0.1
import { MemSync } from 'memsync'

const port = Number(process.env.PORT ?? 8080)
const mem = new MemSync('shop', { orders: [{ id: 1, state: 'paid' }] }, { server: { port } })
await mem.start()
const get = async (path) => (await fetch(`http://127.0.0.1:${port}/shop${path}`)).json()
console.log(await get('/orders.0.state')) // prints: paid
console.log((await get('/status')).role) // prints: host
await mem.stop()
