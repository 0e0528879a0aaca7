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

function reject (what, path, value, hint = '') {
  const where = path === '' ? '' : ` at '${path}'`
  throw codedError(MemErrors.ERR_BAD_VALUE, `${what} holds ${describe(value)}${where}, which JSON cannot carry${hint}`)
}

function join (path, key) {
  return path === '' ? String(key) : `${path}.${key}`
}

function check (value, path, ancestors, what) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) reject(what, path, value)
      return
    case 'object':
      break
    default:
      reject(what, path, value)
  }
  if (value === null) return
  if (ArrayBuffer.isView(value) || LOSSY.some((type) => value instanceof type)) {
    reject(what, path, value, value instanceof RegExp ? ' (use { $regex: "..." })' : '')
  }
  // An object with toJSON (a Date) is sent as what toJSON returns, as JSON.stringify does.
  if (typeof value.toJSON === 'function') return
  if (ancestors.includes(value)) {
    throw codedError(MemErrors.ERR_BAD_VALUE, `${what} is cyclic at '${path}'`)
  }
  ancestors.push(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) check(value[i], join(path, i), ancestors, what)
  } else {
    for (const key in value) {
      if (Object.hasOwn(value, key)) check(value[key], join(path, key), ancestors, what)
    }
  }
  ancestors.pop()
}

/** JSON text of `value`, or an ERR_BAD_VALUE error naming the first path JSON cannot carry. */
function toJson (value, what) {
  check(value, '', [], what)
  return JSON.stringify(value)
}

module.exports = { toJson }
