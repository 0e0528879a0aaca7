// Real Redis deployments for the tests, started by the tests themselves on loopback ports with
// persistence off (Debian's redis-server and redis-sentinel): a primary with replicas, watched by
// sentinels. Every process is killed when the test ends.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { once } from 'node:events'
import { withTimeout } from './peers.mjs'

/** Why Redis tests cannot run here, or null: they skip with this message. */
export function redisMissing () {
  for (const binary of ['redis-server', 'redis-sentinel']) {
    if (spawnSync(binary, ['--version']).error) return `${binary} is not installed (apt-get install redis-server redis-sentinel)`
  }
  return null
}

async function freePort () {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

/** Sends one command and resolves with the first chunk of the raw reply (PING, ROLE, INFO, SENTINEL). */
export async function command (port, ...args) {
  const socket = net.createConnection(port, '127.0.0.1')
  socket.on('error', () => {})
  try {
    await withTimeout(once(socket, 'connect'), 2000, `connecting to ${port}`)
    const request = `*${args.length}\r\n` + args.map((arg) => `$${Buffer.byteLength(String(arg))}\r\n${arg}\r\n`).join('')
    socket.write(request)
    const [reply] = await withTimeout(once(socket, 'data'), 2000, `${args[0]} on ${port}`)
    return reply.toString()
  } finally {
    socket.destroy()
  }
}

/** Until `port` answers PING; bounded. */
async function ready (port, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      // A server with a password answers NOAUTH: it is up.
      if (/^(\+PONG|-NOAUTH)/.test(await command(port, 'PING'))) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`redis on port ${port} did not answer PING within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

class RedisProcess {
  constructor (child, port, label) {
    this.child = child
    this.port = port
    this.label = label
    this.exited = once(child, 'exit')
    this.log = ''
    child.stdout.on('data', (chunk) => { this.log = (this.log + chunk).slice(-20000) })
  }

  kill (signal = 'SIGKILL') {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    return this.exited
  }
}

/**
 * A private directory for servers' files, and `start`, which starts a server that uses it. After
 * the test, every server started so is killed and has exited before the directory is removed: a
 * replica still writing its copy of the data into it would make the removal fail.
 */
function serverDirectory (t, prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  const started = []
  t.after(async () => {
    await Promise.all(started.map((server) => server.kill()))
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const start = (binary, args, port, label) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    started.push(new RedisProcess(child, port, label))
    return started[started.length - 1]
  }
  return { dir, start }
}

/** One redis-server on a free loopback port; resolves with its process (`.port`) and URL. */
export async function redisServer (t, { password } = {}) {
  const { dir, start } = serverDirectory(t, 'memsync-redis-')
  const port = await freePort()
  const auth = password === undefined ? [] : ['--requirepass', password]
  const server = start('redis-server', ['--port', port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...auth], port, 'redis')
  await ready(port)
  return { server, url: `redis://127.0.0.1:${port}` }
}

/**
 * A primary with `replicas` replicas and `sentinels` sentinels watching it as `master`
 * (down-after `downAfterMs`). Resolves once every replica is linked and every sentinel knows
 * the others, so a failover can happen at once.
 */
export async function sentinelDeployment (t, { replicas = 2, sentinels = 3, master = 'mymaster', downAfterMs = 1000 } = {}) {
  const { dir, start } = serverDirectory(t, 'memsync-redis-')
  const server = (port, label, extra = []) => start('redis-server', ['--port', port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], port, label)
  const primaryPort = await freePort()
  const primary = server(primaryPort, 'primary')
  await ready(primaryPort)
  const replicaProcesses = []
  for (let i = 0; i < replicas; i++) {
    const port = await freePort()
    replicaProcesses.push(server(port, `replica${i}`, ['--replicaof', '127.0.0.1', primaryPort]))
    await ready(port)
  }
  const sentinelProcesses = []
  for (let i = 0; i < sentinels; i++) {
    const port = await freePort()
    const config = path.join(dir, `sentinel${i}.conf`)
    fs.writeFileSync(config, [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${master} 127.0.0.1 ${primaryPort} ${Math.floor(sentinels / 2) + 1}`,
      `sentinel down-after-milliseconds ${master} ${downAfterMs}`,
      `sentinel failover-timeout ${master} ${Math.max(downAfterMs * 3, 3000)}`,
      `sentinel parallel-syncs ${master} 1`,
      ''
    ].join('\n'))
    sentinelProcesses.push(start('redis-sentinel', [config], port, `sentinel${i}`))
    await ready(port)
  }
  await waitFor(async () => {
    const info = await command(primaryPort, 'INFO', 'replication')
    // Online, not only connected: a replica still waiting for its first full sync (delayed 5 s by
    // default) has none of the data, and a failover to it would lose everything.
    return info.includes(`connected_slaves:${replicas}`) && (info.match(/state=online/g) ?? []).length === replicas
  }, 15000, `the ${replicas} replicas linked to the primary and in sync`)
  await waitFor(async () => {
    const counts = await Promise.all(sentinelProcesses.map((s) => command(s.port, 'SENTINEL', 'MASTER', master)))
    return counts.every((reply) => reply.includes(`num-other-sentinels\r\n$1\r\n${sentinels - 1}`))
  }, 15000, 'every sentinel knows the others')
  return { master, primary, replicas: replicaProcesses, sentinels: sentinelProcesses, url: `redis+sentinel://${sentinelProcesses.map((s) => `127.0.0.1:${s.port}`).join(',')}/${master}` }
}

/** Why TLS or Cluster tests cannot run here (they need openssl and redis-cli too), or null. */
export function redisToolsMissing () {
  for (const [binary, flag, from] of [['openssl', 'version', 'openssl'], ['redis-cli', '--version', 'redis-tools']]) {
    if (spawnSync(binary, [flag]).error) return `${binary} is not installed (apt-get install ${from})`
  }
  return redisMissing()
}

function openssl (dir, ...args) {
  const { status, stderr } = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
  if (status !== 0) throw new Error(`openssl ${args.join(' ')}: ${stderr}`)
}

/**
 * A CA (`<label>-ca.pem`) in `dir`, and certificates it signs for 127.0.0.1: `<label>-server.pem`
 * and `<label>-client.pem`, with their keys (`.key`). Resolves with the paths.
 */
export function certificates (dir, label) {
  const file = (name) => path.join(dir, `${label}-${name}`)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl(dir, 'req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', `/CN=memsync test CA ${label}`)
  fs.writeFileSync(file('ext'), 'subjectAltName=IP:127.0.0.1\n')
  const sign = (name) => {
    openssl(dir, 'req', ...ec, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=memsync test ${name}`)
    openssl(dir, 'x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '2', '-extfile', file('ext'))
  }
  sign('server')
  sign('client')
  return {
    ca: file('ca.pem'),
    server: { cert: file('server.pem'), key: file('server.key') },
    client: { cert: file('client.pem'), key: file('client.key') }
  }
}

/**
 * One redis-server that speaks only TLS (its plain port off; `protocols` as its tls-protocols),
 * with a certificate of a CA made for the test; it asks clients for a certificate of that CA too
 * (Redis's default). Resolves with its process, the certificates' paths and the directory they
 * are in.
 */
export async function tlsRedisServer (t, { protocols = 'TLSv1.2 TLSv1.3' } = {}) {
  const { dir, start } = serverDirectory(t, 'memsync-redis-tls-')
  const certs = certificates(dir, 'test')
  const port = await freePort()
  const server = start('redis-server', [
    '--port', '0', '--tls-port', port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
    '--tls-cert-file', certs.server.cert, '--tls-key-file', certs.server.key, '--tls-ca-cert-file', certs.ca,
    '--tls-protocols', protocols
  ], port, 'redis-tls')
  // No plain port to PING: the server's own log says when it listens.
  await waitFor(() => server.log.includes('Ready to accept connections'), 10000, `the TLS redis-server on ${port}`)
  return { server, certs, dir }
}

/**
 * A Redis Cluster of `masters` primaries with `replicas` replicas each, on loopback ports (the
 * cluster bus on ports of its own, so no port + 10000 overflows), made with
 * `redis-cli --cluster create`. Resolves once every node reports `cluster_state:ok` and every
 * replica is in sync, with the processes (`.port`) and the `redis+cluster://` URL of the primaries.
 */
export async function clusterDeployment (t, { masters = 3, replicas = 0, nodeTimeoutMs = 1000 } = {}) {
  const { dir, start } = serverDirectory(t, 'memsync-redis-cluster-')
  const nodes = []
  for (let i = 0; i < masters * (1 + replicas); i++) {
    const port = await freePort()
    const bus = await freePort()
    nodes.push(start('redis-server', [
      '--port', port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
      '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${port}.conf`),
      '--cluster-port', bus, '--cluster-node-timeout', nodeTimeoutMs
    ], port, `node${i}`))
  }
  for (const node of nodes) await ready(node.port)
  // The first `masters` nodes become the primaries: redis-cli --cluster create lists them first.
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8' })
  if (created.status !== 0) throw new Error(`redis-cli --cluster create: ${created.stdout}${created.stderr}`)
  await waitFor(async () => {
    const infos = await Promise.all(nodes.map((node) => command(node.port, 'CLUSTER', 'INFO')))
    return infos.every((info) => info.includes('cluster_state:ok'))
  }, 20000, 'cluster_state:ok on every node')
  if (replicas > 0) {
    await waitFor(async () => {
      const infos = await Promise.all(nodes.map((node) => command(node.port, 'INFO', 'replication')))
      const synced = infos.filter((info) => info.includes('role:slave') && info.includes('master_link_status:up') && info.includes('master_sync_in_progress:0'))
      return synced.length === masters * replicas
    }, 20000, 'every replica in sync with its primary')
  }
  const primaries = []
  for (const node of nodes) {
    if ((await command(node.port, 'ROLE')).startsWith('*3\r\n$6\r\nmaster')) primaries.push(node)
  }
  return { nodes, primaries, url: `redis+cluster://${primaries.map((node) => `127.0.0.1:${node.port}`).join(',')}` }
}

/** The node of `nodes` that serves `key` (the others answer MOVED), or undefined. */
export async function ownerOf (nodes, key) {
  for (const node of nodes) {
    try {
      if ((await command(node.port, 'EXISTS', key)).startsWith(':')) return node
    } catch {}
  }
  return undefined
}

/** The port of the primary the sentinel at `port` names for `master`. */
export async function primaryPortOf (port, master) {
  const reply = await command(port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', master)
  const parts = reply.split('\r\n')
  return Number(parts[4])
}

/** Until `check()` resolves true, polling every 50 ms; bounded by `timeoutMs`. */
export async function waitFor (check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if (await check()) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
