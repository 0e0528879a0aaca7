// memsync between processes: propagation latency, a client's patch round trip, end-to-end
// throughput, bursts of unawaited patches, join and memory of large objects, failover and
// start-up.
//
// Every peer but the start-up ones is a child process (fixtures/sync-peer.mjs) driven over Node
// IPC; times are taken inside the processes (measure.mjs's now(), one clock for all of them).
// Every wait is bounded, every peer is killed when its benchmark ends (children.mjs), and every
// benchmark uses its own name in the run's private rendezvous directory.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { killAll, spawnPeer } from './children.mjs'
import { now, summarize } from './measure.mjs'
import { driveThroughput, oneWays, pingPong, roundTrips } from './workloads.mjs'

const require = createRequire(import.meta.url)
const { MemSync } = require('../index.js')

const FIXTURE = fileURLToPath(new URL('fixtures/sync-peer.mjs', import.meta.url))

let names = 0
const uniqueName = (label) => `bench-${label}-${process.pid}-${names++}`

/** The first start() of every child process, by role: a cold start (see benchStartup). */
const coldStarts = { host: [], client: [] }

/**
 * Spawns and starts a peer, checking the role it takes. Its start() counts among the cold
 * starts unless `coldStart` is false (the join benchmark's large objects are timed apart).
 */
async function startPeer (name, dir, label, role, config = {}, { coldStart = true } = {}) {
  const peer = await spawnPeer(FIXTURE, [name, dir, JSON.stringify(config)], label)
  try {
    const reply = await peer.request('start', {}, 30000)
    if (reply.role !== role) throw new Error(`${label} started as ${reply.role}, expected ${role}`)
    if (coldStart) coldStarts[role].push(reply.ns)
    peer.startNs = reply.ns
    return peer
  } catch (error) {
    await peer.kill()
    throw error
  }
}

// ---------------------------------------------------------------------------------------------
// Propagation: a patch in client A until the observer fires in client B, through the host.

export async function benchLatency (dir, settings) {
  const name = uniqueName('latency')
  const peers = []
  try {
    peers.push(await startPeer(name, dir, 'latency host', 'host', { data: {} }))
    peers.push(await startPeer(name, dir, 'latency A', 'client'))
    peers.push(await startPeer(name, dir, 'latency B', 'client'))
    const between = await pingPong(peers[1], peers[2], settings)
    // The host's own process each way: its patches leave from its JS thread, while a client's
    // reach it through its socket thread, which then wakes its JS thread.
    const host = await oneWays(peers[0], peers[2], settings)
    return { ...between, fromHost: host.forth, toHost: host.back }
  } finally {
    await killAll(peers)
  }
}

// ---------------------------------------------------------------------------------------------
// A client's `await mem.patch()`: to the host, ordered, and back (Redis's HINCRBY counterpart);
// and the host's own, which resolves once the client's socket has it (`host`).

export async function benchRoundTrip (dir, settings) {
  const name = uniqueName('roundtrip')
  const peers = []
  try {
    peers.push(await startPeer(name, dir, 'round-trip host', 'host', { data: { n: 0 } }))
    peers.push(await startPeer(name, dir, 'round-trip client', 'client'))
    const client = await roundTrips(peers[1], 'roundTrips', settings)
    return { ...client, host: await roundTrips(peers[0], 'roundTrips', settings) }
  } finally {
    await killAll(peers)
  }
}

// ---------------------------------------------------------------------------------------------
// RPC and events between two clients, through the host (which registers nothing itself).

/** `await mem.call()` in client A of a function that client B registered. */
export async function benchRpc (dir, settings) {
  const name = uniqueName('rpc')
  const peers = []
  try {
    peers.push(await startPeer(name, dir, 'rpc host', 'host', { data: {} }))
    peers.push(await startPeer(name, dir, 'rpc callee', 'client', { rpc: true }))
    peers.push(await startPeer(name, dir, 'rpc caller', 'client'))
    return await roundTrips(peers[2], 'rpcRoundTrips', settings)
  } finally {
    await killAll(peers)
  }
}

/** Events/s: client A emits `count` events in one go; until the last reached client B. */
export async function benchEvents (dir, { runs, count }) {
  const name = uniqueName('events')
  const peers = []
  try {
    peers.push(await startPeer(name, dir, 'events host', 'host', { data: {} }))
    const [receiver, emitter] = [await startPeer(name, dir, 'events receiver', 'client'), await startPeer(name, dir, 'events emitter', 'client')]
    peers.push(receiver, emitter)
    const rates = []
    for (let run = 0; run < runs; run++) {
      await receiver.request('countEvents', { count })
      const { start } = await emitter.request('emitMany', { count }, 60000)
      const { t } = await receiver.request('counted', {}, 60000)
      rates.push(count / ((t - start) / 1e9))
    }
    return { count, runs: rates, ...summarize(rates) }
  } finally {
    await killAll(peers)
  }
}

// ---------------------------------------------------------------------------------------------
// Throughput: `processes` peers (the host first), of which the last `writers` write. With two
// more processes than writers (a host and an observer that do not write) the shape is the
// relay's and Redis's: a hub, a reader, W writers.

/** The (processes, writers) pairs measured: the relay's shape, and 1 to 8 processes. */
function throughputShapes ({ writers, processes }) {
  const shapes = []
  for (const w of writers) {
    const counts = [...new Set([...processes, w + 2])].filter((p) => p >= w).sort((a, b) => a - b)
    for (const p of counts) shapes.push({ writers: w, processes: p })
  }
  return shapes
}

export async function benchThroughput (dir, settings) {
  const rows = []
  for (const shape of throughputShapes(settings)) {
    const name = uniqueName(`throughput${shape.processes}p${shape.writers}w`)
    const peers = []
    try {
      for (let i = 0; i < shape.processes; i++) {
        const label = `throughput peer ${i} (${shape.processes} processes, ${shape.writers} writers)`
        peers.push(await startPeer(name, dir, label, i === 0 ? 'host' : 'client', i === 0 ? { data: { n: 0 } } : {}))
      }
      const writers = peers.slice(peers.length - shape.writers)
      const observers = peers.slice(0, peers.length - shape.writers)
      const result = await driveThroughput(observers, writers, settings)
      // Every replica holds exactly every increment, at one version.
      const states = await Promise.all(peers.map((p) => p.request('state')))
      if (states.some((s) => s.n !== result.total || s.version !== states[0].version)) {
        throw new Error(`throughput ${JSON.stringify(shape)}: replicas differ, expected n = ${result.total}: ${JSON.stringify(states.map(({ data, ...s }) => s))}`)
      }
      rows.push({ ...shape, ...result })
    } finally {
      await killAll(peers)
    }
  }
  return rows
}

// ---------------------------------------------------------------------------------------------
// The burst sweep (issue 18): a host and 2 writers, each writer making `count` `$inc`, `window`
// at a time unawaited, for each window in turn within every run, of a field of its own and then
// of one counter both increment; the acknowledged patches/s of both writers, from the first's
// start to the last acknowledgement. The replicas must agree at the end.

export async function benchBurstSweep (dir, { runs, count, windows }) {
  const name = uniqueName('bursts')
  const peers = []
  try {
    // A collapsed burst of 20,000 takes seconds to be acknowledged: longer than patch()'s default
    // timeout (15 s) on a busy machine, which would fail the row instead of measuring it.
    const options = { timeout: 120000 }
    peers.push(await startPeer(name, dir, 'burst host', 'host', { data: { w0: 0, w1: 0, n: 0 }, options }))
    peers.push(await startPeer(name, dir, 'burst writer 0', 'client', { options }), await startPeer(name, dir, 'burst writer 1', 'client', { options }))
    const writers = peers.slice(1)
    // Two kinds of burst, in turn for each window: each writer increments a field of its own
    // (its patches and the other's touch disjoint paths), or both increment one counter (the
    // same path, where increments commute).
    const kinds = { disjoint: (i) => `w${i}`, counter: () => 'n' }
    const rates = Object.fromEntries(Object.keys(kinds).map((kind) => [kind, new Map(windows.map((w) => [w, []]))]))
    const each = { disjoint: 0, counter: 0 }
    const sweep = async (kind, window, perWriter) => {
      const done = await Promise.all(writers.map((w, i) => w.request('burst', { field: kinds[kind](i), count: perWriter, window }, 300000)))
      each[kind] += perWriter
      return (perWriter * writers.length * 1e9) / (Math.max(...done.map((d) => d.end)) - Math.min(...done.map((d) => d.start)))
    }
    for (const kind of Object.keys(kinds)) await sweep(kind, 256, Math.ceil(count / 4)) // warm-up
    for (let run = 0; run < runs; run++) {
      for (const window of windows) {
        for (const kind of Object.keys(kinds)) rates[kind].get(window).push(await sweep(kind, window, count))
      }
    }
    // A writer's last acknowledgement may come before the other writer's last patches reach it.
    const fields = { w0: each.disjoint, w1: each.disjoint, n: writers.length * each.counter }
    await Promise.all(peers.map((p) => p.request('holds', { fields }, 30000)))
    const states = await Promise.all(peers.map((p) => p.request('state', {}, 30000)))
    const expected = (data) => Object.entries(fields).every(([key, value]) => data[key] === value)
    if (states.some((s) => !expected(s.data) || s.version !== states[0].version)) {
      throw new Error(`burst sweep: expected ${JSON.stringify(fields)} in every replica at one version: ${JSON.stringify(states.map(({ data, version }) => ({ data, version })))}`)
    }
    const rows = (kind) => windows.map((window) => ({ window, runs: rates[kind].get(window), ...summarize(rates[kind].get(window)) }))
    return { writers: writers.length, count, windows: rows('disjoint'), counter: rows('counter') }
  } finally {
    await killAll(peers)
  }
}

// ---------------------------------------------------------------------------------------------
// Join and memory: a host holding a generated object of each size; per run, a new process
// joins it (its whole first start(), until `data` holds the object), then reports its RSS and
// how long JSON.parse takes on the object's text, in the same process. The RSS of a peer
// holding an empty object is the per-process baseline.

export async function benchJoin (dir, { runs, sizes }) {
  const baselinePeers = []
  let baseline
  try {
    baselinePeers.push(await startPeer(uniqueName('empty'), dir, 'empty host', 'host', { data: {} }))
    baseline = await baselinePeers[0].request('memory')
  } finally {
    await killAll(baselinePeers)
  }
  const rows = []
  for (const bytes of sizes) {
    const name = uniqueName(`join${bytes}`)
    const peers = []
    try {
      const host = await startPeer(name, dir, `join host (${bytes} bytes)`, 'host', { generate: { bytes } }, { coldStart: false })
      peers.push(host)
      const joins = []
      for (let run = 0; run < runs; run++) {
        const joiner = await startPeer(name, dir, `joiner ${run} (${bytes} bytes)`, 'client', {}, { coldStart: false })
        peers.push(joiner)
        const memory = await joiner.request('memory', {}, 30000)
        const parse = await joiner.request('parse', {}, 30000)
        joins.push({ joinNs: joiner.startNs, parseNs: parse.ns, jsonBytes: parse.bytes, rss: memory.rss, heapUsed: memory.heapUsed })
        await joiner.kill()
      }
      const hostMemory = await host.request('memory', {}, 30000)
      const hostJson = await host.request('parse', {}, 30000)
      if (joins.some((j) => j.jsonBytes !== hostJson.bytes)) {
        throw new Error(`join of ${bytes} bytes: a joiner's object differs from the host's (${hostJson.bytes} bytes of JSON)`)
      }
      rows.push({
        bytes,
        jsonBytes: hostJson.bytes,
        runs: joins,
        join: summarize(joins.map((j) => j.joinNs)),
        parse: summarize(joins.map((j) => j.parseNs)),
        ratio: summarize(joins.map((j) => j.joinNs / j.parseNs)),
        rssClient: summarize(joins.map((j) => j.rss)),
        rssHost: hostMemory.rss,
        heapClient: summarize(joins.map((j) => j.heapUsed))
      })
    } finally {
      await killAll(peers)
    }
  }
  return { baselineRss: baseline.rss, sizes: rows }
}

// ---------------------------------------------------------------------------------------------
// Failover: kill -9 of the host of a host and 2 clients, until both survivors are connected to
// the new host and a patch each made after the kill has resolved.

/** Lets a patch round trip settle into an idle network, as a real host death would find it. */
const idle = () => new Promise((resolve) => setTimeout(resolve, 50))

export async function benchFailover (dir, { rounds }) {
  const name = uniqueName('failover')
  let members = []
  const samples = []
  let next = 0
  const spawnMember = async (role) => {
    const peer = await startPeer(name, dir, `failover peer ${next++}`, role, { data: { k: 0 }, options: { timeout: 5000 } })
    peer.role = role
    return peer
  }
  try {
    members.push(await spawnMember('host'))
    members.push(await spawnMember('client'), await spawnMember('client'))
    for (let round = 0; round < rounds; round++) {
      const host = members.find((m) => m.role === 'host')
      const survivors = members.filter((m) => m !== host)
      await idle()
      const killedAt = now()
      host.child.kill('SIGKILL')
      const exited = host.exit.then(() => now())
      const patched = survivors.map((s) => s.request('patch', { update: { $inc: { k: 1 } } }, 10000))
      const connected = survivors.map((s) => s.waitEvent((e) => e.event === 'connected' && e.t > killedAt, 10000))
      const lost = survivors.map((s) => s.waitEvent((e) => e.event === 'disconnected' && e.t > killedAt, 10000))
      const [patches, connects, losses] = await Promise.all([Promise.all(patched), Promise.all(connected), Promise.all(lost)])
      const hosts = connects.filter((c) => c.role === 'host').length
      if (hosts !== 1) throw new Error(`failover round ${round}: ${hosts} survivors became host (roles ${connects.map((c) => c.role)})`)
      survivors.forEach((s, i) => { s.role = connects[i].role })
      const done = Math.max(...connects.map((c) => c.t), ...patches.map((p) => p.resolved))
      samples.push({
        total: done - killedAt,
        // When this process learnt (SIGCHLD) that the host was gone: an upper bound of the
        // kernel's teardown of the killed process, which closes its sockets.
        reaped: await exited - killedAt,
        detected: Math.max(...losses.map((l) => l.t)) - killedAt,
        connected: Math.max(...connects.map((c) => c.t)) - killedAt,
        patched: Math.max(...patches.map((p) => p.resolved)) - killedAt
      })
      members = [...survivors, await spawnMember('client')]
    }
    // The survivors of the last round agree, and hold both resolved $inc of every round, once.
    const states = await Promise.all(members.map((m) => m.request('state')))
    const wrong = states.filter((s) => s.version !== states[0].version || s.data.k !== 2 * rounds)
    if (wrong.length > 0) throw new Error(`failover: expected k = ${2 * rounds} in every replica at one version: ${JSON.stringify(states)}`)
    return {
      rounds: samples,
      total: summarize(samples.map((s) => s.total)),
      reaped: summarize(samples.map((s) => s.reaped)),
      detected: summarize(samples.map((s) => s.detected)),
      connected: summarize(samples.map((s) => s.connected)),
      patched: summarize(samples.map((s) => s.patched))
    }
  } finally {
    await killAll(members)
  }
}

// ---------------------------------------------------------------------------------------------
// start(): in this process, as host (each in a fresh directory) and as client (of a host in a
// child process). Runs last: the first start() of every child process above is its cold start.

/** `base`: a directory for the fresh rendezvous directories of the hosts; `dir`: the run's. */
export async function benchStartup (base, dir, { samples, warmup }) {
  const timeStart = async (mem, role) => {
    const began = performance.now()
    const got = await mem.start()
    const ns = (performance.now() - began) * 1e6
    if (got !== role) throw new Error(`start() gave ${got}, expected ${role}`)
    await mem.stop()
    return ns
  }
  const host = []
  for (let i = -warmup; i < samples; i++) {
    const hostDir = fs.mkdtempSync(path.join(base, 'start-'))
    const ns = await timeStart(new MemSync(uniqueName('start-host'), { n: 0 }, { dir: path.join(hostDir, 'rdv') }), 'host')
    fs.rmSync(hostDir, { recursive: true, force: true })
    if (i >= 0) host.push(ns)
  }
  const name = uniqueName('start-client')
  const peers = [await startPeer(name, dir, 'start-up host', 'host', { data: { n: 0 } })]
  const client = []
  try {
    for (let i = -warmup; i < samples; i++) {
      const ns = await timeStart(new MemSync(name, {}, { dir }), 'client')
      if (i >= 0) client.push(ns)
    }
  } finally {
    await killAll(peers)
  }
  return {
    host: summarize(host),
    client: summarize(client),
    coldHost: summarize(coldStarts.host),
    coldClient: summarize(coldStarts.client)
  }
}
