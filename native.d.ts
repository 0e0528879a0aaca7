/** The native state of one MemSync instance: opaque to JS, freed when garbage-collected. */
export type Instance = { readonly __memsyncInstance: unique symbol }

export declare class ExternalObject<T> {
  readonly '': {
    readonly '': unique symbol
    [K: symbol]: T
  }
}

/**
 * Which binding artifact the generated loader actually loaded: `'native'` for
 * a native addon, otherwise the `platformArchABI` of the WASI flavor. Every
 * flavor napi-rs can build is listed, because `NAPI_RS_NATIVE_LIBRARY_PATH`
 * can point the loader at a WASI artifact this package does not build itself.
 */
export declare const __napiBindingTarget: 'native' | 'wasm32-wasi' | 'wasm32-wasip1'

/** Creates the replica of `name`, seeded with the JSON text `dataJson` (an object). */
export declare function createInstance(name: string, dataJson: string): ExternalObject<Instance>

/**
 * Applies the update given as JSON text. Returns `[version, changes]` as JSON text, or null when
 * nothing changed. Throws with the engine's `code` and leaves the document untouched on error.
 */
export declare function patch(instance: ExternalObject<Instance>, updateJson: string): string | null

/** Like `ref()`/`unref()` on `net.Server`: whether a started instance keeps the process alive. */
export declare function setRef(instance: ExternalObject<Instance>, referenced: boolean): void

/** The document and its version as JSON text `[version, data]`. */
export declare function snapshot(instance: ExternalObject<Instance>): string

/**
 * Joins the network of the instance's name and returns the role, `'host'` or `'client'`.
 * `onEvents` receives batches of events (JSON text) that arrive from the Rust side.
 */
export declare function start(instance: ExternalObject<Instance>, onEvents: (batch: string) => void): string

/**
 * Leaves the network. Dropping the event sink releases the threadsafe function, so a stopped
 * instance never keeps the process alive.
 */
export declare function stop(instance: ExternalObject<Instance>): void

/** The number of patches applied so far. */
export declare function version(instance: ExternalObject<Instance>): number
