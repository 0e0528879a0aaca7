// The `memsync` command, run as the real binary (bin/memsync.js) against live processes in a
// rendezvous directory of the test's own. Its stdout is a pipe, so it prints JSON.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { rendezvousDir, spawnPeer, uniqueName } from './support/peers.mjs'
import { BIN, runCli, startCli } from './support/services.mjs'

async function cli (args) {
  const result = await runCli(args)
  return { ...result, json: result.code === 0 && result.stdout !== '' ? JSON.parse(result.stdout) : undefined }
}

function assertFails (result, pattern) {
  assert.equal(result.code, 1, `exit code 1; stderr: ${result.stderr}`)
  assert.equal(result.stdout, '')
  assert.match(result.stderr, pattern)
}

test('ls lists the live objects only, with their host, clients and version', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  assert.deepEqual((await cli(['ls', '--dir', dir])).json, [], 'a directory that does not exist yet holds nothing')
  const [a, b, dead] = [uniqueName('ls-a'), uniqueName('ls-b'), uniqueName('ls-dead')]
  const hostA = await spawnPeer(t, a, dir, { data: { x: 1 } }, 'a')
  assert.equal((await hostA.request('start')).role, 'host')
  const clientA = await spawnPeer(t, a, dir, {}, 'a-client')
  assert.equal((await clientA.request('start')).role, 'client')
  assert.deepEqual(await hostA.request('patch', { update: { $inc: { x: 1 } } }), { ok: true })
  const hostB = await spawnPeer(t, b, dir, {}, 'b')
  assert.equal((await hostB.request('start')).role, 'host')
  // A host killed by a signal leaves its socket file behind: not live.
  const killed = await spawnPeer(t, dead, dir, {}, 'dead')
  assert.equal((await killed.request('start')).role, 'host')
  await killed.kill('SIGKILL')
  assert.ok(fs.existsSync(path.join(dir, `${dead}.sock`)))

  const { code, json } = await cli(['ls', '--dir', dir])
  assert.equal(code, 0)
  assert.deepEqual(json, [
    { name: a, hostPid: hostA.pid, version: 1, clients: 1 },
    { name: b, hostPid: hostB.pid, version: 0, clients: 0 }
  ].sort((x, y) => x.name.localeCompare(y.name)))
})

test('get prints the object or a sub-value; a missing path or an unknown name fails with exit code 1', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('get')
  const host = await spawnPeer(t, name, dir, { data: { user: { name: 'ann', tags: ['a', 'b'] }, n: 0 } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  assert.deepEqual(await host.request('patch', { update: { $inc: { n: 3 } } }), { ok: true })

  assert.deepEqual((await cli(['get', name, '--dir', dir])).json, { user: { name: 'ann', tags: ['a', 'b'] }, n: 3 })
  assert.deepEqual((await cli(['get', name, 'user.tags.1', '--dir', dir])).json, 'b')
  assert.deepEqual((await cli(['get', name, 'n', '--dir', dir])).json, 3)
  assertFails(await cli(['get', name, 'user.nope', '--dir', dir]), /has no value at 'user\.nope'/)

  const started = Date.now()
  assertFails(await cli(['get', 'no-such-object', '--dir', dir, '--timeout', '10000']), /no live object named 'no-such-object'/)
  assert.ok(Date.now() - started < 5000, 'an unknown name fails at once, without waiting for a host')
  assertFails(await cli(['get', 'x'.repeat(1025), '--dir', dir]), /ERR_INVALID_NAME/)
})

test('any name works with ls, status and get: its file name comes from the native mapping', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const odd = `app:cache/../${uniqueName('my object')} ü`
  const long = uniqueName('long').padEnd(200, 'x')
  const hosts = {}
  for (const name of [odd, long]) {
    hosts[name] = await spawnPeer(t, name, dir, { data: { name } }, name.slice(0, 20))
    assert.equal((await hosts[name].request('start')).role, 'host')
  }
  assert.deepEqual(fs.readdirSync(path.join(dir, '..')), ['rdv'], 'nothing escaped the rendezvous directory')
  for (const name of [odd, long]) {
    assert.deepEqual((await cli(['status', name, '--dir', dir])).json, { name, hostPid: hosts[name].pid, version: 0, clients: 0 })
    assert.deepEqual((await cli(['get', name, 'name', '--dir', dir])).json, name)
  }
  const listed = (await cli(['ls', '--dir', dir])).json
  assert.deepEqual(listed.find((o) => o.name === odd), { name: odd, hostPid: hosts[odd].pid, version: 0, clients: 0 })
  // A long name is hashed into its file name: listed by that file.
  const hashed = listed.filter((o) => o.name === null)
  assert.equal(hashed.length, 1, JSON.stringify(listed))
  assert.match(hashed[0].file, /^long-[^~]*~[0-9a-f]{32}\.sock$/)
})

test('patch applies an update through the host; bad JSON and a rejected update fail with exit code 1', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('patch')
  const host = await spawnPeer(t, name, dir, { data: { n: 1, s: 'text', list: [] } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const client = await spawnPeer(t, name, dir, {}, 'client')
  assert.equal((await client.request('start')).role, 'client')

  const done = await cli(['patch', name, '{"$inc":{"n":41},"$push":{"list":"cli"}}', '--dir', dir])
  assert.equal(done.code, 0, done.stderr)
  assert.deepEqual(done.json, { name, version: 1 })
  await host.request('waitFor', { path: 'n', value: 42 })
  await client.request('waitFor', { path: 'list', value: ['cli'] })

  assertFails(await cli(['patch', name, '{"$inc":{"n":1}', '--dir', dir]), /the update is not valid JSON/)
  assertFails(await cli(['patch', name, '[1,2]', '--dir', dir]), /must be a JSON object/)
  assertFails(await cli(['patch', name, '{"$inc":{"s":1}}', '--dir', dir]), /ERR_TYPE_MISMATCH/)
  assertFails(await cli(['patch', name, '{"$frob":{"n":1}}', '--dir', dir]), /ERR_UNKNOWN_OPERATOR/)
  assertFails(await cli(['patch', 'no-such-object', '{"$inc":{"n":1}}', '--dir', dir]), /no live object named 'no-such-object'/)
  const state = await host.request('state')
  assert.deepEqual(state.data, { n: 42, s: 'text', list: ['cli'] }, 'nothing else changed')
  assert.equal(state.version, 1)
})

test('status shows the host pid, its clients and the version', { timeout: 20000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('status')
  const host = await spawnPeer(t, name, dir, { data: { n: 0 } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  for (const label of ['c1', 'c2']) {
    const client = await spawnPeer(t, name, dir, {}, label)
    assert.equal((await client.request('start')).role, 'client')
  }
  await host.request('write', { kind: 'inc', count: 5 })
  assert.deepEqual((await cli(['status', name, '--dir', dir])).json, { name, hostPid: host.pid, version: 5, clients: 2 })
  assertFails(await cli(['status', 'no-such-object', '--dir', dir]), /no live object named 'no-such-object'/)
})

test('watch streams the object and then every patch; with a path, the value as it changes', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('watch')
  const host = await spawnPeer(t, name, dir, { data: { n: 0, other: 0 } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  assert.deepEqual(await host.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })

  const all = startCli(t, ['watch', name, '--dir', dir])
  const value = startCli(t, ['watch', name, 'n', '--dir', dir])
  assert.deepEqual(await all.line(), { version: 1, data: { n: 1, other: 0 } })
  // A first line means the watcher was welcomed, so the host sends it every later patch.
  assert.deepEqual(await value.line(), { version: 1, value: 1 })

  assert.deepEqual(await host.request('patch', { update: { $inc: { other: 1 } } }), { ok: true })
  assert.deepEqual(await host.request('patch', { update: { $inc: { n: 10 } } }), { ok: true })
  const first = await all.line()
  assert.deepEqual({ ...first, timestamp: 0 }, { version: 2, timestamp: 0, patch: { $inc: { other: 1 } } })
  assert.deepEqual((await all.line()).patch, { $inc: { n: 10 } })
  assert.deepEqual(await value.line(), { version: 3, value: 11 }, 'a patch of another path prints nothing')

  for (const watcher of [all, value]) {
    watcher.child.kill('SIGINT')
    assert.deepEqual(await watcher.exit, { code: 0, signal: null })
  }
})

test('watch never becomes host: with its host killed it waits, and follows the next host', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('watch-failover')
  const host = await spawnPeer(t, name, dir, { data: { n: 1 } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const watcher = startCli(t, ['watch', name, '--dir', dir])
  assert.deepEqual(await watcher.line(), { version: 0, data: { n: 1 } })

  await host.kill('SIGKILL')
  assert.deepEqual((await cli(['ls', '--dir', dir])).json, [], 'nobody took over: the watcher is no host')
  const next = await spawnPeer(t, name, dir, { data: { n: 100 } }, 'next')
  assert.equal((await next.request('start')).role, 'host', 'the next process starts the network')
  assert.deepEqual(await watcher.line(), { version: 0, data: { n: 100 } }, 'the watcher shows the new host\'s object')
  assert.deepEqual(await next.request('patch', { update: { $inc: { n: 1 } } }), { ok: true })
  assert.deepEqual((await watcher.line()).patch, { $inc: { n: 1 } })
  assert.match(watcher.stderr(), /lost the host/)
})

test('--help on every command; usage errors exit with 2', { timeout: 20000 }, async () => {
  for (const command of ['ls', 'get', 'watch', 'patch', 'status']) {
    const { code, stdout } = await runCli([command, '--help'])
    assert.equal(code, 0, command)
    assert.match(stdout, new RegExp(`^Usage: memsync ${command}`), command)
  }
  const help = await runCli(['--help'])
  assert.equal(help.code, 0)
  for (const command of ['ls', 'get', 'watch', 'patch', 'status']) assert.match(help.stdout, new RegExp(`\\n  ${command}`))
  for (const args of [[], ['frob'], ['get'], ['get', 'a', 'b', 'c'], ['ls', '--bogus'], ['get', 'a', '--timeout', 'soon']]) {
    const { code, stderr } = await runCli(args)
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`)
    assert.notEqual(stderr, '')
  }
  assert.ok(fs.statSync(BIN).mode & 0o100, 'the binary is executable')
})
