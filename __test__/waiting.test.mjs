import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { WaitingPatches } = require('../lib/waiting.js')

// A model to compare with: a Map keeps insertion order and finds any key.
function compare (waiting, model) {
  assert.deepEqual(waiting.seqs(), [...model.keys()])
  const first = model.entries().next().value
  assert.equal(waiting.oldest(), first?.[0])
  assert.equal(waiting.oldestDeadline(), first?.[1].deadline)
}

// A waiting patch of the model: what its promise's functions were called with, in `settled`.
function patch (seq, settled) {
  return {
    deadline: seq * 10 + 0.5,
    resolve: (...args) => settled.push([seq, 'resolved', ...args]),
    reject: (error) => settled.push([seq, 'rejected', error])
  }
}

const add = (waiting, seq, entry) => waiting.add(seq, entry.resolve, entry.reject, entry.deadline)

test('waiting patches settle in any order, as a Map of them would', () => {
  // A seeded generator: the same sequence every run.
  let state = 12345
  const random = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31
    return state / 2 ** 31
  }
  const waiting = new WaitingPatches()
  const model = new Map()
  const settled = []
  const expect = []
  let next = 1
  // The last patch settled anywhere: a hole in the arrays until the front passes it.
  let hole
  for (let step = 0; step < 20000; step++) {
    const roll = random()
    if (roll < 0.5 || model.size === 0) {
      // Sequence numbers grow, with gaps (a patch that changed nothing has none).
      next += 1 + Math.floor(random() * 3)
      const entry = patch(next, settled)
      add(waiting, next, entry)
      model.set(next, entry)
    } else if (roll < 0.85) {
      // The oldest, as the host orders them.
      const [seq] = model.entries().next().value
      assert.equal(waiting.settle(seq), true)
      expect.push([seq, 'resolved'])
      model.delete(seq)
    } else if (roll < 0.97) {
      // Any one: a rejection, or a timeout after a shorter one was set.
      const seqs = [...model.keys()]
      const seq = seqs[Math.floor(random() * seqs.length)]
      const error = new Error(`refused ${seq}`)
      assert.equal(waiting.settle(seq, error), true)
      expect.push([seq, 'rejected', error])
      model.delete(seq)
      hole = seq
    } else {
      // One that does not wait (settled already, or never added): nothing happens.
      assert.equal(waiting.settle(next + 1), false)
      const gone = model.size > 0 ? [...model.keys()][0] - 1 : next
      if (!model.has(gone)) assert.equal(waiting.settle(gone, new Error('late')), false)
      if (hole !== undefined) assert.equal(waiting.settle(hole), false)
    }
    if (step % 97 === 0) {
      compare(waiting, model)
      assert.deepEqual(settled, expect)
    }
  }
  compare(waiting, model)
  for (const seq of waiting.seqs()) {
    assert.equal(waiting.settle(seq), true)
    expect.push([seq, 'resolved'])
    model.delete(seq)
  }
  compare(waiting, model)
  assert.deepEqual(settled, expect)
  assert.equal(waiting.oldest(), undefined)
  assert.equal(waiting.oldestDeadline(), undefined)
})

test('patches taken at the front for long, past every compaction, keep their order', () => {
  const waiting = new WaitingPatches()
  const settled = []
  for (let seq = 1; seq <= 100000; seq++) {
    add(waiting, seq, patch(seq, settled))
    if (seq > 10) assert.equal(waiting.settle(seq - 10), true)
  }
  assert.deepEqual(settled.map(([seq]) => seq), Array.from({ length: 99990 }, (_, i) => i + 1))
  assert.deepEqual(waiting.seqs(), Array.from({ length: 10 }, (_, i) => 99991 + i))
  assert.equal(waiting.oldestDeadline(), 99991 * 10 + 0.5)
})

test('a patch older than the newest waiting one is refused', () => {
  const waiting = new WaitingPatches()
  add(waiting, 5, patch(5, []))
  assert.throws(() => add(waiting, 5, patch(5, [])), /patch 5 waits after patch 5/)
  assert.throws(() => add(waiting, 3, patch(3, [])), /patch 3 waits after patch 5/)
})
