// One object across "machines" (each its own rendezvous directory) through a real redis-server:
// each machine's host bridges its processes to the log: patches, durability, the CLI, the services.
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { converge, rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'
import { command, redisMissing, redisServer, sentinelDeployment, waitFor } from './support/redis.mjs'
import { dataDir, freePort, runCli, waitForFile } from './support/services.mjs'
import { MemSync } from '../index.js'

const require = createRequire(import.meta.url)

const missing = redisMissing()

test('processes on two machines share one object through Redis, clients of each bridge included', { skip: missing ?? false, timeout: 60000 }, async (t) => {
  const { url } = await redisServer(t)
  const name = uniqueName('across')
  const machineA = rendezvousDir(t)
  const machineB = rendezvousDir(t)
  const config = { data: { n: 0, by: [] }, options: { transport: url } }
  const a = await spawnPeer(t, name, machineA, config, 'a-host')
  assert.equal((await a.request('start')).role, 'host')
  const a2 = await spawnPeer(t, name, machineA, config, 'a-client')
  assert.equal((await a2.request('start')).role, 'client')
  // The same Redis as an object, in ioredis's spirit.
  const { port } = new URL(url)
  const b = await spawnPeer(t, name, machineB, { data: { other: true }, options: { transport: { host: '127.0.0.1', port: Number(port) } } }, 'b-host')
  assert.equal((await b.request('start')).role, 'host')
  for (let i = 0; i < 20; i++) {
    for (const [peer, who] of [[a, 'a'], [a2, 'a2'], [b, 'b']]) {
      assert.deepEqual(await peer.request('patch', { update: { $inc: { n: 1 }, $push: { by: `${who}:${i}` } } }), { ok: true })
    }
  }
  const [state] = await converge([a, a2, b])
  assert.equal(state.data.n, 60)
  assert.equal(state.version, 60)
  assert.equal(state.data.other, undefined, 'the second machine took the object the first one started')
  for (const who of ['a', 'a2', 'b']) {
    const mine = state.data.by.filter((entry) => entry.split(':')[0] === who)
    assert.deepEqual(mine, Array.from({ length: 20 }, (_, i) => `${who}:${i}`), `${who}'s patches in its order`)
  }
})

test('a transport URL that is not one throws ERR_INVALID_ARG; an unreachable Redis rejects start() with ERR_TRANSPORT, without the password', { timeout: 30000 }, async (t) => {
  assert.throws(() => new MemSync(uniqueName('bad'), {}, { transport: 'memcached://x' }), { code: 'ERR_INVALID_ARG', message: /unknown scheme 'memcached'/ })
  assert.throws(() => new MemSync(uniqueName('bad'), {}, { transport: 42 }), { code: 'ERR_INVALID_ARG' })
  const mem = new MemSync(uniqueName('unreachable'), {}, { dir: rendezvousDir(t), transport: 'redis://:hunter2@127.0.0.1:1', timeout: 10000 })
  t.after(() => mem.stop())
  const error = await mem.start().then(() => null, (error) => error)
  assert.equal(error?.code, 'ERR_TRANSPORT', String(error))
  assert.match(error.message, /redis:\/\/:\*\*\*@127\.0\.0\.1:1/)
  assert.doesNotMatch(error.message, /hunter2/)
})

test('a wrong password rejects start() with ERR_TRANSPORT, saying so without the password; the right one shares the object', { skip: missing ?? false, timeout: 30000 }, async (t) => {
  const { server } = await redisServer(t, { password: 's3cret' })
  const name = uniqueName('auth')
  const wrong = new MemSync(name, {}, { dir: rendezvousDir(t), transport: `redis://:hunter2@127.0.0.1:${server.port}`, timeout: 10000 })
  t.after(() => wrong.stop())
  const error = await wrong.start().then(() => null, (error) => error)
  assert.equal(error?.code, 'ERR_TRANSPORT', String(error))
  assert.match(error.message, /authentication failed/i)
  assert.doesNotMatch(error.message, /hunter2/)
  const right = new MemSync(name, { n: 1 }, { dir: rendezvousDir(t), transport: { host: '127.0.0.1', port: server.port, password: 's3cret' }, timeout: 10000 })
  t.after(() => right.stop())
  assert.equal(await right.start(), 'host')
  await right.patch({ $inc: { n: 1 } })
  assert.equal(right.data.n, 2)
})

test('keys of the object holding foreign data, or written by another log protocol, are refused at start() and left as they were', { skip: missing ?? false, timeout: 30000 }, async (t) => {
  const { server } = await redisServer(t)
  const foreign = uniqueName('foreign')
  await command(server.port, 'SET', `{ms:${foreign}}:log`, 'not ours')
  const mem = new MemSync(foreign, {}, { dir: rendezvousDir(t), transport: `redis://127.0.0.1:${server.port}`, timeout: 10000 })
  t.after(() => mem.stop())
  const error = await mem.start().then(() => null, (error) => error)
  assert.equal(error?.code, 'ERR_TRANSPORT', String(error))
  assert.match(error.message, /holds a string, not the stream/)
  assert.equal(await command(server.port, 'GET', `{ms:${foreign}}:log`), '$8\r\nnot ours\r\n', 'the key is untouched')

  const newer = uniqueName('newer')
  await command(server.port, 'HSET', `{ms:${newer}}:head`, 'protocol', '99')
  const old = new MemSync(newer, {}, { dir: rendezvousDir(t), transport: `redis://127.0.0.1:${server.port}`, timeout: 10000 })
  t.after(() => old.stop())
  const refused = await old.start().then(() => null, (error) => error)
  assert.equal(refused?.code, 'ERR_TRANSPORT', String(refused))
  assert.match(refused.message, /log protocol 99/)
})

test('a transport given as an object is read into its URL, and a wrong one is refused with ERR_INVALID_ARG', () => {
  const { transportUrl } = require('../lib/transport.js')
  assert.equal(transportUrl({ host: 'redis.local', port: 6380, db: 2 }), 'redis://redis.local:6380/2')
  assert.equal(transportUrl({ host: '::1', username: 'app', password: 'p@ss/wörd' }), 'redis://app:p%40ss%2Fw%C3%B6rd@[::1]:6379')
  assert.equal(transportUrl({ host: 'h', tls: true }), 'rediss://h:6379')
  assert.equal(transportUrl({ host: 'h', tls: { ca: '/etc/ssl/my ca.pem', cert: 'c.pem', key: 'k.pem' } }), 'rediss://h:6379?ca=%2Fetc%2Fssl%2Fmy%20ca.pem&cert=c.pem&key=k.pem')
  assert.equal(transportUrl({ sentinels: [{ host: 'a' }, { host: 'b', port: 26380 }], name: 'mymaster', password: 'x' }), 'redis+sentinel://:x@a:26379,b:26380/mymaster')
  assert.equal(transportUrl({ cluster: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }] }), 'redis+cluster://n1:7000,n2:7001')
  for (const [transport, why] of [
    [{ host: 'h', sentinels: [{ host: 's' }], name: 'm' }, /exactly one of host/],
    [{ sentinels: [{ host: 's' }] }, /name of their master/],
    [{ host: 'h', port: 0 }, /port must be an integer/],
    [{ host: 'h', tls: { ca: '-----BEGIN CERTIFICATE-----' } }, /path of a PEM file/],
    [{ host: 'h', retryStrategy: () => 1 }, /unknown field retryStrategy/],
    [{ cluster: [{ host: 'n' }], db: 1 }, /only database 0/],
    [['redis://h'], /must be a URL/]
  ]) {
    assert.throws(() => new MemSync(uniqueName('bad'), {}, { transport }), { code: 'ERR_INVALID_ARG', message: why })
  }
})

test("durability is 'primary' or 'replicated', and only with a transport", () => {
  assert.throws(() => new MemSync(uniqueName('d'), {}, { transport: 'redis://127.0.0.1:1', durability: 'disk' }), { code: 'ERR_INVALID_ARG', message: /'primary' or 'replicated'/ })
  assert.throws(() => new MemSync(uniqueName('d'), {}, { durability: 'replicated' }), { code: 'ERR_INVALID_ARG', message: /transport/ })
})

test("with durability 'replicated', writes resume within 5 s of a kill -9 of the Sentinel primary and every resolved patch survives it", { skip: missing ?? false, timeout: 120000 }, async (t) => {
  const deployment = await sentinelDeployment(t, { downAfterMs: 1000 })
  const name = uniqueName('failover')
  const config = { data: { log: [] }, options: { transport: deployment.url, durability: 'replicated', timeout: 30000 } }
  const a = await spawnPeer(t, name, rendezvousDir(t), config, 'a')
  const b = await spawnPeer(t, name, rendezvousDir(t), config, 'b')
  await a.request('start')
  await b.request('start')
  const resolved = []
  let seq = 0
  const write = async (peer, who) => {
    const id = `${who}:${seq++}`
    const outcome = await peer.request('patch', { update: { $push: { log: id } } })
    if (outcome.ok) resolved.push(id)
    return outcome
  }
  for (let i = 0; i < 20; i++) {
    await write(a, 'a')
    await write(b, 'b')
  }
  const killedAt = Date.now()
  await deployment.primary.kill('SIGKILL')
  // A patch started after the kill resolves once a replica is promoted and the bridge found it.
  const outcome = await write(a, 'a')
  const resumedMs = Date.now() - killedAt
  assert.deepEqual(outcome, { ok: true })
  assert.ok(resumedMs < 5000, `writes resumed ${resumedMs} ms after the kill`)
  for (let i = 0; i < 10; i++) {
    await write(b, 'b')
    await write(a, 'a')
  }
  const [state] = await converge([a, b], { timeoutMs: 20000 })
  for (const id of resolved) {
    assert.equal(state.data.log.filter((entry) => entry === id).length, 1, `${id} resolved, so it is there once`)
  }
})

test('the memsync command reaches an object through Redis with --transport: status asks Redis, get and patch join as a machine of their own', { skip: missing ?? false, timeout: 60000 }, async (t) => {
  const { url } = await redisServer(t)
  const name = uniqueName('cli')
  const host = await spawnPeer(t, name, rendezvousDir(t), { data: { n: 1 }, options: { transport: url } }, 'host')
  await host.request('start')
  assert.deepEqual(await host.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
  const cli = async (...args) => {
    const result = await runCli(args)
    assert.equal(result.code, 0, result.stderr)
    return JSON.parse(result.stdout)
  }
  const { machines, ...status } = await cli('status', '--transport', url, name)
  assert.deepEqual(status, { name, transport: url, version: 1, logEntries: 1, snapshotVersion: null })
  assert.deepEqual(machines, [{ name: os.hostname(), pids: [host.pid] }], 'the host\'s machine, present')
  assert.deepEqual(await cli('get', '--transport', url, name), { n: 2 })
  assert.deepEqual(await cli('patch', '--transport', url, name, '{"$inc":{"n":10}}'), { name, version: 2 })
  await waitFor(async () => (await host.request('state')).data.n === 12, 10000, 'the patch of the command line')
  const nothing = uniqueName('nothing')
  const unknown = await runCli(['get', '--transport', url, nothing])
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /no object named '.*' in redis:\/\/127\.0\.0\.1/)
  assert.equal((await command(Number(new URL(url).port), 'EXISTS', `{ms:${nothing}}:base`)).trim(), ':0', 'asking created nothing')
  const bad = await runCli(['status', '--transport', 'memcached://x', name])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /--transport: .*memcached/)
})

test("a machine's host serves the HTTP view and saves the file of an object other machines patch too", { skip: missing ?? false, timeout: 60000 }, async (t) => {
  const { url } = await redisServer(t)
  const name = uniqueName('services')
  const port = await freePort()
  const file = path.join(dataDir(t), 'object.json')
  const a = await spawnPeer(t, name, rendezvousDir(t), { data: { n: 0 }, options: { transport: url, server: { port }, file: { path: file } } }, 'a')
  assert.equal((await a.request('start')).role, 'host')
  const b = await spawnPeer(t, name, rendezvousDir(t), { data: {}, options: { transport: url } }, 'b')
  assert.equal((await b.request('start')).role, 'host')
  for (let i = 0; i < 5; i++) assert.deepEqual(await b.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
  await waitFor(async () => {
    const response = await fetch(`http://127.0.0.1:${port}/${name}/n`)
    return response.status === 200 && JSON.parse(await response.text()) === 5
  }, 10000, "machine B's patches in machine A's HTTP view")
  assert.deepEqual(await a.request('flush'), { ok: true })
  await waitForFile(file, (saved) => saved.data.n === 5)
})
