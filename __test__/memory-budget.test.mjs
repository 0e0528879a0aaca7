// A host's memory under attack (issue 19, item 4): partial frames and client outboxes share one
// budget (`network.maxBuffer`), a frame that stays partial is dropped after 5 s, the connections
// holding the most are dropped first, and a connection costs one file descriptor.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { converge, rendezvousDir, spawnPeer, uniqueName, withTimeout } from './support/peers.mjs'
import { StderrLog, connectRaw, frame, hello } from './support/wire.mjs'

const MB = 1024 * 1024
const linuxOnly = process.platform !== 'linux' && 'reads /proc'
const mb = (bytes) => `${(bytes / MB).toFixed(1)} MB`

/** A field of /proc/<pid>/status in bytes (VmRSS: now, VmHWM: the peak so far). */
function procStatus (pid, field) {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`))
  return Number(line.split(/\s+/)[1]) * 1024
}

const openFds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length

async function startHost (t, name, dir, maxBuffer) {
  // NODE_DEBUG=memsync: the host says why it drops a connection on stderr.
  const host = await spawnPeer(t, name, dir, { data: { big: '' }, options: { network: { maxBuffer } } }, 'host', { env: { ...process.env, NODE_DEBUG: 'memsync' } })
  const log = new StderrLog(host.child)
  assert.equal((await host.request('start')).role, 'host')
  return { host, log, socketPath: path.join(dir, `${name}.sock`) }
}

/** A raw connection that said hello and was welcomed. */
async function joinRaw (socketPath, t) {
  const raw = await connectRaw(socketPath, t)
  await raw.send(frame(hello()))
  assert.equal((await raw.message(2)).t, 'welcome')
  return raw
}

test('stalled partial frames are dropped after 5 s and never hold more than the budget', { skip: linuxOnly, timeout: 60000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('stall')
  const budget = 32 * MB
  const { host, log, socketPath } = await startHost(t, name, dir, budget)
  const before = procStatus(host.pid, 'VmRSS')
  const since = log.mark()
  // Six connections each start a 60 MiB frame and stall after 12 MiB: 72 MiB held without a bound.
  const raws = []
  for (let i = 0; i < 6; i++) {
    const raw = await joinRaw(socketPath, t)
    const header = Buffer.alloc(4)
    header.writeUInt32BE(60 * MB)
    await raw.send(Buffer.concat([header, Buffer.alloc(12 * MB, 0x20)]))
    raws.push(raw)
  }
  const stalled = await host.request('memory')
  const grown = procStatus(host.pid, 'VmHWM') - before
  t.diagnostic(`while stalled: ${mb(stalled.buffered)} buffered, peak RSS growth ${mb(grown)}`)
  assert.ok(grown < budget + 24 * MB, `the host's peak RSS grew by ${mb(grown)}`)
  assert.ok(stalled.buffered <= budget, `the host buffers ${stalled.buffered} bytes`)
  // Two hold 24 MiB; the others were dropped for the budget at once, the largest first.
  assert.ok(stalled.connections <= 3, `${stalled.connections} stalled connections are kept`)
  // The rest are dropped 5 s after their frame's first byte.
  await withTimeout(Promise.all(raws.map((raw) => raw.closed)), 12000, 'the host closes every stalled connection')
  await log.waitFor(/client connection failed: a frame stayed incomplete for 5s \(12582916 bytes received\)/, since)
  const after = await host.request('memory')
  assert.equal(after.buffered, 0)
  assert.equal(after.connections, 0)
})

test('non-reading clients and a flood: the budget holds, the clients holding the most go first, the others keep working', { skip: linuxOnly, timeout: 120000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('flood')
  // Room for the readers' own backlog in a flood (32 MiB queued each at most, plus a write in
  // flight) on a busy machine, not for the silent clients'.
  const budget = 96 * MB
  const { host, socketPath } = await startHost(t, name, dir, budget)
  const readers = []
  for (const label of ['reader0', 'reader1']) {
    // NODE_DEBUG=memsync: a reader says on stderr why it lost the host and how it joined again.
    const reader = await spawnPeer(t, name, dir, {}, label, { env: { ...process.env, NODE_DEBUG: 'memsync' } })
    assert.equal((await reader.request('start')).role, 'client')
    readers.push(reader)
  }
  const marks = readers.map((reader) => reader.mark())
  // Eight clients that stop reading: without a shared bound each may hold 32 MiB (256 MiB).
  const silent = []
  for (let i = 0; i < 8; i++) {
    const raw = await joinRaw(socketPath, t)
    raw.socket.pause()
    silent.push(raw)
  }
  const before = procStatus(host.pid, 'VmRSS')
  await host.request('flood', { count: 1600, size: 64 * 1024 }, 90000)
  const grown = procStatus(host.pid, 'VmHWM') - before
  const { buffered, connections } = await host.request('memory')
  t.diagnostic(`peak RSS growth ${mb(grown)} for a ${mb(budget)} budget; ${mb(buffered)} buffered after the flood`)
  // Generous: the flood's own garbage and the allocator's retained pages come on top (a peak of
  // 8 x 32 MiB and more without the budget).
  assert.ok(grown < budget + 96 * MB, `the host's peak RSS grew by ${mb(grown)}`)
  assert.ok(buffered <= budget, `the host buffers ${buffered} bytes`)
  // Each would hold the whole flood: every one was dropped. (A paused socket sees no close.)
  silent.forEach((raw) => raw.socket.resume())
  await withTimeout(Promise.all(silent.map((raw) => raw.closed)), 10000, 'every non-reading client is dropped')
  assert.equal(connections, 2, 'the reading clients stay connected')
  const states = await converge([host, ...readers], { timeoutMs: 20000 })
  assert.ok(states.every((state) => state.data.big === states[0].data.big))
  // A reader whose JS thread the loaded machine starves may fall 32 MiB behind like any slow
  // consumer, be dropped and resync from a snapshot: what is promised is that it works on, above.
  const resynced = readers.filter((reader, i) => reader.history.slice(marks[i]).some((e) => e.event === 'disconnected'))
  t.diagnostic(`${resynced.length} of the readers were dropped and resynced`)
})

test('a connection costs the host one file descriptor', { skip: linuxOnly, timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('fds')
  const { host, socketPath } = await startHost(t, name, dir, undefined)
  const before = openFds(host.pid)
  const count = 20
  for (let i = 0; i < count; i++) await joinRaw(socketPath, t)
  assert.equal((await host.request('memory')).connections, count)
  const perConnection = (openFds(host.pid) - before) / count
  t.diagnostic(`${perConnection} descriptors per connection`)
  assert.equal(perConnection, 1)
})
