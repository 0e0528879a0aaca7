'use strict'
// Argument checks of the public API that are not about JSON values (lib/json.js does those): a
// wrong type or shape throws ERR_INVALID_ARG naming the argument, before anything is changed,
// rather than a TypeError from deep inside or a silent no-op.

const { MemErrors, codedError } = require('./errors.js')

function invalid (message) {
  return codedError(MemErrors.ERR_INVALID_ARG, message)
}

function isPlainObject (value) {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function typeOf (value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value
}

/** `value` for a message: JSON when it has some, else its type. */
function shown (value) {
  try {
    return JSON.stringify(value) ?? typeOf(value)
  } catch {
    return typeOf(value)
  }
}

/** An event name, as EventEmitter takes it: a string or a symbol. */
function checkEventName (event, call) {
  if (typeof event !== 'string' && typeof event !== 'symbol') {
    throw invalid(`${call}: the event name must be a string, not ${typeOf(event)}`)
  }
}

function checkListener (listener, call) {
  if (typeof listener !== 'function') {
    throw invalid(`${call}: the listener must be a function, not ${typeOf(listener)}`)
  }
}

/** A dotted path of `data` ('' is the whole object): no empty component, which nothing could touch. */
function checkPath (path, call) {
  if (typeof path !== 'string') throw invalid(`${call}: path must be a string, not ${typeOf(path)}`)
  if (path !== '' && path.split('.').includes('')) {
    throw invalid(`${call}: path '${path}' has an empty component`)
  }
}

/** A dotted RPC method name. */
function checkMethod (method) {
  if (typeof method !== 'string' || method === '' || method.split('.').includes('')) {
    throw invalid(`call(method, ...args): method must be a dotted name such as 'jobs.add', not ${typeof method === 'string' ? `'${method}'` : typeOf(method)}`)
  }
}

/** `rpc`: functions, or tables of them, at any depth. */
function checkRpc (rpc, path = 'rpc') {
  if (!isPlainObject(rpc)) throw invalid(`${path} must be an object of functions, not ${typeOf(rpc)}`)
  for (const [key, value] of Object.entries(rpc)) {
    if (typeof value !== 'function') checkRpc(value, `${path}.${key}`)
  }
}

function checkSection (options, section, fields) {
  const value = options[section]
  if (value === undefined) return
  if (!isPlainObject(value)) throw invalid(`options.${section} must be an object, not ${typeOf(value)}`)
  for (const [field, valid, expected] of fields) {
    if (value[field] !== undefined && !valid(value[field])) {
      throw invalid(`options.${section}.${field} must be ${expected}, not ${shown(value[field])}`)
    }
  }
}

/** memsync 0.5's nested options `peer.roles` and `network.maxWriters`, and `network.maxBuffer`
 * and `network.maxPending`
 * (`file` and `server` are checked with the services, lib/memsync.js). */
function checkNestedOptions (options) {
  checkSection(options, 'peer', [
    ['roles', (roles) => Array.isArray(roles) && roles.every((role) => typeof role === 'string'), 'an array of strings']
  ])
  checkSection(options, 'network', [
    // Sent as a 32-bit count.
    ['maxWriters', (n) => Number.isSafeInteger(n) && n > 0 && n < 2 ** 32, 'a positive integer'],
    // Below 1 MiB most snapshots would not fit, and their clients could never join.
    ['maxBuffer', (n) => Number.isSafeInteger(n) && n >= 2 ** 20, 'a number of bytes of at least 1 MiB (1048576)'],
    ['maxPending', (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer']
  ])
}

/**
 * The keys an object argument takes, by where it is given: the constructor's object form,
 * `options` and each nested option object (memsync 0.5's `logLevel`, of `setOptions`, is accepted
 * everywhere), and the options form of `call`.
 */
const KNOWN_KEYS = {
  'new MemSync({ ... })': ['name', 'data', 'rpc', 'options'],
  options: ['clientOnly', 'serverOnly', 'logEvents', 'logLevel', 'timeout', 'hostTimeout', 'dir', 'transport', 'durability', 'peer', 'network', 'file', 'server'],
  'options.peer': ['roles'],
  'options.network': ['maxWriters', 'maxBuffer', 'maxPending'],
  'options.file': ['path', 'followSymlinks'],
  'options.server': ['port', 'host', 'token'],
  'call({ ... }, ...args)': ['method', 'signal']
}

/** How many single-character edits turn `a` into `b` (Levenshtein). */
function editDistance (a, b) {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    row = next
  }
  return row[b.length]
}

/** Throws for a key of `object` that `where` does not take, naming the closest one it does. */
function checkKeys (object, where) {
  const known = KNOWN_KEYS[where]
  for (const key of Object.keys(object)) {
    if (known.includes(key)) continue
    // Case-insensitive, so that 'timeOut' finds 'timeout' before a shorter neighbour.
    const distances = known.map((candidate) => editDistance(key.toLowerCase(), candidate.toLowerCase()))
    const closest = known[distances.indexOf(Math.min(...distances))]
    const section = where.startsWith('options.') ? `${where.slice('options.'.length)}.` : ''
    throw invalid(`unknown ${where.startsWith('options') ? 'option' : 'key'} '${section}${key}'; did you mean '${section}${closest}'? (${where} takes ${known.map((k) => `'${k}'`).join(', ')})`)
  }
}

/** Unknown keys of `options` and of its nested option objects (their types are checked elsewhere). */
function checkOptionKeys (options) {
  checkKeys(options, 'options')
  for (const section of ['peer', 'network', 'file', 'server']) {
    if (isPlainObject(options[section])) checkKeys(options[section], `options.${section}`)
  }
}

module.exports = { checkEventName, checkKeys, checkListener, checkMethod, checkNestedOptions, checkOptionKeys, checkPath, checkRpc, isPlainObject }
