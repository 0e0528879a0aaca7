// Runs a Node script in a child process and resolves when it exits by itself, with its output.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/**
 * Runs `file` with `args` to its end; resolves with `{ code, signal, stdout, stderr }`, or rejects
 * (after killing it) when it is still running after `timeoutMs`. `label` names it in that error.
 * `node` is the Node.js binary that runs it (this one by default); `cwd` and `env` are spawn's.
 */
export function runScript (file, args, { timeoutMs, label, node = process.execPath, cwd, env }) {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd, env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => { stdout += chunk })
    child.stderr.on('data', (chunk) => { stderr += chunk })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${label} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Runs `fixtures/<name>` with runScript. */
export function runFixture (name, args = [], { timeoutMs = 20000, env } = {}) {
  const file = fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
  return runScript(file, args, { timeoutMs, label: name, env })
}
