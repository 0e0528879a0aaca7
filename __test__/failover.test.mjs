// Failover between processes: the host stops or is killed (-9) while clients write; a survivor
// takes over, and nothing that a survivor saw accepted is lost or applied twice.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import memsync from '../index.js'
import { converge, countOccurrences, describeStates, rendezvousDir, spawnPeer, spawnPeers, uniqueName, withTimeout } from './support/peers.mjs'

// Each client pushes WRITES unique ids, WRITE_BATCH in flight at a time, a batch every
// WRITE_INTERVAL_MS, so that writing spans the loss of the host, which happens once the host has
// ordered LOSS_AT_VERSION patches.
const WRITES = 400
const WRITE_BATCH = 4
const WRITE_INTERVAL_MS = 1
const LOSS_AT_VERSION = 150
const OPTIONS = { timeout: 10000 }

/**
 * One round: a host and 3 writing clients in `dir`; `loseHost(host)` while they write. Checks a
 * single new host, identical survivors and every resolved id exactly once.
 */
async function hostLostWhileWriting (t, dir, loseHost) {
  const name = uniqueName('failover')
  const [host, ...clients] = await spawnPeers(t, 4, name, dir, { data: { log: [] }, options: OPTIONS })
  assert.equal((await host.request('start')).role, 'host')
  for (const { role } of await Promise.all(clients.map((c) => c.request('start')))) assert.equal(role, 'client')

  const marks = clients.map((c) => c.mark())
  const writing = Promise.all(clients.map((client, i) => client.request('write', {
    kind: 'push', count: WRITES, concurrency: WRITE_BATCH, intervalMs: WRITE_INTERVAL_MS, prefix: `c${i}`
  }, 20000)))
  let written = false
  writing.then(() => { written = true }, () => {}) // awaited below
  await host.request('waitVersion', { version: LOSS_AT_VERSION })
  assert.ok(!written, 'the clients are still writing when the host goes')
  await loseHost(host)
  assert.ok(host.exited, 'the old host is gone')

  const results = await writing
  for (const [i, client] of clients.entries()) {
    // The loss happened while the client was connected, so it noticed it.
    await client.waitEvent('disconnected', { since: marks[i] })
    assert.deepEqual(results[i].rejected, {}, `${client.describe()}: no patch may be rejected`)
    assert.equal(results[i].resolved.length, WRITES, `${client.describe()}: every patch resolved`)
  }
  const states = await converge(clients)
  const hosts = states.filter((s) => s.status === 'host')
  assert.equal(hosts.length, 1, `exactly one new host among the survivors:\n${describeStates(clients, states)}`)
  assert.equal(states.filter((s) => s.status === 'client').length, clients.length - 1)
  assert.equal(hosts[0].connections, clients.length - 1, 'the new host serves every other survivor')

  const { log } = states[0].data
  const counts = countOccurrences(log)
  const duplicates = [...counts].filter(([, n]) => n > 1).map(([id]) => id)
  assert.deepEqual(duplicates, [], 'no patch is applied twice')
  const resolved = results.flatMap((r) => r.resolved)
  const missing = resolved.filter((id) => !counts.has(id))
  assert.deepEqual(missing, [], 'every patch resolved in a survivor is present')
  assert.equal(log.length, resolved.length, 'nothing but the resolved patches is present')
  assert.equal(states[0].version, log.length, 'one version per patch')
}

test('stop() on the host while 3 clients write: one new host, survivors identical, every resolved patch once', { timeout: 20000 }, async (t) => {
  await hostLostWhileWriting(t, rendezvousDir(t), async (host) => {
    await host.request('stop')
    await withTimeout(host.exit, 5000, `${host.describe()} exits after stop()`)
  })
})

test('kill -9 of the host while 3 clients write, 5 times: one new host, survivors identical, every resolved patch once', { timeout: 40000 }, async (t) => {
  for (let round = 1; round <= 5; round++) {
    await t.test(`round ${round}`, { timeout: 15000 }, async (t) => {
      await hostLostWhileWriting(t, rendezvousDir(t), (host) => host.kill('SIGKILL'))
    })
  }
})

test('8 processes started at once elect exactly one host; after kill -9 of all, the name starts again at once', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('election')
  const peers = await spawnPeers(t, 8, name, dir, { data: { n: 0 }, options: OPTIONS })
  // Every instance exists; each starts at the same wall-clock millisecond.
  const at = Date.now() + 200
  const roles = (await Promise.all(peers.map((p) => p.request('start', { at })))).map((r) => r.role)
  assert.equal(roles.filter((r) => r === 'host').length, 1, `exactly one host: ${roles.join(', ')}`)
  assert.equal(roles.filter((r) => r === 'client').length, 7)
  const host = peers[roles.indexOf('host')]
  assert.equal((await host.request('state')).connections, 7, 'every other process is connected to the host')

  // The network works: everyone's increment reaches everyone.
  for (const result of await Promise.all(peers.map((p) => p.request('patch', { update: { $inc: { n: 1 } } })))) {
    assert.deepEqual(result, { ok: true })
  }
  const states = await converge(peers)
  assert.equal(states[0].data.n, 8)

  // The clients first, all at once, then the host: killed clients cannot take over (and replace
  // the socket), so the host's socket file is certainly left behind.
  await Promise.all(peers.filter((p) => p !== host).map((p) => p.kill('SIGKILL')))
  await host.kill('SIGKILL')
  const socket = path.join(dir, `${name}.sock`)
  assert.ok(fs.existsSync(socket), 'the killed host left its socket file behind')

  const next = await spawnPeer(t, name, dir, { data: { fresh: true }, options: { timeout: 2000 } }, 'next')
  const { role, ms } = await next.request('start', {}, 2000)
  assert.equal(role, 'host', 'the stale socket does not block the next host')
  assert.ok(ms < 2000, `started as host in ${ms.toFixed(1)} ms`)
  const joiner = await spawnPeer(t, name, dir, { data: {}, options: { timeout: 2000 } }, 'joiner')
  assert.equal((await joiner.request('start', {}, 2000)).role, 'client', 'and it accepts clients on a fresh socket')
  assert.deepEqual((await joiner.request('state')).data, { fresh: true })
})

test('a client whose JS thread is blocked still notices its host go and takes the role over', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('blocked')
  const host = await spawnPeer(t, name, dir, { data: { n: 0 }, options: OPTIONS }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const blocked = await spawnPeer(t, name, dir, { options: OPTIONS }, 'blocked client')
  assert.equal((await blocked.request('start')).role, 'client')
  assert.deepEqual(await host.request('patch', { update: { $inc: { n: 5 } } }), { ok: true })
  await blocked.request('waitFor', { path: 'n', value: 5 })

  const mark = blocked.mark()
  let busyEnded = false
  const busy = blocked.request('busy', { ms: 5000 }, 10000).then((reply) => { busyEnded = true; return reply })
  await blocked.waitEvent('busy', { since: mark })
  // While its JS thread spins, the client's socket is read by its tokio task: it sees the host
  // leave, becomes host and welcomes a newcomer with the data.
  await host.request('stop')
  const newcomer = await spawnPeer(t, name, dir, { options: { ...OPTIONS, clientOnly: true } }, 'newcomer')
  assert.equal((await newcomer.request('start')).role, 'client')
  const status = await newcomer.request('status')
  assert.equal(busyEnded, false, 'the blocked client took over while its JS thread was blocked')
  assert.equal(status.peers.find((peer) => peer.host)?.pid, blocked.pid, 'the blocked client is the new host')
  assert.deepEqual((await newcomer.request('state')).data, { n: 5 })
  await busy
  assert.equal((await blocked.request('status')).status, 'host')
})

test("kill -9 of the host in its own patch's then(): the patches that resolved survive it in the clients", { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('acknowledged')
  const [host, ...clients] = await spawnPeers(t, 3, name, dir, { data: { log: [] }, options: OPTIONS })
  assert.equal((await host.request('start')).role, 'host')
  for (const { role } of await Promise.all(clients.map((c) => c.request('start')))) assert.equal(role, 'client')
  const ids = Array.from({ length: 50 }, (_, i) => `h${i}`)
  const resolvedFile = path.join(path.dirname(dir), 'resolved')
  const marks = clients.map((c) => c.mark())
  // The reply may be lost with the process: the test waits for its exit instead.
  host.request('patchAndDie', { updates: ids.map((id) => ({ $push: { log: id } })), resolvedFile }).catch(() => {})
  await withTimeout(host.exit, 10000, 'the host did not die in its patch\'s then()')
  assert.ok(fs.existsSync(resolvedFile), 'the host\'s last patch resolved before it died')
  // Each survivor is connected again, one as the new host and the other to it.
  await Promise.all(clients.map((client, i) => client.waitEvent('connected', { since: marks[i] })))
  const states = await converge(clients)
  assert.equal(states.filter((s) => s.status === 'host').length, 1, describeStates(clients, states))
  assert.deepEqual(states[0].data.log, ids, 'every patch whose promise resolved in the host is in the survivors')
})

/** A host in this process with `hostTimeout` and one client, which is then stopped (SIGSTOP). */
async function hostWithStoppedClient (t, hostTimeout) {
  const dir = rendezvousDir(t)
  const name = uniqueName('unread')
  const host = new memsync.MemSync(name, { big: '' }, { dir, hostTimeout })
  t.after(() => host.stop())
  assert.equal(await host.start(), 'host')
  const client = await spawnPeer(t, name, dir, {}, 'stopped client')
  assert.equal((await client.request('start')).role, 'client')
  client.child.kill('SIGSTOP')
  t.after(() => client.child.kill('SIGCONT'))
  return { host, client }
}

/** 4 MiB of patches in one turn: far more than a socket's buffer, far less than the backlog that
 * gets a client dropped. */
function fillSockets (host) {
  return Array.from({ length: 64 }, (_, i) => host.patch({ $set: { big: String(i).repeat(64 * 1024) } }))
}

test("a host's patch resolves once a client can have it: not while its only client is stopped with a full socket, and once it reads again", { timeout: 30000 }, async (t) => {
  // hostTimeout bounds how long the host's patches wait for a stopped client: longer than the test.
  const { host, client } = await hostWithStoppedClient(t, 60000)
  const patches = fillSockets(host)
  let resolved = 0
  for (const patch of patches) patch.then(() => { resolved++ })
  // The flush runs in this turn's check phase; a patch it replicated resolves right after it.
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve))
  assert.equal(resolved, 0, 'no patch resolved while no client could have it')
  client.child.kill('SIGCONT')
  await withTimeout(Promise.all(patches), 10000, 'the patches did not resolve once the client read again')
  await client.request('waitVersion', { version: (await host.getStatus()).version })
  assert.equal((await client.request('state')).data.big, host.data.big)
})

test("a host's patch waits at most hostTimeout for clients that all stopped reading, then no more until one reads again", { timeout: 30000 }, async (t) => {
  const { host, client } = await hostWithStoppedClient(t, 1000)
  const waited = async (patches) => {
    const began = performance.now()
    await withTimeout(Promise.all(patches), 10000, 'the patches still waited for a stopped client after 10 s')
    return performance.now() - began
  }
  const first = await waited(fillSockets(host))
  assert.ok(first >= 900, `the first patches resolved after ${first.toFixed(0)} ms, before hostTimeout`)
  const next = await waited([host.patch({ $set: { big: 'next' } })])
  assert.ok(next < 900, `a patch made while the client stays stopped waited ${next.toFixed(0)} ms`)

  client.child.kill('SIGCONT')
  await client.request('waitVersion', { version: (await host.getStatus()).version })
  // A patch that the client takes ends the stall: the host waits for it again.
  await host.patch({ $set: { big: 'read' } })
  client.child.kill('SIGSTOP')
  const again = await waited(fillSockets(host))
  assert.ok(again >= 900, `after the client read again, patches resolved after ${again.toFixed(0)} ms, before hostTimeout`)
})
