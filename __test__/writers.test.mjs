// Writer limits (`peer.roles`, `network.maxWriters`): the host counts writers; one more is
// refused with ERR_MAX_WRITERS and stops trying; a slot frees when its writer dies.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'

const WRITER = { timeout: 10000, peer: { roles: ['writer'] }, network: { maxWriters: 1 } }

test('maxWriters 1: a second writer is refused with ERR_MAX_WRITERS, then admitted once the first is killed -9', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('writers')
  const host = await spawnPeer(t, name, dir, { options: { timeout: 10000, peer: { roles: ['reader'] } } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const first = await spawnPeer(t, name, dir, { rpc: ['hang'], options: WRITER }, 'first')
  assert.equal((await first.request('start')).role, 'client')

  const second = await spawnPeer(t, name, dir, { options: WRITER }, 'second')
  const refused = await second.request('tryStart')
  assert.equal(refused.error, 'ERR_MAX_WRITERS', refused.message)
  assert.equal(refused.status, 'stopped', 'a refused writer stops trying')
  // Readers are not counted.
  const reader = await spawnPeer(t, name, dir, { options: { timeout: 10000, network: { maxWriters: 1 } } }, 'reader')
  assert.equal((await reader.request('start')).role, 'client')
  assert.equal((await host.request('state')).connections, 2, 'the refused writer is not connected')

  // The host notices the first writer's death when its call to it fails: the same step frees
  // the writer's slot.
  const since = first.mark()
  const call = await host.request('callLater', { method: 'hang' })
  await first.waitEvent('hanging', { since })
  await first.kill('SIGKILL')
  assert.equal((await host.request('settled', { token: call.token })).error, 'ERR_RPC_PEER_LOST')
  assert.deepEqual(await second.request('tryStart'), { role: 'client' })
  // And now the limit holds against the admitted one.
  const third = await spawnPeer(t, name, dir, { options: WRITER }, 'third')
  assert.equal((await third.request('tryStart')).error, 'ERR_MAX_WRITERS')
})

test('a host that is a writer counts itself; the smaller limit of host and client applies', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('writers-host')
  const host = await spawnPeer(t, name, dir, { options: { ...WRITER, network: { maxWriters: 2 } } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  // The client allows 1 writer and the host is one already.
  const strict = await spawnPeer(t, name, dir, { options: WRITER }, 'strict')
  assert.equal((await strict.request('tryStart')).error, 'ERR_MAX_WRITERS')
  // A client without a limit gets the host's (2): one slot left.
  const lenient = { timeout: 10000, peer: { roles: ['writer'] } }
  const a = await spawnPeer(t, name, dir, { options: lenient }, 'a')
  assert.deepEqual(await a.request('tryStart'), { role: 'client' })
  const b = await spawnPeer(t, name, dir, { options: lenient }, 'b')
  assert.equal((await b.request('tryStart')).error, 'ERR_MAX_WRITERS')
})
