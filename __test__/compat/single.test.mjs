// Port of tenbits/memsync test/single.spec.ts (memsync 0.5); only the harness changed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../../index.js'
import { has, rendezvousDir, uniqueName } from './support/harness.mjs'

const { MemSync } = memsync

test('start single', { timeout: 20000 }, async (t) => {
  const mem = new MemSync(uniqueName('single'), { foo: 'foo' }, {
    dir: rendezvousDir(t),
    logEvents: false
  })
  t.after(() => mem.stop())

  await mem.start()

  const status = await mem.getStatus()
  has(status, {
    status: 'host',
    channel: 'host',
    host: {
      started: true,
      connections: 0
    }
  })

  assert.equal(mem.data.foo, 'foo')
})
