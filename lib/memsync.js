'use strict'
// The drop-in `MemSync` class. It owns what must stay JavaScript: the live `data` object (plain
// property reads, changed in place), observers and events. Everything else is delegated to the
// native replica (src/node/binding.rs), which runs the patch engine.

const { EventEmitter } = require('node:events')
const net = require('node:net')
const path = require('node:path')
const { debuglog } = require('node:util')
const native = require('../native.js')
const { LiveObject, getAt, touches } = require('./changes.js')
const { MemErrors, codedError, settle } = require('./errors.js')
const { TAGS, parseEvents } = require('./events.js')
const { ChangeFeed, DEFAULT_BUFFER_SIZE } = require('./feed.js')
const { toJson } = require('./json.js')
const { transportUrl } = require('./transport.js')
const { WaitingPatches } = require('./waiting.js')
const { checkEventName, checkKeys, checkListener, checkMethod, checkNestedOptions, checkOptionKeys, checkPath, checkRpc, isPlainObject } = require('./validate.js')

const RESOLVED = Promise.resolve()
const DEFAULT_TIMEOUT_MS = 15000
// How deep and large an update may be: checked here so that the error names the path; the
// engine also checks the document's exact depth.
const { maxUpdateDepth: UPDATE_MAX_DEPTH, maxUpdateBytes: UPDATE_MAX_BYTES, maxBusBacklog: MAX_BUS_BACKLOG, maxEventBacklog: MAX_EVENT_BACKLOG } = native.limits()
// `NODE_DEBUG=memsync`: the JS side's diagnostics, each line tagged as logEvents' are.
const debug = debuglog('memsync')
// Node 20 may lack Symbol.asyncDispose; Node's own classes use this one then.
const asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')
// The check of `data` against the replica's document (lib/changes.js) runs at most this often,
// and takes at most 1/REPAIR_SPACING of the time on a big object.
const REPAIR_INTERVAL_MS = 1000
const REPAIR_SPACING = 50
// A burst of patches made in one go is sent every BURST_FLUSH patches rather than at the end of
// the turn, so that the host orders the first while the rest are still being made.
const BURST_FLUSH = 1024
// Options a started instance takes at once; the others wait for a stop, or for a new instance.
const LIVE_OPTIONS = ['timeout', 'logEvents', 'logLevel']
const FIXED_OPTIONS = ['dir', 'file', 'server', 'transport', 'durability']

// The events of the native replica; src/core/events.rs documents each one's fields. `digest` and
// `document` come only last from drainForCheck, which reads them by position.
const [OWN, CHANGES, SNAPSHOT, ACK, ACCEPTED, REJECTED, ROLE, FAIL, CALL, REPLY, PONG, GRANT, EVENTS_DROPPED, EMIT, ERROR, DEBUG, WARNING] = TAGS

function checkOptions (options) {
  if (options === undefined || options === null) return {}
  if (!isPlainObject(options)) {
    throw codedError(MemErrors.ERR_INVALID_ARG, `options must be an object, not ${Array.isArray(options) ? 'an array' : typeof options}`)
  }
  checkOptionKeys(options)
  for (const field of ['timeout', 'hostTimeout']) {
    const ms = options[field]
    if (ms !== undefined && !(typeof ms === 'number' && ms > 0 && ms <= 2 ** 31 - 1)) {
      throw codedError(MemErrors.ERR_INVALID_ARG, `options.${field} must be a positive number of milliseconds, not ${ms}`)
    }
  }
  for (const flag of ['clientOnly', 'serverOnly', 'logEvents']) {
    if (options[flag] !== undefined && typeof options[flag] !== 'boolean') {
      throw codedError(MemErrors.ERR_INVALID_ARG, `options.${flag} must be a boolean`)
    }
  }
  if (options.dir !== undefined && (typeof options.dir !== 'string' || options.dir === '')) {
    throw codedError(MemErrors.ERR_INVALID_ARG, 'options.dir must be a directory path')
  }
  if (options.transport !== undefined) native.transportTarget(transportUrl(options.transport))
  if (options.durability !== undefined) {
    if (options.durability !== 'primary' && options.durability !== 'replicated') {
      throw codedError(MemErrors.ERR_INVALID_ARG, `options.durability must be 'primary' or 'replicated', not ${JSON.stringify(options.durability)}`)
    }
    if (options.transport === undefined) {
      throw codedError(MemErrors.ERR_INVALID_ARG, 'options.durability applies to a transport: set options.transport to a Redis URL')
    }
  }
  if (options.clientOnly && options.serverOnly) {
    throw codedError(MemErrors.ERR_INVALID_ARG, 'options.clientOnly and options.serverOnly exclude each other')
  }
  checkNestedOptions(options)
  checkServiceOptions(options)
  return options
}

/** An operator without its operand (`{ $set: undefined }`) has no field to store a null in. */
function checkOperands (update) {
  for (const key in update) {
    if (update[key] === undefined && key.startsWith('$')) {
      throw codedError(MemErrors.ERR_BAD_VALUE, `The update holds undefined at '${key}', which JSON cannot carry: an operator needs its fields`)
    }
  }
}

/** Throws unless `signal` is undefined or an AbortSignal. */
function checkSignal (signal, call) {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw codedError(MemErrors.ERR_INVALID_ARG, `${call}: signal must be an AbortSignal`)
  }
}

/**
 * `promise`, or a rejection with the signal's reason (an AbortError unless the abort gave
 * another) once `signal` aborts; `onAbort` then cancels what the wait was for.
 */
function abortable (promise, signal, onAbort) {
  if (signal === undefined) return promise
  return new Promise((resolve, reject) => {
    const abort = () => {
      onAbort()
      reject(signal.reason)
    }
    signal.addEventListener('abort', abort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort))
  })
}

/** `promise`, or a rejection with `error()` after `ms`. */
function raceTimeout (promise, ms, error) {
  let timer
  const timeout = new Promise((resolve, reject) => { timer = setTimeout(() => reject(error()), ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// `file` and `server`: what the instance does while it is host (src/services/).
function checkServiceOptions ({ file, server }) {
  if (file !== undefined && !(isPlainObject(file) && typeof file.path === 'string' && file.path !== '')) {
    throw codedError(MemErrors.ERR_INVALID_ARG, 'options.file must be { path: string, followSymlinks?: boolean }')
  }
  if (file?.followSymlinks !== undefined && typeof file.followSymlinks !== 'boolean') {
    throw codedError(MemErrors.ERR_INVALID_ARG, 'options.file.followSymlinks must be a boolean')
  }
  if (server !== undefined) {
    if (!isPlainObject(server) || !(Number.isInteger(server.port) && server.port >= 1 && server.port <= 65535)) {
      throw codedError(MemErrors.ERR_INVALID_ARG, 'options.server must be { port: 1 to 65535, host?: string }')
    }
    if (server.host !== undefined && (typeof server.host !== 'string' || server.host === '')) {
      throw codedError(MemErrors.ERR_INVALID_ARG, 'options.server.host must be a host name or IP address')
    }
    if (server.token !== undefined && typeof server.token !== 'boolean' && !(typeof server.token === 'string' && server.token !== '' && /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$/.test(server.token))) {
      // It travels in a cookie: RFC 6265's cookie-octets only.
      throw codedError(MemErrors.ERR_INVALID_ARG, 'options.server.token must be true, false or a non-empty string of printable ASCII without spaces, quotes, commas, semicolons or backslashes')
    }
  }
}

/** The native layer's `HostServices`; the file path is made absolute now, against this cwd. */
function hostServices ({ file, server }) {
  if (file === undefined && server === undefined) return null
  return {
    file: file === undefined ? undefined : path.resolve(file.path),
    followSymlinks: file?.followSymlinks,
    host: server?.host,
    port: server?.port,
    tokenAlways: server?.token === true || typeof server?.token === 'string',
    token: typeof server?.token === 'string' ? server.token : undefined
  }
}

/** A promise and the function that resolves it. */
function settleable () {
  let resolve
  const promise = new Promise((resolve_) => { resolve = resolve_ })
  return { promise, resolve }
}

/**
 * The `connection` promise and its resolver. It is also memsync 0.5's deferred (atma's class_Dfr):
 * `done(fn)`, `fail(fn)` and `resolve(value)`, each returning it. It never rejects: a connection
 * is waited for until stop(). `report` takes what a `done` callback throws.
 */
function deferred (report) {
  const { promise, resolve } = settleable()
  promise.done = (fn) => {
    promise.then(fn).catch(report)
    return promise
  }
  promise.fail = () => promise
  promise.resolve = (value) => {
    resolve(value)
    return promise
  }
  return { promise, resolve }
}

function checkListenerArgs (event, listener, method) {
  checkEventName(event, `${method}(event, listener)`)
  checkListener(listener, `${method}(event, listener)`)
}

/**
 * `off(event, listener)`, or memsync 0.5's `off(event)`: without a listener, every listener of
 * `event` goes.
 */
function removeListener (emitter, event, listener, method) {
  if (listener === undefined) {
    checkEventName(event, `${method}(event, listener?)`)
    emitter.removeAllListeners(event)
  } else {
    checkListenerArgs(event, listener, method)
    emitter.off(event, listener)
  }
}

/** Whether anything accepts connections on the Unix socket at `socketPath` (memsync 0.5's probe). */
function accepts (socketPath) {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** The function at dotted `method` of an RPC table, through own properties only (so that
 * 'constructor' or '__proto__' never reach Object's). */
function rpcFunction (table, method) {
  let node = table
  for (const part of method.split('.')) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, part)) return undefined
    node = node[part]
  }
  return typeof node === 'function' ? node : undefined
}

/** The dotted paths of every function of an RPC table: what this process offers others. */
function rpcMethods (table, prefix = '', out = []) {
  for (const [key, value] of Object.entries(table)) {
    if (typeof value === 'function') out.push(prefix + key)
    else if (isPlainObject(value)) rpcMethods(value, `${prefix}${key}.`, out)
  }
  return out
}

/** What a thrown value tells the caller of an RPC function: `{ code?, message }`. */
function remoteError (error) {
  const code = typeof error?.code === 'string' ? error.code : undefined
  return { code, message: String(error instanceof Error ? error.message : error) }
}

/**
 * The event bus of one object (`mem.events`): `emit` reaches the listeners of every process of
 * the object, this one included (at once, as memsync 0.5 did).
 */
class EventBus {
  #emitter
  #send

  constructor (emitter, send) {
    this.#emitter = emitter
    this.#send = send
  }

  on (event, listener) { checkListenerArgs(event, listener, 'events.on'); this.#emitter.on(event, listener); return this }
  once (event, listener) { checkListenerArgs(event, listener, 'events.once'); this.#emitter.once(event, listener); return this }
  off (event, listener) { removeListener(this.#emitter, event, listener, 'events.off'); return this }
  /** Returns `this`, as memsync 0.5's did: emits chain. */
  emit (event, ...args) {
    checkEventName(event, 'events.emit(event, ...args)')
    if (typeof event === 'symbol') {
      throw codedError(MemErrors.ERR_INVALID_ARG, `events.emit(event, ...args): ${event.toString()} is a symbol, which cannot reach other processes; name the event with a string (the instance's own emit() takes symbols)`)
    }
    // Sent first: a listener here that throws must not keep the event from the other processes.
    this.#send(event, toJson(args, `The arguments of event '${event}'`))
    this.#emitter.emit(event, ...args)
    return this
  }

  /** `emit`, by memsync 0.5's other name. */
  trigger (event, ...args) { return this.emit(event, ...args) }

  /** A function that emits `event` with the arguments it is called with (memsync 0.5). */
  pipe (event) {
    checkEventName(event, 'events.pipe(event)')
    return (...args) => { this.emit(event, ...args) }
  }
}

/**
 * The value at the dotted `path` of `mem`'s object ('' for all of it), or undefined: read by the
 * engine's rules, which the CLI and the HTTP view share (src/patch `value_at`).
 */
let readPath

class MemSync {
  /** The object's name, shared by every process that syncs it. */
  name
  /** The options given to the constructor. */
  options
  /**
   * The live shared object: a plain object, changed in place by patches. Written to directly, it
   * is restored within about a second (docs/guarantees.md).
   */
  data
  /** Events exchanged between the processes of this object. */
  events
  /** Resolves with `{ type }` once connected; renewed on disconnect (memsync 0.5). */
  connection

  #native
  #rpc
  #emitter = new EventEmitter()
  #report = (error) => this.#reportError(error)
  /** The listeners of `events`. */
  #bus = new EventEmitter()
  /** Own RPC calls in other processes, by id: `{ resolve, reject, params, timer }`. */
  #calls = new Map()
  #nextCall = 1
  /** Counts connections: a call handed to JS by a host answers only that host. */
  #epoch = 0
  /** Own lock requests not granted yet, by id: `{ resolve, reject, timer }`. */
  #lockWaits = new Map()
  #nextLock = 1
  /** Pings in flight: id -> `answered(pid)`. */
  #pings = new Map()
  #nextPing = 1
  /** Called when the connection is lost: waits that must start over with the next one. */
  #onLost = new Set()
  #observers = []
  /** `data`, and its check against the replica's document. */
  #live
  /** The open iterators of changes(). */
  #feeds = new Set()
  /** The next check of `data` against the replica's document, while started. */
  #repairTimer = null
  /** The listeners that print for `logEvents`, while it is on. */
  #logListeners = null
  /** 'host' or 'client' while connected, else null. */
  #role = null
  /** Whether start() was called and stop() was not. */
  #started = false
  /** Whether stop() was called and start() was not since: patch, lock, call, emit refuse. */
  #stopped = false
  #connected = deferred(this.#report)
  /** Settles the start() in progress. */
  #starting = null
  /** The promises of own patches the host has not ordered yet, by sequence number. */
  #waiting = new WaitingPatches()
  /** The timer that rejects waiting patches past their deadline, while any wait. */
  #expiry = null
  /** Events to apply to `data`, in order; a patch() made by an observer while they are being
   * applied queues its own behind them instead of overtaking them. */
  #queue = []
  #handling = false
  /** How many times events were taken from the replica (patch(), drains): the direct-write
   * check's sign that `data` moved past the document it read. */
  #takes = 0
  /** A joined host's document, which a drain hands beside its events, parsed; undefined when it
   * is not JSON (the replica refuses it too, and joins again). */
  #takeSnapshot = () => {
    const text = native.takeSnapshot(this.#native)
    try {
      return text === null ? undefined : JSON.parse(text)
    } catch {
      return undefined
    }
  }

  /** Whether a flush of the frames queued by patch() is scheduled for the end of this turn. */
  #flushScheduled = false
  /** The promise of the own patches made as host since the last flush, `{ promise, resolve }`:
   * they resolve once a client has them, so that they survive the host (null: none). */
  #unreplicated = null
  /** Those of earlier turns whose frames wait in full sockets; stop() resolves them. */
  #replicating = new Set()
  /** Patches queued since the last flush. */
  #unflushed = 0
  /** Every client let a host's patches wait `hostTimeout` (each stopped reading): until one has
   * everything again, the host's patches resolve without waiting for them. */
  #clientsStalled = false
  #flush = () => {
    this.#flushScheduled = false
    this.#send()
  }

  /** Sends what is queued for other processes; a host's patches among it resolve once a client
   * has them. */
  #send () {
    this.#unflushed = 0
    const replicated = native.flush(this.#native)
    if (replicated) this.#clientsStalled = false
    const turn = this.#unreplicated
    if (turn === null) return
    this.#unreplicated = null
    if (replicated || this.#clientsStalled) {
      turn.resolve()
      return
    }
    this.#replicating.add(turn)
    native.replicated(this.#native, this.options.hostTimeout ?? null).then((inTime) => {
      if (!inTime) this.#clientsStalled = true
    }, this.#report).finally(() => {
      this.#replicating.delete(turn)
      turn.resolve()
    })
  }

  constructor (nameOrConfig, defaultObject, options) {
    let name = nameOrConfig
    let data = defaultObject
    let rpc
    if (isPlainObject(nameOrConfig)) {
      checkKeys(nameOrConfig, 'new MemSync({ ... })')
      ;({ name, data, rpc, options } = nameOrConfig)
    }
    if (name === undefined || name === null || name === '') {
      throw codedError(MemErrors.ERR_INVALID_NAME, 'Name not set for the MemSync')
    }
    if (typeof name !== 'string') {
      throw codedError(MemErrors.ERR_INVALID_NAME, `The MemSync name must be a string, not ${typeof name}`)
    }
    // UTF-8 would turn every lone surrogate into U+FFFD, and two names into one.
    if (!name.isWellFormed()) {
      throw codedError(MemErrors.ERR_INVALID_NAME, 'The MemSync name holds a lone surrogate, which UTF-8 cannot carry')
    }
    data ??= {}
    if (!isPlainObject(data)) {
      throw codedError(MemErrors.ERR_BAD_VALUE, 'The default object of a MemSync must be a plain object')
    }
    if (rpc !== undefined) checkRpc(rpc)
    this.name = name
    this.options = checkOptions(options)
    this.#rpc = rpc ?? {}
    this.events = new EventBus(this.#bus, (event, argsJson) => {
      this.#refuseIfStopped('events.emit()')
      native.emit(this.#native, event, argsJson)
      this.#scheduleFlush()
    })
    const text = toJson(data, 'The default object')
    this.#native = native.createInstance(name, text, this.options.dir ?? null, hostServices(this.options))
    // A copy, not the caller's object: the replica and `data` must start identical.
    this.#live = new LiveObject(JSON.parse(text))
    this.data = this.#live.root
    this.connection = this.#connected.promise
    this.#announcePeer()
    this.#applyMaxPending()
    this.#trackReceivedListeners()
    this.#setLogEvents(this.options.logEvents === true)
  }

  /** `name` and pid, which tell the lines of two instances (or processes) apart. */
  get #tag () {
    return `memsync '${this.name}' (pid ${process.pid})`
  }

  /**
   * Joins the network of this name; resolves to the role taken, 'host' or 'client'.
   * `options.signal` aborts the wait: the instance stops, and the promise rejects with its reason.
   */
  async start (options) {
    const signal = options?.signal
    checkSignal(signal, 'start({ signal })')
    signal?.throwIfAborted()
    if (this.#role !== null) return this.#role
    if (this.#started) return (await abortable(this.connection, signal, () => {})).type
    this.#started = true
    this.#stopped = false
    debug('%s start', this.#tag)
    this.#scheduleRepair(REPAIR_INTERVAL_MS)
    const timeoutMs = this.options.timeout ?? DEFAULT_TIMEOUT_MS
    const outcome = new Promise((resolve, reject) => { this.#starting = { resolve, reject } })
    const timer = setTimeout(() => {
      this.#starting?.reject(codedError(MemErrors.ERR_TIMEOUT, `No host for '${this.name}' within ${timeoutMs} ms`))
    }, timeoutMs)
    try {
      native.start(this.#native, () => this.#drain(), {
        clientOnly: this.options.clientOnly === true,
        serverOnly: this.options.serverOnly === true,
        maxBuffer: this.options.network?.maxBuffer ?? undefined,
        hostTimeout: this.options.hostTimeout ?? undefined,
        transport: this.options.transport === undefined ? undefined : transportUrl(this.options.transport),
        durability: this.options.durability,
        debug: debug.enabled
      })
      return await abortable(outcome, signal, () => this.#starting?.reject(signal.reason))
    } catch (error) {
      // This start() is over: stop() must not reject its promise, which nobody awaits when
      // native.start threw (an unhandled rejection would end the process).
      this.#starting = null
      await this.stop()
      throw error
    } finally {
      clearTimeout(timer)
      this.#starting = null
    }
  }

  /** Leaves the network (a host hands its role over); resolves once every task has ended. */
  async stop () {
    if (!this.#started) return
    this.#started = false
    this.#stopped = true
    debug('%s stop', this.#tag)
    clearTimeout(this.#repairTimer)
    this.#repairTimer = null
    await native.stop(this.#native)
    // The clients got what was queued for them, or had left: nothing more will go out.
    for (const turn of this.#replicating) turn.resolve()
    this.#replicating.clear()
    this.#drain()
    // The waker is released only now, after the last events were drained: from here on the
    // instance never keeps the process alive.
    native.release(this.#native)
    this.#starting?.reject(codedError(MemErrors.ERR_STOPPED, `'${this.name}' was stopped before it connected`))
    for (const seq of this.#waiting.seqs()) {
      this.#waiting.settle(seq, codedError(MemErrors.ERR_STOPPED, `'${this.name}' was stopped before the host accepted the patch; it stays queued and is sent if the instance starts again`))
    }
    this.#failCalls(MemErrors.ERR_STOPPED, `'${this.name}' was stopped before the RPC call was answered`)
    for (const [id, waiter] of [...this.#lockWaits]) {
      this.#lockWaits.delete(id)
      clearTimeout(waiter.timer)
      // lock() withdraws the request when this rejects it.
      waiter.reject(codedError(MemErrors.ERR_STOPPED, `'${this.name}' was stopped before the lock was acquired`))
    }
    for (const feed of [...this.#feeds]) feed.close()
  }

  /** `await using mem = new MemSync(...)`: stops it when the scope ends. */
  [asyncDispose] () {
    return this.stop()
  }

  /**
   * The patches applied here from now on, own and others', in order, each
   * `{ version, timestamp, patch, own }`. At most `bufferSize` (default 1024) wait for a slow
   * consumer; one more ends the iterator with ERR_CHANGES_DROPPED once it has read those. It is
   * done when the instance stops; `break` unsubscribes.
   */
  changes (options) {
    const bufferSize = options?.bufferSize ?? DEFAULT_BUFFER_SIZE
    if (!(Number.isSafeInteger(bufferSize) && bufferSize > 0)) {
      throw codedError(MemErrors.ERR_INVALID_ARG, `changes({ bufferSize }): bufferSize must be a positive integer, not ${bufferSize}`)
    }
    const feed = new ChangeFeed(bufferSize, () => {
      this.#feeds.delete(feed)
      this.#updateWantsReceived()
    })
    this.#feeds.add(feed)
    this.#updateWantsReceived()
    return feed
  }

  /**
   * Runs `fn` while no other process (nor another `lock()` of this one) holds `key`, and
   * settles with its outcome. The lock is released when `fn` settles or the process dies;
   * waiters are served in request order. `options.timeout` (ms) bounds the wait for the lock
   * (`ERR_TIMEOUT`), not `fn`.
   */
  async lock (key, fn, options) {
    this.#refuseIfStopped('lock()')
    if (typeof key !== 'string') throw codedError(MemErrors.ERR_INVALID_ARG, 'lock(key, fn): key must be a string')
    if (typeof fn !== 'function') throw codedError(MemErrors.ERR_INVALID_ARG, 'lock(key, fn): fn must be a function')
    const timeoutMs = options?.timeout
    if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1)) {
      throw codedError(MemErrors.ERR_INVALID_ARG, `lock(key, fn, { timeout }): timeout must be a positive number of milliseconds, not ${timeoutMs}`)
    }
    const signal = options?.signal
    checkSignal(signal, 'lock(key, fn, { signal })')
    signal?.throwIfAborted()
    const id = this.#nextLock++
    const forget = () => {
      clearTimeout(this.#lockWaits.get(id)?.timer)
      this.#lockWaits.delete(id)
    }
    try {
      await abortable(new Promise((resolve, reject) => {
        const waiter = { resolve, reject, timer: undefined }
        if (timeoutMs !== undefined) {
          waiter.timer = setTimeout(() => {
            forget()
            reject(codedError(MemErrors.ERR_TIMEOUT, `The lock '${key}' of '${this.name}' was not acquired within ${timeoutMs} ms`))
          }, timeoutMs)
        }
        this.#lockWaits.set(id, waiter)
        native.lock(this.#native, id, key)
      }), signal, forget)
    } catch (error) {
      // Withdraws the request, or releases the lock if it was granted just before a timeout or
      // an abort: `fn` will not run.
      native.unlock(this.#native, id)
      throw error
    }
    try {
      return await fn()
    } finally {
      native.unlock(this.#native, id)
    }
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
  patch (update, options) {
    if (!isPlainObject(update)) {
      return Promise.reject(codedError(MemErrors.ERR_BAD_VALUE, 'The update must be a plain object such as { $set: { a: 1 } }'))
    }
    const signal = options?.signal
    let events
    try {
      this.#refuseIfStopped('patch()')
      checkSignal(signal, 'patch(update, { signal })')
      signal?.throwIfAborted()
      checkOperands(update)
      // A field value of undefined is stored as null, as the MongoDB Node driver sends it: an
      // update built from an optional field must not fail.
      events = parseEvents(native.patch(this.#native, toJson(update, 'The update', UPDATE_MAX_DEPTH, UPDATE_MAX_BYTES, true)), this.#takeSnapshot)
      this.#takes++
    } catch (error) {
      return Promise.reject(error)
    }
    // The last event is this patch's; events that arrived from the network come before it, as the
    // replica applied them first.
    const own = events[events.length - 1]
    const [, seq, version, changes, queued] = own
    own[4] = update
    // A client's patch resolves once the host ordered it; the host's own once a client has it,
    // after this turn's flush, so that a host killed after the promise resolved loses nothing.
    const accepted = changes === null
      ? RESOLVED
      : version === 0
        ? this.#waitForOrder(seq)
        : queued === 1 ? this.#unreplicatedPromise() : RESOLVED
    // Other processes get the patch at the end of this turn of the event loop: a loop of patches,
    // or the patches of every request that arrived in one turn, is one write.
    if (queued === 1) {
      if (++this.#unflushed === BURST_FLUSH) this.#send()
      else this.#scheduleFlush()
    }
    this.#handle(events)
    // Sent already: an abort only stops the wait (the patch stays queued and may be applied).
    return abortable(accepted, signal, () => {})
  }

  /** Calls `callback(value)` whenever a patch touches `path`, a parent or a child of it. */
  observe (path, callback) {
    checkPath(path, 'observe(path, callback)')
    if (typeof callback !== 'function') throw codedError(MemErrors.ERR_INVALID_ARG, 'observe(path, callback): callback must be a function')
    this.#observers.push({ path, parts: path === '' ? [] : path.split('.'), callback })
    return this
  }

  /** Removes `callback`, or every callback, observing `path`. */
  unobserve (path, callback) {
    checkPath(path, 'unobserve(path, callback)')
    if (callback !== undefined && typeof callback !== 'function') {
      throw codedError(MemErrors.ERR_INVALID_ARG, 'unobserve(path, callback): callback must be a function, or omitted to remove every callback of path')
    }
    this.#observers = this.#observers.filter((o) => o.path !== path || (callback !== undefined && o.callback !== callback))
    return this
  }

  on (event, listener) { checkListenerArgs(event, listener, 'on'); this.#emitter.on(event, listener); return this }
  once (event, listener) { checkListenerArgs(event, listener, 'once'); this.#emitter.once(event, listener); return this }
  off (event, listener) { removeListener(this.#emitter, event, listener, 'off'); return this }

  /** Calls this instance's listeners of `event`, in this process only (memsync 0.5's emitter). */
  emit (event, ...args) {
    checkEventName(event, 'emit(event, ...args)')
    this.#emitter.emit(event, ...args)
    return this
  }

  /** `emit`, by memsync 0.5's other name. */
  trigger (event, ...args) { return this.emit(event, ...args) }

  /** A function that emits `event` here with the arguments it is called with (memsync 0.5). */
  pipe (event) {
    checkEventName(event, 'pipe(event)')
    return (...args) => { this.emit(event, ...args) }
  }

  /** Resolves with the first argument of the next `event`. */
  onceAsync (event) {
    try {
      checkEventName(event, 'onceAsync(event)')
    } catch (error) {
      return Promise.reject(error)
    }
    return new Promise((resolve) => this.#emitter.once(event, resolve))
  }

  /**
   * Where this instance stands, with its `roles` and the `peers` it knows: a host's clients, or
   * a client's host, each `{ pid, host, roles, methods }`. `host` is the host's own status, as
   * in memsync 0.5: a client knows its host's count of clients (the host tells them).
   * `buffered`: the bytes a host's connections hold against `network.maxBuffer` (0 elsewhere).
   */
  async getStatus () {
    const { role, version, connections, buffered, roles, peers } = JSON.parse(native.status(this.#native))
    const connected = role !== 'offline'
    return {
      status: connected ? role : (this.#started ? 'connecting' : 'stopped'),
      channel: connected ? role : null,
      name: this.name,
      version,
      host: { started: connected, connections },
      buffered,
      roles,
      peers
    }
  }

  /**
   * Round-trip times in ms, measured from this JS thread: a client's to its host
   * (`host: { pid, time }`), a host's to each client (`clients: [{ pid, time } | { pid, error }]`,
   * `error` when no answer came within `timeout`). A started instance between hosts, or whose
   * host goes mid-ping, answers from the next connection (within `timeout`).
   */
  async ping () {
    const timeoutMs = this.options.timeout ?? DEFAULT_TIMEOUT_MS
    const deadline = performance.now() + timeoutMs
    for (;;) {
      // Between hosts, the ping waits for the next connection, as memsync 0.5's did; past the
      // deadline the role is still null, answered as offline below.
      if (this.#role === null && this.#started) {
        await raceTimeout(this.connection, Math.max(0, deadline - performance.now()), () => null).catch(() => {})
      }
      const role = this.#role
      if (role === null) return { connection: null, host: null }
      const id = this.#nextPing++
      const began = performance.now()
      // One slot per process pinged; two instances of one process share a pid, hence slots.
      const slots = JSON.parse(native.ping(this.#native, id)).map((pid) => ({ pid }))
      let lost = false
      // A client with no host to ping lost it a moment ago: JS hears of that next.
      if (slots.length > 0 || role === 'client') {
        let onLost
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - performance.now()))
          const finish = () => {
            clearTimeout(timer)
            resolve()
          }
          onLost = () => {
            lost = true
            finish()
          }
          this.#onLost.add(onLost)
          this.#pings.set(id, (pid) => {
            const slot = slots.find((s) => s.pid === pid && s.time === undefined)
            if (slot !== undefined) slot.time = performance.now() - began
            if (slots.every((s) => s.time !== undefined)) finish()
          })
        })
        this.#onLost.delete(onLost)
        this.#pings.delete(id)
      }
      // The host went away mid-ping: ask the next one.
      if (lost && this.#started) continue
      const result = ({ pid, time }) => time !== undefined ? { pid, time } : { pid, error: `no answer within ${timeoutMs} ms` }
      if (role === 'host') return { connection: 'host', host: { time: 0 }, clients: slots.map(result) }
      return { connection: 'client', host: slots.length > 0 ? result(slots[0]) : null }
    }
  }

  /**
   * Whether anything accepts connections on this object's socket, as memsync 0.5 asked: true
   * while connected (a host's own listener counts), else whether another process hosts it.
   * `socketPath` asks about another socket instead.
   */
  async hasPeers (socketPath) {
    if (socketPath !== undefined && socketPath !== null) {
      if (typeof socketPath !== 'string' || socketPath === '') {
        throw codedError(MemErrors.ERR_INVALID_ARG, 'hasPeers(path?): path must be a socket path')
      }
      return accepts(socketPath)
    }
    const { role } = JSON.parse(native.status(this.#native))
    if (role !== 'offline') return true
    return native.probe(this.#native)
  }

  /**
   * Runs RPC `method` in the process that registered it: this one first, then the host, then
   * a client. Resolves to `{ id, type: 'rpc', status: 'ok', params, result }` (memsync 0.5's
   * shape); rejects with the remote error's message and `code`, `ERR_RPC_NOT_FOUND`,
   * `ERR_RPC_PEER_LOST` (the callee or the host went away first) or `ERR_TIMEOUT`.
   */
  async call (methodOrOptions, ...args) {
    this.#refuseIfStopped('call()')
    const { method, signal } = isPlainObject(methodOrOptions) ? methodOrOptions : { method: methodOrOptions }
    if (isPlainObject(methodOrOptions)) checkKeys(methodOrOptions, 'call({ ... }, ...args)')
    checkMethod(method)
    checkSignal(signal, 'call({ method, signal }, ...args)')
    signal?.throwIfAborted()
    // Checked even for a local call: a call behaves the same wherever its function runs.
    const argsJson = toJson(args, `The arguments of RPC call "${method}"`)
    const id = this.#nextCall++
    const fn = rpcFunction(this.#rpc, method)
    if (fn !== undefined) {
      const result = await fn(...args)
      return { id, type: 'rpc', status: 'ok', params: args, result }
    }
    const timeoutMs = this.options.timeout ?? DEFAULT_TIMEOUT_MS
    const deadline = performance.now() + timeoutMs
    const expired = () => codedError(MemErrors.ERR_TIMEOUT, `The RPC call "${method}" was not answered within ${timeoutMs} ms`)
    // Between hosts (or before start()), the call waits for a connection within its timeout.
    if (this.#role === null) await abortable(raceTimeout(this.connection, timeoutMs, expired), signal, () => {})
    return abortable(new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // A reply arriving later finds no call and is ignored.
        this.#calls.delete(id)
        reject(expired())
      }, Math.max(0, deadline - performance.now()))
      this.#calls.set(id, { resolve, reject, params: args, timer })
      native.call(this.#native, id, method, argsJson)
      // The call was sent: an abort drops the wait, and a reply arriving later is ignored.
    }), signal, () => {
      clearTimeout(this.#calls.get(id)?.timer)
      this.#calls.delete(id)
    })
  }

  /** Saves the object to `options.file.path` now if this instance is host (elsewhere, the host saves). */
  async flush () {
    if (this.options.file?.path === undefined) throw codedError(MemErrors.ERR_NO_STORAGE, 'Storage not defined')
    settle(await native.save(this.#native))
  }

  /**
   * Changes options: `timeout`, `logEvents` and 0.5's `logLevel` (accepted, ignored) at any time;
   * `clientOnly`, `serverOnly`, `hostTimeout`, `peer` and `network` while stopped (they take effect
   * at the next start()). `dir`, `file` and `server` are fixed when the instance is created. All or
   * nothing: an option it cannot apply throws ERR_INVALID_ARG saying why, and changes nothing.
   */
  setOptions (options) {
    const changes = checkOptions(options)
    for (const key of Object.keys(changes)) {
      if (FIXED_OPTIONS.includes(key)) {
        throw codedError(MemErrors.ERR_INVALID_ARG, `setOptions(): options.${key} is fixed when the instance is created (the native replica is built with it); create another MemSync to change it`)
      }
      if (this.#started && !LIVE_OPTIONS.includes(key)) {
        throw codedError(MemErrors.ERR_INVALID_ARG, `setOptions(): options.${key} cannot change while '${this.name}' is started (it is used to join the network); stop() first, and it applies at the next start()`)
      }
    }
    this.options = checkOptions({ ...this.options, ...changes })
    if (changes.peer !== undefined || changes.network !== undefined) this.#announcePeer()
    if (changes.network !== undefined) this.#applyMaxPending()
    this.#setLogEvents(this.options.logEvents === true)
    debug('%s setOptions %j', this.#tag, Object.keys(changes))
  }

  /** How many own patches may wait to be ordered before patch() refuses more. */
  #applyMaxPending () {
    native.setMaxPending(this.#native, this.options.network?.maxPending)
  }

  /** What this process offers and is, told to the others when it connects. */
  #announcePeer () {
    native.setPeer(this.#native, JSON.stringify({
      methods: rpcMethods(this.#rpc),
      roles: this.options.peer?.roles ?? [],
      maxWriters: this.options.network?.maxWriters
    }))
  }

  #refuseIfStopped (call) {
    if (this.#stopped) {
      throw codedError(MemErrors.ERR_STOPPED, `${call}: '${this.name}' is stopped; start() it again first`)
    }
  }

  // Undoes direct writes to `data` (lib/changes.js) and says so. The next check is spaced so
  // that checking a big object takes a bounded share of the time.
  #scheduleRepair (ms) {
    this.#repairTimer = setTimeout(() => {
      const began = performance.now()
      let restored
      try {
        restored = this.#repair()
      } catch (error) {
        // Say so rather than end the process from a timer: `data` frozen whole, or a throwing getter.
        restored = []
        this.#reportError(codedError(MemErrors.ERR_DIRECT_WRITE, `'${this.name}': data was changed directly in a way that cannot be undone (${error.message}); change data with patch() only`))
      }
      const took = performance.now() - began
      if (restored.length > 0) {
        const shown = restored.slice(0, 5).map((p) => `'${p}'`).join(', ') + (restored.length > 5 ? ` and ${restored.length - 5} more` : '')
        debug('%s restored %s of data written directly', this.#tag, shown)
        this.#reportError(codedError(MemErrors.ERR_DIRECT_WRITE, `'${this.name}': data was written directly at ${shown}, which no other process sees; restored to the replica's value. Change data with patch()`))
      }
      if (this.#started) this.#scheduleRepair(Math.max(REPAIR_INTERVAL_MS, took * REPAIR_SPACING))
    }, ms).unref()
  }

  // Compares `data` with the replica's document, by digest first: only when they differ is the
  // document itself read and `data` restored from it. Each read applies the events queued before
  // it, so that `data` and the document are at the same point; an observer that patches while
  // they are applied moves `data` past it, and then nothing is compared until the next check.
  #repair () {
    const digest = this.#readForCheck(false)
    if (digest === null || this.#live.matches(digest.slice(1))) return []
    const document = this.#readForCheck(true)
    return document === null ? [] : this.#live.repair(document[1])
  }

  /**
   * The digest (or, with `whole`, the document) event at the point `data` is brought to; null if
   * `data` may have moved on: events taken from the replica while these were handled (an
   * observer's patch()) were applied after them.
   */
  #readForCheck (whole) {
    const events = parseEvents(native.drainForCheck(this.#native, whole), this.#takeSnapshot)
    const take = ++this.#takes
    const last = events.pop()
    this.#handle(events)
    return this.#takes === take ? last : null
  }

  /** The promise of the own patches made as host since the last flush (`#unreplicated`). */
  #unreplicatedPromise () {
    this.#unreplicated ??= settleable()
    return this.#unreplicated.promise
  }

  // In the check phase of this turn of the event loop (setImmediate), not at the end of the task
  // (a microtask): a service that patches once per request gets several requests per turn, and
  // each write wakes the host's thread. In bench/cluster.mjs's service that is 5 to 8 patches per
  // write instead of 1, and about half of what memsync adds to a request's CPU time.
  #scheduleFlush () {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(this.#flush)
  }

  #settleCall (id, error, hasResult, result) {
    const call = this.#calls.get(id)
    if (call === undefined) return
    this.#calls.delete(id)
    clearTimeout(call.timer)
    if (error !== null) {
      call.reject(Object.assign(new Error(error.message), error.code === undefined ? {} : { code: error.code }))
    } else {
      call.resolve({ id, type: 'rpc', status: 'ok', params: call.params, result: hasResult ? result : undefined })
    }
  }

  #failCalls (code, message) {
    for (const id of [...this.#calls.keys()]) this.#settleCall(id, { code, message }, false)
  }

  // A call another process routed here: runs the function and answers, unless the host that
  // asked was lost meanwhile (the answer would reach a new host that never asked).
  async #runCall (id, method, args) {
    const epoch = this.#epoch
    let result
    let error = null
    try {
      const fn = rpcFunction(this.#rpc, method)
      if (fn === undefined) throw codedError(MemErrors.ERR_RPC_NOT_FOUND, native.rpcNotFoundMessage(method))
      result = await fn(...args)
    } catch (thrown) {
      error = remoteError(thrown)
    }
    if (epoch !== this.#epoch || !this.#started) return
    let resultJson = null
    if (error === null && result !== undefined) {
      try {
        resultJson = toJson(result, `The result of RPC call "${method}"`)
      } catch (bad) {
        error = remoteError(bad)
      }
    }
    native.reply(this.#native, id, resultJson, error === null ? null : JSON.stringify(error))
  }

  // performance.now() once per task (until the microtasks queued so far have run): a writer's
  // patches of one task share their deadline, and reading the clock per patch was a visible
  // part of a writer's profile.
  #now = null
  #taskNow () {
    if (this.#now === null) {
      this.#now = performance.now()
      queueMicrotask(() => { this.#now = null })
    }
    return this.#now
  }

  #waitForOrder (seq) {
    return new Promise((resolve, reject) => {
      const timeoutMs = this.options.timeout ?? DEFAULT_TIMEOUT_MS
      this.#waiting.add(seq, resolve, reject, this.#taskNow() + timeoutMs)
      if (this.#expiry === null) this.#armExpiry(timeoutMs)
    })
  }

  // One timer for every waiting patch rather than one each: they share the timeout, so their
  // order is deadline order and the oldest is the next to expire.
  #armExpiry (ms) {
    // Unref'd: a pending patch alone must not keep a stopped instance's process alive.
    this.#expiry = setTimeout(() => {
      this.#expiry = null
      const now = performance.now()
      for (let seq = this.#waiting.oldest(); seq !== undefined; seq = this.#waiting.oldest()) {
        const deadline = this.#waiting.oldestDeadline()
        if (deadline > now) {
          this.#armExpiry(deadline - now)
          return
        }
        const timeoutMs = this.options.timeout ?? DEFAULT_TIMEOUT_MS
        this.#waiting.settle(seq, codedError(MemErrors.ERR_TIMEOUT, `The host of '${this.name}' did not accept the patch within ${timeoutMs} ms; it stays queued`))
      }
    }, ms).unref()
  }

  #drain () {
    const events = parseEvents(native.drain(this.#native), this.#takeSnapshot)
    this.#takes++
    if (events.length > 0) this.#handle(events)
  }

  // Events from the native replica, in the order it applied them (src/core/replica.rs). Those that
  // arrive while others are applied (an observer that patches) wait in `#queue`, after the rest of
  // the batch; the common case leaves it empty, as setting an array's length is a runtime call.
  #handle (events) {
    if (this.#handling) {
      for (const event of events) this.#queue.push(event)
      return
    }
    this.#handling = true
    try {
      for (let i = 0; i < events.length; i++) this.#apply(events[i])
      for (let i = 0; i < this.#queue.length; i++) this.#apply(this.#queue[i])
    } finally {
      if (this.#queue.length > 0) this.#queue = []
      this.#handling = false
    }
  }

  #apply (event) {
    switch (event[0]) {
      case OWN: {
        const [, , version, changes, update] = event
        if (changes === null) break
        this.#live.apply(changes)
        this.#notify(changes)
        if (this.#emitter.listenerCount('change') > 0 || this.#feeds.size > 0) {
          const record = { version: version || null, timestamp: Date.now(), patch: update }
          this.#emitter.emit('change', record)
          this.#publish(record, true)
        }
        break
      }
      case CHANGES: {
        const [, , changes, received] = event
        this.#live.apply(changes)
        this.#notify(changes)
        if (received.length > 0) {
          this.#emitter.emit('receivedPatches', received)
          for (const record of received) {
            this.#emitter.emit('change', record)
            this.#publish(record, false)
          }
        }
        break
      }
      case SNAPSHOT: {
        // A snapshot (joining, or a new host): observers hear of the paths whose value it changed.
        if (event[2] === undefined) break
        const before = this.#observers.map((observer) => JSON.stringify(getAt(this.data, observer.parts)))
        this.#live.replace(event[2])
        const changed = this.#observers.filter((observer, i) => JSON.stringify(getAt(this.data, observer.parts)) !== before[i])
        this.#call(changed)
        if (event[3] === true) this.#recordsLost()
        break
      }
      case ACK:
        this.#waiting.settle(event[1])
        break
      case ACCEPTED:
        for (const seq of event[1]) this.#waiting.settle(seq)
        break
      case REJECTED:
        this.#waiting.settle(event[1], codedError(event[2], event[3]))
        break
      case ROLE:
        this.#onRole(event[1])
        break
      case FAIL: {
        // Before start() resolved, it rejects; later (a failover that finds the rendezvous
        // unusable) the instance has left its network, and says why.
        const error = codedError(event[1], event[2])
        if (this.#starting) this.#starting.reject(error)
        else this.#reportError(error)
        break
      }
      case CALL:
        this.#runCall(event[1], event[2], event[3])
        break
      case REPLY:
        this.#settleCall(event[1], event[2], event.length > 3, event[3])
        break
      case PONG:
        this.#pings.get(event[1])?.(event[2])
        break
      case GRANT: {
        const waiter = this.#lockWaits.get(event[1])
        if (waiter === undefined) break
        this.#lockWaits.delete(event[1])
        clearTimeout(waiter.timer)
        waiter.resolve()
        break
      }
      case EVENTS_DROPPED:
        this.#reportError(codedError(MemErrors.ERR_EVENTS_DROPPED, `'${this.name}': ${event[1]} events from other processes were dropped: this process's event loop did not take them while ${MAX_BUS_BACKLOG / 2 ** 20} MiB of them waited`))
        break
      case EMIT:
        try {
          this.#bus.emit(event[1], ...event[2])
        } catch (error) {
          this.#reportError(error)
        }
        break
      case ERROR:
        this.#reportError(codedError(event[1], event[2]))
        break
      case DEBUG:
        debug('%s %s', this.#tag, event[1])
        break
      case WARNING:
        process.emitWarning(`${this.#tag}: ${event[2]}`, { type: 'MemSyncWarning', code: event[1] })
        break
    }
  }

  // The snapshot that replaced changes this process's event loop left waiting: their records are
  // gone, which the changes() iterators and the listeners of the records must not take for a quiet
  // stretch.
  #recordsLost () {
    const message = `'${this.name}': patches from other processes were applied from one snapshot, without their change and receivedPatches records: this process's event loop did not take them while ${MAX_EVENT_BACKLOG / 2 ** 20} MiB of their changes waited`
    for (const feed of this.#feeds) feed.lose(message)
    if (this.#emitter.listenerCount('change') > 0 || this.#emitter.listenerCount('receivedPatches') > 0) {
      this.#reportError(codedError(MemErrors.ERR_CHANGES_DROPPED, message))
    }
  }

  #publish ({ version, timestamp, patch }, own) {
    for (const feed of this.#feeds) feed.push({ version, timestamp, patch, own })
  }

  #onRole (role) {
    debug('%s role %s', this.#tag, role)
    if (role === 'offline') {
      this.#epoch++
      // Calls in flight went through the host that is gone, or to clients that left with it.
      if (this.#started) this.#failCalls(MemErrors.ERR_RPC_PEER_LOST, `The connection of '${this.name}' was lost before the RPC call was answered`)
      else this.#failCalls(MemErrors.ERR_STOPPED, `'${this.name}' was stopped before the RPC call was answered`)
      for (const onLost of [...this.#onLost]) onLost()
      const previous = this.#role
      if (previous === null) return
      this.#role = null
      this.#connected = deferred(this.#report)
      this.connection = this.#connected.promise
      this.#emitter.emit('disconnected', previous)
      return
    }
    this.#role = role
    this.#connected.resolve({ type: role })
    this.#starting?.resolve(role)
    this.#emitter.emit('connected', role)
  }

  #notify (changes) {
    if (this.#observers.length === 0) return
    this.#call(this.#observers.filter((observer) => touches(observer.parts, changes)))
  }

  #call (observers) {
    for (const observer of observers) {
      try {
        observer.callback(getAt(this.data, observer.parts))
      } catch (error) {
        this.#reportError(error)
      }
    }
  }

  // The replica builds the record of every patch ordered elsewhere only while someone listens.
  #wantsReceived = false
  #updateWantsReceived (adding = false) {
    const wanted = adding || this.#emitter.listenerCount('receivedPatches') + this.#emitter.listenerCount('change') + this.#feeds.size > 0
    if (wanted === this.#wantsReceived) return
    this.#wantsReceived = wanted
    native.setWantsReceived(this.#native, wanted)
  }

  #trackReceivedListeners () {
    // 'newListener' comes before the listener is added, 'removeListener' after it is removed.
    this.#emitter.on('newListener', (event) => {
      if (event === 'receivedPatches' || event === 'change') this.#updateWantsReceived(true)
    })
    this.#emitter.on('removeListener', (event) => {
      if (event === 'receivedPatches' || event === 'change') this.#updateWantsReceived()
    })
  }

  // memsync 0.5's `logEvents`: every instance event on the console, tagged with the name and pid.
  #setLogEvents (on) {
    if (on === (this.#logListeners !== null)) return
    if (on) {
      this.#logListeners = ['connected', 'disconnected', 'change', 'receivedPatches', 'error'].map((event) => {
        const listener = (payload) => console.log(`${this.#tag} ${event}:`, payload)
        this.#emitter.on(event, listener)
        return [event, listener]
      })
    } else {
      for (const [event, listener] of this.#logListeners) this.#emitter.off(event, listener)
      this.#logListeners = null
    }
  }

  #reportError (error) {
    if (this.#emitter.listenerCount('error') > 0) {
      this.#emitter.emit('error', error)
    } else {
      console.error(`${this.#tag}:`, error)
    }
  }

  static {
    readPath = (mem, path) => {
      const json = native.read(mem.#native, path)
      return json === null ? undefined : JSON.parse(json)
    }
  }
}

module.exports = { MemSync, MemErrors, readPath }
