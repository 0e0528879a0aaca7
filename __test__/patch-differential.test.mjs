// Differential test: memsync's patch engine against mingo 7 on ~2,400 generated, successful, well-typed
// (document, update) pairs covering every operator and path shape (see support/generate-updates.mjs, whose header
// lists where mingo is not a good oracle and what is therefore not generated).
//
//   node --test __test__/patch-differential.test.mjs
//   MEMSYNC_DIFF_SEED=1234 node --test __test__/patch-differential.test.mjs     # another seed
//   MEMSYNC_DIFF_CASE=517 ...                                                  # only case #517 of that seed
//
// On a mismatch the failure prints the seed, the case number, the document, the update and both results.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { update as mingoApply } from 'mingo/updater'

import memsync from '../index.js'
import {
  CATEGORY_NAMES,
  DEFAULT_COUNT,
  DEFAULT_SEED,
  OPERATOR_GROUPS,
  REQUIRED_TAGS,
  checkCase,
  expectedShapes,
  generateCases,
  tally,
} from './support/generate-updates.mjs'

const { MemSync } = memsync

const SEED = process.env.MEMSYNC_DIFF_SEED ? Number(process.env.MEMSYNC_DIFF_SEED) >>> 0 : DEFAULT_SEED
const ONLY = process.env.MEMSYNC_DIFF_CASE === undefined ? null : Number(process.env.MEMSYNC_DIFF_CASE)
const MIN_COMPARED = 2000
const MIN_PER_CATEGORY = 20
const MIN_PER_TAG = 5
const CONCURRENCY = 8
const MAX_REPORTED = 5

const cases = generateCases({ seed: SEED, count: DEFAULT_COUNT })
console.log(`patch-differential: seed ${SEED} (0x${SEED.toString(16)}), ${cases.length} cases; ` +
  `reproduce with MEMSYNC_DIFF_SEED=${SEED}`)

// ------------------------------------------------------------------ comparison helpers

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

function isPlainObject (v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

/**
 * Deep equality that ignores object key order and compares numbers by value (1 == 1.0, 0 == -0).
 * Returns null when equal, else the path of the first difference. Array holes and `undefined` never equal null.
 */
function diff (actual, expected, path = '$') {
  if (typeof expected === 'number') {
    return typeof actual === 'number' && actual === expected ? null : path
  }
  if (expected === null || typeof expected !== 'object') {
    return actual === expected ? null : path
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return path
    if (actual.length !== expected.length) return `${path}.length`
    for (let i = 0; i < expected.length; i++) {
      if (!(i in actual)) return `${path}[${i}] (hole)`
      const d = diff(actual[i], expected[i], `${path}[${i}]`)
      if (d) return d
    }
    return null
  }
  if (!isPlainObject(actual)) return `${path} (not a plain object)`
  const ka = Object.keys(actual).sort()
  const ke = Object.keys(expected).sort()
  if (ka.length !== ke.length || ka.some((k, i) => k !== ke[i])) {
    return `${path} keys [${ka}] vs [${ke}]`
  }
  for (const k of ke) {
    const d = diff(actual[k], expected[k], `${path}.${k}`)
    if (d) return d
  }
  return null
}

/** Every [parent, key] a path (with `$[]` and numeric components) designates in `root`. */
function locations (root, path) {
  let nodes = [[null, null, root]]
  for (const comp of path.split('.')) {
    const next = []
    for (const [, , node] of nodes) {
      if (node === null || typeof node !== 'object') continue
      if (comp === '$[]') {
        if (Array.isArray(node)) node.forEach((v, i) => next.push([node, i, v]))
      } else if (Array.isArray(node)) {
        if (/^\d+$/.test(comp) && Number(comp) < node.length) next.push([node, Number(comp), node[Number(comp)]])
      } else if (Object.hasOwn(node, comp)) {
        next.push([node, comp, node[comp]])
      }
    }
    nodes = next
  }
  return nodes.map(([parent, key]) => [parent, key])
}

/**
 * $currentDate values cannot be compared (clock, and mingo stores a Date): check memsync's form — an ISO-8601
 * UTC string with milliseconds for dates, integer epoch milliseconds for timestamps — and the time window, then
 * put the same placeholder in both results. A value of the wrong form is left as is, so the comparison fails.
 */
function neutraliseDates (results, mingoResult, dates, from, to) {
  for (const { path, type } of dates) {
    for (const [parent, key] of locations(mingoResult, path)) parent[key] = `<$currentDate ${type}>`
    for (const result of results) {
      for (const [parent, key] of locations(result, path)) {
        const v = parent[key]
        const ms = type === 'date' ? (typeof v === 'string' && ISO_DATE.test(v) ? Date.parse(v) : NaN) : v
        if (Number.isInteger(ms) && ms >= from - 1000 && ms <= to + 1000) parent[key] = `<$currentDate ${type}>`
      }
    }
  }
}

const json = (v) => JSON.stringify(v)

function describe (c, memLive, memJson, expected, where) {
  return [
    `case #${c.index} [${c.category} @ ${c.shape}] (seed ${SEED}; rerun: MEMSYNC_DIFF_SEED=${SEED} MEMSYNC_DIFF_CASE=${c.index})`,
    `  first difference: ${where}`,
    `  doc:     ${json(c.doc)}`,
    `  update:  ${json(c.update)}` + (json(c.update) === json(c.mingoUpdate) ? '' : `   (mingo: ${json(c.mingoUpdate)})`),
    `  memsync: ${memLive instanceof Error ? `threw ${memLive.code ?? ''} ${memLive.message}` : json(memLive)}`,
    ...(memJson && json(memJson) !== json(memLive) ? [`  memsync (JSON round trip): ${json(memJson)}`] : []),
    `  mingo:   ${json(expected)}`,
  ].join('\n')
}

// ------------------------------------------------------------------ the two engines

function runMingo (c) {
  const doc = structuredClone(c.doc)
  mingoApply(doc, structuredClone(c.mingoUpdate))
  // JSON normal form: Dates become ISO strings, array holes become null.
  return JSON.parse(JSON.stringify(doc))
}

async function runMemsync (c) {
  const mem = new MemSync(`diff-${process.pid}-${c.index}`, structuredClone(c.doc))
  await mem.start()
  try {
    const from = Date.now()
    await mem.patch(structuredClone(c.update))
    const to = Date.now()
    // Snapshots taken while running: `live` keeps holes/undefined/prototypes as they are in mem.data.
    return { live: structuredClone(mem.data), plain: isPlainObject(mem.data), json: JSON.parse(JSON.stringify(mem.data)), from, to }
  } finally {
    await mem.stop()
  }
}

let compared = 0

/** Runs the cases through both engines; returns the mismatch reports. */
async function compare (list) {
  const failures = []
  let next = 0
  async function worker () {
    while (next < list.length) {
      const c = list[next++]
      let expected
      try {
        expected = runMingo(c)
      } catch (err) {
        failures.push(`case #${c.index} [${c.category}]: mingo threw ${err.message} (generator bug)\n  doc: ${json(c.doc)}\n  update: ${json(c.mingoUpdate)}`)
        continue
      }
      let mem
      try {
        mem = await runMemsync(c)
      } catch (err) {
        failures.push(describe(c, err, null, expected, 'memsync threw'))
        continue
      }
      neutraliseDates([mem.live, mem.json], expected, c.dates, mem.from, mem.to)
      const where = (mem.plain ? null : '$ (mem.data is not a plain object)') ??
        diff(mem.live, expected) ?? diff(mem.json, expected)
      if (where) failures.push(describe(c, mem.live, mem.json, expected, where))
      compared++
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  return failures
}

// ------------------------------------------------------------------ tests

test('generator: deterministic and covers every operator, path shape and category', () => {
  assert.deepEqual(generateCases({ seed: SEED, count: 50 }), cases.slice(0, 50), 'same seed, same cases')
  assert.ok(cases.length >= MIN_COMPARED, `${cases.length} cases`)
  const { categories, tags, shapes } = tally(cases)
  for (const name of CATEGORY_NAMES) {
    assert.ok((categories[name] ?? 0) >= MIN_PER_CATEGORY, `category ${name}: ${categories[name] ?? 0} cases`)
  }
  for (const tag of REQUIRED_TAGS) {
    assert.ok((tags[tag] ?? 0) >= MIN_PER_TAG, `path shape ${tag}: ${tags[tag] ?? 0} cases`)
  }
  for (const s of expectedShapes()) assert.ok((shapes[s] ?? 0) >= 1, `${s}: never generated`)
  for (const c of cases) {
    assert.equal(json(JSON.parse(json(c.update))), json(c.update), `case #${c.index}: the update is JSON`)
    assert.equal(json(JSON.parse(json(c.doc))), json(c.doc), `case #${c.index}: the document is JSON`)
    // every path viable, every target well-typed: the case must succeed in memsync/MongoDB
    assert.deepEqual(checkCase(c), [], `case #${c.index}: ${json(c.doc)} ${json(c.update)}`)
  }
})

test('mingo oracle: applies every case, leaves no-ops alone and mostly changes the rest', () => {
  const changed = {}
  for (const c of cases) {
    let result
    assert.doesNotThrow(() => { result = runMingo(c) }, `case #${c.index} [${c.category}]: ${json(c.doc)} ${json(c.mingoUpdate)}`)
    const didChange = diff(result, JSON.parse(json(c.doc))) !== null
    if (c.op === 'noop') assert.equal(didChange, false, `no-op case #${c.index} changed: ${json(c.update)}`)
    changed[c.category] = (changed[c.category] ?? 0) + (didChange ? 1 : 0)
  }
  const { categories } = tally(cases)
  for (const name of CATEGORY_NAMES) {
    if (name === 'noop' || name === '$addToSet:permuted-object') continue // no change by design
    assert.ok(changed[name] / categories[name] >= 0.1, `${name}: only ${changed[name]}/${categories[name]} cases change the document`)
  }
})

for (const group of OPERATOR_GROUPS) {
  const list = cases.filter((c) => c.op === group && (ONLY === null || c.index === ONLY))
  test(`memsync matches mingo: ${group} (${list.length} cases)`, { timeout: 60_000 }, async () => {
    const failures = await compare(list)
    if (failures.length) {
      assert.fail(`${failures.length} of ${list.length} ${group} cases differ from mingo (seed ${SEED}); ` +
        `first ${Math.min(MAX_REPORTED, failures.length)}:\n\n${failures.slice(0, MAX_REPORTED).join('\n\n')}`)
    }
  })
}

test(`compared at least ${MIN_COMPARED} pairs`, { skip: ONLY !== null && 'single case run' }, () => {
  console.log(`patch-differential: ${compared} pairs compared (seed ${SEED})`)
  assert.ok(compared >= MIN_COMPARED, `only ${compared} pairs compared`)
})
