// Chaos: 4 processes write while, every round, one of them (host or client, at random) is killed
// with SIGKILL and a fresh process takes its place; or, one round in three, the host is stopped
// (SIGSTOP) for longer or shorter than hostTimeout and then continued (SIGCONT): replaced and
// fenced, or still host. After every round all replicas must be identical and every patch whose
// promise resolved in a process must be present exactly once, a killed host's own included (they
// resolve once a client's socket has them).
//
//   npm run chaos -- [--rounds 50] [--writes 40] [--seed <n>]
//   npm run chaos -- --redis ...   the rounds against Redis: scripts/chaos-redis.mjs
//
// Each patch pushes a unique id onto `log` and counts it per writer in the same patch, so a
// patch applied twice, lost or half-applied shows. Exits non-zero at the first failed round.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { converge, countOccurrences, describeStates, spawnPeer, withTimeout } from '../__test__/support/peers.mjs'

if (process.argv.includes('--redis')) {
  const { run } = await import('./chaos-redis.mjs')
  process.exit(await run(process.argv.slice(2).filter((arg) => arg !== '--redis')))
}

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '50' },
    writes: { type: 'string', default: '40' },
    seed: { type: 'string', default: String(Date.now() % 1e9) }
  }
})
const ROUNDS = Number(args.rounds)
const WRITES = Number(args.writes)
const SEED = Number(args.seed)
const PEERS = 4
const HOST_TIMEOUT_MS = 1000
const OPTIONS = { timeout: 15000, hostTimeout: HOST_TIMEOUT_MS }
// How long a stopped host stays stopped: shorter than hostTimeout (it stays host), or longer.
const STOPS_MS = [HOST_TIMEOUT_MS * 0.3, HOST_TIMEOUT_MS * 0.9, HOST_TIMEOUT_MS * 1.5, HOST_TIMEOUT_MS * 3]
const ROUND_TIMEOUT_MS = 60000

// mulberry32: a seeded generator, so that a failing run can be replayed with --seed.
let state = SEED >>> 0
function random () {
  state = (state + 0x6d2b79f5) >>> 0
  let t = state
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = (n) => Math.floor(random() * n)

// spawnPeer registers cleanups with a test context; this script is its own.
const cleanups = []
const context = { after: (fn) => cleanups.push(fn) }
async function cleanUp () {
  for (const fn of cleanups.reverse()) {
    try {
      await fn()
    } catch {
      // Already gone.
    }
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-chaos-'))
const dir = path.join(tmp, 'rdv')
const name = `chaos-${process.pid}`
let incarnations = 0

/** A new writer process, started; resolves with it and its role. */
async function newPeer () {
  const label = `w${incarnations++}`
  const peer = await spawnPeer(context, name, dir, { data: { log: [], count: {} }, options: OPTIONS }, label)
  await peer.request('start', {}, 20000)
  return peer
}

/** Resolves when `peer` has reported `count` resolved ids since `since`. */
function resolvedCount (peer, since, count) {
  let seen = 0
  return peer.waitEvent('resolved', { since, predicate: () => ++seen >= count, timeoutMs: 20000 })
}

const mustHave = new Set()
let patchesResolved = 0
let stops = 0
let replacedHosts = 0

/** Checks the replicas after a round: identical, one host, each resolved patch once. */
async function check (peers) {
  const states = await converge(peers, { timeoutMs: 20000 })
  const { log, count } = states[0].data
  const occurrences = countOccurrences(log)
  const duplicates = [...occurrences].filter(([, n]) => n > 1).map(([id]) => id)
  if (duplicates.length > 0) throw new Error(`applied twice: ${duplicates.slice(0, 10).join(', ')}`)
  const missing = [...mustHave].filter((id) => !occurrences.has(id))
  if (missing.length > 0) throw new Error(`resolved but missing: ${missing.slice(0, 10).join(', ')} (${missing.length})`)
  if (states[0].version !== log.length) throw new Error(`version ${states[0].version} for ${log.length} patches`)
  // Each patch counted its id in the same update: the counts match the log, writer by writer.
  const perWriter = countOccurrences(log.map((id) => id.slice(0, id.lastIndexOf('-'))))
  for (const [writer, n] of Object.entries(count)) {
    if (perWriter.get(writer) !== n) throw new Error(`${writer}: counted ${n}, logged ${perWriter.get(writer)}`)
  }
  if (perWriter.size !== Object.keys(count).length) throw new Error('a logged patch was not counted')
  const hosts = states.filter((s) => s.status === 'host').length
  if (hosts !== 1) throw new Error(`${hosts} hosts:\n${describeStates(peers, states)}`)
  return { states, patches: log.length }
}

/** The host is stopped mid-write for a while, then continued; every process's writes resolve. */
async function stopRound (number, peers, statuses) {
  const victimIndex = statuses.findIndex((s) => s.status === 'host')
  const victim = peers[victimIndex]
  const stopMs = STOPS_MS[pick(STOPS_MS.length)]
  const marks = peers.map((peer) => peer.mark())
  const writing = peers.map((peer) => peer.request('write', {
    kind: 'counted', count: WRITES, concurrency: 4, intervalMs: 1, prefix: `${peer.label}r${number}`, report: true
  }, ROUND_TIMEOUT_MS))
  await resolvedCount(victim, marks[victimIndex], 1 + pick(WRITES / 2))
  victim.child.kill('SIGSTOP')
  // The fault's duration, not a wait for an event.
  await new Promise((resolve) => setTimeout(resolve, stopMs))
  victim.child.kill('SIGCONT')
  stops++
  const results = await Promise.all(writing)
  for (const [i, result] of results.entries()) {
    if (Object.keys(result.rejected).length > 0) {
      throw new Error(`${peers[i].describe()}: patches rejected: ${JSON.stringify(result.rejected)}`)
    }
    if (result.resolved.length !== WRITES) throw new Error(`${peers[i].describe()}: ${result.resolved.length} of ${WRITES} resolved`)
    for (const id of result.resolved) mustHave.add(id)
    patchesResolved += result.resolved.length
  }
  const { states, patches } = await check(peers).catch((error) => {
    error.message += ` (after ${victim.label}, the host, was stopped for ${stopMs} ms)${victim.stderrTail()}`
    throw error
  })
  const replaced = states[victimIndex].status !== 'host'
  if (replaced) replacedHosts++
  return { victim: `stopped ${victim.label} (host) for ${stopMs} ms${replaced ? ', replaced' : ''}`, patches }
}

async function round (number, peers) {
  const statuses = await Promise.all(peers.map((peer) => peer.request('state')))
  if (pick(3) === 0) return stopRound(number, peers, statuses)
  const victimIndex = pick(PEERS)
  const victim = peers[victimIndex]
  const victimWasHost = statuses[victimIndex].status === 'host'
  const marks = peers.map((peer) => peer.mark())

  const writing = peers.map((peer) => peer.request('write', {
    kind: 'counted', count: WRITES, concurrency: 4, intervalMs: 1, prefix: `${peer.label}r${number}`, report: true
  }, ROUND_TIMEOUT_MS))
  // Killed while writing: after 1 to WRITES/2 of its patches resolved.
  await resolvedCount(victim, marks[victimIndex], 1 + pick(WRITES / 2))
  await victim.kill('SIGKILL')
  writing[victimIndex].catch(() => {}) // its reply never comes

  // What the victim saw accepted before it died.
  const victimResolved = victim.history.slice(marks[victimIndex]).filter((e) => e.event === 'resolved').map((e) => e.patch)
  const survivors = peers.filter((peer) => peer !== victim)
  const results = await Promise.all(writing.filter((_, i) => i !== victimIndex))
  for (const [i, result] of results.entries()) {
    if (Object.keys(result.rejected).length > 0) {
      throw new Error(`${survivors[i].describe()}: patches rejected: ${JSON.stringify(result.rejected)}`)
    }
    if (result.resolved.length !== WRITES) throw new Error(`${survivors[i].describe()}: ${result.resolved.length} of ${WRITES} resolved`)
    for (const id of result.resolved) mustHave.add(id)
    patchesResolved += result.resolved.length
  }
  patchesResolved += victimResolved.length

  const replacement = await newPeer()
  peers[victimIndex] = replacement
  for (const id of victimResolved) mustHave.add(id)
  const { patches } = await check(peers)
  return { victim: `killed ${victim.label} (${victimWasHost ? 'host' : 'client'})`, patches }
}

let survived = 0
let failure = null
const began = Date.now()
try {
  const peers = []
  for (let i = 0; i < PEERS; i++) peers.push(await newPeer())
  for (let number = 1; number <= ROUNDS; number++) {
    const { victim, patches } = await withTimeout(round(number, peers), ROUND_TIMEOUT_MS, `round ${number}`)
    survived++
    console.log(`round ${number}: ${victim}; ${patches} patches, replicas identical, each resolved patch once`)
  }
} catch (error) {
  failure = error
} finally {
  await cleanUp()
  fs.rmSync(tmp, { recursive: true, force: true })
}
const seconds = ((Date.now() - began) / 1000).toFixed(1)
console.log(`chaos: survived ${survived} of ${ROUNDS} rounds in ${seconds} s (seed ${SEED}); ${patchesResolved} patches resolved; ` +
  `${stops} stops of the host, ${replacedHosts} of them replaced`)
if (failure !== null) {
  console.error(`chaos: round ${survived + 1} failed: ${failure.stack ?? failure}`)
  process.exit(1)
}
