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
