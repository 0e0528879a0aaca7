'use strict'
// Values cross to the native side and to other processes as JSON. JSON.stringify silently drops or
// rewrites what JSON cannot carry (undefined, functions, NaN, Map...); memsync rejects such values
// instead, naming the path, so that no process ever stores something other than what was written.

const { MemErrors, codedError } = require('./errors.js')

// Objects JSON.stringify would turn into `{}` or lose.
const LOSSY = [Map, Set, WeakMap, WeakSet, RegExp, Promise, ArrayBuffer, SharedArrayBuffer]

function describe (value) {
  if (value === undefined) return 'undefined'
  if (typeof value === 'number') return String(value)
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'symbol') return 'a symbol'
  if (typeof value === 'bigint') return `the BigInt ${value}n`
  return `a ${value.constructor?.name ?? 'special object'}`
}

function reject (what, keys, value, hint = '') {
  const where = keys.length === 0 ? '' : ` at '${keys.join('.')}'`
  throw codedError(MemErrors.ERR_BAD_VALUE, `${what} holds ${describe(value)}${where}, which JSON cannot carry${hint}`)
}

// `keys` is the path walked so far, joined only for an error: building path strings for every
// value would cost more than the JSON encoding itself on the patch() hot path.
function check (value, keys, what) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) reject(what, keys, value)
      return
    case 'object':
      break
    default:
      reject(what, keys, value)
  }
  if (value === null) return
  const isArray = Array.isArray(value)
  if (!isArray && Object.getPrototypeOf(value) !== Object.prototype) {
    if (ArrayBuffer.isView(value) || LOSSY.some((type) => value instanceof type)) {
      reject(what, keys, value, value instanceof RegExp ? ' (use { $regex: "..." })' : '')
    }
    // An object with toJSON (a Date) is sent as what toJSON returns, as JSON.stringify does.
    if (typeof value.toJSON === 'function') return
  }
  if (isArray) {
    for (let i = 0; i < value.length; i++) {
      keys.push(i)
      check(value[i], keys, what)
      keys.pop()
    }
  } else {
    for (const key of Object.keys(value)) {
      keys.push(key)
      check(value[key], keys, what)
      keys.pop()
    }
  }
}

/** JSON text of `value`, or an ERR_BAD_VALUE error naming the first path JSON cannot carry. */
function toJson (value, what) {
  let text
  try {
    // First, so that the walk below never meets a cycle: JSON.stringify throws on those.
    text = JSON.stringify(value)
  } catch (error) {
    throw codedError(MemErrors.ERR_BAD_VALUE, `${what} cannot be sent as JSON: ${error.message}`)
  }
  check(value, [], what)
  return text
}

module.exports = { toJson }
