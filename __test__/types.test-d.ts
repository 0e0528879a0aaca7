// Compiled by `tsc --noEmit -p __test__` in `npm test`: every line must type-check, and every
// `@ts-expect-error` line must fail to, so wrong typings break the build.
import { MemSync, MemErrors, type UpdateQuery, type MemSyncError } from '../index.js'

interface Jobs {
  done: number
  queue: string[]
  owner: { name: string; tags: string[] }
  workers: Array<{ pid: number; busy: boolean }>
}

const mem = new MemSync<Jobs>('jobs', { done: 0, queue: [], owner: { name: 'a', tags: [] }, workers: [] })
const fromConfig = new MemSync({ name: 'x', data: { a: 1 }, rpc: { add: (a: number, b: number) => a + b } })

async function main (): Promise<void> {
  const role: 'host' | 'client' = await mem.start()
  void role
  const done: number = mem.data.done
  void done

  await mem.patch({ $inc: { done: 1 }, $push: { queue: 'x' } })
  await mem.patch({ $set: { 'owner.name': 'b', 'workers.0.busy': true } })
  await mem.patch({ $push: { queue: { $each: ['a', 'b'], $slice: -10, $position: 0 } } })
  await mem.patch({ $pull: { workers: { busy: false } }, $addToSet: { 'owner.tags': { $each: ['t'] } } })
  await mem.patch({ $inc: { 'workers.$[].pid': 0 } })
  await mem.patch({ done: 3 })
  // @ts-expect-error $inc takes numbers only
  await mem.patch({ $inc: { done: 'one' } })
  // @ts-expect-error $inc only on numeric paths
  await mem.patch({ $inc: { queue: 1 } })
  // @ts-expect-error $push only on array paths
  await mem.patch({ $push: { done: 1 } })
  // @ts-expect-error $set checks the value's type
  await mem.patch({ $set: { 'owner.name': 5 } })

  mem.observe('owner.tags', (tags) => { const first: string | undefined = tags[0]; void first })
  mem.observe('done', (value) => { const n: number = value; void n })
  // @ts-expect-error not a path of Jobs
  mem.observe('nope', () => {})
  mem.unobserve('done')

  mem.on('change', (change) => { const v: number | null = change.version; void v })
  mem.on('receivedPatches', (patches) => { const v: number = patches[0].version; void v })
  mem.on('connected', (type) => { const t: 'host' | 'client' = type; void t })
  // @ts-expect-error not an instance event
  mem.on('unknown-event', () => {})
  const first = await mem.onceAsync('receivedPatches')
  void first.length

  const sum = await fromConfig.call('add', 1, 2)
  const result: number = sum.result
  void result
  // @ts-expect-error not a registered method
  await fromConfig.call('subtract', 1, 2)

  const counted: number = await mem.lock('jobs', async () => mem.data.done)
  void counted
  await mem.lock('jobs', () => {}, { timeout: 100 })
  // @ts-expect-error the key is a string
  await mem.lock(1, () => {})
  const writer = new MemSync('w', {}, { peer: { roles: ['writer'] }, network: { maxWriters: 1, maxBuffer: 64 * 1024 * 1024 } })
  void writer
  // @ts-expect-error a number of bytes
  void new MemSync('b', {}, { network: { maxBuffer: '64MB' } })
  void new MemSync('r', {}, { transport: { sentinels: [{ host: 's1' }, { host: 's2', port: 26380 }], name: 'mymaster' }, durability: 'replicated' })
  void new MemSync('t', {}, { transport: { host: 'redis.local', tls: { ca: '/etc/ca.pem' } } })
  // @ts-expect-error tls takes paths, not buffers
  void new MemSync('u', {}, { transport: { host: 'redis.local', tls: { ca: Buffer.from('') } } })
  const bus = new MemSync<object, any, { tick: [n: number] }>('bus')
  bus.events.on('tick', (n) => { const count: number = n; void count })
  bus.events.emit('tick', 1)
  // @ts-expect-error tick carries a number
  bus.events.emit('tick', 'one')
  const called = await fromConfig.call('add', 1, 2)
  const callId: number = called.id
  void callId

  const status = await mem.getStatus()
  for (const peer of status.peers) { const methods: string[] = peer.methods; void methods; void peer.pid }
  const pong = await mem.ping()
  if (pong.connection === 'host') void pong.clients.length
  void status.version
  const buffered: number = status.buffered
  void buffered
  mem.unref().ref()
  await mem.stop()
}

const update: UpdateQuery<Jobs> = { $unset: { owner: '' } }
const code: string = MemErrors.ERR_MAX_WRITERS
const storage: 'ERR_STORAGE' = MemErrors.ERR_STORAGE
const persisted = new MemSync('persisted', { n: 0 }, { file: { path: 'n.json' }, server: { port: 8080, host: '127.0.0.1' } })
// @ts-expect-error server.port is a number
void new MemSync('bad', {}, { server: { port: '8080' } })
function isMemError (error: unknown): error is MemSyncError {
  return error instanceof Error && 'code' in error
}
void update
void code
void storage
void persisted.flush()
void isMemError
void main

// Both call forms: memsync 0.5's only with its type argument (the result's type).
async function callForms () {
  const typed = new MemSync({ name: 'c', rpc: { add: (a: number, b: number) => a + b } })
  const loose = await typed.call<{ n: number }>('elsewhere', 1)
  const n: number = loose.result.n
  void n
  // @ts-expect-error without a type argument, the method must be registered
  await typed.call('elsewhere')
  // Events as listener signatures (0.5) type their arguments too.
  const sig = new MemSync<object, any, { tick: (n: number) => void }>('sig')
  // @ts-expect-error tick carries a number
  sig.events.emit('tick', 'one')
}
void callForms

// Issue 15: data is read-only at every depth; dispose, changes(), AbortSignal options.
async function modern () {
  const jobs = new MemSync<Jobs>('modern', { done: 0, queue: [], owner: { name: 'a', tags: [] }, workers: [] })
  // @ts-expect-error data is written with patch() only
  jobs.data.done = 5
  // @ts-expect-error nested too
  jobs.data.owner.name = 'b'
  // @ts-expect-error arrays are read-only
  jobs.data.queue.push('x')
  // @ts-expect-error so is what an observer receives
  jobs.observe('queue', (queue) => queue.sort())
  const name: string = jobs.data.owner.name
  void name
  const stopped: 'ERR_STOPPED' = MemErrors.ERR_STOPPED
  const direct: 'ERR_DIRECT_WRITE' = MemErrors.ERR_DIRECT_WRITE
  void stopped
  void direct

  const controller = new AbortController()
  await jobs.start({ signal: controller.signal })
  await jobs.patch({ $inc: { done: 1 } }, { signal: AbortSignal.timeout(1000) })
  await jobs.lock('k', () => 1, { timeout: 100, signal: controller.signal })
  const typed = new MemSync({ name: 'c2', rpc: { add: (a: number, b: number) => a + b } })
  const sum: number = (await typed.call({ method: 'add', signal: controller.signal }, 1, 2)).result
  void sum
  // @ts-expect-error not a registered method
  await typed.call({ method: 'subtract' }, 1, 2)
  // @ts-expect-error signal is an AbortSignal
  await jobs.patch({ done: 1 }, { signal: true })

  for await (const change of jobs.changes({ bufferSize: 16 })) {
    const version: number | null = change.version
    const own: boolean = change.own
    void version
    void own
    break
  }
  {
    await using scoped = new MemSync('scoped', { n: 0 })
    await scoped.start()
  }
  jobs.setOptions({ timeout: 100, logEvents: true })
  // @ts-expect-error not an option
  jobs.setOptions({ timeOut: 100 })
}
void modern
