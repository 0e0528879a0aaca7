// The Redis transport over TLS (rediss://): a redis-server that speaks only TLS, with
// certificates of a CA made by the test (openssl), and machines (each its own rendezvous
// directory) that trust that CA and present a client certificate of it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { converge, rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'
import { certificates, redisToolsMissing, tlsRedisServer, waitFor } from './support/redis.mjs'
import { runCli } from './support/services.mjs'
import { MemSync } from '../index.js'

const missing = redisToolsMissing()

/**
 * A rediss:// URL of the server on `port`, trusting `ca` and presenting `client`; temporary paths
 * need no percent-encoding, so it reads as memsync shows it.
 */
const rediss = (port, ca, client, password = '') =>
  `rediss://${password && `:${password}@`}127.0.0.1:${port}?ca=${ca}&cert=${client.cert}&key=${client.key}`

test('two machines share one object through a Redis that speaks only TLS, trusting a private CA with a client certificate; the memsync command reaches it too', { skip: missing ?? false, timeout: 60000 }, async (t) => {
  const { server, certs } = await tlsRedisServer(t)
  const url = rediss(server.port, certs.ca, certs.client)
  const name = uniqueName('tls')
  const config = { data: { n: 0, by: [] }, options: { transport: url } }
  const a = await spawnPeer(t, name, rendezvousDir(t), config, 'a')
  // The same as an object, in ioredis's spirit.
  const tls = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key }
  const b = await spawnPeer(t, name, rendezvousDir(t), { ...config, options: { transport: { host: '127.0.0.1', port: server.port, tls } } }, 'b')
  assert.equal((await a.request('start')).role, 'host')
  assert.equal((await b.request('start')).role, 'host')
  for (let i = 0; i < 10; i++) {
    for (const [peer, who] of [[a, 'a'], [b, 'b']]) {
      assert.deepEqual(await peer.request('patch', { update: { $inc: { n: 1 }, $push: { by: `${who}:${i}` } } }), { ok: true })
    }
  }
  const [state] = await converge([a, b])
  assert.equal(state.data.n, 20)
  assert.equal(state.version, 20)

  const cli = async (...args) => {
    const result = await runCli(args)
    assert.equal(result.code, 0, result.stderr)
    return JSON.parse(result.stdout)
  }
  const { machines, ...status } = await cli('status', '--transport', url, name)
  assert.deepEqual(status, { name, transport: url, version: 20, logEntries: 20, snapshotVersion: null })
  assert.deepEqual(machines.flatMap((m) => m.pids).sort(), [a.pid, b.pid].sort(), 'both machines present')
  assert.deepEqual(await cli('patch', '--transport', url, name, '{"$inc":{"n":10}}'), { name, version: 21 })
  await waitFor(async () => (await a.request('state')).data.n === 30, 10000, 'the patch of the command line on machine a')
})

test('a server that offers only TLS 1.2 is reached too', { skip: missing ?? false, timeout: 30000 }, async (t) => {
  const { server, certs } = await tlsRedisServer(t, { protocols: 'TLSv1.2' })
  const mem = new MemSync(uniqueName('tls12'), { n: 1 }, { dir: rendezvousDir(t), transport: rediss(server.port, certs.ca, certs.client), timeout: 10000 })
  t.after(() => mem.stop())
  await mem.start()
  await mem.patch({ $inc: { n: 1 } })
  assert.deepEqual(mem.data, { n: 2 })
})

test('a server certificate of a CA the machine does not trust, no client certificate for a server that checks clients, or a missing certificate file, rejects start() with ERR_TRANSPORT saying why, without the password', { skip: missing ?? false, timeout: 60000 }, async (t) => {
  const { server, certs, dir } = await tlsRedisServer(t)
  const stranger = certificates(dir, 'stranger')
  const refused = async (url) => {
    const mem = new MemSync(uniqueName('untrusted'), {}, { dir: rendezvousDir(t), transport: url, timeout: 10000 })
    t.after(() => mem.stop())
    const error = await mem.start().then(() => null, (error) => error)
    assert.equal(error?.code, 'ERR_TRANSPORT', String(error))
    assert.doesNotMatch(error.message, /hunter2/)
    assert.match(error.message, new RegExp(`rediss://:\\*\\*\\*@127\\.0\\.0\\.1:${server.port}`))
    return error.message
  }
  // The machine trusts only the stranger CA: the server's certificate is not one of its.
  const untrusted = await refused(rediss(server.port, stranger.ca, certs.client, 'hunter2'))
  assert.match(untrusted, /TLS: .*certificate.*UnknownIssuer/, untrusted)
  // Nor does the system's store (no ?ca=) know the test's CA.
  const system = await refused(`rediss://:hunter2@127.0.0.1:${server.port}`)
  assert.match(system, /UnknownIssuer \(a private CA is trusted with \?ca=<file>\)/, system)
  // The server asks for a client certificate (Redis's tls-auth-clients) and none is presented.
  const anonymous = await refused(`rediss://:hunter2@127.0.0.1:${server.port}?ca=${certs.ca}`)
  assert.match(anonymous, /TLS: .*CertificateRequired \(the server checks clients/, anonymous)
  const missingFile = await refused(rediss(server.port, `${dir}/no-such-ca.pem`, certs.client, 'hunter2'))
  assert.match(missingFile, /cannot read the CA file .*no-such-ca\.pem/, missingFile)

  const bad = await runCli(['status', '--transport', rediss(server.port, stranger.ca, certs.client), 'x'])
  assert.equal(bad.code, 1, bad.stderr)
  assert.match(bad.stderr, /UnknownIssuer/)
})
