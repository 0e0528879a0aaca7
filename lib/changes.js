'use strict'
// Applies the engine's change lists (see src/patch/change.rs) to the live JS object in place, so
// `mem.data` keeps its identity and reads stay plain property reads, and finds and undoes direct
// writes to it, which would otherwise leave this process disagreeing with the others for good
// (docs/guarantees.md).
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

// `copy` makes the values the changes carry the tree's own (the truth must share no object with
// `data`, which the application can reach).
function applyChanges (root, changes, copy) {
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
        assign(parentOf(root, path, true), path[path.length - 1], copy(change[2]))
        break
      case 'u':
        take(root, path)
        break
      case 'p': {
        const array = getAt(root, path)
        const items = copy === same ? change[4] : change[4].map(copy)
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

const same = (value) => value
const isContainer = (value) => value !== null && typeof value === 'object'

/** A deep copy of JSON value `value` (faster than structuredClone on the small values of most changes). */
function copyOf (value) {
  if (!isContainer(value)) return value
  if (Array.isArray(value)) return value.map(copyOf)
  const copy = {}
  for (const key of Object.keys(value)) assign(copy, key, copyOf(value[key]))
  return copy
}

/**
 * The shared object as this process shows it (`root` is `mem.data`), beside a private copy of the
 * same, the truth, that only the replica's changes reach. `repair()` compares the two and undoes
 * what was written to `root` directly. Plain objects cost nothing to read; the truth costs a
 * second in-place change per change, and as much memory again as `data`.
 */
class LiveObject {
  root = {}
  #truth = {}

  constructor (source) {
    this.replace(source)
  }

  /** Applies one change list from the replica. */
  apply (changes) {
    applyChanges(this.#truth, changes, copyOf)
    applyChanges(this.root, changes, same)
  }

  /** Makes `root` hold exactly what `source` (fresh from JSON) holds, keeping its identity. */
  replace (source) {
    replaceContents(this.#truth, copyOf(source))
    replaceContents(this.root, source)
  }

  /**
   * Makes `root` equal the truth again, in place where the shape still matches (a reference the
   * application holds stays live). Returns the dotted paths it restored; O(size of the object).
   */
  repair () {
    const found = []
    restore(this.root, this.#truth, [], found)
    return found
  }
}

// Restores container `live` (an array or object, as `truth` is) to `truth`; `path` is its place,
// a stack shared by the whole walk, copied only for what is found.
function restore (live, truth, path, found) {
  if (Array.isArray(truth)) {
    if (live.length !== truth.length) {
      found.push(path.join('.'))
      live.length = 0
      for (const item of truth) live.push(copyOf(item))
      return
    }
    for (let i = 0; i < truth.length; i++) restoreSlot(live, i, truth[i], path, found)
    return
  }
  for (const key of Object.keys(live)) {
    if (!hasOwn(truth, key)) {
      found.push([...path, key].join('.'))
      delete live[key]
    }
  }
  for (const key of Object.keys(truth)) restoreSlot(live, key, truth[key], path, found)
}

function restoreSlot (parent, key, expected, path, found) {
  const actual = child(parent, key)
  path.push(key)
  // A container the application froze cannot be restored in place: it is replaced.
  if (isContainer(expected) && isContainer(actual) && Array.isArray(expected) === Array.isArray(actual) && !Object.isFrozen(actual)) {
    restore(actual, expected, path, found)
  } else if (actual !== expected || !hasOwn(parent, key)) {
    found.push(path.join('.'))
    assign(parent, key, copyOf(expected))
  }
  path.pop()
}

module.exports = { LiveObject, getAt, touches }
