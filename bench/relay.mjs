// The physical floor: the raw Rust Unix-socket relay of benches/relay.rs (A → relay → B, no
// JSON, no replica, no JavaScript), run with the sample counts of memsync's benchmarks.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { summarize } from './measure.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Builds benches/relay.rs (after a change of src/ it links the crate again); returns its executable. */
export function buildRelay () {
  const cargo = spawnSync('cargo', ['bench', '--no-default-features', '--bench', 'relay', '--no-run', '--message-format=json'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 256 * 2 ** 20,
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 900000
  })
  if (cargo.status !== 0) throw new Error(`cargo bench --bench relay --no-run failed (${cargo.status ?? cargo.signal})`)
  const artifact = cargo.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
    .find((m) => m.reason === 'compiler-artifact' && m.target?.name === 'relay' && m.executable)
  if (artifact === undefined) throw new Error('cargo named no executable for the relay bench')
  return artifact.executable
}

/**
 * Runs the relay's executable (not `cargo bench` again, which would rebuild after any change):
 * latency with `latency`'s counts, throughput with 1, 2 and 4 writers of `messages` frames each.
 * Its clients are its own child processes, which it waits for; `timeout` bounds the whole run.
 */
export function benchRelay (executable, { latency, throughput, messages }) {
  const args = [
    '--runs', latency.runs, '--warmup', latency.warmup, '--samples', latency.samples,
    '--messages', messages, '--throughput-runs', throughput.runs, '--writers', throughput.writers.join(',')
  ].map(String)
  const run = spawnSync(executable, args, {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 300000,
    killSignal: 'SIGKILL'
  })
  if (run.status !== 0) throw new Error(`the relay bench failed (${run.status ?? run.signal})`)
  const raw = JSON.parse(run.stdout.trim().split('\n').findLast((l) => l.startsWith('{')))
  const runs = raw.latency.runs
  return {
    messageBytes: raw.message_bytes,
    inFlight: raw.in_flight,
    latency: {
      runs,
      p50: summarize(runs.map((r) => r.p50_ns)),
      p99: summarize(runs.map((r) => r.p99_ns)),
      rttHalfP50: summarize(runs.map((r) => r.rtt_p50_ns / 2))
    },
    throughput: raw.throughput.map((t) => ({ writers: t.writers, messagesPerRun: t.messages, runs: t.runs, ...summarize(t.runs) }))
  }
}
