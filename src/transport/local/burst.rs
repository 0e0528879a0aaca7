//! Reading a connection, on the host and on a client alike: its halves, and the bursts of frames
//! that arrive together and are handled as one batch.

use std::io;

use interprocess::local_socket::tokio::Stream;

use crate::core::exchange::Exchange;
use crate::core::message::Message;
use crate::transport::local::connection::{ConnectionError, DirectWrite, FrameReader};
use crate::transport::local::socket::{SocketReader, SocketWriter};

/// A connection's reading half.
pub type Reader = SocketReader;

/// Hands a burst over in order: each run of document messages (patches and what orders them) to
/// `documents` as one batch, every other message to `exchange`.
pub fn split_burst<E>(
  batch: Vec<Message>,
  mut documents: impl FnMut(Vec<Message>) -> Result<(), E>,
  mut exchange: impl FnMut(Message),
) -> Result<(), E> {
  // The usual burst is patches alone: handed over whole, not copied into a run.
  if !batch.iter().any(Exchange::handles) {
    return documents(batch);
  }
  let mut run = Vec::new();
  for message in batch {
    if !Exchange::handles(&message) {
      run.push(message);
      continue;
    }
    if !run.is_empty() {
      documents(std::mem::take(&mut run))?;
    }
    exchange(message);
  }
  if run.is_empty() {
    return Ok(());
  }
  documents(run)
}

/// `first` and every message that already arrived behind it, handled as one batch; and the
/// error that ended the burst, if one did.
pub fn burst<R>(
  reader: &mut FrameReader<R>,
  first: Message,
) -> (Vec<Message>, Option<ConnectionError>)
where
  R: tokio::io::AsyncRead + Unpin,
{
  let mut batch = Vec::with_capacity(1 + reader.complete_frames());
  batch.push(first);
  loop {
    match reader.buffered_message() {
      Ok(Some(message)) => batch.push(message),
      Ok(None) => return (batch, None),
      Err(err) => return (batch, Some(err)),
    }
  }
}

/// A connection's reading half, writing half (for the writer task) and the writes from the
/// sending thread: see `socket` (Unix domain sockets).
pub fn split(stream: Stream) -> io::Result<(SocketReader, SocketWriter, Option<DirectWrite>)> {
  let Stream::UdSocket(socket) = stream;
  let (reader, writer, direct) = crate::transport::local::socket::split(socket.try_into()?)?;
  Ok((reader, writer, Some(direct)))
}
