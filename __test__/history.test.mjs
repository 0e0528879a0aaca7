// The history checker of the Redis fault rounds (support/history.mjs), on hand-made histories:
// ones that must pass, and for each rule one that must fail by it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkHistory, formatReport, parseId } from './support/history.mjs'

const ok = (id) => ({ id, status: 'ok' })
const rejected = (id, code = 'ERR_BAD_VALUE') => ({ id, status: 'rejected', code })
const unknown = (id) => ({ id, status: 'unknown' })
/** Two machines' replicas of one state. */
const replicas = (log, version = log.length, n = log.length) =>
  ['a0', 'a1', 'b0'].map((label) => ({ label, data: { log: [...log], n }, version }))

/** The rules a history fails, in the checker's order. */
const rulesBroken = (history) => checkHistory(history).failures.map((f) => f.rule)

test('parseId reads <origin>:<seq> and nothing else', () => {
  assert.deepEqual(parseId('w3:17'), { origin: 'w3', seq: 17 })
  assert.deepEqual(parseId('a:b:2'), { origin: 'a:b', seq: 2 })
  for (const bad of ['w3', ':1', 'w3:0', 'w3:01', 'w3:1.5', 'w3:', 3, null]) assert.equal(parseId(bad), null, String(bad))
})

test('passes: every acknowledged id once, in order, on equal replicas', () => {
  const report = checkHistory({
    durability: 'replicated',
    outcomes: [ok('w1:1'), ok('w2:1'), ok('w1:2'), ok('w2:2')],
    replicas: replicas(['w1:1', 'w2:1', 'w2:2', 'w1:2'])
  })
  assert.deepEqual(report.failures, [])
  assert.equal(report.ok, true)
  assert.deepEqual(report.counts, { replicas: 3, version: 4, entries: 4, ok: 4, rejected: 0, unknown: 0, unknownApplied: 0, lost: 0 })
})

test('passes: unknown ids at most once, rejected ones absent, versions past the log (refused entries count)', () => {
  const report = checkHistory({
    durability: 'replicated',
    outcomes: [ok('w1:1'), unknown('w1:2'), unknown('w1:3'), rejected('w1:4'), rejected('w2:1', 'ERR_TIMEOUT'), ok('w2:2')],
    replicas: replicas(['w1:1', 'w1:3', 'w2:1', 'w2:2'], 6)
  })
  assert.deepEqual(report.failures, [])
  assert.equal(report.counts.unknown, 3, 'ERR_TIMEOUT leaves the fate open: unknown')
  assert.equal(report.counts.unknownApplied, 2)
  assert.equal(report.counts.rejected, 1)
})

test("passes: a killed writer's ids without an outcome count as unknown", () => {
  const report = checkHistory({
    outcomes: [ok('w1:1'), ok('w2:1')],
    killed: ['w2'],
    replicas: replicas(['w1:1', 'w2:1', 'w2:2', 'w2:3'])
  })
  assert.deepEqual(report.failures, [])
  assert.equal(report.counts.unknownApplied, 2)
})

test('passes in the default mode with losses counted, not failed', () => {
  const report = checkHistory({
    outcomes: [ok('w1:1'), ok('w1:2'), ok('w1:3')],
    replicas: replicas(['w1:1', 'w1:3'])
  })
  assert.deepEqual(report.failures, [])
  assert.equal(report.counts.lost, 1)
  assert.match(formatReport(report), /3 acknowledged \(1 missing\)/)
})

test('fails replicas: a different version, or different data', () => {
  const versions = replicas(['w1:1'])
  versions[2].version = 2
  assert.deepEqual(rulesBroken({ outcomes: [ok('w1:1')], replicas: versions }), ['replicas'])
  const data = replicas(['w1:1', 'w1:2'])
  data[1].data.log.reverse()
  assert.deepEqual(rulesBroken({ outcomes: [ok('w1:1'), ok('w1:2')], replicas: data }), ['replicas'])
  assert.deepEqual(rulesBroken({ outcomes: [], replicas: [] }), ['replicas'])
})

test('passes replicas whose only difference is key order', () => {
  const [a, b] = replicas(['w1:1'])
  b.data = { n: 1, log: ['w1:1'] }
  assert.deepEqual(rulesBroken({ outcomes: [ok('w1:1')], replicas: [a, b] }), [])
})

test('fails shape: no log, or an entry that is not <origin>:<seq>', () => {
  assert.deepEqual(rulesBroken({ outcomes: [], replicas: [{ label: 'a', data: { n: 0 }, version: 0 }] }), ['shape'])
  assert.deepEqual(rulesBroken({ outcomes: [], killed: ['w1'], replicas: replicas(['w1:1', 'junk']) }), ['shape'])
})

test('fails counter: n differs from log.length', () => {
  assert.deepEqual(rulesBroken({ outcomes: [ok('w1:1')], replicas: replicas(['w1:1'], 1, 2) }), ['counter'])
})

test('fails duplicate: an acknowledged or unknown id twice, in either mode', () => {
  assert.deepEqual(rulesBroken({ outcomes: [ok('w1:1')], replicas: replicas(['w1:1', 'w1:1']) }), ['duplicate', 'order'])
  const report = checkHistory({ outcomes: [unknown('w1:1'), ok('w2:1')], replicas: replicas(['w1:1', 'w2:1', 'w1:1']) })
  assert.deepEqual(report.failures.map((f) => f.rule), ['duplicate', 'order'])
  assert.deepEqual(report.failures[0].ids, ['w1:1 x2'])
})

test('fails lost: an acknowledged id missing, in the replicated mode only', () => {
  const history = { outcomes: [ok('w1:1'), ok('w1:2')], replicas: replicas(['w1:2']) }
  assert.deepEqual(rulesBroken({ ...history, durability: 'replicated' }), ['lost'])
  assert.deepEqual(rulesBroken(history), [])
})

test('fails rejected: a rejected id present', () => {
  assert.deepEqual(rulesBroken({ outcomes: [ok('w1:1'), rejected('w1:2', 'ERR_STALE_WRITE')], replicas: replicas(['w1:1', 'w1:2']) }), ['rejected'])
})

test("fails order: an origin's ids out of seq order", () => {
  const report = checkHistory({ outcomes: [ok('w1:1'), ok('w1:2'), ok('w2:1')], replicas: replicas(['w1:2', 'w2:1', 'w1:1']) })
  assert.deepEqual(report.failures.map((f) => f.rule), ['order'])
  assert.match(report.failures[0].message, /w1:1 after w1:2/)
})

test('fails unissued: an id of a live writer with no outcome, or of a writer never seen', () => {
  assert.deepEqual(rulesBroken({ outcomes: [ok('w1:1')], replicas: replicas(['w1:1', 'w1:2']) }), ['unissued'])
  assert.deepEqual(rulesBroken({ outcomes: [ok('w1:1')], killed: ['w2'], replicas: replicas(['w1:1', 'w9:1']) }), ['unissued'])
})

test('the report names each broken rule and samples at most 10 ids', () => {
  const log = Array.from({ length: 30 }, (_, i) => `w1:${i + 1}`)
  const report = checkHistory({ durability: 'replicated', outcomes: [...log, 'w1:31'].map(ok), replicas: replicas(log.slice(0, 5)) })
  assert.deepEqual(report.failures.map((f) => f.rule), ['lost'])
  assert.equal(report.failures[0].count, 26)
  assert.equal(report.failures[0].ids.length, 10)
  assert.match(formatReport(report), /^FAIL lost \(every acknowledged id present \(durability: replicated\)\): acknowledged ids missing: w1:6, .*, \.\.\. \(26\)\n/)
})
