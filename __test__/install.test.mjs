// What a user gets from the registry: the tarballs of `npm run package` (packing the checkout's
// binary, which `npm test` has just built), installed into a fresh project with no Rust toolchain
// on PATH, on every Node.js version CI has (20, the machine's own, plus 22 and 24 from .ci/nodes
// when `npm ci --prefix .ci/nodes` has installed them).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runScript } from './support/child.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)
const { version } = require('../package.json')
const { SUPPORTED_PLATFORMS, describePlatform, platformSuffix } = require('../lib/platform.js')
const suffix = platformSuffix()

// npm is JavaScript: each Node.js runs the npm found on PATH (npm's own script, found through its
// link), as `npm` would under that version.
const npmCli = process.env.PATH.split(':')
  .map((dir) => join(dir, 'npm'))
  .filter((file) => existsSync(file))
  .map((file) => realpathSync(file))
  .find((file) => file.endsWith('.js'))
const otherNodes = ['node22', 'node24']
  .map((name) => join(root, '.ci', 'nodes', 'node_modules', name, 'bin', 'node'))
  .filter((node) => existsSync(node))
const nodes = [process.execPath, ...otherNodes]

// This environment (its certificate and proxy settings reach npm) without npm's own variables of
// `npm test`, and a PATH with node and the system's tools, but none of cargo, rustc or the napi CLI.
function bareEnv (node) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)))
  return { ...env, PATH: `${dirname(node)}:/usr/bin:/bin` }
}

function tempDir (t, label) {
  const dir = mkdtempSync(join(tmpdir(), `memsync-install-${label}-`))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function npm (node, cwd, args) {
  assert.ok(npmCli, 'npm is not on PATH')
  const result = await runScript(npmCli, [...args, '--no-audit', '--no-fund'], {
    node, cwd, env: bareEnv(node), timeoutMs: 120000, label: `npm ${args.join(' ')}`
  })
  assert.equal(result.code, 0, `npm ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`)
  return result
}

const tarballs = { main: null, platform: null }
let dist
before(() => {
  dist = mkdtempSync(join(tmpdir(), 'memsync-install-dist-'))
  const { status, stderr } = spawnSync(process.execPath, [join(root, 'scripts', 'package.mjs'), '--no-build', '--out', dist], {
    cwd: root, encoding: 'utf8'
  })
  assert.equal(status, 0, stderr)
  tarballs.main = join(dist, `memsync-${version}.tgz`)
  tarballs.platform = join(dist, `memsync-${suffix}-${version}.tgz`)
  assert.deepEqual(readdirSync(dist).sort(), [tarballs.platform, tarballs.main].map((file) => file.slice(dist.length + 1)).sort())
})
after(() => rmSync(dist, { recursive: true, force: true }))

// Two processes of the user's project share one object: a host, and a client it forks.
const SHARE_SCRIPT = `'use strict'
const { fork } = require('node:child_process')
const { MemSync } = require('memsync')
const [role = 'host', dir] = process.argv.slice(2)

const seen = (mem, who) => new Promise((resolve) => {
  const check = (from) => { if (from.includes(who)) resolve() }
  mem.observe('from', check)
  check(mem.data.from)
})

async function main () {
  const mem = new MemSync('install-check', { hits: 0, from: [] }, { dir })
  const started = await mem.start()
  if (started !== role) throw new Error('started as ' + started + ', expected ' + role)
  if (role === 'host') {
    const childSeen = seen(mem, 'client')
    const child = fork(__filename, ['client', dir])
    const exited = new Promise((resolve) => child.on('exit', resolve))
    await childSeen
    await mem.patch({ $push: { from: 'host' }, $inc: { hits: 1 } })
    const code = await exited
    if (code !== 0) throw new Error('the client exited with ' + code)
  } else {
    await mem.patch({ $push: { from: 'client' }, $inc: { hits: 1 } })
    await seen(mem, 'host')
  }
  console.log(role, process.version, JSON.stringify(mem.data))
  await mem.stop()
}
main().catch((err) => { console.error(err); process.exit(1) })
`

async function shareBetweenTwoProcesses (node, project) {
  const dir = join(project, 'rendezvous')
  mkdirSync(dir, { mode: 0o700 })
  const result = await runScript(join(project, 'share.js'), ['host', dir], {
    node, cwd: project, env: bareEnv(node), timeoutMs: 30000, label: 'share.js'
  })
  assert.equal(result.code, 0, `share.js failed:\n${result.stdout}\n${result.stderr}`)
  const nodeVersion = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim()
  const expected = JSON.stringify({ hits: 2, from: ['client', 'host'] })
  assert.match(result.stdout, new RegExp(`^client ${nodeVersion} ${escape(expected)}$`, 'm'))
  assert.match(result.stdout, new RegExp(`^host ${nodeVersion} ${escape(expected)}$`, 'm'))
  rmSync(dir, { recursive: true })
}

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

test('each supported platform has its npm/<platform> package, at memsync\'s version, built from a napi target', () => {
  const { napi } = require('../package.json')
  const triples = {
    'linux-x64-gnu': 'x86_64-unknown-linux-gnu',
    'linux-x64-musl': 'x86_64-unknown-linux-musl',
    'linux-arm64-gnu': 'aarch64-unknown-linux-gnu',
    'linux-arm64-musl': 'aarch64-unknown-linux-musl',
    'darwin-x64': 'x86_64-apple-darwin',
    'darwin-arm64': 'aarch64-apple-darwin'
  }
  assert.deepEqual(readdirSync(join(root, 'npm')).sort(), [...SUPPORTED_PLATFORMS].sort())
  assert.deepEqual([...napi.targets].sort(), SUPPORTED_PLATFORMS.map((platform) => triples[platform]).sort())
  for (const platform of SUPPORTED_PLATFORMS) {
    const [os, cpu, abi] = platform.split('-')
    const pkg = require(`../npm/${platform}/package.json`)
    assert.equal(pkg.name, `memsync-${platform}`)
    assert.equal(pkg.version, version)
    assert.equal(pkg.main, `memsync.${platform}.node`)
    assert.deepEqual(pkg.files, [pkg.main])
    assert.deepEqual(pkg.os, [os])
    assert.deepEqual(pkg.cpu, [cpu])
    assert.deepEqual(pkg.libc, abi && [{ gnu: 'glibc', musl: 'musl' }[abi]])
  }
})

test('the bare PATH of these tests has no Rust toolchain and no napi CLI', () => {
  for (const tool of ['cargo', 'rustc', 'napi']) {
    const { error } = spawnSync(tool, ['--version'], { env: bareEnv(process.execPath) })
    assert.equal(error?.code, 'ENOENT', `${tool} is on the bare PATH`)
  }
})

test('npm install of the two tarballs, then npm ci from its lockfile, share an object between two processes', async (t) => {
  if (otherNodes.length < 2) t.diagnostic('Node.js 22 and 24 are not installed (npm ci --prefix .ci/nodes): only this Node.js is tried')
  for (const node of nodes) {
    const project = tempDir(t, 'project')
    await npm(node, project, ['init', '-y'])
    await npm(node, project, ['install', tarballs.main, tarballs.platform])
    writeFileSync(join(project, 'share.js'), SHARE_SCRIPT)
    await shareBetweenTwoProcesses(node, project)

    rmSync(join(project, 'node_modules'), { recursive: true })
    await npm(node, project, ['ci'])
    await shareBetweenTwoProcesses(node, project)
  }
})

test('without its platform package, require("memsync") throws an error that says what to do', async (t) => {
  const project = tempDir(t, 'main-only')
  await npm(process.execPath, project, ['init', '-y'])
  await npm(process.execPath, project, ['install', tarballs.main])
  assert.ok(!existsSync(join(project, 'node_modules', `memsync-${suffix}`)))
  const { status, stderr } = spawnSync(process.execPath, ['-e', "require('memsync')"], {
    cwd: project, env: bareEnv(process.execPath), encoding: 'utf8'
  })
  assert.notEqual(status, 0)
  assert.ok(stderr.includes(`memsync could not load its native addon on this platform (${describePlatform()}).`), stderr)
  assert.ok(stderr.includes(`the package memsync-${suffix} (memsync's prebuilt binary): not found`), stderr)
  assert.ok(stderr.includes(`memsync.${suffix}.node (a source build): not found`), stderr)
  assert.match(stderr, /npm install && npm run build/)
  assert.match(stderr, /code: 'ERR_MEMSYNC_NATIVE'/)
  assert.doesNotMatch(stderr, /bug/i)
})

test('a linux-gnu binary needs no glibc newer than 2.28', { skip: !/^linux-.*-gnu$/.test(suffix) && `this is ${suffix}` }, () => {
  const binary = join(root, `memsync.${suffix}.node`)
  const { stdout, status } = spawnSync('objdump', ['-T', binary], { encoding: 'utf8' })
  assert.equal(status, 0)
  const versions = [...stdout.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map(([, major, minor]) => [Number(major), Number(minor)])
  assert.ok(versions.length > 0, 'no GLIBC_ symbol versions: is this a glibc binary?')
  const [major, minor] = versions.reduce((a, b) => (a[0] - b[0] || a[1] - b[1]) >= 0 ? a : b)
  assert.ok(major === 2 && minor <= 28, `the binary needs GLIBC_${major}.${minor}`)
})
