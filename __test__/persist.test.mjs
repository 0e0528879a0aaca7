// File persistence (options.file): real processes load, save and flush one file; a kill -9 loop
// during saves; corrupt files. Every wait is on an event (a change in the file's directory, a
// peer's reply) and bounded.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import memsync from '../index.js'
import { rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'
import { dataDir, readJsonFile, waitForFile } from './support/services.mjs'

const { MemSync } = memsync

function assertFileShape (contents, { data, version }) {
  assert.deepEqual(Object.keys(contents).sort(), ['data', 'timestamp', 'version'])
  assert.deepEqual(contents.data, data)
  assert.equal(contents.version, version)
  assert.ok(Number.isInteger(contents.timestamp) && Math.abs(contents.timestamp - Date.now()) < 60000, `timestamp ${contents.timestamp}`)
}

test('the host saves after changes and on flush() and stop(); the next process that starts the network loads the file', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const file = path.join(dataDir(t), 'jobs.json')
  const name = uniqueName('persist')
  const options = { file: { path: file } }
  const host = await spawnPeer(t, name, dir, { data: { n: 0, list: [] }, options }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  assert.equal(readJsonFile(file), undefined, 'nothing is written before the object changes')

  // A change is saved by itself, shortly after.
  assert.deepEqual(await host.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
  assertFileShape(await waitForFile(file, (f) => f.version === 1), { data: { n: 1, list: [] }, version: 1 })

  // A burst is saved too: the file catches up with the last patch.
  await host.request('write', { kind: 'inc', count: 200 })
  assertFileShape(await waitForFile(file, (f) => f.version === 201), { data: { n: 201, list: [] }, version: 201 })

  // flush() writes before it resolves.
  assert.deepEqual(await host.request('patch', { update: { $push: { list: 'flushed' } } }), { ok: true })
  assert.deepEqual(await host.request('flush'), { ok: true })
  assertFileShape(readJsonFile(file), { data: { n: 201, list: ['flushed'] }, version: 202 })

  // A client's patch reaches the file through the host; a client's flush() leaves saving to it.
  const client = await spawnPeer(t, name, dir, { data: { ignored: true }, options }, 'client')
  assert.equal((await client.request('start')).role, 'client')
  assert.deepEqual((await client.request('state')).data, { n: 201, list: ['flushed'] }, 'a client takes the host state, not the file')
  assert.deepEqual(await client.request('patch', { update: { $push: { list: 'from-client' } } }), { ok: true })
  assert.deepEqual(await client.request('flush'), { ok: true })
  await waitForFile(file, (f) => f.version === 203 && f.data.list.at(-1) === 'from-client')
  await client.request('stop')

  // stop() saves what the debounce had not written yet.
  assert.deepEqual(await host.request('patch', { update: { $set: { last: true } } }), { ok: true })
  await host.request('stop')
  await host.exit
  assertFileShape(readJsonFile(file), { data: { n: 201, list: ['flushed', 'from-client'], last: true }, version: 204 })

  // The next process to start the network loads the file, version included.
  const next = await spawnPeer(t, name, dir, { data: { fresh: true }, options }, 'next')
  assert.equal((await next.request('start')).role, 'host')
  const state = await next.request('state')
  assert.deepEqual(state.data, { n: 201, list: ['flushed', 'from-client'], last: true })
  assert.equal(state.version, 204)
  assert.deepEqual(await next.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
  await waitForFile(file, (f) => f.version === 205 && f.data.n === 202)
})

test('a file written by memsync 0.5 loads, and is saved back in the same shape', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const file = path.join(dataDir(t), 'old.json')
  fs.writeFileSync(file, JSON.stringify({ data: { users: { ann: { age: 30 } }, tags: ['a'] }, version: 41, timestamp: 1700000000000 }))
  const mem = new MemSync(uniqueName('old'), { users: {} }, { dir, file: { path: file } })
  t.after(() => mem.stop())
  assert.equal(await mem.start(), 'host')
  assert.deepEqual(mem.data, { users: { ann: { age: 30 } }, tags: ['a'] })
  assert.equal((await mem.getStatus()).version, 41)
  await mem.patch({ $inc: { 'users.ann.age': 1 } })
  await mem.flush()
  assertFileShape(readJsonFile(file), { data: { users: { ann: { age: 31 } }, tags: ['a'] }, version: 42 })
})

test('a relative file.path is taken from the directory the instance was created in', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const files = dataDir(t)
  const cwd = process.cwd()
  process.chdir(files)
  let mem
  try {
    mem = new MemSync(uniqueName('relative'), { a: 1 }, { dir, file: { path: 'relative.json' } })
  } finally {
    process.chdir(cwd)
  }
  t.after(() => mem.stop())
  await mem.start()
  await mem.flush()
  assert.deepEqual(readJsonFile(path.join(files, 'relative.json')).data, { a: 1 })
})

test('after kill -9 of the host, the client that takes over saves its newer state at once', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const file = path.join(dataDir(t), 'failover.json')
  const name = uniqueName('persist-failover')
  const options = { file: { path: file } }
  const host = await spawnPeer(t, name, dir, { data: { n: 0 }, options }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const client = await spawnPeer(t, name, dir, { data: {}, options }, 'client')
  assert.equal((await client.request('start')).role, 'client')
  assert.deepEqual(await client.request('patch', { update: { $inc: { n: 5 } } }), { ok: true })
  await waitForFile(file, (f) => f.version === 1)

  const mark = client.mark()
  await host.kill('SIGKILL')
  await client.waitEvent('connected', { since: mark, predicate: (e) => e.role === 'host' })
  // It had the state before the host died; it writes it without waiting for a change.
  assertFileShape(await waitForFile(file, (f) => f.version === 1 && f.data.n === 5), { data: { n: 5 }, version: 1 })
  assert.deepEqual(await client.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
  assert.deepEqual(await client.request('flush'), { ok: true })
  assertFileShape(readJsonFile(file), { data: { n: 6 }, version: 2 })
})

test('a corrupt or unreadable file makes start() reject with ERR_STORAGE and is left untouched', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const files = dataDir(t)
  const cases = [
    ['torn.json', '{"data":{"a":1},"vers'],
    ['empty.json', ''],
    ['shape.json', '{"users":[]}'],
    ['array.json', '{"data":[1,2],"version":3}']
  ]
  for (const [base, contents] of cases) {
    const file = path.join(files, base)
    fs.writeFileSync(file, contents)
    const before = fs.statSync(file)
    const name = uniqueName('corrupt')
    const mem = new MemSync(name, { seed: true }, { dir, file: { path: file } })
    await assert.rejects(mem.start(), (error) => {
      assert.equal(error.code, 'ERR_STORAGE')
      assert.match(error.message, new RegExp(`${name}.*${base}.*left untouched`))
      return true
    }, base)
    assert.equal((await mem.getStatus()).status, 'stopped')
    assert.deepEqual(mem.data, { seed: true }, 'data is not changed')
    const after = fs.statSync(file)
    assert.equal(fs.readFileSync(file, 'utf8'), contents, `${base} is untouched`)
    assert.equal(after.mtimeMs, before.mtimeMs)
    assert.equal(after.ino, before.ino)

    // Nothing was held: the name can be hosted at once by an instance without the file.
    const other = new MemSync(name, {}, { dir })
    assert.equal(await other.start(), 'host')
    await other.stop()
  }

  // A directory in place of the file cannot be read as one.
  const mem = new MemSync(uniqueName('dir'), {}, { dir, file: { path: files } })
  await assert.rejects(mem.start(), { code: 'ERR_STORAGE', message: /not a regular file/ })
})

test('a file that cannot be written is reported through error (ERR_STORAGE) and by flush()', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  // Under a dangling symlink: there is no file to load, and no directory can be made there.
  const plain = path.join(dataDir(t), 'plain')
  fs.symlinkSync(path.join(dataDir(t), 'nowhere'), plain)
  const file = path.join(plain, 'jobs.json')
  const mem = new MemSync(uniqueName('unwritable'), { a: 1 }, { dir, file: { path: file } })
  t.after(() => mem.stop())
  assert.equal(await mem.start(), 'host')
  const reported = mem.onceAsync('error')
  await mem.patch({ $inc: { a: 1 } })
  const error = await reported
  assert.equal(error.code, 'ERR_STORAGE')
  assert.match(error.message, /cannot save .*plain/)
  await assert.rejects(mem.flush(), { code: 'ERR_STORAGE' })
})

test('flush() and saves create the missing directories of file.path (umask mode), as memsync 0.5 did', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const root = dataDir(t)
  const file = path.join(root, 'new', 'deeper', 'jobs.json')
  const mem = new MemSync(uniqueName('mkdir'), { a: 1 }, { dir, file: { path: file } })
  t.after(() => mem.stop())
  assert.equal(await mem.start(), 'host')
  await mem.patch({ $inc: { a: 1 } })
  await mem.flush()
  assert.deepEqual(readJsonFile(file).data, { a: 2 })
  const umask = process.umask()
  assert.equal(fs.statSync(path.join(root, 'new')).mode & 0o777, 0o777 & ~umask)
})

test('kill -9 of a host at random moments of back-to-back saves never leaves a torn file', { timeout: 60000 }, async (t) => {
  const dir = rendezvousDir(t)
  const file = path.join(dataDir(t), 'churn.json')
  const name = uniqueName('churn')
  // About 1 MB, seeded through the file: a save takes long enough for kills to land inside writes.
  const blob = 'x'.repeat(1 << 20)
  fs.writeFileSync(file, JSON.stringify({ data: { n: 0, blob }, version: 0, timestamp: Date.now() }))
  const options = { file: { path: file } }
  let version = 0
  let killedMidWrite = 0
  const ROUNDS = 20
  for (let round = 0; round < ROUNDS; round++) {
    const peer = await spawnPeer(t, name, dir, { data: {}, options }, `churn${round}`)
    // start() loads the file the previous round left: a torn file would reject it.
    assert.equal((await peer.request('start')).role, 'host', `round ${round}`)
    const loaded = await peer.request('state')
    assert.ok(loaded.version >= version, `round ${round}: the file went back from v${version} to v${loaded.version}`)
    await peer.request('churn')
    // At least one save of this round has landed; then a kill at a random moment of the next ones.
    const seen = await waitForFile(file, (f) => f.version > loaded.version)
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 50))
    await peer.kill('SIGKILL')
    if (fs.existsSync(path.join(path.dirname(file), '.churn.json.memsync-tmp'))) killedMidWrite++
    const contents = readJsonFile(file) // throws if torn
    assert.equal(contents.data.blob.length, blob.length)
    assert.equal(contents.data.n, contents.version, 'one $inc per version: the data matches its version')
    assert.ok(contents.version >= seen.version)
    version = contents.version
  }
  t.diagnostic(`${killedMidWrite} of ${ROUNDS} kills landed while a temporary file was being written`)
})
