'use strict'
// A counter shared by every worker of a PM2 cluster: each request increments it, whichever worker
// answers. See README.md here for why the worker says 'ready' and keeps a file.
const http = require('node:http')
const path = require('node:path')
const { MemSync } = require('../..')

const mem = new MemSync('pm2-counter', { hits: 0 }, {
  // `pm2 restart` stops every worker before it starts the new ones: without a file, the object
  // would start again from { hits: 0 }. The host saves it; the first new worker loads it.
  file: { path: process.env.COUNTER_FILE ?? path.join(__dirname, 'data', 'counter.json') }
})

const server = http.createServer(async (request, response) => {
  await mem.patch({ $inc: { hits: 1 } })
  response.setHeader('content-type', 'application/json')
  response.end(JSON.stringify({ hits: mem.data.hits, pid: process.pid }))
})

async function main () {
  await mem.start()
  server.listen(Number(process.env.PORT ?? 3000))
  await new Promise((resolve) => server.once('listening', resolve))
  // With wait_ready, PM2 stops the next old worker of a `pm2 reload` only now: this worker has
  // joined and holds the object, so at no moment are all holders gone.
  process.send?.('ready')
}

// PM2 sends SIGINT first (kill_timeout later, SIGKILL): leave cleanly, handing the host role over.
process.on('SIGINT', async () => {
  server.close()
  await mem.stop()
  process.exit(0)
})

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
