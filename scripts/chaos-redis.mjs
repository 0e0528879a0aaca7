// Chaos against Redis (issue 17): three "machines" (rendezvous directories) of two writing
// processes each share one object through a Sentinel deployment (a primary, two replicas, three
// sentinels, down-after 1,000 ms). Each round injects one fault, chosen by the seeded generator:
//
//   killPrimary       kill -9 of the primary; restarted as a replica once another is promoted
//   stopPrimary       SIGSTOP of the primary past down-after, then SIGCONT
//   pausePrimary      CLIENT PAUSE <ms> WRITE on the primary
//   sentinelFailover  SENTINEL FAILOVER
//   partition         machine C cut from Redis (blackhole, half-open or long delay), then healed
//   killBridge        kill -9 of a machine's local host (its bridge); a fresh process replaces it
//   killClient        kill -9 of a machine's client; a fresh process replaces it
//
// Machine C reaches Redis as plain redis:// through a fault proxy, itself in front of a forwarder
// that connects each new connection to the primary the sentinels name (a virtual IP that follows
// failovers); A and B use redis+sentinel://. Each writer pushes unique ids `<origin>:<seq>` and
// counts them (fixtures/redis-writer.mjs); the runner records every outcome as it is reported.
// After each round the writers pause, the deployment is healthy again, all replicas converge and
// the history checker (__test__/support/history.mjs) runs on the whole run so far. The first
// failed round ends the run with its report and a non-zero exit.
//
//   npm run chaos -- --redis [--rounds 50] [--durability replicated|default] [--seed <n>]
//                            [--faults killPrimary,partition,...]
//
// `--durability default` passes no `durability` option (the library's default); the checker then
// counts acknowledged patches that are missing as losses instead of failing on them.
import { fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { checkHistory, formatReport } from '../__test__/support/history.mjs'
import { FaultProxy } from '../__test__/support/fault-proxy.mjs'
import { Peer, converge, rendezvousDir, withTimeout } from '../__test__/support/peers.mjs'
import { command, primaryPortOf, redisMissing, sentinelDeployment, waitFor } from '../__test__/support/redis.mjs'

const WRITER = fileURLToPath(new URL('../__test__/fixtures/redis-writer.mjs', import.meta.url))
const FAULTS = ['killPrimary', 'stopPrimary', 'pausePrimary', 'sentinelFailover', 'partition', 'killBridge', 'killClient']
const DOWN_AFTER_MS = 1000
const MACHINES = ['A', 'B', 'C']
const PROCESSES_PER_MACHINE = 2
// Patches a writer keeps in flight, and its pace: about 100 patches/s each.
const WINDOW = 4
const INTERVAL_MS = 10
// A patch no bridge settles within this rejects with ERR_TIMEOUT (an unknown outcome), so that
// a pause ends.
const PATCH_TIMEOUT_MS = 10000
// Patches each writer must see acknowledged before the fault, and after it.
const BEFORE_FAULT = 20
const AFTER_FAULT = 10
const RESUME_MS = 20000
const HEALTHY_MS = 30000
const CONVERGE_MS = 30000

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** mulberry32, as in scripts/chaos.mjs: a failing run replays with --seed. */
function generator (seed) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Listens on a loopback port and connects each connection to the primary the sentinel at
 * `sentinelPort` names at that moment; a connection whose primary goes away is closed with it.
 */
async function primaryForwarder (sentinelPort, master) {
  const sockets = new Set()
  const server = net.createServer(async (client) => {
    sockets.add(client)
    client.on('error', () => {})
    client.on('close', () => sockets.delete(client))
    client.pause()
    const port = await primaryPortOf(sentinelPort, master).catch(() => null)
    if (port === null || client.destroyed) {
      client.destroy()
      return
    }
    const upstream = net.createConnection(port, '127.0.0.1')
    sockets.add(upstream)
    upstream.on('error', () => {})
    for (const [from, to] of [[client, upstream], [upstream, client]]) {
      from.on('close', () => {
        sockets.delete(from)
        to.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
    client.resume()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: server.address().port,
    async close () {
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close')
    }
  }
}

/** Runs the rounds with `argv` (the options above); resolves with the exit code. */
export async function run (argv) {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '50' },
      durability: { type: 'string', default: 'replicated' },
      seed: { type: 'string', default: String(Date.now() % 1e9) },
      faults: { type: 'string', default: FAULTS.join(',') }
    }
  })
  const rounds = Number(args.rounds)
  const seed = Number(args.seed)
  const durability = args.durability
  const faults = args.faults.split(',')
  if (!['replicated', 'default'].includes(durability)) throw new Error(`--durability must be replicated or default, not ${durability}`)
  const unknownFault = faults.find((fault) => !FAULTS.includes(fault))
  if (unknownFault !== undefined) throw new Error(`unknown fault ${unknownFault}; the faults are ${FAULTS.join(', ')}`)
  const missing = redisMissing()
  if (missing !== null) throw new Error(missing)

  const random = generator(seed)
  const pick = (items) => items[Math.floor(random() * items.length)]
  const between = (low, high) => low + Math.floor(random() * (high - low))

  // The support modules register cleanups with a test context; this run is its own.
  const cleanups = []
  const context = { after: (fn) => cleanups.push(fn) }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-chaos-redis-'))
  cleanups.push(() => fs.rmSync(tmp, { recursive: true, force: true }))

  const name = `chaos-redis-${process.pid}`
  /** Every outcome recorded, by id; and the origins whose writer was killed. */
  const outcomes = new Map()
  const killed = new Set()
  let writers = []
  let incarnations = 0
  let deployment
  let machines
  /** The redis-server processes by port: the deployment's, then the restarted ones. */
  const servers = new Map()

  const sentinelPorts = () => deployment.sentinels.map((sentinel) => sentinel.port)

  /** The primary every sentinel names, or null while they disagree. */
  async function agreedPrimary () {
    const named = await Promise.all(sentinelPorts().map((port) => primaryPortOf(port, deployment.master)))
    return named.every((port) => port === named[0]) ? named[0] : null
  }

  /**
   * Ready for the next fault: every sentinel names one primary, sees no failover in progress and
   * two replicas up, and the primary has both replicas online.
   */
  async function healthy () {
    const primary = await agreedPrimary()
    if (primary === null || !(await command(primary, 'ROLE')).startsWith('*3\r\n$6\r\nmaster')) return false
    const info = await command(primary, 'INFO', 'replication')
    if (!info.includes('connected_slaves:2') || (info.match(/state=online/g) ?? []).length !== 2) return false
    for (const port of sentinelPorts()) {
      if (!(await command(port, 'SENTINEL', 'MASTER', deployment.master)).includes('$5\r\nflags\r\n$6\r\nmaster\r\n')) return false
      const replicas = await command(port, 'SENTINEL', 'REPLICAS', deployment.master)
      if ((replicas.match(/\$5\r\nflags\r\n\$5\r\nslave\r\n/g) ?? []).length !== 2) return false
    }
    return true
  }
  const becomeHealthy = () => waitFor(healthy, HEALTHY_MS, 'the deployment healthy: one primary named by every sentinel, two replicas online')

  /** Until every sentinel names a primary other than `old`; resolves with its port. */
  async function promotedFrom (old) {
    let promoted = null
    await waitFor(async () => {
      promoted = await agreedPrimary()
      return promoted !== null && promoted !== old
    }, HEALTHY_MS, `the sentinels to promote a replica of :${old}`)
    return promoted
  }

  /** A redis-server on `port` (a killed one's) that starts as a replica of `primary`. */
  function restartAsReplica (port, primary) {
    const dir = fs.mkdtempSync(path.join(tmp, 'redis-'))
    const child = spawn('redis-server', ['--port', port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
      '--replicaof', '127.0.0.1', primary], { stdio: 'ignore' })
    const exited = once(child, 'exit')
    const server = {
      port,
      child,
      kill () {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        return exited
      }
    }
    cleanups.push(() => server.kill())
    servers.set(port, server)
  }

  /** Each server's role and the length of the object's log there: where a divergence came from. */
  async function describeServers () {
    const lines = []
    for (const port of servers.keys()) {
      try {
        const role = (await command(port, 'ROLE')).split('\r\n')[2]
        const length = (await command(port, 'XLEN', `{ms:${name}}:log`)).trim()
        const head = (await command(port, 'HGET', `{ms:${name}}:head`, 'version')).split('\r\n')[1]
        const first = (await command(port, 'XRANGE', `{ms:${name}}:log`, '-', '+', 'COUNT', '2')).split('\r\n').filter((part) => /^0-\d+$|^\d+$/.test(part)).join(' ')
        lines.push(`redis :${port} ${role}, log length ${length.slice(1)}, head ${head}, first entries ${first}`)
      } catch (error) {
        lines.push(`redis :${port} does not answer (${error.message})`)
      }
    }
    return lines.join('\n')
  }

  /** A fresh writer on `machine`, started (not writing yet). */
  async function spawnWriter (machine) {
    const origin = `w${incarnations++}`
    const options = { dir: machine.dir, transport: machine.transport, timeout: PATCH_TIMEOUT_MS, ...(durability === 'replicated' ? { durability } : {}) }
    const child = fork(WRITER, [name, origin, JSON.stringify({ data: { log: [], n: 0 }, options })], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    const peer = new Peer(child, `${machine.label}/${origin}`)
    cleanups.push(() => peer.kill())
    peer.on('peer-event', (message) => {
      if (message.event !== 'outcome') return
      const id = `${origin}:${message.seq}`
      outcomes.set(id, { id, status: message.status, code: message.code })
    })
    await Promise.race([
      peer.waitEvent('ready', { timeoutMs: 10000 }),
      peer.exit.then(() => { throw new Error(`${peer.describe()} exited before it was ready${peer.stderrTail()}`) })
    ])
    await peer.request('start', {}, 20000)
    return { machine, origin, peer }
  }

  /** Resolves once each of `some` has reported `count` more acknowledged patches. */
  async function acknowledged (some, count, timeoutMs, what) {
    const listeners = []
    const seen = some.map(() => ({ ok: 0, rejected: {} }))
    const all = Promise.all(some.map(({ peer }, i) => new Promise((resolve) => {
      const listener = (message) => {
        if (message.event !== 'outcome') return
        if (message.status !== 'ok') seen[i].rejected[message.code] = (seen[i].rejected[message.code] ?? 0) + 1
        else if (++seen[i].ok === count) resolve()
      }
      peer.on('peer-event', listener)
      listeners.push(() => peer.off('peer-event', listener))
    })))
    try {
      await withTimeout(all, timeoutMs, what)
    } catch (error) {
      error.message += `; acknowledged of ${count}: ${some.map(({ peer }, i) => `${peer.label} ${seen[i].ok} (rejected: ${JSON.stringify(seen[i].rejected)})`).join(', ')}`
      throw error
    } finally {
      for (const off of listeners) off()
    }
  }

  const write = (writer) => writer.peer.request('write', { window: WINDOW, intervalMs: INTERVAL_MS })

  /** kill -9 of a writer with role `role` (on any machine); a fresh one on its machine takes its place and writes. */
  async function killWriter (role) {
    const statuses = await Promise.all(writers.map((writer) => writer.peer.request('status')))
    const victims = writers.filter((_, i) => statuses[i].status === role)
    if (victims.length === 0) throw new Error(`no writer is ${role}: ${writers.map((w, i) => `${w.peer.label} ${statuses[i].status}`).join(', ')}`)
    const victim = pick(victims)
    await victim.peer.kill()
    killed.add(victim.origin)
    const replacement = await spawnWriter(victim.machine)
    writers = writers.map((writer) => writer === victim ? replacement : writer)
    await write(replacement)
    return `kill -9 of ${victim.peer.label} (${role === 'host' ? 'bridge' : 'client'}), replaced by ${replacement.peer.label}`
  }

  /** Each fault: injects it, waits for its end and repairs what it broke; resolves with a description. */
  const inject = {
    async killPrimary () {
      const old = await agreedPrimary()
      await servers.get(old).kill()
      const promoted = await promotedFrom(old)
      restartAsReplica(old, promoted)
      return `kill -9 of the primary :${old}; :${promoted} promoted, :${old} back as its replica`
    },
    async stopPrimary () {
      const primary = await agreedPrimary()
      const ms = between(DOWN_AFTER_MS * 1.5, DOWN_AFTER_MS * 4)
      const { child } = servers.get(primary)
      child.kill('SIGSTOP')
      // The fault's duration, not a wait for an event.
      await sleep(ms)
      child.kill('SIGCONT')
      return `SIGSTOP of the primary :${primary} for ${ms} ms`
    },
    async pausePrimary () {
      const primary = await agreedPrimary()
      const ms = between(200, 800)
      const reply = await command(primary, 'CLIENT', 'PAUSE', ms, 'WRITE')
      if (!reply.startsWith('+OK')) throw new Error(`CLIENT PAUSE on :${primary}: ${reply.trim()}`)
      await sleep(ms)
      return `CLIENT PAUSE ${ms} WRITE on the primary :${primary}`
    },
    async sentinelFailover () {
      const old = await agreedPrimary()
      const sentinel = pick(sentinelPorts())
      // A sentinel may not know a replica good enough yet right after the last failover.
      await waitFor(async () => (await command(sentinel, 'SENTINEL', 'FAILOVER', deployment.master)).startsWith('+OK'),
        HEALTHY_MS, `SENTINEL FAILOVER accepted by :${sentinel}`)
      const promoted = await promotedFrom(old)
      return `SENTINEL FAILOVER: :${promoted} replaces :${old}`
    },
    async partition () {
      const { proxy } = machines.find((machine) => machine.proxy !== undefined)
      const ms = between(1000, 3000)
      const variant = pick(['blackhole', 'half-open up', 'half-open down', 'delay'])
      if (variant === 'blackhole') proxy.set({ up: 'blackhole', down: 'blackhole' })
      if (variant === 'half-open up') proxy.set({ up: 'blackhole' })
      if (variant === 'half-open down') proxy.set({ down: 'blackhole' })
      if (variant === 'delay') proxy.set({ up: { delayMs: ms }, down: { delayMs: ms } })
      await sleep(ms)
      // Dropped bytes leave a connection's stream cut mid-reply: it ends, as after a TCP timeout.
      // Delayed ones all arrive, as after a partition that heals in time.
      if (variant !== 'delay') proxy.reset()
      proxy.heal()
      return `partition of machine C from Redis (${variant}, ${ms} ms)`
    },
    killBridge: () => killWriter('host'),
    killClient: () => killWriter('client')
  }

  const began = Date.now()
  let survived = 0
  let report = null
  let failure = null
  const totals = { lost: 0 }
  try {
    deployment = await sentinelDeployment(context, { downAfterMs: DOWN_AFTER_MS })
    for (const server of [deployment.primary, ...deployment.replicas]) servers.set(server.port, server)
    const forwarder = await primaryForwarder(deployment.sentinels[0].port, deployment.master)
    cleanups.push(() => forwarder.close())
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: forwarder.port })
    cleanups.push(() => proxy.close())
    machines = MACHINES.map((label) => label === 'C'
      ? { label, dir: rendezvousDir(context), transport: `redis://127.0.0.1:${proxy.port}`, proxy }
      : { label, dir: rendezvousDir(context), transport: deployment.url })
    for (const machine of machines) {
      for (let i = 0; i < PROCESSES_PER_MACHINE; i++) writers.push(await spawnWriter(machine))
    }
    console.log(`chaos-redis: seed ${seed}, durability ${durability}, ${machines.length} machines of ${PROCESSES_PER_MACHINE} writers, faults ${faults.join(',')}`)

    for (let number = 1; number <= rounds; number++) {
      const fault = pick(faults)
      let description = fault
      try {
        await becomeHealthy()
        await Promise.all(writers.map(write))
        await acknowledged(writers, BEFORE_FAULT, RESUME_MS, 'every writer acknowledged before the fault')
        const injected = Date.now()
        description = await inject[fault]()
        await acknowledged(writers, AFTER_FAULT, RESUME_MS, `every writer acknowledged after the fault (${description})`)
        const resumedMs = Date.now() - injected
        await Promise.all(writers.map((writer) => writer.peer.request('pause', {}, PATCH_TIMEOUT_MS + 5000)))
        await becomeHealthy()
        const peers = writers.map((writer) => writer.peer)
        // Replicas that never converge are checked as they are: the report shows how they differ.
        let converged = true
        const states = await converge(peers, { timeoutMs: CONVERGE_MS }).catch(() => {
          converged = false
          return Promise.all(peers.map((peer) => peer.request('state')))
        })
        report = checkHistory({
          durability,
          outcomes: [...outcomes.values()],
          killed: [...killed],
          replicas: states.map((state, i) => ({ label: peers[i].label, data: state.data, version: state.version }))
        })
        if (!converged) throw new Error(`the replicas did not converge within ${CONVERGE_MS} ms:\n${formatReport(report)}\n${await describeServers()}`)
        if (!report.ok) throw new Error(`the history checker failed:\n${formatReport(report)}`)
        const newlyLost = report.counts.lost - totals.lost
        totals.lost = report.counts.lost
        console.log(`round ${number}: ${description}; every writer acknowledged again ${resumedMs} ms after it began; ` +
          `${report.counts.entries} ids, ${report.counts.unknown} unknown${durability === 'default' ? `, ${newlyLost} acknowledged lost` : ''}`)
        survived++
      } catch (error) {
        error.message = `round ${number} (${description}): ${error.message}`
        throw error
      }
    }
  } catch (error) {
    failure = error
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn()
      } catch {
        // Already gone.
      }
    }
  }
  const seconds = ((Date.now() - began) / 1000).toFixed(1)
  const counts = report?.counts
  console.log(`chaos-redis: survived ${survived} of ${rounds} rounds in ${seconds} s (seed ${seed}, durability ${durability}); ` +
    (counts === undefined
      ? 'no round checked'
      : `${counts.entries} ids at version ${counts.version}, ${counts.ok} acknowledged, ${counts.lost} of them lost, ${counts.rejected} rejected, ${counts.unknown} unknown`))
  if (failure !== null) {
    const tails = writers.filter(({ peer }) => peer.stderr !== '').map(({ peer }) => `--- ${peer.describe()} stderr ---\n${peer.stderr}`)
    console.error(`chaos-redis: ${failure.stack ?? failure}${tails.length > 0 ? '\n' + tails.join('\n') : ''}`)
    return 1
  }
  return 0
}
