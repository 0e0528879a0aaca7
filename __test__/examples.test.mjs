// examples/pm2/app.js, run as PM2 would run two workers (forked with an IPC channel): each says
// 'ready' once it holds the object, they share the counter, and after every worker is gone (what
// `pm2 restart` does) the next one starts from the file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { withTimeout } from './support/peers.mjs'
import { dataDir, freePort } from './support/services.mjs'

const APP = fileURLToPath(new URL('../examples/pm2/app.js', import.meta.url))

async function worker (t, env) {
  const port = await freePort()
  const child = fork(APP, [], { env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const ready = new Promise((resolve) => child.on('message', (message) => { if (message === 'ready') resolve() }))
  await withTimeout(Promise.race([ready, exited.then((code) => { throw new Error(`the worker exited (${code}) before ready`) })]), 15000, 'ready')
  return {
    hit: async () => (await (await withTimeout(fetch(`http://127.0.0.1:${port}/`), 5000, 'GET')).json()).hits,
    // PM2's stop: SIGINT, then the worker leaves cleanly.
    stop: async () => {
      child.kill('SIGINT')
      assert.equal(await withTimeout(exited, 10000, 'exit after SIGINT'), 0)
    }
  }
}

test('the PM2 example: workers share the counter, say ready after start(), and a full restart loads the file', { timeout: 60000 }, async (t) => {
  const runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-pm2-'))
  t.after(() => fs.rmSync(runtime, { recursive: true, force: true, maxRetries: 10 }))
  // The example uses the default rendezvous directory: $XDG_RUNTIME_DIR/memsync.
  const env = { XDG_RUNTIME_DIR: runtime, COUNTER_FILE: path.join(dataDir(t), 'data', 'counter.json') }
  const a = await worker(t, env)
  const b = await worker(t, env)
  assert.equal(await a.hit(), 1)
  assert.equal(await b.hit(), 2)
  await Promise.all([b.stop(), a.stop()])
  const next = await worker(t, env)
  assert.equal(await next.hit(), 3, 'the object survived a moment without workers')
  await next.stop()
})
