'use strict'
// The drop-in `MemSync` class. It owns what must stay JavaScript: the live `data` object (plain
// property reads, changed in place), observers and events. Everything else is delegated to the
// native replica (src/binding.rs), which runs the patch engine.

const { EventEmitter } = require('node:events')
const native = require('../native.js')
const { applyChanges, getAt, touches } = require('./changes.js')
const { MemErrors, codedError } = require('./errors.js')
const { toJson } = require('./json.js')

const RESOLVED = Promise.resolve()
const DEFAULT_TIMEOUT_MS = 15000

function isPlainObject (value) {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function checkOptions (options) {
  if (options === undefined || options === null) return {}
  if (typeof options !== 'object') {
    throw codedError(MemErrors.ERR_INVALID_ARG, `options must be an object, not ${typeof options}`)
  }
  const { timeout } = options
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && timeout <= 2 ** 31 - 1)) {
    throw codedError(MemErrors.ERR_INVALID_ARG, `options.timeout must be a positive number of milliseconds, not ${timeout}`)
  }
  for (const flag of ['clientOnly', 'serverOnly', 'logEvents']) {
    if (options[flag] !== undefined && typeof options[flag] !== 'boolean') {
      throw codedError(MemErrors.ERR_INVALID_ARG, `options.${flag} must be a boolean`)
    }
  }
  if (options.clientOnly && options.serverOnly) {
    throw codedError(MemErrors.ERR_INVALID_ARG, 'options.clientOnly and options.serverOnly exclude each other')
  }
  return options
}

function deferred () {
  let resolve
  const promise = new Promise((resolve_) => { resolve = resolve_ })
  return { promise, resolve }
}

/** The process-wide event bus of one object (`mem.events`). */
class EventBus {
  #emitter = new EventEmitter()

  on (event, listener) { this.#emitter.on(event, listener); return this }
  once (event, listener) { this.#emitter.once(event, listener); return this }
  off (event, listener) { this.#emitter.off(event, listener); return this }
  emit (event, ...args) { return this.#emitter.emit(event, ...args) }
}

class MemSync {
  /** The object's name, shared by every process that syncs it. */
  name
  /** The options given to the constructor. */
  options
  /** The live shared object: a plain object, changed in place by patches. */
  data
  /** Events exchanged between the processes of this object. */
  events = new EventBus()
  /** Resolves with `{ type }` once connected; renewed on disconnect (memsync 0.5). */
  connection

  #native
  #rpc
  #emitter = new EventEmitter()
  #observers = []
  #role = null
  #connected = deferred()

  constructor (nameOrConfig, defaultObject, options) {
    let name = nameOrConfig
    let data = defaultObject
    let rpc
    if (isPlainObject(nameOrConfig)) {
      ({ name, data, rpc, options } = nameOrConfig)
    }
    if (name === undefined || name === null || name === '') {
      throw codedError(MemErrors.ERR_INVALID_NAME, 'Name not set for the MemSync')
    }
    if (typeof name !== 'string') {
      throw codedError(MemErrors.ERR_INVALID_NAME, `The MemSync name must be a string, not ${typeof name}`)
    }
    data ??= {}
    if (!isPlainObject(data)) {
      throw codedError(MemErrors.ERR_BAD_VALUE, 'The default object of a MemSync must be a plain object')
    }
    if (rpc !== undefined && !isPlainObject(rpc)) {
      throw codedError(MemErrors.ERR_INVALID_ARG, 'rpc must be an object of functions')
    }
    this.name = name
    this.options = checkOptions(options)
    this.#rpc = rpc ?? {}
    const text = toJson(data, 'The default object')
    this.#native = native.createInstance(name, text)
    // A copy, not the caller's object: the replica and `data` must start identical.
    this.data = JSON.parse(text)
    this.connection = this.#connected.promise
    if (this.options.logEvents) this.#logEvents()
  }

  /** Joins the network of this name; resolves to the role taken, 'host' or 'client'. */
  async start () {
    if (this.#role !== null) return this.#role
    if (this.options.clientOnly) {
      // Without the sync layer there is never another process to join as a client.
      await new Promise((resolve) => setTimeout(resolve, this.options.timeout ?? DEFAULT_TIMEOUT_MS))
      throw codedError(MemErrors.ERR_TIMEOUT, `No host for '${this.name}' within ${this.options.timeout ?? DEFAULT_TIMEOUT_MS} ms`)
    }
    this.#role = native.start(this.#native, (batch) => this.#onNativeEvents(batch))
    this.#connected.resolve({ type: this.#role })
    this.#emitter.emit('connected', this.#role)
    return this.#role
  }

  /** Leaves the network; a stopped instance never keeps the process alive. */
  async stop () {
    if (this.#role === null) return
    const role = this.#role
    native.stop(this.#native)
    this.#role = null
    this.#connected = deferred()
    this.connection = this.#connected.promise
    this.#emitter.emit('disconnected', role)
  }

  /** Keeps the process alive while started (the default), as `net.Server#ref`. */
  ref () {
    native.setRef(this.#native, true)
    return this
  }

  /** Lets the process exit while started, as `net.Server#unref`. */
  unref () {
    native.setRef(this.#native, false)
    return this
  }

  /**
   * Applies a MongoDB update document. `data` shows the change before this returns; the promise
   * settles when the change is accepted, or rejects (with `code`) leaving `data` untouched.
   */
  patch (update) {
    if (!isPlainObject(update)) {
      return Promise.reject(codedError(MemErrors.ERR_BAD_VALUE, 'The update must be a plain object such as { $set: { a: 1 } }'))
    }
    let applied
    try {
      applied = native.patch(this.#native, toJson(update, 'The update'))
    } catch (error) {
      return Promise.reject(error)
    }
    if (applied !== null) this.#applyLocal(update, applied)
    return RESOLVED
  }

  /** Calls `callback(value)` whenever a patch touches `path`, a parent or a child of it. */
  observe (path, callback) {
    if (typeof path !== 'string') throw codedError(MemErrors.ERR_INVALID_ARG, 'observe(path, callback): path must be a string')
    if (typeof callback !== 'function') throw codedError(MemErrors.ERR_INVALID_ARG, 'observe(path, callback): callback must be a function')
    this.#observers.push({ path, parts: path === '' ? [] : path.split('.'), callback })
    return this
  }

  /** Removes `callback`, or every callback, observing `path`. */
  unobserve (path, callback) {
    this.#observers = this.#observers.filter((o) => o.path !== path || (callback !== undefined && o.callback !== callback))
    return this
  }

  on (event, listener) { this.#emitter.on(event, listener); return this }
  once (event, listener) { this.#emitter.once(event, listener); return this }
  off (event, listener) { this.#emitter.off(event, listener); return this }

  /** Resolves with the first argument of the next `event`. */
  onceAsync (event) {
    return new Promise((resolve) => this.#emitter.once(event, resolve))
  }

  /** Where this instance stands. */
  async getStatus () {
    const role = this.#role
    return {
      status: role ?? 'stopped',
      channel: role,
      name: this.name,
      version: native.version(this.#native),
      host: { started: role === 'host', connections: 0 }
    }
  }

  /** Round-trip times to the host and clients, in ms. */
  async ping () {
    if (this.#role === 'host') return { connection: 'host', host: { time: 0 }, clients: [] }
    return { connection: this.#role, host: null }
  }

  /** Runs an RPC method registered by a process of this object; resolves to `{ result }`. */
  async call (method, ...args) {
    const fn = getAt(this.#rpc, method.split('.'))
    if (typeof fn !== 'function') {
      throw codedError(MemErrors.ERR_RPC_NOT_FOUND, `The handler for "${method}" RPC call was not found`)
    }
    const result = await fn(...args)
    return { type: 'rpc', status: 'ok', params: args, result }
  }

  /** Saves the object to `options.file.path`. */
  async flush () {
    if (this.options.file?.path === undefined) throw codedError(MemErrors.ERR_NO_STORAGE, 'Storage not defined')
  }

  /** Accepted for memsync 0.5 compatibility; options are fixed at construction. */
  setOptions () {}

  #applyLocal (update, applied) {
    const [version, changes] = JSON.parse(applied)
    applyChanges(this.data, changes)
    this.#notify(changes)
    if (this.#emitter.listenerCount('change') > 0) {
      this.#emitter.emit('change', { version, timestamp: Date.now(), patch: update })
    }
  }

  #notify (changes) {
    if (this.#observers.length === 0) return
    for (const observer of this.#observers.slice()) {
      if (!touches(observer.parts, changes)) continue
      try {
        observer.callback(getAt(this.data, observer.parts))
      } catch (error) {
        this.#reportError(error)
      }
    }
  }

  // Batches from the Rust side: changes ordered by other processes (the sync layer).
  #onNativeEvents (batch) {
    for (const { version, timestamp, patch, changes } of JSON.parse(batch)) {
      applyChanges(this.data, changes)
      this.#notify(changes)
      this.#emitter.emit('change', { version, timestamp, patch })
    }
  }

  // memsync 0.5's `logEvents`: every instance event on the console.
  #logEvents () {
    for (const event of ['connected', 'disconnected', 'change', 'receivedPatches', 'error']) {
      this.#emitter.on(event, (payload) => console.log(`memsync '${this.name}' ${event}:`, payload))
    }
  }

  #reportError (error) {
    if (this.#emitter.listenerCount('error') > 0) {
      this.#emitter.emit('error', error)
    } else {
      console.error(`memsync '${this.name}':`, error)
    }
  }
}

module.exports = { MemSync, MemErrors }
