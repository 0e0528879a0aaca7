// Beside the document, across machines (each its own rendezvous directory) through a real
// redis-server: RPC calls between processes of different machines, events to every process of
// every machine, who runs where in getStatus(), and maxWriters counting every machine's writers.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'
import { command, redisMissing, redisServer, waitFor } from './support/redis.mjs'

const missing = redisMissing()

/** Two machines: A (host `a`, client `a2`) and B (host `b`, client `b2`), each with its RPC functions. */
async function twoMachines (t, url, rpc = {}, options = {}) {
  const name = uniqueName('machines')
  const [machineA, machineB] = [rendezvousDir(t), rendezvousDir(t)]
  const peer = async (dir, label, role) => {
    const started = await spawnPeer(t, name, dir, { rpc: rpc[label] ?? [], options: { transport: url, timeout: 15000, ...options } }, label)
    assert.equal((await started.request('start')).role, role)
    return started
  }
  const a = await peer(machineA, 'a', 'host')
  const a2 = await peer(machineA, 'a2', 'client')
  const b = await peer(machineB, 'b', 'host')
  const b2 = await peer(machineB, 'b2', 'client')
  return { name, a, a2, b, b2 }
}

/** How many connections the server at `port` accepted so far. */
async function connectionsReceived (port) {
  const info = await command(port, 'INFO', 'stats')
  return Number(/total_connections_received:(\d+)/.exec(info)[1])
}

/** Until `bridge`'s getStatus() lists the processes `pids` of another machine. */
async function seesElsewhere (bridge, pids) {
  await waitFor(async () => {
    const { peers } = await bridge.request('status')
    return pids.every((pid) => peers.some((p) => p.pid === pid && typeof p.machine === 'string'))
  }, 10000, `machine of ${bridge.describe()} to see processes ${pids}`)
}

test('RPC calls reach a process of another machine and come back; getStatus() lists every machine\'s processes', { skip: missing ?? false, timeout: 60000 }, async (t) => {
  const { url } = await redisServer(t)
  const { a, a2, b, b2 } = await twoMachines(t, url, { a: ['whoami'], a2: ['echo', 'fail'], b2: ['whoami'] })
  await seesElsewhere(b, [a.pid, a2.pid])
  await seesElsewhere(a, [b.pid, b2.pid])
  const { peers } = await b.request('status')
  const a2Listed = peers.find((p) => p.pid === a2.pid)
  assert.deepEqual(a2Listed.methods, ['echo', 'fail'])
  assert.equal(a2Listed.host, false)
  assert.equal(peers.find((p) => p.pid === a.pid).host, true)

  // A client of B -> a client of A, through both bridges; JSON values arrive as sent.
  const args = ['x', { deep: [1, null, true, 'é'] }, 2.5]
  const echoed = await b2.request('call', { method: 'echo', args })
  assert.deepEqual(echoed.outcome?.result, args, JSON.stringify(echoed))
  // A machine's own processes come first: b asks its own client, a its own host's JS.
  assert.equal((await b.request('call', { method: 'whoami' })).outcome.result.pid, b2.pid)
  assert.equal((await a2.request('call', { method: 'whoami' })).outcome.result.pid, a.pid)
  // A remote throw keeps its code and message; an unknown method is not found anywhere.
  const failed = await b.request('call', { method: 'fail', args: ['E_FAR', 'from machine A'] })
  assert.deepEqual([failed.error, failed.message], ['E_FAR', 'from machine A'])
  const unknown = await b2.request('call', { method: 'no.such' })
  assert.equal(unknown.error, 'ERR_RPC_NOT_FOUND')
})

test('events reach every process of every machine once, in each sender\'s order', { skip: missing ?? false, timeout: 60000 }, async (t) => {
  const { url } = await redisServer(t)
  const { a, a2, b, b2 } = await twoMachines(t, url)
  const peers = [a, a2, b, b2]
  for (const peer of peers) {
    await peer.request('listen', { event: 'tick' })
    await peer.request('listen', { event: 'done' })
  }
  const marks = peers.map((p) => p.mark())
  const COUNT = 100
  const senders = [[a2, 'a2'], [b, 'b']]
  await Promise.all(senders.map(([peer, who]) => peer.request('emit', { event: 'tick', args: [who], count: COUNT })))
  for (const [peer, who] of senders) await peer.request('emit', { event: 'done', args: [who] })
  for (const [i, peer] of peers.entries()) {
    for (const [, who] of senders) {
      await peer.waitEvent('bus', { since: marks[i], predicate: (m) => m.name === 'done' && m.args[1] === who, timeoutMs: 15000 })
    }
    const ticks = peer.history.slice(marks[i]).filter((m) => m.event === 'bus' && m.name === 'tick')
    for (const [, who] of senders) {
      const order = ticks.filter((m) => m.args[1] === who).map((m) => m.args[0])
      assert.deepEqual(order, Array.from({ length: COUNT }, (_, k) => k), `${peer.describe()} got ${who}'s ticks once each, in order`)
    }
  }
})

test('a call to another machine fails with ERR_RPC_PEER_LOST when its callee dies, or the whole machine', { skip: missing ?? false, timeout: 60000 }, async (t) => {
  const { url, server: { port } } = await redisServer(t)
  const { a, a2, b, b2 } = await twoMachines(t, url, { a: ['stall'], a2: ['hang'] }, { timeout: 30000 })
  await seesElsewhere(b, [a.pid, a2.pid])
  const sinceA2 = a2.mark()
  const toA2 = await b2.request('callLater', { method: 'hang' })
  await a2.waitEvent('hanging', { since: sinceA2 })
  await a2.kill('SIGKILL')
  const lost = await b2.request('settled', { token: toA2.token })
  assert.equal(lost.error, 'ERR_RPC_PEER_LOST', lost.message)
  assert.ok(lost.ms < 5000, `rejected ${lost.ms.toFixed(0)} ms after the call, not at the 30 s timeout`)

  // Machine A's last process: its presence expires (3 s) and the call fails then.
  const sinceA = a.mark()
  const toA = await b.request('callLater', { method: 'stall' })
  await a.waitEvent('hanging', { since: sinceA })
  const connections = await connectionsReceived(port)
  await a.kill('SIGKILL')
  const machineLost = await b.request('settled', { token: toA.token })
  assert.equal(machineLost.error, 'ERR_RPC_PEER_LOST', machineLost.message)
  assert.ok(machineLost.ms < 6000, `rejected ${machineLost.ms.toFixed(0)} ms after the call`)
  // One more: the connection that asks.
  assert.equal(await connectionsReceived(port), connections + 1, 'machine B kept its connections while it waited')
})

test('maxWriters counts the writers of every machine', { skip: missing ?? false, timeout: 60000 }, async (t) => {
  const { url, server } = await redisServer(t)
  const name = uniqueName('writers')
  const [machineA, machineB] = [rendezvousDir(t), rendezvousDir(t)]
  const config = (roles) => ({ options: { transport: url, timeout: 10000, peer: { roles }, network: { maxWriters: 2 } } })
  const a = await spawnPeer(t, name, machineA, config(['writer']), 'a')
  assert.equal((await a.request('start')).role, 'host')
  const a2 = await spawnPeer(t, name, machineA, config(['writer']), 'a2')
  assert.equal((await a2.request('start')).role, 'client')
  // Until machine A's presence in Redis lists both its writers.
  await waitFor(async () => {
    const members = await command(server.port, 'SMEMBERS', `{ms:${name}}:machines`)
    const id = members.split('\r\n')[2]
    const presence = await command(server.port, 'GET', `{ms:${name}}:machine:${id}`)
    return presence.includes(String(a2.pid))
  }, 10000, "machine A's presence to list a2")
  // A writer that would be machine B's host is refused.
  const b = await spawnPeer(t, name, machineB, config(['writer']), 'b')
  const refused = await b.request('tryStart')
  assert.equal(refused.error, 'ERR_MAX_WRITERS', JSON.stringify(refused))
  // A reader may host machine B, but a writer may not join it.
  const reader = await spawnPeer(t, name, machineB, config(['reader']), 'reader')
  assert.equal((await reader.request('start')).role, 'host')
  const writer = await spawnPeer(t, name, machineB, config(['writer']), 'writer')
  const alsoRefused = await writer.request('tryStart')
  assert.equal(alsoRefused.error, 'ERR_MAX_WRITERS', JSON.stringify(alsoRefused))
})

test('a lock contended by processes of two machines guards a read-modify-write: the count is exact', { skip: missing ?? false, timeout: 120000 }, async (t) => {
  const { url } = await redisServer(t)
  const { a, a2, b, b2 } = await twoMachines(t, url)
  await a.request('patch', { update: { $set: { n: 0 } } })
  const COUNT = 25
  const results = await Promise.all([a, a2, b, b2].map((p) => p.request('lockedIncrement', { key: 'n', count: COUNT }, 100000)))
  for (const result of results) assert.deepEqual(result.rejected, [], 'no $set was rejected')
  const states = await Promise.all([a, a2, b, b2].map((p) => p.request('state')))
  // Without mutual exclusion, or with a grant before the last holder's $set had arrived, two
  // processes would read the same n and an increment would be lost.
  assert.equal(Math.max(...states.map((s) => s.data.n)), 4 * COUNT)
})

test('a lock whose holder\'s machine dies goes to the next waiter; one held across a failover of its own machine\'s host stays', { skip: missing ?? false, timeout: 120000 }, async (t) => {
  const { url } = await redisServer(t)
  const { a, a2, b, b2 } = await twoMachines(t, url, {}, { timeout: 30000 })
  // a2 (a client of machine A) holds 'k' while A's host dies: A's new host is a2 itself.
  const held = await a2.request('lockHold', { key: 'k' })
  await a2.waitEvent('locked')
  const waiting = await b2.request('lockHold', { key: 'k' })
  const sinceA2 = a2.mark()
  await a.kill('SIGKILL')
  await a2.waitEvent('connected', { since: sinceA2, predicate: (e) => e.role === 'host', timeoutMs: 15000 })
  // Past the dead host's presence (3 s): the lock stays a2's, b2 still waits.
  const probe = await b.request('lockHold', { key: 'k', timeout: 5000 })
  assert.equal((await b.request('settled', { token: probe.token })).error, 'ERR_TIMEOUT', 'nobody else got the lock')
  assert.equal(b2.history.some((m) => m.event === 'locked'), false, 'b2 still waits')
  const { at: releasedAt } = await a2.request('lockRelease', { key: 'k' })
  const granted = await b2.waitEvent('locked', { timeoutMs: 10000 })
  assert.ok(granted.at >= releasedAt)
  assert.deepEqual(await a2.request('settled', { token: held.token }), { ok: true })

  // Now b2 holds it, and machine B dies whole: a2's request is granted once B's presence expires.
  const next = await a2.request('lockHold', { key: 'k' })
  const sinceNext = a2.mark()
  await Promise.all([b.kill('SIGKILL'), b2.kill('SIGKILL')])
  const began = Date.now()
  await a2.waitEvent('locked', { since: sinceNext, timeoutMs: 15000 })
  assert.ok(Date.now() - began < 10000, `granted ${Date.now() - began} ms after machine B died`)
  assert.ok(next.token !== undefined)
})
