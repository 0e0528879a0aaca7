'use strict'
// `npm run demo`: three processes share one object; the host is killed with SIGKILL and another
// process takes over without losing the count. The host saves the object to a file and serves it
// over HTTP, and both move with the host role. A watcher in this process observes the count, and
// the `memsync` command (bin/memsync.js) watches who hosts, lists and shows the object.
const { fork, spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { MemSync } = require('..')

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-demo-'))
const rendezvous = path.join(dir, 'rdv')
const file = path.join(dir, 'memsync-demo.json')
const name = 'memsync-demo'
const bin = path.join(__dirname, '..', 'bin', 'memsync.js')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function freePort () {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Runs `memsync ...args` with this terminal as its output (readable on a terminal, JSON when piped). */
function memsync (...args) {
  console.log(`\n$ memsync ${args.join(' ')}`)
  spawnSync(process.execPath, [bin, ...args, '--dir', rendezvous], { stdio: 'inherit' })
}

async function httpStatus (port) {
  const response = await fetch(`http://127.0.0.1:${port}/${name}/status`)
  console.log(`\n$ curl http://127.0.0.1:${port}/${name}/status\n${await response.text()}`)
}

async function main () {
  const port = await freePort()
  const workers = new Map()
  const start = (label) => new Promise((resolve) => {
    const child = fork(path.join(__dirname, 'worker.js'), [name, rendezvous, label, file, String(port)])
    child.on('message', (message) => {
      if (message.role) console.log(`worker ${label} (pid ${message.pid}) is ${message.role}`)
      if (message.report) child.emit('report', message.report)
      if (message.role && !workers.has(label)) {
        workers.set(label, { child, role: message.role })
        resolve()
      } else if (message.role) {
        workers.get(label).role = message.role
      }
    })
  })
  // The first worker hosts; the others join it.
  await start('a')
  await Promise.all([start('b'), start('c')])

  // The command line follows who hosts, live.
  const watch = spawn(process.execPath, [bin, 'watch', name, 'host', '--dir', rendezvous], { stdio: ['ignore', 'pipe', 'inherit'] })
  process.on('exit', () => watch.kill())
  watch.stdout.setEncoding('utf8')
  watch.stdout.on('data', (lines) => {
    for (const line of lines.trim().split('\n')) console.log(`  [memsync watch ${name} host] ${line}`)
  })

  // An observer only: a host must be a worker, which saves the file and serves HTTP.
  const watcher = new MemSync(name, {}, { dir: rendezvous, clientOnly: true })
  console.log(`watcher joins as ${await watcher.start()}`)
  let shown = 0
  watcher.observe('done', (done) => {
    if (done >= shown + 25) {
      shown = done
      console.log(`  done = ${done}, last log entries: ${watcher.data.log.join(' ')}`)
    }
  })

  await sleep(400)
  memsync('status', name)
  await httpStatus(port)
  await sleep(400)
  const host = [...workers].find(([, worker]) => worker.role === 'host')
  console.log(`\nkill -9 the host, worker ${host[0]} (pid ${host[1].child.pid})\n`)
  host[1].child.kill('SIGKILL')
  workers.delete(host[0])
  await sleep(800)

  const reports = await Promise.all([...workers.values()].map(({ child }) => new Promise((resolve) => {
    child.once('report', resolve)
    child.send('report')
  })))
  const status = await watcher.getStatus()
  console.log(`\nafter the failover: watcher at version ${status.version}, done = ${watcher.data.done}`)
  for (const report of reports) console.log('  a survivor reports', JSON.stringify(report))
  // The HTTP view and the file moved to the new host with the role.
  await httpStatus(port)
  memsync('ls')
  memsync('get', name, 'log')

  watch.kill('SIGINT')
  await watcher.stop()
  await Promise.all([...workers.values()].map(({ child }) => new Promise((resolve) => {
    child.once('exit', resolve)
    child.send('stop')
  })))
  const saved = JSON.parse(fs.readFileSync(file, 'utf8'))
  console.log(`\nthe file the last host saved on stop(): version ${saved.version}, done = ${saved.data.done}`)
  fs.rmSync(dir, { recursive: true, force: true })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
