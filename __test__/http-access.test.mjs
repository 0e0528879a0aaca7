// Who may read the HTTP view: a request addressed to another name than this machine's loopback
// (a web page that rebinds its DNS name to 127.0.0.1) is refused, and so, on Linux, is a
// connection of another local user; the view's own user reads it without credentials, as
// memsync 0.5 applications do.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import memsync from '../index.js'
import { rendezvousDir, uniqueName, withTimeout } from './support/peers.mjs'
import { freePort } from './support/services.mjs'

const { MemSync } = memsync
const NOBODY = 65534
const IS_ROOT = process.getuid?.() === 0

/** GET `path` from 127.0.0.1:`port` with `host` as the Host header; resolves with status and body. */
function getWithHost (port, path, host) {
  return withTimeout(new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path, headers: { host } }, (response) => {
      // An event stream that is served never ends: its status is the answer.
      if (response.headers['content-type'] === 'text/event-stream') {
        response.destroy()
        resolve({ status: response.statusCode, body: '' })
        return
      }
      let body = ''
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode, body }))
    })
    request.on('error', reject)
  }), 5000, `GET ${path} with Host ${host}`)
}

async function startView (t) {
  const port = await freePort()
  const name = uniqueName('view')
  const mem = new MemSync(name, { secret: 's3cret' }, { dir: rendezvousDir(t), server: { port } })
  t.after(() => mem.stop())
  assert.equal(await mem.start(), 'host')
  return { port, name }
}

test('a request whose Host is not this machine\'s loopback at the view\'s port is refused', async (t) => {
  const { port, name } = await startView(t)
  for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1:${port + 1}`, `localhost.evil.example:${port}`]) {
    for (const path of [`/${name}`, `/${name}/secret`, `/${name}/status`, `/${name}/events`]) {
      const { status, body } = await getWithHost(port, path, host)
      assert.equal(status, 403, `${host} ${path}`)
      assert.match(JSON.parse(body).error, /answers requests to localhost, 127\.0\.0\.1 or \[::1\] \(or another loopback address\) at port \d+ only/)
      assert.doesNotMatch(body, /s3cret/)
    }
  }
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost']) {
    const { status, body } = await getWithHost(port, `/${name}`, host)
    assert.equal(status, 200, host)
    assert.deepEqual(JSON.parse(body), { secret: 's3cret' })
  }
  assert.equal((await getWithHost(port, `/${name}/events`, `localhost:${port}`)).status, 200)
})

test('a connection of another local user is refused', { skip: (!IS_ROOT || process.platform !== 'linux') && 'needs root on Linux, to connect as uid 65534' }, async (t) => {
  const { port, name } = await startView(t)
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const response = await fetch('http://127.0.0.1:${port}/${name}')
    console.log(JSON.stringify({ status: response.status, body: await response.text() }))
  `], { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => child.kill('SIGKILL'))
  let stdout = ''
  child.stdout.on('data', (chunk) => { stdout += chunk })
  await withTimeout(once(child, 'exit'), 10000, 'the other user\'s request')
  const { status, body } = JSON.parse(stdout)
  assert.equal(status, 403)
  assert.match(JSON.parse(body).error, /serves its own user only; the connection belongs to uid 65534/)
  assert.doesNotMatch(body, /s3cret/)
})
