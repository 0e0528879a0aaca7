// `npm run bench [-- --quick]`: every benchmark of memsync beside its reference, measured in the
// same run; a table on screen and bench/results.json on disk.
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { benchApi } from './api.mjs'
import { benchEngine } from './engine.mjs'
import { formatNs } from './measure.mjs'
import { benchSync, syncTable } from './sync.mjs'

const quick = process.argv.includes('--quick')

const machine = {
  cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'unknown'}`,
  memoryGb: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${os.platform()} ${os.release()}`
}

console.log(`memsync benchmarks${quick ? ' (quick)' : ''} on ${machine.cpus}, Node ${machine.node}\n`)
const engine = benchEngine({ quick })
const api = await benchApi({ quick })
const sync = await benchSync({ quick })

const lines = []
lines.push('| patch engine (Rust, per update) | memsync | mingo | memsync speed-up |')
lines.push('|---|---:|---:|---:|')
for (const row of engine) {
  lines.push(`| ${row.label} | ${formatNs(row.memsync.median)} | ${formatNs(row.mingo.median)} | ${row.speedup.toFixed(1)}x |`)
}
lines.push('')
lines.push('| MemSync API (Node, per call) | memsync | reference | ratio |')
lines.push('|---|---:|---:|---:|')
for (const row of api.rows) {
  const reference = row.mingo ?? row.plain
  const name = row.mingo ? 'mingo' : 'plain object'
  lines.push(`| ${row.label} | ${formatNs(row.memsync.median)} | ${formatNs(reference.median)} (${name}) | ${(row.memsync.median / reference.median).toFixed(2)}x |`)
}
const { memory } = api
lines.push('')
lines.push(`Memory over ${memory.patches.toLocaleString('en')} patches: RSS ${memory.rssAfterTenthMb.toFixed(1)} MB after the first tenth, ${memory.rssAfterAllMb.toFixed(1)} MB after all; JS heap ${memory.heapAfterTenthMb.toFixed(1)} MB -> ${memory.heapAfterAllMb.toFixed(1)} MB.`)
lines.push('')
lines.push(syncTable(sync))
lines.push('')
lines.push('Medians of repeated samples (engine: criterion median with its confidence interval in results.json).')
const table = lines.join('\n')
console.log(table)

const out = fileURLToPath(new URL('results.json', import.meta.url))
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), quick, machine, engine, api, sync, table }, null, 2) + '\n')
console.log(`\nwritten to ${out}`)
