//! The Redis transport: one object shared by processes on many machines,
//! with Redis as the log. Processes of a machine keep the local transport; only the local host
//! changes: it forwards patches to Redis and feeds its clients from the log.
//!
//! - `address`: the `transport` URL (single server, Sentinel, Cluster), shown without password.
//! - `log`: an object's keys and the script that orders batches of patches into its stream.
//! - `entry`: the payload of a log entry (timestamp and update text).
//! - `outgoing`: a bridge's proposals from queued to confirmed, and what it proposes again after
//!   Redis lost entries (pure).
//! - `bridge`: the loops that propose this machine's patches and read the log back.
//! - `connect`: a connection to the primary (one server, over TLS or not; found through the
//!   sentinels; or the primary of the object's slot in a Cluster).
//! - `snapshot`: snapshots of the log in chunks, and the trimming of what they make redundant.
//! - `machines`: presence, RPC and events between machines, beside the log.
//!
//! Replicas decide each log entry with `core::order::Order::decide_logged`: an entry's version is
//! its position in the log, a refused or stale one included, so every replica counts alike.
//!
//! To do: locks across machines.

pub mod address;
pub mod bridge;
pub mod connect;
pub mod entry;
pub mod log;
pub mod machines;
pub mod outgoing;
pub mod snapshot;
