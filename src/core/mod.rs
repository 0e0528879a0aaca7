//! The core: what every replica agrees on, with no tokio, sockets or napi. A transport feeds it
//! messages and gives it [`link::Link`]s to send on; time comes from a [`crate::clock::Time`].
//!
//! - [`message`]: what replicas say to each other.
//! - [`order`]: the ordering rules (dedupe, stale writes, the engine's verdict), for any
//!   sequencer.
//! - `pending`: a replica's pending patches, and when a patch ordered elsewhere goes under them
//!   without a full rebase.
//! - `recent`: the last ordered entries a replica keeps for a host that may replace its own.
//! - [`replica`]: one instance's copy of the document: pending patches and rebases, ordering on a
//!   host, the events for JS.
//! - [`exchange`]: RPC routing, the event bus, writer limits and locks beside the document.
//! - [`locks`]: the lock table, a pure state machine.
//! - [`link`]: the connections the core sends on, a host's followers, and its right to order.
//! - [`digest`]: the digest of a document that JS computes alike, to find direct writes.

pub mod digest;
pub mod events;
pub mod exchange;
pub mod link;
pub mod locks;
pub mod message;
pub mod order;
mod pending;
mod recent;
pub mod replica;
