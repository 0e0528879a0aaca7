// The HTTP view's page, driven in headless Chromium (Debian's `chromium`, which .ci/run installs):
// it shows the object, and a patch from another process appears within a second. A screenshot
// is kept in test-artifacts/ (git ignores it).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { rendezvousDir, spawnPeer, uniqueName, withTimeout } from './support/peers.mjs'
import { freePort } from './support/services.mjs'

const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url))

async function get (url, accept) {
  const response = await withTimeout(fetch(url, { headers: accept ? { accept } : {} }), 5000, `GET ${url}`)
  return { type: response.headers.get('content-type'), csp: response.headers.get('content-security-policy'), text: await response.text() }
}

test('GET / and a browser\'s GET /<name> are the page; anything else asking for /<name> gets JSON', async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('<page&>')
  const port = await freePort()
  const host = await spawnPeer(t, name, dir, { data: { n: 1 }, options: { server: { port } } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const base = `http://127.0.0.1:${port}`
  for (const [url, accept] of [[`${base}/`, undefined], [`${base}/${encodeURIComponent(name)}`, 'text/html,application/xhtml+xml,*/*;q=0.8']]) {
    const page = await get(url, accept)
    assert.equal(page.type, 'text/html; charset=utf-8', url)
    assert.match(page.csp, /default-src 'none'/)
    // The name is escaped into the page, never markup.
    assert.ok(page.text.includes('<title>&lt;page&amp;&gt;'), page.text.slice(0, 400))
    assert.ok(!page.text.includes('<page&>'))
  }
  const json = await get(`${base}/${encodeURIComponent(name)}`)
  assert.equal(json.type, 'application/json')
  assert.deepEqual(JSON.parse(json.text), { n: 1 })
})

test('the page shows the live object: a patch from another process appears within a second', { timeout: 60000, skip: !existsSync(CHROMIUM) && `${CHROMIUM} is not installed (apt-get install chromium)` }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('page')
  const port = await freePort()
  const host = await spawnPeer(t, name, dir, { data: { title: 'jobs', counts: { done: 1 }, queue: ['a'] }, options: { server: { port } } }, 'host')
  assert.equal((await host.request('start')).role, 'host')
  const client = await spawnPeer(t, name, dir, {}, 'client')
  assert.equal((await client.request('start')).role, 'client')

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Root in CI needs --no-sandbox; the rest keeps Chromium off this machine's closed network.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    timeout: 30000
  })
  t.after(() => browser.close())
  const page = await browser.newPage()
  await page.goto(`http://127.0.0.1:${port}/`)
  await page.locator('#state', { hasText: 'live' }).waitFor({ timeout: 10000 })
  await page.locator('.row[data-path="counts.done"]', { hasText: '1' }).waitFor({ timeout: 5000 })
  assert.equal(await page.locator('#clients').textContent(), '1')
  assert.equal(await page.locator('#host').textContent(), String(host.pid))

  const began = Date.now()
  assert.deepEqual(await client.request('patch', { update: { $inc: { 'counts.done': 41 }, $push: { queue: 'from-the-client' } } }), { ok: true })
  await page.locator('.row[data-path="counts.done"]', { hasText: '42' }).waitFor({ timeout: 1000 })
  await page.locator('.row[data-path="queue.1"]', { hasText: 'from-the-client' }).waitFor({ timeout: 1000 })
  assert.ok(Date.now() - began < 1000, `the patch appeared after ${Date.now() - began} ms`)
  assert.equal(await page.locator('#version').textContent(), '1')

  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: path.join(ARTIFACTS, 'http-view.png'), fullPage: true })
})
