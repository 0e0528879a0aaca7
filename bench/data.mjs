// What keeping `mem.data` from silent divergence costs (docs/guarantees.md), for the options measured:
// reads of each beside a plain object, and the cost per applied change of the chosen design
// (lib/changes.js: plain objects changed in place, checked against the replica's document by
// digest) beside copy-on-write (copying and freezing the touched container, what freezing would
// need); then what one check costs: the digest of `data` in JS, and the replica's digest, which
// holds its lock. Run: node bench/data.mjs [--quick] (the addon must be built)
import { createRequire } from 'node:module'
import { summarize, formatNs } from './measure.mjs'

const require = createRequire(import.meta.url)
const { ChangeList, LiveObject, digest } = require('../lib/changes.js')
const native = require('../native.js')

const quick = process.argv.includes('--quick')
const SAMPLES = quick ? 5 : 11
const READS = quick ? 2e6 : 1e7

// From JSON, as memsync's data is: an object literal would share its allocation site (and the
// elements kinds it learned) between the options.
const small = () => JSON.parse('{"n":1,"done":3,"user":{"name":"a","age":1,"tags":["x","y"]},"list":[1,2,3,4,5,6]}')
const keys = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))
const range = (n) => Array.from({ length: n }, (_, i) => i)

function freezeDeep (value) {
  if (value !== null && typeof value === 'object') {
    for (const key of Object.keys(value)) freezeDeep(value[key])
    Object.freeze(value)
  }
  return value
}

function readOnlyRoot (data) {
  const root = {}
  for (const key of Object.keys(data)) Object.defineProperty(root, key, { value: data[key], enumerable: true, configurable: true })
  return root
}

const refuse = () => { throw new TypeError('read-only') }

const READ_OPTIONS = [
  ['plain object (before)', () => small()],
  ['chosen: plain, checked by digest', () => new LiveObject(small()).root],
  ['read-only root properties', () => readOnlyRoot(small())],
  ['frozen below a read-only root', () => readOnlyRoot(freezeDeep(small()))],
  ['Proxy refusing writes', () => new Proxy(small(), { set: refuse, defineProperty: refuse, deleteProperty: refuse })],
  ['getters on the root', () => { const store = small(); return Object.defineProperties({}, Object.fromEntries(Object.keys(store).map((key) => [key, { get: () => store[key], enumerable: true }]))) }]
]

// Reads as user code writes them: a root key, a nested key, an array element, and iterating an
// array. One function per option: a shared one would turn polymorphic and favour whichever ran first.
const READS_OF = [
  ['d.n', 'd.n'],
  ['d.user.age', 'd.user.age'],
  ['d.list[i % 6]', 'd.list[i % 6]'],
  ['for (x of d.list), per loop of 6', '(() => { let t = 0; for (const x of d.list) t += x; return t })()']
]

function benchReads () {
  return READS_OF.map(([label, expression]) => {
    const options = READ_OPTIONS.map(([name, make], index) => ({
      name,
      object: make(),
      // The comment makes each source distinct: V8 shares compiled code between equal sources.
      read: new Function('d', 'n', `// ${index}\nlet s = 0; for (let i = 0; i < n; i++) s += ${expression}; return s`),
      ns: []
    }))
    const reads = expression.startsWith('(') ? READS / 10 : READS
    let sink = 0
    // Interleaved samples, the first a warm-up, so that machine noise hits every option alike.
    for (let s = 0; s <= SAMPLES; s++) {
      for (const option of options) {
        const start = process.hrtime.bigint()
        sink += option.read(option.object, reads)
        if (s > 0) option.ns.push(Number(process.hrtime.bigint() - start) / reads)
      }
    }
    if (sink === 0) throw new Error('unreachable: reads were optimised away')
    const medians = options.map((option) => summarize(option.ns).median)
    return { label, options: options.map((option, i) => ({ name: option.name, median: medians[i], ratio: medians[i] / medians[0] })) }
  })
}

// A bare assignment per change ('s' changes only): the least applying a change can cost.
function applyInPlace (root, changes) {
  for (const [, path, value] of changes) {
    let node = root
    for (let i = 0; i < path.length - 1; i++) node = node[path[i]]
    node[path[path.length - 1]] = value
  }
}

// Copy-on-write, reduced to its cost: the touched container (the parent of the changed key) is
// copied and frozen again, as freezing `data` would need. The ancestors' copies are left out.
function applyCopyOnWrite (root, changes) {
  for (const [, path, value] of changes) {
    let parent = root
    for (let i = 0; i < path.length - 2; i++) parent = parent[path[i]]
    const key = path[path.length - 2]
    const copy = Array.isArray(parent[key]) ? parent[key].slice() : { ...parent[key] }
    copy[path[path.length - 1]] = value
    parent[key] = Object.freeze(copy)
  }
}

const CHANGES = [
  ['small object, root key ($inc n)', small, (i) => [['s', ['n'], i]]],
  ['small object, nested key', small, (i) => [['s', ['user', 'age'], i]]],
  ['small object, nested object set', small, (i) => [['s', ['user', 'tags'], ['x', i]]]],
  ['10,000-key object at the root, one key', () => keys(10000), (i) => [['s', [`k${i % 10000}`], i]]],
  ['10,000-key object below the root, one key', () => ({ users: keys(10000) }), (i) => [['s', ['users', `k${i % 10000}`], i]]],
  ['100,000-element array, one element', () => ({ list: range(100000) }), (i) => [['s', ['list', i % 100000], i]]]
]

// A change list as the replica sends it, in tokens ('s' changes only, as CHANGES holds).
function changeList (changes) {
  return new ChangeList(changes.flatMap(([kind, path, value]) => [kind, path.length, ...path, value]), 0, changes.length)
}

function time (apply, target, make, iterations) {
  const ns = []
  for (let s = 0; s <= SAMPLES; s++) {
    const lists = Array.from({ length: iterations }, (_, i) => make(i))
    const start = process.hrtime.bigint()
    for (const changes of lists) apply(target, changes)
    if (s > 0) ns.push(Number(process.hrtime.bigint() - start) / iterations)
  }
  return summarize(ns).median
}

function benchChanges () {
  return CHANGES.map(([label, data, make]) => {
    const iterations = quick ? 2000 : 10000
    const nested = label.includes('below') || label.includes('array') || label.includes('nested')
    return {
      label,
      plain: time(applyInPlace, data(), make, iterations),
      chosen: time((live, changes) => live.apply(changes), new LiveObject(data()), (i) => changeList(make(i)), iterations),
      copyOnWrite: nested ? time(applyCopyOnWrite, data(), make, quick ? 20 : 100) : null
    }
  })
}

// A check finding nothing: the digest of `data` in JS, and the replica's digest of its document,
// taken under the replica's lock (lib/memsync.js spaces the checks so that they take at most 2%
// of the time).
function benchCheck () {
  const items = (n) => Array.from({ length: n }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'] }))
  const cases = [
    ['small object', small()],
    ['10,000-key object', keys(10000)],
    ['10,000 records of 3 fields (~0.5 MB JSON)', { items: items(10000) }],
    ['100,000 records of 3 fields (~5 MB JSON)', { items: items(100000) }]
  ]
  return cases.map(([label, data], i) => {
    const live = new LiveObject(data)
    const instance = native.createInstance(`bench-data-${process.pid}-${i}`, JSON.stringify(data), null, undefined)
    try {
      const iterations = label.startsWith('100,000') ? 3 : quick ? 20 : 100
      return {
        label,
        js: time((object) => object.matches(digest(data)), live, () => null, iterations),
        replica: time((handle) => native.drainForCheck(handle, false), instance, () => null, iterations)
      }
    } finally {
      native.release(instance)
    }
  })
}

console.log(`node ${process.version}, ${SAMPLES} samples, medians\n`)
for (const { label, options } of benchReads()) {
  console.log(`Read ${label} (ns per read; ratio to the plain object):`)
  for (const { name, median, ratio } of options) console.log(`  ${name.padEnd(36)} ${formatNs(median).padStart(10)}  ${ratio.toFixed(2)}x`)
}
console.log('\nApply one change list:                         plain in place    chosen   copy-on-write')
for (const { label, plain, chosen, copyOnWrite } of benchChanges()) {
  console.log(`  ${label.padEnd(44)} ${formatNs(plain).padStart(10)} ${formatNs(chosen).padStart(10)} ${copyOnWrite === null ? '' : formatNs(copyOnWrite).padStart(12)}`)
}
console.log('\nA check finding nothing:                       JS digest of data   replica digest (its lock held)')
for (const { label, js, replica } of benchCheck()) console.log(`  ${label.padEnd(44)} ${formatNs(js).padStart(12)} ${formatNs(replica).padStart(14)}`)
