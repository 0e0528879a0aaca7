// A hung host (SIGSTOP): clients' patches and a newcomer's start() reject with ERR_TIMEOUT after
// options.timeout instead of waiting forever, and everything recovers when the host resumes
// (SIGCONT) or dies (SIGKILL, then failover). Timed-out patches stay queued: each ends up
// applied exactly once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { converge, countOccurrences, rendezvousDir, spawnPeer, spawnPeers, uniqueName, withTimeout } from './support/peers.mjs'

const TIMEOUT_MS = 500
const OPTIONS = { timeout: TIMEOUT_MS }

/** A host and two clients of a fresh name, with `{ log: [] }`. */
async function network (t) {
  const dir = rendezvousDir(t)
  const name = uniqueName('hung')
  const [host, ...clients] = await spawnPeers(t, 3, name, dir, { data: { log: [] }, options: OPTIONS })
  assert.equal((await host.request('start')).role, 'host')
  for (const client of clients) assert.equal((await client.request('start')).role, 'client')
  return { dir, name, host, clients }
}

/**
 * Resolves once every thread of `pid` is stopped: SIGSTOP takes effect asynchronously, and a
 * thread that still runs could order a patch. Node reports no stop event, so this polls /proc,
 * bounded.
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

/** While the host is stopped, each client's patch times out, and so does a newcomer's start(). */
async function hangHost (t, { dir, name, host, clients }) {
  host.child.kill('SIGSTOP')
  await stopped(host.pid)
  const began = Date.now()
  const results = await Promise.all(clients.map((client, i) => client.request('patch', { update: { $push: { log: `during-${i}` } } }, 5000)))
  const elapsed = Date.now() - began
  for (const result of results) {
    assert.equal(result.error, 'ERR_TIMEOUT', JSON.stringify(result))
    assert.match(result.message, /did not accept the patch within 500 ms; it stays queued/)
  }
  assert.ok(elapsed >= TIMEOUT_MS && elapsed < TIMEOUT_MS + 2000, `rejected after ${elapsed} ms`)
  // Each client shows its own patch meanwhile.
  for (const [i, client] of clients.entries()) {
    assert.deepEqual((await client.request('state')).data.log, [`during-${i}`])
  }
  // start() gives up after its timeout, and its stop() does not wait for the hung host's welcome.
  const newcomer = await spawnPeer(t, name, dir, { data: { log: ['newcomer'] }, options: OPTIONS }, 'newcomer')
  const starting = Date.now()
  await assert.rejects(newcomer.request('start', {}, 5000), /No host for .* within 500 ms/)
  const waited = Date.now() - starting
  assert.ok(waited < TIMEOUT_MS + 1000, `start() rejected after ${waited} ms`)
  return newcomer
}

function assertEachOnce (log, ids) {
  const counts = countOccurrences(log)
  for (const id of ids) assert.equal(counts.get(id), 1, `${id} is applied exactly once in ${JSON.stringify(log)}`)
  assert.equal(log.length, ids.length, `nothing else: ${JSON.stringify(log)}`)
}

test('a stopped host makes patches and start() time out; after SIGCONT everything converges and the timed-out patches apply once', { timeout: 20000 }, async (t) => {
  const net = await network(t)
  const { host, clients } = net
  const newcomer = await hangHost(t, net)

  host.child.kill('SIGCONT')
  const states = await converge([host, ...clients])
  assertEachOnce(states[0].data.log, ['during-0', 'during-1'])
  assert.equal(states[0].status, 'host', 'the same host')
  // New patches are accepted at once again, and the newcomer can join now.
  assert.deepEqual(await clients[0].request('patch', { update: { $push: { log: 'after' } } }), { ok: true })
  assert.equal((await newcomer.request('start')).role, 'client')
  const after = await converge([host, ...clients, newcomer])
  assertEachOnce(after[0].data.log, ['during-0', 'during-1', 'after'])
})

test('a stopped host that is then killed: a client takes over and the timed-out patches apply once', { timeout: 20000 }, async (t) => {
  const net = await network(t)
  const { host, clients } = net
  await hangHost(t, net)

  const marks = clients.map((client) => client.mark())
  await host.kill('SIGKILL')
  await Promise.all(clients.map((client, i) => client.waitEvent('connected', { since: marks[i] })))
  const states = await converge(clients)
  assert.equal(states.filter((s) => s.status === 'host').length, 1, 'one new host')
  assertEachOnce(states[0].data.log, ['during-0', 'during-1'])
  const results = await Promise.all(clients.map((client, i) => client.request('patch', { update: { $push: { log: `after-${i}` } } })))
  for (const result of results) assert.deepEqual(result, { ok: true })
  const after = await withTimeout(converge(clients), 10000, 'convergence after failover')
  assertEachOnce(after[0].data.log, ['during-0', 'during-1', 'after-0', 'after-1'])
})
