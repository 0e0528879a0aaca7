// RPC and the event bus between processes: calls in every direction, remote errors, unknown
// methods, a callee or host that dies mid-call, timeouts; events to every process, once/off and
// per-sender order.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'

const OPTIONS = { timeout: 10000 }

/** A host and two clients, each with its RPC functions, started in that order. */
async function network (t, rpc = {}, options = OPTIONS) {
  const dir = rendezvousDir(t)
  const name = uniqueName('rpc')
  const host = await spawnPeer(t, name, dir, { rpc: rpc.host ?? [], options }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const a = await spawnPeer(t, name, dir, { rpc: rpc.a ?? [], options }, 'a')
  const b = await spawnPeer(t, name, dir, { rpc: rpc.b ?? [], options }, 'b')
  for (const peer of [a, b]) assert.equal((await peer.request('start')).role, 'client')
  return { host, a, b, dir, name }
}

test('calls run in the caller first, then the host, then a client; results keep the 0.5 shape', { timeout: 20000 }, async (t) => {
  const { host, a, b } = await network(t, {
    host: ['whoami'],
    a: ['whoami', 'echo', 'nested.add'],
    b: ['nothing', 'notJson']
  })
  // Client -> its own process: the caller's own table wins over the host's.
  const own = await a.request('call', { method: 'whoami' })
  assert.equal(own.outcome.result.pid, a.pid)
  // Client -> host, though a client registered the same method too.
  const toHost = await b.request('call', { method: 'whoami' })
  assert.equal(toHost.outcome.result.pid, host.pid)
  // Host -> client.
  const fromHost = await host.request('call', { method: 'nested.add', args: [2, 3] })
  assert.deepEqual(fromHost.outcome.result, 5)
  // Client -> another client, through the host; JSON values arrive as sent.
  const args = ['x', { deep: [1, null, true, 'é'] }, 2.5]
  const third = await b.request('call', { method: 'echo', args })
  assert.deepEqual(third.outcome, { id: third.outcome.id, type: 'rpc', status: 'ok', params: args, result: args })
  assert.equal(typeof third.outcome.id, 'number')
  // `undefined` stays undefined (IPC drops the key), rather than becoming null.
  const nothing = await a.request('call', { method: 'nothing' })
  assert.equal(nothing.ok, true)
  assert.equal('result' in nothing.outcome, false)
  // A result JSON cannot carry rejects the caller with the callee's ERR_BAD_VALUE.
  const notJson = await a.request('call', { method: 'notJson' })
  assert.equal(notJson.error, 'ERR_BAD_VALUE')
})

test('a remote throw rejects with its message and code; an unknown method with ERR_RPC_NOT_FOUND', { timeout: 20000 }, async (t) => {
  const { host, a, b } = await network(t, { a: ['fail', 'failAsync'] })
  const coded = await b.request('call', { method: 'fail', args: ['E_QUOTA', 'quota exceeded'] })
  assert.deepEqual([coded.error, coded.message], ['E_QUOTA', 'quota exceeded'])
  const fromHost = await host.request('call', { method: 'fail', args: ['E_HOST', 'from the host'] })
  assert.deepEqual([fromHost.error, fromHost.message], ['E_HOST', 'from the host'])
  const uncoded = await b.request('call', { method: 'failAsync', args: ['plain'] })
  assert.deepEqual([uncoded.error, uncoded.message], [null, 'plain'])
  for (const caller of [host, a, b]) {
    const unknown = await caller.request('call', { method: 'no.such' })
    assert.deepEqual([unknown.error, unknown.message], ['ERR_RPC_NOT_FOUND', 'The handler for "no.such" RPC call was not found'])
  }
  // Object's own properties are not RPC functions.
  const proto = await b.request('call', { method: 'constructor' })
  assert.equal(proto.error, 'ERR_RPC_NOT_FOUND')
})

test('a callee killed -9 mid-call, or the host, rejects the pending calls at once with ERR_RPC_PEER_LOST', { timeout: 20000 }, async (t) => {
  const { host, a, b } = await network(t, { host: ['stall'], b: ['hang'] }, { timeout: 15000 })
  const sinceB = b.mark()
  const toB = await a.request('callLater', { method: 'hang' })
  await b.waitEvent('hanging', { since: sinceB })
  await b.kill('SIGKILL')
  const lost = await a.request('settled', { token: toB.token })
  assert.equal(lost.error, 'ERR_RPC_PEER_LOST', lost.message)
  assert.ok(lost.ms < 5000, `rejected ${lost.ms.toFixed(0)} ms after the call, not at the 15 s timeout`)

  const sinceHost = host.mark()
  const toHost = await a.request('callLater', { method: 'stall' })
  await host.waitEvent('hanging', { since: sinceHost })
  await host.kill('SIGKILL')
  const hostLost = await a.request('settled', { token: toHost.token })
  assert.equal(hostLost.error, 'ERR_RPC_PEER_LOST', hostLost.message)
  assert.ok(hostLost.ms < 5000, `rejected ${hostLost.ms.toFixed(0)} ms after the call`)
})

test('timeout bounds a call with ERR_TIMEOUT; the late reply is ignored', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('rpc-timeout')
  const host = await spawnPeer(t, name, dir, { rpc: ['later'], options: OPTIONS }, 'host')
  await host.request('start')
  const caller = await spawnPeer(t, name, dir, { options: { timeout: 1000 } }, 'caller')
  await caller.request('start')
  const late = await caller.request('call', { method: 'later', args: [1600, 'late'] })
  assert.equal(late.error, 'ERR_TIMEOUT')
  assert.ok(late.ms >= 990 && late.ms < 1500, `rejected after ${late.ms.toFixed(0)} ms`)
  // The late reply arrives about 600 ms into this call's wait, and must not settle it.
  const next = await caller.request('call', { method: 'later', args: [2500, 'second'] }, 5000)
  assert.equal(next.error, 'ERR_TIMEOUT', JSON.stringify(next))
  const quick = await caller.request('call', { method: 'later', args: [0, 'quick'] })
  assert.equal(quick.outcome.result, 'quick')
})

test('events reach every process, the emitter included, in each sender\'s order; once and off work', { timeout: 20000 }, async (t) => {
  const { host, a, b } = await network(t)
  const peers = [host, a, b]
  for (const peer of peers) {
    await peer.request('listen', { event: 'tick' })
    await peer.request('listen', { event: 'done' })
  }
  await b.request('listen', { event: 'single', once: true })
  const marks = peers.map((p) => p.mark())
  const COUNT = 200
  // Two senders at once: each one's events arrive in its order everywhere.
  await Promise.all([
    a.request('emit', { event: 'tick', args: ['a'], count: COUNT }),
    host.request('emit', { event: 'tick', args: ['host'], count: COUNT })
  ])
  await a.request('emit', { event: 'single', count: 2 })
  await a.request('emit', { event: 'done', args: ['a'] })
  await host.request('emit', { event: 'done', args: ['host'] })
  for (const [i, peer] of peers.entries()) {
    // Per-sender order: a's 'done' arrives after all of a's ticks, the host's after the host's.
    for (const sender of ['a', 'host']) {
      await peer.waitEvent('bus', { since: marks[i], predicate: (m) => m.name === 'done' && m.args[1] === sender })
    }
    const ticks = peer.history.slice(marks[i]).filter((m) => m.event === 'bus' && m.name === 'tick')
    for (const sender of ['a', 'host']) {
      const order = ticks.filter((m) => m.args[1] === sender).map((m) => m.args[0])
      assert.deepEqual(order, Array.from({ length: COUNT }, (_, k) => k), `${peer.describe()} got ${sender}'s ticks once each, in order`)
    }
  }
  // `once`: b heard the first 'single' only; a's 'done' followed both, so both had arrived.
  const singles = b.history.slice(marks[2]).filter((m) => m.event === 'bus' && m.name === 'single')
  assert.deepEqual(singles.map((m) => m.args[0]), [0])

  // `off`: b stops hearing 'tick'; a 'done' sent after the tick proves it would have arrived.
  await b.request('unlisten', { event: 'tick' })
  const mark = b.mark()
  await a.request('emit', { event: 'tick', args: ['after-off'] })
  await a.request('emit', { event: 'done', args: ['after-off'] })
  await b.waitEvent('bus', { since: mark, predicate: (m) => m.name === 'done' && m.args[1] === 'after-off' })
  assert.equal(b.history.slice(mark).filter((m) => m.event === 'bus' && m.name === 'tick').length, 0)
})

test('events emitted while no host is reachable are sent after the next welcome', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('events-offline')
  const early = await spawnPeer(t, name, dir, { options: { ...OPTIONS, clientOnly: true } }, 'early')
  // Emitted before start(): queued.
  await early.request('listen', { event: 'hello' })
  await early.request('emit', { event: 'hello', args: ['queued'] })
  await early.waitEvent('bus', { predicate: (m) => m.name === 'hello' })
  const host = await spawnPeer(t, name, dir, { options: OPTIONS }, 'host')
  await host.request('listen', { event: 'hello' })
  await host.request('start')
  await early.request('start')
  const heard = await host.waitEvent('bus', { predicate: (m) => m.name === 'hello' })
  assert.deepEqual(heard.args, [0, 'queued'])
})

test('getStatus() reports the peers with pid, roles and RPC methods; ping() measures round trips', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('status')
  const host = await spawnPeer(t, name, dir, { rpc: ['whoami'], options: { ...OPTIONS, peer: { roles: ['reader'] } } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const a = await spawnPeer(t, name, dir, { rpc: ['echo', 'nested.add'], options: { ...OPTIONS, peer: { roles: ['writer'] } } }, 'a')
  const b = await spawnPeer(t, name, dir, { options: OPTIONS }, 'b')
  for (const peer of [a, b]) assert.equal((await peer.request('start')).role, 'client')

  const hostStatus = await host.request('status')
  assert.deepEqual(hostStatus.roles, ['reader'])
  const byPid = new Map(hostStatus.peers.map((p) => [p.pid, p]))
  assert.deepEqual(byPid.get(a.pid), { pid: a.pid, host: false, roles: ['writer'], methods: ['echo', 'nested.add'] })
  assert.deepEqual(byPid.get(b.pid), { pid: b.pid, host: false, roles: [], methods: [] })
  assert.equal(hostStatus.peers.length, 2)
  const clientStatus = await a.request('status')
  assert.deepEqual(clientStatus.peers, [{ pid: host.pid, host: true, roles: ['reader'], methods: ['whoami'] }])

  const fromHost = await host.request('ping')
  assert.equal(fromHost.connection, 'host')
  assert.deepEqual(fromHost.host, { time: 0 })
  assert.deepEqual(fromHost.clients.map((c) => c.pid).sort(), [a.pid, b.pid].sort())
  for (const client of fromHost.clients) assert.ok(client.time > 0 && client.time < 5000, JSON.stringify(client))
  const fromClient = await b.request('ping')
  assert.equal(fromClient.connection, 'client')
  assert.equal(fromClient.host.pid, host.pid)
  assert.ok(fromClient.host.time > 0 && fromClient.host.time < 5000, JSON.stringify(fromClient))
})

test('a process whose event loop is stuck keeps 16 MiB of events, drops the rest and reports ERR_EVENTS_DROPPED', { timeout: 60000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('events-stuck')
  const host = await spawnPeer(t, name, dir, { options: OPTIONS }, 'host')
  await host.request('start')
  const stuck = await spawnPeer(t, name, dir, { options: OPTIONS }, 'stuck')
  await stuck.request('start')
  await stuck.request('listen', { event: 'flood' })
  await stuck.request('listen', { event: 'after' })
  const release = path.join(path.dirname(dir), 'release')
  const blocked = stuck.request('block', { until: release, ms: 50000 }, 55000)
  const COUNT = 400
  await host.request('emit', { event: 'flood', args: ['x'.repeat(64 * 1024)], count: COUNT }, 30000)
  // Answered by the stuck process's native side, on the same connection after the flood: by
  // then it holds every event it will deliver.
  const pinged = await host.request('ping', {}, 30000)
  assert.ok(pinged.clients[0].time > 0, JSON.stringify(pinged.clients))
  fs.writeFileSync(release, '')
  assert.deepEqual(await blocked, { released: true })
  await host.request('emit', { event: 'after' })
  await stuck.waitEvent('bus', { predicate: (m) => m.name === 'after', timeoutMs: 20000 })
  const report = stuck.history.find((m) => m.event === 'error')
  assert.match(report?.message ?? '', /(\d+) events from other processes were dropped/)
  const dropped = Number(report.message.match(/(\d+) events from other processes were dropped/)[1])
  const kept = stuck.history.filter((m) => m.event === 'bus' && m.name === 'flood').length
  assert.ok(kept > 0 && dropped > 0, `kept ${kept}, dropped ${dropped}`)
  assert.equal(kept + dropped, COUNT)
  assert.ok(kept * 64 * 1024 <= 16 * 1024 * 1024, `kept ${kept} events of 64 KiB`)
})
