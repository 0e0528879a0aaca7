//! memsync: one JSON object kept in sync between the Node.js processes of a machine.
//!
//! # Layout
//! - [`patch`]: the pure MongoDB update engine over `serde_json::Value`: parse, plan, apply
//!   all-or-nothing, undo, and the change list another replica applies. No I/O.
//! - `diagnostics`: `report!`, the crate's one way to write a line to stderr.
//! - `error`: the crate's `Error` with a stable `ERR_*` code per variant (`Code` lists them all).
//! - `events`: the events for the JS side (one enum, serialized once where it is queued) and
//!   their queue, bounded for a JS thread that does not drain.
//! - `protocol`: the wire format: length-prefixed JSON frames of `Message`, and the hybrid clock.
//! - `connection`: `FrameReader` decodes bursts of frames; an `Outbox` queues frames and writes
//!   them straight from the sending thread, or through the connection's writer task.
//! - `socket` (Unix): a connection's socket split for tokio, so that a thread is woken only for
//!   what it waits for: the reader for incoming data, the writer only while the socket is full.
//! - `inbox` (Unix): a client's incoming frames, read by its JS thread's event loop while that
//!   thread is responsive (one wake-up per message instead of two), else by the tokio task.
//! - `name`: object names and the safe, collision-free file names they become.
//! - `rendezvous`: the private directory, the host election by file lock and epoch, the socket
//!   path.
//! - `lease`: replacing a stopped host: the host's lease, the clients' silence timeout, and why
//!   an old epoch's host never orders once a new one may.
//! - `state`: an instance's replica: ordering (host), pending patches and rebases (client),
//!   failover hand-over, and the events for the JS side. Its only I/O is through `Outbox`es.
//! - `exchange`: RPC routing, the event bus, writer limits and locks beside the document: what a
//!   client sends, how the host routes calls and replies, forwards events, admits writers.
//! - `locks`: the host's lock table, a pure state machine (holders, waiters in request order, the
//!   grace period after a failover).
//! - `peer`: the tokio tasks of an instance: election, host listener and handlers, client
//!   connection, failover.
//! - `services`: what a host runs besides ordering, following the role: `persist` (the file of
//!   `options.file`: load, atomic saves, the debounced saver) and `http` (the HTTP view of
//!   `options.server`, with its event stream).
//! - `probe`: asks a name's host for its status without joining (`memsync status`, `ls`).
//! - `binding` (feature `napi`): functions over an `External` instance; converts, calls, converts
//!   back. The JS facade (`lib/memsync.js`) builds the drop-in `MemSync` class on top of it.
//! - `js_poll` (feature `napi`, Unix): the libuv poll handle through which the JS thread's event
//!   loop reads an inbox.
#![deny(clippy::all)]

/// Writes one diagnostic line to stderr, like `eprintln!`, but never panics (see
/// [`diagnostics::report_line`]).
macro_rules! report {
  ($($arg:tt)*) => {
    $crate::diagnostics::report_line(format_args!($($arg)*))
  };
}

#[cfg(feature = "napi")]
mod binding;
pub mod connection;
pub mod diagnostics;
pub mod error;
pub mod events;
pub mod exchange;
pub mod http;
#[cfg(unix)]
pub mod inbox;
#[cfg(all(feature = "napi", unix))]
mod js_poll;
pub mod lease;
pub mod locks;
pub mod name;
pub mod patch;
pub mod peer;
pub mod persist;
pub mod probe;
pub mod protocol;
pub mod rendezvous;
pub mod services;
#[cfg(unix)]
pub mod socket;
pub mod state;

pub use error::{Error, Result};
pub use state::Replica;
