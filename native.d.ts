/** The native state of one MemSync instance: opaque to JS, freed when garbage-collected. */
export type Instance = { readonly __memsyncInstance: unique symbol }

// patch, flush and drain are plain Node-API callbacks (src/node/direct.rs): napi build does not
// see them, so they are typed here, ahead of what it generates.

/**
 * Applies the update given as JSON text. Returns the events queued for JS as a JSON array, the
 * last one for this patch. Throws with the engine's `code` and leaves the document untouched on
 * error.
 */
export declare function patch(instance: ExternalObject<Instance>, updateJson: string): string

/**
 * Sends what `patch()` queued for other processes; JS calls it once per turn of its event loop,
 * so a loop of patches costs one write. `false` when a host's patches among them do not yet
 * survive it (`replicated`).
 */
export declare function flush(instance: ExternalObject<Instance>): boolean

/**
 * The events that arrived from the network, as a JSON array. Also where the JS thread takes
 * up polling a new client socket, lets go of one that ended, and claims back one that the tokio
 * task read while this thread was busy.
 */
export declare function drain(instance: ExternalObject<Instance>): string

export declare class ExternalObject<T> {
  readonly '': {
    readonly '': unique symbol
    [K: symbol]: T
  }
}

/**
 * Calls RPC `method` in another process under JS's id `id`, with `argsJson` (a JSON array). The
 * outcome arrives as a `["reply", id, error, result?]` event.
 */
export declare function call(instance: ExternalObject<Instance>, id: number, method: string, argsJson: string): void

/**
 * Creates the replica of `name`, seeded with the JSON text `dataJson` (an object). `dir` is the
 * rendezvous directory (default: per-user runtime directory).
 */
export declare function createInstance(name: string, dataJson: string, dir?: string | undefined | null, services?: HostServices | undefined | null): ExternalObject<Instance>

/** The rendezvous directory used when none is given. */
export declare function defaultDir(): string

/**
 * The queued events and, last, the digest of the document they lead to, or with `whole` the
 * document: what the check of `data` against direct writes compares it with.
 */
export declare function drainForCheck(instance: ExternalObject<Instance>, whole: boolean): string

/**
 * Sends `event` with `argsJson` (a JSON array) to every other process. Queued like a patch:
 * JS flushes at the end of its event loop's turn, so a loop of emits is one write.
 */
export declare function emit(instance: ExternalObject<Instance>, event: string, argsJson: string): void

/** Every `error.code` the native side produces; `MemErrors` lists these and those of JS. */
export declare function errorCodes(): Array<string>

/**
 * The tag of each event kind, by name (`{ own: "o", ... }`): how `lib/memsync.js` decodes the
 * events without a copy of the table (`src/events.rs`).
 */
export declare function eventTags(): Record<string, string>

/** What an instance does while it is host, besides ordering patches. */
export interface HostServices {
  /** Saves the object to this file (`options.file.path`, absolute). */
  file?: string
  /**
   * Whether a symbolic link at `file` leads to the file (`options.file.followSymlinks`); else
   * it is refused.
   */
  followSymlinks?: boolean
  /** Serves the HTTP view on this address (`options.server.host`, default 127.0.0.1)... */
  host?: string
  /** ...and port (`options.server.port`). */
  port?: number
  /**
   * Whether every request needs the view's token (`options.server.token` true or a string);
   * else only requests whose user cannot be told need it.
   */
  tokenAlways?: boolean
  /** The token itself, when `options.server.token` is a string; else one is generated. */
  token?: string
}

/**
 * Whether a host of `name` accepts connections in `dir` (the CLI's check that a name is live).
 * Throws `ERR_INVALID_NAME` for a name `MemSync` refuses.
 */
export declare function isLive(dir: string, name: string): Promise<boolean>

/** The limits JS checks (see `Limits`). */
export declare function limits(): Limits

/** What values and updates may be: JS checks them before they cross, with the engine's numbers. */
export interface Limits {
  /** How many levels a document may nest (MongoDB's 100). */
  maxDepth: number
  /** How many levels an update may nest: a value at `maxDepth` under its operator and field. */
  maxUpdateDepth: number
  /** The most UTF-8 bytes of JSON an update may take. */
  maxUpdateBytes: number
  /**
   * Bytes of `mem.events` events from other processes queued for a JS thread that does not
   * take them, past which further ones are dropped (`ERR_EVENTS_DROPPED`).
   */
  maxBusBacklog: number
  /**
   * Bytes of changes from other processes queued for a JS thread that does not take them, past
   * which they give way to one snapshot and their records are lost (`ERR_CHANGES_DROPPED`).
   */
  maxEventBacklog: number
}

/**
 * The names in `dir` whose host accepts connections, `[{ name, file }]` (`name` null when the
 * file name cannot be read back); resolves with an outcome (see `outcome`).
 */
export declare function liveNames(dir: string): Promise<string>

/**
 * Asks for the cross-process lock `key` under JS's id `id`; a `["g", id]` event says it is held.
 * Offline, the request waits and is sent to the next host.
 */
export declare function lock(instance: ExternalObject<Instance>, id: number, key: string): void

/**
 * Pings the host (client) or every client (host) under `id`; returns the pids pinged as a JSON
 * array. Each answer arrives as a `["pong", id, pid]` event.
 */
export declare function ping(instance: ExternalObject<Instance>, id: number): string

/**
 * Whether a host of this instance's name accepts connections (memsync 0.5's `hasPeers()` for an
 * instance that is not connected).
 */
export declare function probe(instance: ExternalObject<Instance>): Promise<boolean>

/**
 * Asks the host of `name` for `{ hostPid, version, clients }` without joining; resolves with an
 * outcome (see `outcome`).
 */
export declare function queryHost(dir: string | undefined | null, name: string): Promise<string>

/**
 * The value at the dotted `path` of the instance's object (`""`: all of it) as JSON text, or
 * nothing: read by the engine's rules, the one reader of dotted paths for the CLI.
 */
export declare function read(instance: ExternalObject<Instance>, path: string): string | null

/** Releases the waker of a stopped instance (the JS side calls it once `stop()` resolved). */
export declare function release(instance: ExternalObject<Instance>): void

/**
 * Resolves with `true` once one of this host's clients has every frame queued to it so far, or
 * none can; with `false` after `hostTimeout` (null: the default) if every client stopped
 * reading: a stopped peer is tolerated that long elsewhere too.
 */
export declare function replicated(instance: ExternalObject<Instance>, hostTimeoutMs?: number | undefined | null): Promise<boolean>

/**
 * Answers the call handed to JS as `["call", id, ...]`: `resultJson` (absent for `undefined`),
 * or `errorJson`, the JSON of `{ code?, message }`.
 */
export declare function reply(instance: ExternalObject<Instance>, id: number, resultJson?: string | undefined | null, errorJson?: string | undefined | null): void

/**
 * The message of `ERR_RPC_NOT_FOUND` for `method`, which JS throws too when a call routed to it
 * finds no function.
 */
export declare function rpcNotFoundMessage(method: string): string

/**
 * Saves the object to its file now if this instance is host, and resolves once it is written
 * (elsewhere the host saves): `flush()` in JS. Resolves with an outcome (see `outcome`).
 */
export declare function save(instance: ExternalObject<Instance>): Promise<string>

/**
 * How many of this process's patches may wait to be ordered (`network.maxPending`; none: the
 * default, 100,000); past it `patch` throws `ERR_PENDING_LIMIT` and applies nothing.
 */
export declare function setMaxPending(instance: ExternalObject<Instance>, limit?: number | undefined | null): void

/**
 * Sets what the instance offers and is, as the JSON of `{ methods, roles, maxWriters }` (the
 * dotted paths of its RPC functions, `peer.roles`, `network.maxWriters`); announced when it
 * connects.
 */
export declare function setPeer(instance: ExternalObject<Instance>, peerJson: string): void

/** Like `ref()`/`unref()` on `net.Server`: whether a started instance keeps the process alive. */
export declare function setRef(instance: ExternalObject<Instance>, referenced: boolean): void

/** Whether JS listens to `receivedPatches` or `change`, which need every received patch's update. */
export declare function setWantsReceived(instance: ExternalObject<Instance>, wanted: boolean): void

/**
 * Joins the network of the instance's name in the background; the outcome arrives as an event.
 * `onWake` is called (without arguments) when events are waiting to be drained.
 */
export declare function start(instance: ExternalObject<Instance>, onWake: () => void, options: StartOptions): void

/** How an instance takes part in its network (memsync 0.5's options, checked by JS). */
export interface StartOptions {
  /** Never become host (`clientOnly`). */
  clientOnly: boolean
  /** Never join as a client (`serverOnly`). */
  serverOnly: boolean
  /** What a host's connections may buffer together, in bytes (`network.maxBuffer`). */
  maxBuffer?: number
  /**
   * How long a silent host is waited for before it is replaced, in ms (`hostTimeout`; default
   * 5000).
   */
  hostTimeout?: number
  /**
   * Whether JS shows diagnostic lines (`NODE_DEBUG=memsync`); while it does not, the instance
   * does not even format them.
   */
  debug: boolean
  /**
   * The shared log across machines (`options.transport`, a Redis URL checked by
   * `transportTarget`); none: this machine's processes only.
   */
  transport?: string
  /** When a patch through `transport` resolves: `'primary'` (default) or `'replicated'`. */
  durability?: string
}

/**
 * The instance's status: role, version, connected clients (a host's own, a client's host's),
 * its roles and the peers it knows (`{ pid, host, roles, methods }`), as JSON text.
 */
export declare function status(instance: ExternalObject<Instance>): string

/**
 * Leaves the network and resolves once every task of the instance has ended. A host hands its
 * role over first. Releasing the waker afterwards means a stopped instance never keeps the
 * process alive.
 */
export declare function stop(instance: ExternalObject<Instance>): Promise<void>

/**
 * The document of the snapshot event with null `data` in the last drain, as a string, once (a
 * joined host's, handed on as it arrived instead of inside the drain's text).
 */
export declare function takeSnapshot(instance: ExternalObject<Instance>): string | null

/**
 * What the Redis of `url` holds of the object `name` (`memsync status --transport`), without
 * joining it; resolves with an outcome (see `outcome`).
 */
export declare function transportStatus(url: string, name: string): Promise<string>

/**
 * `options.transport` as it may be shown (its password replaced by `***`); throws
 * `ERR_INVALID_ARG` saying what is wrong with it.
 */
export declare function transportTarget(url: string): string

/** Releases the lock of request `id`, or cancels the request. */
export declare function unlock(instance: ExternalObject<Instance>, id: number): void

/**
 * Where the host of `name` in `dir` keeps its HTTP view's URL and token (`memsync url`).
 * Throws `ERR_INVALID_NAME` for a name `MemSync` refuses.
 */
export declare function viewPath(dir: string, name: string): string
