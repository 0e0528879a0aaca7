// The Redis fault rounds (scripts/chaos-redis.mjs, `npm run chaos -- --redis`) in CI's size: 20
// rounds with `durability: 'replicated'`, where no acknowledged patch may be lost (issue 17).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { withTimeout } from './support/peers.mjs'
import { redisMissing } from './support/redis.mjs'

const SCRIPT = fileURLToPath(new URL('../scripts/chaos.mjs', import.meta.url))
const ROUNDS = 20
const missing = redisMissing()

test(`chaos against Redis: ${ROUNDS} fault rounds with durability 'replicated'; after each, replicas identical and every acknowledged patch once`, { skip: missing ?? false, timeout: 10 * 60000 }, async (t) => {
  const child = spawn(process.execPath, [SCRIPT, '--redis', '--rounds', String(ROUNDS), '--durability', 'replicated'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => child.kill('SIGKILL'))
  let output = ''
  child.stdout.on('data', (chunk) => { output += chunk })
  child.stderr.on('data', (chunk) => { output += chunk })
  const [code] = await withTimeout(once(child, 'exit'), 9 * 60000, `the chaos run ends\n${output}`)
  t.diagnostic(output.trim().split('\n').at(-1))
  assert.equal(code, 0, output)
  assert.match(output, new RegExp(`chaos-redis: survived ${ROUNDS} of ${ROUNDS} rounds`))
})
