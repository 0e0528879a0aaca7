// Where the clustered HTTP service of bench/cluster.mjs spends its time (issue 18), per process
// and per thread: not part of `npm run bench`, run by hand.
//
//   node bench/profile-cluster.mjs [--seconds 8] [--connections 50] [--cpu-prof] [--perf] [--syscalls] [--switches] [--out DIR]
//
// The load generator drives the service's plain mode, then its memsync mode, `seconds` each
// after a warm-up. Printed:
// - CPU time and wake-ups per request of every process and thread kind
//   (/proc/<pid>/task/*/schedstat), in each mode: what a patch per request adds, and where (the
//   JS threads, the host's tokio threads);
// - with --cpu-prof, the workers run under `node --cpu-prof`: their JS threads' samples during
//   the memsync run, by area (the profiles' leaf frames). The profiler costs the workers CPU
//   (its thread is listed), and a sample taken after a thread waited for a core lands on where
//   it waited, so the areas say where the JS threads are, not what costs CPU;
// - with --perf, `perf record` of every process during both runs (workers with
//   --perf-basic-prof, so JIT frames have names): CPU per request by process, what the thread
//   was doing (memsync's entry points, HTTP, the GC...) and the kind of code (kernel, addon,
//   V8...), plain against memsync; and memsync's own time by leaf symbol. The addon's symbols
//   need a build with CARGO_PROFILE_RELEASE_STRIP=none (release builds strip them);
// - with --syscalls, one more run of each mode under `perf stat`: system calls per request by
//   process and kind (reads, writes, waits for events, futexes, all), where batching shows: what a
//   patch per request adds in system calls, against what it adds in CPU time;
// - with --switches, one more memsync run with `perf record -e sched:sched_switch` on the host
//   worker and one client: why their JS threads left the CPU (the system call, or preempted) and
//   in which JS function. Time a JS thread spends waiting inside a call, which --cpu-prof counts
//   and CPU time does not, shows there (the host's patch() waiting for its replica's lock).
// The .cpuprofile files (Chrome's DevTools open them) and perf-<mode>.data stay in DIR.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { drive, withClusterService } from './cluster.mjs'

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '50' },
    'cpu-prof': { type: 'boolean', default: false },
    perf: { type: 'boolean', default: false },
    syscalls: { type: 'boolean', default: false },
    switches: { type: 'boolean', default: false },
    out: { type: 'string' }
  }
})
const seconds = Number(args.seconds)
const connections = Number(args.connections)
const out = args.out ?? fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-profile-'))
fs.mkdirSync(out, { recursive: true })
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-profile-run-'))
process.on('exit', () => fs.rmSync(base, { recursive: true, force: true }))

/**
 * CPU time (ns) and times scheduled of every thread of `pids`, summed by `${pid} ${thread name}`
 * (schedstat: on-CPU ns, run-queue ns, timeslices).
 */
function cpuTimes (pids) {
  const times = new Map()
  for (const pid of pids) {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      let name, sched
      try {
        name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim()
        sched = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number)
      } catch {
        continue // the thread ended
      }
      const key = `${pid} ${tid === String(pid) ? 'JS thread' : name}`
      const sum = times.get(key) ?? { cpu: 0, slices: 0 }
      times.set(key, { cpu: sum.cpu + sched[0], slices: sum.slices + sched[2] })
    }
  }
  return times
}

/** Drives `mode`, under `perf` with `perfArgs` when given, stopped once the run is over. */
async function drivenUnderPerf (load, port, mode, perfArgs) {
  const perf = perfArgs ? spawn('perf', perfArgs, { stdio: ['ignore', 'ignore', 'inherit'] }) : null
  if (perf) await new Promise((resolve) => setTimeout(resolve, 500)) // perf attaches
  const run = await drive(load, port, mode, { connections, seconds })
  if (perf) {
    const exited = new Promise((resolve) => perf.on('exit', resolve))
    perf.kill('SIGINT')
    await exited
  }
  return run
}

/** Runs `mode` (under `perf record` into `perfOut` if given): the run and each thread's CPU time. */
async function measured (load, port, mode, pids, perfOut) {
  const before = cpuTimes(pids)
  // DWARF call graphs: the addon is built without frame pointers.
  const run = await drivenUnderPerf(load, port, mode, perfOut && ['record', '-F', '499', '--call-graph', 'dwarf,16384', '-o', perfOut, '-p', pids.join(',')])
  const after = cpuTimes(pids)
  const cpu = new Map([...after].map(([key, t]) => {
    const was = before.get(key) ?? ZERO
    return [key, { cpu: t.cpu - was.cpu, slices: t.slices - was.slices }]
  }))
  return { run, cpu }
}

/** The system calls that --syscalls counts, by kind. */
const SYSCALL_KINDS = {
  reads: ['read', 'readv', 'recvfrom', 'recvmsg'],
  writes: ['write', 'writev', 'sendto', 'sendmsg'],
  waits: ['epoll_wait', 'epoll_pwait'],
  futexes: ['futex']
}

/** Runs `mode` under `perf stat`: system calls per request of each process, by kind and in all. */
async function countSyscalls (load, port, mode, pids) {
  const events = [...Object.values(SYSCALL_KINDS).flat().map((call) => `syscalls:sys_enter_${call}`), 'raw_syscalls:sys_enter']
  const file = path.join(out, `syscalls-${mode}.txt`)
  const run = await drivenUnderPerf(load, port, mode, ['stat', '-x', ';', '--per-thread', '-e', events.join(','), '-o', file, '-p', pids.join(',')])
  const pidOf = new Map(pids.flatMap((pid) => fs.readdirSync(`/proc/${pid}/task`).map((tid) => [Number(tid), pid])))
  const counts = new Map() // pid -> kind -> calls
  // CSV lines of --per-thread: `comm-tid;count;;event;...`
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [thread, count, , event] = line.split(';')
    const pid = pidOf.get(Number(/-(\d+)$/.exec(thread ?? '')?.[1]))
    if (pid === undefined || !/^\d+$/.test(count)) continue
    const call = event.replace(/^syscalls:sys_enter_/, '')
    const kind = event === 'raw_syscalls:sys_enter' ? 'all' : Object.keys(SYSCALL_KINDS).find((k) => SYSCALL_KINDS[k].includes(call))
    const byKind = counts.get(pid) ?? new Map()
    byKind.set(kind, (byKind.get(kind) ?? 0) + Number(count) / run.ok)
    counts.set(pid, byKind)
  }
  return counts
}

const ZERO = { cpu: 0, slices: 0 }
/** A process's row label; the 3 client workers share one. */
const roleOf = (pid) => result.roles.get(pid).replace(/ \(client\)$/, ' (3 clients)')
const pct = (part, whole) => `${((100 * part) / whole).toFixed(1).padStart(5)}%`
const us = (ns) => `${(ns / 1e3).toFixed(1).padStart(6)} µs`

const execArgv = [
  ...(args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${out}`] : []),
  ...(args.perf || args.switches ? ['--perf-basic-prof'] : [])
]
const result = await withClusterService(base, path.join(base, 'rdv'), { workers: 4, execArgv, cwd: out, stopCleanly: true, redis: false }, async ({ service, load, port, workers }) => {
  const pids = [service.child.pid, ...workers.map((w) => w.pid), load.child.pid]
  const roles = new Map([[service.child.pid, 'primary'], [load.child.pid, 'load generator'], ...workers.map((w) => [w.pid, `worker (${w.role})`])])
  for (const mode of ['plain', 'memsync']) await drive(load, port, mode, { connections, seconds: 2 })
  const plain = await measured(load, port, 'plain', pids, args.perf ? path.join(out, 'perf-plain.data') : null)
  const memsync = await measured(load, port, 'memsync', pids, args.perf ? path.join(out, 'perf-memsync.data') : null)
  const syscalls = {}
  if (args.syscalls) {
    for (const mode of ['plain', 'memsync']) syscalls[mode] = await countSyscalls(load, port, mode, pids)
  }
  if (args.switches) {
    const watched = [workers.find((w) => w.role === 'host').pid, workers.find((w) => w.role === 'client').pid]
    const perf = spawn('perf', ['record', '-e', 'sched:sched_switch', '--call-graph', 'dwarf,8192', '-o', path.join(out, 'switches.data'), '-p', watched.join(','), '--', 'sleep', String(Math.max(1, seconds - 1))], { stdio: ['ignore', 'ignore', 'inherit'] })
    const exited = new Promise((resolve) => perf.on('exit', resolve))
    await drive(load, port, 'memsync', { connections, seconds })
    await exited
  }
  return { roles, workers, plain, memsync, syscalls }
})

// Per request, by process role and thread kind (the 3 clients summed).
console.log(`\nPer request (${connections} connections, ${seconds} s per mode), CPU time / times a thread was scheduled:\n`)
const kinds = new Map()
for (const mode of ['plain', 'memsync']) {
  const { run, cpu } = result[mode]
  for (const [key, t] of cpu) {
    const [pid, ...thread] = key.split(' ')
    const kind = `${roleOf(Number(pid))} · ${thread.join(' ')}`
    const entry = kinds.get(kind) ?? { plain: { ...ZERO }, memsync: { ...ZERO } }
    entry[mode].cpu += t.cpu / run.ok
    entry[mode].slices += t.slices / run.ok
    kinds.set(kind, entry)
  }
}
const total = (mode, key) => [...kinds.values()].reduce((sum, k) => sum + k[mode][key], 0)
const cells = ({ cpu, slices }) => `${us(cpu)} / ${slices.toFixed(2)}`
console.log('| process · thread | plain | memsync | added by memsync |')
console.log('|---|---:|---:|---:|')
for (const [kind, { plain, memsync }] of [...kinds].sort((a, b) => b[1].memsync.cpu - a[1].memsync.cpu)) {
  if (plain.cpu + memsync.cpu < 0.05e3) continue
  console.log(`| ${kind} | ${cells(plain)} | ${cells(memsync)} | ${cells({ cpu: memsync.cpu - plain.cpu, slices: memsync.slices - plain.slices })} |`)
}
const all = (mode) => ({ cpu: total(mode, 'cpu'), slices: total(mode, 'slices') })
console.log(`| all | ${cells(all('plain'))} | ${cells(all('memsync'))} | ${cells({ cpu: all('memsync').cpu - all('plain').cpu, slices: all('memsync').slices - all('plain').slices })} |`)
for (const mode of ['plain', 'memsync']) {
  const { run } = result[mode]
  console.log(`${mode}: ${Math.round(run.rate).toLocaleString('en')} requests/s, p99 ${(run.p99 / 1e6).toFixed(2)} ms`)
}

if (args.syscalls) {
  const kinds = [...Object.keys(SYSCALL_KINDS), 'all']
  const byRole = (mode) => {
    const sums = new Map()
    for (const [pid, byKind] of result.syscalls[mode]) {
      const role = roleOf(pid)
      const sum = sums.get(role) ?? new Map()
      for (const [kind, calls] of byKind) sum.set(kind, (sum.get(kind) ?? 0) + calls)
      sums.set(role, sum)
    }
    return sums
  }
  const plain = byRole('plain')
  const memsync = byRole('memsync')
  const cells = (sum) => kinds.map((kind) => (sum?.get(kind) ?? 0).toFixed(2)).join(' / ')
  console.log(`\nSystem calls per request (${kinds.join(' / ')}), each mode in a run of its own under perf stat:\n`)
  console.log('| process | plain | memsync |')
  console.log('|---|---:|---:|')
  for (const role of new Set([...plain.keys(), ...memsync.keys()])) console.log(`| ${role} | ${cells(plain.get(role))} | ${cells(memsync.get(role))} |`)
  const total = (sums) => new Map(kinds.map((kind) => [kind, [...sums.values()].reduce((n, sum) => n + (sum.get(kind) ?? 0), 0)]))
  console.log(`| all | ${cells(total(plain))} | ${cells(total(memsync))} |`)
}

// The JS threads during the memsync run, by the leaf frame of each sample. Native functions of
// the addon have no frame of their own: their time is the self time of the JS function that
// calls them (#flush: native flush; patch: native patch; #drain: native drain and JSON.parse).
const AREAS = [
  ['(idle)', (f) => f.functionName === '(idle)', 'idle, and libuv callbacks outside JS: a client reads its host socket there (js_poll)'],
  ['gc', (f) => f.functionName === '(garbage collector)', 'garbage collector'],
  ['program', (f) => f.functionName === '(program)', '(program): V8 and Node native code outside JS functions'],
  ['flush', (f) => f.functionName === '#flush', 'memsync #flush: native flush (own patches to the host, the host\'s relay of its own)'],
  ['patch', (f) => f.functionName === 'patch' && f.url.endsWith('lib/memsync.js'), 'memsync patch(): native patch (engine, replica, events JSON) and its JS'],
  ['drain', (f) => f.functionName === '#drain', 'memsync #drain: native drain (received patches\' events) and JSON.parse'],
  ['memsyncJs', (f) => /\/lib\/[a-z]+\.js$/.test(f.url), 'memsync JS: update checks (json.js), applying changes to data, observers, promises'],
  ['service', (f) => f.url.endsWith('cluster-service.mjs'), 'the service\'s request handler'],
  ['node', () => true, 'Node: HTTP parser and responses, streams, sockets, timers, microtasks']
]

function areasOf (file, window) {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'))
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const counts = new Map(AREAS.map(([id]) => [id, 0]))
  const selfByFunction = new Map()
  let t = profile.startTime // µs, CLOCK_MONOTONIC, as process.hrtime
  let samples = 0
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]
    if (t * 1e3 < window.start || t * 1e3 > window.end) continue
    samples++
    const frame = nodes.get(profile.samples[i]).callFrame
    const [id] = AREAS.find(([, test]) => test(frame))
    counts.set(id, counts.get(id) + 1)
    const key = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\//, '')}:${frame.lineNumber + 1}`
    selfByFunction.set(key, (selfByFunction.get(key) ?? 0) + 1)
  }
  return { samples, counts, selfByFunction }
}

const window = result.memsync.run
const profiles = !args['cpu-prof'] ? [] : fs.readdirSync(out).filter((f) => f.endsWith('.cpuprofile'))
const byRole = new Map()
for (const file of profiles) {
  const pid = Number(file.split('.')[3]) // CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile
  const role = result.roles.get(pid)
  if (role === undefined) continue
  const kind = role.includes('host') ? 'host' : 'clients'
  const areas = areasOf(path.join(out, file), window)
  const sum = byRole.get(kind) ?? { samples: 0, counts: new Map(), selfByFunction: new Map() }
  sum.samples += areas.samples
  for (const [id, n] of areas.counts) sum.counts.set(id, (sum.counts.get(id) ?? 0) + n)
  for (const [key, n] of areas.selfByFunction) sum.selfByFunction.set(key, (sum.selfByFunction.get(key) ?? 0) + n)
  byRole.set(kind, sum)
}
if (byRole.size > 0) {
  console.log('\nJS threads during the memsync run, share of samples by area (--cpu-prof, leaf frames):\n')
  console.log('| area | host worker | client workers |')
  console.log('|---|---:|---:|')
  for (const [id, , label] of AREAS) {
    console.log(`| ${label} | ${pct(byRole.get('host')?.counts.get(id) ?? 0, byRole.get('host')?.samples ?? 1)} | ${pct(byRole.get('clients')?.counts.get(id) ?? 0, byRole.get('clients')?.samples ?? 1)} |`)
  }
}
for (const [kind, sum] of byRole) {
  console.log(`\nTop self time, ${kind === 'host' ? 'host worker' : 'client workers'} (${sum.samples} samples):`)
  for (const [key, n] of [...sum.selfByFunction].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(n, sum.samples)}  ${key}`)
}

// perf's samples by where they were taken from: `context` is the nearest frame, from the leaf up,
// that says what the thread was doing for whom (memsync's entry points, HTTP's reads and writes,
// the GC), else the nearest of the catch-alls (FALLBACKS); `detail` is the kind of code the
// sample is in (a system call, the addon, V8...).
const CONTEXTS = [
  ['memsync: read the host socket (js_poll)', /js_poll::on_readable|inbox::Inbox::js_turn/],
  ['memsync: native patch', /binding::patch_c_callback|Replica::patch\b/],
  ['memsync: native flush', /binding::flush_c_callback|Replica::flush\b/],
  ['memsync: native drain', /binding::drain_c_callback|Replica::drain\b/],
  ['memsync: JS #drain (JSON.parse, apply, observers, settle)', /[#]drain .*memsync\.js/],
  ['memsync: JS patch()', /[*~]patch .*memsync\.js/],
  ['memsync: JS #flush', /[#]flush .*memsync\.js/],
  ['memsync: wake the JS thread (threadsafe function)', /threadsafe_function|napi_call_threadsafe_function|uv__async_io/],
  ['memsync: host relay (tokio)', /transport::local::host::|host_receive|Followers::publish/],
  ['HTTP: write a response / request', /StreamBase::Writev|StreamBase::WriteString|uv__write|uv_try_write/],
  ['HTTP: read and parse', /llhttp|node::http_parser|LibuvStreamWrap::OnUvRead|uv__read/],
  ['V8: GC', /v8::internal::(Heap|Scavenger|MarkCompact|MinorMarkSweep|ConcurrentMarking|IncrementalMarking)/],
  ['JS microtasks (promise reactions)', /RunMicrotasks|MicrotaskQueue/]
]
const FALLBACKS = [
  ['memsync: other', /memsync::|^tokio::/],
  ['JS: other', /^JS:/],
  ['epoll / idle', /uv__io_poll|epoll_wait/]
]
const contextOf = (frames) => {
  for (const rules of [CONTEXTS, FALLBACKS]) {
    for (const frame of frames) {
      const rule = rules.find(([, re]) => re.test(frame.sym))
      // A JS function of no context above: named (perf map's `JS:*name file:line:column`).
      if (rule?.[0] === 'JS: other') return `JS: ${frame.sym.replace(/^JS:[*~^]?/, '').replace(/ \S*\/([^/]+):(\d+):\d+$/, ' $1:$2')}`
      if (rule) return rule[0]
    }
  }
  return 'other'
}

function detailOf ({ sym, dso }) {
  if (dso.includes('kernel')) return 'kernel'
  if (dso.includes('memsync')) return 'addon'
  if (dso.includes('libc')) return /malloc|free|realloc/.test(sym) ? 'malloc/free' : 'libc'
  if (dso.includes('perf-') || sym.startsWith('JS:') || sym.startsWith('LazyCompile:') || sym.startsWith('Builtin:')) return 'JS'
  if (/Json|JSON/.test(sym)) return 'V8 JSON'
  return 'Node/V8'
}

/** perf script's samples: { pid, tid, frames: [{ sym, dso }] }, the leaf first. */
function perfSamples (perfData) {
  const text = spawnSync('perf', ['script', '-i', perfData, '--no-inline', '-F', 'pid,tid,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 2 ** 30 }).stdout
  const samples = []
  for (const block of text.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.trim() !== '')
    if (lines.length === 0) continue
    const [pid, tid] = lines[0].trim().split(/\s+/)[0].split('/').map(Number)
    const frames = lines.slice(1).map((line) => {
      const m = /^\s*[0-9a-f]+ (.*) \((.*)\)$/.exec(line)
      return m ? { sym: m[1], dso: m[2] } : { sym: '', dso: '' }
    })
    samples.push({ pid, tid, frames })
  }
  return samples
}

/** perf's samples of one run, counted by `${process} | ${context} | ${detail}`, and memsync's leaves. */
function perfCounts (mode) {
  const samples = perfSamples(path.join(out, `perf-${mode}.data`))
  const processOf = ({ pid, tid }) => {
    const role = result.roles.get(pid) ?? 'other'
    const who = role.startsWith('worker') ? (role.includes('host') ? 'host' : 'clients') : role
    return `${who} · ${pid === tid ? 'JS' : 'other threads'}`
  }
  const counts = new Map()
  const leaves = new Map()
  for (const sample of samples) {
    const context = contextOf(sample.frames)
    const syscall = sample.frames.map((f) => /__x64_sys_(\w+)/.exec(f.sym)?.[1]).find(Boolean)
    const detail = detailOf(sample.frames[0] ?? { sym: '', dso: '' }) + (syscall ? ` (${syscall})` : '')
    const key = `${processOf(sample)} | ${context} | ${detail}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
    if (context.startsWith('memsync')) {
      const leaf = `${context} | ${sample.frames[0]?.sym.replace(/<[^<>]*>/g, '').slice(0, 90) ?? ''}`
      leaves.set(leaf, (leaves.get(leaf) ?? 0) + 1)
    }
  }
  return { samples: samples.length, counts, leaves }
}

if (args.perf) {
  const PER_SAMPLE = 1e9 / 499 // ns of CPU time a sample stands for (perf record -F 499)
  const runs = { plain: perfCounts('plain'), memsync: perfCounts('memsync') }
  const perRequest = (mode, n) => (n * PER_SAMPLE) / result[mode].run.ok
  /** Both runs' counts summed by `group(key)`, per request; rows above `floor` ns in either. */
  const compare = (title, group, floor) => {
    const rows = new Map()
    for (const mode of ['plain', 'memsync']) {
      for (const [key, n] of runs[mode].counts) {
        const k = group(key)
        const row = rows.get(k) ?? { plain: 0, memsync: 0 }
        row[mode] += perRequest(mode, n)
        rows.set(k, row)
      }
    }
    console.log(`\n${title}\n`)
    console.log('| process · thread | doing | plain | memsync | added |')
    console.log('|---|---|---:|---:|---:|')
    for (const [k, { plain, memsync }] of [...rows].sort((a, b) => (b[1].memsync - b[1].plain) - (a[1].memsync - a[1].plain))) {
      if (Math.max(plain, memsync) < floor) continue
      console.log(`| ${k} | ${us(plain)} | ${us(memsync)} | ${us(memsync - plain)} |`)
    }
  }
  console.log(`\nperf (${runs.plain.samples} + ${runs.memsync.samples} samples at 499 Hz of CPU time): CPU per request, plain against memsync`)
  compare('by process and what it was doing:', (key) => key.split(' | ').slice(0, 2).join(' | '), 0.4e3)
  compare('by process, what it was doing, and the code (kernel with the system call, addon, V8...):', (key) => {
    const [process, context, detail] = key.split(' | ')
    return `${process} | ${context}: ${detail}`
  }, 0.5e3)
  console.log('\nmemsync\'s contexts in the memsync run, by leaf symbol (every process):\n')
  console.log('| doing | leaf symbol | per request |')
  console.log('|---|---|---:|')
  for (const [key, n] of [...runs.memsync.leaves].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`| ${key} | ${us(perRequest('memsync', n))} |`)
  }
}
if (args.switches) {
  const host = result.workers.find((w) => w.role === 'host').pid
  const counts = new Map()
  let total = 0
  for (const { pid, tid, frames } of perfSamples(path.join(out, 'switches.data'))) {
    if (pid !== tid) continue // the JS threads only
    total++
    const syms = frames.map((f) => f.sym)
    const why = syms.map((sym) => /__x64_sys_(\w+)/.exec(sym)?.[1]).find(Boolean) ?? (syms.some((sym) => /irqentry_exit|exit_to_user_mode/.test(sym)) ? 'preempted' : 'other')
    const js = syms.find((sym) => sym.startsWith('JS:'))?.replace(/^JS:[*~^]?/, '').replace(/ \S*\/([^/]+):(\d+):\d+$/, ' $1:$2') ?? (syms.some((sym) => /uv__io_poll/.test(sym)) ? '(waiting in the event loop)' : '-')
    const key = `${pid === host ? 'host' : 'a client'} | ${why} | ${js}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  console.log(`\nWhy the JS threads of the host and of one client left the CPU during a memsync run (${total} switches, ${Math.max(1, seconds - 1)} s):\n`)
  console.log('| worker | why (system call, or preempted) | in | switches |')
  console.log('|---|---|---|---:|')
  for (const [key, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`| ${key} | ${n} |`)
}
for (const { pid } of result.workers) fs.rmSync(`/tmp/perf-${pid}.map`, { force: true })
console.log(`\nprofiles in ${out}`)
