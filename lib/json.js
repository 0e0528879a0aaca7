'use strict'
// Values cross to the native side and to other processes as JSON. JSON.stringify silently drops or
// rewrites what JSON cannot carry (undefined, functions, NaN, Map...); memsync rejects such values
// instead, naming the path, so that no process ever stores something other than what was written.

const native = require('../native.js')
const { MemErrors, codedError } = require('./errors.js')

// Objects JSON.stringify would turn into `{}` or lose.
const LOSSY = [Map, Set, WeakMap, WeakSet, RegExp, Promise, ArrayBuffer, SharedArrayBuffer, Error]

/** MongoDB's nesting limit, which the native engine holds every document to. */
const MAX_DEPTH = native.limits().maxDepth

function describe (value) {
  if (value === undefined) return 'undefined'
  if (typeof value === 'number') return String(value)
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'symbol') return 'a symbol'
  if (typeof value === 'bigint') return `the BigInt ${value}n`
  if (typeof value === 'string') return 'a string that is not well-formed UTF-16 (a lone surrogate)'
  if (value instanceof Date) return 'an invalid Date'
  if (value instanceof Number) return `a Number object of ${value}`
  const name = value.constructor?.name ?? 'special object'
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`
}

const where = (keys) => keys.length === 0 ? '' : ` at '${keys.join('.')}'`

function reject (what, keys, value, hint = '') {
  throw codedError(MemErrors.ERR_BAD_VALUE, `${what} holds ${describe(value)}${where(keys)}, which JSON cannot carry${hint}`)
}

// What made JSON.stringify throw, and where: a BigInt or a cycle. Runs only after it threw, so it
// may be slow; null when it is neither (a getter or toJSON that throws).
function locate (value, keys, ancestors) {
  if (typeof value === 'bigint' || value instanceof BigInt) return `the BigInt ${value}n${where(keys)}`
  if (value === null || typeof value !== 'object') return null
  if (ancestors.has(value)) return `a cycle${where(keys)} (a reference to an object that contains it)`
  ancestors.add(value)
  try {
    if (typeof value.toJSON === 'function') return locate(value.toJSON(String(keys.at(-1) ?? '')), keys, ancestors)
    for (const key of Object.keys(value)) {
      const found = locate(value[key], [...keys, key], ancestors)
      if (found !== null) return found
    }
    return null
  } catch {
    return null
  } finally {
    ancestors.delete(value)
  }
}

// Objects that are not plain objects or arrays: rejected, or checked as what JSON.stringify makes
// of them. Returns true when `value` needs no further walk.
function checkSpecial (value, keys, what, maxDepth, nulls) {
  if (ArrayBuffer.isView(value) || LOSSY.some((type) => value instanceof type)) {
    reject(what, keys, value, value instanceof RegExp ? ' (use { $regex: "..." })' : '')
  }
  if (value instanceof Date) {
    // JSON.stringify sends an invalid Date as null.
    if (Number.isNaN(value.getTime())) reject(what, keys, value)
    return true
  }
  // Boxed primitives are sent as their primitive: a Number of NaN as null, a Symbol as {}.
  if (value instanceof Number) {
    if (!Number.isFinite(value.valueOf())) reject(what, keys, value)
    return true
  }
  if (value instanceof String || value instanceof Boolean) return true
  if (value instanceof Symbol) reject(what, keys, Symbol.prototype.valueOf.call(value))
  // Anything else with toJSON is sent as what toJSON returns (as JSON.stringify does): check that.
  if (typeof value.toJSON === 'function') {
    check(value.toJSON(String(keys[keys.length - 1] ?? '')), keys, what, maxDepth, nulls)
    return true
  }
  return false
}

// `keys` is the path walked so far, joined only for an error: building path strings for every
// value would cost more than the JSON encoding itself on the patch() hot path. `nulls`, when
// given, takes `undefined` as null (and records that it met one) instead of rejecting it.
function check (value, keys, what, maxDepth, nulls) {
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) reject(what, keys, value)
      return
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) reject(what, keys, value)
      return
    case 'object':
      break
    case 'undefined':
      if (nulls !== undefined) {
        nulls.found = true
        return
      }
      reject(what, keys, value)
      break
    default:
      reject(what, keys, value)
  }
  if (value === null) return
  const isArray = Array.isArray(value)
  if (!isArray && Object.getPrototypeOf(value) !== Object.prototype && checkSpecial(value, keys, what, maxDepth, nulls)) return
  if (keys.length >= maxDepth) throw nestingError(what, maxDepth, keys)
  if (isArray) {
    for (let i = 0; i < value.length; i++) {
      keys.push(i)
      check(value[i], keys, what, maxDepth, nulls)
      keys.pop()
    }
  } else {
    for (const key of Object.keys(value)) {
      keys.push(key)
      if (!key.isWellFormed()) {
        throw codedError(MemErrors.ERR_BAD_VALUE, `${what} has a key that is not well-formed UTF-16 (a lone surrogate) at '${keys.join('.')}', which JSON cannot carry`)
      }
      check(value[key], keys, what, maxDepth, nulls)
      keys.pop()
    }
  }
}

function nestingError (what, maxDepth, keys) {
  return codedError(MemErrors.ERR_BAD_VALUE, `${what} nests deeper than ${maxDepth} levels at '${keys.slice(0, 5).join('.')}...', more than a document may nest`)
}

/**
 * The first `maxDepth` keys of a path along which `value` nests deeper than `maxDepth` levels, or
 * null. A loop, not a recursion: it runs where JSON.stringify has just run out of stack.
 */
function deeperThan (value, maxDepth) {
  const pending = [[value, []]]
  const seen = new Set()
  while (pending.length > 0) {
    const [node, keys] = pending.pop()
    if (node === null || typeof node !== 'object' || seen.has(node)) continue
    if (keys.length >= maxDepth) return keys
    seen.add(node)
    for (const key of Object.keys(node)) pending.push([node[key], [...keys, Array.isArray(node) ? Number(key) : key]])
  }
  return null
}

const undefinedAsNull = (key, value) => value === undefined ? null : value

// Characters a JSON string must escape (lone surrogates are refused before this is asked).
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/
// Values (objects, arrays and primitives) past which `plainJson` hands a value to JSON.stringify:
// building a long text by concatenation costs more than V8's encoder does.
const PLAIN_JSON_MAX_VALUES = 256
// Left for the current `toJson` call. A getter that calls toJson again resets it, which only moves
// the point where the walk gives up, never the text.
let plainValuesLeft = 0

function quoted (string) {
  return NEEDS_ESCAPE.test(string) ? JSON.stringify(string) : `"${string}"`
}

/**
 * The JSON text of a value made only of plain objects, arrays and JSON's primitives, as
 * JSON.stringify writes it, checked on the same walk; undefined for anything else (a special
 * object, a value JSON cannot carry, a toJSON, a deep or large value), which `toJson` then
 * encodes and checks the thorough way. An update is almost always such a value, and on Node 20
 * JSON.stringify looks up toJSON on every object: with `check`'s walk, a fifth of a patch() loop.
 */
function plainJson (value, depthLeft, nullForUndefined) {
  if (--plainValuesLeft < 0) return undefined
  switch (typeof value) {
    case 'string':
      return value.isWellFormed() ? quoted(value) : undefined
    case 'number':
      return Number.isFinite(value) ? String(value) : undefined
    case 'boolean':
      return value ? 'true' : 'false'
    case 'undefined':
      return nullForUndefined ? 'null' : undefined
    case 'object':
      break
    default:
      return undefined
  }
  if (value === null) return 'null'
  if (depthLeft === 0) return undefined
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return undefined
    let text = '['
    for (let i = 0; i < value.length; i++) {
      const item = plainJson(value[i], depthLeft - 1, nullForUndefined)
      if (item === undefined) return undefined
      text += i === 0 ? item : ',' + item
    }
    return text + ']'
  }
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return undefined
  let text = '{'
  for (const key of Object.keys(value)) {
    if (!key.isWellFormed()) return undefined
    const item = plainJson(value[key], depthLeft - 1, nullForUndefined)
    if (item === undefined) return undefined
    // Four concatenations a field (each makes V8 a string), where quoting the key apart took six.
    const name = NEEDS_ESCAPE.test(key) ? JSON.stringify(key).slice(1, -1) : key
    text += (text.length === 1 ? '"' : ',"') + name + '":' + item
  }
  return text + '}'
}

/**
 * JSON text of `value`, or an ERR_BAD_VALUE error naming the first path JSON cannot carry.
 * `maxDepth`: how many levels of objects and arrays `value` may nest; `maxBytes`: how long its
 * UTF-8 text may be; `nullForUndefined`: an `undefined` below the top is sent as null (in
 * object fields and array slots, holes included), as the MongoDB Node driver sends it.
 */
function toJson (value, what, maxDepth = MAX_DEPTH, maxBytes = Infinity, nullForUndefined = false) {
  plainValuesLeft = PLAIN_JSON_MAX_VALUES
  // A toJSON on the prototypes would be called by JSON.stringify on every object or array.
  let text = Object.prototype.toJSON === undefined && Array.prototype.toJSON === undefined
    ? plainJson(value, maxDepth, nullForUndefined)
    : undefined
  if (text === undefined) text = checkedJson(value, what, maxDepth, nullForUndefined)
  // A character takes at most 3 bytes: most texts need no count.
  if (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes) {
    throw codedError(MemErrors.ERR_BAD_VALUE, `${what} takes ${Buffer.byteLength(text)} bytes as JSON, more than the ${maxBytes} it may`)
  }
  return text
}

/** `toJson`'s text of any value, through JSON.stringify, and the walk that checks it. */
function checkedJson (value, what, maxDepth, nullForUndefined) {
  let text
  try {
    // First, so that the walk below never meets a cycle: JSON.stringify throws on those.
    text = JSON.stringify(value)
  } catch (error) {
    // Too deep for JSON.stringify's stack, far beyond what a document may nest.
    const tooDeep = deeperThan(value, maxDepth)
    if (tooDeep !== null) throw nestingError(what, maxDepth, tooDeep)
    const found = locate(value, [], new Set())
    throw codedError(MemErrors.ERR_BAD_VALUE, found === null
      ? `${what} cannot be sent as JSON: ${error.message}`
      : `${what} holds ${found}, which JSON cannot carry`)
  }
  const nulls = nullForUndefined ? { found: false } : undefined
  check(value, [], what, maxDepth, nulls)
  // JSON.stringify drops an undefined field: encoded again, rarely, so that it is kept as null.
  if (nulls?.found) text = JSON.stringify(value, undefinedAsNull)
  return text
}

module.exports = { toJson }
