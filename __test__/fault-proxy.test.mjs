// The fault proxy the Redis tests put between bridges and Redis: each mode, checked against an
// echo server, so that a fault test fails for memsync's reasons and not the proxy's.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { once } from 'node:events'
import { FaultProxy } from './support/fault-proxy.mjs'
import { withTimeout } from './support/peers.mjs'

async function echoServer (t) {
  const server = net.createServer((socket) => { socket.on('error', () => {}); socket.pipe(socket) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => server.close())
  return { host: '127.0.0.1', port: server.address().port }
}

async function through (t) {
  const proxy = await FaultProxy.start(await echoServer(t))
  t.after(() => proxy.close())
  const socket = net.createConnection(proxy.port, '127.0.0.1')
  socket.on('error', () => {})
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  let received = ''
  const grew = new EventTarget()
  socket.on('data', (chunk) => { received += chunk; grew.dispatchEvent(new Event('data')) })
  /** Resolves once `text` has come back; rejects after `ms`. */
  const echoed = (text, ms = 2000) => withTimeout(new Promise((resolve) => {
    const check = () => { if (received.includes(text)) { grew.removeEventListener('data', check); resolve() } }
    grew.addEventListener('data', check)
    check()
  }), ms, `the echo of ${text}`)
  return { proxy, socket, echoed, received: () => received }
}

test('pass forwards both ways; a delay holds the bytes back at least that long, in order', async (t) => {
  const { proxy, socket, echoed, received } = await through(t)
  socket.write('a')
  await echoed('a')
  proxy.set({ up: { delayMs: 150 } })
  const sent = Date.now()
  const arrived = once(proxy, 'arrived')
  socket.write('b')
  await withTimeout(arrived, 2000, 'b reaches the proxy')
  proxy.set({ up: 'pass' })
  socket.write('c')
  await echoed('c')
  assert.ok(Date.now() - sent >= 140, `echoed after ${Date.now() - sent} ms`)
  assert.equal(received(), 'abc', 'c waited behind the delayed b')
})

test('a blackhole drops the bytes and keeps the connection; one direction only is half-open', async (t) => {
  const { proxy, socket, echoed } = await through(t)
  proxy.set({ down: 'blackhole' })
  socket.write('lost')
  await assert.rejects(echoed('lost', 300), /timed out/)
  assert.equal(proxy.connections, 1)
  proxy.heal()
  socket.write('found')
  await echoed('found')
})

test('reset ends every connection with ECONNRESET, and refuse turns new ones away', async (t) => {
  const { proxy, socket } = await through(t)
  const failed = once(socket, 'error')
  proxy.reset()
  const [error] = await withTimeout(failed, 2000, 'the reset')
  assert.equal(error.code, 'ECONNRESET')
  proxy.refuse = true
  const next = net.createConnection(proxy.port, '127.0.0.1')
  const [refused] = await withTimeout(once(next, 'error'), 2000, 'the refusal')
  assert.equal(refused.code, 'ECONNRESET')
})
