// Port of tenbits/memsync test/concurrency.spec.ts (memsync 0.5); only the harness changed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../../index.js'
import { Shell, rendezvousDir, uniqueName } from './support/harness.mjs'

const { MemSync, MemErrors } = memsync

test('should check increments', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('writerCheck')
  const incProc = new Shell(t, { script: 'writer.mjs', args: [name, dir], matchReady: /Started/ })

  await incProc.onReadyAsync()

  const writer = new MemSync({
    name,
    data: { num: 0 },
    options: {
      dir,
      logEvents: true,
      peer: {
        roles: ['writer']
      },
      network: {
        maxWriters: 1
      }
    }
  })
  t.after(() => writer.stop())

  const error = await (async () => {
    try {
      await writer.start()
    } catch (error) {
      return error
    }
  })()

  assert.equal(error?.code, MemErrors.ERR_MAX_WRITERS)
})
