// The patch engine (criterion, `cargo bench --bench patch`) beside mingo applying the same updates
// to the same documents in Node, in the same run. Keep the cases in step with benches/patch.rs.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { update as mingoUpdate } from 'mingo/updater'
import { summarize } from './measure.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

function profile () {
  return {
    _id: 'u-1842',
    name: { first: 'Ada', last: 'Lovelace' },
    email: 'ada@example.com',
    visits: 41,
    score: 12.5,
    best: 90,
    worst: 12,
    tags: ['admin', 'beta', 'dark-mode'],
    history: [
      { at: '2024-04-30T10:00:00.000Z', page: '/home' },
      { at: '2024-04-30T10:05:00.000Z', page: '/settings' },
      { at: '2024-04-30T10:09:00.000Z', page: '/billing' }
    ],
    settings: { theme: 'dark', lang: 'en', notifications: { email: true, sms: false } },
    legacyField: 'old',
    flags: [1, 2, 3, 4, 5, 6, 7, 8]
  }
}

const mixed = {
  $set: { 'settings.theme': 'light' },
  $unset: { legacyField: '' },
  $inc: { visits: 1 },
  $mul: { score: 1.5 },
  $min: { worst: 3 },
  $max: { best: 97 },
  $push: { history: { at: '2024-05-01T12:00:00.000Z', page: '/home' } },
  $addToSet: { tags: 'early-adopter' },
  $pull: { flags: { $gte: 6 } },
  $rename: { email: 'contact.email' }
}

// Each case: a document factory, the update, and whether every call needs a fresh document
// (prepared untimed, as criterion's iter_batched does).
const cases = [
  { id: 'inc_1000_fields', label: '$inc on a 1,000-field object', doc: () => Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`f${i}`, i])), update: { $inc: { f500: 1 } } },
  { id: 'set_nested', label: '$set of a nested path', doc: () => ({ a: { b: { c: { d: 0, e: 'x' }, f: [1, 2, 3] }, g: true }, h: 1 }), update: { $set: { 'a.b.c.d': 42 } }, fresh: true },
  { id: 'push_100k', label: '$push onto a 100,000-element array', doc: () => ({ items: Array.from({ length: 100000 }, (_, i) => ({ id: i })), n: 0 }), update: { $push: { items: { id: 1, tag: 'new' } } }, trimTo: 100000 },
  { id: 'push_1k', label: '$push onto a 1,000-element array', doc: () => ({ items: Array.from({ length: 1000 }, (_, i) => ({ id: i })), n: 0 }), update: { $push: { items: { id: 1, tag: 'new' } } }, trimTo: 1000 },
  { id: 'mixed_10', label: 'a 10-operator mixed update', doc: profile, update: mixed, fresh: true }
]

function mingoNsPerUpdate (benchCase, { samples, iterations }) {
  const perCall = []
  const shared = benchCase.fresh ? null : benchCase.doc()
  for (let s = 0; s <= samples; s++) {
    const docs = benchCase.fresh ? Array.from({ length: iterations }, benchCase.doc) : null
    const start = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) {
      const doc = docs ? docs[i] : shared
      mingoUpdate(doc, benchCase.update)
      if (benchCase.trimTo && i % 100 === 99) doc.items.length = benchCase.trimTo
    }
    const elapsed = Number(process.hrtime.bigint() - start)
    if (s > 0) perCall.push(elapsed / iterations) // the first sample warms up
  }
  return summarize(perCall)
}

function criterionEstimate (id) {
  const file = `${root}/target/criterion/patch/${id}/new/estimates.json`
  const estimates = JSON.parse(readFileSync(file, 'utf8'))
  return {
    median: estimates.median.point_estimate,
    min: estimates.median.confidence_interval.lower_bound,
    max: estimates.median.confidence_interval.upper_bound
  }
}

export function benchEngine ({ quick }) {
  const timing = quick ? ['--warm-up-time', '1', '--measurement-time', '2'] : []
  const cargo = spawnSync('cargo', ['bench', '--no-default-features', '--bench', 'patch', '--', ...timing], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit']
  })
  if (cargo.status !== 0) throw new Error('cargo bench failed')
  return cases.map((benchCase) => {
    const memsync = criterionEstimate(benchCase.id)
    const mingo = mingoNsPerUpdate(benchCase, { samples: quick ? 5 : 15, iterations: quick ? 2000 : 10000 })
    return { id: benchCase.id, label: benchCase.label, memsync, mingo, speedup: mingo.median / memsync.median }
  })
}
