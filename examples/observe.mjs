// examples/observe.mjs
import { MemSync } from 'memsync'

const mem = new MemSync('profile', { user: { name: 'ann', tags: [] } })
await mem.start()
mem.observe('user.name', (name) => console.log('name:', name)) // the path, a parent or a child
mem.observe('user.tags', (tags) => console.log('tags:', tags))
mem.on('change', ({ patch }) => console.log('change:', JSON.stringify(patch))) // every patch
await mem.patch({ $set: { user: { name: 'eve', tags: ['admin'] } } })
// prints: name: eve
// prints: tags: [ 'admin' ]
// prints: change: {"$set":{"user":{"name":"eve","tags":["admin"]}}}
await mem.stop()
