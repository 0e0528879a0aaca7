'use strict'
// Applies the engine's change lists (see src/patch/change.rs) to the live JS object in place, so
// `mem.data` keeps its identity and reads stay plain property reads, and finds and undoes direct
// writes to it against the replica's document, which would otherwise leave this process
// disagreeing with the others for good (docs/guarantees.md).
//
// A change list arrives as tokens (src/core/events.rs, `change_tokens`) and is read where it
// lies: each change is its kind, its path's length and keys, then its operands. 's' (set,
// creating missing objects and padding arrays with null): the value; 'u' (delete a key): none;
// 'p' (splice an array): start, delete count, the items; 'm' (rename): the length and keys of the
// path it moves to. Path components are strings (keys) or numbers (array indexes).

const { hasOwn } = Object

// Own properties only: a key such as '__proto__' or 'constructor' must never reach the prototype.
function child (parent, key) {
  return hasOwn(parent, key) ? parent[key] : undefined
}

function assign (parent, key, value) {
  if (Array.isArray(parent)) {
    while (parent.length < key) parent.push(null)
    parent[key] = value
  } else if (key === '__proto__') {
    Object.defineProperty(parent, key, { value, writable: true, enumerable: true, configurable: true })
  } else {
    parent[key] = value
  }
}

// A path is `keys[from]` to `keys[to - 1]`: a change's keys within its list's tokens, or an
// observer's parts.
function parentOf (root, keys, from, to, create) {
  let node = root
  for (let i = from; i < to - 1; i++) {
    let next = child(node, keys[i])
    if (next === undefined) {
      if (!create) return undefined
      next = {}
      assign(node, keys[i], next)
    }
    node = next
  }
  return node
}

function getAt (root, keys, from = 0, to = keys.length) {
  let node = root
  for (let i = from; i < to; i++) {
    if (node === null || typeof node !== 'object') return undefined
    node = child(node, keys[i])
  }
  return node
}

function take (root, keys, from, to) {
  const parent = parentOf(root, keys, from, to, false)
  const key = keys[to - 1]
  if (parent === undefined || !hasOwn(parent, key)) return undefined
  const value = parent[key]
  delete parent[key]
  return value
}

function samePath (tokens, a, b, length) {
  for (let i = 0; i < length; i++) if (tokens[a + i] !== tokens[b + i]) return false
  return true
}

// Where the change at `at` ends (its kind, its path, its operands).
function skip (tokens, at) {
  const operands = at + 2 + tokens[at + 1]
  switch (tokens[at]) {
    case 's':
      return operands + 1
    case 'u':
      return operands
    case 'p':
      return operands + 3
    case 'm':
      return operands + 1 + tokens[operands]
    default:
      throw new Error(`memsync: the addon sent an unknown change '${tokens[at]}'`)
  }
}

/** `count` changes in `tokens` from `at`, read in place; `end` is where the list ends. */
class ChangeList {
  constructor (tokens, at, count) {
    this.tokens = tokens
    this.at = at
    this.count = count
    let end = at
    for (let c = 0; c < count; c++) end = skip(tokens, end)
    this.end = end
  }

  /** The changes as arrays: ['s', path, value], ['u', path], ['p', path, start, deleteCount, items], ['m', from, to]. */
  toArray () {
    const { tokens } = this
    const changes = []
    for (let c = 0, at = this.at; c < this.count; c++) {
      const to = at + 2 + tokens[at + 1]
      const path = tokens.slice(at + 2, to)
      const end = skip(tokens, at)
      switch (tokens[at]) {
        case 's':
          changes.push(['s', path, tokens[to]])
          break
        case 'u':
          changes.push(['u', path])
          break
        case 'p':
          changes.push(['p', path, tokens[to], tokens[to + 1], tokens[to + 2]])
          break
        case 'm':
          changes.push(['m', path, tokens.slice(to + 1, end)])
          break
      }
      at = end
    }
    return changes
  }
}

// How many of the `left` changes from the splice at `at` are pure removals from one array, each
// below the previous (what $pull emits). One splice each would shift the tail every time,
// quadratic on a long array, so such a run is applied in one pass, as src/patch/change.rs does.
function removalRun (tokens, at, left) {
  const keys = tokens[at + 1]
  let operands = at + 2 + keys
  if (tokens[operands + 2].length !== 0) return 0
  let floor = tokens[operands]
  let length = 1
  let next = operands + 3
  while (length < left && tokens[next] === 'p' && tokens[next + 1] === keys && samePath(tokens, at + 2, next + 2, keys)) {
    operands = next + 2 + keys
    if (tokens[operands + 2].length !== 0 || tokens[operands] + tokens[operands + 1] > floor) break
    floor = tokens[operands]
    length++
    next = operands + 3
  }
  return length
}

// Applies the `run` removals from `at` (see removalRun) to `array`; returns where they end.
function removeRun (array, tokens, at, run) {
  const removed = new Uint8Array(array.length)
  for (let r = 0; r < run; r++) {
    const operands = at + 2 + tokens[at + 1]
    removed.fill(1, tokens[operands], tokens[operands] + tokens[operands + 1])
    at = operands + 3
  }
  let kept = 0
  for (let i = 0; i < array.length; i++) {
    if (!removed[i]) array[kept++] = array[i]
  }
  array.length = kept
  return at
}

function splice (array, start, deleteCount, items) {
  // Spreading a huge item list would overflow the call stack; large inserts go in chunks.
  if (items.length < 10000) {
    array.splice(start, deleteCount, ...items)
  } else {
    array.splice(start, deleteCount)
    for (let i = 0; i < items.length; i += 10000) array.splice(start + i, 0, ...items.slice(i, i + 10000))
  }
}

function applyChanges (root, { tokens, at, count }) {
  for (let c = 0; c < count; c++) {
    const from = at + 2
    const to = from + tokens[at + 1]
    switch (tokens[at]) {
      case 's':
        assign(parentOf(root, tokens, from, to, true), tokens[to - 1], tokens[to])
        at = to + 1
        break
      case 'u':
        take(root, tokens, from, to)
        at = to
        break
      case 'p': {
        const array = getAt(root, tokens, from, to)
        const run = removalRun(tokens, at, count - c)
        if (run > 1) {
          at = removeRun(array, tokens, at, run)
          c += run - 1
        } else {
          splice(array, tokens[to], tokens[to + 1], tokens[to + 2])
          at = to + 3
        }
        break
      }
      case 'm': {
        const end = to + 1 + tokens[to]
        assign(parentOf(root, tokens, to + 1, end, true), tokens[end - 1], take(root, tokens, from, to))
        at = end
        break
      }
      default:
        throw new Error(`memsync: the addon sent an unknown change '${tokens[at]}'`)
    }
  }
}

// A change at keys[from..to) concerns an observer of `observed` when one path is a prefix of the
// other (the path itself, a parent or a child was touched).
function related (observed, keys, from, to) {
  const n = Math.min(observed.length, to - from)
  for (let i = 0; i < n; i++) {
    if (observed[i] !== String(keys[from + i])) return false
  }
  return true
}

/** Whether any change of `changes` (a ChangeList) concerns an observer of `observed`. */
function touches (observed, { tokens, at, count }) {
  for (let c = 0; c < count; c++) {
    const to = at + 2 + tokens[at + 1]
    if (related(observed, tokens, at + 2, to)) return true
    if (tokens[at] === 'm' && related(observed, tokens, to + 1, to + 1 + tokens[to])) return true
    at = skip(tokens, at)
  }
  return false
}

/** Makes `target` hold exactly what `source` holds, keeping its identity. */
function replaceContents (target, source) {
  for (const key of Object.keys(target)) delete target[key]
  for (const key of Object.keys(source)) assign(target, key, source[key])
}

const isContainer = (value) => value !== null && typeof value === 'object'

/**
 * The shared object as this process shows it: `root` is `mem.data`, a plain object changed in
 * place by the replica's change lists. `repair(document)` compares it with the replica's document
 * (parsed fresh from JSON, so it shares nothing with `root`) and undoes what was written to
 * `root` directly.
 */
class LiveObject {
  root = {}

  constructor (source) {
    this.replace(source)
  }

  /** Applies one change list (a ChangeList) from the replica. */
  apply (changes) {
    applyChanges(this.root, changes)
  }

  /** Makes `root` hold exactly what `source` (fresh from JSON) holds, keeping its identity. */
  replace (source) {
    replaceContents(this.root, source)
  }

  /** Whether `root` digests to `expected` ([a, b], see `digest`), as the replica's document does. */
  matches ([a, b]) {
    const [ownA, ownB] = digest(this.root)
    return ownA === a && ownB === b
  }

  /**
   * Makes `root` equal `document` (the replica's, after the same changes) again, in place where
   * the shape still matches (a reference the application holds stays live), taking the values it
   * restores from `document`. Returns the dotted paths it restored; O(size of the object).
   */
  repair (document) {
    const found = []
    restore(this.root, document, [], found)
    return found
  }
}

// Restores container `live` (an array or object, as `document` is) to `document`; `path` is its
// place, a stack shared by the whole walk, copied only for what is found.
function restore (live, document, path, found) {
  if (Array.isArray(document)) {
    if (live.length !== document.length) {
      found.push(path.join('.'))
      live.length = 0
      for (const item of document) live.push(item)
      return
    }
    for (let i = 0; i < document.length; i++) restoreSlot(live, i, document[i], path, found)
    return
  }
  for (const key of Object.keys(live)) {
    if (!hasOwn(document, key)) {
      found.push([...path, key].join('.'))
      delete live[key]
    }
  }
  for (const key of Object.keys(document)) restoreSlot(live, key, document[key], path, found)
}

function restoreSlot (parent, key, expected, path, found) {
  const actual = child(parent, key)
  path.push(key)
  // A container the application froze cannot be restored in place: it is replaced.
  if (isContainer(expected) && isContainer(actual) && Array.isArray(expected) === Array.isArray(actual) && !Object.isFrozen(actual)) {
    restore(actual, expected, path, found)
  } else if (actual !== expected || !hasOwn(parent, key)) {
    found.push(path.join('.'))
    assign(parent, key, expected)
  }
  path.pop()
}

// The digest of src/core/digest.rs, computed alike over `data` (that file says what it reads).
// Each function returns lane a and leaves lane b in `laneB`, so the walk allocates nothing.
const SEED_A = 0
const SEED_B = 0x9747b28c | 0
const NULL = 1
const FALSE = 2
const TRUE = 3
const NUMBER = 4
const STRING = 5
const ARRAY = 6
const OBJECT = 7
// What JSON cannot hold and a direct write may leave (undefined, NaN, Infinity, a function): no
// document digests to this.
const OTHER = 8
let laneB = 0
const doubleView = new DataView(new ArrayBuffer(8))

function step (hash, word) {
  word = Math.imul(word, 0xcc9e2d51 | 0)
  word = Math.imul((word << 15) | (word >>> 17), 0x1b873593)
  hash ^= word
  hash = (hash << 13) | (hash >>> 19)
  return (Math.imul(hash, 5) + (0xe6546b64 | 0)) | 0
}

function finish (hash) {
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b | 0)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35 | 0)
  return hash ^ (hash >>> 16)
}

// The digest of a value that holds nothing but its kind (null, true, false, OTHER).
function digestLeaf (tag) {
  laneB = finish(SEED_B ^ tag)
  return finish(SEED_A ^ tag)
}

function digestString (text) {
  let a = SEED_A ^ STRING
  let b = SEED_B ^ STRING
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    a = step(a, unit)
    b = step(b, unit)
  }
  laneB = finish(b ^ text.length)
  return finish(a ^ text.length)
}

function digestValue (value) {
  switch (typeof value) {
    case 'string':
      return digestString(value)
    case 'number': {
      if (!Number.isFinite(value)) break
      doubleView.setFloat64(0, value === 0 ? 0 : value, true)
      const low = doubleView.getUint32(0, true) | 0
      const high = doubleView.getUint32(4, true) | 0
      laneB = finish(step(step(SEED_B ^ NUMBER, low), high))
      return finish(step(step(SEED_A ^ NUMBER, low), high))
    }
    case 'boolean':
      return digestLeaf(value ? TRUE : FALSE)
    case 'object': {
      if (value === null) return digestLeaf(NULL)
      if (Array.isArray(value)) {
        let a = SEED_A ^ ARRAY
        let b = SEED_B ^ ARRAY
        for (let i = 0; i < value.length; i++) {
          a = step(a, digestValue(value[i]))
          b = step(b, laneB)
        }
        laneB = finish(b ^ value.length)
        return finish(a ^ value.length)
      }
      let sumA = 0
      let sumB = 0
      const keys = Object.keys(value)
      for (const key of keys) {
        const keyA = digestString(key)
        const keyB = laneB
        const itemA = digestValue(value[key])
        sumA = (sumA + finish(step(step(SEED_A, keyA), itemA))) | 0
        sumB = (sumB + finish(step(step(SEED_B, keyB), laneB))) | 0
      }
      laneB = finish(step(SEED_B ^ OBJECT, sumB) ^ keys.length)
      return finish(step(SEED_A ^ OBJECT, sumA) ^ keys.length)
    }
  }
  return digestLeaf(OTHER)
}

/** The digest of `value` as src/core/digest.rs computes it: two unsigned 32-bit numbers. */
function digest (value) {
  const a = digestValue(value)
  return [a >>> 0, laneB >>> 0]
}

module.exports = { ChangeList, LiveObject, digest, getAt, touches }
