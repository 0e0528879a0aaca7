'use strict'
// `npm run demo`: three processes share one object; the host is killed with SIGKILL and another
// process takes over without losing the count. A watcher in this process observes it all.
const { fork } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { MemSync } = require('..')

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-demo-'))
const rendezvous = path.join(dir, 'rdv')
const name = 'memsync-demo'
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main () {
  const workers = new Map()
  const start = (label) => new Promise((resolve) => {
    const child = fork(path.join(__dirname, 'worker.js'), [name, rendezvous, label])
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

  const watcher = new MemSync(name, {}, { dir: rendezvous })
  console.log(`watcher joins as ${await watcher.start()}`)
  let shown = 0
  watcher.observe('done', (done) => {
    if (done >= shown + 25) {
      shown = done
      console.log(`  done = ${done}, last log entries: ${watcher.data.log.join(' ')}`)
    }
  })

  await sleep(800)
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
  for (const { child } of workers.values()) child.send('stop')
  await watcher.stop()
  fs.rmSync(dir, { recursive: true, force: true })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
