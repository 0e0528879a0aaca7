// The chaos run (scripts/chaos.mjs, `npm run chaos`) in a few rounds, so that `npm test` keeps it
// working; CI runs it for 50 rounds.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { withTimeout } from './support/peers.mjs'

const SCRIPT = fileURLToPath(new URL('../scripts/chaos.mjs', import.meta.url))

test('chaos: 3 rounds of kill -9 of a random writer; replicas identical and every resolved patch once after each', { timeout: 60000 }, async (t) => {
  const child = spawn(process.execPath, [SCRIPT, '--rounds', '3', '--writes', '20'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => child.kill('SIGKILL'))
  let output = ''
  child.stdout.on('data', (chunk) => { output += chunk })
  child.stderr.on('data', (chunk) => { output += chunk })
  const [code] = await withTimeout(once(child, 'exit'), 50000, 'the chaos run ends')
  assert.equal(code, 0, output)
  assert.match(output, /chaos: survived 3 of 3 rounds/)
})
