// The HTTP view (options.server): every route, the event stream, a host whose JS thread is
// blocked, and the port following the host role. Hosts run in child processes; every wait is on
// a reply, an event or a response, and bounded.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import memsync from '../index.js'
import { rendezvousDir, spawnPeer, uniqueName, withTimeout } from './support/peers.mjs'
import { freePort, openEvents } from './support/services.mjs'

const { MemSync } = memsync

async function get (url, init) {
  const response = await withTimeout(fetch(url, init), 5000, `${init?.method ?? 'GET'} ${url}`)
  return { status: response.status, type: response.headers.get('content-type'), text: await response.text(), headers: response.headers }
}

test('GET /<name>, /<name>/<path>, /<name>/status; other paths 404, other methods 405', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('http')
  const port = await freePort()
  const data = { title: 'jobs', list: [1, { deep: 'yes' }], nested: { 'with space': true, status: 'a key named status' } }
  const host = await spawnPeer(t, name, dir, { data, options: { server: { port } } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const client = await spawnPeer(t, name, dir, {}, 'client')
  assert.equal((await client.request('start')).role, 'client')
  assert.deepEqual(await client.request('patch', { update: { $set: { title: 'jobs!' } } }), { ok: true })
  const base = `http://127.0.0.1:${port}/${name}`

  // memsync 0.5's answer: the object as JSON.stringify(data, null, 2).
  const whole = await get(base)
  assert.equal(whole.status, 200)
  assert.equal(whole.type, 'application/json')
  const expected = { ...data, title: 'jobs!' }
  assert.equal(whole.text, JSON.stringify(expected, null, 2))
  assert.equal((await get(`${base}/`)).text, whole.text)

  for (const [sub, value] of [['title', 'jobs!'], ['list', [1, { deep: 'yes' }]], ['list.1.deep', 'yes'], ['list.0', 1],
    ['list.01', { deep: 'yes' }], ['nested.with%20space', true], ['nested.status', 'a key named status']]) {
    const response = await get(`${base}/${sub}`)
    assert.equal(response.status, 200, sub)
    assert.equal(response.type, 'application/json')
    assert.deepEqual(JSON.parse(response.text), value, sub)
  }
  for (const missing of ['nope', 'list.2', 'list.-1', 'title.length', 'list.1.deep.x']) {
    const response = await get(`${base}/${missing}`)
    assert.equal(response.status, 404, missing)
    assert.match(JSON.parse(response.text).error, /has no value at/)
  }

  const status = await get(`${base}/status`)
  assert.equal(status.status, 200)
  assert.deepEqual(JSON.parse(status.text), { name, role: 'host', hostPid: host.pid, version: 1, clients: 1 })

  for (const other of ['/favicon.ico', `/${name}x`, `/other/${name}`]) {
    assert.equal((await get(`http://127.0.0.1:${port}${other}`)).status, 404, other)
  }
  const post = await get(base, { method: 'POST', body: '{}' })
  assert.equal(post.status, 405)
  assert.equal(post.headers.get('allow'), 'GET')
})

test('GET /<name>/events streams every patch as the host orders it, from the host and from clients', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('sse')
  const port = await freePort()
  const host = await spawnPeer(t, name, dir, { data: { n: 0, log: [] }, options: { server: { port } } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const client = await spawnPeer(t, name, dir, {}, 'client')
  assert.equal((await client.request('start')).role, 'client')

  // The response headers arrive once the stream is registered: no patch after this is missed.
  const events = await openEvents(t, `http://127.0.0.1:${port}/${name}/events`)
  assert.equal(events.response.status, 200)
  assert.equal(events.response.headers.get('content-type'), 'text/event-stream')
  assert.equal(events.response.headers.get('cache-control'), 'no-cache')
  const second = await openEvents(t, `http://127.0.0.1:${port}/${name}/events`)

  assert.deepEqual(await host.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
  assert.deepEqual(await client.request('patch', { update: { $push: { log: 'c' } } }), { ok: true })
  const written = await client.request('write', { kind: 'inc', count: 50 })
  assert.deepEqual(written.rejected, {})

  for (const stream of [events, second]) {
    const first = await stream.next()
    assert.deepEqual({ ...first, timestamp: 0 }, { version: 1, timestamp: 0, patch: { $inc: { n: 1 } } })
    assert.ok(Math.abs(first.timestamp - Date.now()) < 60000, 'timestamp: epoch ms')
    assert.deepEqual((await stream.next()).patch, { $push: { log: 'c' } })
    for (let version = 3; version <= 52; version++) {
      const record = await stream.next()
      assert.equal(record.version, version, 'every ordered patch, in order')
      assert.deepEqual(record.patch, { $inc: { n: 1 } })
    }
  }
  // A stream ends when its host stops being host.
  await host.request('stop')
  assert.equal(await events.next(), null)
})

test('the view answers while the host\'s JS thread is blocked, with patches ordered meanwhile', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('busy')
  const port = await freePort()
  const host = await spawnPeer(t, name, dir, { data: { n: 0 }, options: { server: { port } } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const client = await spawnPeer(t, name, dir, {}, 'client')
  assert.equal((await client.request('start')).role, 'client')
  const base = `http://127.0.0.1:${port}/${name}`
  const events = await openEvents(t, `${base}/events`)

  const mark = host.mark()
  let busyEnded = false
  const busy = host.request('busy', { ms: 4000 }).then((reply) => { busyEnded = true; return reply })
  await host.waitEvent('busy', { since: mark })

  // The host's JS thread is in a busy loop now; the client's patch is ordered on the addon's threads.
  assert.deepEqual(await client.request('patch', { update: { $inc: { n: 41 } } }), { ok: true })
  assert.deepEqual(JSON.parse((await get(base)).text), { n: 41 })
  assert.equal(JSON.parse((await get(`${base}/n`)).text), 41)
  assert.deepEqual(JSON.parse((await get(`${base}/status`)).text), { name, role: 'host', hostPid: host.pid, version: 1, clients: 1 })
  assert.deepEqual((await events.next()).patch, { $inc: { n: 41 } })
  assert.equal(busyEnded, false, 'all of this happened while the host JS thread was blocked')

  const { data } = await busy
  assert.deepEqual(data, { n: 0 }, 'the host JS thread had not even seen the patch yet')
  await host.request('waitFor', { path: 'n', value: 41 })
})

test('the view follows the host role: after kill -9 or stop() of the host, the new host serves the port', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('follow')
  const port = await freePort()
  const options = { server: { port } }
  const status = async () => JSON.parse((await get(`http://127.0.0.1:${port}/${name}/status`)).text)
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((label) => spawnPeer(t, name, dir, { data: { n: 0 }, options }, label)))
  assert.equal((await a.request('start')).role, 'host')
  for (const peer of [b, c]) assert.equal((await peer.request('start')).role, 'client')
  assert.equal((await status()).hostPid, a.pid)
  const events = await openEvents(t, `http://127.0.0.1:${port}/${name}/events`)

  const marks = [b.mark(), c.mark()]
  await a.kill('SIGKILL')
  // start() (and so 'connected' as host) follows the binding of the port.
  const next = await Promise.race([b, c].map((peer, i) => peer.waitEvent('connected', { since: marks[i], predicate: (e) => e.role === 'host' }).then(() => peer)))
  const other = next === b ? c : b
  assert.equal((await status()).hostPid, next.pid)
  await assert.rejects(events.next(), 'the old host\'s stream broke with it')

  assert.deepEqual(await other.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
  assert.equal(JSON.parse((await get(`http://127.0.0.1:${port}/${name}/n`)).text), 1)

  const mark = other.mark()
  await next.request('stop')
  await other.waitEvent('connected', { since: mark, predicate: (e) => e.role === 'host' })
  assert.deepEqual(await status(), { name, role: 'host', hostPid: other.pid, version: 1, clients: 0 })
})

test('the view binds 127.0.0.1 unless server.host says otherwise', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const port = await freePort()
  const local = new MemSync(uniqueName('loopback'), { a: 1 }, { dir, server: { port } })
  t.after(() => local.stop())
  await local.start()
  assert.equal((await get(`http://127.0.0.1:${port}/${local.name}/a`)).text, '1')
  await assert.rejects(fetch(`http://127.0.0.2:${port}/${local.name}`), 'not on another address')

  const other = new MemSync(uniqueName('other'), { b: 2 }, { dir, server: { port, host: '127.0.0.2' } })
  t.after(() => other.stop())
  await other.start()
  assert.equal((await get(`http://127.0.0.2:${port}/${other.name}/b`)).text, '2')
})

test('a port that is taken is reported through error (ERR_HTTP); the instance works on', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const blocker = net.createServer()
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.after(() => blocker.close())
  const mem = new MemSync(uniqueName('taken'), { a: 1 }, { dir, server: { port: blocker.address().port } })
  t.after(() => mem.stop())
  const reported = mem.onceAsync('error')
  assert.equal(await mem.start(), 'host')
  const error = await withTimeout(reported, 5000, 'an error event')
  assert.equal(error.code, 'ERR_HTTP')
  assert.match(error.message, /cannot serve HTTP on 127\.0\.0\.1:\d+/)
  await mem.patch({ $inc: { a: 1 } })
  assert.equal(mem.data.a, 2)
})

test('invalid file and server options throw ERR_INVALID_ARG', () => {
  for (const options of [{ file: 'x.json' }, { file: { path: '' } }, { file: {} }, { server: { port: 0 } },
    { server: { port: 70000 } }, { server: { port: '80' } }, { server: 8080 }, { server: { port: 8080, host: '' } }]) {
    assert.throws(() => new MemSync('opts', {}, options), { code: 'ERR_INVALID_ARG' }, JSON.stringify(options))
  }
})
