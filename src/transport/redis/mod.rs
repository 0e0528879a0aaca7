//! The Redis transport (issue 17, in progress): one object shared by processes on many machines,
//! with Redis as the log. Processes of a machine keep the local transport; only the local host
//! changes: it forwards patches to Redis and feeds its clients from the log.
//!
//! - `address`: the `transport` URL (single server, Sentinel, Cluster), shown without password.
//! - `log`: an object's keys and the script that orders batches of patches into its stream.
//!
//! To do: the bridge (forward, read back, resubmit after a failover), replicas deciding each log
//! entry with `core::order` (whose versions must then follow the log's positions, a refused or
//! stale entry included), snapshots and trimming, presence, RPC, events and locks.

pub mod address;
pub mod log;
