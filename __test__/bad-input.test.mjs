// Bad input through the API: every public method checks its arguments. Values JSON cannot carry
// reject with ERR_BAD_VALUE naming their path, wrong arguments with ERR_INVALID_ARG (or the
// name's ERR_INVALID_NAME), and nothing is applied or sent: a second process, host or client of
// the instance under test, receives nothing until a valid patch follows.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../index.js'
import fs from 'node:fs'
import { rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'

const { MemSync } = memsync
const OPTIONS = { timeout: 5000 }

/** `{ x: { x: ... 1 } }`, nesting `levels` levels. */
const nested = (levels) => Array.from({ length: levels }).reduce((inner) => ({ x: inner }), 1)
const nestedArrays = (levels) => Array.from({ length: levels }).reduce((inner) => [inner], 1)

/**
 * Values JSON cannot carry, each with the text its error names (relative to where it sits). Each
 * is a function, so that every case gets fresh objects.
 */
function unsendable () {
  const cyclic = { a: {} }
  cyclic.a.self = cyclic
  const cyclicArray = [1]
  cyclicArray.push(cyclicArray)
  const sparse = [1]
  sparse[2] = 3
  return [
    ['a function', () => 1, ''],
    ['an async function', async () => 1, ''],
    ['a class', class {}, ''],
    ['a symbol', Symbol('s'), ''],
    ['a BigInt', 10n, ''],
    ['a BigInt object', Object(10n), ''],
    ['undefined', undefined, ''],
    ['undefined in an array', [1, undefined], '.1'],
    ['a hole in an array', sparse, '.1'],
    ['NaN', NaN, ''],
    ['Infinity', Infinity, ''],
    ['-Infinity', -Infinity, ''],
    ['a Number object of NaN', Object(NaN), ''],
    ['a Symbol object', Object(Symbol('s')), ''],
    ['an invalid Date', new Date(NaN), ''],
    ['a cyclic object', cyclic, '.a.self'],
    ['a cyclic array', cyclicArray, '.1'],
    ['a Map', new Map([[1, 2]]), ''],
    ['a Set', new Set([1]), ''],
    ['a WeakMap', new WeakMap(), ''],
    ['a RegExp', /x/, ''],
    ['a Promise', Promise.resolve(1), ''],
    ['a typed array', new Uint8Array(2), ''],
    ['an ArrayBuffer', new ArrayBuffer(2), ''],
    ['an Error', new Error('e'), ''],
    ['a lone surrogate', 'a\ud800b', ''],
    ['a lone surrogate in a key', { ['k\udc00']: 1 }, '.k\udc00'],
    ['a toJSON that gives NaN', { deep: new (class { toJSON () { return { n: NaN } } })() }, '.deep.n'],
    ['a toJSON that gives a BigInt', new (class { toJSON () { return [1n] } })(), '.0'],
    ['a nested NaN', { a: [{ b: NaN }] }, '.a.0.b'],
    ['a nested function', { a: { f () {} } }, '.a.f']
  ]
}

const STORED_AS_NULL = ['undefined', 'undefined in an array', 'a hole in an array']

/** Calls `fn`; checks that it throws synchronously (`how` 'throws') or returns a promise that rejects ('rejects'), with `code` and a message containing `includes`. */
async function expectError (fn, { how, code, includes = '' }, label) {
  let result
  try {
    result = fn()
  } catch (error) {
    assert.equal(how, 'throws', `${label}: threw synchronously instead of rejecting: ${error.message}`)
    assert.equal(error.code, code, `${label}: ${error.message}`)
    assert.ok(error.message.includes(includes), `${label}: '${error.message}' names '${includes}'`)
    return
  }
  assert.equal(how, 'rejects', `${label}: did not throw`)
  assert.ok(result instanceof Promise, `${label}: returns a promise`)
  await assert.rejects(result, (error) => {
    assert.equal(error.code, code, `${label}: ${error.message}`)
    assert.ok(error.message.includes(includes), `${label}: '${error.message}' names '${includes}'`)
    return true
  })
}

/** Every bad call of the methods of a started `mem`, with what it must produce. */
function badCalls (mem, spy) {
  const calls = []
  const add = (label, fn, expected) => calls.push({ label, fn, expected })
  const badValue = (includes) => ({ how: 'rejects', code: 'ERR_BAD_VALUE', includes })

  for (const [what, value, at] of unsendable()) {
    // An update stores these as null, as the MongoDB Node driver sends them (compat/api.test.mjs).
    if (!STORED_AS_NULL.includes(what)) {
      add(`patch $set of ${what}`, () => mem.patch({ $set: { 'a.b': value } }), badValue(`'$set.a.b${at}'`))
      add(`patch shorthand of ${what}`, () => mem.patch({ v: value }), badValue(`'v${at}'`))
      add(`patch $push $each of ${what}`, () => mem.patch({ $push: { list: { $each: [1, value] } } }), badValue(`'$push.list.$each.1${at}'`))
      add(`patch $pull of ${what}`, () => mem.patch({ $pull: { list: { $in: [value] } } }), badValue(`'$pull.list.$in.0${at}'`))
    }
    add(`call with ${what}`, () => mem.call('spy', 1, value), badValue(`'1${at}'`))
    add(`events.emit of ${what}`, () => mem.events.emit('spy', { value }), { how: 'throws', code: 'ERR_BAD_VALUE', includes: `'0.value${at}'` })
  }
  add('patch with an operator of undefined', () => mem.patch({ $set: undefined }), badValue("'$set'"))
  add('patch $inc by Infinity', () => mem.patch({ $inc: { n: Infinity } }), badValue("'$inc.n'"))
  add('patch nesting past the JSON check', () => mem.patch({ $set: { v: nested(150) } }), badValue('nests deeper than 102 levels'))
  add('patch nesting past the document limit', () => mem.patch({ $set: { 'a.b': nested(99) } }), badValue("101 levels deep at 'a.b'"))
  // Deeper than JSON.stringify's stack: still the nesting limit, not "Maximum call stack size exceeded".
  add('patch nesting 10,000 levels', () => mem.patch({ $set: { v: nested(10000) } }), badValue("nests deeper than 102 levels at '$set.v.x.x.x...'"))
  add('patch nesting 10,000 arrays', () => mem.patch({ $set: { v: nestedArrays(10000) } }), badValue("nests deeper than 102 levels at '$set.v.0.0.0...'"))
  add('events.emit nesting 10,000 levels', () => mem.events.emit('spy', nested(10000)), { how: 'throws', code: 'ERR_BAD_VALUE', includes: "nests deeper than 100 levels at '0.x.x.x.x...'" })
  add('events.emit of a symbol event', () => mem.events.emit(Symbol('spy'), 1), { how: 'throws', code: 'ERR_INVALID_ARG', includes: 'Symbol(spy) is a symbol, which cannot reach other processes' })
  // Its ordered frame could not be sent: other processes would never receive it.
  add('patch of more than 16 MiB', () => mem.patch({ $set: { big: 'x'.repeat(16 * 1024 * 1024) } }), badValue('more than the 16777216 it may'))
  add('patch of more than 16 MiB in UTF-8 only', () => mem.patch({ $set: { big: 'é'.repeat(9 * 1024 * 1024) } }), badValue('more than the 16777216 it may'))
  for (const [label, update] of [['null', null], ['undefined', undefined], ['an array', [{ $set: { a: 1 } }]],
    ['a string', '{"$set":{"a":1}}'], ['a number', 1], ['a Map', new Map([['$set', { a: 1 }]])],
    ['a class instance', new (class Update { $set = { a: 1 } })()], ['a function', () => ({ $set: { a: 1 } })]]) {
    add(`patch of ${label}`, () => mem.patch(update), badValue('The update must be a plain object'))
  }

  const invalid = (how, includes) => ({ how, code: 'ERR_INVALID_ARG', includes })
  for (const [label, path] of [['a number', 5], ['null', null], ['undefined', undefined], ['an object', {}], ['a double dot', 'a..b'], ['a leading dot', '.a'], ['a trailing dot', 'a.']]) {
    add(`observe of ${label}`, () => mem.observe(path, spy), invalid('throws', 'observe(path, callback): path'))
    add(`unobserve of ${label}`, () => mem.unobserve(path, spy), invalid('throws', 'unobserve(path, callback): path'))
  }
  for (const [label, callback] of [['no callback', undefined], ['a number', 5], ['a string', 'spy'], ['an object', {}]]) {
    add(`observe with ${label}`, () => mem.observe('a', callback), invalid('throws', 'callback must be a function'))
  }
  add('unobserve with a number', () => mem.unobserve('a', 5), invalid('throws', 'callback must be a function'))
  for (const method of ['on', 'once', 'off']) {
    for (const [target, label] of [[mem, method], [mem.events, `events.${method}`]]) {
      for (const [what, event] of [['a number', 5], ['undefined', undefined], ['null', null], ['an object', {}]]) {
        add(`${label} of ${what}`, () => target[method](event, spy), invalid('throws', `${label}(event, listener): the event name`))
      }
      // off(event) without a listener removes them all (memsync 0.5).
      const listeners = [['a number', 5], ['a string', 'spy'], ['an object', { handleEvent () {} }], ...(method === 'off' ? [] : [['no listener', undefined]])]
      for (const [what, listener] of listeners) {
        add(`${label} with ${what}`, () => target[method]('change', listener), invalid('throws', `${label}(event, listener): the listener`))
      }
    }
  }
  for (const [what, event] of [['a number', 5], ['undefined', undefined], ['an object', {}]]) {
    add(`onceAsync of ${what}`, () => mem.onceAsync(event), invalid('rejects', 'onceAsync(event)'))
    add(`events.emit of ${what}`, () => mem.events.emit(event, 1), invalid('throws', 'events.emit(event, ...args)'))
  }
  for (const [what, method] of [['no method', undefined], ['a number', 5], ['an empty name', ''], ['a double dot', 'a..b'], ['an object', {}], ['an array', ['spy']]]) {
    add(`call of ${what}`, () => mem.call(method), invalid('rejects', 'call(method, ...args)'))
  }
  return calls
}

for (const role of ['host', 'client']) {
  test(`bad input to every method of a ${role} rejects with a code, and nothing is applied or sent`, { timeout: 30000 }, async (t) => {
    const dir = rendezvousDir(t)
    const name = uniqueName('badinput')
    const initial = { n: 0, list: [1, 2], a: { b: 1 } }
    const other = await spawnPeer(t, name, dir, { data: initial, options: OPTIONS }, role === 'host' ? 'client' : 'host')
    const calls = { spy: 0 }
    const spy = () => { calls.spy++ }
    const mem = new MemSync({ name, data: initial, rpc: { spy }, options: { dir, ...OPTIONS } })
    t.after(() => mem.stop())
    if (role === 'client') assert.equal((await other.request('start')).role, 'host')
    assert.equal(await mem.start(), role)
    if (role === 'host') assert.equal((await other.request('start')).role, 'client')
    await other.request('record')
    mem.events.on('spy', spy)
    const changes = []
    mem.on('change', (change) => changes.push(change))

    const cases = badCalls(mem, spy)
    for (const { label, fn, expected } of cases) await expectError(fn, expected, label)
    t.diagnostic(`${cases.length} bad calls`)

    assert.deepEqual(mem.data, initial, 'data is unchanged')
    assert.equal((await mem.getStatus()).version, 0)
    assert.deepEqual(changes, [], 'no change was applied')
    assert.equal(calls.spy, 0, 'no RPC handler, listener or observer ran')

    // A valid patch goes through, and it is the only thing the other process ever received.
    await mem.patch({ $inc: { n: 1 } })
    const state = await other.request('waitVersion', { version: 1 })
    assert.deepEqual(state.data, { ...initial, n: 1 })
    assert.equal(state.version, 1)
    const { records } = await other.request('records')
    assert.deepEqual(records.map((r) => r.patch), [{ $inc: { n: 1 } }], 'the other process received only the valid patch')
  })
}

test('the constructor rejects bad names, default objects, rpc tables and options, and creates nothing', async (t) => {
  const dir = rendezvousDir(t)
  let count = 0
  const rejects = (args, code, includes, label) => {
    count++
    assert.throws(() => new MemSync(...args), (error) => {
      assert.equal(error.code, code, `${label}: ${error.message}`)
      assert.ok(error.message.includes(includes), `${label}: '${error.message}' names '${includes}'`)
      return true
    }, label)
  }
  for (const name of [undefined, null, '', 5, true, {}, ['a'], 'x'.repeat(1025), 'lone \udc00']) {
    rejects([name], 'ERR_INVALID_NAME', '', `name ${String(name)}`)
  }
  for (const [what, value, at] of unsendable()) {
    rejects(['bad', { v: value }, { dir }], 'ERR_BAD_VALUE', `'v${at}'`, `default object with ${what}`)
    rejects([{ name: 'bad', data: { list: [value] }, options: { dir } }], 'ERR_BAD_VALUE', `'list.0${at}'`, `config data with ${what}`)
  }
  for (const [what, data] of [['an array', [1]], ['a string', 'x'], ['a number', 5], ['a Map', new Map()], ['a class instance', new (class Data {})()]]) {
    rejects(['bad', data, { dir }], 'ERR_BAD_VALUE', 'plain object', `default object of ${what}`)
  }
  rejects(['bad', { deep: nested(100) }, { dir }], 'ERR_BAD_VALUE', 'nests deeper than 100 levels', 'a default object 101 levels deep')
  for (const [what, rpc, includes] of [['a number', 5, 'rpc must be'], ['an array', [() => 1], 'rpc must be'], ['a string handler', { a: 'x' }, 'rpc.a must be'], ['a nested number', { jobs: { add: () => 1, size: 3 } }, 'rpc.jobs.size must be']]) {
    rejects([{ name: 'bad', rpc, options: { dir } }], 'ERR_INVALID_ARG', includes, `rpc of ${what}`)
  }
  const badOptions = [
    ['a string', 'fast', 'options must be an object'],
    ['a number', 5, 'options must be an object'],
    ['an array', [], 'options must be an object'],
    ['a negative timeout', { timeout: -1 }, 'options.timeout'],
    ['a zero timeout', { timeout: 0 }, 'options.timeout'],
    ['a NaN timeout', { timeout: NaN }, 'options.timeout'],
    ['an infinite timeout', { timeout: Infinity }, 'options.timeout'],
    ['a string timeout', { timeout: '100' }, 'options.timeout'],
    ['a timeout beyond setTimeout', { timeout: 2 ** 31 }, 'options.timeout'],
    ['a string clientOnly', { clientOnly: 'yes' }, 'options.clientOnly'],
    ['a numeric serverOnly', { serverOnly: 1 }, 'options.serverOnly'],
    ['a string logEvents', { logEvents: 'no' }, 'options.logEvents'],
    ['clientOnly and serverOnly', { clientOnly: true, serverOnly: true }, 'exclude each other'],
    ['an empty dir', { dir: '' }, 'options.dir'],
    ['a numeric dir', { dir: 5 }, 'options.dir'],
    ['a numeric peer', { peer: 5 }, 'options.peer must be an object'],
    ['a string role list', { peer: { roles: 'writer' } }, 'options.peer.roles'],
    ['a numeric role', { peer: { roles: [1] } }, 'options.peer.roles'],
    ['zero writers', { network: { maxWriters: 0 } }, 'options.network.maxWriters'],
    ['fractional writers', { network: { maxWriters: 1.5 } }, 'options.network.maxWriters'],
    ['a string writer count', { network: { maxWriters: '2' } }, 'options.network.maxWriters'],
    ['a BigInt writer count', { network: { maxWriters: 2n } }, 'options.network.maxWriters must be a positive integer, not bigint'],
    ['a buffer budget below 1 MiB', { network: { maxBuffer: 1024 } }, 'options.network.maxBuffer must be a number of bytes of at least 1 MiB (1048576), not 1024'],
    ['a fractional buffer budget', { network: { maxBuffer: 2 ** 20 + 0.5 } }, 'options.network.maxBuffer'],
    ['a string buffer budget', { network: { maxBuffer: '256MB' } }, 'options.network.maxBuffer'],
    ['a string file', { file: './x.json' }, 'options.file must be'],
    ['a numeric file path', { file: { path: 5 } }, 'options.file must be'],
    ['an empty file path', { file: { path: '' } }, 'options.file must be'],
    ['a negative port', { server: { port: -1 } }, 'options.server must be'],
    ['a port past 65535', { server: { port: 70000 } }, 'options.server must be'],
    ['a string port', { server: { port: 'http' } }, 'options.server must be']
  ]
  for (const [what, options, includes] of badOptions) {
    rejects(['bad', {}, options], 'ERR_INVALID_ARG', includes, `options with ${what}`)
    rejects([{ name: 'bad', options }], 'ERR_INVALID_ARG', includes, `config options with ${what}`)
  }
  t.diagnostic(`${count} bad constructions`)
  // Rejected before the rendezvous directory was even created.
  assert.ok(!fs.existsSync(dir), 'no rendezvous directory was created')
  // The valid forms of the same options are accepted.
  const ok = new MemSync('ok', { deep: nested(98) }, { dir, timeout: 2 ** 31 - 1, peer: { roles: ['writer'] }, network: { maxWriters: 1, maxBuffer: 2 ** 20 }, file: { path: 'x.json' }, server: { port: 8080 } })
  assert.deepEqual(ok.data, { deep: nested(98) })
})
