// Drives memsync peers in child processes (fixtures/peer.mjs) over Node IPC: spawn, request and
// reply with a bounded wait, events, and cleanup when the test ends, even when it fails.
import { fork } from 'node:child_process'
import { EventEmitter } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual } from 'node:util'

const FIXTURE = fileURLToPath(new URL('../fixtures/peer.mjs', import.meta.url))
const STDERR_TAIL = 4000

let names = 0
/** A name no other test (or earlier run) uses. */
export const uniqueName = (label) => `${label}-${process.pid}-${names++}`

/** The peers each test spawned, killed before its rendezvous directories are removed. */
const peersOf = new WeakMap()

/** Rendezvous directories an instance of this process still used when its test ended. */
const leftovers = new Set()
process.once('exit', () => {
  for (const dir of leftovers) fs.rmSync(dir, { recursive: true, force: true })
})

/** A fresh rendezvous directory (memsync creates it, 0700), removed when the test ends. */
export function rendezvousDir (t) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-test-'))
  // This hook runs before the kill hooks of peers spawned later, and a surviving peer would take
  // the host role and create the directory and its files again while they are removed: the
  // test's peers go first. An instance of this process may take the host role from them and keep
  // its files until its own stop hook, which runs after this one: its directory goes at exit.
  t.after(async () => {
    await Promise.all([...(peersOf.get(t) ?? [])].map((peer) => peer.kill()))
    try {
      fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 3 })
    } catch {
      leftovers.add(tmp)
    }
  })
  return path.join(tmp, 'rdv')
}

/** `promise`, or a rejection with `message` after `ms`. */
export function withTimeout (promise, ms, message) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${message}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export class Peer extends EventEmitter {
  /** Every event the peer sent, in order: `{ event, ... }`. */
  history = []
  exited = false
  exitCode = null
  exitSignal = null
  stderr = ''
  #pending = new Map()
  #nextId = 1

  constructor (child, label) {
    super()
    this.child = child
    this.pid = child.pid
    this.label = label
    this.exit = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exited = true
        this.exitCode = code
        this.exitSignal = signal
        for (const { reject } of this.#pending.values()) {
          reject(new Error(`${this.describe()} exited (code ${code}, signal ${signal}) before replying${this.stderrTail()}`))
        }
        this.#pending.clear()
        this.emit('exit', code, signal)
        resolve({ code, signal })
      })
    })
    child.stderr.on('data', (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-STDERR_TAIL)
    })
    child.stdout.resume()
    child.on('message', (message) => {
      if (message.id !== undefined) {
        const pending = this.#pending.get(message.id)
        if (pending === undefined) return
        this.#pending.delete(message.id)
        const { id, fail, ...reply } = message
        if (fail !== undefined) pending.reject(new Error(`${this.describe()}: ${pending.cmd} failed: ${fail}`))
        else pending.resolve(reply)
      } else {
        this.history.push(message)
        this.emit('peer-event', message)
      }
    })
  }

  describe () {
    return `peer ${this.label} (pid ${this.pid})`
  }

  stderrTail () {
    return this.stderr ? `\n--- its stderr ---\n${this.stderr}` : ''
  }

  /** Sends `{ cmd, ...args }` and resolves with the reply, or rejects after `timeoutMs`. */
  request (cmd, args = {}, timeoutMs = 10000) {
    if (this.exited) return Promise.reject(new Error(`${this.describe()} has exited; cannot send ${cmd}`))
    const id = this.#nextId++
    const reply = new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, cmd })
      this.child.send({ id, cmd, ...args }, (error) => {
        if (error && this.#pending.delete(id)) reject(new Error(`${this.describe()}: cannot send ${cmd}: ${error.message}`))
      })
    })
    return withTimeout(reply, timeoutMs, `${this.describe()} did not answer ${JSON.stringify({ cmd, ...args }).slice(0, 200)}${this.stderrTail()}`)
      .finally(() => this.#pending.delete(id))
  }

  /** A position in `history`, for `waitEvent(..., { since })`. */
  mark () {
    return this.history.length
  }

  /** Resolves with the first event named `event` (after `since`) that satisfies `predicate`. */
  waitEvent (event, { since = 0, predicate = () => true, timeoutMs = 10000 } = {}) {
    const matches = (message) => message.event === event && predicate(message)
    const earlier = this.history.slice(since).find(matches)
    if (earlier !== undefined) return Promise.resolve(earlier)
    let listener
    const found = new Promise((resolve) => {
      listener = (message) => { if (matches(message)) resolve(message) }
      this.on('peer-event', listener)
    })
    return withTimeout(found, timeoutMs, `${this.describe()} sent no '${event}' event`)
      .finally(() => this.off('peer-event', listener))
  }

  /** Sends `signal` (default SIGKILL) and resolves once the process has exited. */
  async kill (signal = 'SIGKILL') {
    if (!this.exited) this.child.kill(signal)
    return withTimeout(this.exit, 5000, `${this.describe()} did not exit after ${signal}`)
  }
}

/**
 * Forks a peer of `name` in `dir` and resolves once its instance exists (not started).
 * `config`: `{ data, options, tag }`. The peer is killed when the test ends.
 */
export async function spawnPeer (t, name, dir, config = {}, label = name, { env = process.env } = {}) {
  // --expose-gc: memory is measured after a full collection, not at the mercy of GC timing.
  const child = fork(FIXTURE, [name, dir, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: ['--expose-gc'], env })
  const peer = new Peer(child, label)
  if (!peersOf.has(t)) peersOf.set(t, new Set())
  peersOf.get(t).add(peer)
  t.after(() => peer.kill())
  const ready = Promise.race([
    peer.waitEvent('ready', { timeoutMs: 10000 }),
    peer.exit.then(({ code, signal }) => {
      throw new Error(`${peer.describe()} exited (code ${code}, signal ${signal}) before it was ready${peer.stderrTail()}`)
    })
  ])
  await ready
  return peer
}

/** `count` peers of one name, labelled `<label>0`, `<label>1`... */
export function spawnPeers (t, count, name, dir, config = {}, label = 'p') {
  return Promise.all(Array.from({ length: count }, (_, i) => spawnPeer(t, name, dir, config, `${label}${i}`)))
}

/**
 * Waits until every peer shows the same data and version, and resolves with those states. Each
 * round asks every peer for its state; while they differ, every peer waits for the highest
 * version seen (an event-driven wait in the peer), and the states are compared again.
 */
export async function converge (peers, { timeoutMs = 10000 } = {}) {
  const deadline = Date.now() + timeoutMs
  let states = []
  for (;;) {
    const left = deadline - Date.now()
    if (left <= 0) {
      throw new Error(`replicas did not converge within ${timeoutMs} ms:\n${describeStates(peers, states)}`)
    }
    states = await Promise.all(peers.map((peer) => peer.request('state', {}, left)))
    const [first] = states
    const same = states.every((s) => s.version === first.version && isDeepStrictEqual(s.data, first.data))
    if (same) return states
    const highest = Math.max(...states.map((s) => s.version))
    try {
      await Promise.all(peers.map((peer) => peer.request('waitVersion', { version: highest }, Math.max(1, deadline - Date.now()))))
    } catch (error) {
      throw new Error(`${error.message}\n${await explainStall(peers)}`)
    }
  }
}

/** Where each peer stands and its last events, for a wait that timed out. */
async function explainStall (peers) {
  const lines = await Promise.all(peers.map(async (peer) => {
    const state = await peer.request('state', {}, 2000).then((s) => `${s.status} v${s.version}`, (error) => `no state (${error.message.split('\n')[0]})`)
    const events = peer.history.slice(-8).map((e) => e.event).join(', ')
    return `  ${peer.describe()}: ${state}; last events: ${events || 'none'}`
  }))
  return lines.join('\n')
}

export function describeStates (peers, states) {
  return states.map((s, i) => {
    const data = JSON.stringify(s.data)
    return `  ${peers[i].describe()}: ${s.status} v${s.version} ${data.length > 300 ? data.slice(0, 300) + '...' : data}`
  }).join('\n')
}

/** How many times each value occurs in `array`, as a Map. */
export function countOccurrences (array) {
  const counts = new Map()
  for (const value of array) counts.set(value, (counts.get(value) ?? 0) + 1)
  return counts
}
