// Code written against memsync 0.5's typings (tenbits/memsync src/MemSync.ts, src/mem/EventsObject.ts,
// atma's class_EventEmitter and class_Dfr), as its tests, fixtures and README use them. It must
// compile unchanged with `tsc --strict` against our index.d.ts (npm test runs
// `tsc -p __test__/compat`); nothing here runs.
import { MemSync, MemErrors } from '../../index.js'

interface IBar {
  name: string
  date: number
}

async function single () {
  const mem = new MemSync('single', { foo: 'foo' }, {
    logEvents: false
  })
  await mem.start()
  const status = await mem.getStatus()
  const started: boolean = status.host.started
  const connections: number = status.host.connections
  const foo: string = mem.data.foo
  void [started, connections, foo]
}

async function incWorker () {
  const mem = new MemSync('inc', { num: 0 })
  await mem.start()
  setInterval(() => {
    mem.patch({
      $inc: {
        num: 1
      }
    })
    console.log('[inc] Patched', mem.data.num)
  }, 500)
}

async function reader () {
  const reader = new MemSync('inc', { num: 0 }, {
    logEvents: false
  })
  await reader.start()
  const [patch] = await reader.onceAsync('receivedPatches')
  const version: number = patch.version
  const p1 = await reader.ping()
  const connection: string | null = p1.connection
  reader.observe('num', async (val) => {
    const n: number = val
    await reader.stop()
    const hasPeers: boolean = await reader.hasPeers()
    void [n, hasPeers]
  })
  // hasPeers took the socket path to probe.
  const other: boolean = await reader.hasPeers('/tmp/app.memsync_other')
  void [version, connection, other]
}

async function rpc () {
  const mem = new MemSync({
    name: 'rpcCheck',
    rpc: {
      getBar (): IBar {
        return { name: 'BarHost', date: new Date().getDate() }
      }
    },
    options: { logEvents: false }
  })
  await mem.start()

  const reader = new MemSync({
    name: 'rpcCheck',
    rpc: {
      getKey () {
        throw new Error('Not the RPC')
      }
    },
    options: {
      timeout: 2000,
      logEvents: false
    }
  })
  await reader.start()
  // The type argument is the result's type; the method is another process's.
  const { result: value } = await reader.call<IBar>('getBar')
  const name: string = value.name
  const withArgs = await reader.call<number>('sum', 1, 2)
  const sum: number = withArgs.result
  void [name, sum]
}

async function events () {
  const mem = new MemSync<{ num: number }, any, { time: (ms: number) => void }>('customEvents', { num: 0 })
  await mem.start()
  mem.events.on('time', (ms) => {
    const n: number = ms
    void n
  })
  setInterval(() => {
    mem.events.emit('time', Date.now())
  }, 500)
  // emit returns the bus: emits chain.
  mem.events.emit('time', 1).emit('time', 2)
  mem.events.trigger('time', 3)
  const send = mem.events.pipe('time')
  send(4)
  mem.events.off('time')
}

async function concurrency () {
  const writer = new MemSync({
    name: 'writerCheck',
    data: { num: 0 },
    options: {
      logEvents: true,
      peer: { roles: ['writer'] },
      network: { maxWriters: 1 }
    }
  })
  try {
    await writer.start()
  } catch (error: any) {
    const maxWriters: boolean = error.code === MemErrors.ERR_MAX_WRITERS
    void maxWriters
  }
}

async function storageAndServer () {
  const storage = new MemSync('storage', { num: 0 }, {
    file: { path: './test/tmp/store.json' }
  })
  await storage.start()
  await storage.patch({ $set: { num: Date.now() } })
  await storage.flush()
  await storage.stop()

  const server = new MemSync('inc-server', { num: 0 }, {
    logEvents: false,
    server: { port: 8838 }
  })
  await server.start()
}

async function emitterAndConnection () {
  const mem = new MemSync('emitter', { list: ['one', 'two'] })
  const onConnected = (type: 'host' | 'client') => { void type }
  mem.on('connected', onConnected)
  mem.off('connected', onConnected)
  mem.off('receivedPatches')
  mem.emit('connected', 'host').trigger('disconnected', 'host')
  mem.pipe('connected')('client')
  mem.connection.done((info) => { void info.type }).fail(() => {})
  const { type } = await mem.connection
  mem.setOptions({ logLevel: 'none' })
  void type
}

void [single, incWorker, reader, rpc, events, concurrency, storageAndServer, emitterAndConnection]
