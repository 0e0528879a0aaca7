// Port of tenbits/memsync test/server.spec.ts (memsync 0.5); only the harness changed: fetch for
// axios, a free port for 8838, and no settling sleep (the host serves once start() resolved).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import memsync from '../../index.js'
import { freePort } from '../support/services.mjs'
import { rendezvousDir, uniqueName, withTimeout } from './support/harness.mjs'

const { MemSync } = memsync

async function get (url) {
  const response = await withTimeout(fetch(url), 5000, `GET ${url}`)
  return { data: await response.json() }
}

test('should observe property', { timeout: 20000 }, async (t) => {
  const port = await freePort()
  const name = uniqueName('inc-server')
  const mem = new MemSync(name, { num: 0 }, {
    dir: rendezvousDir(t),
    logEvents: false,
    server: { port }
  })
  t.after(() => mem.stop())
  await mem.start()

  const { data } = await get(`http://localhost:${port}/${name}`)
  assert.deepEqual(data, { num: 0 })

  await mem.patch({ $set: { num: 5 } })

  const { data: dataAfter } = await get(`http://localhost:${port}/${name}`)
  assert.deepEqual(dataAfter, { num: 5 })
})
