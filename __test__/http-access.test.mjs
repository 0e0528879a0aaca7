// Who may read the HTTP view: a request addressed to another name than this machine's loopback
// (a web page that rebinds its DNS name to 127.0.0.1) is refused, and so, on Linux, is a
// connection of another local user; the view's own user reads it without credentials, as
// memsync 0.5 applications do. With server.token, every request needs the view's token, which
// `memsync url` prints in a URL, and which a browser keeps in a cookie once it has used that URL.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import memsync from '../index.js'
import { rendezvousDir, uniqueName, withTimeout } from './support/peers.mjs'
import { freePort, runCli } from './support/services.mjs'

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

/** GETs `url` in a process of `uid`; resolves with its status and body. */
async function fetchAs (t, uid, url, headers = {}) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const response = await fetch(${JSON.stringify(url)}, { headers: ${JSON.stringify(headers)} })
    console.log(JSON.stringify({ status: response.status, body: await response.text() }))
  `], { uid, gid: uid, stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => child.kill('SIGKILL'))
  let stdout = ''
  child.stdout.on('data', (chunk) => { stdout += chunk })
  await withTimeout(once(child, 'exit'), 10000, `a request as uid ${uid}`)
  return JSON.parse(stdout)
}

async function startView (t, server = {}) {
  const port = await freePort()
  const name = uniqueName('view')
  const dir = rendezvousDir(t)
  const mem = new MemSync(name, { secret: 's3cret' }, { dir, server: { port, ...server } })
  t.after(() => mem.stop())
  assert.equal(await mem.start(), 'host')
  return { port, name, dir, mem }
}

async function get (url, headers = {}) {
  const response = await withTimeout(fetch(url, { headers }), 5000, `GET ${url}`)
  const body = response.headers.get('content-type') === 'text/event-stream' ? '' : await response.text()
  if (body === '') response.body?.cancel()
  return { status: response.status, headers: response.headers, body }
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

test('a connection of another local user is refused without the token, and served with it', { skip: (!IS_ROOT || process.platform !== 'linux') && 'needs root on Linux, to connect as uid 65534' }, async (t) => {
  const { port, name, dir } = await startView(t)
  const { status, body } = await fetchAs(t, NOBODY, `http://127.0.0.1:${port}/${name}`)
  assert.equal(status, 403)
  assert.match(JSON.parse(body).error, /serves its own user only; the connection belongs to uid 65534/)
  assert.doesNotMatch(body, /s3cret/)
  const { token } = JSON.parse(fs.readFileSync(path.join(dir, `${name}.view.json`), 'utf8'))
  assert.deepEqual(await fetchAs(t, NOBODY, `http://127.0.0.1:${port}/${name}`, { authorization: `Bearer ${token}` }), { status: 200, body: JSON.stringify({ secret: 's3cret' }, null, 2) })
})

test('with server.token every request needs the token: a bearer header, or ?token= once and then its cookie', async (t) => {
  const { port, name, dir, mem } = await startView(t, { token: true })
  const base = `http://127.0.0.1:${port}/${name}`
  const refused = await get(base)
  assert.equal(refused.status, 401)
  assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="memsync"')
  assert.match(JSON.parse(refused.body).error, new RegExp(`needs its token: \`memsync url ${name}\` prints a URL that carries it`))
  assert.doesNotMatch(refused.body, /s3cret/)

  const printed = await runCli(['url', name, '--dir', dir])
  assert.equal(printed.code, 0, printed.stderr)
  const { url, token } = JSON.parse(printed.stdout)
  assert.match(token, /^[0-9a-f]{64}$/)
  assert.equal(url, `${base}?token=${token}`)
  const viewFile = path.join(dir, `${name}.view.json`)
  assert.equal(fs.statSync(viewFile).mode & 0o777, 0o600)

  assert.equal((await get(base, { authorization: `Bearer ${token}` })).status, 200)
  assert.equal((await get(base, { authorization: 'Bearer wrong' })).status, 401)
  assert.equal((await get(`${base}?token=wrong`)).status, 401)
  const opened = await get(url)
  assert.equal(opened.status, 200)
  assert.deepEqual(JSON.parse(opened.body), { secret: 's3cret' })
  const cookie = opened.headers.get('set-cookie')
  assert.equal(cookie, `memsync-token-${port}=${token}; HttpOnly; SameSite=Strict; Path=/`)
  const jar = { cookie: cookie.split(';')[0] }
  assert.equal((await get(`${base}/secret`, jar)).body, '"s3cret"')
  assert.equal((await get(`${base}/events`, jar)).status, 200)

  // The view's file goes with the host; `memsync url` then says that nobody serves it.
  await mem.stop()
  assert.ok(!fs.existsSync(viewFile))
  const gone = await runCli(['url', name, '--dir', dir])
  assert.equal(gone.code, 1)
  assert.match(gone.stderr, new RegExp(`no host of '${name}' serves an HTTP view`))
})

test('a given server.token is the token; an unusable one is refused at construction', async (t) => {
  const { port, name } = await startView(t, { token: 'open-sesame' })
  const base = `http://127.0.0.1:${port}/${name}`
  assert.equal((await get(base)).status, 401)
  assert.equal((await get(base, { authorization: 'Bearer open-sesame' })).status, 200)
  for (const token of ['', 'has space', 'semi;colon', 5, {}]) {
    assert.throws(() => new MemSync('x', {}, { server: { port, token } }), { code: 'ERR_INVALID_ARG' }, String(token))
  }
})
