// Sync between processes: each test runs real Node processes (fixtures/peer.mjs) sharing one
// object in a rendezvous directory of its own. Every wait is on a message or an event, bounded.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../index.js'
import { converge, countOccurrences, rendezvousDir, spawnPeer, spawnPeers, uniqueName, withTimeout } from './support/peers.mjs'

const { MemSync } = memsync

/** Starts `host` first, then the others together; checks the roles. */
async function startAll (host, clients) {
  assert.equal((await host.request('start')).role, 'host', `${host.describe()} starts as host`)
  const roles = await Promise.all(clients.map((peer) => peer.request('start')))
  for (const [i, { role }] of roles.entries()) assert.equal(role, 'client', `${clients[i].describe()} joins as client`)
}

function assertNoRejections (results, peers) {
  for (const [i, { rejected }] of results.entries()) {
    assert.deepEqual(rejected, {}, `${peers[i].describe()}: no patch may be rejected`)
  }
}

test('a joining process receives the current data and version; patches flow both ways; observers fire across processes', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('join')
  const host = await spawnPeer(t, name, dir, { data: { a: 1, list: [] } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  assert.deepEqual(await host.request('patch', { update: { $set: { a: 2 }, $push: { list: 'h1' } } }), { ok: true })
  assert.deepEqual(await host.request('patch', { update: { $inc: { a: 1 } } }), { ok: true })

  // Its own default object only seeds a brand new network: here it is ignored.
  const joiner = await spawnPeer(t, name, dir, { data: { a: 100, ignored: true } }, 'joiner')
  assert.equal((await joiner.request('start')).role, 'client')
  const joined = await joiner.request('state')
  assert.deepEqual(joined.data, { a: 3, list: ['h1'] }, 'the joiner holds the host data, not its default')
  assert.equal(joined.version, 2, 'and the host version')

  const third = await spawnPeer(t, name, dir, { data: {} }, 'third')
  assert.equal((await third.request('start')).role, 'client')
  await third.request('observe', { path: 'list' })
  await host.request('observe', { path: 'a' })
  const thirdMark = third.mark()
  const hostMark = host.mark()

  // host -> clients
  assert.deepEqual(await host.request('patch', { update: { $push: { list: 'from-host' } } }), { ok: true })
  await joiner.request('waitFor', { path: 'list', value: ['h1', 'from-host'] })
  await third.request('waitFor', { path: 'list', value: ['h1', 'from-host'] })

  // client -> host (and the third process sees it too)
  assert.deepEqual(await joiner.request('patch', { update: { $push: { list: 'from-client' }, $inc: { a: 10 } } }), { ok: true })
  await host.request('waitFor', { path: 'a', value: 13 })
  await host.request('waitFor', { path: 'list', value: ['h1', 'from-host', 'from-client'] })
  await third.request('waitFor', { path: 'list', value: ['h1', 'from-host', 'from-client'] })

  // Observers fired in the other processes, with the new values.
  await third.waitEvent('observed', { since: thirdMark, predicate: (e) => e.path === 'list' && e.value.length === 2 })
  await third.waitEvent('observed', { since: thirdMark, predicate: (e) => e.path === 'list' && e.value.length === 3 && e.value[2] === 'from-client' })
  await host.waitEvent('observed', { since: hostMark, predicate: (e) => e.path === 'a' && e.value === 13 })
  assert.ok(!host.history.slice(hostMark).some((e) => e.event === 'observed' && e.path === 'a' && e.value !== 13),
    'the host observer of a fired only for the patch that touched a')

  const states = await converge([host, joiner, third])
  assert.deepEqual(states[0].data, { a: 13, list: ['h1', 'from-host', 'from-client'] })
  assert.equal(states[0].version, 4)
})

test('4 processes x 1,500 concurrent $inc of one field: exactly 6,000 everywhere, same version', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('inc')
  const peers = await spawnPeers(t, 4, name, dir, { data: { n: 0 } })
  await startAll(peers[0], peers.slice(1))

  const results = await Promise.all(peers.map((peer) => peer.request('write', { kind: 'inc', count: 1500 }, 20000)))
  assertNoRejections(results, peers)
  for (const [i, { resolved }] of results.entries()) assert.equal(resolved.length, 1500, `${peers[i].describe()}: every patch resolved`)

  const states = await converge(peers)
  for (const [i, state] of states.entries()) {
    assert.equal(state.data.n, 6000, `${peers[i].describe()} n`)
    assert.equal(state.version, 6000, `${peers[i].describe()} version`)
  }
})

test('concurrent $push from 3 processes: identical arrays everywhere and every resolved id exactly once', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('push')
  const peers = await spawnPeers(t, 3, name, dir, { data: { log: [] } })
  await startAll(peers[0], peers.slice(1))

  const results = await Promise.all(peers.map((peer, i) => peer.request('write', { kind: 'push', count: 500, prefix: `p${i}` }, 15000)))
  assertNoRejections(results, peers)
  const resolved = results.flatMap((r) => r.resolved)
  assert.equal(resolved.length, 1500)

  const states = await converge(peers) // identical data, so the same order everywhere
  const { log } = states[0].data
  const counts = countOccurrences(log)
  for (const id of resolved) assert.equal(counts.get(id), 1, `${id} is in the log exactly once`)
  assert.equal(log.length, resolved.length, 'nothing else is in the log')
  // Each process's own patches keep their relative order.
  for (const [i] of peers.entries()) {
    const own = log.filter((id) => id.startsWith(`p${i}-`)).map((id) => Number(id.split('-')[1]))
    assert.deepEqual(own, [...own].sort((a, b) => a - b), `p${i}'s patches are ordered as issued`)
  }
})

test('a stale $set is rejected with ERR_STALE_WRITE and rolled back, and observers see the winning value', { timeout: 20000 }, async (t) => {
  // A clientOnly client loses its host and, while no host exists, sets x: its patch queues with
  // its creation time. A later process writes x (later in wall time) and becomes host, ordering
  // that write before it admits anyone. When the client connects, its queued $set is older than
  // the accepted write on x, so the host must reject it.
  const dir = rendezvousDir(t)
  const name = uniqueName('stale')
  const first = await spawnPeer(t, name, dir, { data: { x: 'init' } }, 'first-host')
  assert.equal((await first.request('start')).role, 'host')
  const client = await spawnPeer(t, name, dir, { data: { x: 'init' }, options: { clientOnly: true, timeout: 15000 } }, 'client')
  assert.equal((await client.request('start')).role, 'client')
  await client.request('observe', { path: 'x' })

  const mark = client.mark()
  await first.request('stop')
  await client.waitEvent('disconnected', { since: mark })

  // Offline: the $set applies locally at once and queues.
  const old = await client.request('patch', { update: { $set: { x: 'old' } }, wait: false })
  assert.equal(old.data.x, 'old', 'the own patch is visible at once')

  const next = await spawnPeer(t, name, dir, { data: { x: 'init' } }, 'next-host')
  const { now } = await next.request('now')
  assert.ok(now > old.now, `the next host's write is later in wall time (${now} > ${old.now})`)
  const newer = await next.request('patch', { update: { $set: { x: 'new' } }, wait: false })
  const connected = client.waitEvent('connected', { since: mark, timeoutMs: 10000 })
  connected.catch(() => {}) // awaited below; a failure before that must not leave it unhandled
  assert.equal((await next.request('start')).role, 'host')
  assert.deepEqual(await next.request('settled', { token: newer.token }), { ok: true })
  await connected

  const outcome = await client.request('settled', { token: old.token })
  assert.equal(outcome.error, 'ERR_STALE_WRITE', `the stale $set is rejected (got ${JSON.stringify(outcome)})`)
  const state = await client.request('waitFor', { path: 'x', value: 'new' })
  assert.equal(state.data.x, 'new', 'the optimistic change was rolled back to the winning value')

  const observed = client.history.slice(mark).filter((e) => e.event === 'observed').map((e) => e.value)
  assert.equal(observed[0], 'old', 'the observer saw the optimistic value')
  assert.equal(observed.at(-1), 'new', `the observer saw the rollback (saw ${JSON.stringify(observed)})`)

  const states = await converge([next, client])
  assert.deepEqual(states[0].data, { x: 'new' })
})

test('concurrent $sets of one path from several processes converge to the newest', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('set')
  const peers = await spawnPeers(t, 4, name, dir, { data: { x: 'init' } })
  await startAll(peers[0], peers.slice(1))
  await peers[0].request('record')

  const results = await Promise.all(peers.map((peer, i) => peer.request('write', { kind: 'set', count: 300, concurrency: 10, prefix: `p${i}` }, 15000)))
  const resolved = new Set(results.flatMap((r) => r.resolved))
  for (const [i, { rejected }] of results.entries()) {
    for (const [id, code] of Object.entries(rejected)) assert.equal(code, 'ERR_STALE_WRITE', `${peers[i].describe()}: ${id} may only be rejected as stale`)
  }
  assert.ok(resolved.size > 0)

  const states = await converge(peers)
  const final = states[0].data.x
  assert.ok(resolved.has(final), `the final x (${final}) is a $set whose promise resolved`)

  // The host ordered the $sets of x by creation time: each accepted one is newer than the last.
  const { records } = await peers[0].request('records')
  const sets = records.filter((r) => r.patch.$set !== undefined).sort((a, b) => a.version - b.version)
  assert.equal(sets.length, resolved.size, 'the host ordered every resolved $set, and only those')
  assert.equal(sets.at(-1).patch.$set.x, final, 'the last ordered $set is the value everywhere')
  const received = sets.filter((r) => r.received)
  for (let i = 1; i < received.length; i++) {
    assert.ok(received[i].timestamp >= received[i - 1].timestamp,
      `v${received[i].version} (${received[i].timestamp}) is not older than v${received[i - 1].version} (${received[i - 1].timestamp})`)
  }
})

test('two instances of one name in one process sync; two names in one process are independent', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('inproc')
  const a = new MemSync(name, { n: 0, list: [] }, { dir })
  const b = new MemSync(name, { other: true }, { dir })
  const c = new MemSync(uniqueName('other'), { n: 100 }, { dir })
  t.after(() => Promise.all([a.stop(), b.stop(), c.stop()]))

  assert.equal(await a.start(), 'host')
  assert.equal(await b.start(), 'client')
  assert.equal(await c.start(), 'host', 'another name elects its own host')
  assert.deepEqual(b.data, { n: 0, list: [] }, 'the joiner holds the host data')

  const observed = (mem, path, value) => withTimeout(new Promise((resolve) => {
    const check = () => {
      if (JSON.stringify(mem.data[path]) === JSON.stringify(value)) {
        mem.unobserve(path, check)
        resolve()
      }
    }
    mem.observe(path, check)
    check()
  }), 5000, `${path} === ${JSON.stringify(value)} (it is ${JSON.stringify(mem.data[path])})`)

  await a.patch({ $inc: { n: 1 }, $push: { list: 'a' } })
  await observed(b, 'n', 1)
  await b.patch({ $inc: { n: 10 }, $push: { list: 'b' } })
  await observed(a, 'list', ['a', 'b'])
  assert.equal(a.data.n, 11)
  assert.equal(b.data.n, 11)
  assert.equal((await a.getStatus()).version, 2)
  assert.equal((await b.getStatus()).version, 2)
  assert.equal((await a.getStatus()).host.connections, 1)

  await c.patch({ $inc: { n: 1 } })
  assert.deepEqual(c.data, { n: 101 })
  assert.deepEqual(a.data, { n: 11, list: ['a', 'b'] }, 'the other name does not touch this one')
  assert.equal((await c.getStatus()).version, 1)
  assert.equal((await c.getStatus()).host.connections, 0)
})

test('a burst made in one go is sent every 1,024 patches: the host orders them before the turn that makes them ends', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('burst')
  const host = new MemSync(name, { n: 0 }, { dir })
  const writer = new MemSync(name, {}, { dir })
  t.after(() => Promise.all([host.stop(), writer.stop()]))
  assert.equal(await host.start(), 'host')
  assert.equal(await writer.start(), 'client')
  const patches = []
  for (let i = 0; i < 1024; i++) patches.push(writer.patch({ $inc: { n: 1 } }))
  // Still in the writer's turn (its end-of-turn flush has not run): the host's own thread orders
  // what was sent, and patch({}) applies what the host ordered to its data, synchronously.
  const deadline = Date.now() + 10000
  while (host.data.n < 1024 && Date.now() < deadline) host.patch({})
  assert.equal(host.data.n, 1024, 'the host ordered the whole burst while it was being made')
  await withTimeout(Promise.all(patches), 10000, 'the burst was not acknowledged')
})

// Patches a survivor brings to a new host go through the stale-write check too: an older $set the
// old host accepted must not overwrite a newer $set the new host has accepted.
test('a catch-up from a survivor does not overwrite a newer $set the new host accepted', { timeout: 10000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('catchup')
  const first = new MemSync(name, { x: 'init' }, { dir })
  const survivor = new MemSync(name, { x: 'init' }, { dir, clientOnly: true })
  t.after(() => Promise.all([first.stop(), survivor.stop()]))
  assert.equal(await first.start(), 'host')
  assert.equal(await survivor.start(), 'client')
  await survivor.patch({ $set: { x: 'old' } }) // accepted by the first host, at t1
  const offline = survivor.onceAsync('disconnected')
  await first.stop()
  await offline

  const t1 = Date.now()
  while (Date.now() <= t1 + 1) { /* the next write is at least 2 ms later in wall time */ }
  const next = new MemSync(name, { x: 'init' }, { dir })
  t.after(() => next.stop())
  const accepted = next.patch({ $set: { x: 'new' } }) // t2 > t1, ordered when next becomes host
  const back = survivor.onceAsync('connected')
  assert.equal(await next.start(), 'host')
  await accepted
  await withTimeout(back, 5000, 'the survivor reconnects')
  // A round trip through the host: it has handled the survivor's catch-up before this patch.
  await survivor.patch({ $set: { probe: 1 } })
  assert.equal(survivor.data.x, 'new', 'the newest $set of x wins on the survivor')
  await withTimeout(new Promise((resolve) => {
    const check = () => { if (next.data.probe === 1) resolve() }
    next.observe('probe', check)
    check()
  }), 5000, 'the host applies the probe')
  assert.equal(next.data.x, 'new', 'the newest $set of x wins on the host')
})

test('a process joining a host whose document is larger than the event backlog (16 MiB) holds all of it', { timeout: 60000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('big-join')
  const host = await spawnPeer(t, name, dir, { data: {} }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const part = (i) => String(i).repeat(5.5e6)
  for (let i = 0; i < 4; i++) {
    assert.deepEqual(await host.request('patch', { update: { $set: { [`part${i}`]: part(i) } } }, 30000), { ok: true })
  }
  const joiner = new MemSync(name, { mine: true }, { dir })
  t.after(() => joiner.stop())
  assert.equal(await joiner.start(), 'client')
  assert.deepEqual(Object.keys(joiner.data), ['part0', 'part1', 'part2', 'part3'], "the host's document, not the joiner's default or an empty one")
  for (let i = 0; i < 4; i++) assert.ok(joiner.data[`part${i}`] === part(i), `part${i} arrived whole`)
  // Patches flow on after the join, on top of the whole document.
  await joiner.patch({ $set: { after: 1 } })
  assert.deepEqual(Object.keys(joiner.data), ['part0', 'part1', 'part2', 'part3', 'after'])
  assert.ok(joiner.data.part3 === part(3))
})

test('hasPeers() tells whether anything accepts connections on the socket of the name (memsync 0.5)', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('peers')
  const host = new MemSync(name, {}, { dir })
  const client = new MemSync(name, {}, { dir })
  t.after(() => Promise.all([client.stop(), host.stop()]))
  assert.equal(await client.hasPeers(), false, 'nobody hosts the name yet')
  assert.equal(await host.start(), 'host')
  assert.equal(await host.hasPeers(), true, 'a host without clients: its own listener accepts')
  assert.equal(await client.hasPeers(), true, 'a host accepts connections, before start()')
  assert.equal(await client.start(), 'client')
  assert.equal(await client.hasPeers(), true)
  assert.equal(await host.hasPeers(), true)
  await client.stop()
  await host.stop()
  assert.equal(await client.hasPeers(), false, 'the host is gone')
  assert.equal(await host.hasPeers(), false, 'a stopped host listens no more')
})
