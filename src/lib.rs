//! memsync: one JSON object kept in sync between the Node.js processes of a machine.
//!
//! # Layout
//! - [`patch`]: the pure MongoDB update engine over `serde_json::Value`: parse, plan, apply
//!   all-or-nothing, and the change list another replica applies. No I/O.
//! - `error`: the crate's `Error` with a stable `ERR_*` code per variant.
//! - `state`: a process's replica of one named document (data + version) behind a lock.
//! - `protocol`: the wire format: length-prefixed JSON frames of `Message`, and the hybrid clock.
//! - `connection`: `Connection` reads and writes `Message`s over a stream, coalescing writes.
//! - `rendezvous`: the private directory, the host election by file lock, the socket path.
//! - `binding` (feature `napi`): the `NativeReplica` napi class; converts, calls, converts back.
//!   The JS facade (`lib/memsync.js`) builds the drop-in `MemSync` class on top of it.
#![deny(clippy::all)]

#[cfg(feature = "napi")]
mod binding;
pub mod connection;
pub mod error;
pub mod patch;
pub mod peer;
pub mod protocol;
pub mod rendezvous;
pub mod state;

pub use error::{Error, Result};
pub use state::Replica;
