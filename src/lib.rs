//! memsync: one JSON object kept in sync between the Node.js processes of a machine.
//!
//! # Layout
//! Each folder imports only from those below it:
//! - `node` (feature `napi`): the binding the JS facade (`lib/memsync.js`) builds on.
//! - [`transport`]: how processes meet and talk, behind one seam; [`transport::local`] is Unix
//!   sockets and file locks.
//! - [`services`]: what a host runs besides ordering, while it leads: `persist` (the file of
//!   `options.file`) and `http` (the HTTP view of `options.server`).
//! - [`core`]: the replica, the ordering rules, the exchange (RPC, events, locks, writers), the
//!   messages, the events for JS; no tokio, sockets or napi.
//! - [`patch`]: the pure MongoDB update engine over [`doc::Value`].
//! - [`doc`]: the document's JSON value (32-byte values, short strings inline, ordered maps
//!   indexed when large), which the replica, the engine, the file and the HTTP view hold; pure.
//! - [`clock`] (the hybrid clock; time injected), [`error`] (the crate's `Error`, one `ERR_*` code
//!   per variant; `Code` lists them all), [`name`] (object names and their file names), [`user`]
//!   (this process's uid).
//!
//! The addon writes nothing to stderr itself: what an instance notices goes to JS as an `error`
//! event or a diagnostic line (`Replica::debug`, shown with `NODE_DEBUG=memsync`).
//!
//! `docs/architecture.md` follows one patch through these parts.
#![deny(clippy::all)]

// Unix sockets, `flock` and per-user isolation by file mode are the local transport.
#[cfg(not(unix))]
compile_error!("memsync runs on Linux and macOS only");

// jemalloc for the Rust side of the addon (why: Cargo.toml); Node and V8 keep glibc's malloc.
// Builds without the binding keep the system's: the raw relay bench, and examples/doc_memory.rs,
// which counts allocations through its own.
#[cfg(feature = "napi")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// Freed pages go back to the system within about a second, purged by one jemalloc background
// thread (`jemalloc_bg_thd`), instead of after jemalloc's default 10 s decay, which runs only when
// something allocates: with that, a host that had queued a flood for a stopped client kept 80 to
// 100 MB of RSS instead of about 35 (__test__/slow-consumer). Purging on the freeing thread
// instead (a decay of 0) put an madvise and the page faults of taking the pages back on the
// per-patch path: 2 writers ran 7-19% slower (docs/benchmarks.md).
#[cfg(all(feature = "napi", target_os = "linux", target_env = "gnu"))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] =
  b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

// jemalloc has no background threads on macOS (asked for one, it fails to start, and every
// allocation with it), and the musl builds cannot be run here to check theirs: these purge on the
// freeing thread.
#[cfg(all(feature = "napi", not(all(target_os = "linux", target_env = "gnu"))))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"dirty_decay_ms:0,muzzy_decay_ms:0\0";

pub mod clock;
pub mod core;
pub mod doc;
pub mod error;
pub mod name;
// Not in test builds: `#[napi]` exports nothing there, and a test binary cannot link against
// Node (napi-rs#1099).
#[cfg(all(feature = "napi", not(test)))]
mod node;
pub mod patch;
pub mod services;
pub mod transport;
pub mod user;

pub use core::replica::Replica;
pub use error::{Error, Result};
