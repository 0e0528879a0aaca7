//! The local transport: the processes of one machine meet in a private directory. The first to
//! take a name's `flock` hosts it and listens on a Unix socket; the others connect as clients.
//!
//! - `rendezvous`: the private directory, the host election by file lock and epoch, the socket
//!   path.
//! - `lease`: replacing a stopped host: the host's lease, the clients' silence timeout, and why
//!   an old epoch's host never orders once a new one may.
//! - `codec`: the wire format: length-prefixed frames of `Message`, binary for patches.
//! - `connection`: `FrameReader` decodes bursts of frames; an `Outbox` (a `Link`) queues frames
//!   and writes them straight from the sending thread, or through the connection's writer task.
//! - `socket`: a connection's socket split for tokio, so that a thread is woken only for what it
//!   waits for.
//! - `inbox`: a client's incoming frames, read by its JS thread's event loop while that thread is
//!   responsive (one wake-up per message instead of two), else by the tokio task.
//! - `peer`: the tokio tasks of an instance: election, host listener and handlers, client
//!   connection, failover.
//! - `probe`: asks a name's host for its status without joining (`memsync status`, `ls`).

pub mod codec;
pub mod connection;
pub mod inbox;
pub mod lease;
pub mod peer;
pub mod probe;
pub mod rendezvous;
pub mod socket;
