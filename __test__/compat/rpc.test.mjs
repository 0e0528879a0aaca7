// Port of tenbits/memsync test/rpc.spec.ts (memsync 0.5); only the harness changed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../../index.js'
import { Shell, has, rendezvousDir, uniqueName } from './support/harness.mjs'

const { MemSync } = memsync

test('execute RPC', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('rpcCheck')
  const rpcProc = new Shell(t, { script: 'rpc-host.mjs', args: [name, dir], matchReady: /Started/ })
  t.after(() => rpcProc.terminate())

  await rpcProc.onReadyAsync()

  const reader = new MemSync({
    name,
    rpc: {
      getKey () {
        throw new Error('Not the RPC')
      }
    },
    options: {
      dir,
      timeout: 2000,
      logEvents: false
    }
  })
  t.after(() => reader.stop())

  await reader.start()

  const status = await reader.getStatus()
  has(status, {
    status: 'client',
    host: {
      started: true
    }
  })

  const { result: value } = await reader.call('getBar')
  assert.equal(value.name, 'BarHost')
  assert.equal(value.date, new Date().getDate())
})
