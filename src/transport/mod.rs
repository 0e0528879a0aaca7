//! Transports: how the processes sharing an object meet and talk. A transport plugs into the
//! core through one seam:
//!
//! - it gives the core its connections as [`Link`]s (the core queues [`Message`]s on them, under
//!   its lock, and flushes outside it), and a host's right to order as a [`Fence`];
//! - it feeds the core what arrives: a host's transport calls [`Replica::host_receive`] with
//!   each client's messages and [`Replica::attach_client`] / [`Replica::detach_client`] as
//!   clients come and go; a client's calls [`Replica::client_welcome`] and
//!   [`Replica::client_receive`];
//! - it decides roles: [`Replica::become_host`] / [`Replica::go_offline`], and starts the
//!   host's services (`crate::services`) while this process leads.
//!
//! Everything the replica decides (order, verdicts, rebases, events for JS) is the same whatever
//! the transport. [`local`] is the one transport today: Unix sockets and file locks between the
//! processes of one machine.
//!
//! [`Link`]: crate::core::link::Link
//! [`Fence`]: crate::core::link::Fence
//! [`Message`]: crate::core::message::Message
//! [`Replica::host_receive`]: crate::core::replica::Replica::host_receive
//! [`Replica::attach_client`]: crate::core::replica::Replica::attach_client
//! [`Replica::detach_client`]: crate::core::replica::Replica::detach_client
//! [`Replica::client_welcome`]: crate::core::replica::Replica::client_welcome
//! [`Replica::client_receive`]: crate::core::replica::Replica::client_receive
//! [`Replica::become_host`]: crate::core::replica::Replica::become_host
//! [`Replica::go_offline`]: crate::core::replica::Replica::go_offline

pub mod local;
pub mod redis;
