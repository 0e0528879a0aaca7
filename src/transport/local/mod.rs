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
//! - `role`: the election and failover decisions, a pure state machine (inputs in, actions out;
//!   time is an input), tested on a simulated machine.
//! - `peer`: the driver of an instance's network life: performs the role machine's actions and
//!   feeds back what it observed. `host`: a host's term, its listener and one handler per client.
//!   `client`: a client's connection to its host. `burst`: a connection's halves and the bursts
//!   of frames handled as one batch. `shutdown`: the stop signal its tasks share.
//! - `probe`: asks a name's host for its status without joining (`memsync status`, `ls`).

pub mod burst;
pub mod client;
pub mod codec;
pub mod connection;
pub mod host;
pub mod inbox;
pub mod lease;
pub mod peer;
pub mod probe;
pub mod rendezvous;
pub mod role;
pub mod shutdown;
pub mod socket;
