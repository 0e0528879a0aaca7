// Port of tenbits/memsync test/events-custom.spec.ts (memsync 0.5); only the harness changed: the
// test waits (bounded) for the first 'time' event instead of sleeping 1 s and counting them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../../index.js'
import { Shell, rendezvousDir, uniqueName, withTimeout } from './support/harness.mjs'

const { MemSync } = memsync

test('should listen to events', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('customEvents')
  const eventsProc = new Shell(t, { script: 'events.mjs', args: [name, dir], matchReady: /started/i })
  t.after(() => eventsProc.terminate())

  await eventsProc.onReadyAsync()

  const reader = new MemSync(name, { num: 0 }, {
    dir,
    logEvents: false
  })
  t.after(() => reader.stop())
  await reader.start()

  const catched = []
  const first = new Promise((resolve) => {
    reader.events.on('time', (ms) => {
      catched.push(ms)
      resolve()
    })
  })
  await withTimeout(first, 5000, "no 'time' event")

  assert.ok(catched.length > 0)
  assert.equal(typeof catched[0], 'number')
})
