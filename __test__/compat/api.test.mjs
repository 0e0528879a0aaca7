// memsync 0.5's API where 0.6 had drifted from it, each checked as 0.5.15 behaves (see
// /work/shared/JS-MEMSYNC-0.5.md): off(event), chained and piped emits, names, `$set` of
// undefined, hasPeers(path), the `connection` deferred, a client's view of its host, ping()
// across a failover, setOptions({ logLevel }).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import memsync from '../../index.js'
import { spawnPeer } from '../support/peers.mjs'
import { rendezvousDir, uniqueName, withTimeout } from './support/harness.mjs'

const { MemSync } = memsync

async function started (t, name, data, options = {}) {
  const mem = new MemSync(name, data, { dir: options.dir ?? rendezvousDir(t), ...options })
  t.after(() => mem.stop())
  await mem.start()
  return mem
}

test('off(event) without a listener removes every listener of the event, on the instance and on events', async (t) => {
  const mem = await started(t, uniqueName('off'), { n: 0 })
  const heard = []
  mem.on('change', () => heard.push('a')).on('change', () => heard.push('b'))
  mem.events.on('tick', () => heard.push('tick1')).on('tick', () => heard.push('tick2'))
  assert.equal(mem.off('change'), mem)
  assert.equal(mem.events.off('tick'), mem.events)
  await mem.patch({ $inc: { n: 1 } })
  mem.events.emit('tick')
  assert.deepEqual(heard, [])
})

test('events.emit returns events (emits chain); trigger and pipe exist on events and on the instance', async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('emit')
  const mem = await started(t, name, {}, { dir })
  const other = await started(t, name, {}, { dir })
  const remote = []
  const arrived = new Promise((resolve) => {
    other.events.on('n', (n) => {
      remote.push(n)
      if (remote.length === 4) resolve()
    })
  })
  const local = []
  mem.events.on('n', (n) => local.push(n))
  assert.equal(mem.events.emit('n', 1).emit('n', 2), mem.events)
  assert.equal(mem.events.trigger('n', 3), mem.events)
  mem.events.pipe('n')(4)
  assert.deepEqual(local, [1, 2, 3, 4])
  await withTimeout(arrived, 5000, 'the events did not reach the other instance')
  assert.deepEqual(remote, [1, 2, 3, 4])

  // The instance's own emitter (0.5's base class): local to this instance.
  const roles = []
  mem.on('connected', (role) => roles.push(role))
  assert.equal(mem.emit('connected', 'x').trigger('connected', 'y'), mem)
  mem.pipe('connected')('z')
  assert.deepEqual(roles, ['x', 'y', 'z'])
})

test('any non-empty name works; each has its own socket inside the rendezvous directory', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const names = ['app:cache', 'my object', '../escape', '.', 'a/b', '50%', 'a%2Fb', 'ü'.repeat(400)]
  const hosts = []
  for (const name of names) {
    const mem = await started(t, name, { name }, { dir })
    assert.equal(await mem.start(), 'host', `${name}: no other name shares its socket`)
    hosts.push(mem)
  }
  for (const name of names) {
    const client = await started(t, name, {}, { dir })
    assert.equal(await client.start(), 'client')
    assert.deepEqual(client.data, { name }, `${name} joined its own host`)
  }
  const files = fs.readdirSync(dir)
  assert.equal(files.filter((file) => file.endsWith('.sock')).length, names.length)
  assert.deepEqual(fs.readdirSync(path.dirname(dir)), [path.basename(dir)], 'nothing outside the directory')
})

test('an undefined field value in an update is stored as null (the MongoDB Node driver); an operator of undefined is ERR_BAD_VALUE', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('undef')
  const mem = await started(t, name, { keep: 1 }, { dir })
  const other = await started(t, name, {}, { dir })
  const optional = {}
  await mem.patch({ $set: { title: optional.title, 'deep.list': [1, undefined] }, $push: { log: { $each: [undefined] } } })
  await mem.patch({ shorthand: undefined })
  const expected = { keep: 1, title: null, deep: { list: [1, null] }, log: [null], shorthand: null }
  assert.deepEqual(mem.data, expected)
  await withTimeout(new Promise((resolve) => {
    const check = () => { if (Object.hasOwn(other.data, 'shorthand')) resolve() }
    other.on('change', check)
    check()
  }), 5000, 'the other instance did not get the patches')
  assert.deepEqual(other.data, expected)
  await assert.rejects(mem.patch({ $set: undefined }), { code: 'ERR_BAD_VALUE', message: /'\$set'/ })
  // Where null has no meaning, the engine says so, as MongoDB does for a null argument.
  await assert.rejects(mem.patch({ $inc: { keep: undefined } }), { code: 'ERR_BAD_VALUE', message: /Cannot increment with non-numeric argument/ })
  assert.deepEqual(mem.data, expected)
})

test('hasPeers(path) asks whether anything accepts connections on that socket path', async (t) => {
  const dir = rendezvousDir(t)
  const mem = new MemSync(uniqueName('path'), {}, { dir })
  const socketPath = path.join(path.dirname(dir), 'other.sock')
  assert.equal(await mem.hasPeers(socketPath), false)
  const server = net.createServer((socket) => socket.destroy())
  await new Promise((resolve) => server.listen(socketPath, resolve))
  t.after(() => server.close())
  assert.equal(await mem.hasPeers(socketPath), true)
  assert.equal(await mem.hasPeers(), false, 'without a path: its own socket, where nobody listens')
  await assert.rejects(mem.hasPeers(5), { code: 'ERR_INVALID_ARG' })
})

test('connection is a deferred with done, fail and resolve, renewed on disconnect', async (t) => {
  const mem = new MemSync(uniqueName('dfr'), {}, { dir: rendezvousDir(t) })
  const first = mem.connection
  const seen = []
  assert.equal(first.done((value) => seen.push(value)), first)
  assert.equal(first.fail(() => seen.push('failed')), first)
  await mem.start()
  t.after(() => mem.stop())
  assert.deepEqual(await first, { type: 'host' })
  assert.deepEqual(seen, [{ type: 'host' }])
  await mem.stop()
  assert.notEqual(mem.connection, first, 'renewed on disconnect')
  assert.equal(mem.connection.resolve({ type: 'client' }), mem.connection)
  assert.deepEqual(await mem.connection, { type: 'client' })
})

test('a client reports its host\'s own status; ping() right after the host exits answers from the new host', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('hoststatus')
  const host = await spawnPeer(t, name, dir, {}, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const next = await spawnPeer(t, name, dir, {}, 'next')
  assert.equal((await next.request('start')).role, 'client')
  const mem = await started(t, name, {}, { dir, timeout: 10000 })
  const status = await mem.getStatus()
  assert.equal(status.status, 'client')
  assert.deepEqual(status.host, { started: true, connections: 2 })

  await host.kill('SIGKILL')
  const pong = await mem.ping()
  assert.ok(pong.connection !== null, `an answer after the failover: ${JSON.stringify(pong)}`)
  if (pong.connection === 'client') {
    assert.equal(pong.host.pid, next.pid, 'the other survivor is the new host')
    assert.equal(typeof pong.host.time, 'number')
  } else {
    // This process is the new host: the other survivor may not have joined it yet.
    assert.ok(pong.clients.every((c) => c.pid === next.pid && typeof c.time === 'number'), JSON.stringify(pong))
  }
  assert.equal((await mem.getStatus()).host.started, true)
})

test('setOptions({ logLevel }) is accepted, as in 0.5', async (t) => {
  const mem = new MemSync(uniqueName('opts'), {}, { dir: rendezvousDir(t) })
  assert.equal(mem.setOptions({ logLevel: 'none' }), undefined)
})
