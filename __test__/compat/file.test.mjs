// Port of tenbits/memsync test/file.spec.ts (memsync 0.5); only the harness changed: the store
// fixture is read from this folder, and the written file goes to a fresh temporary directory whose
// `tmp` folder does not exist, as the original's test/tmp did not.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import memsync from '../../index.js'
import { dataDir } from '../support/services.mjs'
import { fixture, rendezvousDir, uniqueName } from './support/harness.mjs'

const { MemSync } = memsync

test('load data from store', { timeout: 20000 }, async (t) => {
  const reader = new MemSync(uniqueName('storage'), { num: 0 }, {
    dir: rendezvousDir(t),
    file: {
      path: fixture('store.json')
    }
  })
  t.after(() => reader.stop())
  await reader.start()
  assert.equal(reader.data.num, 12)

  await reader.stop()
})

test('write data to store', { timeout: 20000 }, async (t) => {
  const store = path.join(dataDir(t), 'tmp', 'store.json')
  const reader = new MemSync(uniqueName('storage'), { num: 0 }, {
    dir: rendezvousDir(t),
    file: {
      path: store
    }
  })
  t.after(() => reader.stop())
  await reader.start()

  const num = Date.now()
  await reader.patch({
    $set: { num }
  })
  await reader.flush()
  await reader.stop()

  const { data } = JSON.parse(fs.readFileSync(store, 'utf8'))
  assert.equal(data.num, num)
})
