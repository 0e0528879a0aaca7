// options.file against what another user may plant in a shared directory, and against files that
// do not hold a state memsync can take: saves never follow a planted link nor reuse a planted
// file, a link at the file itself is refused unless followed on purpose, a new file is private,
// a loaded version or nesting beyond what JavaScript and the engine handle is refused, and a read
// that blocks does not hold start() past its timeout.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import memsync from '../index.js'
import { rendezvousDir, uniqueName } from './support/peers.mjs'
import { runFixture } from './support/child.mjs'
import { dataDir, readJsonFile } from './support/services.mjs'

const { MemSync } = memsync
const NOBODY = 65534
const IS_ROOT = process.getuid?.() === 0

/** A started host of a new name with `file` as options.file, stopped when the test ends. */
async function startHost (t, file, data = { n: 0 }) {
  const mem = new MemSync(uniqueName('file'), data, { dir: rendezvousDir(t), file })
  t.after(() => mem.stop())
  assert.equal(await mem.start(), 'host')
  return mem
}

/** A directory that every user may write, as a group or shared directory is. */
function sharedDir (t) {
  const dir = dataDir(t)
  fs.chmodSync(dir, 0o777)
  return dir
}

test('a save does not follow a link planted at the temporary name, and does not reuse a planted file', async (t) => {
  const dir = sharedDir(t)
  const file = path.join(dir, 'data.json')
  const victim = path.join(dataDir(t), 'victim')
  fs.writeFileSync(victim, 'precious')
  // The temporary name that saves used before: a fixed `.<file>.memsync-tmp`.
  fs.symlinkSync(victim, path.join(dir, '.data.json.memsync-tmp'))
  const mem = await startHost(t, { path: file })
  await mem.patch({ $set: { secret: 's3cret' } })
  await mem.flush()
  assert.equal(fs.readFileSync(victim, 'utf8'), 'precious')
  assert.deepEqual(readJsonFile(file).data, { n: 0, secret: 's3cret' })
  assert.ok(!fs.lstatSync(file).isSymbolicLink())
})

test('a file another user planted at the temporary name does not become the saved file', { skip: !IS_ROOT && 'needs root, to plant a file as uid 65534' }, async (t) => {
  const dir = sharedDir(t)
  const file = path.join(dir, 'data.json')
  const planted = path.join(dir, '.data.json.memsync-tmp')
  fs.writeFileSync(planted, '', { mode: 0o666 })
  fs.chownSync(planted, NOBODY, NOBODY)
  const mem = await startHost(t, { path: file })
  await mem.patch({ $set: { secret: 's3cret' } })
  await mem.flush()
  const saved = fs.statSync(file)
  assert.equal(saved.uid, process.getuid(), 'the saved file is ours')
  assert.equal(saved.mode & 0o777, 0o600)
  assert.deepEqual(readJsonFile(file).data, { n: 0, secret: 's3cret' })
})

test('a first save creates the file 0600; a replaced file keeps its mode', async (t) => {
  const file = path.join(dataDir(t), 'data.json')
  const mem = await startHost(t, { path: file })
  await mem.patch({ $inc: { n: 1 } })
  await mem.flush()
  assert.equal(fs.statSync(file).mode & 0o777, 0o600)
  fs.chmodSync(file, 0o640)
  await mem.patch({ $inc: { n: 1 } })
  await mem.flush()
  assert.equal(fs.statSync(file).mode & 0o777, 0o640)
  assert.equal(readJsonFile(file).data.n, 2)
})

test('the temporary files a killed host left are removed when the next host starts', async (t) => {
  const dir = dataDir(t)
  const file = path.join(dir, 'data.json')
  for (const stale of ['.data.json.memsync-tmp', '.data.json.0123456789abcdef.memsync-tmp']) {
    fs.writeFileSync(path.join(dir, stale), 'torn')
  }
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not ours')
  const mem = await startHost(t, { path: file })
  await mem.patch({ $inc: { n: 1 } })
  await mem.flush()
  assert.deepEqual(fs.readdirSync(dir).sort(), ['data.json', 'notes.txt'])
})

test('a symbolic link at file.path is refused unless options.file.followSymlinks', async (t) => {
  const dir = dataDir(t)
  const real = path.join(dir, 'real.json')
  fs.writeFileSync(real, JSON.stringify({ data: { from: 'real' }, version: 3, timestamp: 1 }))
  const link = path.join(dir, 'data.json')
  fs.symlinkSync(real, link)

  const refused = new MemSync(uniqueName('link'), {}, { dir: rendezvousDir(t), file: { path: link } })
  t.after(() => refused.stop())
  await assert.rejects(refused.start(), (err) => {
    assert.equal(err.code, 'ERR_STORAGE')
    assert.match(err.message, /data\.json is a symbolic link, which memsync does not follow unless options\.file\.followSymlinks is true/)
    return true
  })

  const mem = await startHost(t, { path: link, followSymlinks: true }, {})
  assert.deepEqual(mem.data, { from: 'real' })
  await mem.patch({ $set: { saved: true } })
  await mem.flush()
  assert.ok(fs.lstatSync(link).isSymbolicLink(), 'the link stays')
  assert.deepEqual(readJsonFile(real), { data: { from: 'real', saved: true }, version: 4, timestamp: readJsonFile(real).timestamp })

  assert.throws(() => new MemSync('x', {}, { file: { path: link, followSymlinks: 'yes' } }), { code: 'ERR_INVALID_ARG' })
})

test('a loaded file whose version or nesting JavaScript and the engine cannot take is refused, untouched', async (t) => {
  const dir = dataDir(t)
  const deep = (levels) => '{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1)
  for (const [contents, message] of [
    ['{"data":{},"version":18446744073709551615}', /its version 18446744073709551615 is above 9007199254740991 \(2\^53 - 1\)/],
    ['{"data":{},"version":9007199254740992}', /above 9007199254740991/],
    [`{"data":${deep(121)},"version":1}`, /its data nests deeper than the 100 levels a document may nest/],
    [`{"data":${deep(1000)},"version":1}`, /its data nests deeper than the 100 levels a document may nest/]
  ]) {
    const file = path.join(dir, 'data.json')
    fs.writeFileSync(file, contents)
    const mem = new MemSync(uniqueName('load'), {}, { dir: rendezvousDir(t), file: { path: file } })
    await assert.rejects(mem.start(), (err) => {
      assert.equal(err.code, 'ERR_STORAGE')
      assert.match(err.message, message)
      return true
    })
    await mem.stop()
    assert.equal(fs.readFileSync(file, 'utf8'), contents)
  }
  const file = path.join(dir, 'ok.json')
  fs.writeFileSync(file, '{"data":{"n":1},"version":9007199254740991}')
  const mem = await startHost(t, { path: file })
  assert.equal((await mem.getStatus()).version, 9007199254740991)
})

test('start() rejects within its timeout when reading the file blocks, and says it abandoned the read', { skip: process.platform === 'win32' }, async (t) => {
  const fifo = path.join(dataDir(t), 'data.json')
  execFileSync('mkfifo', [fifo])
  const { code, stdout, stderr } = await runFixture('blocked-load.mjs', [rendezvousDir(t), fifo, '500'], { timeoutMs: 10000, env: { ...process.env, NODE_DEBUG: 'memsync' } })
  assert.equal(code, 0, stderr)
  const outcome = JSON.parse(stdout)
  assert.equal(outcome.code, 'ERR_TIMEOUT')
  assert.ok(outcome.ms >= 500 && outcome.ms < 3000, `start() settled after ${outcome.ms} ms`)
  assert.match(stderr, /^MEMSYNC \d+: memsync 'blocked-load' \(pid \d+\) reading .*data\.json did not end within [\d.]+ s and is abandoned; what it reads will be dropped$/m)
})
