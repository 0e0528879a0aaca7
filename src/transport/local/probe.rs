//! `memsync status` and `memsync ls`: asks the host of a name who it is over a one-off
//! connection (`Message::Query`), without joining as a client.

use std::io;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::transport::local::codec::{self, Message};
use crate::transport::local::connection::FrameReader;
use crate::transport::local::rendezvous::Rendezvous;

/// How long the host has to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the host of a name says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
  /// The host's process id.
  pub host_pid: u32,
  /// The version of the document.
  pub version: u64,
  /// How many clients are connected to the host.
  pub clients: u64,
}

/// Asks the host of `rendezvous` for its status. `NotFound` or `ConnectionRefused`: no host.
pub async fn query(rendezvous: &Rendezvous) -> io::Result<HostStatus> {
  let stream = rendezvous.connect().await?;
  let (read_half, mut write_half) = tokio::io::split(stream);
  let mut frame = Vec::new();
  codec::encode(&Message::Query, &mut frame).map_err(io::Error::other)?;
  write_half.write_all(&frame).await?;
  let mut reader = FrameReader::new(read_half);
  let answer = tokio::time::timeout(ANSWER_TIMEOUT, reader.read_message())
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the host did not answer"))?;
  match answer.map_err(io::Error::other)? {
    Some(Message::Status {
      host_pid,
      version,
      clients,
    }) => Ok(HostStatus {
      host_pid,
      version,
      clients,
    }),
    Some(other) => Err(io::Error::other(format!(
      "the host answered {other:?} instead of its status"
    ))),
    None => Err(io::Error::new(
      io::ErrorKind::UnexpectedEof,
      "the host closed the connection without answering (an older memsync, or one that is stopping)",
    )),
  }
}
