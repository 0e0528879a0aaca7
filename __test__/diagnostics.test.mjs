// What the addon says reaches the application the Node way: failures as `error` events (on stderr
// only when nobody listens), everything else as NODE_DEBUG=memsync lines tagged with the object's
// name and pid. A host whose clients misbehave or die writes nothing to stderr by itself.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { rendezvousDir, spawnPeer, uniqueName, withTimeout } from './support/peers.mjs'
import { runFixture } from './support/child.mjs'
import { StderrLog, connectRaw, frame, hello } from './support/wire.mjs'

const withDebug = (value) => {
  const env = { ...process.env }
  delete env.NODE_DEBUG
  if (value !== undefined) env.NODE_DEBUG = value
  return { env }
}

/** Until the host counts `connections` clients; bounded. */
async function waitConnections (host, connections, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const state = await host.request('state')
    if (state.connections === connections) return
    if (Date.now() > deadline) throw new Error(`the host still counts ${state.connections} connections, not ${connections}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * A host of a fresh name, a client of it killed with SIGKILL, and a raw connection that sends a
 * frame that is not JSON after its hello: resolves with the host's stderr once it has dropped both.
 */
async function hostThroughBadClients (t, debug) {
  const dir = rendezvousDir(t)
  const name = uniqueName('quiet')
  const host = await spawnPeer(t, name, dir, { data: { n: 0 } }, 'host', withDebug(debug))
  const log = new StderrLog(host.child)
  assert.equal((await host.request('start')).role, 'host')
  const client = await spawnPeer(t, name, dir, {}, 'client', withDebug(debug))
  assert.equal((await client.request('start')).role, 'client')
  assert.deepEqual(await client.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
  await client.kill()
  const raw = await connectRaw(path.join(dir, `${name}.sock`), t)
  await raw.send(frame(hello()))
  assert.equal((await raw.message(2)).t, 'welcome')
  await raw.send(frame('{"t":"patch",'))
  await withTimeout(raw.closed, 5000, 'the host closes the bad connection')
  await waitConnections(host, 0)
  assert.deepEqual((await host.request('patch', { update: { $inc: { n: 1 } } })), { ok: true })
  return { name, pid: host.pid, log }
}

test('a host writes nothing to stderr when a client is killed or sends garbage, without NODE_DEBUG', { timeout: 30000 }, async (t) => {
  const { log } = await hostThroughBadClients(t, undefined)
  assert.equal(log.text, '')
})

test('with NODE_DEBUG=memsync, the host says why it dropped a connection, each line tagged with the name and pid', { timeout: 30000 }, async (t) => {
  const { name, pid, log } = await hostThroughBadClients(t, 'memsync')
  await log.waitFor(/client connection failed: protocol error: frame is not valid JSON/)
  const lines = log.text.split('\n').filter(Boolean)
  assert.ok(lines.length > 0)
  for (const line of lines) {
    assert.match(line, new RegExp(`^MEMSYNC ${pid}: memsync '${name}' \\(pid ${pid}\\) `))
  }
})

test('NODE_DEBUG naming other modules shows no memsync line', { timeout: 30000 }, async (t) => {
  const { log } = await hostThroughBadClients(t, 'net,http')
  assert.doesNotMatch(log.text, /MEMSYNC|client connection failed/)
})

/** Runs the save-fails fixture (`mode`: 'listen' or 'silent') under a dangling symlink. */
async function saveFails (t, mode) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-save-'))
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }))
  const plain = path.join(tmp, 'plain')
  fs.symlinkSync(path.join(tmp, 'nowhere'), plain)
  const run = await runFixture('save-fails.mjs', [path.join(tmp, 'rdv'), path.join(plain, 'data.json'), mode], withDebug(undefined))
  assert.equal(run.code, 0, run.stderr)
  return run
}

test('a failed save is an error event, and nothing is written to stderr, when the application listens for errors', { timeout: 30000 }, async (t) => {
  const { stdout, stderr } = await saveFails(t, 'listen')
  assert.match(stdout, /^error event: ERR_STORAGE$/m)
  assert.match(stdout, /^flush: ERR_STORAGE$/m)
  assert.equal(stderr, '')
})

test('a failed save nobody listens for goes to stderr once, tagged with the name and pid', { timeout: 30000 }, async (t) => {
  const { stdout, stderr } = await saveFails(t, 'silent')
  assert.match(stdout, /^flush: ERR_STORAGE$/m)
  const reports = stderr.match(/^memsync 'save-fails-(\d+)' \(pid (\d+)\): .*cannot save/gm) ?? []
  assert.equal(reports.length, 1, stderr)
  const [, namePid, pid] = /^memsync 'save-fails-(\d+)' \(pid (\d+)\)/m.exec(stderr)
  assert.equal(namePid, pid)
})
