// The deliberate differences from memsync 0.5 listed in docs/migrating-from-0.5.md
// that no other test shows from 0.5's side. The others are covered where the feature is tested:
// RPC result shape and spread arguments (rpc.test.mjs 'calls run in the caller first...'),
// ERR_RPC_NOT_FOUND (rpc.test.mjs 'a remote throw rejects...'), HTTP on 127.0.0.1 (http.test.mjs
// 'the view binds 127.0.0.1...'), data is a copy (memsync.test.mjs 'data is a copy...').
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import memsync from '../../index.js'
import { spawnPeer } from '../support/peers.mjs'
import { dataDir, waitForFile } from '../support/services.mjs'
import { rendezvousDir, uniqueName } from './support/harness.mjs'

const { MemSync } = memsync

test('only the host saves file.path: a client\'s flush() leaves the file to the host, and saves once it hosts', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('hostsaves')
  const file = path.join(dataDir(t), 'jobs.json')
  const host = await spawnPeer(t, name, dir, { data: { n: 0 } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const client = new MemSync(name, {}, { dir, file: { path: file } })
  t.after(() => client.stop())
  assert.equal(await client.start(), 'client')
  await client.patch({ $inc: { n: 1 } })
  await client.flush()
  assert.equal(fs.existsSync(file), false, 'a client never writes the file (0.5: every process did)')
  await host.request('stop')
  const saved = await waitForFile(file, (stored) => stored.data.n === 1)
  assert.equal(saved.version, 1, 'the client that took over saved at once')
})

test('RPC arguments are spread (0.5 passed one array) and the result is on .result wherever the callee runs', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('spread')
  const host = await spawnPeer(t, name, dir, { rpc: ['echo'] }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const add = (a, b) => a + b
  const mem = new MemSync({ name, rpc: { add }, options: { dir } })
  t.after(() => mem.stop())
  await mem.start()
  const local = await mem.call('add', 1, 2)
  const remote = await mem.call('echo', 1, 2)
  assert.equal(local.result, 3, 'add(1, 2), not add([1, 2])')
  assert.deepEqual(remote.result, [1, 2], 'echo(...args) got two arguments')
  assert.deepEqual(Object.keys(local).sort(), Object.keys(remote).sort(), 'one shape')
  await assert.rejects(mem.call('nobody.has.this'), { code: 'ERR_RPC_NOT_FOUND' })
})
