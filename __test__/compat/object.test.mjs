// Port of tenbits/memsync test/object.spec.ts (memsync 0.5); only the harness changed. The
// original's settling sleep is not needed: stop() and the writer's exit are awaited.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../../index.js'
import { Shell, has, rendezvousDir, uniqueName } from './support/harness.mjs'

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

  assert.ok(reader.data.num >= 3)

  let status = await reader.getStatus()
  has(status, {
    status: 'client',
    host: {
      started: true
    }
  })

  const p1 = await reader.ping()
  assert.equal(p1.connection, 'client')
  await incProc.terminate()

  // The host was terminated: ping() waits for the reconnection, here as the new host.
  const p2 = await reader.ping()
  assert.equal(p2.connection, 'host')

  status = await reader.getStatus()
  has(status, {
    status: 'host',
    host: {
      started: true
    }
  })

  await reader.stop()

  const hasPeers = await reader.hasPeers()
  assert.equal(hasPeers, false)
})
