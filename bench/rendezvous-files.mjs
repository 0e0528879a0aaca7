// `node bench/rendezvous-files.mjs [--names 10000]`: what names leave in the rendezvous directory
// (issue 15), in a fresh temporary directory removed at the end.
//
// 1. Starts and stops --names names one after the other, and counts the files left.
// 2. Leaves the files of --names hosts killed by a signal (an empty `<stem>.lock`, and for one name
//    in ten a second epoch's `<stem>~1.lock` too), then times the start of another name (which
//    removes them), counts the files left, and times a start in the cleaned directory.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import memsync from '../index.js'

const { MemSync } = memsync
const { values } = parseArgs({ options: { names: { type: 'string', default: '10000' } } })
const count = Number(values.names)

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-bench-rendezvous-'))
const files = (dir) => (fs.existsSync(dir) ? fs.readdirSync(dir).length : 0)

/** Starts and stops one instance of `name` in `dir`; resolves with the ms start() took. */
async function startAndStop (name, dir) {
  const mem = new MemSync(name, {}, { dir })
  const started = performance.now()
  await mem.start()
  const ms = performance.now() - started
  await mem.stop()
  return ms
}

try {
  const churned = path.join(root, 'churned')
  const started = performance.now()
  for (let i = 0; i < count; i++) await startAndStop(`name-${i}`, churned)
  const seconds = (performance.now() - started) / 1000
  console.log(`${count} names started and stopped in ${seconds.toFixed(1)} s: ${files(churned)} files left`)

  const stale = path.join(root, 'stale')
  fs.mkdirSync(stale, { mode: 0o700 })
  for (let i = 0; i < count; i++) {
    fs.writeFileSync(path.join(stale, `dead-${i}.lock`), '')
    if (i % 10 === 0) fs.writeFileSync(path.join(stale, `dead-${i}~1.lock`), '')
  }
  const before = files(stale)
  const first = await startAndStop('fresh', stale)
  const after = files(stale)
  const second = await startAndStop('fresh', stale)
  console.log(`start() among ${before} stale files: ${first.toFixed(1)} ms, ${after} files left; ` +
    `the next start(): ${second.toFixed(1)} ms`)
} finally {
  fs.rmSync(root, { recursive: true, force: true })
}
