// A TCP proxy that injects the network faults the Redis tests need, per direction: `up` is client
// to server, `down` server to client. A direction passes bytes, delays them, or blackholes them
// (drops them while the connection stays open: a partition, or with one direction only, a
// half-open connection). `reset()` resets every connection (RST), `refuse` refuses new ones.
import net from 'node:net'
import { EventEmitter, once } from 'node:events'

/** @typedef {'pass' | 'blackhole' | { delayMs: number }} Mode */

/** Emits `arrived` (direction, bytes) as bytes reach the proxy, before their mode applies. */
export class FaultProxy extends EventEmitter {
  /** @type {{ up: Mode, down: Mode }} */
  modes = { up: 'pass', down: 'pass' }
  refuse = false
  #server
  #target
  #pairs = new Set()

  constructor (server, target) {
    super()
    this.#server = server
    this.#target = target
  }

  /** Listens on a free loopback port and forwards to `target` (`{ host, port }`). */
  static async start (target) {
    const server = net.createServer()
    const proxy = new FaultProxy(server, target)
    server.on('connection', (client) => proxy.#accept(client))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return proxy
  }

  get port () {
    return this.#server.address().port
  }

  /** The modes from now on, for the bytes not forwarded yet too. */
  set ({ up = this.modes.up, down = this.modes.down } = {}) {
    this.modes = { up, down }
  }

  /** Passes everything again. */
  heal () {
    this.set({ up: 'pass', down: 'pass' })
    this.refuse = false
  }

  /** Resets every open connection, both ends, as a crashed host or a middlebox would. */
  reset () {
    for (const { client, server } of this.#pairs) {
      client.resetAndDestroy()
      server.resetAndDestroy()
    }
    this.#pairs.clear()
  }

  /** How many connections are open through the proxy. */
  get connections () {
    return this.#pairs.size
  }

  async close () {
    this.reset()
    this.#server.close()
    await once(this.#server, 'close')
  }

  #accept (client) {
    if (this.refuse) {
      client.resetAndDestroy()
      return
    }
    const server = net.createConnection(this.#target)
    const pair = { client, server }
    this.#pairs.add(pair)
    const end = () => {
      this.#pairs.delete(pair)
      client.destroy()
      server.destroy()
    }
    for (const socket of [client, server]) {
      socket.on('error', end)
      socket.on('close', end)
    }
    this.#forward(client, server, 'up')
    this.#forward(server, client, 'down')
  }

  #forward (from, to, direction) {
    // Bytes leave in the order they came, a delay lowered meanwhile included: one queue per
    // direction, drained by one timer, each chunk no sooner than the one before it.
    const queue = []
    let last = 0
    let timer = null
    const pump = () => {
      timer = null
      while (queue.length > 0 && queue[0].at <= Date.now()) {
        const { write } = queue.shift()
        if (!to.destroyed) write()
      }
      if (queue.length > 0) timer = setTimeout(pump, queue[0].at - Date.now())
    }
    const send = (write) => {
      const mode = this.modes[direction]
      last = Math.max(Date.now() + (typeof mode === 'object' ? mode.delayMs : 0), last)
      queue.push({ at: last, write })
      if (timer === null) pump()
    }
    from.on('data', (chunk) => {
      this.emit('arrived', direction, chunk.length)
      if (this.modes[direction] !== 'blackhole') send(() => to.write(chunk))
    })
    from.on('end', () => send(() => to.end()))
  }
}
