'use strict'
// One process of the demo: joins the shared object, counts and logs its work, reports its role.
// While it is host it saves the object to the demo's file and serves the HTTP view.
const { MemSync } = require('..')

async function main () {
  const [name, dir, label, file, port] = process.argv.slice(2)
  const mem = new MemSync(name, { done: 0, log: [] }, { dir, file: { path: file }, server: { port: Number(port) } })
  let stopping = false
  // stop() rejects the patch it interrupts, and any made after it, with ERR_STOPPED.
  const stoppedBy = (error) => stopping && error.code === 'ERR_STOPPED'
  const announce = (role) => {
    if (!process.connected) return
    process.send({ label, role, pid: process.pid })
    // A worker may take the host role over while it stops too, as the demo stops them all.
    if (role === 'host') {
      mem.patch({ $set: { host: `worker ${label} (pid ${process.pid})` } }).catch((error) => {
        if (!stoppedBy(error)) throw error
      })
    }
  }
  announce(await mem.start())
  mem.on('connected', announce)
  // The demo ended (or failed): nothing left to show.
  process.on('disconnect', () => process.exit(0))
  process.on('message', async (message) => {
    if (message === 'stop') {
      stopping = true
      await mem.stop()
      process.exit(0)
    }
    if (message === 'report') {
      const { version } = await mem.getStatus()
      process.send({ label, report: { version, done: mem.data.done, logLength: mem.data.log.length } })
    }
  })
  for (let i = 0; !stopping; i++) {
    try {
      await mem.patch({ $inc: { done: 1 }, $push: { log: { $each: [`${label}${i}`], $slice: -5 } } })
    } catch (error) {
      if (stoppedBy(error)) return
      throw error
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
