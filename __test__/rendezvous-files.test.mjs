// The rendezvous directory does not fill up (issue 15): a name's files go when its last process
// stops, a killed host's files go at the next start of any name, and `options.dir` is created
// private or refused with the command that fixes it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import memsync from '../index.js'
import { rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'

const { MemSync } = memsync
const OPTIONS = { timeout: 5000 }
const files = (dir) => fs.readdirSync(dir).sort()
const mode = (file) => fs.statSync(file).mode & 0o777

/** Starts a peer of `name` in `dir` in its own process; resolves with it and its role. */
async function startedPeer (t, name, dir) {
  const peer = await spawnPeer(t, name, dir, { options: OPTIONS })
  const { role } = await peer.request('start')
  return { peer, role }
}

/** Stops `peer`, which then exits. */
async function stopPeer (peer) {
  await peer.request('stop')
  await peer.exit
}

test('no file of a name is left once its last process has stopped, host first or client first', async (t) => {
  const dir = rendezvousDir(t)
  for (const order of [['host', 'client'], ['client', 'host']]) {
    const name = uniqueName('leave')
    const host = await startedPeer(t, name, dir)
    const client = await startedPeer(t, name, dir)
    assert.deepEqual([host.role, client.role], ['host', 'client'])
    assert.deepEqual(files(dir), [`${name}.lock`, `${name}.sock`])
    const peers = { host: host.peer, client: client.peer }
    // The client that outlives the host becomes host, and leaves nothing either.
    for (const role of order) await stopPeer(peers[role])
    assert.deepEqual(files(dir), [], `stopped ${order.join(' then ')}`)
  }
})

test("a killed host's files are removed by the next start of any name", async (t) => {
  const dir = rendezvousDir(t)
  const killed = uniqueName('killed')
  const { peer } = await startedPeer(t, killed, dir)
  await peer.kill('SIGKILL')
  assert.deepEqual(files(dir), [`${killed}.lock`, `${killed}.sock`], 'a killed host cannot clean up')
  const other = new MemSync(uniqueName('other'), {}, { dir, ...OPTIONS })
  t.after(() => other.stop())
  await other.start()
  assert.deepEqual(files(dir), [`${other.name}.lock`, `${other.name}.sock`])
  await other.stop()
  assert.deepEqual(files(dir), [])
})

test('a missing options.dir is created private, with its missing parents', async (t) => {
  const parent = path.dirname(rendezvousDir(t))
  const dir = path.join(parent, 'new', 'rendezvous')
  const mem = new MemSync(uniqueName('created'), {}, { dir, ...OPTIONS })
  t.after(() => mem.stop())
  assert.equal(await mem.start(), 'host')
  assert.equal(mode(dir), 0o700)
  assert.equal(mode(path.dirname(dir)), 0o700)
})

test('an options.dir others may read or write is refused with the command that fixes it', async (t) => {
  const dir = rendezvousDir(t)
  // As `mkdir` makes it with the usual umask.
  fs.mkdirSync(dir, { mode: 0o755 })
  fs.chmodSync(dir, 0o755)
  const mem = new MemSync(uniqueName('public'), {}, { dir, ...OPTIONS })
  t.after(() => mem.stop())
  await assert.rejects(mem.start(), (error) => {
    assert.equal(error.code, 'ERR_RENDEZVOUS')
    assert.ok(error.message.includes(`${dir} has mode 755`), error.message)
    assert.ok(error.message.includes(`run \`chmod 700 ${dir}\``), error.message)
    return true
  })
  fs.chmodSync(dir, 0o700)
  assert.equal(await mem.start(), 'host')
})
