// memsync's wire format spoken by hand (see src/transport/local/codec.rs): raw sockets that send whatever a
// test wants to a host, or play a host, and a watcher of a peer's stderr.
import { spawn } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import net from 'node:net'
import { withTimeout } from './peers.mjs'

export const PROTOCOL_VERSION = 5
export const MAX_FRAME = 64 * 1024 * 1024

/** A frame: the 4-byte big-endian length of `payload` (an object, sent as JSON, or raw bytes), then it. */
export function frame (payload) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload))
  const header = Buffer.alloc(4)
  header.writeUInt32BE(body.length)
  return Buffer.concat([header, body])
}

/**
 * A payload as the message it carries: JSON, or the binary form of `ordered` (tag 1), `patch`
 * (tag 2) and `welcome` (tag 3) that src/transport/local/codec.rs sends. Numbers above 2^53 lose precision (the tests only read
 * types and small values).
 */
function decodePayload (payload) {
  const u64 = (at) => Number(payload.readBigUInt64LE(at))
  const json = (start, end) => JSON.parse(payload.subarray(start, end).toString('utf8'))
  if (payload[0] === 1) {
    const updateEnd = 41 + payload.readUInt32LE(37)
    return {
      t: 'ordered',
      c: { version: u64(1), origin: u64(9), seq: u64(17), hlc: [u64(25), payload.readUInt32LE(33)], update: json(41, updateEnd), changes: json(updateEnd) }
    }
  }
  if (payload[0] === 2) return { t: 'patch', c: { seq: u64(1), hlc: [u64(9), payload.readUInt32LE(17)], update: json(21) } }
  if (payload[0] === 3) {
    const pairs = payload.readUInt32LE(17)
    const applied = Array.from({ length: pairs }, (_, i) => [u64(21 + 16 * i), u64(29 + 16 * i)])
    return { t: 'welcome', c: { protocol: payload.readUInt32LE(1), hostPid: payload.readUInt32LE(5), version: u64(9), data: json(21 + 16 * pairs), applied } }
  }
  return JSON.parse(payload.toString('utf8'))
}

/** The frame of a binary `welcome` (tag 3) whose document is `text`, as it is, JSON or not. */
export function binaryWelcome ({ version = 1, text, applied = [] }) {
  const head = Buffer.alloc(21 + 16 * applied.length)
  head[0] = 3
  head.writeUInt32LE(PROTOCOL_VERSION, 1)
  head.writeUInt32LE(process.pid, 5)
  head.writeBigUInt64LE(BigInt(version), 9)
  head.writeUInt32LE(applied.length, 17)
  applied.forEach(([origin, seq], i) => {
    head.writeBigUInt64LE(BigInt(origin), 21 + 16 * i)
    head.writeBigUInt64LE(BigInt(seq), 29 + 16 * i)
  })
  return frame(Buffer.concat([head, Buffer.from(text)]))
}

/** The messages in `bytes` (complete frames only). */
export function decodeFrames (bytes) {
  const messages = []
  let offset = 0
  while (offset + 4 <= bytes.length) {
    const length = bytes.readUInt32BE(offset)
    if (offset + 4 + length > bytes.length) break
    messages.push(decodePayload(bytes.subarray(offset + 4, offset + 4 + length)))
    offset += 4 + length
  }
  return messages
}

export const hello = (fields = {}) => ({ t: 'hello', c: { protocol: PROTOCOL_VERSION, pid: process.pid, origin: 4242, version: 0, ...fields } })

/**
 * A raw connection to `socketPath`, destroyed when the test `t` ends. `closed` resolves when the
 * socket is closed in both directions: unless the test ended its side, that is the peer closing
 * it. `messages()` are the frames received so far; `message(n)` waits for the n-th. A host's
 * heartbeats (every tenth of hostTimeout) are left out: tests count the messages that mean
 * something.
 */
export async function connectRaw (socketPath, t) {
  const socket = net.createConnection(socketPath)
  t.after(() => socket.destroy())
  const chunks = []
  const arrived = new EventEmitter()
  socket.on('data', (chunk) => { chunks.push(chunk); arrived.emit('data') })
  // The host may reset the connection while the test still writes: only `closed` matters.
  socket.on('error', () => {})
  const closed = once(socket, 'close')
  await withTimeout(once(socket, 'connect'), 5000, `connecting to ${socketPath}`)
  const messages = () => decodeFrames(Buffer.concat(chunks)).filter((message) => message.t !== 'heartbeat')
  return {
    socket,
    closed,
    messages,
    send: (bytes) => new Promise((resolve) => socket.write(bytes, () => resolve())),
    /** Resolves with the `count`-th message received (1-based), waiting for it if need be. */
    message: (count, timeoutMs = 5000) => withTimeout(new Promise((resolve) => {
      const check = () => {
        const all = messages()
        if (all.length >= count) {
          arrived.off('data', check)
          resolve(all[count - 1])
        }
      }
      arrived.on('data', check)
      check()
    }), timeoutMs, `message #${count} from ${socketPath}`)
  }
}

/** Everything `child` writes to stderr from now on, with a bounded wait for a line to appear. */
export class StderrLog {
  text = ''
  #grew = new EventEmitter()

  constructor (child) {
    child.stderr.on('data', (chunk) => {
      this.text += chunk
      this.#grew.emit('grew')
    })
  }

  /** A position in the log, for `waitFor(..., since)`. */
  mark () {
    return this.text.length
  }

  /**
   * Resolves once the log after `since` matches `pattern`, a RegExp (with the match) or a
   * function of the text.
   */
  waitFor (pattern, since = 0, timeoutMs = 5000) {
    let listener
    const found = new Promise((resolve) => {
      listener = () => {
        const text = this.text.slice(since)
        const match = typeof pattern === 'function' ? pattern(text) : text.match(pattern)
        if (match) resolve(match)
      }
      this.#grew.on('grew', listener)
      listener()
    })
    return withTimeout(found, timeoutMs, `no ${pattern} on stderr; it has:\n${this.text.slice(since, since + 2000)}`)
      .finally(() => this.#grew.off('grew', listener))
  }
}

/**
 * Holds `lockPath` (the host lock of a name) with util-linux `flock`, as a host would, and
 * resolves with a function that releases it; or resolves null when `flock` is not installed.
 */
export async function holdLock (lockPath) {
  // --close: only flock itself holds the lock, and its own process group goes with it.
  const holder = spawn('flock', ['--nonblock', '--close', lockPath, 'sh', '-c', 'echo locked; exec sleep 600'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true })
  const spawned = await Promise.race([
    once(holder, 'spawn').then(() => true),
    once(holder, 'error').then(() => false)
  ])
  if (!spawned) return null
  const exited = once(holder, 'exit')
  const locked = await withTimeout(Promise.race([
    once(holder.stdout, 'data').then(() => true),
    exited.then(() => false)
  ]), 5000, `flock ${lockPath}`)
  if (!locked) throw new Error(`flock could not take ${lockPath}`)
  return async () => {
    try { process.kill(-holder.pid, 'SIGKILL') } catch { /* already gone */ }
    await withTimeout(exited, 5000, `the holder of ${lockPath} exits`)
  }
}
