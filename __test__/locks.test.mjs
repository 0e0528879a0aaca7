// Cross-process locks: mutual exclusion of a read-modify-write across 4 processes, waiters in
// order, timeouts, release on death, and a lock held across kill -9 of the host.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { converge, rendezvousDir, spawnPeer, spawnPeers, uniqueName } from './support/peers.mjs'

const OPTIONS = { timeout: 10000 }

async function startAll (peers) {
  const roles = []
  // One after another: the first is the host.
  for (const peer of peers) roles.push((await peer.request('start')).role)
  assert.deepEqual(roles, ['host', ...peers.slice(1).map(() => 'client')])
}

test('a lock contended by 4 processes guards a read-modify-write ($set of the value read): the count is exact', { timeout: 60000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('locks-rmw')
  const peers = await spawnPeers(t, 4, name, dir, { data: { n: 0 }, options: OPTIONS })
  await startAll(peers)
  const COUNT = 60
  const results = await Promise.all(peers.map((p) => p.request('lockedIncrement', { key: 'n', count: COUNT }, 50000)))
  for (const result of results) assert.deepEqual(result.rejected, [], 'no $set was rejected')
  const states = await converge(peers)
  // Without mutual exclusion, two processes would read the same n and one increment would be lost.
  assert.equal(states[0].data.n, 4 * COUNT)
})

test('waiters are served in request order; a timeout rejects with ERR_TIMEOUT and gives up its place; a holder killed -9 releases', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('locks-order')
  const [host, holder, first, second] = await spawnPeers(t, 4, name, dir, { options: OPTIONS })
  await startAll([host, holder, first, second])
  await holder.request('lockHold', { key: 'k' })
  await holder.waitEvent('locked')
  const impatient = await host.request('lockHold', { key: 'k', timeout: 500 })
  // The request times are the order: `first` asks before `second`, a few ms apart so that their
  // clocks' millisecond readings differ (within one, processes' stamps do not say who was first).
  await first.request('lockHold', { key: 'k' })
  await new Promise((resolve) => setTimeout(resolve, 5))
  await second.request('lockHold', { key: 'k' })
  const timedOut = await host.request('settled', { token: impatient.token })
  assert.equal(timedOut.error, 'ERR_TIMEOUT', timedOut.message)

  await holder.kill('SIGKILL')
  const firstLocked = await first.waitEvent('locked')
  assert.equal(second.history.some((m) => m.event === 'locked'), false, 'second waits while first holds')
  assert.ok(firstLocked)
  const { at: releasedAt } = await first.request('lockRelease', { key: 'k' })
  const secondLocked = await second.waitEvent('locked')
  assert.ok(secondLocked.at >= releasedAt, 'second got the lock only after first released it')
  // The host's timed-out request never got the lock.
  assert.equal(host.history.some((m) => m.event === 'locked'), false)
})

test('a lock held across kill -9 of the host stays with its holder until released', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('locks-failover')
  const peers = await spawnPeers(t, 4, name, dir, { options: OPTIONS })
  const [host, holder, waiter, late] = peers
  await startAll(peers)
  const marks = peers.map((p) => p.mark())
  const held = await holder.request('lockHold', { key: 'k' })
  await holder.waitEvent('locked', { since: marks[1] })
  // Waiting when the host dies: it must keep its place, behind the holder.
  await waiter.request('lockHold', { key: 'k' })

  await host.kill('SIGKILL')
  for (const [i, peer] of peers.entries()) {
    if (peer !== host) await peer.waitEvent('connected', { since: marks[i] })
  }
  // A request after the failover, bounded well past the new host's grace period (300 ms): it
  // must time out, since the holder still holds the lock and the waiter is ahead of it.
  const probe = await late.request('lockHold', { key: 'k', timeout: 1500 })
  const probed = await late.request('settled', { token: probe.token })
  assert.equal(probed.error, 'ERR_TIMEOUT', 'nobody else was granted the lock after the failover')
  assert.equal(waiter.history.some((m) => m.event === 'locked'), false, 'the waiter still waits')

  const { at: releasedAt } = await holder.request('lockRelease', { key: 'k' })
  const granted = await waiter.waitEvent('locked')
  assert.ok(granted.at >= releasedAt, 'the waiter got the lock only after the holder released it')
  assert.deepEqual(await holder.request('settled', { token: held.token }), { ok: true })
})
