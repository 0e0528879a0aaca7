//! Sending and receiving [`Message`]s over a byte stream (a local socket, or `tokio::io::duplex`
//! in tests).
//!
//! [`Connection`] owns the stream, a read buffer and a write buffer, and exposes only messages
//! (mini-redis `src/connection.rs`). [`Connection::into_split`] gives a [`FrameReader`] and a
//! [`FrameWriter`] so that one task can read while another writes. Writes are queued and then
//! flushed together: a writer that queues every message it has before flushing makes one write
//! per batch instead of one per message.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::protocol::{self, Message, ProtocolError};

/// The least free space offered to each read, so small frames arrive many at a time.
const READ_CHUNK: usize = 8 * 1024;

/// A buffer whose capacity grew beyond this (a large snapshot went through) is freed once empty,
/// so one big frame does not pin its memory for the life of the connection.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// Why a connection can no longer be used.
#[derive(Debug)]
pub enum ConnectionError {
  /// The stream failed.
  Io(io::Error),
  /// The peer sent bytes that are not a valid frame.
  Protocol(ProtocolError),
  /// The peer closed the stream in the middle of a frame.
  TruncatedFrame {
    /// How many bytes of the unfinished frame had arrived.
    buffered: usize,
  },
}

impl fmt::Display for ConnectionError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      ConnectionError::Io(err) => write!(f, "connection failed: {err}"),
      ConnectionError::Protocol(err) => write!(f, "protocol error: {err}"),
      ConnectionError::TruncatedFrame { buffered } => write!(
        f,
        "connection closed in the middle of a frame ({buffered} bytes received)"
      ),
    }
  }
}

impl std::error::Error for ConnectionError {
  fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
    match self {
      ConnectionError::Io(err) => Some(err),
      ConnectionError::Protocol(err) => Some(err),
      ConnectionError::TruncatedFrame { .. } => None,
    }
  }
}

impl From<io::Error> for ConnectionError {
  fn from(err: io::Error) -> Self {
    ConnectionError::Io(err)
  }
}

impl From<ProtocolError> for ConnectionError {
  fn from(err: ProtocolError) -> Self {
    ConnectionError::Protocol(err)
  }
}

/// Received bytes not yet decoded: `bytes[start..]`. Consuming a frame only advances `start`;
/// the unread tail moves to the front only when more bytes are needed, so a burst of frames is
/// decoded without copying.
#[derive(Debug, Default)]
struct ReadBuffer {
  bytes: Vec<u8>,
  start: usize,
}

impl ReadBuffer {
  async fn read_message<R>(&mut self, stream: &mut R) -> Result<Option<Message>, ConnectionError>
  where
    R: AsyncRead + Unpin,
  {
    loop {
      if let Some(message) = self.buffered_message()? {
        return Ok(Some(message));
      }
      if self.start > 0 {
        self.bytes.drain(..self.start);
        self.start = 0;
      }
      if self.bytes.capacity() - self.bytes.len() < READ_CHUNK {
        self.bytes.reserve(READ_CHUNK);
      }
      // `read_buf` is cancel-safe: bytes it returns are already in `self.bytes`, so a caller may
      // drop this future in a `select!` without losing data.
      if stream.read_buf(&mut self.bytes).await? == 0 {
        return if self.bytes.is_empty() {
          Ok(None)
        } else {
          Err(ConnectionError::TruncatedFrame {
            buffered: self.bytes.len(),
          })
        };
      }
    }
  }

  /// The next message if it is already received in full; never reads.
  fn buffered_message(&mut self) -> Result<Option<Message>, ConnectionError> {
    let Some((message, consumed)) = protocol::decode(&self.bytes[self.start..])? else {
      return Ok(None);
    };
    self.start += consumed;
    if self.start == self.bytes.len() {
      self.clear();
    }
    Ok(Some(message))
  }

  fn clear(&mut self) {
    if self.bytes.capacity() > KEEP_CAPACITY {
      self.bytes = Vec::new();
    } else {
      self.bytes.clear();
    }
    self.start = 0;
  }
}

/// Encoded frames not yet written: `bytes[written..]`.
#[derive(Debug, Default)]
struct WriteBuffer {
  bytes: Vec<u8>,
  written: usize,
}

impl WriteBuffer {
  fn queue(&mut self, message: &Message) -> Result<(), ProtocolError> {
    protocol::encode(message, &mut self.bytes)
  }

  async fn flush<W>(&mut self, stream: &mut W) -> io::Result<()>
  where
    W: AsyncWrite + Unpin,
  {
    // This is `write_all` with its progress kept in `self`: if the caller drops the future (a
    // `select!` branch lost), the next flush resumes after the bytes already sent instead of
    // sending them twice and corrupting the stream.
    while self.written < self.bytes.len() {
      let n = stream.write(&self.bytes[self.written..]).await?;
      if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
      }
      self.written += n;
    }
    if self.bytes.capacity() > KEEP_CAPACITY {
      self.bytes = Vec::new();
    } else {
      self.bytes.clear();
    }
    self.written = 0;
    stream.flush().await
  }
}

/// A message stream over `S`, with buffered reads and coalesced writes.
#[derive(Debug)]
pub struct Connection<S> {
  stream: S,
  read: ReadBuffer,
  write: WriteBuffer,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
  /// Wraps a connected stream.
  pub fn new(stream: S) -> Connection<S> {
    Connection {
      stream,
      read: ReadBuffer::default(),
      write: WriteBuffer::default(),
    }
  }

  /// The next message; `Ok(None)` when the peer closed the stream cleanly between frames.
  ///
  /// Cancel-safe: dropping the future loses no received bytes.
  pub async fn read_message(&mut self) -> Result<Option<Message>, ConnectionError> {
    self.read.read_message(&mut self.stream).await
  }

  /// Encodes `message` into the write buffer; nothing is sent until [`Connection::flush`].
  pub fn queue(&mut self, message: &Message) -> Result<(), ProtocolError> {
    self.write.queue(message)
  }

  /// Writes every queued frame. Cancel-safe: a later flush resumes where a dropped one stopped.
  pub async fn flush(&mut self) -> io::Result<()> {
    self.write.flush(&mut self.stream).await
  }

  /// Queues `message` and flushes.
  pub async fn write_message(&mut self, message: &Message) -> Result<(), ConnectionError> {
    self.queue(message)?;
    Ok(self.flush().await?)
  }

  /// Splits into a reading half and a writing half for two tasks, keeping bytes already
  /// received and frames already queued.
  pub fn into_split(self) -> (FrameReader<ReadHalf<S>>, FrameWriter<WriteHalf<S>>) {
    let (read_half, write_half) = tokio::io::split(self.stream);
    (
      FrameReader {
        stream: read_half,
        read: self.read,
      },
      FrameWriter {
        stream: write_half,
        write: self.write,
      },
    )
  }
}

/// The reading half of a connection.
#[derive(Debug)]
pub struct FrameReader<R> {
  stream: R,
  read: ReadBuffer,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
  /// Reads messages from `stream`, for streams that split natively (such as `&Stream`).
  pub fn new(stream: R) -> FrameReader<R> {
    FrameReader {
      stream,
      read: ReadBuffer::default(),
    }
  }

  /// The next message; `Ok(None)` on a clean end of stream. Cancel-safe.
  pub async fn read_message(&mut self) -> Result<Option<Message>, ConnectionError> {
    self.read.read_message(&mut self.stream).await
  }

  /// The next message if it has already arrived in full, without waiting: lets a reader handle a
  /// burst of messages as one batch.
  pub fn buffered_message(&mut self) -> Result<Option<Message>, ConnectionError> {
    self.read.buffered_message()
  }
}

/// The writing half of a connection.
#[derive(Debug)]
pub struct FrameWriter<W> {
  stream: W,
  write: WriteBuffer,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
  /// Writes messages to `stream`, for streams that split natively (such as `&Stream`).
  pub fn new(stream: W) -> FrameWriter<W> {
    FrameWriter {
      stream,
      write: WriteBuffer::default(),
    }
  }

  /// Encodes `message` into the write buffer; nothing is sent until [`FrameWriter::flush`].
  pub fn queue(&mut self, message: &Message) -> Result<(), ProtocolError> {
    self.write.queue(message)
  }

  /// Writes every queued frame. Cancel-safe: a later flush resumes where a dropped one stopped.
  pub async fn flush(&mut self) -> io::Result<()> {
    self.write.flush(&mut self.stream).await
  }

  /// Queues `message` and flushes.
  pub async fn write_message(&mut self, message: &Message) -> Result<(), ConnectionError> {
    self.queue(message)?;
    Ok(self.flush().await?)
  }
}

#[cfg(test)]
mod tests {
  use std::pin::Pin;
  use std::sync::atomic::{AtomicUsize, Ordering};
  use std::sync::Arc;
  use std::task::{Context, Poll};

  use serde_json::json;
  use tokio::io::{duplex, DuplexStream, ReadBuf};

  use super::*;
  use crate::protocol::{Hlc, MAX_FRAME};

  fn patch(seq: u64) -> Message {
    Message::Patch {
      seq,
      hlc: Hlc {
        ms: seq,
        counter: 0,
      },
      update: json!({ "$set": { "n": seq } }),
    }
  }

  fn encoded(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    assert_eq!(protocol::encode(message, &mut out), Ok(()));
    out
  }

  /// Counts the writes that reach the stream, to observe coalescing.
  struct CountWrites {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
  }

  impl AsyncRead for CountWrites {
    fn poll_read(
      mut self: Pin<&mut Self>,
      cx: &mut Context<'_>,
      buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
      Pin::new(&mut self.inner).poll_read(cx, buf)
    }
  }

  impl AsyncWrite for CountWrites {
    fn poll_write(
      mut self: Pin<&mut Self>,
      cx: &mut Context<'_>,
      buf: &[u8],
    ) -> Poll<io::Result<usize>> {
      let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
      if poll.is_ready() {
        self.writes.fetch_add(1, Ordering::SeqCst);
      }
      poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
      Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
      Pin::new(&mut self.inner).poll_shutdown(cx)
    }
  }

  #[tokio::test]
  async fn a_message_roundtrips() {
    let (a, b) = duplex(1024);
    let (mut a, mut b) = (Connection::new(a), Connection::new(b));
    let hello = Message::Hello {
      protocol: 1,
      pid: 2,
      origin: 3,
      version: 4,
    };
    a.write_message(&hello).await.unwrap();
    assert_eq!(b.read_message().await.unwrap(), Some(hello));
    b.write_message(&patch(1)).await.unwrap();
    assert_eq!(a.read_message().await.unwrap(), Some(patch(1)));
  }

  #[tokio::test]
  async fn a_clean_close_is_none() {
    let (a, b) = duplex(1024);
    let mut a = Connection::new(a);
    a.write_message(&patch(1)).await.unwrap();
    drop(a);
    let mut b = Connection::new(b);
    assert_eq!(b.read_message().await.unwrap(), Some(patch(1)));
    assert_eq!(b.read_message().await.unwrap(), None);
  }

  #[tokio::test]
  async fn a_close_mid_frame_is_an_error() {
    let bytes = encoded(&patch(1));
    for cut in [2, 4, bytes.len() - 1] {
      let (mut a, b) = duplex(1024);
      a.write_all(&bytes[..cut]).await.unwrap();
      drop(a);
      let result = Connection::new(b).read_message().await;
      assert!(
        matches!(result, Err(ConnectionError::TruncatedFrame { buffered }) if buffered == cut),
        "cut at {cut}: {result:?}"
      );
    }
  }

  #[tokio::test]
  async fn frames_split_across_reads_are_reassembled() {
    let mut bytes = Vec::new();
    for seq in 0..20 {
      bytes.extend(encoded(&patch(seq)));
    }
    // A tiny pipe forces partial frames in most reads.
    let (mut a, b) = duplex(7);
    let writer = tokio::spawn(async move { a.write_all(&bytes).await });
    let mut b = Connection::new(b);
    for seq in 0..20 {
      assert_eq!(b.read_message().await.unwrap(), Some(patch(seq)));
    }
    assert_eq!(b.read_message().await.unwrap(), None);
    writer.await.unwrap().unwrap();
  }

  #[tokio::test]
  async fn a_thousand_queued_messages_go_in_one_write_and_arrive_in_order() {
    let (a, b) = duplex(4 * 1024 * 1024);
    let writes = Arc::new(AtomicUsize::new(0));
    let mut a = Connection::new(CountWrites {
      inner: a,
      writes: writes.clone(),
    });
    for seq in 0..1_000 {
      a.queue(&patch(seq)).unwrap();
    }
    assert_eq!(writes.load(Ordering::SeqCst), 0, "queue does not write");
    a.flush().await.unwrap();
    assert_eq!(writes.load(Ordering::SeqCst), 1);
    drop(a);
    let mut b = Connection::new(b);
    for seq in 0..1_000 {
      assert_eq!(b.read_message().await.unwrap(), Some(patch(seq)));
    }
    assert_eq!(b.read_message().await.unwrap(), None);
  }

  #[tokio::test]
  async fn an_oversized_frame_is_rejected() {
    let (mut a, b) = duplex(1024);
    a.write_all(&((MAX_FRAME + 1) as u32).to_be_bytes())
      .await
      .unwrap();
    // The writer stays open: the error must not wait for a body that never comes.
    let result = Connection::new(b).read_message().await;
    assert!(
      matches!(
        result,
        Err(ConnectionError::Protocol(ProtocolError::Oversized { .. }))
      ),
      "{result:?}"
    );
    drop(a);
  }

  #[tokio::test]
  async fn invalid_json_is_a_protocol_error() {
    let (mut a, b) = duplex(1024);
    a.write_all(&[0, 0, 0, 2, b'{', b'{']).await.unwrap();
    let result = Connection::new(b).read_message().await;
    assert!(
      matches!(
        result,
        Err(ConnectionError::Protocol(ProtocolError::InvalidJson(_)))
      ),
      "{result:?}"
    );
  }

  #[tokio::test]
  async fn split_halves_keep_buffered_bytes_and_queued_frames() {
    let (a, b) = duplex(64 * 1024);
    let (mut a, mut b) = (Connection::new(a), Connection::new(b));
    // Two frames arrive in one read; the split must keep the second one.
    a.queue(&patch(1)).unwrap();
    a.queue(&patch(2)).unwrap();
    a.flush().await.unwrap();
    assert_eq!(b.read_message().await.unwrap(), Some(patch(1)));
    b.queue(&patch(10)).unwrap();

    let (mut reader, mut writer) = b.into_split();
    assert_eq!(reader.read_message().await.unwrap(), Some(patch(2)));
    writer.write_message(&patch(11)).await.unwrap();
    assert_eq!(a.read_message().await.unwrap(), Some(patch(10)));
    assert_eq!(a.read_message().await.unwrap(), Some(patch(11)));

    // The halves work from separate tasks.
    let reading =
      tokio::spawn(async move { reader.read_message().await.map_err(|e| e.to_string()) });
    a.write_message(&patch(3)).await.unwrap();
    assert_eq!(reading.await.unwrap(), Ok(Some(patch(3))));
  }

  #[tokio::test]
  async fn a_cancelled_flush_resumes_without_duplicating() {
    // A 16-byte pipe takes only part of the batch before the flush is cancelled.
    let (a, b) = duplex(16);
    let mut a = Connection::new(a);
    for seq in 0..50 {
      a.queue(&patch(seq)).unwrap();
    }
    let cancelled = tokio::time::timeout(std::time::Duration::from_millis(20), a.flush()).await;
    assert!(cancelled.is_err(), "the pipe is too small to finish");
    let reading = tokio::spawn(async move {
      let mut b = Connection::new(b);
      let mut seen = Vec::new();
      while let Some(message) = b.read_message().await.map_err(|e| e.to_string())? {
        seen.push(message);
      }
      Ok::<_, String>(seen)
    });
    a.flush().await.unwrap();
    drop(a);
    let expected: Vec<Message> = (0..50).map(patch).collect();
    assert_eq!(reading.await.unwrap(), Ok(expected));
  }

  #[test]
  fn errors_display_their_cause() {
    let truncated = ConnectionError::TruncatedFrame { buffered: 3 };
    assert_eq!(
      truncated.to_string(),
      "connection closed in the middle of a frame (3 bytes received)"
    );
    let protocol = ConnectionError::from(ProtocolError::InvalidJson("eof".into()));
    assert_eq!(
      protocol.to_string(),
      "protocol error: frame is not valid JSON: eof"
    );
  }
}
