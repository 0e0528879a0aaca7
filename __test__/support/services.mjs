// Helpers for the host services (file, HTTP) and the command line: files watched for a condition,
// free ports, Server-Sent Events read from a fetch, the memsync binary run as a child process.
// Every wait is on an event and bounded.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { runScript } from './child.mjs'
import { withTimeout } from './peers.mjs'

export const BIN = fileURLToPath(new URL('../../bin/memsync.js', import.meta.url))

/** A fresh directory for data files, removed when the test ends. */
export function dataDir (t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-data-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * The parsed contents of `file`, or undefined when it does not exist. A file that exists but does
 * not parse throws: with atomic saves, no reader may ever see a torn file.
 */
export function readJsonFile (file) {
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (error) {
    if (error.code === 'ENOENT') return undefined
    throw error
  }
  return JSON.parse(text)
}

/** Resolves with the contents of `file` once `predicate(contents)` holds, checked at every change in its directory. */
export function waitForFile (file, predicate, { timeoutMs = 10000 } = {}) {
  let watcher
  let last
  const found = new Promise((resolve, reject) => {
    const check = () => {
      try {
        last = readJsonFile(file)
        if (last !== undefined && predicate(last)) resolve(last)
      } catch (error) {
        reject(new Error(`${file} is torn or corrupt: ${error.message}`))
      }
    }
    watcher = fs.watch(path.dirname(file), check)
    check()
  })
  return withTimeout(found, timeoutMs, `${file} never met the condition; it holds ${JSON.stringify(last)?.slice(0, 300)}`)
    .finally(() => watcher.close())
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/**
 * Opens a Server-Sent Events stream. `next()` resolves with the next event's parsed `data`, or
 * null when the stream ended; comments and `retry:` lines are skipped.
 */
export async function openEvents (t, url) {
  const controller = new AbortController()
  const response = await withTimeout(fetch(url, { signal: controller.signal }), 5000, `GET ${url}`)
  t.after(() => controller.abort())
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  async function next (timeoutMs = 5000) {
    for (;;) {
      const end = buffer.indexOf('\n\n')
      if (end >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const data = block.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6))
        if (data.length > 0) return JSON.parse(data.join('\n'))
        continue
      }
      const { value, done } = await withTimeout(reader.read(), timeoutMs, `no event on ${url}`)
      if (done) return null
      buffer += value
    }
  }
  return { response, next, close: () => controller.abort() }
}

/**
 * Runs `memsync ...args` to its end; resolves with `{ code, stdout, stderr }`. Its stdout is a
 * pipe, so its output is JSON.
 */
export function runCli (args, { timeoutMs = 10000 } = {}) {
  return runScript(BIN, args, { timeoutMs, label: `memsync ${args.join(' ')}` })
}

/**
 * Starts `memsync ...args` and lets the test read its stdout line by line: `line()` resolves with
 * the next line parsed as JSON. Killed when the test ends.
 */
export function startCli (t, args) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const lines = []
  const waiters = []
  let buffer = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk) => {
    buffer += chunk
    let end
    while ((end = buffer.indexOf('\n')) >= 0) {
      lines.push(buffer.slice(0, end))
      buffer = buffer.slice(end + 1)
    }
    while (waiters.length > 0 && lines.length > 0) waiters.shift()(lines.shift())
  })
  function line (timeoutMs = 5000) {
    if (lines.length > 0) return Promise.resolve(JSON.parse(lines.shift()))
    const next = new Promise((resolve) => waiters.push(resolve))
    return withTimeout(next, timeoutMs, `memsync ${args.join(' ')} printed no line; stderr: ${stderr}`).then(JSON.parse)
  }
  return { child, exit, line, stderr: () => stderr }
}
