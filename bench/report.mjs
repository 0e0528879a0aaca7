// The Markdown tables of a run and the verdict on each target (issues 4, 8 and 18), from the
// results that run.mjs collects. A section that failed or was skipped shows as such; the
// others still report.
import { formatMb, formatMs, formatNs, formatRate } from './measure.mjs'

const MB = 2 ** 20

/** Absolute targets; the relative ones (against the relay, Redis, JSON.parse) are in `targets`. */
const TARGETS = {
  latencyP50Ns: 50e3, // issue 4
  latencyP99Ns: 250e3, // issue 4
  patchesPerSecond2Writers: 200e3, // issue 4
  failoverNs: 50e6,
  startHostNs: 2e6, // issue 4
  startClientNs: 3e6, // issue 4
  relayLatencyFactor: 2, // propagation p50 ≤ 2x the raw relay's
  redisLatencyFactor: 0.4, // propagation p50 ≤ 0.4x Redis pub/sub's
  redisThroughputFactor: 5, // 4 writers ≥ 5x Redis pub/sub with 4 publishers
  joinParseFactor: 2, // join of 10 MB ≤ 2x JSON.parse of the same text
  memoryJsonFactor: 2.5, // RSS for an object ≤ 2.5x its JSON size + 30 MB
  memoryFixedBytes: 30 * MB,
  // issue 18
  latencyP50NsIssue18: 25e3,
  latencyP99NsIssue18: 100e3,
  patchesPerSecond2WritersIssue18: 400e3,
  redisThroughputFactorIssue18: 2, // 4 writers ≥ 2x Redis pub/sub with 4 publishers
  clusterPlainFactor: 0.85, // the clustered HTTP service with memsync ≥ 0.85x plain, requests/s
  clusterRedisFactor: 1.3, // ... ≥ 1.3x the same service with ioredis
  clusterP99PlainFactor: 1.5, // ... p99 ≤ 1.5x plain's
  burstSweepFactor: 0.9 // acknowledged patches/s with 20,000 in flight per writer ≥ 0.9x with 256
}

const usable = (section) => section !== undefined && section.error === undefined && section.skipped === undefined
const range = (s, format) => `${format(s.median)} (${format(s.min)}–${format(s.max)})`

/**
 * Every target of the run with its verdict: `{ id, label, value, bound, met }` (values in ns,
 * patches/s or bytes); a target whose measure or reference is missing is left out.
 */
export function targets (results) {
  const { latency, relay, redis = {}, throughput, bursts, cluster, join, failover, startup } = results
  const list = []
  const add = (id, label, value, bound, atMost = true) => {
    list.push({ id, label, value, bound, atMost, met: atMost ? value <= bound : value >= bound })
  }
  if (usable(latency)) {
    const p50 = latency.p50.median
    add('latency_p50', 'issue 4', p50, TARGETS.latencyP50Ns)
    if (usable(relay)) add('latency_p50_relay', `${TARGETS.relayLatencyFactor}x relay`, p50, TARGETS.relayLatencyFactor * relay.latency.p50.median)
    if (usable(redis.latency)) add('latency_p50_redis', `${TARGETS.redisLatencyFactor}x Redis`, p50, TARGETS.redisLatencyFactor * redis.latency.p50.median)
    add('latency_p50_issue18', 'issue 18', p50, TARGETS.latencyP50NsIssue18)
    add('latency_p99', 'issue 4', latency.p99.median, TARGETS.latencyP99Ns)
    add('latency_p99_issue18', 'issue 18', latency.p99.median, TARGETS.latencyP99NsIssue18)
  }
  if (usable(throughput)) {
    const two = throughput.find((t) => t.writers === 2 && t.processes === 4)
    if (two) add('throughput_2w', 'issue 4', two.median, TARGETS.patchesPerSecond2Writers, false)
    if (two) add('throughput_2w_issue18', 'issue 18', two.median, TARGETS.patchesPerSecond2WritersIssue18, false)
    const four = throughput.find((t) => t.writers === 4 && t.processes === 6)
    const redisFour = usable(redis.throughput) ? redis.throughput.find((t) => t.writers === 4) : undefined
    if (four && redisFour) add('throughput_4w_redis', `${TARGETS.redisThroughputFactor}x Redis`, four.median, TARGETS.redisThroughputFactor * redisFour.median, false)
    if (four && redisFour) add('throughput_4w_redis_issue18', `issue 18: ${TARGETS.redisThroughputFactorIssue18}x Redis`, four.median, TARGETS.redisThroughputFactorIssue18 * redisFour.median, false)
  }
  if (usable(bursts)) {
    const at = (window) => bursts.windows.find((w) => w.window === window)
    if (at(20000) && at(256)) add('burst_20000_256', 'issue 18', at(20000).median / at(256).median, TARGETS.burstSweepFactor, false)
    const counterAt = (window) => bursts.counter?.find((w) => w.window === window)
    if (counterAt(20000) && counterAt(256)) add('burst_counter_20000_256', 'issue 18', counterAt(20000).median / counterAt(256).median, TARGETS.burstSweepFactor, false)
  }
  if (usable(cluster)) {
    // Ratios of the same round, median of the rounds.
    add('cluster_memsync_plain', 'issue 18', cluster.ratios.memsyncPlain.median, TARGETS.clusterPlainFactor, false)
    if (cluster.ratios.memsyncRedis) add('cluster_memsync_redis', 'issue 18', cluster.ratios.memsyncRedis.median, TARGETS.clusterRedisFactor, false)
    add('cluster_p99_plain', 'issue 18', cluster.ratios.p99MemsyncPlain.median, TARGETS.clusterP99PlainFactor)
  }
  if (usable(join)) {
    for (const size of join.sizes) {
      const mb = Math.round(size.bytes / 1e6)
      if (mb === 10) add('join_10mb', `${TARGETS.joinParseFactor}x JSON.parse`, size.join.median, TARGETS.joinParseFactor * size.parse.median)
      const bound = TARGETS.memoryJsonFactor * size.jsonBytes + TARGETS.memoryFixedBytes
      add(`memory_client_${mb}mb`, `${TARGETS.memoryJsonFactor}x JSON + 30 MB`, size.rssClient.median - join.baselineRss, bound)
      add(`memory_host_${mb}mb`, `${TARGETS.memoryJsonFactor}x JSON + 30 MB`, size.rssHost - join.baselineRss, bound)
    }
  }
  if (usable(failover)) add('failover', '', failover.total.median, TARGETS.failoverNs)
  if (usable(startup)) {
    add('start_host', 'issue 4', startup.host.median, TARGETS.startHostNs)
    add('start_client', 'issue 4', startup.client.median, TARGETS.startClientNs)
    add('cold_start_host', 'issue 4', startup.coldHost.median, TARGETS.startHostNs)
    add('cold_start_client', 'issue 4', startup.coldClient.median, TARGETS.startClientNs)
  }
  return list
}

/** The target and met cells of a row: the targets of `ids` that the run could check. */
function verdict (list, ids, format) {
  const chosen = list.filter((t) => ids.includes(t.id))
  if (chosen.length === 0) return '| |'
  const bound = chosen.map((t) => `${t.atMost ? '≤' : '≥'} ${format(t.bound)}${t.label ? ` (${t.label})` : ''}`).join(' · ')
  return `${bound} | ${chosen.map((t) => (t.met ? 'met' : 'missed')).join(' · ')} |`
}

function cell (section, pick, format) {
  if (section?.error !== undefined) return 'failed'
  if (section?.skipped !== undefined) return 'skipped'
  if (section === undefined) return '–'
  const value = pick(section)
  return value === undefined ? '–' : range(value, format)
}

function localTables ({ engine, api }) {
  const lines = []
  lines.push('| patch engine (Rust, per update) | memsync | mingo | memsync speed-up |')
  lines.push('|---|---:|---:|---:|')
  if (usable(engine)) {
    for (const row of engine) {
      lines.push(`| ${row.label} | ${formatNs(row.memsync.median)} | ${formatNs(row.mingo.median)} | ${row.speedup.toFixed(1)}x |`)
    }
  } else {
    lines.push(`| failed: ${engine.error.split('\n')[0]} | | | |`)
  }
  lines.push('')
  lines.push('| MemSync API (Node, one process, per call) | memsync | reference | ratio |')
  lines.push('|---|---:|---:|---:|')
  if (usable(api)) {
    for (const row of api.rows) {
      const reference = row.mingo ?? row.plain
      const name = row.mingo ? 'mingo' : 'plain object'
      lines.push(`| ${row.label} | ${range(row.memsync, formatNs)} | ${formatNs(reference.median)} (${name}) | ${(row.memsync.median / reference.median).toFixed(2)}x |`)
    }
    const { memory } = api
    lines.push('')
    lines.push(`Memory over ${memory.patches.toLocaleString('en')} patches: RSS ${memory.rssAfterTenthMb.toFixed(1)} MB after the first tenth, ${memory.rssAfterAllMb.toFixed(1)} MB after all; JS heap ${memory.heapAfterTenthMb.toFixed(1)} MB -> ${memory.heapAfterAllMb.toFixed(1)} MB.`)
  } else {
    lines.push(`| failed: ${api.error.split('\n')[0]} | | | |`)
  }
  return lines
}

function syncTable (results, list) {
  const { latency, roundTrip, rpc, events, throughput, relay } = results
  const redis = results.redis ?? {}
  const redisPart = (key) => usable(redis) ? redis[key] : redis
  const lines = []
  lines.push(`| between processes | memsync: median (min–max) | raw relay (Rust) | Redis${redis.version ? ` ${redis.version}` : ''} (ioredis) | target | met |`)
  lines.push('|---|---:|---:|---:|---|:-:|')
  // The relay reports no p99.9: its cell reads '–'.
  const latencyRow = (label, key, ids) => {
    lines.push(`| ${label} | ${cell(latency, (l) => l[key], formatNs)} | ${cell(relay, (r) => r.latency[key], formatNs)} | ${cell(redisPart('latency'), (l) => l[key], formatNs)} | ${verdict(list, ids, formatNs)}`)
  }
  latencyRow('propagation A → host → B, p50', 'p50', ['latency_p50_relay', 'latency_p50_redis', 'latency_p50', 'latency_p50_issue18'])
  latencyRow('propagation, p99', 'p99', ['latency_p99', 'latency_p99_issue18'])
  latencyRow('propagation, p99.9', 'p999', [])
  latencyRow('round trip A → B → A / 2, p50', 'rttHalfP50', [])
  lines.push(`| propagation from the host's process to B, p50 / p99 | ${cell(latency?.fromHost, (w) => w.p50, formatNs)} / ${cell(latency?.fromHost, (w) => w.p99, formatNs)} | – | – | | |`)
  lines.push(`| propagation from B to the host's process, p50 / p99 | ${cell(latency?.toHost, (w) => w.p50, formatNs)} / ${cell(latency?.toHost, (w) => w.p99, formatNs)} | – | – | | |`)
  lines.push(`| a client's await patch(): round trip to the host, p50 (Redis: HINCRBY) | ${cell(roundTrip, (r) => r.p50, formatNs)} | – | ${cell(redisPart('roundTrip'), (r) => r.p50, formatNs)} | | |`)
  lines.push(`| a client's await patch(), p99 (Redis: HINCRBY) | ${cell(roundTrip, (r) => r.p99, formatNs)} | – | ${cell(redisPart('roundTrip'), (r) => r.p99, formatNs)} | | |`)
  lines.push(`| the host's own await patch(), a client connected, p50 / p99 | ${cell(roundTrip?.host, (r) => r.p50, formatNs)} / ${cell(roundTrip?.host, (r) => r.p99, formatNs)} | – | – | | |`)
  lines.push(`| await call() of a function another client registered, p50 / p99 | ${cell(rpc, (r) => r.p50, formatNs)} / ${cell(rpc, (r) => r.p99, formatNs)} | – | – | | |`)
  lines.push(`| events.emit() from one client to another (events/s) | ${cell(events, (r) => r, formatRate)} | – | – | | |`)
  for (const writers of [1, 2, 4]) {
    const own = usable(throughput) ? throughput.find((t) => t.writers === writers && t.processes === writers + 2) : throughput
    const raw = usable(relay) ? relay.throughput.find((t) => t.writers === writers) : relay
    const theirs = usable(redisPart('throughput')) ? redis.throughput.find((t) => t.writers === writers) : redisPart('throughput')
    const ids = { 2: ['throughput_2w', 'throughput_2w_issue18'], 4: ['throughput_4w_redis', 'throughput_4w_redis_issue18'] }[writers] ?? []
    lines.push(`| end to end, ${writers} writer${writers > 1 ? 's' : ''} + a reader + the hub (per second, every process) | ${cell(own, (r) => r, formatRate)} | ${cell(raw, (r) => r, formatRate)} | ${cell(theirs, (r) => r, formatRate)} | ${verdict(list, ids, formatRate)}`)
  }
  return lines
}

function throughputMatrix (throughput) {
  if (!usable(throughput)) return []
  const writers = [...new Set(throughput.map((t) => t.writers))].sort((a, b) => a - b)
  const processes = [...new Set(throughput.map((t) => t.processes))].sort((a, b) => a - b)
  const lines = []
  lines.push(`| memsync patches/s end to end, every replica | ${writers.map((w) => `${w} writer${w > 1 ? 's' : ''}`).join(' | ')} |`)
  lines.push(`|---|${writers.map(() => '---:').join('|')}|`)
  for (const p of processes) {
    const cells = writers.map((w) => {
      const row = throughput.find((t) => t.processes === p && t.writers === w)
      return row ? range(row, formatRate) : ''
    })
    lines.push(`| ${p} process${p > 1 ? 'es' : ''} | ${cells.join(' | ')} |`)
  }
  return lines
}

const formatRatio = (r) => `${r.toFixed(2)}x`

/** Issue 18's rows: the clustered HTTP service's three modes, and the burst sweep. */
function loadTables ({ cluster, bursts }, list) {
  const lines = []
  const redisCell = (pick, format) => cluster?.redisSkipped !== undefined ? 'skipped' : cell(cluster, (c) => pick(c.redis), format)
  const title = usable(cluster) ? `${cluster.workers} workers, ${cluster.connections} keep-alive connections` : 'node:cluster'
  lines.push(`| clustered HTTP service (${title}): median (min–max) | plain | memsync: await patch() | ioredis: await hincrby() | target | met |`)
  lines.push('|---|---:|---:|---:|---|:-:|')
  lines.push(`| requests/s | ${cell(cluster, (c) => c.plain.rate, formatRate)} | ${cell(cluster, (c) => c.memsync.rate, formatRate)} | ${redisCell((m) => m.rate, formatRate)} | | |`)
  lines.push(`| latency, p99 | ${cell(cluster, (c) => c.plain.p99, formatMs)} | ${cell(cluster, (c) => c.memsync.p99, formatMs)} | ${redisCell((m) => m.p99, formatMs)} | | |`)
  lines.push(`| requests/s, memsync / plain (same round) | | ${cell(cluster, (c) => c.ratios.memsyncPlain, formatRatio)} | | ${verdict(list, ['cluster_memsync_plain'], formatRatio)}`)
  lines.push(`| requests/s, memsync / ioredis (same round) | | ${cluster?.redisSkipped !== undefined ? 'skipped' : cell(cluster, (c) => c.ratios.memsyncRedis, formatRatio)} | | ${verdict(list, ['cluster_memsync_redis'], formatRatio)}`)
  lines.push(`| latency p99, memsync / plain (same round) | | ${cell(cluster, (c) => c.ratios.p99MemsyncPlain, formatRatio)} | | ${verdict(list, ['cluster_p99_plain'], formatRatio)}`)
  lines.push('')
  lines.push('| burst sweep: 2 writers + a host, $inc unawaited; acknowledged patches/s: median (min–max) | a field per writer | one counter for both | target | met |')
  lines.push('|---|---:|---:|---|:-:|')
  if (usable(bursts)) {
    for (const [i, row] of bursts.windows.entries()) {
      const counter = bursts.counter?.[i]
      lines.push(`| ${row.window.toLocaleString('en')} in flight per writer | ${range(row, formatRate)} | ${counter ? range(counter, formatRate) : '–'} | | |`)
    }
    const ratio = (id) => {
      const target = list.find((t) => t.id === id)
      return target ? formatRatio(target.value) : '–'
    }
    lines.push(`| 20,000 in flight against 256 (medians) | ${ratio('burst_20000_256')} | ${ratio('burst_counter_20000_256')} | ${verdict(list, ['burst_20000_256', 'burst_counter_20000_256'], formatRatio)}`)
  } else {
    lines.push(`| bursts | ${cell(bursts)} | | | |`)
  }
  return lines
}

function joinTable ({ join, failover, startup }, list) {
  const lines = []
  lines.push('| join, memory, failover, start-up | memsync: median (min–max) | reference | target | met |')
  lines.push('|---|---:|---:|---|:-:|')
  if (usable(join)) {
    for (const size of join.sizes) {
      const mb = Math.round(size.bytes / 1e6)
      const label = `${mb} MB object (${formatMb(size.jsonBytes)} of JSON)`
      lines.push(`| join a ${label}: a client's first start() | ${range(size.join, formatMs)} | JSON.parse of its text: ${formatMs(size.parse.median)} (join ${size.ratio.median.toFixed(1)}x) | ${verdict(list, mb === 10 ? ['join_10mb'] : [], formatMs)}`)
      lines.push(`| RSS of that client | ${range(size.rssClient, formatMb)} | ${formatMb(size.rssClient.median - join.baselineRss)} above an empty peer | ${verdict(list, [`memory_client_${mb}mb`], formatMb)}`)
      lines.push(`| RSS of the host holding it | ${formatMb(size.rssHost)} | ${formatMb(size.rssHost - join.baselineRss)} above an empty peer | ${verdict(list, [`memory_host_${mb}mb`], formatMb)}`)
    }
  } else {
    lines.push(`| join and memory | ${cell(join)} | | | |`)
  }
  lines.push(`| failover after kill -9 of the host | ${cell(failover, (f) => f.total, formatMs)} | | ${verdict(list, ['failover'], formatMs)}`)
  lines.push(`| start() as host | ${cell(startup, (t) => t.host, formatMs)} | | ${verdict(list, ['start_host'], formatMs)}`)
  lines.push(`| start() as client | ${cell(startup, (t) => t.client, formatMs)} | | ${verdict(list, ['start_client'], formatMs)}`)
  lines.push(`| first start() of a process, as host | ${cell(startup, (t) => t.coldHost, formatMs)} | | ${verdict(list, ['cold_start_host'], formatMs)}`)
  lines.push(`| first start() of a process, as client | ${cell(startup, (t) => t.coldClient, formatMs)} | | ${verdict(list, ['cold_start_client'], formatMs)}`)
  return lines
}

/** How each row was measured, in a few sentences under the tables. */
function notes (results) {
  const { latency, throughput, bursts, cluster, relay, join, failover, startup } = results
  const redis = results.redis ?? {}
  const out = []
  if (usable(latency)) {
    out.push(`Propagation: ${latency.runs.length} runs of ${latency.runs[0].samples.toLocaleString('en')} one-way times (A → B and B → A, one message at a time, after ${latency.warmupRounds} warm-up rounds), from the hrtime written in the patch (or message) to the observer (or subscriber); p50/p99/p99.9 per run, median (min–max) of the runs.`)
  }
  if (usable(throughput)) {
    out.push(`End to end: ${throughput[0].patchesPerRun.toLocaleString('en')} $inc per run (at most ${throughput[0].inFlight} unacknowledged per writer) until every process has applied all; in the matrix the host is the first process and the writers are the last ones.`)
  }
  if (usable(cluster)) {
    out.push(`Clustered HTTP service: node:cluster, ${cluster.workers} workers sharing one port (round-robin), each with a memsync instance (the first worker is the host) and an ioredis client; a load generator in its own process keeps ${cluster.connections} keep-alive connections with one request each in flight (raw sockets, HTTP/1.1); ${cluster.rounds.length} rounds of ${cluster.seconds} s per mode after a warm-up round, the modes in turn within each round; after every memsync and ioredis run, every worker holds (and Redis holds) exactly the count of successful requests.`)
  }
  if (usable(bursts)) {
    out.push(`Burst sweep: ${bursts.count.toLocaleString('en')} patches per writer per window size, made a window at a time (\`ps.push(mem.patch(u))\`, then \`Promise.all(ps)\`); the window sizes in turn in each of ${bursts.windows[0].runs.length} runs, and for each, each writer incrementing a field of its own, then both incrementing one counter; from the first writer's start to the last acknowledgement; the replicas agree at the end.`)
  }
  if (usable(relay)) out.push(`Relay: benches/relay.rs, ${relay.messageBytes}-byte frames, writes coalesced per client, ${relay.inFlight} in flight per writer; it reports no p99.9.`)
  if (redis.skipped !== undefined) out.push(`Redis: skipped, ${redis.skipped}.`)
  else if (redis.version !== undefined) out.push(`Redis: redis-server ${redis.version} on a loopback port, persistence off, each client in its own process (ioredis, auto-pipelined publishing); throughput: W publishers that also subscribe and one more subscriber, every message JSON-parsed on receipt.`)
  if (usable(join)) {
    out.push(`Join: ${join.sizes[0].runs.length} new processes per size, each joining a host that holds the object; JSON.parse in the same process, on the object's JSON.stringify text. Memory: RSS after a full GC; the target is checked against the RSS above a peer holding an empty object (${formatMb(join.baselineRss)} in this run: Node, the addon and its runtime).`)
  }
  if (usable(failover)) {
    out.push(`Failover: ${failover.rounds.length} kills of a host with 2 clients, until both survivors are connected to the new host and a patch each made after the kill has resolved; the survivors saw the loss after ${formatMs(failover.detected.median)}, were connected after ${formatMs(failover.connected.median)} (medians).`)
  }
  if (usable(startup)) {
    out.push(`start(): ${startup.host.samples} instances in the runner after a warm-up (as host each in a new rendezvous directory, as client of a host in another process); first start(): in each of the ${startup.coldHost.samples} + ${startup.coldClient.samples} child processes of these benchmarks, starting the addon's runtime too.`)
  }
  const failed = Object.entries(results).filter(([, section]) => section?.error !== undefined).map(([key, section]) => `${key}: ${section.error.split('\n')[0]}`)
  if (failed.length > 0) out.push(`Failed: ${failed.join('; ')}.`)
  return out.join(' ')
}

/** The whole report: Markdown tables and notes. */
export function report (results) {
  const list = targets(results)
  return [
    ...localTables(results),
    '',
    ...syncTable(results, list),
    '',
    ...throughputMatrix(results.throughput),
    '',
    ...loadTables(results, list),
    '',
    ...joinTable(results, list),
    '',
    notes(results)
  ].join('\n')
}
