// Redis beside memsync, in the same run: a redis-server of this machine (Debian's package),
// started on a free loopback port with persistence off and stopped after, and clients in their own
// processes (fixtures/redis-peer.mjs, ioredis) running memsync's workloads: pub/sub propagation
// latency and end-to-end throughput, and a HINCRBY round trip.
import { spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort } from '../__test__/support/services.mjs'
import { killAll, spawnPeer, track } from './children.mjs'
import { withTimeout } from './measure.mjs'
import { driveThroughput, pingPong, roundTrips } from './workloads.mjs'

const FIXTURE = fileURLToPath(new URL('fixtures/redis-peer.mjs', import.meta.url))

/** redis-server's version, or null when it is not on PATH. */
export function redisVersion () {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8', timeout: 10000 })
  if (probe.error !== undefined || probe.status !== 0) return null
  return /v=(\S+)/.exec(probe.stdout)?.[1] ?? probe.stdout.trim()
}

// With setpriv (util-linux), redis-server gets SIGKILL as soon as this process dies, even by
// SIGKILL, which no exit handler sees: the bench never leaves a server behind.
const deathSignal = spawnSync('setpriv', ['--version']).status === 0 ? ['setpriv', '--pdeathsig', 'KILL', '--'] : []

/**
 * Starts redis-server on a free loopback port, persistence off, in `dir`; resolves once it
 * accepts connections, with `{ port, stop() }`.
 */
export async function startRedis (dir) {
  const port = await freePort()
  const command = [...deathSignal, 'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
  const server = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = track(server)
  let output = ''
  const ready = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output = (output + chunk).slice(-4000)
      if (output.includes('Ready to accept connections')) resolve()
    }
    server.stdout.on('data', onData)
    server.stderr.on('data', onData)
    server.on('error', reject)
    exited.then(({ code, signal }) => reject(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${output}`)))
  })
  try {
    await withTimeout(ready, 10000, `redis-server on port ${port} never said it was ready:\n${output}`)
  } catch (error) {
    server.kill('SIGKILL')
    throw error
  }
  return {
    port,
    async stop () {
      server.kill('SIGTERM')
      await withTimeout(exited, 5000, 'redis-server did not stop after SIGTERM').catch(() => {
        server.kill('SIGKILL')
        return withTimeout(exited, 5000, 'redis-server did not exit after SIGKILL')
      })
    }
  }
}

const spawnClient = (redis, label) => spawnPeer(FIXTURE, [String(redis.port)], label)

/** Pub/sub propagation: client A publishes, client B (subscribed) echoes, through the server. */
export async function benchRedisLatency (redis, settings) {
  const peers = []
  try {
    peers.push(await spawnClient(redis, 'redis A'), await spawnClient(redis, 'redis B'))
    return await pingPong(peers[0], peers[1], settings)
  } finally {
    await killAll(peers)
  }
}

/** HINCRBY one after the other: the counterpart of a memsync client's `await patch($inc)`. */
export async function benchRedisRoundTrip (redis, settings) {
  const peers = []
  try {
    peers.push(await spawnClient(redis, 'redis HINCRBY'))
    return await roundTrips(peers[0], 'hincrby', settings)
  } finally {
    await killAll(peers)
  }
}

/** Pub/sub throughput with 1, 2 and 4 publishers, each also subscribed, and one more subscriber. */
export async function benchRedisThroughput (redis, settings) {
  const rows = []
  for (const count of settings.writers) {
    const peers = []
    try {
      const observer = await spawnClient(redis, `redis observer (${count}w)`)
      peers.push(observer)
      for (let w = 0; w < count; w++) peers.push(await spawnClient(redis, `redis writer ${w} (${count}w)`))
      // Everyone subscribes before anyone publishes: pub/sub drops what nobody listens to.
      await Promise.all(peers.map((p) => p.request('counter')))
      const result = await driveThroughput([observer], peers.slice(1), settings)
      const counts = await Promise.all(peers.map((p) => p.request('count')))
      if (counts.some((c) => c.n !== result.total)) {
        throw new Error(`redis throughput with ${count} writers: expected ${result.total} messages everywhere, got ${counts.map((c) => c.n)}`)
      }
      rows.push({ writers: count, processes: count + 1, ...result })
    } finally {
      await killAll(peers)
    }
  }
  return rows
}
