// The replica's events cross as one flat array of tokens (src/core/events.rs) that
// lib/events.js splits into the arrays the facade reads: every kind of change, lists of any
// length, and events whose field count varies.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const native = require('../native.js')
const { TAGS, parseEvents } = require('../lib/events.js')
const { ChangeList, LiveObject } = require('../lib/changes.js')
const tags = native.eventTags()

test("a patch's own event carries every kind of change as the change list of lib/changes.js", () => {
  const instance = native.createInstance(`events-${process.pid}`, '{"a":{"b":1},"list":[1,2,3,2],"gone":true,"empty":""}', null, null)
  try {
    const cases = [
      [{ $set: { 'a.c.d': [1, { e: null }], 'list.5': 'x' } }, [['s', ['a', 'c', 'd'], [1, { e: null }]], ['s', ['list', 5], 'x']]],
      [{ $unset: { gone: '' } }, [['u', ['gone']]]],
      [{ $pull: { list: 2 } }, [['p', ['list'], 3, 1, []], ['p', ['list'], 1, 1, []]]],
      [{ $push: { list: { $each: [7, [8]], $position: 0 } } }, [['p', ['list'], 0, 0, [7, [8]]]]],
      [{ $rename: { 'a.b': 'z.y' } }, [['m', ['a', 'b'], ['z', 'y']]]],
      // A key that reads as a number stays a string key of the object; an array index is a number.
      [{ $set: { 'a.5': true } }, [['s', ['a', '5'], true]]]
    ]
    for (const [update, changes] of cases) {
      const events = parseEvents(native.patch(instance, JSON.stringify(update)))
      const own = events.at(-1)
      assert.equal(own[0], tags.own)
      assert.equal(own.length, 5, JSON.stringify(update))
      assert.deepEqual(own[3].toArray(), changes, JSON.stringify(update))
    }
    const unchanged = parseEvents(native.patch(instance, '{"$set":{"empty":""}}')).at(-1)
    assert.deepEqual(unchanged, [tags.own, 0, 0, null, 0])
  } finally {
    native.release(instance)
  }
})

test('a drain of several events, lists and field counts of any length, parses into one array each', () => {
  const [OWN, CHANGES, , , ACCEPTED] = TAGS
  const received = { version: 4, timestamp: 1, patch: { $inc: { n: 1 } } }
  const tokens = [
    tags.role, 1, 'host',
    CHANGES, 4, 1, received, 2, 's', 1, 'n', 5, 'u', 2, 'a', 0,
    ACCEPTED, 3, 1, 2, 3,
    tags.reply, 2, 7, null,
    tags.reply, 3, 8, null, [1, 'r'],
    CHANGES, 5, 0, 0,
    ACCEPTED, 0,
    OWN, 9, 0, 1, 1, 'm', 1, 'x', 0
  ]
  const listed = (event) => event.map((field) => field instanceof ChangeList ? field.toArray() : field)
  assert.deepEqual(parseEvents(JSON.stringify(tokens)).map(listed), [
    [tags.role, 'host'],
    [CHANGES, 4, [['s', ['n'], 5], ['u', ['a', 0]]], [received]],
    [ACCEPTED, [1, 2, 3]],
    [tags.reply, 7, null],
    [tags.reply, 8, null, [1, 'r']],
    [CHANGES, 5, [], []],
    [ACCEPTED, []],
    [OWN, 9, 0, [['m', ['x'], []]], 1]
  ])
  assert.deepEqual(parseEvents('[]'), [])
  assert.throws(() => parseEvents(JSON.stringify([OWN, 1, 0, 0, 1, 'q', 0])), /unknown change 'q'/)
})

test("the live object, changed by each patch's change list read in place, holds the replica's document", () => {
  const start = { list: [1, 2, 3, 2, 4, 2, 5], nested: { a: [{ x: 1 }, { x: 2 }] }, s: 'x', n: 1 }
  const instance = native.createInstance(`events-live-${process.pid}`, JSON.stringify(start), null, null)
  const live = new LiveObject(structuredClone(start))
  const big = Array.from({ length: 25000 }, (_, i) => i)
  const updates = [
    // A $pull's removals from one array, each below the previous, applied as one run.
    { $pull: { list: 2 } },
    { $pull: { 'nested.a': { x: 1 } }, $push: { list: { $each: [9, 8], $position: 1 } } },
    { $set: { 'deep.er.est': [1], 'list.12': 'far', ['__proto__']: { polluted: true } } },
    { $rename: { 'deep.er': 'moved.here', s: 'n2' }, $unset: { n: '' } },
    { $push: { big: { $each: big } } },
    { $pullAll: { big: [0, 10, 24999] }, $pop: { list: -1 } },
    { $inc: { 'moved.here.count': 2 }, $addToSet: { 'nested.a': 'y' } }
  ]
  try {
    for (const update of updates) {
      const own = parseEvents(native.patch(instance, JSON.stringify(update))).at(-1)
      assert.ok(own[3] instanceof ChangeList, JSON.stringify(update))
      live.apply(own[3])
      const [, document] = parseEvents(native.drainForCheck(instance, true)).pop()
      assert.deepEqual(live.root, document, JSON.stringify(update).slice(0, 200))
    }
    assert.equal({}.polluted, undefined)
    assert.equal(live.root.big.length, 24997)
  } finally {
    native.release(instance)
  }
})
