// A patch per HTTP request in a clustered service (issue 18): node:cluster with 4 workers on one
// port (PM2 cluster mode's shape, fixtures/cluster-service.mjs) under a keep-alive load generator
// in a process of its own (fixtures/http-load.mjs). Three modes alternate within the run, on the
// same processes: plain (respond only), memsync (`await mem.patch({ $inc: { hits: 1 } })` per
// request) and ioredis (`await redis.hincrby(...)` per request, against a redis-server of this
// benchmark, bench/redis.mjs). After every run the count it made must be in every replica (and in
// Redis): a run that lost or doubled a patch fails the benchmark rather than report a rate.
import { fileURLToPath } from 'node:url'
import { freePort } from '../__test__/support/services.mjs'
import { killAll, spawnPeer } from './children.mjs'
import { summarize } from './measure.mjs'
import { redisVersion, startRedis } from './redis.mjs'

const SERVICE = fileURLToPath(new URL('fixtures/cluster-service.mjs', import.meta.url))
const LOAD = fileURLToPath(new URL('fixtures/http-load.mjs', import.meta.url))

export const CLUSTER_MODES = ['plain', 'memsync', 'redis']

/**
 * Starts the service (and a redis-server when there is one); `fn({ service, load, port, modes,
 * workers })` drives it. Every process is stopped when `fn` settles; with `stopCleanly`, the
 * workers exit by themselves first (a `--cpu-prof` in `execArgv` writes its profile then). The
 * workers run with `execArgv` added, in `cwd` if given.
 */
export async function withClusterService (base, dir, { workers, execArgv = [], cwd, stopCleanly = false, redis: useRedis = true }, fn) {
  const redis = useRedis && redisVersion() !== null ? await startRedis(base) : null
  const peers = []
  try {
    const config = { name: `bench-cluster-${process.pid}-${Date.now()}`, dir, workers, httpPort: await freePort(), redisPort: redis?.port ?? null, execArgv, cwd }
    const service = await spawnPeer(SERVICE, [JSON.stringify(config)], 'clustered HTTP service')
    peers.push(service)
    const { workers: started } = await service.request('start', {}, 60000)
    const load = await spawnPeer(LOAD, [], 'HTTP load generator')
    peers.push(load)
    const modes = CLUSTER_MODES.filter((m) => m !== 'redis' || redis !== null)
    const result = await fn({ service, load, port: config.httpPort, modes, workers: started })
    if (stopCleanly) await service.request('stop', {}, 30000)
    return result
  } finally {
    await killAll(peers)
    await redis?.stop()
  }
}

/** One run of `mode` for `seconds`: { ok, failed, rate, p50, p99, start, end }; any failed request fails it. */
export async function drive (load, port, mode, { connections, seconds }) {
  const run = await load.request('load', { port, path: `/${mode}`, connections, durationMs: seconds * 1000 }, seconds * 1000 + 60000)
  if (run.failed > 0) throw new Error(`clustered HTTP service, ${mode}: ${run.failed} of ${run.ok + run.failed} requests failed; the first answer: ${run.firstFailure}`)
  return run
}

/**
 * Checks that every worker holds `hits` (memsync, all at one version) and Redis holds
 * `redisHits`. A worker may not have read the last patches of the others from its socket yet:
 * asked again for up to 5 s before the run counts as broken.
 */
async function check (service, hits, redisHits) {
  const deadline = Date.now() + 5000
  for (;;) {
    const { workers } = await service.request('state', {}, 30000)
    const wrong = workers.filter((w) => w.hits !== hits || w.version !== workers[0].version || (w.redisHits !== null && w.redisHits !== redisHits))
    if (wrong.length === 0) return
    if (Date.now() > deadline) {
      throw new Error(`clustered HTTP service: expected hits = ${hits} in every worker at one version, and ${redisHits} in Redis: ${JSON.stringify(workers)}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * `runs` rounds of every mode in turn, each `seconds` long with `connections` connections, after
 * a warm-up round of `warmupSeconds` per mode. Per mode: requests/s and p99 (median, min, max of
 * the runs); the ratios are per round (same-run), then median (min–max).
 */
export async function benchCluster (base, dir, { workers, connections, runs, seconds, warmupSeconds }) {
  return withClusterService(base, dir, { workers }, async ({ service, load, port, modes, workers: started }) => {
    const counts = { memsync: 0, redis: 0 }
    const rounds = []
    for (let round = -1; round < runs; round++) {
      const row = {}
      for (const mode of modes) {
        const run = await drive(load, port, mode, { connections, seconds: round < 0 ? warmupSeconds : seconds })
        if (mode in counts) {
          counts[mode] += run.ok
          await check(service, counts.memsync, counts.redis)
        }
        row[mode] = { rate: run.rate, p50: run.p50, p99: run.p99, requests: run.ok }
      }
      if (round >= 0) rounds.push(row)
    }
    const per = (mode, key) => summarize(rounds.map((r) => r[mode][key]))
    const ratio = (fn) => summarize(rounds.map(fn))
    const result = { workers: started.length, roles: started.map((w) => w.role), connections, seconds, rounds }
    for (const mode of modes) result[mode] = { rate: per(mode, 'rate'), p50: per(mode, 'p50'), p99: per(mode, 'p99') }
    result.ratios = {
      memsyncPlain: ratio((r) => r.memsync.rate / r.plain.rate),
      p99MemsyncPlain: ratio((r) => r.memsync.p99 / r.plain.p99),
      ...(modes.includes('redis') ? { memsyncRedis: ratio((r) => r.memsync.rate / r.redis.rate) } : {})
    }
    if (!modes.includes('redis')) result.redisSkipped = 'redis-server is not on PATH (Debian: apt-get install redis-server)'
    return result
  })
}
