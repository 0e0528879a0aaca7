// A stopped host (SIGSTOP: a debugger, a frozen container) keeps its lock, yet is replaced: its
// clients elect a new host under the next epoch once it has been silent for options.hostTimeout,
// and the old host, when it resumes, is fenced before it orders anything and rejoins as a client.
// Every acknowledged patch ends up applied exactly once (issue 19, item 8).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import memsync from '../index.js'
import { converge, countOccurrences, rendezvousDir, spawnPeers, uniqueName } from './support/peers.mjs'

const HOST_TIMEOUT_MS = 1000
// The failover after the silence: a heartbeat to confirm it, the old host's lease (a quarter of
// hostTimeout) waited out, and the new host's election and welcome, on a busy machine.
const MARGIN_MS = 1500
const OPTIONS = { timeout: 10000, hostTimeout: HOST_TIMEOUT_MS }

/**
 * Resolves once every thread of `pid` is stopped: SIGSTOP takes effect asynchronously. Node
 * reports no stop event, so this polls /proc, bounded.
 */
async function stopped (pid, timeoutMs = 2000) {
  const deadline = Date.now() + timeoutMs
  const states = () => fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0]
  })
  while (!states().every((state) => state === 'T')) {
    if (Date.now() > deadline) throw new Error(`pid ${pid} did not stop within ${timeoutMs} ms: ${states().join('')}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

function assertEachOnce (log, ids) {
  const counts = countOccurrences(log)
  for (const id of ids) assert.equal(counts.get(id), 1, `${id} is applied exactly once in ${JSON.stringify(log)}`)
  assert.equal(log.length, ids.length, `nothing else: ${JSON.stringify(log)}`)
}

test('a stopped host is replaced after hostTimeout, and when it resumes it is fenced and rejoins as a client', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('stopped')
  const [host, ...clients] = await spawnPeers(t, 3, name, dir, { data: { log: [] }, options: OPTIONS })
  assert.equal((await host.request('start')).role, 'host')
  for (const client of clients) assert.equal((await client.request('start')).role, 'client')
  const before = await Promise.all([host, ...clients].map((peer, i) => peer.request('patch', { update: { $push: { log: `before-${i}` } } })))
  for (const result of before) assert.deepEqual(result, { ok: true })

  host.child.kill('SIGSTOP')
  await stopped(host.pid)
  const began = Date.now()
  const during = await Promise.all(clients.map((client, i) => client.request('patch', { update: { $push: { log: `during-${i}` } } }, HOST_TIMEOUT_MS + MARGIN_MS + 5000)))
  const elapsed = Date.now() - began
  for (const result of during) assert.deepEqual(result, { ok: true })
  assert.ok(elapsed < HOST_TIMEOUT_MS + MARGIN_MS, `accepted after ${elapsed} ms`)
  const replaced = await converge(clients)
  assert.deepEqual(replaced.map((s) => s.status).sort(), ['client', 'host'], 'one of the clients is the new host')

  // Resumed, the old host's first patch is not ordered by it: it goes to the new host.
  host.child.kill('SIGCONT')
  assert.deepEqual(await host.request('patch', { update: { $push: { log: 'resumed' } } }), { ok: true })
  const states = await converge([host, ...clients])
  assert.equal(states[0].status, 'client', 'the old host rejoined as a client')
  assert.equal(states.filter((s) => s.status === 'host').length, 1, 'one host')
  assertEachOnce(states[0].data.log, ['before-0', 'before-1', 'before-2', 'during-0', 'during-1', 'resumed'])
})

test('options.hostTimeout must be a positive number of milliseconds', () => {
  for (const hostTimeout of [0, -1, '1000', NaN, 2 ** 31, null]) {
    assert.throws(() => new memsync.MemSync({ name: 'x', options: { hostTimeout } }), (error) => {
      assert.equal(error.code, 'ERR_INVALID_ARG')
      assert.match(error.message, /options\.hostTimeout must be a positive number of milliseconds/)
      return true
    }, String(hostTimeout))
  }
})
