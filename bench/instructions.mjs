// Instructions a client's process runs per round of the clustered service's shape, counted by
// valgrind's callgrind: not part of `npm run bench`, run by hand to compare two builds on a
// machine whose load makes timings of a few percent meaningless (instruction counts do not move
// with it).
//
//   node bench/instructions.mjs [--rounds 10000]
//
// A host (a plain `node`) answers every patch of `a` it receives with a patch of `b`; a client
// under callgrind awaits `{ $inc: { a: 1 } }` `rounds` times and waits for every `b`. So a round
// is an own patch, its acknowledgement and one patch received, each through JS and the replica.
// The client runs twice, for 6,000 rounds and for 6,000 + `rounds`: the difference divided by
// `rounds` leaves out start-up, warm-up and compilation.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = fileURLToPath(new URL('..', import.meta.url))
const self = fileURLToPath(import.meta.url)
const WARM = 6000

if (process.argv[2] === '--peer') {
  const [, role, dir, rounds] = process.argv.slice(2)
  const { MemSync } = createRequire(root)(path.join(root, 'index.js'))
  const mem = new MemSync({ name: 'instructions', data: { a: 0, b: 0 }, options: { dir } })
  const started = await mem.start()
  if (role === 'host') {
    mem.observe('a', () => { mem.patch({ $inc: { b: 1 } }) })
    fs.writeFileSync(path.join(dir, 'host-ready'), started)
  } else {
    if (started !== 'client') throw new Error(`expected to join the host as a client, became ${started}`)
    const inc = { $inc: { a: 1 } }
    const b = mem.data.b
    for (let i = 0; i < Number(rounds); i++) await mem.patch(inc)
    const deadline = Date.now() + 60000
    while (mem.data.b - b < Number(rounds)) {
      if (Date.now() > deadline) throw new Error(`the host answered ${mem.data.b - b} of ${rounds} patches within 60 s`)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    await mem.stop()
  }
} else {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '10000' } } })
  const rounds = Number(values.rounds)
  const counts = []
  for (const total of [WARM, WARM + rounds]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-instructions-'))
    const host = spawn(process.execPath, [self, '--peer', 'host', dir], { stdio: 'inherit' })
    try {
      const deadline = Date.now() + 30000
      while (!fs.existsSync(path.join(dir, 'host-ready'))) {
        if (Date.now() > deadline) throw new Error('the host did not start within 30 s')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      const out = path.join(dir, 'callgrind.out')
      const run = spawnSync('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, self, '--peer', 'client', dir, String(total)], { encoding: 'utf8' })
      if (run.error) throw new Error(`valgrind: ${run.error.message} (Debian: apt-get install valgrind)`)
      if (run.status !== 0) throw new Error(`the client failed:\n${run.stderr}`)
      counts.push(Number(fs.readFileSync(out, 'utf8').match(/^summary: (\d+)$/m)[1]))
    } finally {
      host.kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  console.log(`${Math.round((counts[1] - counts[0]) / rounds).toLocaleString('en')} instructions per round (${counts.join(' / ')} for ${WARM} / ${WARM + rounds} rounds)`)
}
