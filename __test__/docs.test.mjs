// The documentation cannot rot: every JavaScript or TypeScript block of README.md and docs/*.md is
// one of examples/, character for character (its first line names the file: `// examples/rpc.cjs`),
// and every example runs. The file's extension says how: .mjs as an ES module, .cjs as CommonJS,
// .ts type-checked by tsc against index.d.ts, then run as an ES module. A `// prints: <line>`
// comment says that running its line writes <line> to stdout; an example's stdout must be exactly
// its prints lines, in order, and its stderr empty. Each runs in a temporary project whose
// node_modules/memsync is this checkout, with its working directory, HOME, TMPDIR and
// XDG_RUNTIME_DIR (the default rendezvous directory) inside it, so it writes nowhere else. The
// `memsync ...` lines of `sh` blocks run too, against live objects of the names they use, and
// every relative link must lead to a file and heading that exist.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import memsync from '../index.js'
import { withTimeout } from './support/peers.mjs'
import { BIN, freePort } from './support/services.mjs'

const { MemSync } = memsync

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const EXAMPLES = path.join(ROOT, 'examples')
const RUN_TIMEOUT_MS = 30000
// Fence tags of the blocks that are examples, and the file extensions each may name.
const EXAMPLE_TAGS = { js: ['.mjs', '.cjs'], ts: ['.ts'] }
// Fence tags shown, never run: shell sessions, output, diagrams (untagged).
const SHOWN_TAGS = new Set(['', 'sh', 'console', 'text', 'json'])
const EXAMPLE_HEADER = /^\/\/ (examples\/[\w.-]+)/
const PRINTS = /\/\/ prints: (.*)$/

const docFiles = () => ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((file) => file.endsWith('.md')).map((file) => path.join('docs', file))]

/** The fenced code blocks of a Markdown file: `{ doc, line, tag, text }`. */
function codeBlocks (doc) {
  const lines = fs.readFileSync(path.join(ROOT, doc), 'utf8').split('\n')
  const blocks = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i])
    if (open === null) continue
    const [, indent, tag] = open
    const end = lines.findIndex((line, j) => j > i && line === `${indent}\`\`\``)
    assert.notEqual(end, -1, `${doc}:${i + 1}: a code block that never closes`)
    const text = lines.slice(i + 1, end).map((line) => line.slice(indent.length)).join('\n') + '\n'
    blocks.push({ doc, line: i + 1, tag, text })
    i = end
  }
  return blocks
}

/** An example's `// prints:` lines, in order. */
const expectedOutput = (text) => text.split('\n').map((line) => PRINTS.exec(line)?.[1]).filter((line) => line !== undefined)

/** The examples that are files directly in examples/ (examples/pm2 has its own test). */
const exampleFiles = () => fs.readdirSync(EXAMPLES).filter((file) => /\.(mjs|cjs|ts)$/.test(file)).sort()

test('every JavaScript and TypeScript block of the README and docs/ is an example file, as it is in the file', () => {
  const named = []
  for (const block of docFiles().flatMap(codeBlocks)) {
    const where = `${block.doc}:${block.line}`
    if (SHOWN_TAGS.has(block.tag)) continue
    const extensions = EXAMPLE_TAGS[block.tag]
    assert.ok(extensions, `${where}: fence tag '${block.tag}' is neither run nor known as shown-only (${[...Object.keys(EXAMPLE_TAGS), ...SHOWN_TAGS].join(', ')})`)
    const file = EXAMPLE_HEADER.exec(block.text)?.[1]
    assert.ok(file, `${where}: a ${block.tag} block must start with the example file it shows, as // examples/<file>`)
    assert.ok(extensions.includes(path.extname(file)), `${where}: a ${block.tag} block cannot show ${file}`)
    assert.ok(fs.existsSync(path.join(ROOT, file)), `${where}: ${file} does not exist`)
    assert.equal(block.text, fs.readFileSync(path.join(ROOT, file), 'utf8'), `${where} differs from ${file}`)
    named.push(path.basename(file))
  }
  assert.deepEqual(exampleFiles().filter((file) => !named.includes(file)), [], 'examples that no document shows')
})

/** A heading's anchor, as GitHub makes it: lower case, punctuation dropped, spaces to hyphens. */
const anchorOf = (heading) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replaceAll(' ', '-')

test('the relative links of the README and docs/ lead to files and headings that exist', () => {
  for (const doc of docFiles()) {
    const text = fs.readFileSync(path.join(ROOT, doc), 'utf8')
    for (const [, link] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(link)) continue
      const [file, anchor] = link.split('#')
      const target = file === '' ? path.join(ROOT, doc) : path.join(ROOT, path.dirname(doc), file)
      assert.ok(fs.existsSync(target), `${doc}: ${link} leads nowhere`)
      if (anchor === undefined) continue
      const headings = [...fs.readFileSync(target, 'utf8').matchAll(/^#+ (.*)$/gm)].map(([, heading]) => anchorOf(heading))
      assert.ok(headings.includes(anchor), `${doc}: ${link} names no heading of ${path.relative(ROOT, target)}`)
    }
  }
})

test('every example names itself on its first line and prints something to check', () => {
  for (const file of exampleFiles()) {
    const text = fs.readFileSync(path.join(EXAMPLES, file), 'utf8')
    assert.equal(EXAMPLE_HEADER.exec(text)?.[1], `examples/${file}`, `${file}'s first line`)
    assert.ok(expectedOutput(text).length > 0, `${file} has no // prints: comment`)
  }
})

/** A temporary project whose node_modules/memsync is this checkout; removed when the test ends. */
function project (t) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-docs-'))
  t.after(() => fs.rmSync(root, { recursive: true, force: true, maxRetries: 10 }))
  const dir = path.join(root, 'project')
  fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true })
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'memsync'))
  // An ES module project, so that TypeScript allows top-level await in a .ts file.
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ private: true, type: 'module' }))
  for (const sub of ['home', 'tmp', 'runtime']) fs.mkdirSync(path.join(root, sub), { mode: 0o700 })
  const env = { ...process.env, HOME: path.join(root, 'home'), TMPDIR: path.join(root, 'tmp'), XDG_RUNTIME_DIR: path.join(root, 'runtime') }
  return { dir, env }
}

test('the TypeScript examples type-check against index.d.ts under --strict', { timeout: 120000 }, async (t) => {
  const { dir } = project(t)
  const files = exampleFiles().filter((file) => file.endsWith('.ts'))
  for (const file of files) fs.copyFileSync(path.join(EXAMPLES, file), path.join(dir, file))
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true,
      noEmit: true,
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      types: ['node'],
      typeRoots: [path.join(ROOT, 'node_modules', '@types')]
    },
    files
  }))
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const outcome = await withTimeout(new Promise((resolve) => {
    execFile(process.execPath, [tsc, '-p', dir], (error, stdout, stderr) => resolve({ code: error?.code ?? 0, output: stdout + stderr }))
  }), 100000, 'tsc')
  assert.equal(outcome.code, 0, outcome.output)
})

/** Runs `file` of `dir` with node; resolves with its exit code and output once its stdio closed (its children's too). */
function run (file, dir, env) {
  // Its own process group, so that a hung example is killed with the processes it forked.
  const child = spawn(process.execPath, [file], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => { stdout += chunk })
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const closed = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
  return withTimeout(closed, RUN_TIMEOUT_MS, `${file} did not finish`).catch((error) => {
    try { process.kill(-child.pid, 'SIGKILL') } catch {} // the group may be gone already
    throw new Error(`${error.message}; stdout: ${JSON.stringify(stdout)}, stderr: ${JSON.stringify(stderr)}`)
  })
}

/** The `memsync` command lines of the shell blocks, as argument lists: `npx memsync get jobs  # ...` gives ['get', 'jobs']. */
function commandLines () {
  const lines = docFiles().flatMap(codeBlocks).filter((block) => block.tag === 'sh').flatMap((block) => block.text.split('\n'))
  return lines.filter((line) => /^(npx )?memsync /.test(line)).map((line) => {
    const words = []
    for (const [word] of line.matchAll(/'[^']*'|\S+/g)) {
      if (word.startsWith('#')) break
      words.push(word.startsWith("'") ? word.slice(1, -1) : word)
    }
    return words.slice(words.indexOf('memsync') + 1)
  })
}

test('the memsync command lines of the docs run against live objects of the names they use', { timeout: 60000 }, async (t) => {
  const commands = commandLines()
  assert.ok(commands.length > 0, 'no memsync command line found')
  const { env } = project(t)
  const dir = path.join(env.XDG_RUNTIME_DIR, 'memsync')
  for (const name of new Set(commands.map(([, name]) => name).filter(Boolean))) {
    const host = new MemSync(name, {}, { dir })
    t.after(() => host.stop())
    assert.equal(await host.start(), 'host')
  }
  for (const args of commands) {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk) => { output += chunk })
    child.stderr.on('data', (chunk) => { output += chunk })
    const exited = new Promise((resolve) => child.on('exit', resolve))
    if (args[0] === 'watch') {
      // It prints the object, then follows until interrupted.
      await withTimeout(once(child.stdout, 'data'), 10000, `memsync ${args.join(' ')} printed nothing`)
      child.kill('SIGINT')
      await withTimeout(exited, 10000, `memsync ${args.join(' ')} after SIGINT`)
    } else {
      assert.equal(await withTimeout(exited, 10000, `memsync ${args.join(' ')}`), 0, `memsync ${args.join(' ')}: ${output}`)
    }
  }
})

for (const file of exampleFiles()) {
  test(`examples/${file} runs and prints what its comments say`, { timeout: RUN_TIMEOUT_MS + 10000 }, async (t) => {
    const { dir, env } = project(t)
    const source = fs.readFileSync(path.join(EXAMPLES, file), 'utf8')
    let script = file
    if (file.endsWith('.ts')) {
      script = file.replace(/\.ts$/, '.mjs')
      const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
      fs.writeFileSync(path.join(dir, script), outputText)
    } else {
      fs.writeFileSync(path.join(dir, script), source)
    }
    // For the examples that serve HTTP (PORT, else 8080).
    const outcome = await run(script, dir, { ...env, PORT: String(await freePort()) })
    const printed = outcome.stdout.split('\n').slice(0, -1)
    assert.deepEqual({ code: outcome.code, stderr: outcome.stderr }, { code: 0, stderr: '' }, `stdout: ${outcome.stdout}`)
    assert.deepEqual(printed, expectedOutput(source))
  })
}
