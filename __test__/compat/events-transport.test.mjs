// Port of tenbits/memsync test/events-transport.spec.ts (memsync 0.5); only the harness changed.
// The original's settling sleep is not needed: the writer's exit and stop() are awaited.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../../index.js'
import { Shell, rendezvousDir, uniqueName, withTimeout } from './support/harness.mjs'

const { MemSync } = memsync

test('should check increments', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('inc')
  const incProc = new Shell(t, { script: 'inc.mjs', args: [name, dir], matchReady: /Patched 3/ })

  await incProc.onReadyAsync()

  const reader = new MemSync(name, { num: 0 }, {
    dir,
    logEvents: false
  })
  t.after(() => reader.stop())
  await reader.start()

  const [patch] = await withTimeout(reader.onceAsync('receivedPatches'), 10000, 'no receivedPatches')
  assert.ok(patch.version >= 4)

  await incProc.terminate()
  await reader.stop()

  const hasPeers = await reader.hasPeers()
  assert.equal(hasPeers, false)
})
