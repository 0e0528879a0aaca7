// Port of tenbits/memsync test/stop.spec.ts (memsync 0.5); only the harness changed. The
// original's settling sleeps are not needed: what they waited for (stop(), the writer's exit) is
// awaited.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../../index.js'
import { Shell, has, rendezvousDir, uniqueName } from './support/harness.mjs'

const { MemSync } = memsync

test('ensure we stop server', { timeout: 20000 }, async (t) => {
  const reader = new MemSync(uniqueName('stoppable'), { num: 0 }, {
    dir: rendezvousDir(t),
    logEvents: false
  })
  t.after(() => reader.stop())
  await reader.start()

  const status = await reader.getStatus()

  has(status, {
    status: 'host',
    host: {
      started: true
    }
  })

  let hasPeers = await reader.hasPeers()
  assert.equal(hasPeers, true)

  await reader.stop()

  hasPeers = await reader.hasPeers()
  assert.equal(hasPeers, false)
})

test('ensure we stop server and and client', { timeout: 20000 }, async (t) => {
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
  assert.ok(reader.data.num >= 3, 'Number should be already >3')

  await reader.stop()
  await incProc.terminate()

  const hasPeersAfter = await reader.hasPeers()
  assert.equal(hasPeersAfter, false)
})
