'use strict'
// Applies the engine's change lists (see src/patch/change.rs) to the live JS object in place, so
// `mem.data` keeps its identity and reads stay plain property reads, and finds and undoes direct
// writes to it against the replica's document, which would otherwise leave this process
// disagreeing with the others for good (docs/guarantees.md).
//
// A change is ['s', path, value] (set, creating missing objects and padding arrays with null),
// ['u', path] (delete a key), ['p', path, start, deleteCount, items] (splice an array) or
// ['m', from, to] (rename). Path components are strings (keys) or numbers (array indexes).

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

function parentOf (root, path, create) {
  let node = root
  for (let i = 0; i < path.length - 1; i++) {
    let next = child(node, path[i])
    if (next === undefined) {
      if (!create) return undefined
      next = {}
      assign(node, path[i], next)
    }
    node = next
  }
  return node
}

function getAt (root, path) {
  let node = root
  for (let i = 0; i < path.length; i++) {
    if (node === null || typeof node !== 'object') return undefined
    node = child(node, path[i])
  }
  return node
}

function take (root, path) {
  const parent = parentOf(root, path, false)
  const key = path[path.length - 1]
  if (parent === undefined || !hasOwn(parent, key)) return undefined
  const value = parent[key]
  delete parent[key]
  return value
}

function samePath (a, b) {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

// How many changes from `first` are pure removals from one array, each below the previous (what
// $pull emits). One splice each would shift the tail every time, quadratic on a long array, so
// such a run is applied in one pass, as src/patch/change.rs does.
function removalRun (changes, first) {
  const head = changes[first]
  if (head[0] !== 'p' || head[4].length !== 0) return 0
  let floor = head[2]
  let length = 1
  for (let i = first + 1; i < changes.length; i++) {
    const next = changes[i]
    if (next[0] !== 'p' || next[4].length !== 0 || next[2] + next[3] > floor || !samePath(next[1], head[1])) break
    floor = next[2]
    length++
  }
  return length
}

function removeRuns (root, run) {
  const array = getAt(root, run[0][1])
  const removed = new Uint8Array(array.length)
  for (const [, , start, count] of run) removed.fill(1, start, start + count)
  let kept = 0
  for (let i = 0; i < array.length; i++) {
    if (!removed[i]) array[kept++] = array[i]
  }
  array.length = kept
}

function applyChanges (root, changes) {
  for (let i = 0; i < changes.length; i++) {
    const run = removalRun(changes, i)
    if (run > 1) {
      removeRuns(root, changes.slice(i, i + run))
      i += run - 1
      continue
    }
    const change = changes[i]
    const path = change[1]
    switch (change[0]) {
      case 's':
        assign(parentOf(root, path, true), path[path.length - 1], change[2])
        break
      case 'u':
        take(root, path)
        break
      case 'p': {
        const array = getAt(root, path)
        const items = change[4]
        // Spreading a huge item list would overflow the call stack; large inserts go in chunks.
        if (items.length < 10000) {
          array.splice(change[2], change[3], ...items)
        } else {
          array.splice(change[2], change[3])
          for (let i = 0; i < items.length; i += 10000) array.splice(change[2] + i, 0, ...items.slice(i, i + 10000))
        }
        break
      }
      case 'm':
        assign(parentOf(root, change[2], true), change[2][change[2].length - 1], take(root, path))
        break
      default:
        throw new Error(`Unknown change type ${JSON.stringify(change[0])}`)
    }
  }
}

// A change at `changed` concerns an observer of `observed` when one path is a prefix of the other
// (the path itself, a parent or a child was touched).
function related (observed, changed) {
  const n = Math.min(observed.length, changed.length)
  for (let i = 0; i < n; i++) {
    if (observed[i] !== String(changed[i])) return false
  }
  return true
}

function touches (observed, changes) {
  for (const change of changes) {
    if (related(observed, change[1])) return true
    if (change[0] === 'm' && related(observed, change[2])) return true
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

  /** Applies one change list from the replica. */
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

module.exports = { LiveObject, digest, getAt, touches }
