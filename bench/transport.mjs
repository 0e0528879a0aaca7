// memsync across "machines" through Redis (issue 17), beside the local transport and raw Redis,
// in the same run: `await patch()`, propagation between two machines, bursts of unawaited
// patches, the join of a 1 MB object, writes after a Sentinel primary kill (full run only), and
// what a patch costs Redis in CPU and memory.
//
// A machine is a rendezvous directory of its own; its first process is its host, which bridges
// the machine to the object's log in Redis. Peers are fixtures/sync-peer.mjs with
// `options.transport`, on a redis-server of this benchmark (bench/redis.mjs: loopback,
// persistence off). The runner reads the server's counters with ioredis.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { command, primaryPortOf, sentinelDeployment, waitFor } from '../__test__/support/redis.mjs'
import { killAll, spawnPeer } from './children.mjs'
import { formatMb, formatMs, formatNs, formatRate, now, summarize, withTimeout } from './measure.mjs'
import { redisVersion, startRedis } from './redis.mjs'
import { pingPong, roundTrips } from './workloads.mjs'

const SYNC_FIXTURE = fileURLToPath(new URL('fixtures/sync-peer.mjs', import.meta.url))
const REDIS_FIXTURE = fileURLToPath(new URL('fixtures/redis-peer.mjs', import.meta.url))

/** Issue 17's targets. */
const TARGETS = {
  patchP50Ns: 150e3,
  propagationP50Ns: 200e3,
  patchesPerSecond: 50e3,
  joinLocalFactor: 2,
  failoverNs: 5e9
}

/** How long a patch made after the primary's kill may take before the row reads "not met". */
const FAILOVER_WAIT_MS = 30000

let names = 0
const uniqueName = (label) => `bench-transport-${label}-${process.pid}-${names++}`

/** A new machine: a rendezvous directory no other process uses. */
const newMachine = (base) => path.join(fs.mkdtempSync(path.join(base, 'machine-')), 'rdv')

/** Spawns and starts a peer of `name` on `machine`, checking its role. */
async function startPeer (name, machine, label, role, config) {
  const peer = await spawnPeer(SYNC_FIXTURE, [name, machine, JSON.stringify(config)], label)
  try {
    const reply = await peer.request('start', {}, 30000)
    if (reply.role !== role) throw new Error(`${label} started as ${reply.role}, expected ${role}`)
    peer.startNs = reply.ns
    return peer
  } catch (error) {
    await peer.kill()
    throw error
  }
}

/** One part of the benchmark: a failure is reported and the other parts still run. */
async function part (label, fn) {
  console.error(`  - transport: ${label}`)
  try {
    return await fn()
  } catch (error) {
    console.error(`transport benchmark '${label}' failed:`, error)
    process.exitCode = 1
    return { error: String(error?.message ?? error).slice(0, 2000) }
  }
}

// ---------------------------------------------------------------------------------------------
// Redis's counters: CPU and memory of the server over a workload, and the size of a log.

/** The fields of INFO ALL, with `commands` from its commandstats section: { calls, usec }. */
async function serverInfo (client) {
  const fields = {}
  const commands = {}
  for (const line of (await client.info('all')).split('\r\n')) {
    const colon = line.indexOf(':')
    if (line.startsWith('#') || colon < 0) continue
    const [key, value] = [line.slice(0, colon), line.slice(colon + 1)]
    if (key.startsWith('cmdstat_')) {
      const stat = Object.fromEntries(value.split(',').map((pair) => pair.split('=')))
      commands[key.slice('cmdstat_'.length)] = { calls: Number(stat.calls), usec: Number(stat.usec) }
    } else {
      fields[key] = value
    }
  }
  return { cpuUs: (Number(fields.used_cpu_sys) + Number(fields.used_cpu_user)) * 1e6, memory: Number(fields.used_memory), commands }
}

/**
 * What `work()` costs the server per patch, `patches` being how many it orders: EVALSHA calls
 * (the ordering script; several patches share one in a batch), the server's time in all
 * commands (commandstats), its CPU (used_cpu_sys + user, housekeeping included) and used_memory.
 */
async function costOf (client, patches, work) {
  await client.config('RESETSTAT')
  const before = await serverInfo(client)
  await work()
  const after = await serverInfo(client)
  // This measure's own INFO and CONFIG calls are not the patches' cost.
  const served = Object.entries(after.commands).filter(([name]) => !['info', 'config'].includes(name))
  const evalsha = after.commands.evalsha ?? { calls: 0, usec: 0 }
  return {
    patches,
    evalshaCalls: evalsha.calls,
    patchesPerEvalsha: patches / evalsha.calls,
    evalshaUsecPerCall: evalsha.usec / evalsha.calls,
    evalshaUsecPerPatch: evalsha.usec / patches,
    commandUsecPerPatch: served.reduce((sum, [, stat]) => sum + stat.usec, 0) / patches,
    commands: Object.fromEntries(served),
    cpuUsPerPatch: (after.cpuUs - before.cpuUs) / patches,
    memoryBytesPerPatch: (after.memory - before.memory) / patches
  }
}

/** The object's log: entries, and MEMORY USAGE (every node counted) per entry. */
async function logSize (client, name) {
  const key = `{ms:${name}}:log`
  const entries = await client.xlen(key)
  const bytes = await client.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
  return { entries, bytes, bytesPerEntry: bytes / entries }
}

// ---------------------------------------------------------------------------------------------
// The measures.

/** `await patch()` one after the other in one process, a bridge alone on its machine. */
async function benchPatch (base, url, redis, client, settings) {
  const peers = []
  try {
    const transportName = uniqueName('patch')
    peers.push(await startPeer(transportName, newMachine(base), 'patch, Redis transport', 'host', { data: { n: 0 }, options: { transport: url } }))
    let viaRedis
    const cost = await costOf(client, settings.runs * (settings.warmup + settings.samples), async () => {
      viaRedis = await roundTrips(peers[0], 'roundTrips', settings)
    })
    peers.push(await startPeer(uniqueName('patch-local'), newMachine(base), 'patch, local transport', 'host', { data: { n: 0 } }))
    const local = await roundTrips(peers[1], 'roundTrips', settings)
    peers.push(await spawnPeer(REDIS_FIXTURE, [String(redis.port)], 'patch, HINCRBY'))
    const hincrby = await roundTrips(peers[2], 'hincrby', settings)
    return { redis: viaRedis, local, hincrby, cost, log: await logSize(client, transportName) }
  } finally {
    await killAll(peers)
  }
}

/**
 * Propagation between the hosts of two machines, through Redis; the local reference is a host and
 * its client on one machine: two processes, one hop each way.
 */
async function benchPropagation (base, url, settings) {
  const peers = []
  try {
    const name = uniqueName('propagation')
    const config = { data: {}, options: { transport: url } }
    peers.push(await startPeer(name, newMachine(base), 'propagation, machine A', 'host', config))
    peers.push(await startPeer(name, newMachine(base), 'propagation, machine B', 'host', config))
    const viaRedis = await pingPong(peers[0], peers[1], settings)
    const local = uniqueName('propagation-local')
    const machine = newMachine(base)
    peers.push(await startPeer(local, machine, 'propagation, local host', 'host', { data: {} }))
    peers.push(await startPeer(local, machine, 'propagation, local client', 'client', {}))
    return { redis: viaRedis, local: await pingPong(peers[2], peers[3], settings) }
  } finally {
    await killAll(peers)
  }
}

/**
 * Bursts: each writer makes `burst` `$inc` patches at once (none awaited before the last is
 * made), until every writer has every writer's patches; patches/s over all writers. A first
 * burst of a quarter warms up and is not counted. The replicas must agree at the end.
 */
async function burstRuns (writers, { runs, burst }) {
  const rates = []
  let n = 0
  for (let run = -1; run < runs; run++) {
    const count = run < 0 ? Math.ceil(burst / 4) : burst
    const target = n + count * writers.length
    const written = await Promise.all(writers.map((w) => w.request('write', { count, inFlight: count, target }, 120000)))
    const start = Math.min(...written.map((r) => r.start))
    const end = Math.max(...written.map((r) => r.end))
    if (run >= 0) rates.push((count * writers.length * 1e9) / (end - start))
    n = target
  }
  const states = await Promise.all(writers.map((w) => w.request('state', {}, 30000)))
  if (states.some((s) => s.n !== n || s.version !== states[0].version)) {
    throw new Error(`burst: expected n = ${n} in every replica at one version: ${JSON.stringify(states.map(({ data, ...s }) => s))}`)
  }
  return { burst, runs: rates, ...summarize(rates), total: n }
}

/** Bursts from one and from two machines (Redis), and from one and two processes of a machine. */
async function benchBurst (base, url, client, settings) {
  const rows = []
  for (const machines of [1, 2]) {
    const peers = []
    try {
      const name = uniqueName(`burst${machines}`)
      for (let m = 0; m < machines; m++) {
        peers.push(await startPeer(name, newMachine(base), `burst, machine ${m} of ${machines}`, 'host', { data: { n: 0 }, options: { transport: url } }))
      }
      let viaRedis
      const patches = machines * settings.burst * (settings.runs + 0.25)
      const cost = await costOf(client, patches, async () => { viaRedis = await burstRuns(peers, settings) })
      const log = await logSize(client, name)
      const local = uniqueName(`burst${machines}-local`)
      const machine = newMachine(base)
      const localPeers = []
      for (let p = 0; p < machines; p++) {
        localPeers.push(await startPeer(local, machine, `burst, local process ${p} of ${machines}`, p === 0 ? 'host' : 'client', { data: { n: 0 } }))
      }
      peers.push(...localPeers)
      rows.push({ machines, redis: viaRedis, local: await burstRuns(localPeers, settings), cost, log })
    } finally {
      await killAll(peers)
    }
  }
  return rows
}

/**
 * Joining an object of `bytes`: the first start() of a process on a new machine (Redis: it
 * becomes that machine's bridge, reading the object from Redis), against a new process joining
 * a local host. Each joiner must end up with the host's object.
 */
async function benchJoin (base, url, { joinRuns: runs, joinBytes: bytes }) {
  const peers = []
  try {
    const join = async (host, label, spawnJoiner) => {
      const expected = await host.request('parse', {}, 30000)
      const times = []
      for (let run = 0; run < runs; run++) {
        const joiner = await spawnJoiner(`${label} joiner ${run}`)
        peers.push(joiner)
        const got = await joiner.request('parse', {}, 30000)
        if (got.bytes !== expected.bytes) throw new Error(`${label} join: ${got.bytes} bytes of JSON joined, the host holds ${expected.bytes}`)
        times.push(joiner.startNs)
        await joiner.kill()
      }
      return { jsonBytes: expected.bytes, runs: times, ...summarize(times) }
    }
    const name = uniqueName('join')
    const config = { options: { transport: url } }
    const redisHost = await startPeer(name, newMachine(base), 'join, Redis host', 'host', { ...config, generate: { bytes } })
    peers.push(redisHost)
    const viaRedis = await join(redisHost, 'Redis', (label) => startPeer(name, newMachine(base), label, 'host', config))
    await redisHost.kill()
    const local = uniqueName('join-local')
    const machine = newMachine(base)
    const localHost = await startPeer(local, machine, 'join, local host', 'host', { generate: { bytes } })
    peers.push(localHost)
    return { bytes, redis: viaRedis, local: await join(localHost, 'local', (label) => startPeer(local, machine, label, 'client', {})) }
  } finally {
    await killAll(peers)
  }
}

/**
 * kill -9 of the Sentinel-watched primary (2 replicas, 3 sentinels, down-after 1,000 ms) under a
 * bridge, `rounds` times: until a patch() made right after the kill resolves. A patch that does
 * not resolve within FAILOVER_WAIT_MS ends the rounds and is reported as not met.
 */
async function benchSentinelFailover (base, { failoverRounds: rounds }) {
  // sentinelDeployment registers its processes and directory through a test's `after`; here
  // they end with this benchmark, or with the runner's exit (SIGKILL is sent synchronously).
  const cleanups = []
  const cleanUp = () => { for (const fn of cleanups.splice(0).reverse()) fn() }
  process.on('exit', cleanUp)
  const peers = []
  try {
    const deployment = await sentinelDeployment({ after: (fn) => cleanups.push(fn) }, { replicas: 2, sentinels: 3, downAfterMs: 1000 })
    const servers = [deployment.primary, ...deployment.replicas]
    const sentinel = deployment.sentinels[0].port
    const bridge = await startPeer(uniqueName('sentinel'), newMachine(base), 'failover, bridge', 'host', { data: { k: 0 }, options: { transport: deployment.url } })
    peers.push(bridge)
    const samples = []
    for (let round = 0; round < rounds; round++) {
      const primaryPort = await primaryPortOf(sentinel, deployment.master)
      const primary = servers.find((s) => s.port === primaryPort)
      await bridge.request('patch', { update: { $inc: { k: 1 } } })
      await new Promise((resolve) => setTimeout(resolve, 50)) // an idle link, as a real kill finds it
      const killedAt = now()
      primary.kill('SIGKILL')
      const patched = await bridge.request('patch', { update: { $inc: { k: 1 } } }, FAILOVER_WAIT_MS).then(
        ({ resolved }) => ({ resolvedNs: resolved - killedAt }),
        // The runner's own timeout (measure.mjs's withTimeout), or the patch's rejection.
        (error) => ({ failedNs: now() - killedAt, timedOut: error.message.startsWith('timed out'), failure: error.message.split('\n')[0] })
      )
      samples.push({ round, ...patched })
      if (patched.failure !== undefined || round === rounds - 1) break
      // The next round kills a primary that the sentinels and a replica already follow.
      await waitFor(async () => {
        const port = await primaryPortOf(sentinel, deployment.master)
        return port !== primaryPort && (await command(port, 'INFO', 'replication')).includes('connected_slaves:1')
      }, 30000, 'the new primary, with its replica linked')
    }
    const resolved = samples.filter((s) => s.resolvedNs !== undefined).map((s) => s.resolvedNs)
    return { downAfterMs: 1000, waitMs: FAILOVER_WAIT_MS, rounds: samples, unresolved: samples.length - resolved.length, resolved: resolved.length > 0 ? summarize(resolved) : undefined }
  } finally {
    await killAll(peers)
    cleanUp()
    process.off('exit', cleanUp)
  }
}

/**
 * Every measure above on a redis-server of its own; `settings`: run.mjs's, of which
 * `latency`, `roundTrip` and `transport` are used.
 */
export async function benchTransport (base, settings) {
  const version = redisVersion()
  if (version === null) return { skipped: 'redis-server is not on PATH (Debian: apt-get install redis-server)' }
  const own = settings.transport
  const redis = await startRedis(base)
  const url = `redis://127.0.0.1:${redis.port}`
  const client = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 1 })
  try {
    const results = { version }
    results.patch = await part('await patch()', () => benchPatch(base, url, redis, client, settings.roundTrip))
    results.propagation = await part('propagation', () => benchPropagation(base, url, settings.latency))
    results.burst = await part('bursts', () => benchBurst(base, url, client, own))
    results.join = await part('join', () => benchJoin(base, url, own))
    results.failover = own.failoverRounds > 0
      ? await part('Sentinel failover', () => withTimeout(benchSentinelFailover(base, own), 5 * 60000, 'the Sentinel failover benchmark'))
      : { skipped: 'full run only' }
    return results
  } finally {
    client.disconnect()
    await redis.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// Targets and the table.

const usable = (section) => section !== undefined && section.error === undefined && section.skipped === undefined
const range = (s, format) => `${format(s.median)} (${format(s.min)}–${format(s.max)})`

/** Issue 17's targets, in the shape of report.mjs's `targets`. */
export function transportTargets (transport) {
  const list = []
  if (!usable(transport)) return list
  const add = (id, label, value, bound, atMost = true) => {
    list.push({ id, label, value, bound, atMost, met: atMost ? value <= bound : value >= bound })
  }
  const { patch, propagation, burst, join, failover } = transport
  if (usable(patch)) add('transport_patch_p50', 'issue 17', patch.redis.p50.median, TARGETS.patchP50Ns)
  if (usable(propagation)) add('transport_propagation_p50', 'issue 17', propagation.redis.p50.median, TARGETS.propagationP50Ns)
  if (usable(burst)) {
    for (const row of burst) add(`transport_burst_${row.machines}m`, 'issue 17', row.redis.median, TARGETS.patchesPerSecond, false)
  }
  if (usable(join)) add('transport_join_1mb', `${TARGETS.joinLocalFactor}x local join`, join.redis.median, TARGETS.joinLocalFactor * join.local.median)
  if (usable(failover)) {
    // A patch that never resolved counts as the whole wait, which is past the bound.
    const value = failover.unresolved > 0 ? failover.waitMs * 1e6 : failover.resolved.median
    add('transport_failover', 'issue 17', value, TARGETS.failoverNs)
  }
  return list
}

/** How the first unresolved round of the failover ended: no answer, or a rejection after some time. */
function unresolvedCell ({ rounds, waitMs }) {
  const round = rounds.find((r) => r.failure !== undefined)
  const ending = round.timedOut ? `nothing within ${waitMs / 1000} s` : `rejected after ${formatMs(round.failedNs)}`
  return `${ending} in round ${round.round + 1} of ${rounds.length}`
}

/** The Markdown table of the transport benchmarks and its notes. */
export function transportReport (transport) {
  if (transport?.skipped !== undefined) return `Redis transport: skipped, ${transport.skipped}.`
  if (transport?.error !== undefined) return `Redis transport: failed, ${transport.error.split('\n')[0]}.`
  const list = transportTargets(transport)
  const verdict = (id, format) => {
    const t = list.find((target) => target.id === id)
    return t === undefined ? '| |' : `${t.atMost ? '≤' : '≥'} ${format(t.bound)} (${t.label}) | ${t.met ? 'met' : 'not met'} |`
  }
  const cell = (section, pick, format) => {
    if (section?.error !== undefined) return 'failed'
    if (section?.skipped !== undefined) return section.skipped
    return range(pick(section), format)
  }
  const { patch, propagation, burst, join, failover } = transport
  const lines = []
  lines.push(`| across machines (issue 17) | Redis transport: median (min–max) | local transport | raw Redis ${transport.version} (ioredis) | target | met |`)
  lines.push('|---|---:|---:|---:|---|:-:|')
  for (const [key, label] of [['p50', 'p50'], ['p99', 'p99']]) {
    lines.push(`| await patch() in one process (a machine's host), ${label} (Redis: HINCRBY) | ${cell(patch, (p) => p.redis[key], formatNs)} | ${cell(patch, (p) => p.local[key], formatNs)} | ${cell(patch, (p) => p.hincrby[key], formatNs)} | ${key === 'p50' ? verdict('transport_patch_p50', formatNs) : '| |'}`)
  }
  for (const [key, label] of [['p50', 'p50'], ['p99', 'p99']]) {
    lines.push(`| propagation between two machines' hosts, ${label} (local: host ↔ client) | ${cell(propagation, (p) => p.redis[key], formatNs)} | ${cell(propagation, (p) => p.local[key], formatNs)} | – | ${key === 'p50' ? verdict('transport_propagation_p50', formatNs) : '| |'}`)
  }
  if (usable(burst)) {
    for (const row of burst) {
      const who = row.machines === 1 ? 'one machine (local: one process)' : `${row.machines} machines at once (local: ${row.machines} processes of one machine)`
      lines.push(`| burst of ${row.redis.burst.toLocaleString('en')} unawaited patches each from ${who} (patches/s) | ${range(row.redis, formatRate)} | ${range(row.local, formatRate)} | – | ${verdict(`transport_burst_${row.machines}m`, formatRate)}`)
    }
  } else {
    lines.push(`| bursts of unawaited patches | ${cell(burst)} | | | | |`)
  }
  const joinLabel = usable(join) ? `${Math.round(join.bytes / 1e6)} MB object (${formatMb(join.redis.jsonBytes)} of JSON)` : 'object'
  lines.push(`| join a ${joinLabel}: first start() on a new machine (local: a new client) | ${cell(join, (j) => j.redis, formatMs)} | ${cell(join, (j) => j.local, formatMs)} | – | ${verdict('transport_join_1mb', formatMs)}`)
  const failoverCell = !usable(failover)
    ? cell(failover)
    : failover.unresolved > 0
      ? `no patch resolved: ${unresolvedCell(failover)}`
      : range(failover.resolved, formatMs)
  lines.push(`| writes resume after kill -9 of the Sentinel primary (down-after 1,000 ms) | ${failoverCell} | – | – | ${verdict('transport_failover', formatMs)}`)
  const costs = []
  if (usable(patch)) costs.push(['awaited one at a time', patch.cost, patch.log])
  if (usable(burst)) for (const row of burst) costs.push([`in bursts from ${row.machines} machine${row.machines > 1 ? 's' : ''}`, row.cost, row.log])
  for (const [label, cost, log] of costs) {
    lines.push(`| Redis per patch, ${label}: time in commands / in EVALSHA (${cost.patchesPerEvalsha.toFixed(1)} patches per call, ${cost.evalshaUsecPerCall.toFixed(1)} µs per call) / CPU | ${cost.commandUsecPerPatch.toFixed(1)} µs / ${cost.evalshaUsecPerPatch.toFixed(1)} µs / ${cost.cpuUsPerPatch.toFixed(1)} µs | | | | |`)
    lines.push(`| Redis memory per patch, ${label}: log MEMORY USAGE per entry (${log.entries.toLocaleString('en')} entries) / used_memory growth | ${log.bytesPerEntry.toFixed(1)} B / ${cost.memoryBytesPerPatch.toFixed(1)} B | | | | |`)
  }
  const notes = ['Redis transport: each machine is its own rendezvous directory, whose first process bridges it to a redis-server of this benchmark (loopback, persistence off); patches are `{ $inc: { n: 1 } }`; p50/p99 per run, median (min–max) of the runs.']
  if (usable(burst)) notes.push(`Bursts: ${burst[0].redis.runs.length} runs after a warm-up burst of a quarter, each ending when every writer holds every writer's patches.`)
  notes.push('Redis per patch: over that workload (warm-up included), after CONFIG RESETSTAT: commandstats µs (every command but INFO and CONFIG), EVALSHA µs, used_cpu_sys + used_cpu_user (server housekeeping included); memory: MEMORY USAGE of the log stream divided by its entries, and used_memory growth per patch.')
  if (usable(failover)) {
    const rejected = failover.rounds.find((r) => r.failure !== undefined && !r.timedOut)
    notes.push(`Sentinel failover: a primary with 2 replicas and 3 sentinels, kill -9 of the current primary under one bridge, until a patch made after the kill resolves (at most ${failover.waitMs / 1000} s; rounds end at the first that does not)${rejected ? `; the rejection: ${rejected.failure}` : ''}.`)
  }
  return [...lines, '', notes.join(' ')].join('\n')
}
