// `data` cannot silently diverge (issue 15): a direct write is undone and reported with
// ERR_DIRECT_WRITE, and the process then agrees with the others again (docs/guarantees.md).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import memsync from '../index.js'
import { mulberry32 } from './support/generate-updates.mjs'
import { rendezvousDir, spawnPeer, uniqueName, withTimeout } from './support/peers.mjs'

const { MemSync, MemErrors } = memsync
const require = createRequire(import.meta.url)
const native = require('../native.js')
const { digest } = require('../lib/changes.js')
const { parseEvents } = require('../lib/events.js')

const nextError = (mem) => withTimeout(new Promise((resolve) => mem.once('error', resolve)), 5000, 'no error event for the direct write')

test('a direct write is restored from the replica and reported, and the processes agree again', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('direct')
  const a = new MemSync(name, { n: 1, list: ['a'], deep: { tags: ['t'] } }, { dir })
  t.after(() => a.stop())
  assert.equal(await a.start(), 'host')
  const b = await spawnPeer(t, name, dir, {}, 'b')
  await b.request('start')

  const reported = nextError(a)
  const held = a.data.list
  // Writes of every kind: a key, an array push, a nested array, a new key, a deletion.
  a.data.n = 99
  a.data.list.push('x')
  a.data.deep.tags.sort().push('u')
  a.data.extra = true
  delete a.data.deep
  const error = await reported
  assert.equal(error.code, MemErrors.ERR_DIRECT_WRITE, error.message)
  for (const path of ['n', 'list', 'extra', 'deep']) assert.match(error.message, new RegExp(`'${path}'`))
  assert.deepEqual(a.data, { n: 1, list: ['a'], deep: { tags: ['t'] } })
  assert.equal(a.data.list, held, 'an array the application holds is restored in place')

  // What the issue saw: after later patches, `a` held list ['y', 'x'] and b ['y'] for good.
  const arrived = withTimeout(new Promise((resolve) => a.observe('list', resolve)), 5000, 'the patch of b did not reach a')
  await b.request('patch', { update: { $push: { list: 'y' }, $inc: { n: 1 } } })
  await arrived
  const { data } = await b.request('state')
  assert.deepEqual(a.data, data)
  assert.deepEqual(a.data, { n: 2, list: ['a', 'y'], deep: { tags: ['t'] } })
})

test('observers get the live values, as before; only writes to them are undone', { timeout: 15000 }, async (t) => {
  const mem = new MemSync(uniqueName('observed'), { list: [3, 1, 2] }, { dir: rendezvousDir(t) })
  t.after(() => mem.stop())
  await mem.start()
  const seen = []
  mem.observe('list', (list) => seen.push(list))
  await mem.patch({ $push: { list: 0 } })
  assert.equal(seen[0], mem.data.list)
  const reported = nextError(mem)
  seen[0].sort()
  assert.equal((await reported).code, MemErrors.ERR_DIRECT_WRITE)
  assert.deepEqual(mem.data.list, [3, 1, 2, 0])
})

test('data read through the API is a plain object with Object.prototype, as in 0.5', () => {
  const mem = new MemSync(uniqueName('plain'), { a: { b: [1] } })
  assert.equal(Object.getPrototypeOf(mem.data), Object.prototype)
  assert.deepStrictEqual(mem.data, { a: { b: [1] } })
  assert.equal(Object.isFrozen(mem.data.a), false, 'not frozen: frozen arrays read 2.5-7x slower on Node 20 (docs/guarantees.md)')
})

// The check compares a digest of `data` with one of the replica's document and reads the whole
// document only when they differ: the two implementations (lib/changes.js, src/core/digest.rs)
// must agree on every document, or a check would find nothing where something differs, or read
// the whole document every time.
test('data and the replica digest every document alike', () => {
  const random = mulberry32(18)
  const pick = (list) => list[Math.floor(random() * list.length)]
  const leaves = [
    null, true, false, 0, -0, 1, -1, 0.1, 1e-300, 1.7976931348623157e308, 2 ** 53, 2 ** 53 + 2,
    -(2 ** 63), 2 ** 64 - 2 ** 11, '', 'a', 'é', '日本', '\u{1F600}', 'line\nbreak', '"quoted"'
  ]
  const keys = ['a', 'b', '0', '1', '10', '2', '__proto__', 'constructor', 'é', '\u{1F600}', 'k k']
  const generate = (depth) => {
    const roll = random()
    if (depth > 4 || roll < 0.4) return pick(leaves)
    if (roll < 0.7) return Array.from({ length: Math.floor(random() * 4) }, () => generate(depth + 1))
    const object = {}
    for (let i = Math.floor(random() * 5); i > 0; i--) {
      Object.defineProperty(object, pick(keys), { value: generate(depth + 1), enumerable: true, writable: true, configurable: true })
    }
    return object
  }
  // Integers past 2^53 as the replica reads them from a file or another language: exact, then
  // rounded to a double by JSON.parse and by the digest alike.
  const texts = ['{}', '{"big":18446744073709551615,"small":-9223372036854775808,"odd":9007199254740993}', '{"z":-0,"f":-0.0,"e":1E2}']
  for (let i = 0; i < 300; i++) texts.push(JSON.stringify({ root: generate(0), [pick(keys)]: generate(1) }))
  for (const text of texts) {
    const instance = native.createInstance(uniqueName('digest'), text, null, undefined)
    try {
      const [tag, a, b] = parseEvents(native.drainForCheck(instance, false)).pop()
      assert.equal(tag, native.eventTags().digest)
      assert.deepEqual(digest(JSON.parse(text)), [a, b], text)
    } finally {
      native.release(instance)
    }
  }
  assert.notDeepEqual(digest({ n: 1 }), digest({ n: NaN }))
  assert.notDeepEqual(digest({ n: null }), digest({ n: NaN }))
  assert.notDeepEqual(digest({ n: null }), digest({ n: undefined }))
  assert.notDeepEqual(digest({}), digest({ n: undefined }))
  assert.notDeepEqual(digest([null]), digest([undefined]))
})
