// `npm run bench [-- --quick]`: every benchmark of memsync beside its references (mingo, plain
// objects, the raw Rust relay, Redis, JSON.parse, a plain HTTP service), measured in the same
// run; Markdown tables on screen, bench/results.json and bench/results.png on disk.
//
// A benchmark that fails is reported (in the tables, results.json and the exit code) and the
// others still run. Every child process is killed at the end, whatever happens (children.mjs,
// imported by the benchmarks that start them).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { benchApi } from './api.mjs'
import { chartPng } from './chart.mjs'
import { benchCluster } from './cluster.mjs'
import { benchEngine } from './engine.mjs'
import { benchRedisLatency, benchRedisRoundTrip, benchRedisThroughput, redisVersion, startRedis } from './redis.mjs'
import { benchRelay, buildRelay } from './relay.mjs'
import { report, targets } from './report.mjs'
import { benchBurstSweep, benchEvents, benchFailover, benchJoin, benchLatency, benchRoundTrip, benchRpc, benchStartup, benchThroughput } from './sync.mjs'
import { benchTransport, transportReport, transportTargets } from './transport.mjs'

const quick = process.argv.includes('--quick')

// Sample counts: memsync, the relay and Redis run the same ones. Every cross-process measure is
// repeated (runs) and reported as the median of the runs, with min and max.
const settings = quick
  ? {
      latency: { runs: 3, warmup: 300, samples: 1500 },
      roundTrip: { runs: 3, warmup: 300, samples: 2000 },
      throughput: { runs: 3, patches: 30000, writers: [1, 2, 4], processes: [1, 2, 4, 8] },
      bursts: { runs: 3, count: 20000, windows: [64, 256, 1024, 4096, 20000] },
      cluster: { workers: 4, connections: 50, runs: 3, seconds: 2, warmupSeconds: 1 },
      events: { runs: 3, count: 50000 },
      messages: 100000, // per relay writer: the relay is too fast for memsync's counts
      join: { runs: 3, sizes: [1e6, 10e6] },
      failover: { rounds: 5 },
      startup: { samples: 40, warmup: 5 },
      transport: { runs: 3, burst: 20000, joinRuns: 3, joinBytes: 1e6, failoverRounds: 0 } // no Sentinel failover
    }
  : {
      latency: { runs: 5, warmup: 1000, samples: 5000 },
      roundTrip: { runs: 5, warmup: 1000, samples: 5000 },
      throughput: { runs: 5, patches: 100000, writers: [1, 2, 4], processes: [1, 2, 4, 8] },
      bursts: { runs: 5, count: 20000, windows: [64, 256, 1024, 4096, 20000] },
      cluster: { workers: 4, connections: 50, runs: 5, seconds: 4, warmupSeconds: 2 },
      events: { runs: 5, count: 200000 },
      messages: 200000,
      join: { runs: 5, sizes: [1e6, 10e6] },
      failover: { rounds: 10 },
      startup: { samples: 150, warmup: 10 },
      transport: { runs: 5, burst: 20000, joinRuns: 5, joinBytes: 1e6, failoverRounds: 2 }
    }

const machine = {
  cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'unknown'}`,
  memoryGb: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${os.platform()} ${os.release()}`
}

const seconds = {}
/** Runs one benchmark; a failure becomes `{ error }` and a non-zero exit code. */
async function timed (key, fn) {
  const began = performance.now()
  console.error(`- ${key}`)
  try {
    return await fn()
  } catch (error) {
    console.error(`benchmark '${key}' failed:`, error)
    process.exitCode = 1
    return { error: String(error?.message ?? error).slice(0, 2000) }
  } finally {
    seconds[key] = Number(((performance.now() - began) / 1000).toFixed(1))
  }
}

/** Redis's benchmarks, between the start and the stop of a server of their own. */
async function benchRedis (base) {
  const version = redisVersion()
  if (version === null) {
    const skipped = 'redis-server is not on PATH (Debian: apt-get install redis-server)'
    console.error(`- redis: skipped, ${skipped}`)
    return { skipped }
  }
  const server = await timed('redisStart', () => startRedis(base))
  if (server.error !== undefined) return { version, error: server.error }
  try {
    return {
      version,
      latency: await timed('redisLatency', () => benchRedisLatency(server, settings.latency)),
      roundTrip: await timed('redisRoundTrip', () => benchRedisRoundTrip(server, settings.roundTrip)),
      throughput: await timed('redisThroughput', () => benchRedisThroughput(server, settings.throughput))
    }
  } finally {
    await server.stop()
  }
}

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-bench-'))
const dir = path.join(base, 'rdv') // the rendezvous directory of every instance of the run
// Removed however the run ends, after children.mjs's exit handler has killed every child.
process.on('exit', () => fs.rmSync(base, { recursive: true, force: true }))

console.error(`memsync benchmarks${quick ? ' (quick)' : ''} on ${machine.cpus}, Node ${machine.node}`)
const results = { date: new Date().toISOString(), quick, machine, settings }
results.engine = await timed('engine', () => benchEngine({ quick }))
results.api = await timed('api', () => benchApi({ quick, dir }))
// Built first, not timed with the runs: after a change of src/ it links the crate again.
const relay = await timed('relayBuild', buildRelay)
results.relay = relay.error === undefined ? await timed('relay', () => benchRelay(relay, settings)) : relay
results.latency = await timed('latency', () => benchLatency(dir, settings.latency))
results.roundTrip = await timed('roundTrip', () => benchRoundTrip(dir, settings.roundTrip))
results.rpc = await timed('rpc', () => benchRpc(dir, settings.roundTrip))
results.events = await timed('events', () => benchEvents(dir, settings.events))
results.throughput = await timed('throughput', () => benchThroughput(dir, settings.throughput))
results.bursts = await timed('bursts', () => benchBurstSweep(dir, settings.bursts))
results.redis = await benchRedis(base)
results.cluster = await timed('cluster', () => benchCluster(base, dir, settings.cluster))
results.join = await timed('join', () => benchJoin(dir, settings.join))
results.failover = await timed('failover', () => benchFailover(dir, settings.failover))
results.startup = await timed('startup', () => benchStartup(base, dir, settings.startup))
results.transport = await timed('transport', () => benchTransport(base, settings))
results.targets = [...targets(results), ...transportTargets(results.transport)]
results.seconds = seconds

const run = `${results.date.slice(0, 10)}${quick ? ', --quick' : ''}: ${machine.cpus}, ${machine.memoryGb} GB, ${machine.platform}, Node ${machine.node}`
results.table = `memsync benchmarks, ${run}\n\n${report(results)}\n\n${transportReport(results.transport)}`
console.log(`\n${results.table}`)

const json = fileURLToPath(new URL('results.json', import.meta.url))
fs.writeFileSync(json, JSON.stringify(results, null, 2) + '\n')
const png = fileURLToPath(new URL('results.png', import.meta.url))
fs.writeFileSync(png, await chartPng(results, run))
console.log(`\nwritten to ${json} and ${png}`)
