// The JSON text of what crosses to the native side (lib/json.js): small plain values take a walk
// that encodes and checks them at once, everything else JSON.stringify and the checking walk. Both
// must write exactly what JSON.stringify writes, undefined fields of an update as null.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

import memsync from '../index.js'

const require = createRequire(import.meta.url)
const { toJson } = require('../lib/json.js')
const { MemSync } = memsync

const undefinedAsNull = (key, value) => value === undefined ? null : value

// A small seeded generator (mulberry32), so that a failure names a case that can be run again.
function random (seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const STRING_PARTS = ['a', 'key', '"', '\\', '\n', '\u0000', '\u001f', '\u007f', 'é', '\u2028', '😀', ' ', '$inc', '0', '12', '__proto__']
const NUMBERS = [0, -0, 1, -1, 0.5, 1e21, 1e-7, 5e-324, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, -123.456]

function generate (next, depth) {
  const pick = (list) => list[Math.floor(next() * list.length)]
  const string = () => Array.from({ length: Math.floor(next() * 4) }, () => pick(STRING_PARTS)).join('')
  const kind = depth === 0 ? Math.floor(next() * 5) : Math.floor(next() * 8)
  switch (kind) {
    case 0: return string()
    case 1: return pick(NUMBERS)
    case 2: return next() < 0.5
    case 3: return null
    case 4: return undefined
    case 5: return Array.from({ length: Math.floor(next() * 4) }, () => generate(next, depth - 1))
    default: {
      const object = next() < 0.1 ? Object.create(null) : {}
      for (let i = Math.floor(next() * 4); i > 0; i--) object[string()] = generate(next, depth - 1)
      return object
    }
  }
}

test('toJson writes what JSON.stringify writes, for generated values', () => {
  const next = random(0x5eed)
  for (let i = 0; i < 5000; i++) {
    const value = { field: generate(next, 4) }
    assert.equal(toJson(value, 'The update', 100, Infinity, true), JSON.stringify(value, undefinedAsNull), `case ${i}: ${JSON.stringify(value, undefinedAsNull)}`)
    // Without nullForUndefined, an undefined anywhere is refused, naming where.
    let plain
    try {
      plain = toJson(value, 'The value')
    } catch (error) {
      assert.equal(error.code, 'ERR_BAD_VALUE')
      assert.match(error.message, /holds undefined at 'field/)
      continue
    }
    assert.equal(plain, JSON.stringify(value), `case ${i}`)
  }
})

test('toJson hands what its quick walk does not take to JSON.stringify, with the same text or error', () => {
  const long = Array.from({ length: 1000 }, (_, i) => ({ i, s: `item ${i}` }))
  assert.equal(toJson({ long }, 'The value'), JSON.stringify({ long }))
  assert.equal(toJson({ when: new Date(0), n: Object(5) }, 'The value'), '{"when":"1970-01-01T00:00:00.000Z","n":5}')
  class Money { toJSON () { return '5 EUR' } }
  assert.equal(toJson({ price: new Money() }, 'The value'), '{"price":"5 EUR"}')
  for (const [value, message] of [
    [{ a: NaN }, /holds NaN at 'a'/],
    [{ a: { b: new Map() } }, /holds a Map at 'a\.b'/],
    [{ a: () => {} }, /holds a function at 'a'/],
    [{ a: 'lone \ud800' }, /not well-formed/]
  ]) {
    assert.throws(() => toJson(value, 'The value'), (error) => error.code === 'ERR_BAD_VALUE' && message.test(error.message))
  }
  let deep = 1
  for (let i = 0; i < 120; i++) deep = { d: deep }
  assert.throws(() => toJson(deep, 'The update', 100), /nests deeper than 100 levels/)
  // A toJSON added to Object.prototype is called by JSON.stringify on every object: honoured.
  Object.prototype.toJSON = function () { return 'patched' } // eslint-disable-line no-extend-native
  try {
    assert.equal(toJson({ a: 1 }, 'The value'), '"patched"')
  } finally {
    delete Object.prototype.toJSON
  }
})

test('updates with escapes, unicode and awkward keys reach data as written', { timeout: 10000 }, async (t) => {
  const mem = new MemSync(`json-${process.pid}`, {})
  t.after(() => mem.stop())
  await mem.start()
  const value = { 'quote"d': 'line\nbreak \\ tab\t', 'é😀': ['\u0000', -0, 1e21, null, { '': true }], 12: 'twelve', nested: { __proto__: null, k: 'v' } }
  await mem.patch({ $set: { value } })
  assert.deepEqual(mem.data.value, JSON.parse(JSON.stringify(value)))
})

// The addon reads an update of up to about 500 bytes on its stack and a longer one from the heap
// (src/node/direct.rs): every length around that edge, with characters of 1 to 4 bytes at the end,
// arrives whole.
test('updates of every length around the addon\'s stack buffer arrive whole', { timeout: 20000 }, async (t) => {
  const mem = new MemSync(`json-edge-${process.pid}`, {})
  t.after(() => mem.stop())
  await mem.start()
  for (const tail of ['a', 'é', '€', '😀']) {
    for (let length = 470; length < 530; length++) {
      const value = 'x'.repeat(length) + tail
      await mem.patch({ $set: { value } })
      assert.equal(mem.data.value, value, `${length} bytes, then ${tail}`)
    }
  }
})
