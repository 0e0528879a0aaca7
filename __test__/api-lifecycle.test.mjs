// The JavaScript API items of issue 15: refusal after stop(), option keys and setOptions,
// Symbol.asyncDispose, changes(), AbortSignal options, and tagged diagnostics.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../index.js'
import { fileURLToPath } from 'node:url'
import { runScript } from './support/child.mjs'
import { rendezvousDir, spawnPeer, uniqueName, withTimeout } from './support/peers.mjs'

const { MemSync, MemErrors } = memsync
const asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')

async function started (t, data = {}, options = {}, name = uniqueName('api')) {
  const mem = new MemSync(name, data, { dir: rendezvousDir(t), ...options })
  t.after(() => mem.stop())
  await mem.start()
  return mem
}

const hasCode = (code, ...patterns) => (error) => {
  assert.equal(error.code, code, error.message)
  for (const pattern of patterns) assert.match(error.message, pattern)
  return true
}

test('after stop(), patch, lock, call and events.emit refuse at once with ERR_STOPPED and change nothing, until start()', { timeout: 15000 }, async (t) => {
  const mem = await started(t, { n: 1 })
  await mem.stop()
  const began = performance.now()
  await assert.rejects(mem.patch({ $inc: { n: 1 } }), hasCode(MemErrors.ERR_STOPPED, /stopped/))
  await assert.rejects(mem.lock('k', () => {}), hasCode(MemErrors.ERR_STOPPED))
  await assert.rejects(mem.call('anything'), hasCode(MemErrors.ERR_STOPPED))
  assert.throws(() => mem.events.emit('tick', 1), hasCode(MemErrors.ERR_STOPPED))
  assert.ok(performance.now() - began < 1000, 'at once, not at the timeout')
  assert.deepEqual(mem.data, { n: 1 })

  await mem.start()
  await mem.patch({ $inc: { n: 1 } })
  assert.equal(await mem.lock('k', () => 'held'), 'held')
  assert.deepEqual(mem.data, { n: 2 })
})

test('unknown option keys throw ERR_INVALID_ARG naming the key and the closest valid one', () => {
  const cases = [
    [() => new MemSync('o', {}, { timeOut: 5 }), /unknown option 'timeOut'; did you mean 'timeout'\?/],
    [() => new MemSync({ name: 'o', dta: {} }), /unknown key 'dta'; did you mean 'data'\?/],
    [() => new MemSync({ name: 'o', options: { logevents: true } }), /'logevents'; did you mean 'logEvents'\?/],
    [() => new MemSync('o', {}, { server: { prot: 8080 } }), /'server.prot'; did you mean 'server.port'\?/],
    [() => new MemSync('o', {}, { file: { pth: 'x.json' } }), /'file.pth'; did you mean 'file.path'\?/],
    [() => new MemSync('o', {}, { network: { maxWriter: 1 } }), /'network.maxWriter'; did you mean 'network.maxWriters'\?/],
    [() => new MemSync('o', {}, { peer: { role: ['writer'] } }), /'peer.role'; did you mean 'peer.roles'\?/]
  ]
  for (const [make, message] of cases) assert.throws(make, hasCode(MemErrors.ERR_INVALID_ARG, message))
  // Every option memsync 0.5 took still goes.
  const all = new MemSync('o', {}, { clientOnly: false, serverOnly: false, logEvents: false, logLevel: 'none', timeout: 100, hostTimeout: 100, dir: '/tmp/x', peer: { roles: ['writer'] }, network: { maxWriters: 2 }, file: { path: 'x.json' }, server: { port: 8080 } })
  assert.equal(all.options.timeout, 100)
})

test('setOptions applies what a started instance can change and refuses the rest, all or nothing', { timeout: 15000 }, async (t) => {
  const mem = await started(t)
  mem.setOptions({ timeout: 1234, logLevel: 'none' })
  assert.equal(mem.options.timeout, 1234)
  assert.throws(() => mem.setOptions({ timeout: 10, dir: '/tmp/elsewhere' }), hasCode(MemErrors.ERR_INVALID_ARG, /options\.dir is fixed/))
  assert.equal(mem.options.timeout, 1234, 'nothing applied')
  assert.throws(() => mem.setOptions({ server: { port: 8080 } }), hasCode(MemErrors.ERR_INVALID_ARG, /fixed/))
  assert.throws(() => mem.setOptions({ clientOnly: true }), hasCode(MemErrors.ERR_INVALID_ARG, /while .* is started/))
  assert.throws(() => mem.setOptions({ timeOut: 5 }), hasCode(MemErrors.ERR_INVALID_ARG, /did you mean 'timeout'/))
  assert.throws(() => mem.setOptions({ timeout: -1 }), hasCode(MemErrors.ERR_INVALID_ARG))
  const log = t.mock.method(console, 'log', () => {})
  mem.setOptions({ logEvents: true })
  await mem.patch({ n: 1 })
  mem.setOptions({ logEvents: false })
  await mem.patch({ n: 2 })
  assert.equal(log.mock.callCount(), 1, 'logEvents on, then off again')
  await mem.stop()
  mem.setOptions({ hostTimeout: 2000, peer: { roles: ['writer'] } })
  await mem.start()
  assert.deepEqual((await mem.getStatus()).roles, ['writer'])
})

test('Symbol.asyncDispose stops the instance (await using)', { timeout: 15000 }, async (t) => {
  const mem = await started(t)
  assert.equal(typeof mem[asyncDispose], 'function')
  await mem[asyncDispose]()
  assert.equal((await mem.getStatus()).status, 'stopped')
})

test('changes() yields own and other processes\' patches in order; break unsubscribes; stop() ends it', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('changes')
  const mem = new MemSync(name, { n: 0 }, { dir })
  t.after(() => mem.stop())
  await mem.start()
  const peer = await spawnPeer(t, name, dir, {}, 'other')
  await peer.request('start')
  const iterator = mem.changes()
  await mem.patch({ $inc: { n: 1 } })
  await peer.request('patch', { update: { $inc: { n: 10 } } })
  const first = await withTimeout(iterator.next(), 5000, 'own change')
  const second = await withTimeout(iterator.next(), 5000, 'other change')
  assert.deepEqual({ ...first.value, timestamp: 0 }, { version: 1, timestamp: 0, patch: { $inc: { n: 1 } }, own: true })
  assert.deepEqual({ ...second.value, timestamp: 0 }, { version: 2, timestamp: 0, patch: { $inc: { n: 10 } }, own: false })

  // `break` (here `return`) out of `for await` unsubscribes: the iterator is done, and keeps nothing.
  const feed = mem.changes()
  const loop = (async () => { for await (const change of feed) return change })()
  await mem.patch({ $inc: { n: 1 } })
  assert.equal((await withTimeout(loop, 5000, 'the loop')).version, 3)
  await mem.patch({ $inc: { n: 1 } })
  assert.deepEqual(await feed.next(), { value: undefined, done: true })

  // next() called twice before a change: each gets its own, in order.
  const both = mem.changes()
  const [third, fourth] = [both.next(), both.next()]
  await mem.patch({ $inc: { n: 1 } })
  await mem.patch({ $inc: { n: 1 } })
  assert.deepEqual([(await third).value.version, (await fourth).value.version], [5, 6])

  const ended = mem.changes().next()
  await mem.stop()
  assert.deepEqual(await withTimeout(ended, 5000, 'stop() ends the iterator'), { value: undefined, done: true })
})

test('changes() keeps at most bufferSize for a slow consumer, then throws ERR_CHANGES_DROPPED after them', { timeout: 15000 }, async (t) => {
  const mem = await started(t, { n: 0 })
  const slow = mem.changes({ bufferSize: 2 })
  for (let i = 0; i < 3; i++) await mem.patch({ $inc: { n: 1 } })
  assert.equal((await slow.next()).value.version, 1)
  assert.equal((await slow.next()).value.version, 2)
  await assert.rejects(slow.next(), hasCode(MemErrors.ERR_CHANGES_DROPPED, /bufferSize/))
  assert.deepEqual(await slow.next(), { value: undefined, done: true })
  assert.throws(() => mem.changes({ bufferSize: 0 }), hasCode(MemErrors.ERR_INVALID_ARG))
})

test('an AbortSignal stops the wait of patch, call, lock and start with its reason', { timeout: 20000 }, async (t) => {
  const name = uniqueName('abort')
  const host = await started(t, { n: 0 }, {}, name)
  // An aborted signal refuses before anything changes.
  const aborted = AbortSignal.abort()
  await assert.rejects(host.patch({ $inc: { n: 1 } }, { signal: aborted }), { name: 'AbortError' })
  assert.deepEqual(host.data, { n: 0 })
  await assert.rejects(host.call({ method: 'x', signal: aborted }), { name: 'AbortError' })
  await assert.rejects(host.lock('k', () => {}, { signal: aborted }), { name: 'AbortError' })
  const idle = new MemSync(uniqueName('idle'), {}, { dir: rendezvousDir(t) })
  await assert.rejects(idle.start({ signal: aborted }), { name: 'AbortError' })
  assert.throws(() => host.changes({ bufferSize: 'x' }), hasCode(MemErrors.ERR_INVALID_ARG))
  await assert.rejects(host.patch({ n: 1 }, { signal: 'soon' }), hasCode(MemErrors.ERR_INVALID_ARG, /AbortSignal/))

  // A start waiting for a host that never comes: the instance stops.
  const waitingStart = new MemSync(uniqueName('no-host'), {}, { dir: rendezvousDir(t), clientOnly: true })
  const starting = new AbortController()
  const start = waitingStart.start({ signal: starting.signal })
  starting.abort()
  await assert.rejects(withTimeout(start, 5000, 'the aborted start'), { name: 'AbortError' })
  assert.equal((await waitingStart.getStatus()).status, 'stopped')

  // A lock wait, withdrawn: the lock is free for the next request afterwards.
  let release
  const granted = new Promise((resolve) => {
    host.lock('k', () => new Promise((resolve_) => { release = resolve_; resolve() }))
  })
  await withTimeout(granted, 5000, 'the first lock')
  const controller = new AbortController()
  const waiting = host.lock('k', () => 'never', { signal: controller.signal })
  controller.abort(new Error('gave up'))
  await assert.rejects(waiting, /gave up/)
  release()
  assert.equal(await withTimeout(host.lock('k', () => 'next'), 5000, 'the lock after the withdrawn wait'), 'next')

  // A call in flight to another process: the wait ends with the reason.
  const server = new MemSync({ name, rpc: { hang: () => new Promise(() => {}) }, options: { dir: host.options.dir } })
  t.after(() => server.stop())
  await server.start()
  const calling = new AbortController()
  const call = host.call({ method: 'hang', signal: calling.signal })
  calling.abort()
  await assert.rejects(call, { name: 'AbortError' })
})

test('logEvents lines and NODE_DEBUG=memsync lines carry the name and pid', { timeout: 20000 }, async (t) => {
  const fixture = fileURLToPath(new URL('./fixtures/two-instances.mjs', import.meta.url))
  const { code, stdout, stderr } = await runScript(fixture, [rendezvousDir(t)], { timeoutMs: 15000, label: 'two-instances.mjs', env: { ...process.env, NODE_DEBUG: 'memsync' } })
  assert.equal(code, 0, stderr)
  const pid = stdout.match(/\(pid (\d+)\)/)?.[1]
  assert.ok(pid, stdout)
  for (const name of ['log-one', 'log-two']) {
    assert.match(stdout, new RegExp(`memsync '${name}' \\(pid ${pid}\\) connected: host`))
    assert.match(stdout, new RegExp(`memsync '${name}' \\(pid ${pid}\\) change:`))
    assert.match(stderr, new RegExp(`MEMSYNC \\d+: memsync '${name}' \\(pid ${pid}\\) start`))
  }
})
