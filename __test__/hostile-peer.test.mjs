// Bad input on the socket: raw connections send a real host what no memsync peer would (garbage,
// truncated, oversized and invalid frames, unknown or out-of-order messages). Each must be
// disconnected with its reason on the host's stderr (NODE_DEBUG=memsync) while the host and a normal client go on
// untouched. The other way round, a fake host (holding the lock as a host does) answers a real
// client with garbage: the client neither applies it nor spins, and recovers once it is gone.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import path from 'node:path'
import { once } from 'node:events'
import { converge, rendezvousDir, spawnPeer, uniqueName, withTimeout } from './support/peers.mjs'
import { MAX_FRAME, PROTOCOL_VERSION, StderrLog, binaryWelcome, connectRaw, frame, hello, holdLock } from './support/wire.mjs'

const OPTIONS = { timeout: 5000 }
// The peers whose diagnostic lines a test reads show them on stderr.
const DEBUG = { env: { ...process.env, NODE_DEBUG: 'memsync' } }

const ordered = (fields = {}) => ({ t: 'ordered', c: { version: 1, origin: 1, seq: 1, hlc: [1, 0], update: { $set: { n: -1 } }, changes: [['s', ['n'], -1]], ...fields } })
/** The host's answer to a valid hello: `about` (who it is), then `welcome`, returned, then `clients` (its count). */
async function welcomeAfterHello (raw) {
  assert.equal((await raw.message(1)).t, 'about')
  const welcomed = await raw.message(2)
  assert.equal(welcomed.t, 'welcome')
  assert.equal((await raw.message(3)).t, 'clients')
  return welcomed
}

const welcome = (data = { n: -1 }) => ({ t: 'welcome', c: { protocol: PROTOCOL_VERSION, hostPid: 1, version: 99, data, applied: [] } })
const patchMessage = (update, seq = 1) => ({ t: 'patch', c: { seq, hlc: [Date.now(), 0], update } })
const deeplyNested = (levels) => `{"t":"patch","c":{"seq":1,"hlc":[1,0],"update":${'['.repeat(levels)}${']'.repeat(levels)}}}`

// Sent before any hello: `bytes`, then (unless `keepOpen`) the test ends its side.
const BEFORE_HELLO = [
  { name: 'HTTP instead of frames', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: memsync\r\n\r\n'), log: /before its hello: protocol error: frame of 1195725856 bytes exceeds the limit/ },
  { name: 'random binary with a small length', bytes: Buffer.from([0, 0, 0, 6, 0xff, 0xfe, 0x00, 0x01, 0x80, 0x7f]), log: /before its hello: protocol error: frame is not valid JSON/ },
  { name: 'a length prefix of 2^32-1, body never sent', bytes: Buffer.from([0xff, 0xff, 0xff, 0xff]), keepOpen: true, log: /before its hello: protocol error: frame of 4294967295 bytes exceeds the limit of 67108864 bytes/ },
  { name: 'a length prefix one over the limit', bytes: (() => { const b = Buffer.alloc(4); b.writeUInt32BE(MAX_FRAME + 1); return b })(), keepOpen: true, log: /frame of 67108865 bytes exceeds the limit/ },
  { name: 'half a header, then close', bytes: Buffer.from([0, 0]), log: /before its hello: connection closed in the middle of a frame \(2 bytes received\)/ },
  { name: 'a truncated frame, then close', bytes: frame(hello()).subarray(0, 20), log: /before its hello: connection closed in the middle of a frame \(20 bytes received\)/ },
  { name: 'invalid JSON', bytes: frame('{"t":"hello","c":{'), log: /before its hello: protocol error: frame is not valid JSON/ },
  { name: 'JSON that is not UTF-8', bytes: frame(Buffer.from([0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])), log: /before its hello: protocol error: frame is not valid JSON/ },
  // Decoded without recursing (the update is kept as raw JSON): no stack overflow, just out of turn.
  { name: 'JSON nested 100,000 levels', bytes: frame(deeplyNested(100000)), log: /before its hello: its first message is patch, not hello/ },
  { name: 'two JSON values in one frame', bytes: frame(JSON.stringify(hello()) + ' 1'), log: /before its hello: protocol error: frame is not valid JSON/ },
  { name: 'an unknown message type', bytes: frame({ t: 'teleport', c: {} }), log: /before its hello: protocol error: frame is not a valid message: unknown variant `teleport`/ },
  { name: 'a message without a type', bytes: frame({ c: hello().c }), log: /before its hello: protocol error: frame is not a valid message/ },
  { name: 'a JSON array', bytes: frame([1, 2, 3]), log: /before its hello: protocol error: frame is not a valid message/ },
  { name: 'a hello with a string protocol', bytes: frame(hello({ protocol: '1' })), log: /before its hello: protocol error: frame is not a valid message: invalid type: string/ },
  { name: 'a hello with an origin beyond 64 bits', bytes: frame('{"t":"hello","c":{"protocol":1,"pid":1,"origin":18446744073709551616,"version":0}}'), log: /before its hello: protocol error: frame is not a valid message/ },
  { name: 'a hello with a negative version', bytes: frame(hello({ version: -1 })), log: /before its hello: protocol error: frame is not a valid message/ },
  { name: 'a patch before hello', bytes: frame(patchMessage({ $set: { n: -1 } })), log: /before its hello: its first message is patch, not hello/ },
  { name: 'an ordered patch before hello', bytes: frame(ordered()), log: /before its hello: its first message is ordered, not hello/ },
  { name: 'a welcome before hello', bytes: frame(welcome()), log: /before its hello: its first message is welcome, not hello/ },
  { name: 'a catch-up before hello', bytes: frame({ t: 'catchup', c: { entries: [{ version: 1, origin: 1, seq: 1, hlc: [1, 0], update: { $set: { n: -1 } } }] } }), log: /before its hello: its first message is catchup, not hello/ }
]

// Sent after a valid hello (and the host's welcome).
const AFTER_HELLO = [
  { name: 'a second hello', bytes: frame(hello()), log: /unexpected hello message from a client, disconnecting it/ },
  { name: 'an ordered patch (a host message)', bytes: frame(ordered()), log: /unexpected ordered message from a client/ },
  { name: 'a welcome (a host message)', bytes: frame(welcome()), log: /unexpected welcome message from a client/ },
  { name: 'a refusal (a host message)', bytes: frame({ t: 'refused', c: { reason: 'no' } }), log: /unexpected refused message from a client/ },
  { name: 'a rejection (a host message)', bytes: frame({ t: 'rejected', c: { seq: 1, code: 'ERR_X', message: 'x' } }), log: /unexpected rejected message from a client/ },
  { name: 'invalid JSON', bytes: frame('{"t":"patch","c":{"seq":1,'), log: /client connection failed: protocol error: frame is not valid JSON/ },
  { name: 'a patch with a negative seq', bytes: frame({ t: 'patch', c: { seq: -1, hlc: [1, 0], update: {} } }), log: /client connection failed: protocol error: frame is not a valid message/ },
  { name: 'an oversized length prefix', bytes: Buffer.from([0xff, 0xff, 0xff, 0xff]), keepOpen: true, log: /client connection failed: protocol error: frame of 4294967295 bytes exceeds/ },
  { name: 'a truncated frame, then close', bytes: frame(patchMessage({ $set: { n: -1 } })).subarray(0, 30), log: /client connection failed: connection closed in the middle of a frame \(30 bytes received\)/ }
]

test('a host disconnects every peer that sends bad input, says why with NODE_DEBUG=memsync, and goes on untouched', { timeout: 60000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('hostile')
  const host = await spawnPeer(t, name, dir, { data: { n: 0 }, options: OPTIONS }, 'host', DEBUG)
  const hostLog = new StderrLog(host.child)
  assert.equal((await host.request('start')).role, 'host')
  const client = await spawnPeer(t, name, dir, { options: OPTIONS }, 'client')
  const clientMark = client.mark()
  assert.equal((await client.request('start')).role, 'client')
  const socketPath = path.join(dir, `${name}.sock`)

  // A peer that never says hello is dropped after the handshake timeout (5 s); it waits while
  // the other cases run.
  const silent = await connectRaw(socketPath, t)
  const silentMark = hostLog.mark()

  let n = 0
  /** The network still works: a client patch reaches the host, identical data everywhere. */
  async function healthy () {
    n++
    assert.deepEqual(await client.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
    const [state] = await converge([host, client])
    assert.deepEqual(state.data, { n }, 'nothing the bad peers sent was applied')
    assert.equal(state.version, n)
  }

  async function expectDisconnected (raw, { bytes, keepOpen, log }, since) {
    await raw.send(bytes)
    if (!keepOpen) raw.socket.end()
    await withTimeout(raw.closed, 5000, 'the host closes the connection')
    await hostLog.waitFor(log, since)
    await healthy()
  }

  for (const bad of BEFORE_HELLO) {
    await t.test(`before hello: ${bad.name}`, async (t) => {
      const since = hostLog.mark()
      await expectDisconnected(await connectRaw(socketPath, t), bad, since)
    })
  }

  await t.test('a hello of another protocol version is refused with the reason', async (t) => {
    const since = hostLog.mark()
    const raw = await connectRaw(socketPath, t)
    await raw.send(frame(hello({ protocol: PROTOCOL_VERSION + 1 })))
    assert.deepEqual(await raw.message(1), { t: 'refused', c: { reason: `protocol ${PROTOCOL_VERSION + 1} is not ${PROTOCOL_VERSION}` } })
    await withTimeout(raw.closed, 5000, 'the host closes the connection')
    await hostLog.waitFor(new RegExp(`refusing a client: protocol ${PROTOCOL_VERSION + 1} is not ${PROTOCOL_VERSION}`), since)
    await healthy()
  })

  for (const bad of AFTER_HELLO) {
    await t.test(`after hello: ${bad.name}`, async (t) => {
      const since = hostLog.mark()
      const raw = await connectRaw(socketPath, t)
      await raw.send(frame(hello()))
      const welcomed = await welcomeAfterHello(raw)
      assert.deepEqual(welcomed.c.data, { n })
      await expectDisconnected(raw, bad, since)
    })
  }

  await t.test('after hello, invalid patches are rejected one by one without a disconnect, and a bad catch-up is ignored', async (t) => {
    const raw = await connectRaw(socketPath, t)
    await raw.send(frame(hello({ origin: 777 })))
    await welcomeAfterHello(raw)
    let nested = 1
    for (let i = 0; i < 101; i++) nested = { x: nested }
    const invalid = [
      [{ $bogus: { n: 1 } }, 'ERR_UNKNOWN_OPERATOR'],
      [{ $inc: { n: 'one' } }, 'ERR_BAD_VALUE'],
      [{ $set: 5 }, 'ERR_BAD_OPERATOR_ARG'],
      [{ $set: { 'n.x': 1 } }, 'ERR_PATH_NOT_VIABLE'],
      [{ $set: { deep: nested } }, 'ERR_BAD_VALUE'],
      // Never written, but relayed: a catch-up after a failover would nest it too deep to decode.
      [{ $setOnInsert: { deep: nested } }, 'ERR_BAD_VALUE'],
      [{ $pull: { list: { $in: [nested] } } }, 'ERR_BAD_VALUE'],
      [[1, 2], 'ERR_BAD_VALUE'],
      ['not an update', 'ERR_BAD_VALUE']
    ]
    for (const [i, [update]] of invalid.entries()) await raw.send(frame(patchMessage(update, i + 1)))
    // Entries whose updates do not apply are skipped.
    await raw.send(frame({ t: 'catchup', c: { entries: [{ version: 1, origin: 778, seq: 1, hlc: [1, 0], update: { $nope: 1 } }, { version: 2, origin: 778, seq: 2, hlc: [1, 1], update: { $inc: { n: 'x' } } }] } }))
    for (const [i, [update, code]] of invalid.entries()) {
      // After `about`, `welcome` and `clients`.
      const reply = await raw.message(i + 4)
      assert.equal(reply.t, 'rejected', JSON.stringify(update))
      assert.equal(reply.c.seq, i + 1)
      assert.equal(reply.c.code, code, `${JSON.stringify(update).slice(0, 100)}: ${reply.c.message}`)
    }
    await healthy()
    assert.equal((await raw.message(invalid.length + 4)).t, 'ordered', 'the connection still receives the order')
    raw.socket.end()
    await withTimeout(raw.closed, 5000, 'a clean close')
  })

  await t.test('50 garbage connections at once', async (t) => {
    const since = hostLog.mark()
    const raws = await Promise.all(Array.from({ length: 50 }, () => connectRaw(socketPath, t)))
    await Promise.all(raws.map((raw, i) => raw.send(frame(i % 2 === 0 ? '{"t":' : patchMessage({ $set: { n: -1 } })))))
    await Promise.all(raws.map((raw) => withTimeout(raw.closed, 5000, 'the host closes each')))
    await hostLog.waitFor((text) => text.split('disconnecting a client before its hello').length > 50, since)
    await healthy()
  })

  await t.test('a peer that never says hello is disconnected after the handshake timeout', async () => {
    await withTimeout(silent.closed, 10000, 'the host closes a silent connection')
    await hostLog.waitFor(/disconnecting a client before its hello: no hello within 5s/, silentMark)
    await healthy()
  })

  assert.ok(!host.exited && !client.exited, 'neither process died')
  assert.ok(!client.history.slice(clientMark).some((e) => e.event === 'disconnected'), 'the normal client was never disconnected')
  assert.equal((await host.request('state')).connections, 1, 'the host serves the normal client alone')
  assert.doesNotMatch(hostLog.text, /panicked/)
})

test('a stopping host does not wait for a connection that has not said hello', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('silent')
  const host = await spawnPeer(t, name, dir, { options: OPTIONS }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const raw = await connectRaw(path.join(dir, `${name}.sock`), t)
  await raw.send(frame(hello()).subarray(0, 10))
  // The host accepts in order: once a later client is welcomed, the raw connection has its handler.
  const client = await spawnPeer(t, name, dir, { options: OPTIONS }, 'client')
  assert.equal((await client.request('start')).role, 'client')
  const began = Date.now()
  await host.request('stop')
  const took = Date.now() - began
  // Waiting for the hello would take the whole flush allowance on stop (2 s) or the handshake timeout (5 s).
  assert.ok(took < 1000, `stop() took ${took} ms`)
  await withTimeout(raw.closed, 5000, 'the connection is closed')
})

/**
 * A fake host for `name` in `dir`: holds the lock (so no real peer becomes host) and listens on
 * the socket path, answering each hello with `answer(socket)`. Counts connections.
 */
async function fakeHost (t, dir, name, answer) {
  const release = await holdLock(path.join(dir, `${name}.lock`))
  if (release === null) return null
  t.after(release)
  const fake = { connections: 0, answer }
  const sockets = new Set()
  const server = net.createServer((socket) => {
    fake.connections++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.once('data', () => fake.answer(socket))
  })
  server.listen(path.join(dir, `${name}.sock`))
  await once(server, 'listening')
  fake.close = async () => {
    server.close()
    for (const socket of sockets) socket.destroy()
    await release()
  }
  t.after(() => server.close())
  return fake
}

test('a client facing a fake host that answers with garbage applies nothing, backs off, and recovers when it goes', { timeout: 60000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('fakehost')
  // memsync creates the directory; a first peer does it.
  const first = await spawnPeer(t, name, dir, { options: OPTIONS }, 'first')
  assert.equal((await first.request('start')).role, 'host')
  await first.request('stop')
  await first.exit

  const fake = await fakeHost(t, dir, name, (socket) => socket.write('HTTP/1.1 400 Bad Request\r\n\r\n'))
  if (fake === null) {
    t.skip('util-linux flock is not installed: cannot hold the host lock from the test')
    return
  }

  const cases = [
    { name: 'garbage instead of a welcome', answer: (s) => s.write('HTTP/1.1 400 Bad Request\r\n\r\n'), log: /cannot join the host: protocol error: frame of \d+ bytes exceeds the limit/ },
    { name: 'a welcome whose data is not an object', answer: (s) => s.write(frame(welcome(42))), log: /cannot join the host: the host's welcome is unusable: the host's data is not an object/ },
    { name: 'a welcome whose data is an array', answer: (s) => s.write(frame(welcome([1, 2]))), log: /cannot join the host: the host's welcome is unusable: the host's data is not an object/ },
    // The document goes to JS unchecked, beside the drain: JS's parse fails as the replica's does.
    { name: 'a binary welcome whose document is not JSON', answer: (s) => s.write(binaryWelcome({ text: '{"n": nope}' })), log: /cannot join the host: the host's welcome is unusable: expected ident at line 1 column 8/ },
    { name: 'an ordered patch instead of a welcome', answer: (s) => s.write(frame(ordered())), log: /cannot join the host: its first message is ordered, not welcome/ },
    { name: 'a refusal', answer: (s) => s.end(frame({ t: 'refused', c: { reason: 'go away' } })), log: /cannot join the host: the host refused us: go away/ },
    { name: 'a truncated welcome, then close', answer: (s) => s.end(frame(welcome()).subarray(0, 10)), log: /cannot join the host: connection closed in the middle of a frame/ }
  ]
  for (const bad of cases) {
    await t.test(bad.name, async (t) => {
      fake.answer = bad.answer
      fake.connections = 0
      const peer = await spawnPeer(t, name, dir, { data: { mine: 1 }, options: { timeout: 1000 } }, 'victim', DEBUG)
      const log = new StderrLog(peer.child)
      await assert.rejects(peer.request('start'), /No host for .* within 1000 ms/)
      await log.waitFor(bad.log)
      // Without a growing pause a client reconnects thousands of times a second.
      assert.ok(fake.connections >= 2 && fake.connections <= 30, `${fake.connections} connections in 1 s`)
      assert.deepEqual((await peer.request('state')).data, { mine: 1 }, 'nothing from the fake host was applied')
      assert.doesNotMatch(log.text, /panicked/)
    })
  }

  await t.test('garbage after a valid welcome: the client keeps the welcomed data, reconnects, and recovers when the fake host goes', async (t) => {
    fake.answer = (socket) => {
      socket.write(frame(welcome({ n: 5 })))
      socket.write(frame({ t: 'ordered', c: { version: 100, origin: 1, seq: 1, hlc: [1, 0], update: {}, changes: [['p', ['n'], 0, 1, []]] } }))
    }
    const peer = await spawnPeer(t, name, dir, { data: { mine: 1 }, options: { timeout: 1000 } }, 'victim', DEBUG)
    const log = new StderrLog(peer.child)
    assert.equal((await peer.request('start')).role, 'client')
    await log.waitFor(/change 0 does not fit the document: 'n' is not an array; reconnecting/)
    assert.deepEqual((await peer.request('state')).data, { n: 5 }, 'the bad change was not applied')

    fake.answer = (socket) => {
      socket.write(frame(welcome({ n: 6 })))
      socket.write(Buffer.from([0, 0, 0, 3, 0x7b, 0x7b, 0x7b]))
    }
    const since = log.mark()
    await log.waitFor(/host connection failed: protocol error: frame is not valid JSON/, since)
    assert.deepEqual((await peer.request('state')).data, { n: 6 })

    // The fake host goes: the client takes over with the data it was last welcomed with.
    const mark = peer.mark()
    await fake.close()
    await peer.waitEvent('connected', { since: mark, predicate: (e) => e.role === 'host' })
    assert.deepEqual(await peer.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
    assert.deepEqual((await peer.request('state')).data, { n: 7 })
    assert.doesNotMatch(log.text, /panicked/)
  })
})
