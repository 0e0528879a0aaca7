//! `memsync status` and `memsync ls`: finds the live names of a rendezvous directory, and asks
//! the host of a name who it is over a one-off connection (`Message::Query`), without joining as
//! a client. The CLI goes through here rather than the directory's layout.

use std::io;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::core::message::Message;
use crate::transport::local::codec;
use crate::transport::local::connection::FrameReader;
use crate::transport::local::rendezvous::{self, Rendezvous};

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

/// A name whose host accepts connections, as `memsync ls` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Live {
  /// The name, or `None` when its file name cannot be read back (a long name is hashed).
  pub name: Option<String>,
  /// The file the host listens on, which names it when `name` cannot.
  pub file: String,
}

/// The names of `dir` whose host accepts connections (none when `dir` does not exist).
pub async fn live(dir: &Path) -> io::Result<Vec<Live>> {
  let mut found = Vec::new();
  for stem in rendezvous::socket_stems(dir)? {
    if rendezvous::accepts(dir, &stem).await {
      found.push(Live {
        name: crate::name::name_of_stem(&stem),
        file: rendezvous::socket_file(&stem),
      });
    }
  }
  Ok(found)
}

/// Whether a host of `name` (a valid name) accepts connections in `dir`.
pub async fn is_live(dir: &Path, name: &str) -> bool {
  rendezvous::accepts(dir, &crate::name::file_stem(name)).await
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
