//! The core: everything replicas agree on, with no tokio, sockets or napi. A transport feeds it
//! messages and gives it [`link::Link`]s to send on; time is injected.
//!
//! - [`message`]: what replicas say to each other.
//! - [`order`]: the ordering rules (dedupe, stale writes, the engine's verdict).
//! - [`link`]: the connections the core sends on, and a host's followers.

pub mod link;
pub mod message;
pub mod order;
