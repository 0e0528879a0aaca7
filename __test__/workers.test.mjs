// Instances in worker_threads: each is a peer like any other, its socket polled by its own
// thread's event loop. A worker that ends without stop() must leave the process (and the others'
// sync) working: libuv refuses to close a worker's loop while one of our handles is open.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import memsync from '../index.js'
import { rendezvousDir, uniqueName, withTimeout } from './support/peers.mjs'

const { MemSync } = memsync
const INDEX = fileURLToPath(new URL('../index.js', import.meta.url))

// A client in a worker: reports its role and data, every value of `fromHost` it observes, and
// patches or stops when told to.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { MemSync } = require(workerData.index)
const mem = new MemSync(workerData.name, {}, { dir: workerData.dir, clientOnly: true, timeout: 5000 })
mem.observe('fromHost', (value) => parentPort.postMessage({ observed: value }))
parentPort.on('message', async (command) => {
  if (command === 'patch') {
    await mem.patch({ $inc: { fromWorkers: 1 } })
    parentPort.postMessage({ patched: true })
  } else if (command === 'stop') {
    await mem.stop()
    parentPort.postMessage({ stopped: true })
  }
})
mem.start().then((role) => parentPort.postMessage({ role, data: mem.data }))
`

/** A worker running WORKER_SOURCE, with a bounded wait for its next message that satisfies `predicate`. */
function startWorker (t, name, dir) {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { index: INDEX, name, dir } })
  const messages = []
  const waiters = new Set()
  worker.on('message', (message) => {
    messages.push(message)
    for (const waiter of waiters) waiter()
  })
  worker.on('error', (error) => messages.push({ error: String(error) }))
  t.after(() => worker.terminate())
  const next = (predicate, label) => {
    let waiter
    const found = new Promise((resolve) => {
      waiter = () => {
        const index = messages.findIndex(predicate)
        if (index >= 0) resolve(messages.splice(index, 1)[0])
      }
      waiters.add(waiter)
      waiter()
    })
    return withTimeout(found, 5000, `worker: ${label}; it sent ${JSON.stringify(messages)}`).finally(() => waiters.delete(waiter))
  }
  return { worker, next }
}

/** Resolves once `mem.data` satisfies `predicate`. */
function dataWhere (mem, path, predicate, label) {
  return withTimeout(new Promise((resolve) => {
    const check = () => {
      if (!predicate(mem.data)) return
      mem.unobserve(path, check)
      resolve()
    }
    mem.observe(path, check)
    check()
  }), 5000, label)
}

/** Resolves once the host counts `count` connections (no event tells; polled every 5 ms). */
function connectionsBecome (host, count, label) {
  return withTimeout(new Promise((resolve) => {
    const check = async () => {
      if ((await host.getStatus()).host.connections === count) resolve()
      else setTimeout(check, 5)
    }
    check()
  }), 5000, label)
}

test('clients in worker_threads sync with a host in the main thread; a worker ended without stop() harms nothing', { timeout: 30000 }, async (t) => {
  const dir = rendezvousDir(t)
  const name = uniqueName('workers')
  const host = new MemSync(name, { fromHost: 0, fromWorkers: 0 }, { dir, timeout: 5000 })
  t.after(() => host.stop())
  assert.equal(await host.start(), 'host')

  const first = startWorker(t, name, dir)
  const second = startWorker(t, name, dir)
  for (const { next } of [first, second]) {
    const { role, data } = await next((m) => m.role !== undefined, 'started')
    assert.equal(role, 'client')
    assert.deepEqual(data, { fromHost: 0, fromWorkers: 0 }, 'a worker joins with the host\'s data')
  }

  await host.patch({ $set: { fromHost: 7 } })
  for (const { next } of [first, second]) assert.equal((await next((m) => m.observed === 7, 'observed 7')).observed, 7)
  first.worker.postMessage('patch')
  second.worker.postMessage('patch')
  await first.next((m) => m.patched, 'patched')
  await second.next((m) => m.patched, 'patched')
  await dataWhere(host, 'fromWorkers', (data) => data.fromWorkers === 2, 'both workers\' patches reach the host')

  // Ended without stop(): its thread's loop closes with the poll of its socket open until the
  // environment's cleanup closes it; the host sees the connection go.
  await first.worker.terminate()
  await connectionsBecome(host, 1, 'the host sees the terminated worker\'s connection close')
  await host.patch({ $set: { fromHost: 8 } })
  assert.equal((await second.next((m) => m.observed === 8, 'observed 8')).observed, 8)

  second.worker.postMessage('stop')
  await second.next((m) => m.stopped, 'stopped')
  await second.worker.terminate()
  await connectionsBecome(host, 0, 'the host sees the stopped worker leave')
})
