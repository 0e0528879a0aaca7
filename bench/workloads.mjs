// The workloads that memsync (fixtures/sync-peer.mjs) and Redis (fixtures/redis-peer.mjs) both
// run: the fixtures answer the same commands, so both are driven, timed and summarised alike.
import { latencyPercentiles, summarize } from './measure.mjs'

/** At most this many patches (or publishes) of one writer are unacknowledged at once. */
const IN_FLIGHT = 256

/**
 * `runs` runs of `samples` messages, one at a time, `a` sending and `b` (echoing already)
 * answering each: per run, the one-way times a → b (`forth`) and b → a (`back`), and a's round
 * trips.
 */
async function echoedRuns (a, b, { runs, warmup, samples }) {
  const perRun = []
  for (let run = 0; run < runs; run++) {
    const { oneWay: back, roundTrip } = await a.request('ping', { warmup, samples, timeoutMs: 5000 }, 120000)
    const { oneWay: forth } = await b.request('echoed')
    perRun.push({ forth, back, roundTrip })
  }
  return perRun
}

/**
 * Propagation, one message at a time: `a` sends, `b` echoes, `a` waits for the echo before the
 * next. Both directions take the same path (through the host or the server) and are pooled.
 * Per run: one-way p50/p99/p99.9 and half the round trip's p50; then median (min–max) of the runs.
 */
export async function pingPong (a, b, settings) {
  await b.request('echo')
  const perRun = (await echoedRuns(a, b, settings)).map(({ forth, back, roundTrip }) => ({
    ...latencyPercentiles([...forth, ...back]),
    rttHalfP50: latencyPercentiles(roundTrip).p50 / 2
  }))
  return {
    runs: perRun,
    warmupRounds: settings.warmup,
    p50: summarize(perRun.map((r) => r.p50)),
    p99: summarize(perRun.map((r) => r.p99)),
    p999: summarize(perRun.map((r) => r.p999)),
    rttHalfP50: summarize(perRun.map((r) => r.rttHalfP50))
  }
}

/**
 * Propagation each way apart, one message at a time, between `a` (which sends) and `b` (which
 * echoes already, after `pingPong`): `forth` (a → b) and `back` (b → a), p50/p99 per run, then
 * median (min–max) of the runs.
 */
export async function oneWays (a, b, settings) {
  const perRun = await echoedRuns(a, b, settings)
  const way = (side) => {
    const runs = perRun.map((run) => latencyPercentiles(run[side]))
    return { runs, p50: summarize(runs.map((r) => r.p50)), p99: summarize(runs.map((r) => r.p99)) }
  }
  return { forth: way('forth'), back: way('back') }
}

/**
 * Round trips one after the other in `peer` (`cmd` replies `{ times }`), `runs` times: per run
 * p50 and p99, then median (min–max) of the runs.
 */
export async function roundTrips (peer, cmd, { runs, warmup, samples }) {
  const perRun = []
  for (let run = 0; run < runs; run++) {
    const { times } = await peer.request(cmd, { warmup, samples }, 120000)
    perRun.push(latencyPercentiles(times))
  }
  return { runs: perRun, p50: summarize(perRun.map((r) => r.p50)), p99: summarize(perRun.map((r) => r.p99)) }
}

/**
 * Sustained end-to-end throughput: every writer sends its share of `patches` increments (at most
 * IN_FLIGHT unacknowledged), and a run ends when every process, writers and `observers` alike,
 * has received them all: rate = patches / (last process done - first writer start). The first
 * round (a quarter of the size) warms up and is not counted. `total` is the count every process
 * should now hold.
 */
export async function driveThroughput (observers, writers, { runs, patches }) {
  const each = Math.ceil(patches / writers.length)
  const rates = []
  let n = 0
  for (let run = -1; run < runs; run++) {
    const count = run < 0 ? Math.ceil(each / 4) : each
    const target = n + count * writers.length
    await Promise.all(observers.map((p) => p.request('arm', { target })))
    const written = await Promise.all(writers.map((w) => w.request('write', { count, inFlight: IN_FLIGHT, target }, 300000)))
    const reached = await Promise.all(observers.map((p) => p.request('reached', {}, 60000)))
    const start = Math.min(...written.map((r) => r.start))
    const end = Math.max(...written.map((r) => r.end), ...reached.map((r) => r.t))
    if (run >= 0) rates.push((count * writers.length * 1e9) / (end - start))
    n = target
  }
  return { patchesPerRun: each * writers.length, inFlight: IN_FLIGHT, runs: rates, ...summarize(rates), total: n }
}
