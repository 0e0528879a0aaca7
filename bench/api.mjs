// The cost of the public API in one process, beside mingo on a plain object, in the same run.
import { createRequire } from 'node:module'
import { update as mingoUpdate } from 'mingo/updater'
import { sampleAsync, summarize } from './measure.mjs'

const require = createRequire(import.meta.url)
const { MemSync } = require('../index.js')

/** `dir`: the run's private rendezvous directory. */
export async function benchApi ({ quick, dir }) {
  const samples = quick ? 5 : 15
  const iterations = quick ? 5000 : 20000
  const mem = new MemSync(`bench-api-${process.pid}`, { n: 0, x: 1, user: { name: 'a', age: 1 } }, { dir })
  await mem.start()
  const plain = { n: 0, x: 1, user: { name: 'a', age: 1 } }

  const inc = { $inc: { n: 1 } }
  const set = { $set: { 'user.name': 'b' } }
  const rows = []
  rows.push({ id: 'patch_inc', label: 'await mem.patch({$inc:{n:1}})', memsync: await sampleAsync(() => mem.patch(inc), { samples, iterations }) })
  rows[rows.length - 1].mingo = await sampleAsync(async () => mingoUpdate(plain, inc), { samples, iterations })
  rows.push({ id: 'patch_set', label: "await mem.patch({$set:{'user.name':'b'}})", memsync: await sampleAsync(() => mem.patch(set), { samples, iterations }) })
  rows[rows.length - 1].mingo = await sampleAsync(async () => mingoUpdate(plain, set), { samples, iterations })
  rows.push(await pushOntoLargeArray(dir, { samples, iterations }))

  // Reads: `mem.data.x` exactly as user code writes it, against a plain object, each in its own
  // loop (a shared loop would make its property access polymorphic and favour whichever ran
  // first), with the samples of the two interleaved so that machine noise hits both alike.
  const readIterations = iterations * 50
  const readMem = []
  const readPlain = []
  let sink = 0
  for (let s = 0; s <= samples; s++) {
    let start = process.hrtime.bigint()
    sink += readMemData(mem, readIterations)
    const memNs = Number(process.hrtime.bigint() - start) / readIterations
    start = process.hrtime.bigint()
    sink += readPlainObject(plain, readIterations)
    const plainNs = Number(process.hrtime.bigint() - start) / readIterations
    if (s > 0) { // the first round warms up
      readMem.push(memNs)
      readPlain.push(plainNs)
    }
  }
  if (sink === 0) throw new Error('unreachable: reads were optimised away')
  rows.push({ id: 'read_data', label: 'read mem.data.x (vs a plain object)', memsync: summarize(readMem), plain: summarize(readPlain) })

  const memory = await memoryOverPatches(mem, quick ? 200000 : 1000000)
  await mem.stop()
  return { rows, memory }
}

// $push onto a 100,000-element array, in an instance of its own (the array grows by every
// call, and the memory measure below should not carry it). mingo copies the array on every
// update, about 1,000 times slower, so it gets fewer iterations.
async function pushOntoLargeArray (dir, { samples, iterations }) {
  const items = () => Array.from({ length: 100000 }, (_, i) => ({ id: i }))
  const mem = new MemSync(`bench-api-push-${process.pid}`, { items: items() }, { dir })
  await mem.start()
  const plain = { items: items() }
  const push = { $push: { items: { id: 1, tag: 'new' } } }
  try {
    return {
      id: 'patch_push_100k',
      label: 'await mem.patch({$push:{items:x}}), 100,000 items',
      memsync: await sampleAsync(() => mem.patch(push), { samples, iterations }),
      mingo: await sampleAsync(async () => mingoUpdate(plain, push), { samples, iterations: Math.ceil(iterations / 500) })
    }
  } finally {
    await mem.stop()
  }
}

// Memory after N patches, against memory after the first tenth of them: flat means nothing keeps
// every patch.
async function memoryOverPatches (mem, count) {
  const update = { $inc: { n: 1 } }
  const settle = () => { globalThis.gc?.(); return process.memoryUsage() }
  const tenth = count / 10
  for (let i = 0; i < tenth; i++) await mem.patch(update)
  const early = settle()
  for (let i = tenth; i < count; i++) await mem.patch(update)
  const late = settle()
  return {
    patches: count,
    rssAfterTenthMb: early.rss / 2 ** 20,
    rssAfterAllMb: late.rss / 2 ** 20,
    heapAfterTenthMb: early.heapUsed / 2 ** 20,
    heapAfterAllMb: late.heapUsed / 2 ** 20
  }
}

function readMemData (mem, iterations) {
  let sum = 0
  for (let i = 0; i < iterations; i++) sum += mem.data.x
  return sum
}

function readPlainObject (plain, iterations) {
  let sum = 0
  for (let i = 0; i < iterations; i++) sum += plain.x
  return sum
}
