'use strict'
// The `memsync` command (bin/memsync.js): lists, reads, watches and patches the objects that this
// user's processes share. It joins an object as a client that never becomes host (`clientOnly`),
// so it can neither start a network nor take one over, and checks first that the name is live
// (its socket accepts a connection), so that an unknown name fails at once instead of waiting
// for a host. With --transport it reaches the object through Redis instead, as a machine of its
// own (a private rendezvous directory), after checking that Redis holds the object. Output is JSON
// (one document per line) when stdout is not a terminal, or with --json; readable text on a
// terminal.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { parseArgs } = require('node:util')
const native = require('../native.js')
const { MemSync, readPath } = require('./memsync.js')
const { settle } = require('./errors.js')

const DEFAULT_TIMEOUT_MS = 5000

const COMMON_OPTIONS = {
  dir: { type: 'string' },
  timeout: { type: 'string' },
  transport: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
}

const COMMON_HELP = `Options:
  --dir <dir>      the rendezvous directory (default: $XDG_RUNTIME_DIR/memsync, else <tmp>/memsync-<uid>)
  --timeout <ms>   how long to wait for the host (default ${DEFAULT_TIMEOUT_MS})
  --transport <url>  reach the object through Redis (redis://, rediss://, redis+sentinel://, redis+cluster://),
                   as the processes of other machines share it (not with ls)
  --json           JSON output on a terminal too (it is JSON whenever stdout is not a terminal)
  -h, --help       this help`

/** A failure to report on stderr with exit code 1 (2 for `usage`). */
class CliError extends Error {
  constructor (message, { usage = false } = {}) {
    super(message)
    this.usage = usage
  }
}

const COMMANDS = {
  ls: {
    args: [],
    summary: 'list the live objects of this user, with their host, clients and version',
    run: ls
  },
  get: {
    args: ['<name>', '[path]'],
    summary: 'print the object, or the value at a dotted path (a.list.0)',
    run: get
  },
  watch: {
    args: ['<name>', '[path]'],
    summary: 'print the object (or the value at path), then every change, until Ctrl-C',
    run: watch
  },
  patch: {
    args: ['<name>', '<update>'],
    summary: 'apply a MongoDB update document, e.g. \'{"$inc":{"done":1}}\'',
    run: patch
  },
  status: {
    args: ['<name>'],
    summary: "show the host's pid, how many clients it has and the version",
    run: status
  },
  url: {
    args: ['<name>'],
    summary: "print the URL of the object's HTTP view, with its token (options.server)",
    run: url
  }
}

function generalHelp () {
  const width = Math.max(...Object.entries(COMMANDS).map(([name, c]) => `${name} ${c.args.join(' ')}`.length))
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${`${name} ${c.args.join(' ')}`.padEnd(width)}   ${c.summary}`)
  return `Usage: memsync <command> [options]

Looks at and changes the objects that this user's Node.js processes share with memsync.

Commands:
${lines.join('\n')}

${COMMON_HELP}

'memsync <command> --help' describes a command. Exit status: 0 on success, 1 on failure, 2 on
a usage error.`
}

function commandHelp (name) {
  const command = COMMANDS[name]
  const extra = {
    ls: 'A name is live when its socket accepts a connection.',
    get: 'Fails when the path holds nothing.',
    watch: `Without a path: the object as {"version","data"}, then one line per patch as
{"version","timestamp","patch"}, and the whole object again after a change of host.
With a path: {"version","value"} whenever the value changes.`,
    patch: 'Resolves once the host has accepted the update; prints the version then reached.',
    status: 'Asks the host without joining the object; with --transport, asks Redis: the version, the log\'s length and the newest snapshot.'
  }[name]
  return `Usage: memsync ${name} ${command.args.join(' ')} [options]

${command.summary[0].toUpperCase()}${command.summary.slice(1)}.
${extra}

${COMMON_HELP}`
}

/** Runs the command line `argv` (without node and the script); resolves to the exit code. */
async function main (argv) {
  const [name, ...rest] = argv
  if (name === undefined) {
    process.stderr.write(generalHelp() + '\n')
    return 2
  }
  if (name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(generalHelp() + '\n')
    return 0
  }
  const command = COMMANDS[name]
  try {
    if (command === undefined) throw new CliError(`unknown command '${name}'`, { usage: true })
    const { values, positionals } = parse(rest)
    if (values.help) {
      process.stdout.write(commandHelp(name) + '\n')
      return 0
    }
    const required = command.args.filter((arg) => arg.startsWith('<')).length
    if (positionals.length < required || positionals.length > command.args.length) {
      throw new CliError(`expects ${command.args.join(' ') || 'no arguments'}`, { usage: true })
    }
    await command.run(context(values), ...positionals)
    return 0
  } catch (error) {
    const where = command === undefined ? 'memsync' : `memsync ${name}`
    const message = error instanceof CliError || error.code === undefined ? error.message : `${error.code}: ${error.message}`
    process.stderr.write(`${where}: ${message}\n`)
    if (error.usage) {
      process.stderr.write(`Run 'memsync${command === undefined ? '' : ` ${name}`} --help' for usage.\n`)
      return 2
    }
    return 1
  }
}

function parse (args) {
  try {
    return parseArgs({ args, options: COMMON_OPTIONS, allowPositionals: true, strict: true })
  } catch (error) {
    throw new CliError(error.message, { usage: true })
  }
}

function context (values) {
  let timeout = DEFAULT_TIMEOUT_MS
  if (values.timeout !== undefined) {
    timeout = Number(values.timeout)
    if (!(Number.isInteger(timeout) && timeout > 0)) throw new CliError(`--timeout must be a positive number of milliseconds, not '${values.timeout}'`, { usage: true })
  }
  let shown
  if (values.transport !== undefined) {
    try {
      shown = native.transportTarget(values.transport)
    } catch (error) {
      throw new CliError(`--transport: ${error.message}`, { usage: true })
    }
  }
  return {
    dir: path.resolve(values.dir ?? native.defaultDir()),
    timeout,
    transport: values.transport,
    shown,
    json: values.json === true || !process.stdout.isTTY
  }
}

/** What the Redis of `--transport` holds of `name`; throws when it holds nothing of it. */
async function transportStatus (ctx, name) {
  const status = settle(await native.transportStatus(ctx.transport, name))
  if (!status.exists) throw new CliError(`no object named '${name}' in ${ctx.shown}`)
  return status
}

/** Prints `value` as one line of JSON, or as `readable(value)` on a terminal. */
function print (ctx, value, readable) {
  process.stdout.write((ctx.json ? JSON.stringify(value) : readable(value)) + '\n')
}

function pretty (value) {
  return JSON.stringify(value, null, 2)
}

/** Whether a host of `name` accepts connections (the native probe knows where it listens). */
function isLive (ctx, name) {
  return native.isLive(ctx.dir, name)
}

/**
 * Joins `name` as a client that never becomes host, or with --transport as a machine of its own;
 * resolves with the instance and `leave()`, which stops it (and removes what it made).
 */
async function join (ctx, name) {
  if (ctx.transport !== undefined) {
    await transportStatus(ctx, name)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memsync-cli-'))
    const mem = new MemSync(name, {}, { dir, transport: ctx.transport, timeout: ctx.timeout })
    const leave = async () => {
      try {
        await mem.stop()
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }
    try {
      await mem.start()
    } catch (error) {
      await leave()
      throw error
    }
    return { mem, leave }
  }
  // Constructing checks the name before it is joined to a path.
  const mem = new MemSync(name, {}, { dir: ctx.dir, clientOnly: true, timeout: ctx.timeout })
  if (!(await isLive(ctx, name))) {
    throw new CliError(`no live object named '${name}' in ${ctx.dir} ('memsync ls' lists them)`)
  }
  await mem.start()
  return { mem, leave: () => mem.stop() }
}

/** Runs `use(mem)` on the joined object, then leaves it. */
async function joined (ctx, name, use) {
  const { mem, leave } = await join(ctx, name)
  try {
    return await use(mem)
  } finally {
    await leave()
  }
}

/**
 * The version that `mem.data` shows: reading it and draining the native replica's events
 * (`patch({})` does, synchronously) until nothing moved in between.
 */
async function settledVersion (mem) {
  for (;;) {
    await mem.patch({})
    const before = (await mem.getStatus()).version
    await mem.patch({})
    const { version } = await mem.getStatus()
    if (version === before) return version
  }
}

async function ls (ctx) {
  if (ctx.transport !== undefined) throw new CliError('ls lists the objects of this machine; with --transport, name one: memsync status --transport <url> <name>', { usage: true })
  const live = settle(await native.liveNames(ctx.dir))
  const objects = await Promise.all(live.map(async ({ name, file }) => {
    // A long name is hashed into its file name and cannot be read back: listed by that file.
    if (name === null) return { name: null, file, hostPid: null, version: null, clients: null }
    try {
      return { name, ...settle(await native.queryHost(ctx.dir, name)) }
    } catch {
      // Live, but it did not say more (a host that was stopping).
      return { name, hostPid: null, version: null, clients: null }
    }
  }))
  objects.sort((a, b) => (a.name ?? a.file) < (b.name ?? b.file) ? -1 : 1)
  print(ctx, objects, (list) => {
    if (list.length === 0) return `no live objects in ${ctx.dir}`
    const rows = [['NAME', 'HOST PID', 'CLIENTS', 'VERSION'], ...list.map((o) => [o.name ?? `(file ${o.file})`, o.hostPid ?? '?', o.clients ?? '?', o.version ?? '?'].map(String))]
    const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)))
    return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd()).join('\n')
  })
}

async function get (ctx, name, dotted = '') {
  await joined(ctx, name, async (mem) => {
    const value = readPath(mem, dotted)
    if (value === undefined) throw new CliError(`'${name}' has no value at '${dotted}'`)
    print(ctx, value, pretty)
  })
}

async function patch (ctx, name, text) {
  let update
  try {
    update = JSON.parse(text)
  } catch (error) {
    throw new CliError(`the update is not valid JSON: ${error.message}`)
  }
  if (update === null || typeof update !== 'object' || Array.isArray(update)) {
    throw new CliError('the update must be a JSON object such as {"$set":{"a":1}}')
  }
  await joined(ctx, name, async (mem) => {
    await mem.patch(update)
    const version = await settledVersion(mem)
    print(ctx, { name, version }, () => `patched '${name}': now at version ${version}`)
  })
}

async function status (ctx, name) {
  if (ctx.transport !== undefined) {
    const status = await transportStatus(ctx, name)
    const machines = status.machines.map((m) => ({ name: m.name, pids: m.processes.map((p) => p.pid) }))
    print(ctx, { name, transport: ctx.shown, version: status.version, logEntries: status.logEntries, snapshotVersion: status.snapshotVersion, machines }, (s) => [
      `${s.name}`,
      `  transport  ${s.transport}`,
      `  version    ${s.version}`,
      `  log        ${s.logEntries} entries`,
      `  snapshot   ${s.snapshotVersion === null ? 'none yet' : `at version ${s.snapshotVersion}`}`,
      `  machines   ${s.machines.length === 0 ? 'none' : s.machines.map((m) => `${m.name} (pids ${m.pids.join(', ')})`).join('; ')}`
    ].join('\n'))
    return
  }
  if (!(await isLive(ctx, name))) {
    throw new CliError(`no live object named '${name}' in ${ctx.dir} ('memsync ls' lists them)`)
  }
  const answer = settle(await native.queryHost(ctx.dir, name))
  print(ctx, { name, ...answer }, (s) => [
    `${s.name}`,
    `  host     pid ${s.hostPid}`,
    `  clients  ${s.clients}`,
    `  version  ${s.version}`
  ].join('\n'))
}

/** The HTTP view's URL and token, which its host keeps in a file beside its socket (src/http/token.rs). */
async function url (ctx, name) {
  let view
  try {
    view = JSON.parse(fs.readFileSync(native.viewPath(ctx.dir, name), 'utf8'))
  } catch (error) {
    if (error.code !== 'ENOENT') throw new CliError(`cannot read the HTTP view of '${name}': ${error.message}`)
    throw new CliError(`no host of '${name}' serves an HTTP view in ${ctx.dir} (options.server)`)
  }
  const withToken = `${view.url}?token=${encodeURIComponent(view.token)}`
  print(ctx, { name, url: withToken, token: view.token }, () => withToken)
}

async function watch (ctx, name, dotted) {
  const { mem, leave } = await join(ctx, name)
  const time = () => new Date().toTimeString().slice(0, 8)
  let shown // the JSON of the value last printed, with a path
  const showSnapshot = async () => {
    const version = await settledVersion(mem)
    if (dotted === undefined) {
      print(ctx, { version, data: mem.data }, ({ data }) => `${time()} v${version} ${JSON.stringify(data)}`)
    } else {
      const value = readPath(mem, dotted)
      shown = JSON.stringify(value)
      print(ctx, { version, value }, () => `${time()} v${version} ${dotted} = ${shown}`)
    }
  }
  // With a path: one line per batch of changes that moved the value, printed outside memsync's
  // event handling (settledVersion patches) and one at a time.
  let printing = Promise.resolve()
  let queued = false
  const showValue = () => {
    if (queued) return
    queued = true
    printing = printing.then(async () => {
      queued = false
      const version = await settledVersion(mem)
      const value = readPath(mem, dotted)
      const text = JSON.stringify(value)
      if (text === shown) return
      shown = text
      print(ctx, { version, value }, () => `${time()} v${version} ${dotted} = ${text}`)
    })
  }
  if (dotted === undefined) {
    mem.on('change', (record) => {
      print(ctx, record, ({ version, patch }) => `${time()} v${version} ${JSON.stringify(patch)}`)
    })
  } else {
    mem.observe(dotted, showValue)
  }
  let stopping = false
  mem.on('disconnected', () => {
    if (!stopping) process.stderr.write(`memsync watch: lost the host of '${name}'; waiting for the next one\n`)
  })
  mem.on('connected', () => {
    // After a change of host: the object as the new host has it (with a path: if the value moved).
    if (dotted !== undefined) return showValue()
    setImmediate(() => {
      printing = printing.then(showSnapshot)
    })
  })
  await showSnapshot()
  await new Promise((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
    // The reader went away (`memsync watch x | head -1`).
    process.stdout.on('error', resolve)
  })
  stopping = true
  await printing
  await leave()
}

module.exports = { main }
