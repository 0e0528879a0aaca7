import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { WaitingPatches } = require('../lib/waiting.js')

// A model to compare with: a Map keeps insertion order and finds any key.
function compare (waiting, model) {
  assert.deepEqual(waiting.seqs(), [...model.keys()])
  const first = model.entries().next().value
  assert.deepEqual(waiting.oldest(), first)
}

test('waiting patches settle in any order, as a Map of them would', () => {
  // A seeded generator: the same sequence every run.
  let state = 12345
  const random = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31
    return state / 2 ** 31
  }
  const waiting = new WaitingPatches()
  const model = new Map()
  let next = 1
  for (let step = 0; step < 20000; step++) {
    const roll = random()
    if (roll < 0.5 || model.size === 0) {
      // Sequence numbers grow, with gaps (a patch that changed nothing has none).
      next += 1 + Math.floor(random() * 3)
      const waiter = { seq: next }
      waiting.add(next, waiter)
      model.set(next, waiter)
    } else if (roll < 0.85) {
      // The oldest, as the host orders them.
      const [seq, waiter] = model.entries().next().value
      assert.equal(waiting.take(seq), waiter)
      model.delete(seq)
    } else if (roll < 0.97) {
      // Any one: a rejection, or a timeout after a shorter one was set.
      const seqs = [...model.keys()]
      const seq = seqs[Math.floor(random() * seqs.length)]
      assert.equal(waiting.take(seq), model.get(seq))
      model.delete(seq)
    } else {
      // One that does not wait (settled already, or never added): nothing happens.
      assert.equal(waiting.take(next + 1), undefined)
      const settled = model.size > 0 ? [...model.keys()][0] - 1 : next
      if (!model.has(settled)) assert.equal(waiting.take(settled), undefined)
    }
    if (step % 97 === 0) compare(waiting, model)
  }
  compare(waiting, model)
  for (const seq of waiting.seqs()) {
    assert.equal(waiting.take(seq), model.get(seq))
    model.delete(seq)
  }
  compare(waiting, model)
  assert.equal(waiting.oldest(), undefined)
})

test('patches taken at the front for long, past every compaction, keep their order', () => {
  const waiting = new WaitingPatches()
  for (let seq = 1; seq <= 100000; seq++) {
    waiting.add(seq, { seq })
    if (seq > 10) assert.equal(waiting.take(seq - 10).seq, seq - 10)
  }
  assert.deepEqual(waiting.seqs(), Array.from({ length: 10 }, (_, i) => 99991 + i))
})

test('a patch older than the newest waiting one is refused', () => {
  const waiting = new WaitingPatches()
  waiting.add(5, {})
  assert.throws(() => waiting.add(5, {}), /patch 5 waits after patch 5/)
  assert.throws(() => waiting.add(3, {}), /patch 3 waits after patch 5/)
})
