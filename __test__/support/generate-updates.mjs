// Seeded, deterministic generator of (document, update) pairs for the memsync-vs-mingo differential test
// (`__test__/patch-differential.test.mjs`). Every pair is a *successful*, well-typed update on which
// memsync (SEMANTICS.md, i.e. MongoDB ≥ 5.0 plus the memsync departures) and mingo 7 are supposed to agree.
//
// WHERE MINGO 7 IS NOT A GOOD ORACLE, AND WHAT THE GENERATOR THEREFORE AVOIDS
// (mingo behaviour vs MongoDB/memsync behaviour; each was reproduced against mingo 7.2.7):
//  1. $setOnInsert: mingo does not implement it ("Unknown update operator"); memsync accepts it and, never
//     upserting, validates its paths and does nothing. Never generated.
//  2. $addToSet onto an array that already holds duplicates: mingo rebuilds the array as unique(old ∪ new), so it
//     drops the existing duplicates (or adds nothing); MongoDB/memsync keep existing elements untouched and only
//     append the missing values. Generated target arrays never hold duplicates.
//  3. $addToSet {$each} on a missing field: mingo stores $each as given, duplicates included; MongoDB/memsync
//     de-duplicate it first. $each lists for missing fields are duplicate-free.
//  4. $pull with a document condition on an array holding scalars: mingo runs the query on the scalar itself and can
//     remove it; MongoDB/memsync only ever match elements that are objects. Document conditions only meet arrays of
//     objects.
//  5. $pull/$pullAll with a scalar on an array that holds arrays: mingo uses query semantics ({k: 1} matches
//     k: [1, 2]) and removes every inner array that *contains* the value; MongoDB/memsync compare whole elements
//     ([1, 2] != 1). $pullAll of an array value ([[1, 2]]) removes nothing in mingo ($in does not match an array
//     against an array element); MongoDB/memsync remove the equal element. Scalar $pull/$pullAll targets never hold
//     arrays, and $pullAll values are never arrays. ($pull of an array value from an array of scalar arrays
//     agrees and is generated.)
//  6. Nested a.$[].$[]: mingo mis-applies it. Never generated.
//  7. Two `$[]` paths under the same array in one update (a.$[].b with a.$[].c, even under different operators):
//     mingo's conflict check only looks at the part before `$[]` and throws "would create a conflict at 'a'";
//     MongoDB/memsync accept it. At most one `$[]` path per array per update.
//  8. $push with $sort/$slice/$position on a missing field: mingo stores $each as given and ignores the modifiers;
//     MongoDB/memsync create [] and apply them ({$each:[3,1,2],$sort:1,$slice:2} → [1,2]). Modifiers other than a
//     bare $each are only used on existing arrays.
//  9. $push $sort by a field when elements miss the field or tie: mingo sorts a missing field *below* null
//     (undefined < null), MongoDB/memsync treat missing as null; ties are ordered by the sort algorithm (MongoDB's is
//     not guaranteed stable). Field sorts only run on arrays of objects that all carry the field, with distinct values.
// 10. Comparisons involving arrays or objects ($min, $max, $push $sort:±1): mingo's compare sorts both arrays before
//     comparing them, compares an array with a scalar by its min/max element, and compares objects by their sorted
//     key lists first ({x:0,y:1} > {x:1}); BSON compares arrays element by element in order and objects field by
//     field ({x:1} > {x:0,y:1}). $min/$max and whole-element $sort only see scalars (null, numbers, strings,
//     booleans), whose cross-type order (null < numbers < strings < booleans) mingo gets right.
// 11. $currentDate {field: false}: mingo rejects it; MongoDB/memsync treat any boolean as "date". Only `true`,
//     {$type:"date"} and {$type:"timestamp"} are generated. The value itself is never compared: memsync stores an
//     ISO-8601 string (timestamp: integer epoch ms), mingo a Date (timestamp: epoch ms); the test checks the form
//     and the time window.
// 12. $bit with several operations in one object ({and: 3, or: 8}): mingo throws; MongoDB/memsync apply them in
//     order. $bit on values outside int32: mingo uses JavaScript's 32-bit bitwise operators, MongoDB/memsync
//     64-bit integers. One operation per field, operands and targets within int32.
// 13. $bit/$inc/$mul/$set through an existing `null` intermediate, a $push on a dotted path through an array
//     (a.b with a an array), a $rename whose target goes through a scalar or whose source/target lies inside an
//     array, $inc on null, $push on a non-array...: all errors in MongoDB/memsync; mingo silently skips them,
//     replaces the null by {} or walks into the array elements (e.g. {$rename:{a:'a2.x'}} with a2: 5 deletes `a`
//     and writes nothing). Only well-typed, viable paths are generated.
// 14. Operator order: mingo applies the operators one after another in the update's key order, MongoDB/memsync
//     apply all paths at once in field order ({$set:{'a.3':1}, $inc:{'a.1':1}} on a: [] differs). Operators in one
//     update always target different top-level fields.
// 15. Object key order: MongoDB compares embedded documents field by field *in order* ({x:1,y:2} != {y:2,x:1} for
//     $addToSet, $pullAll, $pull equality); memsync deliberately ignores key order (SEMANTICS §5), and so does
//     mingo, so the permuted-key $addToSet case *is* generated (category addToSet:permuted-object: no change),
//     and checks the memsync departure, not MongoDB. Everything else uses one canonical key order.
// 16. The `{}` update is a replacement in MongoDB; memsync (and mingo's update()) treat it as a no-op. A plain-key
//     update {a: 1} is memsync's $set shorthand; mingo is given the explicit {$set: {a: 1}}. Shorthand keys are
//     plain, undotted field names.
// 17. JavaScript strings compare by UTF-16 code units, BSON strings by UTF-8 bytes: they differ for astral
//     characters. Strings are ASCII.

export const DEFAULT_SEED = 0x5eed_2024
export const DEFAULT_COUNT = 2400

/** mulberry32: a tiny, well-mixed 32-bit PRNG. Returns floats in [0, 1). */
export function mulberry32 (seed) {
  let a = seed >>> 0
  return function next () {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

class Rng {
  constructor (seed) {
    this.next = mulberry32(seed)
  }
  int (lo, hi) {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }
  chance (p) {
    return this.next() < p
  }
  pick (list) {
    return list[Math.floor(this.next() * list.length)]
  }
  shuffle (list) {
    const out = list.slice()
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1))
      ;[out[i], out[j]] = [out[j], out[i]]
    }
    return out
  }
  sample (list, n) {
    return this.shuffle(list).slice(0, n)
  }
}

/** The marker for "this field is absent". */
const MISSING = Symbol('missing')

// Top-level field names a case plants its targets in. None ends in "2" ($rename targets are `${field}2`) and
// none is numeric (JS orders integer-like keys first) or `_id`.
const TOP = ['a', 'b', 'c', 'd', 'e', 'g', 'h', 'k', 'items', 'tags', 'score', 'name', 'list', 'nums', 'obj', 'cfg',
  'stats', 'users', 'grid', 'qty']
// Unrelated fields that sit next to the targets and must come out untouched.
const FILLER = ['meta', 'title', 'count', 'enabled', 'info', 'created']
// Keys inside nested objects.
const INNER = ['x', 'y', 'z', 'n', 'v', 'w', 'p', 'q', 'id', 'label']
const NUMERIC_KEYS = ['0', '1', '2', '7', '10']
const STRINGS = ['', 'a', 'b', 'ab', 'abc', 'apple', 'Apple', 'banana', 'cherry', 'x', 'xy', 'z', 'hello', 'b2', 'm']
const REGEXES = ['^a', 'b$', 'an', '^$', '[xy]', '^A', 'e', '^b.*a$', '\\d', 'a', 'p+l']

// ---------------------------------------------------------------- values

function int (r) {
  return r.chance(0.8) ? r.int(-20, 20) : r.int(-100000, 100000)
}
function float (r) {
  const kind = r.int(0, 9)
  let x
  if (kind < 5) x = r.int(-100, 100) + r.pick([0.5, 0.25, 0.75, 0.125])
  else if (kind < 9) x = Number((r.next() * 200 - 100).toFixed(r.int(1, 3)))
  else x = r.next() * 1000 // 15-17 significant digits: exercises the JSON number transport too
  return x === 0 ? 0 : x
}
function num (r) {
  return r.chance(0.65) ? int(r) : float(r)
}
function str (r) {
  if (r.chance(0.7)) return r.pick(STRINGS)
  const alphabet = 'abcdefxyzAB019 -_'
  let s = ''
  for (let i = r.int(1, 6); i > 0; i--) s += alphabet[r.int(0, alphabet.length - 1)]
  return s
}
function scalar (r) {
  const k = r.int(0, 9)
  if (k < 3) return int(r)
  if (k < 4) return float(r)
  if (k < 7) return str(r)
  if (k < 9) return r.chance(0.5)
  return null
}
function obj (r, depth = 1) {
  const out = {}
  for (const key of r.sample(INNER, r.int(1, 3))) out[key] = value(r, depth - 1)
  return out
}
function arr (r, depth = 1) {
  const out = []
  for (let i = r.int(0, 4); i > 0; i--) out.push(value(r, depth - 1))
  return out
}
function value (r, depth = 2) {
  if (depth <= 0) return scalar(r)
  const k = r.int(0, 9)
  if (k < 6) return scalar(r)
  if (k < 8) return obj(r, depth)
  return arr(r, depth)
}
// Canonical text of a value under memsync equality: numbers by value, object key order ignored.
function canon (v) {
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']'
  if (v !== null && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}'
  }
  return JSON.stringify(v)
}
function uniq (list) {
  const seen = new Set()
  return list.filter((v) => {
    const c = canon(v)
    if (seen.has(c)) return false
    seen.add(c)
    return true
  })
}
function scalarArray (r, lo = 0, hi = 6) {
  const out = []
  for (let i = r.int(lo, hi); i > 0; i--) out.push(scalar(r))
  return out
}
// Elements for $push/$addToSet: scalars, flat objects, flat arrays.
function element (r) {
  const k = r.int(0, 9)
  if (k < 6) return scalar(r)
  if (k < 8) return obj(r, 1)
  return scalarArray(r, 0, 3)
}
function elementArray (r, lo = 0, hi = 5) {
  const out = []
  for (let i = r.int(lo, hi); i > 0; i--) out.push(element(r))
  return out
}
// An object element for $pull document conditions: {id, n, label, sub: {z}}, some fields missing.
function record (r) {
  const out = {}
  if (r.chance(0.85)) out.id = r.int(0, 5)
  if (r.chance(0.8)) out.label = r.pick(['a', 'b', 'ab', 'c', 'apple', 'banana'])
  if (r.chance(0.5)) out.sub = { z: r.int(0, 4) }
  if (r.chance(0.3)) out.n = r.chance(0.5)
  return out
}
function clone (v) {
  return structuredClone(v)
}

// ---------------------------------------------------------------- path shapes

// Where the operator's target sits. Each category cycles through the shapes it allows.
//   top          f                       the target is a top-level field
//   dotted       f.k1[.k2]               inside nested objects
//   create       f.k1.k2[.k3]            missing intermediates (created as objects by creating operators,
//                                         including numeric components; a no-op path for the others)
//   array-index  f.i[.k]                 an existing array element (numeric component)
//   pad          f.(len+j)[.k]           past the end: padded with null by creating operators, no-op otherwise
//   all          f.$[]                   every element
//   all-field    f.$[].k                 field k of every element (elements are objects)
//   numeric-key  f.1                     a numeric-string key of an *object*

/**
 * Plants a target for `spec` at field `f` in a shape; returns {value, path, leaves, tags}. `value` is what
 * doc[f] holds (MISSING = absent), `leaves` the current values at the target(s) (MISSING entries for absent ones).
 */
function place (r, f, shape, spec) {
  const leaf = () => spec.leaf(r)
  const present = () => {
    for (;;) {
      const v = spec.leaf(r)
      if (v !== MISSING) return v
    }
  }
  const tags = []
  const noiseObj = (exclude) => {
    const o = r.chance(0.6) ? obj(r, 1) : {}
    for (const k of exclude) delete o[k]
    return o
  }
  switch (shape) {
    case 'top': {
      const v = leaf()
      tags.push('top-level')
      return { value: v, path: f, leaves: [v], tags }
    }
    case 'dotted': {
      const depth = r.int(1, 2)
      const keys = r.sample(INNER, depth)
      const v = leaf()
      const root = noiseObj(keys)
      let cur = root
      for (let i = 0; i < depth - 1; i++) {
        cur[keys[i]] = noiseObj(keys)
        cur = cur[keys[i]]
      }
      if (v === MISSING) delete cur[keys[depth - 1]]
      else cur[keys[depth - 1]] = v
      tags.push('dotted')
      return { value: root, path: [f, ...keys].join('.'), leaves: [v], tags }
    }
    case 'create': {
      const depth = r.int(2, 3)
      const keys = []
      for (let i = 0; i < depth; i++) {
        keys.push(r.chance(0.25) ? r.pick(NUMERIC_KEYS) : r.pick(INNER.filter((k) => !keys.includes(k))))
      }
      let root
      const k = r.int(0, 2)
      if (k === 0) root = MISSING
      else if (k === 1) root = noiseObj([keys[0]])
      else root = { ...noiseObj([keys[0]]), [keys[0]]: noiseObj([keys[1]]) }
      tags.push(spec.creating ? 'create-intermediates' : 'missing-path', 'dotted')
      if (keys.some((key) => /^\d+$/.test(key))) tags.push('numeric-component-on-object')
      return { value: root, path: [f, ...keys].join('.'), leaves: [MISSING], tags }
    }
    case 'array-index': {
      const len = r.int(1, 4)
      const i = r.int(0, len - 1)
      const withField = r.chance(0.3)
      const fk = r.pick(INNER)
      const items = []
      const leaves = []
      for (let j = 0; j < len; j++) {
        if (withField) {
          const v = leaf()
          const o = noiseObj([fk])
          if (v !== MISSING) o[fk] = v
          items.push(o)
          if (j === i) leaves.push(v)
        } else {
          const v = present()
          items.push(v)
          if (j === i) leaves.push(v)
        }
      }
      tags.push('array-index')
      if (withField) tags.push('dotted')
      return { value: items, path: `${f}.${i}` + (withField ? `.${fk}` : ''), leaves, tags }
    }
    case 'pad': {
      const len = r.int(0, 3)
      const items = []
      for (let j = 0; j < len; j++) items.push(present())
      const gap = r.int(0, 3)
      const sub = spec.creating && r.chance(0.3) ? '.' + r.pick(INNER) : ''
      if (spec.creating) tags.push(gap > 0 ? 'pad-null' : 'append-index')
      else tags.push('index-past-end')
      tags.push('array-index')
      return { value: items, path: `${f}.${len + gap}${sub}`, leaves: [MISSING], tags }
    }
    case 'all': {
      const len = r.int(0, 4)
      const items = []
      for (let j = 0; j < len; j++) items.push(present())
      tags.push('$[]')
      return { value: items, path: `${f}.$[]`, leaves: items.length ? items : [], tags }
    }
    case 'all-field': {
      const len = r.int(1, 4)
      const fk = r.pick(INNER)
      const items = []
      const leaves = []
      for (let j = 0; j < len; j++) {
        const v = leaf()
        const o = noiseObj([fk])
        if (v !== MISSING) o[fk] = v
        items.push(o)
        leaves.push(v)
      }
      tags.push('$[].field')
      return { value: items, path: `${f}.$[].${fk}`, leaves, tags }
    }
    case 'numeric-key': {
      const key = r.pick(NUMERIC_KEYS)
      const root = {}
      for (const k of r.sample(NUMERIC_KEYS, r.int(0, 2))) root[k] = value(r, 1)
      if (r.chance(0.5)) root[r.pick(INNER)] = value(r, 1)
      const v = leaf()
      if (v === MISSING) delete root[key]
      else root[key] = v
      tags.push('numeric-key-object')
      return { value: root, path: `${f}.${key}`, leaves: [v], tags }
    }
    default:
      throw new Error('unknown shape ' + shape)
  }
}

const ALL_SHAPES = ['top', 'dotted', 'create', 'array-index', 'pad', 'all', 'all-field', 'numeric-key']
// Shapes for operators that need the target to exist (no create/pad); `top` etc. then must not be MISSING.
const EXISTING_SHAPES = ['top', 'dotted', 'array-index', 'all', 'all-field', 'numeric-key']

// ---------------------------------------------------------------- categories

const present = (r, p, make) => (r.chance(p) ? MISSING : make(r))
const existingOf = (r, leaves) => {
  const real = leaves.filter((l) => l !== MISSING)
  return real.length ? r.pick(real) : MISSING
}
// An element of one of the target arrays, or MISSING.
const memberOf = (r, leaves) => {
  const elements = leaves.filter((l) => Array.isArray(l)).flat()
  return elements.length ? r.pick(elements) : MISSING
}

/**
 * Each category: {name, op, creating, shapes, leaf(r) → current target value | MISSING, arg(r, leaves) → operand,
 * tags?, date?}. `op` names the test group.
 */
const CATEGORIES = []
function category (def) {
  CATEGORIES.push({ shapes: ALL_SHAPES, creating: false, tags: [], ...def })
}

// -- $set
category({
  name: '$set:value', op: '$set', creating: true,
  leaf: (r) => present(r, 0.3, (r) => value(r, 2)),
  arg: (r, leaves) => (r.chance(0.15) && existingOf(r, leaves) !== MISSING ? clone(existingOf(r, leaves)) : value(r, 2)),
})
category({
  name: '$set:several-paths', op: '$set', creating: true, shapes: ['top'],
  build (r, f) {
    // several disjoint paths under one object in one $set
    const keys = r.sample(INNER, r.int(2, 4))
    const root = r.chance(0.7) ? obj(r, 2) : MISSING
    const set = {}
    for (const k of keys) {
      const sub = r.chance(0.4) ? r.pick(INNER) : null
      // a path may only go on through an object (or a missing field)
      const through = root === MISSING ? undefined : root[k]
      if (sub !== null && through !== undefined && (through === null || typeof through !== 'object' || Array.isArray(through))) {
        root[k] = obj(r, 1)
      }
      set[sub === null ? `${f}.${k}` : `${f}.${k}.${sub}`] = value(r, 1)
    }
    return { value: root, ops: [['$set', set]], tags: ['several-paths', 'dotted'] }
  },
})

// -- $unset
category({
  name: '$unset', op: '$unset',
  leaf: (r) => present(r, 0.2, (r) => value(r, 2)),
  arg: (r) => r.pick(['', 1, true, 0, null]),
})

// -- $inc / $mul
category({
  name: '$inc', op: '$inc', creating: true,
  leaf: (r) => present(r, 0.25, num),
  arg: (r) => (r.chance(0.1) ? 0 : num(r)),
})
category({
  name: '$mul', op: '$mul', creating: true,
  leaf: (r) => present(r, 0.25, num),
  arg: (r) => (r.chance(0.6) ? r.int(-5, 5) : r.pick([0.5, 1.5, -2.5, 0.1, 3.25, 1.1])),
})

// -- $min / $max (scalars only, see 10.)
for (const op of ['$min', '$max']) {
  category({
    name: op, op, creating: true,
    leaf: (r) => present(r, 0.2, scalar),
    arg: (r, leaves) => {
      const e = existingOf(r, leaves)
      if (e !== MISSING && typeof e === 'number' && r.chance(0.5)) return e + r.pick([-3, -1, -0.5, 0, 0.5, 2])
      if (e !== MISSING && r.chance(0.15)) return e
      return scalar(r)
    },
  })
}

// -- $currentDate
category({
  name: '$currentDate', op: '$currentDate', creating: true,
  leaf: (r) => present(r, 0.3, (r) => value(r, 1)),
  arg: (r) => r.pick([true, { $type: 'date' }, { $type: 'timestamp' }]),
  date: true,
})

// -- $bit (int32 only, one operation, see 12.)
for (const bop of ['and', 'or', 'xor']) {
  category({
    name: `$bit:${bop}`, op: '$bit', creating: true,
    leaf: (r) => present(r, 0.2, (r) => (r.chance(0.7) ? r.int(-64, 255) : r.int(-(2 ** 31), 2 ** 31 - 1))),
    arg: (r) => ({ [bop]: r.chance(0.7) ? r.int(0, 255) : r.int(-(2 ** 31), 2 ** 31 - 1) }),
  })
}

// -- $rename (objects only, see 13.)
category({
  name: '$rename', op: '$rename', shapes: ['top', 'to-nested', 'nested', 'nested-to-top', 'overwrite', 'missing-source'],
  build (r, f, shape) {
    const f2 = `${f}2`
    const extra = {}
    let root
    let from
    let to
    const tags = []
    switch (shape) {
      case 'top':
        root = value(r, 2)
        from = f
        to = f2
        tags.push('top-level')
        break
      case 'to-nested': {
        root = value(r, 2)
        from = f
        const keys = r.sample(INNER, r.int(1, 2))
        to = [f2, ...keys].join('.')
        if (r.chance(0.5)) extra[f2] = { [r.pick(INNER.filter((k) => k !== keys[0]))]: scalar(r) }
        tags.push('create-intermediates', 'dotted')
        break
      }
      case 'nested': {
        const [k1, k2, k3] = r.sample(INNER, 3)
        root = { ...obj(r, 1), [k1]: value(r, 2) }
        delete root[k2]
        from = `${f}.${k1}`
        to = r.chance(0.5) ? `${f}.${k2}` : `${f}.${k2}.${k3}`
        if (to === `${f}.${k2}` && r.chance(0.4)) {
          root[k2] = value(r, 1)
          tags.push('overwrite')
        }
        tags.push('dotted')
        if (to.split('.').length > 2) tags.push('create-intermediates')
        break
      }
      case 'nested-to-top': {
        const k1 = r.pick(INNER)
        root = { ...obj(r, 1), [k1]: value(r, 2) }
        from = `${f}.${k1}`
        to = r.chance(0.5) ? f2 : `${f2}.${r.pick(INNER)}`
        if (r.chance(0.3)) extra[f2] = to === f2 ? value(r, 1) : obj(r, 1)
        tags.push('dotted')
        break
      }
      case 'overwrite': {
        root = value(r, 2)
        from = f
        to = f2
        extra[f2] = value(r, 2)
        tags.push('overwrite', 'top-level')
        break
      }
      case 'missing-source': {
        root = r.chance(0.5) ? MISSING : obj(r, 1)
        from = root === MISSING ? f : `${f}.${r.pick(INNER)}`
        if (root !== MISSING) delete root[from.split('.')[1]]
        to = r.chance(0.5) ? f2 : `${f2}.${r.pick(INNER)}`
        if (r.chance(0.6)) extra[f2] = obj(r, 1)
        tags.push('missing-path')
        break
      }
    }
    return { value: root, extra, ops: [['$rename', { [from]: to }]], tags }
  },
})

// -- $push
category({
  name: '$push:plain', op: '$push', creating: true,
  leaf: (r) => present(r, 0.25, (r) => elementArray(r)),
  arg: (r) => element(r),
})
category({
  name: '$push:each', op: '$push', creating: true,
  leaf: (r) => present(r, 0.25, (r) => elementArray(r)),
  arg: (r) => ({ $each: elementArray(r, 0, 3) }),
})
category({
  name: '$push:position', op: '$push', shapes: EXISTING_SHAPES,
  leaf: (r) => elementArray(r),
  arg: (r) => ({ $each: elementArray(r, 1, 3), $position: r.pick([0, 1, 2, 3, 10, -1, -2, -10]) }),
})
category({
  name: '$push:slice', op: '$push', shapes: EXISTING_SHAPES,
  leaf: (r) => elementArray(r),
  arg: (r) => ({ $each: elementArray(r, 0, 3), $slice: r.pick([0, 1, 2, 3, 5, -1, -2, -3, -10]) }),
})
category({
  name: '$push:sort', op: '$push', shapes: EXISTING_SHAPES,
  leaf: (r) => scalarArray(r),
  arg: (r) => {
    const spec = { $each: scalarArray(r, 0, 3), $sort: r.pick([1, -1]) }
    if (r.chance(0.4)) spec.$slice = r.pick([0, 1, 2, 4, -1, -3])
    if (r.chance(0.3)) spec.$position = r.pick([0, 1, -1])
    return spec
  },
})
// Arrays of objects that all carry the sort field with distinct values (see 9.); existing ids in 0..49,
// pushed ones in 50..99.
function sortedRecords (r, lo, hi, range, dotted) {
  const ids = r.sample(range, r.int(lo, hi))
  return ids.map((id) => {
    const o = r.chance(0.5) ? obj(r, 1) : {}
    delete o.k
    delete o.sub
    if (dotted) o.sub = { z: id, ...(r.chance(0.3) ? { w: scalar(r) } : {}) }
    else o.k = r.chance(0.3) ? `s${String(id).padStart(2, '0')}` : id
    return o
  })
}
const OLD_IDS = Array.from({ length: 50 }, (_, i) => i)
const NEW_IDS = Array.from({ length: 50 }, (_, i) => 50 + i)
for (const dotted of [false, true]) {
  category({
    name: dotted ? '$push:sort-by-dotted-field' : '$push:sort-by-field', op: '$push', shapes: EXISTING_SHAPES,
    leaf: (r) => sortedRecords(r, 0, 5, OLD_IDS, dotted),
    arg: (r) => {
      const spec = { $each: sortedRecords(r, 0, 3, NEW_IDS, dotted), $sort: { [dotted ? 'sub.z' : 'k']: r.pick([1, -1]) } }
      if (r.chance(0.4)) spec.$slice = r.pick([0, 1, 2, 4, -1, -3])
      if (r.chance(0.3)) spec.$position = r.pick([0, 1, -1])
      return spec
    },
  })
}
category({
  name: '$push:position-slice', op: '$push', shapes: EXISTING_SHAPES,
  leaf: (r) => elementArray(r),
  arg: (r) => ({
    $each: elementArray(r, 0, 3),
    $position: r.pick([0, 1, 3, -1, -4]),
    $slice: r.pick([0, 2, 3, -2, -5]),
  }),
})

// -- $addToSet (targets never hold duplicates, see 2./3.)
category({
  name: '$addToSet:plain', op: '$addToSet', creating: true,
  leaf: (r) => present(r, 0.25, (r) => uniq(elementArray(r))),
  arg: (r, leaves) => {
    const m = memberOf(r, leaves)
    return m !== MISSING && r.chance(0.35) ? clone(m) : element(r)
  },
})
category({
  name: '$addToSet:each', op: '$addToSet', creating: true,
  leaf: (r) => present(r, 0.25, (r) => uniq(elementArray(r))),
  arg: (r, leaves) => {
    const each = elementArray(r, 0, 3)
    const m = memberOf(r, leaves)
    if (m !== MISSING && r.chance(0.5)) each.splice(r.int(0, each.length), 0, clone(m))
    const anyMissing = leaves.some((l) => l === MISSING) || leaves.length === 0
    if (!anyMissing && each.length && r.chance(0.3)) each.push(clone(r.pick(each))) // duplicate inside $each
    return { $each: anyMissing ? uniq(each) : each }
  },
})
category({
  name: '$addToSet:permuted-object', op: '$addToSet', shapes: ['top'],
  build (r, f) {
    // memsync ignores key order (SEMANTICS §5), as mingo does; MongoDB would add the permuted document.
    const keys = r.sample(INNER, r.int(2, 3))
    const doc = {}
    for (const k of keys) doc[k] = scalar(r)
    const permuted = {}
    for (const k of keys.slice().reverse()) permuted[k] = doc[k]
    const list = uniq([...elementArray(r, 0, 2), doc, ...elementArray(r, 0, 2)])
    return { value: list, ops: [['$addToSet', { [f]: permuted }]], tags: ['top-level', 'key-order'] }
  },
})

// -- $pop
for (const dir of [1, -1]) {
  category({
    name: `$pop:${dir}`, op: '$pop',
    leaf: (r) => present(r, 0.15, (r) => (r.chance(0.15) ? [] : elementArray(r, 1, 5))),
    arg: () => dir,
  })
}

// -- $pull
category({
  name: '$pull:value', op: '$pull',
  // scalars and flat objects, never arrays (see 5.); duplicates are fine for $pull
  leaf: (r) => present(r, 0.1, (r) => {
    const out = scalarArray(r, 0, 6)
    if (r.chance(0.3)) out.push(obj(r, 1))
    if (out.length && r.chance(0.4)) out.push(r.pick(out))
    return r.shuffle(out)
  }),
  arg: (r, leaves) => {
    const m = memberOf(r, leaves)
    return m !== MISSING && (m === null || typeof m !== 'object') && r.chance(0.75) ? m : scalar(r)
  },
})
category({
  name: '$pull:array-value', op: '$pull',
  leaf: (r) => present(r, 0.1, (r) => {
    const out = []
    for (let i = r.int(0, 4); i > 0; i--) out.push(scalarArray(r, 0, 3))
    if (out.length && r.chance(0.3)) out.push(clone(r.pick(out)))
    return out
  }),
  arg: (r, leaves) => {
    const m = memberOf(r, leaves)
    return m !== MISSING && r.chance(0.7) ? clone(m) : scalarArray(r, 0, 2)
  },
})
const COND_ELEMENTS = (r) => {
  const out = []
  for (let i = r.int(0, 7); i > 0; i--) {
    const k = r.int(0, 9)
    out.push(k < 4 ? r.int(-10, 10) : k < 5 ? float(r) : k < 8 ? r.pick(STRINGS) : k < 9 ? r.chance(0.5) : null)
  }
  return out
}
// Mostly strings, for $regex.
const STRING_ELEMENTS = (r) => Array.from({ length: r.int(0, 7) }, () => (r.chance(0.75) ? str(r) : scalar(r)))
// An operand for a comparison: often one of the target's own elements, so that something matches.
const numOrStr = (r, leaves) => {
  const m = memberOf(r, leaves)
  if (m !== MISSING && (typeof m === 'number' || typeof m === 'string') && r.chance(0.6)) return m
  return r.chance(0.65) ? (r.chance(0.8) ? r.int(-10, 10) : r.int(-10, 10) + 0.5) : r.pick(STRINGS)
}
const anyScalar = (r, leaves) => {
  const m = memberOf(r, leaves)
  if (m !== MISSING && r.chance(0.6)) return m
  return r.chance(0.85) ? numOrStr(r, leaves) : r.pick([null, true, false])
}
const CONDITIONS = {
  $gt: numOrStr,
  $gte: numOrStr,
  $lt: numOrStr,
  $lte: numOrStr,
  $eq: anyScalar,
  $ne: anyScalar,
  $in: (r, leaves) => Array.from({ length: r.int(0, 4) }, () => anyScalar(r, leaves)),
  $nin: (r, leaves) => Array.from({ length: r.int(0, 4) }, () => anyScalar(r, leaves)),
  $regex: (r) => r.pick(REGEXES),
}
for (const [cop, make] of Object.entries(CONDITIONS)) {
  category({
    name: `$pull:${cop}`, op: '$pull',
    leaf: (r) => present(r, 0.1, cop === '$regex' ? STRING_ELEMENTS : COND_ELEMENTS),
    arg: (r, leaves) => ({ [cop]: make(r, leaves) }),
  })
}
category({
  name: '$pull:range', op: '$pull',
  leaf: (r) => present(r, 0.1, COND_ELEMENTS),
  arg: (r, leaves) => {
    const m = memberOf(r, leaves)
    const lo = typeof m === 'number' && r.chance(0.8) ? Math.floor(m) - r.int(0, 3) : r.int(-10, 5)
    return { [r.pick(['$gt', '$gte'])]: lo, [r.pick(['$lt', '$lte'])]: lo + r.int(1, 10) }
  },
})
// Document conditions: arrays of objects only (see 4.).
const RECORD_CONDITIONS = [
  (r) => ({ id: r.int(0, 5) }),
  (r) => ({ label: r.pick(['a', 'b', 'ab', 'apple']) }),
  (r) => ({ id: r.int(0, 5), label: r.pick(['a', 'b', 'ab', 'apple']) }),
  (r) => ({ 'sub.z': r.int(0, 4) }),
  (r) => ({ id: { [r.pick(['$gt', '$gte', '$lt', '$lte'])]: r.int(0, 5) } }),
  (r) => ({ id: { $ne: r.int(0, 5) } }),
  (r) => ({ label: { $in: r.sample(['a', 'b', 'ab', 'c', 'zz'], r.int(1, 3)) } }),
  (r) => ({ label: { $nin: r.sample(['a', 'b', 'ab', 'c'], r.int(1, 2)) } }),
  (r) => ({ label: { $regex: r.pick(['^a', 'b$', 'an']) } }),
  (r) => ({ 'sub.z': { $gte: r.int(0, 4) }, id: { $lt: r.int(0, 5) } }),
  (r) => ({ n: r.chance(0.5) }),
  (r) => ({ sub: { z: r.int(0, 4) } }),
]
category({
  name: '$pull:document', op: '$pull',
  leaf: (r) => present(r, 0.1, (r) => Array.from({ length: r.int(0, 6) }, () => record(r))),
  arg: (r) => r.pick(RECORD_CONDITIONS)(r),
})

// -- $pullAll (no arrays in targets or values, see 5.)
category({
  name: '$pullAll:scalars', op: '$pullAll',
  leaf: (r) => present(r, 0.1, (r) => {
    const out = scalarArray(r, 0, 6)
    if (out.length && r.chance(0.4)) out.push(r.pick(out))
    return r.shuffle(out)
  }),
  arg: (r, leaves) => {
    const out = []
    for (let i = r.int(0, 3); i > 0; i--) {
      const m = memberOf(r, leaves)
      out.push(m !== MISSING && r.chance(0.6) ? m : scalar(r))
    }
    return out
  },
})
category({
  name: '$pullAll:objects', op: '$pullAll',
  leaf: (r) => present(r, 0.1, (r) => Array.from({ length: r.int(0, 5) }, () => record(r))),
  arg: (r, leaves) => {
    const out = []
    for (let i = r.int(1, 3); i > 0; i--) {
      const m = memberOf(r, leaves)
      if (m !== MISSING && r.chance(0.6)) out.push(clone(m))
      else if (m !== MISSING && Object.keys(m).length > 1 && r.chance(0.5)) {
        // a strict subset of an element: exact equality does not match it (unlike $pull)
        const k = Object.keys(m)[0]
        out.push({ [k]: clone(m[k]) })
      } else out.push(record(r))
    }
    return out
  },
})

// The single-operator categories, which "multi" combines.
const SINGLE = CATEGORIES.slice()

// -- several operators in one update, on different top-level fields (see 14.)
category({ name: 'multi', op: 'multi', shapes: ['2', '3', '4'], multi: true })
// -- plain-key $set shorthand
category({ name: 'shorthand', op: 'shorthand', shapes: ['1', '2', '3'], shorthand: true })
// -- no-ops
category({
  name: 'noop', op: 'noop',
  shapes: ['empty', 'empty-set', 'same-value', 'unset-missing', 'pop-missing', 'pull-nothing', 'inc-zero',
    'max-smaller', 'addToSet-present', 'rename-missing'],
  noop: true,
})

export const CATEGORY_NAMES = CATEGORIES.map((c) => c.name)
export const OPERATOR_GROUPS = [...new Set(CATEGORIES.map((c) => c.op))]

// Shapes each operator has to be exercised in (checked by the test).
export const REQUIRED_TAGS = [
  'top-level', 'dotted', 'create-intermediates', 'missing-path', 'array-index', 'pad-null', 'append-index',
  'index-past-end', '$[]', '$[].field', 'numeric-key-object', 'numeric-component-on-object', 'several-paths',
  'multi-op', 'shorthand', 'noop', 'overwrite', 'key-order',
]

// ---------------------------------------------------------------- cases

function plant (r, cat, f, shape) {
  if (cat.build) {
    const out = cat.build(r, f, shape)
    return { ...out, tags: [...out.tags, `shape:${shape}`] }
  }
  const p = place(r, f, shape, cat)
  const argValue = cat.arg(r, p.leaves)
  const tags = [...p.tags, `shape:${shape}`]
  const ops = [[cat.op, { [p.path]: argValue }]]
  const dates = cat.date ? [{ path: p.path, type: argValue === true || argValue.$type === 'date' ? 'date' : 'timestamp' }] : []
  return { value: p.value, ops, tags, dates }
}

function mergeOps (update, ops) {
  for (const [op, fields] of ops) {
    update[op] = { ...(update[op] ?? {}), ...fields }
  }
}

function fillers (r, doc) {
  for (const k of r.sample(FILLER, r.int(0, 3))) doc[k] = value(r, 2)
}

function buildNoop (r, shape) {
  const doc = {}
  fillers(r, doc)
  const [f, g] = r.sample(TOP, 2)
  switch (shape) {
    case 'empty':
      doc[f] = value(r, 2)
      return { doc, update: {} }
    case 'empty-set':
      doc[f] = value(r, 2)
      return { doc, update: { $set: {} } }
    case 'same-value': {
      doc[f] = { [r.pick(INNER)]: value(r, 2) }
      const k = Object.keys(doc[f])[0]
      return { doc, update: { $set: { [`${f}.${k}`]: clone(doc[f][k]) } } }
    }
    case 'unset-missing':
      doc[f] = obj(r, 1)
      return { doc, update: { $unset: { [g]: '', [`${f}.nothere`]: '' } } }
    case 'pop-missing':
      doc[f] = []
      return { doc, update: { $pop: { [g]: r.pick([1, -1]), [f]: r.pick([1, -1]) } } }
    case 'pull-nothing':
      doc[f] = [1, 2, 3].map(() => r.int(0, 9))
      return { doc, update: { $pull: { [f]: { $gt: 100 } }, $pullAll: { [g]: [1] } } }
    case 'inc-zero':
      doc[f] = num(r)
      return { doc, update: { $inc: { [f]: 0 } } }
    case 'max-smaller': {
      const n = r.int(0, 50)
      doc[f] = n
      return { doc, update: { $max: { [f]: n - r.int(0, 5) } } }
    }
    case 'addToSet-present': {
      const list = uniq(elementArray(r, 1, 4))
      doc[f] = list
      return { doc, update: { $addToSet: { [f]: { $each: [clone(r.pick(list))] } } } }
    }
    case 'rename-missing':
      doc[`${f}2`] = value(r, 1)
      return { doc, update: { $rename: { [f]: `${f}2` } } }
  }
  throw new Error('unknown noop shape ' + shape)
}

/**
 * Generates `count` cases, deterministic for a seed. Each case is
 * {index, category, op, shape, tags, doc, update, mingoUpdate, dates: [{path, type: 'date'|'timestamp'}]}.
 * `update` is what memsync gets; `mingoUpdate` is the same with the shorthand spelled as $set.
 */
export function generateCases ({ seed = DEFAULT_SEED, count = DEFAULT_COUNT } = {}) {
  const r = new Rng(seed)
  const shapeCounters = new Map()
  const nextShape = (cat) => {
    const n = shapeCounters.get(cat.name) ?? 0
    shapeCounters.set(cat.name, n + 1)
    return cat.shapes[n % cat.shapes.length]
  }
  const cases = []
  for (let index = 0; index < count; index++) {
    const cat = CATEGORIES[index % CATEGORIES.length]
    const shape = nextShape(cat)
    let doc = {}
    let update = {}
    let mingoUpdate
    let tags = []
    let dates = []
    if (cat.noop) {
      ({ doc, update } = buildNoop(r, shape))
      tags = ['noop', `noop:${shape}`]
    } else if (cat.shorthand) {
      fillers(r, doc)
      const fields = r.sample(TOP, Number(shape))
      for (const f of fields) {
        if (r.chance(0.5)) doc[f] = value(r, 2)
        update[f] = value(r, 2)
      }
      mingoUpdate = { $set: clone(update) }
      tags = ['shorthand']
    } else {
      fillers(r, doc)
      let chosen
      if (cat.multi) {
        // distinct operators, so that the update really has several
        const byOp = new Map()
        for (const c of r.shuffle(SINGLE)) if (!byOp.has(c.op)) byOp.set(c.op, c)
        chosen = [...byOp.values()].slice(0, Number(shape))
      } else {
        chosen = [cat]
      }
      const fields = r.sample(TOP, chosen.length)
      const ops = []
      chosen.forEach((c, j) => {
        const s = cat.multi ? r.pick(c.shapes) : shape
        const p = plant(r, c, fields[j], s)
        if (p.value !== MISSING) doc[fields[j]] = p.value
        Object.assign(doc, p.extra ?? {})
        ops.push(...p.ops)
        dates.push(...(p.dates ?? []))
        tags.push(...p.tags)
      })
      // random operator order in the update document
      for (const [op, fieldsOfOp] of r.shuffle(ops)) mergeOps(update, [[op, fieldsOfOp]])
      if (cat.multi) tags = ['multi-op', ...tags.map((t) => `multi:${t}`)]
    }
    cases.push({
      index,
      category: cat.name,
      op: cat.op,
      shape,
      tags: [...new Set(tags)],
      doc,
      update,
      mingoUpdate: mingoUpdate ?? clone(update),
      dates,
    })
  }
  return cases
}

/** Counts per category, per tag and per category×shape. */
export function tally (cases) {
  const categories = {}
  const tags = {}
  const shapes = {}
  for (const c of cases) {
    categories[c.category] = (categories[c.category] ?? 0) + 1
    shapes[`${c.category} @ ${c.shape}`] = (shapes[`${c.category} @ ${c.shape}`] ?? 0) + 1
    for (const t of c.tags) tags[t] = (tags[t] ?? 0) + 1
  }
  return { categories, tags, shapes }
}

/** Every category × shape the generator cycles through (for coverage assertions). */
export function expectedShapes () {
  return CATEGORIES.flatMap((c) => c.shapes.map((s) => `${c.name} @ ${s}`))
}

// ---------------------------------------------------------------- self-check

const ARRAY_OPS = new Set(['$push', '$addToSet', '$pop', '$pull', '$pullAll'])

/**
 * An independent check that a case stays where memsync and MongoDB succeed: every path is viable (it only goes
 * on through objects, through arrays by index or `$[]`, or through missing fields) and every existing target has
 * the type its operator needs. Returns a list of problems (empty when fine).
 */
export function checkCase (c) {
  const problems = []
  const update = Object.keys(c.update).every((k) => !k.startsWith('$')) ? { $set: c.update } : c.update
  const targets = (path) => {
    // the values the path designates, MISSING where absent; throws on a non-viable path
    let nodes = [c.doc]
    for (const comp of path.split('.')) {
      const next = []
      for (const node of nodes) {
        if (node === MISSING) {
          if (comp === '$[]') throw new Error(`$[] on a missing field in ${path}`)
          next.push(MISSING)
        } else if (Array.isArray(node)) {
          if (comp === '$[]') next.push(...node)
          else if (/^\d+$/.test(comp)) next.push(Number(comp) < node.length ? node[Number(comp)] : MISSING)
          else throw new Error(`non-index '${comp}' on an array in ${path}`)
        } else if (node !== null && typeof node === 'object') {
          if (comp === '$[]') throw new Error(`$[] on an object in ${path}`)
          next.push(Object.hasOwn(node, comp) ? node[comp] : MISSING)
        } else {
          throw new Error(`'${comp}' goes through ${JSON.stringify(node)} in ${path}`)
        }
      }
      nodes = next
    }
    return nodes
  }
  for (const [op, fields] of Object.entries(update)) {
    for (const [path, arg] of Object.entries(fields)) {
      try {
        if (op === '$rename') {
          for (const p of [path, arg]) {
            const comps = p.split('.')
            for (let i = 1; i < comps.length; i++) {
              if (targets(comps.slice(0, i).join('.')).some((v) => Array.isArray(v))) throw new Error(`$rename through an array: ${p}`)
            }
            targets(p)
          }
          continue
        }
        for (const v of targets(path)) {
          if (v === MISSING) continue
          if ((op === '$inc' || op === '$mul') && typeof v !== 'number') throw new Error(`${op} on ${JSON.stringify(v)}`)
          if (op === '$bit' && !Number.isInteger(v)) throw new Error(`$bit on ${JSON.stringify(v)}`)
          if (ARRAY_OPS.has(op) && !Array.isArray(v)) throw new Error(`${op} on ${JSON.stringify(v)}`)
          if (op === '$addToSet' && uniq(v).length !== v.length) throw new Error(`$addToSet onto duplicates ${JSON.stringify(v)}`)
          if ((op === '$min' || op === '$max') && v !== null && typeof v === 'object') throw new Error(`${op} on ${JSON.stringify(v)}`)
        }
      } catch (err) {
        problems.push(`${op} ${path}: ${err.message}`)
      }
    }
  }
  return problems
}
