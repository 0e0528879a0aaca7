// network.maxPending: the patches of a process that wait to be ordered are bounded; one more is
// refused with ERR_PENDING_LIMIT and applies nothing, and patches are taken again once ordered.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rendezvousDir, uniqueName } from './support/peers.mjs'
import { MemSync } from '../index.js'

test('past network.maxPending waiting patches, patch() rejects with ERR_PENDING_LIMIT and changes nothing; ordered, they make room', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('pending')
  const writer = new MemSync(name, { n: 0 }, { dir, clientOnly: true, timeout: 20000, network: { maxPending: 50 } })
  t.after(() => writer.stop())
  // No host yet: every patch waits.
  const waiting = Array.from({ length: 50 }, () => writer.patch({ $inc: { n: 1 } }))
  const refused = await writer.patch({ $inc: { n: 1 } }).then(() => null, (error) => error)
  assert.equal(refused?.code, 'ERR_PENDING_LIMIT', String(refused))
  assert.match(refused.message, /50 patches of this process wait/)
  assert.equal(writer.data.n, 50, 'the refused patch was not applied')

  const host = new MemSync(name, { n: 0 }, { dir, timeout: 20000 })
  t.after(() => host.stop())
  assert.equal(await host.start(), 'host')
  assert.equal(await writer.start(), 'client')
  await Promise.all(waiting)
  await writer.patch({ $inc: { n: 1 } })
  assert.equal(writer.data.n, 51)
  assert.throws(() => new MemSync(uniqueName('bad'), {}, { network: { maxPending: 0 } }), { code: 'ERR_INVALID_ARG', message: /maxPending/ })
})
