// What the original repository's tests (tenbits/memsync test/*.spec.ts) got from their harness,
// rebuilt on node:test: shellbee's Shell (a child process, ready when its output matches), atma
// utest's has_ (a partial deep match) and a name and rendezvous directory per test, so that runs
// never meet. The scenarios themselves are the original's.
import { spawn } from 'node:child_process'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { rendezvousDir, uniqueName, withTimeout } from '../../support/peers.mjs'

export { rendezvousDir, uniqueName, withTimeout }

/** The path of `fixtures/<file>`. */
export const fixture = (file) => fileURLToPath(new URL(`../fixtures/${file}`, import.meta.url))

/**
 * shellbee's Shell: runs `node <script> ...args`; `onReadyAsync()` resolves once its stdout
 * matches `matchReady`; `terminate()` ends it (SIGTERM) and resolves once it has exited. Killed
 * when the test ends.
 */
export class Shell {
  #stdout = ''
  #stderr = ''
  #ready
  #exit

  constructor (t, { script, args = [], matchReady }) {
    this.child = spawn(process.execPath, [fixture(script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#exit = new Promise((resolve) => this.child.once('exit', resolve))
    this.#ready = new Promise((resolve, reject) => {
      this.child.stdout.on('data', (chunk) => {
        this.#stdout += chunk
        if (matchReady.test(this.#stdout)) resolve()
      })
      this.#exit.then((code) => reject(new Error(`${script} exited (code ${code}) before it was ready\n${this.#output()}`)))
    })
    this.#ready.catch(() => {})
    this.child.stderr.on('data', (chunk) => { this.#stderr += chunk })
    this.script = script
    t.after(() => this.terminate('SIGKILL'))
  }

  #output () {
    return `stdout: ${this.#stdout.slice(-2000)}\nstderr: ${this.#stderr.slice(-2000)}`
  }

  onReadyAsync (timeoutMs = 15000) {
    return withTimeout(this.#ready, timeoutMs, `${this.script} printed nothing matching\n${this.#output()}`)
  }

  async terminate (signal = 'SIGTERM') {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    await withTimeout(this.#exit, 10000, `${this.script} did not exit after ${signal}`)
  }
}

/** atma utest's has_: every field of `expected` is in `actual` (deeply, partially). */
export function has (actual, expected, where = 'value') {
  if (expected !== null && typeof expected === 'object') {
    assert.ok(actual !== null && typeof actual === 'object', `${where} is an object: ${JSON.stringify(actual)}`)
    for (const [key, value] of Object.entries(expected)) has(actual[key], value, `${where}.${key}`)
  } else {
    assert.equal(actual, expected, where)
  }
}
