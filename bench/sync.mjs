// Sync between processes: propagation latency, end-to-end throughput, failover and start-up of
// memsync, beside a raw Unix-socket relay (benches/relay.rs) measured in the same run.
//
// Every memsync peer but the start-up ones is a child process (fixtures/sync-peer.mjs) driven
// over Node IPC; times are taken inside the processes with process.hrtime.bigint(), which is
// CLOCK_MONOTONIC on Linux, one clock for every process of the machine. Every wait is bounded,
// and every child is killed when this process exits. Rendezvous directories are fresh temp dirs.
import { fork, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { formatNs, summarize } from './measure.mjs'

const require = createRequire(import.meta.url)
const { MemSync } = require('../index.js')

const root = fileURLToPath(new URL('..', import.meta.url))
const FIXTURE = fileURLToPath(new URL('fixtures/sync-peer.mjs', import.meta.url))
const IN_FLIGHT = 256
const now = () => Number(process.hrtime.bigint())

/** The issue's targets (issue 4), for the table. */
export const TARGETS = {
  latencyP50Ns: 50e3,
  latencyP99Ns: 250e3,
  patchesPerSecond2Writers: 200e3,
  failoverNs: 50e6,
  startHostNs: 2e6,
  startClientNs: 3e6
}

function settings (quick) {
  return quick
    ? {
        latency: { runs: 3, warmup: 300, samples: 1500 },
        throughput: { writers: [1, 2, 4], runs: 3, patches: 40000 },
        failover: { rounds: 5 },
        startup: { samples: 40, warmup: 5 },
        relay: ['--runs', '3', '--warmup', '300', '--samples', '1500', '--messages', '100000', '--throughput-runs', '3']
      }
    : {
        latency: { runs: 5, warmup: 1000, samples: 4000 },
        throughput: { writers: [1, 2, 4], runs: 5, patches: 100000 },
        failover: { rounds: 10 },
        startup: { samples: 150, warmup: 10 },
        relay: ['--runs', '5', '--warmup', '1000', '--samples', '4000', '--messages', '200000', '--throughput-runs', '5']
      }
}

// ---------------------------------------------------------------------------------------------
// Child processes.

const children = new Set()
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

function withTimeout (promise, ms, message) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${message}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

class Peer {
  events = []
  stderr = ''
  exited = false
  #pending = new Map()
  #waiters = new Set()
  #nextId = 1

  constructor (name, dir, config, label) {
    this.label = label
    this.child = fork(FIXTURE, [name, dir, JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
    children.add(this.child)
    this.child.stderr.on('data', (chunk) => { this.stderr = (this.stderr + chunk).slice(-4000) })
    this.exit = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true
        children.delete(this.child)
        for (const { reject } of this.#pending.values()) reject(new Error(`${this.label} exited (${code ?? signal})${this.#tail()}`))
        this.#pending.clear()
        resolve({ code, signal })
      })
    })
    this.child.on('message', (message) => {
      if (message.id === undefined) {
        this.events.push(message)
        for (const waiter of this.#waiters) waiter()
        return
      }
      const pending = this.#pending.get(message.id)
      if (pending === undefined) return
      this.#pending.delete(message.id)
      const { id, fail, ...reply } = message
      if (fail !== undefined) pending.reject(new Error(`${this.label}: ${pending.cmd} failed: ${fail}`))
      else pending.resolve(reply)
    })
  }

  #tail () {
    return this.stderr ? `\n--- stderr of ${this.label} ---\n${this.stderr}` : ''
  }

  request (cmd, args = {}, timeoutMs = 10000) {
    if (this.exited) return Promise.reject(new Error(`${this.label} has exited; cannot send ${cmd}`))
    const id = this.#nextId++
    const reply = new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, cmd })
      this.child.send({ id, cmd, ...args })
    })
    return withTimeout(reply, timeoutMs, `${this.label} did not answer ${cmd}${this.#tail()}`).finally(() => this.#pending.delete(id))
  }

  /** Resolves with the first event (in `events`) that satisfies `predicate`. */
  waitEvent (predicate, timeoutMs = 10000) {
    let waiter
    const found = new Promise((resolve) => {
      waiter = () => {
        const event = this.events.find(predicate)
        if (event !== undefined) resolve(event)
      }
      this.#waiters.add(waiter)
      waiter()
    })
    return withTimeout(found, timeoutMs, `${this.label} sent no such event${this.#tail()}`).finally(() => this.#waiters.delete(waiter))
  }

  async kill () {
    if (!this.exited) this.child.kill('SIGKILL')
    await withTimeout(this.exit, 5000, `${this.label} did not exit after SIGKILL`)
  }
}

async function spawnPeer (name, dir, label, config = {}) {
  const peer = new Peer(name, dir, config, label)
  await withTimeout(Promise.race([
    peer.waitEvent((e) => e.event === 'ready', 15000),
    peer.exit.then(() => { throw new Error(`${label} exited before it was ready`) })
  ]), 15000, `${label} ready`)
  return peer
}

/** The first start() of every child process, by role: a cold start (see benchStartup). */
const coldStarts = { host: [], client: [] }

/** Spawns and starts a peer, checking the role it takes. */
async function startPeer (name, dir, label, role, config) {
  const peer = await spawnPeer(name, dir, label, config)
  const reply = await peer.request('start', {}, 15000).catch(async (error) => {
    await peer.kill()
    throw error
  })
  if (reply.role !== role) {
    await peer.kill()
    throw new Error(`${label} started as ${reply.role}, expected ${role}`)
  }
  coldStarts[role].push(reply.ns)
  return peer
}

let names = 0
const uniqueName = (label) => `bench-${label}-${process.pid}-${names++}`

function percentile (sorted, p) {
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)))
  return sorted[rank - 1]
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// 1. Propagation: a patch in client A until the observer fires in client B, through the host.

async function benchLatency (dir, { runs, warmup, samples }) {
  const name = uniqueName('latency')
  const peers = []
  try {
    peers.push(await startPeer(name, dir, 'latency host', 'host', { data: {} }))
    const a = await startPeer(name, dir, 'latency A', 'client')
    const b = await startPeer(name, dir, 'latency B', 'client')
    peers.push(a, b)
    await b.request('echo')
    const perRun = []
    for (let run = 0; run < runs; run++) {
      const { oneWay: back, roundTrip } = await a.request('ping', { warmup, samples, timeoutMs: 5000 }, 60000)
      const { oneWay: forth } = await b.request('echoed')
      // Both directions are the same path (client -> host -> client): pooled.
      const oneWay = [...forth, ...back].sort((x, y) => x - y)
      const rtt = roundTrip.sort((x, y) => x - y)
      perRun.push({
        p50: percentile(oneWay, 0.5),
        p99: percentile(oneWay, 0.99),
        max: oneWay[oneWay.length - 1],
        rttHalfP50: percentile(rtt, 0.5) / 2,
        samples: oneWay.length
      })
    }
    return {
      runs: perRun,
      warmupRounds: warmup,
      p50: summarize(perRun.map((r) => r.p50)),
      p99: summarize(perRun.map((r) => r.p99)),
      rttHalfP50: summarize(perRun.map((r) => r.rttHalfP50))
    }
  } finally {
    await Promise.all(peers.map((p) => p.kill()))
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Throughput: W writers fire $inc (IN_FLIGHT unresolved at most) until every replica (the host,
// a client that only observes, every writer) has applied them all.

async function benchThroughput (dir, { writers: counts, runs, patches }) {
  const rows = []
  for (const count of counts) {
    const name = uniqueName(`throughput${count}`)
    const peers = []
    try {
      const host = await startPeer(name, dir, `throughput host (${count}w)`, 'host', { data: { n: 0 } })
      peers.push(host)
      const observer = await startPeer(name, dir, `throughput observer (${count}w)`, 'client')
      peers.push(observer)
      const writers = []
      for (let w = 0; w < count; w++) {
        writers.push(await startPeer(name, dir, `throughput writer ${w} (${count}w)`, 'client'))
      }
      peers.push(...writers)
      const perWriter = Math.ceil(patches / count)
      const rates = []
      let n = 0
      // The first round (a quarter of the size) warms up and is not counted.
      for (let run = -1; run < runs; run++) {
        const each = run < 0 ? Math.ceil(perWriter / 4) : perWriter
        const target = n + each * count
        await Promise.all([host, observer].map((p) => p.request('arm', { target })))
        const writes = writers.map((w) => w.request('write', { count: each, inFlight: IN_FLIGHT, target }, 120000))
        const written = await Promise.all(writes)
        const reached = await Promise.all([host, observer].map((p) => p.request('reached', {}, 30000)))
        const start = Math.min(...written.map((r) => r.start))
        const end = Math.max(...written.map((r) => r.end), ...reached.map((r) => r.t))
        if (run >= 0) rates.push((each * count * 1e9) / (end - start))
        n = target
      }
      // Every replica holds exactly every increment, at one version.
      const states = await Promise.all(peers.map((p) => p.request('state')))
      const bad = states.filter((s) => s.n !== n || s.version !== states[0].version)
      if (bad.length > 0) {
        throw new Error(`throughput with ${count} writers: replicas differ, expected n = ${n}: ${JSON.stringify(states)}`)
      }
      rows.push({ writers: count, patchesPerRun: perWriter * count, inFlight: IN_FLIGHT, runs: rates, ...summarize(rates) })
    } finally {
      await Promise.all(peers.map((p) => p.kill()))
    }
  }
  return rows
}

// ---------------------------------------------------------------------------------------------
// 4. Failover: kill -9 of the host of a host and 2 clients, until both survivors are connected to
// the new host and a patch each made after the kill has resolved.

async function benchFailover (dir, { rounds }) {
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
      await sleep(50) // idle, as a real host death would find them
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
    await Promise.all(members.map((p) => p.kill()))
  }
}

// ---------------------------------------------------------------------------------------------
// 5. start(): in this process, as host (each in a fresh directory) and as client (of a host in a
// child process).

async function benchStartup (base, { samples, warmup }) {
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
    const dir = path.join(fs.mkdtempSync(path.join(base, 'start-')), 'rdv')
    const ns = await timeStart(new MemSync(uniqueName('start-host'), { n: 0 }, { dir }), 'host')
    fs.rmSync(path.dirname(dir), { recursive: true, force: true })
    if (i >= 0) host.push(ns)
  }
  const dir = path.join(fs.mkdtempSync(path.join(base, 'start-')), 'rdv')
  const name = uniqueName('start-client')
  const hostPeer = await startPeer(name, dir, 'start-up host', 'host', { data: { n: 0 } })
  const client = []
  try {
    for (let i = -warmup; i < samples; i++) {
      const ns = await timeStart(new MemSync(name, {}, { dir }), 'client')
      if (i >= 0) client.push(ns)
    }
  } finally {
    await hostPeer.kill()
  }
  // The first start() in a process also starts the addon's runtime: taken from every child
  // process of the other benchmarks (and the host above).
  return {
    host: summarize(host),
    client: summarize(client),
    coldHost: summarize(coldStarts.host),
    coldClient: summarize(coldStarts.client)
  }
}

// ---------------------------------------------------------------------------------------------
// 3. The raw relay (benches/relay.rs).

/** Builds benches/relay.rs; returns the path of its executable. */
function buildRelay () {
  const cargo = spawnSync('cargo', ['bench', '--no-default-features', '--bench', 'relay', '--no-run', '--message-format=json'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 256 * 2 ** 20,
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 900000
  })
  if (cargo.status !== 0) throw new Error(`cargo bench --bench relay --no-run failed (${cargo.status ?? cargo.signal})`)
  const artifact = cargo.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
    .find((m) => m.reason === 'compiler-artifact' && m.target?.name === 'relay' && m.executable)
  if (artifact === undefined) throw new Error('cargo named no executable for the relay bench')
  return { executable: artifact.executable }
}

/** Runs the relay's executable (not `cargo bench` again, which would rebuild after any change). */
function benchRelay (executable, args) {
  const run = spawnSync(executable, args, {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 300000
  })
  if (run.status !== 0) throw new Error(`the relay bench failed (${run.status ?? run.signal})`)
  const line = run.stdout.trim().split('\n').findLast((l) => l.startsWith('{'))
  const raw = JSON.parse(line)
  const runs = raw.latency.runs
  return {
    messageBytes: raw.message_bytes,
    inFlight: raw.in_flight,
    latency: {
      runs,
      p50: summarize(runs.map((r) => r.p50_ns)),
      p99: summarize(runs.map((r) => r.p99_ns)),
      rttHalfP50: summarize(runs.map((r) => r.rtt_p50_ns / 2))
    },
    throughput: raw.throughput.map((t) => ({ writers: t.writers, messagesPerRun: t.messages, runs: t.runs, ...summarize(t.runs) }))
  }
}

// ---------------------------------------------------------------------------------------------

export async function benchSync ({ quick }) {
  const config = settings(quick)
  coldStarts.host = []
  coldStarts.client = []
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-bench-'))
  const dir = path.join(base, 'rdv')
  const seconds = {}
  // A section that fails is reported (in the table, results.json and the exit code) and the
  // others still run.
  const timed = async (key, fn) => {
    const began = performance.now()
    try {
      return await fn()
    } catch (error) {
      console.error(`sync benchmark '${key}' failed:`, error)
      process.exitCode = 1
      return { error: String(error?.message ?? error).slice(0, 2000) }
    } finally {
      seconds[key] = Number(((performance.now() - began) / 1000).toFixed(1))
    }
  }
  try {
    // Built first (not timed with the runs): after a change of src/ it links the crate again.
    const build = await timed('relayBuild', buildRelay)
    const relay = build.error ? build : await timed('relay', () => benchRelay(build.executable, config.relay))
    const latency = await timed('latency', () => benchLatency(dir, config.latency))
    const throughput = await timed('throughput', () => benchThroughput(dir, config.throughput))
    const failover = await timed('failover', () => benchFailover(dir, config.failover))
    const startup = await timed('startup', () => benchStartup(base, config.startup))
    return { latency, throughput, failover, startup, relay, targets: TARGETS, seconds }
  } finally {
    fs.rmSync(base, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// The table.

const range = (s, format) => `${format(s.median)} (${format(s.min)}–${format(s.max)})`
const perSecond = (n) => `${Math.round(n).toLocaleString('en')}/s`
const ms = (ns) => `${(ns / 1e6).toFixed(2)} ms`
const meets = (value, target, atMost = true) => (atMost ? value <= target : value >= target) ? 'yes' : 'no'

export function syncTable (sync) {
  const { latency, throughput, failover, startup, relay } = sync
  const failed = (section) => section?.error !== undefined
  const cell = (section, pick, format) => failed(section) ? 'failed' : range(pick(section), format)
  const met = (section, pick, target, atMost = true) => failed(section) ? '' : meets(pick(section).median, target, atMost)
  const lines = []
  lines.push('| sync between processes | memsync: median (min–max) | raw Unix-socket relay (Rust) | target | met |')
  lines.push('|---|---:|---:|---:|:-:|')
  lines.push(`| propagation A → host → B, p50 | ${cell(latency, (l) => l.p50, formatNs)} | ${cell(relay, (r) => r.latency.p50, formatNs)} | ≤ ${formatNs(TARGETS.latencyP50Ns)} | ${met(latency, (l) => l.p50, TARGETS.latencyP50Ns)} |`)
  lines.push(`| propagation A → host → B, p99 | ${cell(latency, (l) => l.p99, formatNs)} | ${cell(relay, (r) => r.latency.p99, formatNs)} | ≤ ${formatNs(TARGETS.latencyP99Ns)} | ${met(latency, (l) => l.p99, TARGETS.latencyP99Ns)} |`)
  lines.push(`| round trip A → B → A / 2, p50 | ${cell(latency, (l) => l.rttHalfP50, formatNs)} | ${cell(relay, (r) => r.latency.rttHalfP50, formatNs)} | | |`)
  for (const writers of [1, 2, 4]) {
    const row = failed(throughput) ? throughput : throughput.find((t) => t.writers === writers)
    const raw = failed(relay) ? relay : relay.throughput.find((t) => t.writers === writers)
    if (row === undefined) continue
    const two = writers === 2
    lines.push(`| end to end, ${writers} writer${writers > 1 ? 's' : ''} (patches/s, every replica) | ${cell(row, (r) => r, perSecond)} | ${raw ? cell(raw, (r) => r, perSecond) : '–'} | ${two ? `≥ ${perSecond(TARGETS.patchesPerSecond2Writers)}` : ''} | ${two ? met(row, (r) => r, TARGETS.patchesPerSecond2Writers, false) : ''} |`)
  }
  lines.push(`| failover after kill -9 of the host | ${cell(failover, (f) => f.total, ms)} | | ≤ ${ms(TARGETS.failoverNs)} | ${met(failover, (f) => f.total, TARGETS.failoverNs)} |`)
  lines.push(`| start() as host | ${cell(startup, (t) => t.host, ms)} | | ≤ ${ms(TARGETS.startHostNs)} | ${met(startup, (t) => t.host, TARGETS.startHostNs)} |`)
  lines.push(`| start() as client | ${cell(startup, (t) => t.client, ms)} | | ≤ ${ms(TARGETS.startClientNs)} | ${met(startup, (t) => t.client, TARGETS.startClientNs)} |`)
  lines.push(`| first start() of a process, as host | ${cell(startup, (t) => t.coldHost, ms)} | | ≤ ${ms(TARGETS.startHostNs)} | ${met(startup, (t) => t.coldHost, TARGETS.startHostNs)} |`)
  lines.push(`| first start() of a process, as client | ${cell(startup, (t) => t.coldClient, ms)} | | ≤ ${ms(TARGETS.startClientNs)} | ${met(startup, (t) => t.coldClient, TARGETS.startClientNs)} |`)
  lines.push('')
  const notes = []
  if (!failed(latency)) {
    notes.push(`Propagation: ${latency.runs.length} runs of ${latency.runs[0].samples.toLocaleString('en')} one-way times (A → B and B → A, one patch at a time, after ${latency.warmupRounds} warm-up rounds), from the hrtime written in the patch to the observer; p50/p99 per run, median (min–max) of the runs.`)
  }
  if (!failed(throughput)) {
    notes.push(`End to end: ${throughput[0].patchesPerRun.toLocaleString('en')} $inc per run, at most ${IN_FLIGHT} in flight per writer, until the host, an observing client and every writer have applied all.`)
  }
  if (!failed(relay)) {
    notes.push(`Relay: three processes and more (A → relay → B), ${relay.messageBytes}-byte frames, writes coalesced per client, ${relay.inFlight} in flight per writer.`)
  }
  if (!failed(failover)) {
    notes.push(`Failover: ${failover.rounds.length} kills of a host with 2 clients, until both survivors are connected to the new host and a patch each made after the kill has resolved; the killed host was reaped after ${ms(failover.reaped.median)}, the survivors saw the loss after ${ms(failover.detected.median)}, were connected after ${ms(failover.connected.median)}, had their patches resolved after ${ms(failover.patched.median)} (medians).`)
  }
  if (!failed(startup)) {
    notes.push(`start(): ${startup.host.samples} instances each in this process, after a warm-up (as host: each in a new rendezvous directory; as client: of a host in another process); first start(): in each of the ${startup.coldHost.samples} + ${startup.coldClient.samples} child processes of these benchmarks, the addon's runtime starting with it.`)
  }
  const errors = Object.entries(sync).filter(([, section]) => failed(section)).map(([key, section]) => `${key}: ${section.error.split('\n')[0]}`)
  if (errors.length > 0) notes.push(`Failed: ${errors.join('; ')}.`)
  lines.push(notes.join(' '))
  return lines.join('\n')
}
