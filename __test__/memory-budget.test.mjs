// A host's memory under attack (issue 19, item 4): a connection costs one file descriptor.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'
import { connectRaw, frame, hello } from './support/wire.mjs'

const linuxOnly = process.platform !== 'linux' && 'reads /proc'

const openFds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length

async function startHost (t, name, dir) {
  const host = await spawnPeer(t, name, dir, {}, 'host')
  assert.equal((await host.request('start')).role, 'host')
  return { host, socketPath: path.join(dir, `${name}.sock`) }
}

/** A raw connection that said hello and was welcomed. */
async function joinRaw (socketPath, t) {
  const raw = await connectRaw(socketPath, t)
  await raw.send(frame(hello()))
  assert.equal((await raw.message(2)).t, 'welcome')
  return raw
}

test('a connection costs the host one file descriptor', { skip: linuxOnly, timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('fds')
  const { host, socketPath } = await startHost(t, name, dir)
  const before = openFds(host.pid)
  const count = 20
  for (let i = 0; i < count; i++) await joinRaw(socketPath, t)
  assert.equal((await host.request('memory')).connections, count)
  const perConnection = (openFds(host.pid) - before) / count
  t.diagnostic(`${perConnection} descriptors per connection`)
  assert.equal(perConnection, 1)
})
