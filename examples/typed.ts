// examples/typed.ts: the data, the RPC functions and the events, typed
import { MemSync } from 'memsync'

interface Cart {
  items: Array<{ sku: string, qty: number }>
  total: number
}
const rpc = { price: (sku: string) => (sku === 'tea' ? 3 : 5) }
type Events = { added: [sku: string, qty: number] }

const cart = new MemSync<Cart, typeof rpc, Events>({ name: 'cart', data: { items: [], total: 0 }, rpc })
await cart.start()
cart.events.on('added', (sku, qty) => console.log(`added ${qty} ${sku}`))
const { result: price } = await cart.call('price', 'tea') // price: number
await cart.patch({ $push: { items: { sku: 'tea', qty: 2 } }, $inc: { total: 2 * price } })
cart.events.emit('added', 'tea', 2) // prints: added 2 tea
console.log(cart.data.total) // prints: 6
await cart.stop()
