// Other users and planted files: the rendezvous directory (0700) and socket (0600) refuse a
// process of another uid, and files created in advance (a directory another user owns, a shared
// directory, a file, directory, symlink or live impostor socket at the socket path) never make a
// process connect to an impostor: the next start works, or fails with ERR_RENDEZVOUS and why.
// The tests that switch uid need root; they are skipped otherwise.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import memsync from '../index.js'
import { rendezvousDir, spawnPeer, uniqueName, withTimeout } from './support/peers.mjs'

const { MemSync } = memsync
const NOBODY = 65534
const IS_ROOT = process.getuid?.() === 0
const NEEDS_ROOT = 'needs root, to run a process as another user (uid 65534)'
const ROOT = new URL('..', import.meta.url).pathname
const INDEX = path.join(ROOT, 'index.js')
const require = createRequire(import.meta.url)
const { platformSuffix } = require('../lib/platform.js')
const OPTIONS = { timeout: 2000 }

/**
 * Runs `code` (an ES module body) in a Node process with `env` (and, given `uid`, as that user and
 * group) and resolves with the JSON it prints last. Killed when the test ends.
 */
function run (t, code, { uid, env = {} } = {}) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, ...env },
    ...(uid === undefined ? {} : { uid, gid: uid })
  })
  t.after(() => child.kill('SIGKILL'))
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => { stdout += chunk })
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const exited = once(child, 'exit').then(([code]) => {
    const last = stdout.trim().split('\n').at(-1)
    try {
      return JSON.parse(last)
    } catch {
      throw new Error(`exit ${code}, stdout: ${stdout}, stderr: ${stderr}`)
    }
  })
  const result = withTimeout(exited, 10000, `child running ${code.slice(0, 80)}...`)
  // Some children are killed, their result never read.
  result.catch(() => {})
  return { child, result, output: () => stdout }
}

/** What a process of another user gets trying to reach `dir` and its files: error codes by attempt. */
const PROBES = (dir, name) => `
import fs from 'node:fs'
import net from 'node:net'
const dir = ${JSON.stringify(dir)}
const socket = dir + '/' + ${JSON.stringify(name)} + '.sock'
const lock = dir + '/' + ${JSON.stringify(name)} + '.lock'
const results = {}
async function attempt (label, fn) {
  try { await fn(); results[label] = 'ok' } catch (error) { results[label] = error.code }
}
const connect = (path) => new Promise((resolve, reject) => {
  const s = net.createConnection(path)
  s.on('connect', () => { s.destroy(); resolve() })
  s.on('error', reject)
})
await attempt('connect to the socket', () => connect(socket))
await attempt('list the directory', () => fs.readdirSync(dir))
await attempt('create a file', () => fs.writeFileSync(dir + '/planted', 'x'))
await attempt('open the lock', () => fs.openSync(lock, 'r'))
await attempt('stat the socket', () => fs.statSync(socket))
await attempt('remove the socket', () => fs.unlinkSync(socket))
await attempt('plant a socket', () => new Promise((resolve, reject) => {
  const server = net.createServer().listen(dir + '/other.sock', () => { server.close(); resolve() })
  server.on('error', reject)
}))
console.log(JSON.stringify(results))
`

/**
 * The package as another user can read it: the files it publishes, its binary and its dependencies,
 * copied into a directory of mode 0755. The checkout itself may sit under a private (0700) home.
 * Resolves to the copy's index.js.
 */
function readableCopy (t) {
  const dir = tempDir(t, 0o755)
  const { files, dependencies } = require('../package.json')
  const entries = [...files, 'package.json', `memsync.${platformSuffix()}.node`,
    ...Object.keys(dependencies).map((dependency) => path.join('node_modules', dependency))]
  for (const entry of entries) fs.cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true })
  const makeReadable = (file) => {
    const directory = fs.statSync(file).isDirectory()
    fs.chmodSync(file, directory ? 0o755 : 0o644)
    if (directory) for (const child of fs.readdirSync(file)) makeReadable(path.join(file, child))
  }
  makeReadable(dir)
  return path.join(dir, 'index.js')
}

/**
 * As uid 65534: runs `prepare` (code that makes `dir` its own), then listens at the socket path of
 * `name` in `dir`, counting connections, until its stdin ends; `result` is then `{ connections }`.
 */
async function listenAsImpostor (t, dir, name, prepare) {
  const impostor = run(t, `
    import fs from 'node:fs'
    import net from 'node:net'
    const dir = ${JSON.stringify(dir)}
    ${prepare}
    let connections = 0
    const server = net.createServer((socket) => { connections++; socket.destroy() })
    server.listen(dir + '/' + ${JSON.stringify(name)} + '.sock', () => console.log('listening'))
    process.stdin.on('end', () => { console.log(JSON.stringify({ connections })); process.exit(0) })
    process.stdin.resume()
  `, { uid: NOBODY })
  await withTimeout(new Promise((resolve) => impostor.child.stdout.on('data', () => { if (impostor.output().includes('listening')) resolve() })), 5000, 'the impostor listens')
  return impostor
}

/** `mkdtemp` under the system temp directory, with `mode`, removed when the test ends. */
function tempDir (t, mode) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-users-'))
  fs.chmodSync(dir, mode)
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('the rendezvous directory and socket refuse a process of another user', { timeout: 30000, skip: !IS_ROOT && NEEDS_ROOT }, async (t) => {
  const dir = rendezvousDir(t)
  // Let everyone reach the rendezvous directory's entry: what refuses them must be memsync's own modes.
  fs.chmodSync(path.dirname(dir), 0o755)
  const name = uniqueName('users')
  const host = await spawnPeer(t, name, dir, { data: { secret: 1 }, options: OPTIONS }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const mode = (file) => fs.statSync(file).mode & 0o777
  assert.equal(mode(dir), 0o700)
  assert.equal(mode(path.join(dir, `${name}.sock`)), 0o600)
  assert.equal(mode(path.join(dir, `${name}.lock`)), 0o600)

  const everything = ['connect to the socket', 'list the directory', 'create a file', 'open the lock', 'stat the socket', 'remove the socket', 'plant a socket']
  const refused = await run(t, PROBES(dir, name), { uid: NOBODY }).result
  assert.deepEqual(refused, Object.fromEntries(everything.map((attempt) => [attempt, 'EACCES'])))

  // Even with the directory open to traversal, the socket's own mode refuses a connection.
  fs.chmodSync(dir, 0o711)
  try {
    const throughSocket = await run(t, PROBES(dir, name), { uid: NOBODY }).result
    assert.equal(throughSocket['connect to the socket'], 'EACCES')
    assert.equal(throughSocket['open the lock'], 'EACCES')
    assert.equal(throughSocket['create a file'], 'EACCES')
  } finally {
    fs.chmodSync(dir, 0o700)
  }

  // memsync itself, run by the other user on this directory, refuses it as not its own.
  const joined = await run(t, `
    import memsync from ${JSON.stringify(readableCopy(t))}
    const mem = new memsync.MemSync(${JSON.stringify(name)}, {}, { dir: ${JSON.stringify(dir)}, timeout: 2000 })
    try { console.log(JSON.stringify({ role: await mem.start() })) } catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })) }
  `, { uid: NOBODY }).result
  assert.equal(joined.code, 'ERR_RENDEZVOUS', JSON.stringify(joined))
  assert.match(joined.message, /belongs to uid 0, not to this process's uid 65534; another user could plant a socket in it: remove it, or pass another `dir`/)

  assert.deepEqual(fs.readdirSync(dir).sort(), [`${name}.lock`, `${name}.sock`], 'nothing was planted')
  assert.deepEqual(await host.request('patch', { update: { $inc: { secret: 1 } } }), { ok: true })
  assert.deepEqual((await host.request('state')).data, { secret: 2 })
})

test('another user who creates the default rendezvous directory first cannot impersonate the host', { timeout: 30000, skip: !IS_ROOT && NEEDS_ROOT }, async (t) => {
  // A shared temp directory (sticky, like /tmp) stands in for the system one: TMPDIR points there.
  const tmp = tempDir(t, 0o1777)
  const name = uniqueName('squat')
  const squatted = path.join(tmp, `memsync-${process.getuid()}`)
  const impostor = await listenAsImpostor(t, squatted, name, `
    fs.mkdirSync(dir)
    fs.chmodSync(dir, 0o777)
  `)
  assert.equal(fs.statSync(squatted).uid, NOBODY)

  // A process of ours with the default directory (no options.dir, no XDG_RUNTIME_DIR).
  for (const clientOnly of [false, true]) {
    const victim = await run(t, `
      import memsync from ${JSON.stringify(INDEX)}
      const mem = new memsync.MemSync(${JSON.stringify(name)}, {}, { timeout: 2000, clientOnly: ${clientOnly} })
      try { console.log(JSON.stringify({ role: await mem.start() })) } catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })) }
    `, { env: { TMPDIR: tmp } }).result
    assert.equal(victim.code, 'ERR_RENDEZVOUS', JSON.stringify(victim))
    assert.ok(victim.message.includes(`${squatted} belongs to uid ${NOBODY}, not to this process's uid 0`), victim.message)
  }
  impostor.child.stdin.end()
  assert.deepEqual(await impostor.result, { connections: 0 }, 'nobody connected to the impostor')
})

test('after a failover, a rendezvous directory another user replaced is refused, and nothing reaches the impostor', { timeout: 30000, skip: !IS_ROOT && NEEDS_ROOT }, async (t) => {
  // options.dir under a directory every user may write (mode 0777, not sticky).
  const parent = tempDir(t, 0o777)
  const dir = path.join(parent, 'rdv')
  const name = uniqueName('moved')
  const host = await spawnPeer(t, name, dir, { data: { secret: 1 }, options: OPTIONS }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const client = await spawnPeer(t, name, dir, { options: OPTIONS }, 'client')
  assert.equal((await client.request('start')).role, 'client')
  const mark = client.mark()

  // The other user moves the directory aside, makes a new private one of its own, holds the lock
  // and listens at the socket path.
  const impostor = await listenAsImpostor(t, dir, name, `
    fs.renameSync(dir, dir + '.moved')
    fs.mkdirSync(dir, { mode: 0o700 })
    fs.writeFileSync(dir + '/' + ${JSON.stringify(name)} + '.lock', '')
  `)

  await host.kill()
  const refused = await client.waitEvent('error', { since: mark, predicate: (e) => /ERR_RENDEZVOUS|belongs to uid/.test(e.message), timeoutMs: 10000 })
  assert.match(refused.message, new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} belongs to uid ${NOBODY}, not to this process's uid 0`))
  impostor.child.stdin.end()
  assert.deepEqual(await impostor.result, { connections: 0 }, 'the client never connected to the impostor')
})

/** Starts an in-process instance; resolves with its role, or the error's code and message. */
async function outcome (t, name, dir, options = {}) {
  const mem = new MemSync(name, { owner: 'us' }, { dir, ...OPTIONS, ...options })
  t.after(() => mem.stop())
  try {
    return { role: await mem.start(), mem }
  } catch (error) {
    return { code: error.code, message: error.message }
  }
}

/** A rendezvous directory made in advance by the test, private unless `mode` says otherwise. */
function preparedDir (t, mode = 0o700) {
  const dir = rendezvousDir(t)
  fs.mkdirSync(dir)
  fs.chmodSync(dir, mode)
  return dir
}

/** A same-user impostor listening at `socketPath`, counting connections. */
async function impostorAt (t, socketPath) {
  const impostor = { connections: 0 }
  const server = net.createServer((socket) => { impostor.connections++; socket.destroy() })
  server.listen(socketPath)
  await once(server, 'listening')
  t.after(() => server.close())
  return impostor
}

test('a shared or foreign rendezvous directory, a symlink, or a lock path that is not a file make start() fail clearly', async (t) => {
  const cases = [
    ['group-writable', () => preparedDir(t, 0o770), /has mode 770; it must be private/],
    ['world-readable', () => preparedDir(t, 0o755), /has mode 755; it must be private/],
    ['traversable by others', () => preparedDir(t, 0o701), /has mode 701; it must be private/],
    ['a symlink to a private directory', () => {
      const target = preparedDir(t)
      const link = `${target}-link`
      fs.symlinkSync(target, link)
      return link
    }, /is not a directory \(symlinks are not followed\)/],
    ['a regular file', () => {
      const file = rendezvousDir(t)
      fs.writeFileSync(file, '')
      return file
    }, /./],
    ['a directory at the lock path', () => {
      const dir = preparedDir(t)
      fs.mkdirSync(path.join(dir, 'locked.lock'))
      return dir
    }, /Is a directory/],
    ['a directory at the socket path', () => {
      const dir = preparedDir(t)
      fs.mkdirSync(path.join(dir, 'locked.sock'))
      fs.writeFileSync(path.join(dir, 'locked.sock', 'keep'), '')
      return dir
    }, /cannot listen: Is a directory/]
  ]
  if (IS_ROOT) {
    cases.push(['owned by another user', () => {
      const dir = preparedDir(t)
      fs.chownSync(dir, NOBODY, NOBODY)
      return dir
    }, /belongs to uid 65534/])
  }
  // A start() that fails must leave nothing behind that ends the process.
  const unhandled = []
  const onUnhandled = (reason) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  t.after(() => process.off('unhandledRejection', onUnhandled))
  for (const [what, prepare, message] of cases) {
    await t.test(what, async (t) => {
      const result = await outcome(t, 'locked', prepare())
      assert.equal(result.code, 'ERR_RENDEZVOUS', `${what}: ${JSON.stringify(result.role ?? result)}`)
      assert.match(result.message, message)
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(unhandled, [], 'no unhandled rejection')
    })
  }
})

test('files planted at the socket path never capture a process: the next host replaces them', async (t) => {
  const cases = [
    ['a regular file', (socketPath) => { fs.writeFileSync(socketPath, 'not a socket'); return null }],
    ['a stale socket nobody listens on', async (socketPath) => {
      // A process killed while listening leaves its socket file behind.
      const listener = run(t, `
        import net from 'node:net'
        net.createServer().listen(${JSON.stringify(socketPath)}, () => console.log('listening'))
      `)
      await withTimeout(once(listener.child.stdout, 'data'), 5000, 'the listener listens')
      listener.child.kill('SIGKILL')
      await once(listener.child, 'exit')
      assert.ok(fs.lstatSync(socketPath).isSocket(), 'a stale socket file')
      return null
    }],
    ['a live impostor socket', (socketPath) => impostorAt(t, socketPath)],
    ['a symlink to an impostor elsewhere', async (socketPath) => {
      const elsewhere = path.join(preparedDir(t), 'impostor.sock')
      const impostor = await impostorAt(t, elsewhere)
      fs.symlinkSync(elsewhere, socketPath)
      return impostor
    }]
  ]
  for (const [what, plant] of cases) {
    await t.test(what, async (t) => {
      const dir = preparedDir(t)
      const name = uniqueName('planted')
      const impostor = await plant(path.join(dir, `${name}.sock`))
      const host = await outcome(t, name, dir)
      assert.equal(host.role, 'host', JSON.stringify(host.code ? host : host.role))
      assert.ok(fs.lstatSync(path.join(dir, `${name}.sock`)).isSocket(), 'the host bound a socket of its own')
      // A second process joins the real host, never the impostor.
      const client = await spawnPeer(t, name, dir, { data: { owner: 'impostor' }, options: OPTIONS }, 'client')
      assert.equal((await client.request('start')).role, 'client')
      assert.deepEqual((await client.request('state')).data, { owner: 'us' })
      await host.mem.patch({ $set: { owner: 'still us' } })
      assert.deepEqual((await client.request('waitVersion', { version: 1 })).data, { owner: 'still us' })
      if (impostor !== null) assert.equal(impostor.connections, 0, 'nobody connected to the impostor')
    })
  }
})
