// Port of tenbits/memsync test/observer.spec.ts (memsync 0.5); only the harness changed: the
// observer's checks settle the test's promise (a failed check rejects it instead of being lost in
// the callback), and the original's settling sleep is not needed (stop() and the exit are awaited).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../../index.js'
import { Shell, rendezvousDir, uniqueName, withTimeout } from './support/harness.mjs'

const { MemSync } = memsync

test('should observe property', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('inc')
  const incProc = new Shell(t, { script: 'inc.mjs', args: [name, dir], matchReady: /Patched 1/ })

  await incProc.onReadyAsync()

  const reader = new MemSync(name, { num: 0 }, {
    dir,
    logEvents: false
  })
  t.after(() => reader.stop())
  await reader.start()

  const started = reader.data
  const startedVal = started.num
  assert.ok(startedVal >= 1)

  let observed = false
  await withTimeout(new Promise((resolve, reject) => {
    reader.observe('num', async (val) => {
      if (observed) return
      observed = true
      try {
        assert.equal(val, started.num)
        assert.equal(val, startedVal + 1)

        await reader.stop()
        await incProc.terminate()

        const hasPeers = await reader.hasPeers()
        assert.equal(hasPeers, false)
        resolve(null)
      } catch (error) {
        reject(error)
      }
    })
  }), 10000, 'the observer was not called')
})
