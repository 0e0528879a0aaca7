// One object across "machines" (each its own rendezvous directory) through a real redis-server:
// each machine's host bridges its processes to the log (issue 17, in progress).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { converge, rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'
import { redisMissing, redisServer } from './support/redis.mjs'
import { MemSync } from '../index.js'

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
  const b = await spawnPeer(t, name, machineB, { ...config, data: { other: true } }, 'b-host')
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
