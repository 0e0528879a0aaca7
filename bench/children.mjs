// The child processes of the benchmarks: fixture peers driven over Node IPC, and servers.
//
// Every child is registered here and killed (SIGKILL) when this process exits, whether it ends
// normally, throws, or is interrupted (SIGINT, SIGTERM, SIGHUP). Fixture peers also exit by
// themselves when their IPC channel closes, which covers a SIGKILL of this process.
import { fork } from 'node:child_process'
import { withTimeout } from './measure.mjs'

const children = new Set()

/** Kills every child still running. */
function killChildren () {
  for (const child of children) child.kill('SIGKILL')
  children.clear()
}

process.on('exit', killChildren)
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping every child process`)
    process.exit(128 + number) // runs the 'exit' handler above
  })
}

/** Registers `child` (from spawn or fork) to be killed with the others; resolves `exit` when it ends. */
export function track (child) {
  children.add(child)
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child)
      resolve({ code, signal })
    })
  })
}

/**
 * A fixture process (fixtures/serve.mjs protocol): every `request(cmd, args)` gets one reply,
 * and messages without an id are events, kept in `events`.
 */
class Peer {
  events = []
  stderr = ''
  exited = false
  #pending = new Map()
  #waiters = new Set()
  #nextId = 1

  constructor (fixture, args, label) {
    this.label = label
    // --expose-gc: the memory benchmarks collect garbage before reading RSS.
    this.child = fork(fixture, args, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], execArgv: ['--expose-gc'] })
    this.child.stderr.on('data', (chunk) => { this.stderr = (this.stderr + chunk).slice(-4000) })
    this.exit = track(this.child).then((status) => {
      this.exited = true
      for (const { reject } of this.#pending.values()) reject(new Error(`${this.label} exited (${status.code ?? status.signal})${this.#tail()}`))
      this.#pending.clear()
      return status
    })
    this.child.on('message', (message) => {
      if (message.id === undefined) {
        this.events.push(message)
        for (const waiter of this.#waiters) waiter()
        return
      }
      const pending = this.#pending.get(message.id)
      if (pending === undefined) return
      this.#pending.delete(message.id)
      const { id, fail, ...reply } = message
      if (fail !== undefined) pending.reject(new Error(`${this.label}: ${pending.cmd} failed: ${fail}`))
      else pending.resolve(reply)
    })
  }

  #tail () {
    return this.stderr ? `\n--- stderr of ${this.label} ---\n${this.stderr}` : ''
  }

  request (cmd, args = {}, timeoutMs = 10000) {
    if (this.exited) return Promise.reject(new Error(`${this.label} has exited; cannot send ${cmd}`))
    const id = this.#nextId++
    const reply = new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, cmd })
      this.child.send({ id, cmd, ...args })
    })
    return withTimeout(reply, timeoutMs, `${this.label} did not answer ${cmd}${this.#tail()}`).finally(() => this.#pending.delete(id))
  }

  /** Resolves with the first event (in `events`) that satisfies `predicate`. */
  waitEvent (predicate, timeoutMs = 10000) {
    let waiter
    const found = new Promise((resolve) => {
      waiter = () => {
        const event = this.events.find(predicate)
        if (event !== undefined) resolve(event)
      }
      this.#waiters.add(waiter)
      waiter()
    })
    return withTimeout(found, timeoutMs, `${this.label} sent no such event${this.#tail()}`).finally(() => this.#waiters.delete(waiter))
  }

  async kill () {
    if (!this.exited) this.child.kill('SIGKILL')
    await withTimeout(this.exit, 5000, `${this.label} did not exit after SIGKILL`)
  }
}

/** Forks a fixture and waits for its `ready` event. */
export async function spawnPeer (fixture, args, label) {
  const peer = new Peer(fixture, args, label)
  try {
    await withTimeout(Promise.race([
      peer.waitEvent((e) => e.event === 'ready', 15000),
      peer.exit.then(() => { throw new Error(`${label} exited before it was ready`) })
    ]), 15000, `${label} ready`)
  } catch (error) {
    await peer.kill()
    throw error
  }
  return peer
}

/** Kills every peer of a benchmark, once it is done or has failed. */
export const killAll = (peers) => Promise.all(peers.map((peer) => peer.kill()))
