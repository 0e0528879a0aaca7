import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import memsync from '../index.js'
import { runFixture } from './support/child.mjs'

const { MemSync, MemErrors } = memsync
let counter = 0
const uniqueName = (label) => `t-${label}-${process.pid}-${counter++}`

// A started instance, stopped when the test ends even if it fails, so that a failure cannot keep
// the test process alive.
async function started (t, data = {}, options) {
  const mem = new MemSync(uniqueName('mem'), data, options)
  t.after(() => mem.stop())
  await mem.start()
  return mem
}

async function rejectsWith (promise, code) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof Error, 'rejects with an Error')
    assert.equal(error.code, code, error.message)
    assert.ok(error.message.length > 10, 'with a useful message')
    return true
  })
}

test('loads through require, import and the package name', async () => {
  const require = createRequire(import.meta.url)
  assert.equal(require('memsync').MemSync, MemSync)
  const esm = await import('memsync')
  assert.equal(esm.MemSync, MemSync)
  assert.equal(esm.MemErrors, MemErrors)
})

test('MemErrors holds ERR_MAX_WRITERS and every engine code', () => {
  for (const code of ['ERR_MAX_WRITERS', 'ERR_UNKNOWN_OPERATOR', 'ERR_BAD_OPERATOR_ARG', 'ERR_BAD_VALUE',
    'ERR_TYPE_MISMATCH', 'ERR_PATH_NOT_VIABLE', 'ERR_PATH_CONFLICT', 'ERR_EMPTY_PATH', 'ERR_DOLLAR_FIELD',
    'ERR_POSITIONAL', 'ERR_RENAME_INVALID', 'ERR_OVERFLOW']) {
    assert.equal(MemErrors[code], code)
  }
  assert.ok(Object.isFrozen(MemErrors))
})

test('both constructor forms', async () => {
  const rpc = { hello: () => 'hi' }
  const byArgs = new MemSync(uniqueName('args'), { a: 1 }, { timeout: 500 })
  const byObject = new MemSync({ name: uniqueName('obj'), data: { a: 2 }, rpc, options: { timeout: 600 } })
  assert.deepEqual(byArgs.data, { a: 1 })
  assert.equal(byArgs.options.timeout, 500)
  assert.deepEqual(byObject.data, { a: 2 })
  assert.equal(byObject.options.timeout, 600)
  assert.equal((await byObject.call('hello')).result, 'hi')
  assert.deepEqual(new MemSync(uniqueName('empty')).data, {})
})

test('a missing or invalid name throws a clear error', () => {
  for (const args of [[], [undefined], [''], [{ data: {} }]]) {
    assert.throws(() => new MemSync(...args), { code: 'ERR_INVALID_NAME', message: 'Name not set for the MemSync' })
  }
  for (const name of ['x'.repeat(1025), 'a\ud800', 42]) {
    assert.throws(() => new MemSync(name), (error) => error.code === 'ERR_INVALID_NAME' && /name/i.test(error.message))
  }
})

test('bad data and options throw with a code', () => {
  assert.throws(() => new MemSync(uniqueName('bad'), [1, 2]), { code: 'ERR_BAD_VALUE' })
  assert.throws(() => new MemSync(uniqueName('bad'), { big: 1n }), { code: 'ERR_BAD_VALUE' })
  assert.throws(() => new MemSync(uniqueName('bad'), {}, { timeout: -1 }), { code: 'ERR_INVALID_ARG' })
  assert.throws(() => new MemSync(uniqueName('bad'), {}, { clientOnly: true, serverOnly: true }), { code: 'ERR_INVALID_ARG' })
})

test('start resolves the role and announces it; stop announces the end', async (t) => {
  const mem = new MemSync(uniqueName('roles'), { n: 1 })
  t.after(() => mem.stop())
  assert.equal((await mem.getStatus()).status, 'stopped')
  const connected = mem.onceAsync('connected')
  assert.equal(await mem.start(), 'host')
  assert.equal(await connected, 'host')
  assert.deepEqual(await mem.connection, { type: 'host' })
  assert.equal(await mem.start(), 'host', 'start twice is harmless')
  const status = await mem.getStatus()
  assert.equal(status.status, 'host')
  assert.deepEqual(status.host, { started: true, connections: 0 })
  const disconnected = mem.onceAsync('disconnected')
  await mem.stop()
  assert.equal(await disconnected, 'host')
  assert.equal((await mem.getStatus()).status, 'stopped')
  assert.equal(await mem.start(), 'host', 'a stopped instance starts again')
  await mem.stop()
})

test('data is a copy of the default object and keeps its identity', async (t) => {
  const seed = { n: 1, list: [1], nested: { a: 1 } }
  const mem = await started(t, seed)
  const data = mem.data
  assert.notEqual(data, seed)
  seed.n = 99
  assert.equal(mem.data.n, 1)
  await mem.patch({ $inc: { n: 1 }, $push: { list: 2 }, $set: { 'nested.b': 2 } })
  await mem.patch({ $unset: { nested: '' } })
  assert.equal(mem.data, data)
  assert.deepEqual(data, { n: 2, list: [1, 2] })
  await mem.stop()
})

test('a patch is visible in data before its promise is awaited', async (t) => {
  const mem = await started(t, { n: 1, tags: [] })
  const pending = mem.patch({ $inc: { n: 1 }, $addToSet: { tags: 'x' } })
  assert.equal(mem.data.n, 2)
  assert.deepEqual(mem.data.tags, ['x'])
  assert.equal(await pending, undefined)
  await mem.stop()
})

test('plain keys are $set shorthand and {} is a no-op', async (t) => {
  const mem = await started(t, { a: 1 })
  const changes = []
  mem.on('change', (change) => changes.push(change))
  await mem.patch({ b: { c: 2 } })
  await mem.patch({})
  assert.deepEqual(mem.data, { a: 1, b: { c: 2 } })
  assert.equal(changes.length, 1)
  await mem.stop()
})

test('keys such as __proto__ and constructor stay ordinary data and never reach a prototype', async (t) => {
  const mem = await started(t, { list: [] })
  await mem.patch({ $set: { '__proto__.polluted': 1, 'constructor.prototype.polluted': 2 } })
  await mem.patch({ $push: { '__proto__.list': 'x' }, $rename: { constructor: 'renamed' } })
  assert.equal({}.polluted, undefined)
  assert.equal(Object.prototype.polluted, undefined)
  assert.equal(Object.getPrototypeOf(mem.data), Object.prototype)
  assert.ok(Object.hasOwn(mem.data, '__proto__'))
  assert.deepEqual(JSON.parse(JSON.stringify(mem.data)), JSON.parse('{"list":[],"__proto__":{"polluted":1,"list":["x"]},"renamed":{"prototype":{"polluted":2}}}'))
})

test('an invalid update rejects with the engine code and leaves data untouched', async (t) => {
  const mem = await started(t, { n: 1, s: 'text', list: [1, 2], o: { x: 1 }, huge: 1e300 })
  const before = structuredClone(mem.data)
  const cases = [
    [{ $foo: { n: 1 } }, 'ERR_UNKNOWN_OPERATOR'],
    [{ a: 1, $set: { b: 1 } }, 'ERR_UNKNOWN_OPERATOR'],
    [{ $set: 1 }, 'ERR_BAD_OPERATOR_ARG'],
    [{ $inc: { n: 'x' } }, 'ERR_BAD_VALUE'],
    [{ $inc: { n: 1, s: 1 } }, 'ERR_TYPE_MISMATCH'],
    [{ $set: { n: 5 }, $push: { o: 1 } }, 'ERR_TYPE_MISMATCH'],
    [{ $set: { 's.x': 1 } }, 'ERR_PATH_NOT_VIABLE'],
    [{ $set: { o: 1, 'o.x': 2 } }, 'ERR_PATH_CONFLICT'],
    [{ $set: { 'a..b': 1 } }, 'ERR_EMPTY_PATH'],
    [{ $set: { $x: 1 } }, 'ERR_DOLLAR_FIELD'],
    [{ $set: { 'list.$': 1 } }, 'ERR_POSITIONAL'],
    [{ $rename: { n: 'n' } }, 'ERR_RENAME_INVALID'],
    [{ $mul: { huge: 1e300 } }, 'ERR_OVERFLOW'],
    [{ $set: { big: 10n } }, 'ERR_BAD_VALUE'],
    [[{ $set: { n: 2 } }], 'ERR_BAD_VALUE'],
    [null, 'ERR_BAD_VALUE']
  ]
  for (const [update, code] of cases) {
    await rejectsWith(mem.patch(update), code)
    assert.deepEqual(mem.data, before, `data untouched after ${code}`)
  }
  assert.equal((await mem.getStatus()).version, 0)
  await mem.stop()
})

test('values JSON cannot carry reject with ERR_BAD_VALUE naming the path, and change nothing', async (t) => {
  const mem = await started(t, { n: 1, list: [1] })
  const cyclic = { a: {} }
  cyclic.a.self = cyclic
  const cases = [
    [{ $set: undefined }, "'$set'"],
    [{ $set: { 'a.b': () => 1 } }, "'$set.a.b'"],
    [{ $set: { x: Symbol('s') } }, "'$set.x'"],
    [{ $set: { x: 10n } }, "BigInt 10n at '$set.x'"],
    [{ $set: { x: NaN } }, "'$set.x'"],
    [{ $inc: { n: Infinity } }, "'$inc.n'"],
    [{ $set: { x: cyclic } }, "a cycle at '$set.x.a.self'"],
    [{ $set: { x: new Map([[1, 2]]) } }, "'$set.x'"],
    [{ $pull: { list: /^a/ } }, '$regex'],
    [{ $set: { x: new Uint8Array(2) } }, "'$set.x'"]
  ]
  for (const [update, where] of cases) {
    await assert.rejects(mem.patch(update), (error) => {
      assert.equal(error.code, 'ERR_BAD_VALUE')
      assert.ok(error.message.includes(where), `${error.message} names ${where}`)
      return true
    })
  }
  assert.deepEqual(mem.data, { n: 1, list: [1] })
  assert.equal((await mem.getStatus()).version, 0)
  await mem.patch({ $set: { when: new Date(0) } })
  assert.equal(mem.data.when, '1970-01-01T00:00:00.000Z', 'a Date is sent as its JSON form')
})

test('observers fire for the path, a parent or a child, with the new value', async (t) => {
  const mem = await started(t, { a: { b: { c: 1 }, bc: 0 }, list: [] })
  const seen = []
  const record = (value) => seen.push(structuredClone(value))
  assert.equal(mem.observe('a.b', record), mem)
  await mem.patch({ $set: { 'a.b.c': 2 } })
  await mem.patch({ $set: { a: { b: { c: 3 } } } })
  await mem.patch({ $set: { 'a.b': { d: 4 } } })
  await mem.patch({ $set: { 'a.bc': 5, list: [1] } })
  assert.deepEqual(seen, [{ c: 2 }, { c: 3 }, { d: 4 }])
  await mem.patch({ $unset: { a: '' } })
  assert.deepEqual(seen.at(-1), undefined)
  assert.equal(seen.length, 4)
  await mem.stop()
})

test('observers see array elements by index and renames at both ends', async (t) => {
  const mem = await started(t, { list: [{ v: 1 }, { v: 2 }], from: 1 })
  const list1 = []
  const renamed = []
  mem.observe('list.1.v', (v) => list1.push(v))
  mem.observe('to', (v) => renamed.push(v))
  await mem.patch({ $inc: { 'list.1.v': 10 } })
  await mem.patch({ $inc: { 'list.0.v': 10 } })
  await mem.patch({ $inc: { 'list.$[].v': 1 } })
  await mem.patch({ $rename: { from: 'to' } })
  assert.deepEqual(list1, [12, 13])
  assert.deepEqual(renamed, [1])
  await mem.stop()
})

test('unobserve removes one callback or all of a path', async (t) => {
  const mem = await started(t, { n: 0 })
  const calls = []
  const one = (n) => calls.push(['one', n])
  const two = (n) => calls.push(['two', n])
  mem.observe('n', one).observe('n', two)
  await mem.patch({ $inc: { n: 1 } })
  assert.equal(mem.unobserve('n', one), mem)
  await mem.patch({ $inc: { n: 1 } })
  mem.unobserve('n')
  await mem.patch({ $inc: { n: 1 } })
  assert.deepEqual(calls, [['one', 1], ['two', 1], ['two', 2]])
  await mem.stop()
})

test('a patch made by an observer applies after the rest of the patch that fired it, every time', async (t) => {
  const mem = await started(t, { n: 0, double: 0 })
  const calls = []
  mem.observe('n', (n) => {
    calls.push(['first', n])
    mem.patch({ $set: { double: n * 2 } })
  })
  mem.observe('n', (n) => calls.push(['second', n]))
  mem.observe('double', (double) => calls.push(['double', double]))
  for (const n of [1, 2]) {
    const accepted = mem.patch({ $set: { n } })
    assert.deepEqual(mem.data, { n, double: n * 2 }, 'both patches are in data when patch() returns')
    await accepted
  }
  assert.deepEqual(calls, [['first', 1], ['second', 1], ['double', 2], ['first', 2], ['second', 2], ['double', 4]])
  await mem.stop()
})

test('an observer that throws is reported through error and does not stop the instance', async (t) => {
  const mem = await started(t, { n: 0 })
  mem.observe('n', () => { throw new Error('boom') })
  const reported = mem.onceAsync('error')
  await mem.patch({ $inc: { n: 1 } })
  assert.equal((await reported).message, 'boom')
  mem.on('error', () => {})
  await mem.patch({ $inc: { n: 1 } })
  assert.equal(mem.data.n, 2)
  await mem.stop()
})

test('an observer error goes to stderr when nobody listens', async () => {
  const { code, stdout, stderr } = await runFixture('observer-throws.mjs')
  assert.equal(code, 0, stderr)
  assert.match(stderr, /observer failed on purpose/)
  assert.equal(stdout.trim(), '{"n":2}')
})

test('on, once and off; change carries the version', async (t) => {
  const mem = await started(t, { n: 0 })
  const every = []
  const first = []
  const listener = (change) => every.push(change.version)
  assert.equal(mem.on('change', listener), mem)
  assert.equal(mem.once('change', (change) => first.push(change.version)), mem)
  await mem.patch({ $inc: { n: 1 } })
  const next = mem.onceAsync('change')
  await mem.patch({ $inc: { n: 1 } })
  const change = await next
  assert.deepEqual(change.patch, { $inc: { n: 1 } })
  assert.equal(typeof change.timestamp, 'number')
  assert.equal(mem.off('change', listener), mem)
  await mem.patch({ $inc: { n: 1 } })
  assert.deepEqual(every, [1, 2])
  assert.deepEqual(first, [1])
  assert.equal((await mem.getStatus()).version, 3)
  await mem.stop()
})

test('the events bus delivers to its listeners', async (t) => {
  const mem = await started(t)
  const got = []
  const listener = (...args) => got.push(args)
  assert.equal(mem.events.on('tick', listener), mem.events)
  mem.events.once('tick', (...args) => got.push(['once', ...args]))
  mem.events.emit('tick', 1, 'a')
  mem.events.off('tick', listener)
  mem.events.emit('tick', 2)
  assert.deepEqual(got, [[1, 'a'], ['once', 1, 'a']])
  await mem.stop()
})

test('call runs a local rpc method and rejects an unknown one', async (t) => {
  const mem = new MemSync({ name: uniqueName('rpc'), rpc: { add: (a, b) => a + b, nested: { later: async () => 'ok' } } })
  t.after(() => mem.stop())
  await mem.start()
  const answer = await mem.call('add', 2, 3)
  assert.equal(answer.result, 5)
  assert.equal((await mem.call('nested.later')).result, 'ok')
  await rejectsWith(mem.call('missing'), 'ERR_RPC_NOT_FOUND')
  await mem.stop()
})

test('ping, flush and setOptions keep the memsync 0.5 shapes', async (t) => {
  const mem = await started(t)
  assert.deepEqual(await mem.ping(), { connection: 'host', host: { time: 0 }, clients: [] })
  await assert.rejects(mem.flush(), { code: 'ERR_NO_STORAGE', message: 'Storage not defined' })
  assert.equal(mem.setOptions({ timeout: 5 }), undefined)
  await mem.stop()
})

test('patches before start apply locally at once and are accepted when a host exists', async (t) => {
  const mem = new MemSync(uniqueName('early'), { n: 0 })
  t.after(() => mem.stop())
  const accepted = mem.patch({ $inc: { n: 1 } })
  assert.equal(mem.data.n, 1)
  assert.equal((await mem.getStatus()).version, 0, 'not ordered before a host exists')
  assert.equal(await mem.start(), 'host')
  await accepted
  assert.equal(mem.data.n, 1)
  assert.equal((await mem.getStatus()).version, 1)
})

test('logEvents prints the instance events', async (t) => {
  const log = t.mock.method(console, 'log', () => {})
  const mem = await started(t, { n: 0 }, { logEvents: true })
  await mem.patch({ $inc: { n: 1 } })
  await mem.stop()
  const lines = log.mock.calls.map((call) => call.arguments[0])
  assert.deepEqual(lines.map((line) => line.replace(new RegExp(`^memsync '[^']+' \\(pid ${process.pid}\\) `), '')), ['connected:', 'change:', 'disconnected:'])
  assert.deepEqual(log.mock.calls[1].arguments[1].patch, { $inc: { n: 1 } })
})

test('a clientOnly instance with no host times out', async () => {
  const mem = new MemSync(uniqueName('client'), {}, { clientOnly: true, timeout: 50 })
  await rejectsWith(mem.start(), 'ERR_TIMEOUT')
})

test('a started instance keeps the process alive until stop, then it exits by itself', async () => {
  const { code, stdout } = await runFixture('keep-alive.mjs', ['stop'])
  assert.equal(code, 0)
  assert.deepEqual(stdout.trim().split('\n'), ['alive', 'exit'])
})

test('unref lets the process exit while started', async () => {
  const { code, stdout } = await runFixture('keep-alive.mjs', ['unref'])
  assert.equal(code, 0)
  assert.deepEqual(stdout.trim().split('\n'), ['exit'])
})

test('a stopped or never started instance never keeps the process alive', async () => {
  for (const mode of ['stopped', 'never-started']) {
    const { code, stdout } = await runFixture('keep-alive.mjs', [mode])
    assert.equal(code, 0)
    assert.deepEqual(stdout.trim().split('\n'), ['exit'], mode)
  }
})
