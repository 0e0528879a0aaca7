//! Receiving [`Message`]s from, and sending encoded frames to, a byte stream (a local socket, or
//! `tokio::io::duplex` in tests). A connection is split in two halves that two tasks drive.
//!
//! - [`FrameReader`] offers each read at least 8 KiB of buffer and decodes the frames in place, so
//!   a burst of small frames costs one read and no copy per frame;
//!   [`FrameReader::buffered_message`] hands out what has already arrived without waiting, so the
//!   reader can handle a burst as one batch.
//! - [`write_frames`] is the writing task: it takes already-encoded [`Frame`]s from a channel and
//!   writes everything queued at once, so a burst costs one write instead of one per frame.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::protocol::{self, Message, ProtocolError};
use crate::state::Frame;

/// The least free space offered to each read, so small frames arrive many at a time.
const READ_CHUNK: usize = 8 * 1024;

/// A read buffer whose capacity grew beyond this (a large snapshot went through) is freed once
/// empty, so one big frame does not pin its memory for the life of the connection.
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

/// Reads [`Message`]s from a stream, decoding every frame that a read brought in before reading
/// again.
#[derive(Debug)]
pub struct FrameReader<R> {
  stream: R,
  read: ReadBuffer,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
  /// Reads messages from `stream` (a read half, or a stream that splits natively such as `&Stream`).
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

/// The writing task of a connection: writes `first`, then every frame received from `frames`, and
/// when the channel closes (every sender dropped) shuts the stream down and returns. Stops at the
/// first failed write, without shutting down; frames still queued are dropped with the channel.
///
/// Writes are coalesced: each batch is every frame queued at that moment (`first` joins the first
/// batch), copied into one buffer and written with one `write_all`, so a burst of frames costs one
/// write syscall (unless the stream takes only part of it) instead of one per frame. Frames come
/// already encoded (the host encodes a patch once and sends the same [`Frame`] to every client).
pub async fn write_frames<W>(mut out: W, first: Option<Frame>, mut frames: UnboundedReceiver<Frame>)
where
  W: AsyncWrite + Unpin,
{
  let mut buffer = Vec::new();
  if let Some(frame) = first {
    buffer.extend_from_slice(&frame);
  }
  loop {
    if buffer.is_empty() {
      match frames.recv().await {
        Some(frame) => buffer.extend_from_slice(&frame),
        None => break,
      }
    }
    while let Ok(frame) = frames.try_recv() {
      buffer.extend_from_slice(&frame);
    }
    if out.write_all(&buffer).await.is_err() {
      return;
    }
    buffer.clear();
  }
  let _ = out.shutdown().await;
}

#[cfg(test)]
mod tests {
  use std::pin::Pin;
  use std::sync::atomic::{AtomicUsize, Ordering};
  use std::sync::Arc;
  use std::task::{Context, Poll};
  use std::time::Duration;

  use serde_json::json;
  use tokio::io::{duplex, DuplexStream, ReadBuf};
  use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

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

  fn reader(stream: DuplexStream) -> FrameReader<DuplexStream> {
    FrameReader::new(stream)
  }

  async fn send(stream: &mut DuplexStream, message: &Message) {
    stream.write_all(&encoded(message)).await.unwrap();
  }

  /// A channel holding the frames of `seqs`, with its sender.
  fn queued(
    seqs: impl IntoIterator<Item = u64>,
  ) -> (UnboundedSender<Frame>, UnboundedReceiver<Frame>) {
    let (sender, receiver) = unbounded_channel();
    for seq in seqs {
      sender.send(Arc::new(encoded(&patch(seq)))).unwrap();
    }
    (sender, receiver)
  }

  #[tokio::test]
  async fn a_message_roundtrips() {
    let (mut a, b) = duplex(1024);
    let mut b = reader(b);
    let hello = Message::Hello {
      protocol: 1,
      pid: 2,
      origin: 3,
      version: 4,
    };
    send(&mut a, &hello).await;
    assert_eq!(b.read_message().await.unwrap(), Some(hello));
    send(&mut a, &patch(1)).await;
    assert_eq!(b.read_message().await.unwrap(), Some(patch(1)));
  }

  #[tokio::test]
  async fn a_clean_close_is_none() {
    let (mut a, b) = duplex(1024);
    send(&mut a, &patch(1)).await;
    drop(a);
    let mut b = reader(b);
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
      let result = reader(b).read_message().await;
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
    let mut b = reader(b);
    for seq in 0..20 {
      assert_eq!(b.read_message().await.unwrap(), Some(patch(seq)));
    }
    assert_eq!(b.read_message().await.unwrap(), None);
    writer.await.unwrap().unwrap();
  }

  #[tokio::test]
  async fn an_oversized_frame_is_rejected() {
    let (mut a, b) = duplex(1024);
    a.write_all(&((MAX_FRAME + 1) as u32).to_be_bytes())
      .await
      .unwrap();
    // The writer stays open: the error must not wait for a body that never comes.
    let result = reader(b).read_message().await;
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
    let result = reader(b).read_message().await;
    assert!(
      matches!(
        result,
        Err(ConnectionError::Protocol(ProtocolError::InvalidJson(_)))
      ),
      "{result:?}"
    );
  }

  #[tokio::test]
  async fn buffered_message_returns_only_complete_frames_and_never_reads() {
    let (mut a, b) = duplex(64 * 1024);
    let mut b = reader(b);
    send(&mut a, &patch(1)).await;
    // Bytes in the pipe are not in the buffer yet.
    assert_eq!(b.buffered_message().unwrap(), None);

    // One read brings in two frames and the first half of a third.
    let third = encoded(&patch(3));
    let (head, tail) = third.split_at(third.len() / 2);
    let mut burst = encoded(&patch(2));
    burst.extend_from_slice(head);
    a.write_all(&burst).await.unwrap();
    assert_eq!(b.read_message().await.unwrap(), Some(patch(1)));
    assert_eq!(b.buffered_message().unwrap(), Some(patch(2)));
    assert_eq!(
      b.buffered_message().unwrap(),
      None,
      "the third is incomplete"
    );

    // The half frame stays buffered: the next read completes it.
    a.write_all(tail).await.unwrap();
    assert_eq!(b.buffered_message().unwrap(), None);
    assert_eq!(b.read_message().await.unwrap(), Some(patch(3)));
  }

  #[tokio::test]
  async fn a_thousand_queued_frames_go_in_one_write_and_arrive_in_order() {
    let (a, b) = duplex(4 * 1024 * 1024);
    let writes = Arc::new(AtomicUsize::new(0));
    let out = CountWrites {
      inner: a,
      writes: writes.clone(),
    };
    let (sender, receiver) = queued(0..1_000);
    drop(sender);
    write_frames(out, None, receiver).await;
    assert_eq!(writes.load(Ordering::SeqCst), 1);
    let mut b = reader(b);
    for seq in 0..1_000 {
      assert_eq!(b.read_message().await.unwrap(), Some(patch(seq)));
    }
    assert_eq!(b.read_message().await.unwrap(), None);
  }

  #[tokio::test]
  async fn the_first_frame_goes_before_queued_frames_in_the_same_write() {
    let (a, b) = duplex(64 * 1024);
    let writes = Arc::new(AtomicUsize::new(0));
    let out = CountWrites {
      inner: a,
      writes: writes.clone(),
    };
    let (sender, receiver) = queued(1..3);
    drop(sender);
    let first = Arc::new(encoded(&patch(0)));
    write_frames(out, Some(first), receiver).await;
    assert_eq!(writes.load(Ordering::SeqCst), 1);
    let mut b = reader(b);
    for seq in 0..3 {
      assert_eq!(b.read_message().await.unwrap(), Some(patch(seq)));
    }
    assert_eq!(b.read_message().await.unwrap(), None);
  }

  #[tokio::test]
  async fn write_frames_returns_when_the_sender_is_dropped() {
    let (a, b) = duplex(64 * 1024);
    let (sender, receiver) = unbounded_channel();
    let writer = tokio::spawn(write_frames(a, None, receiver));
    let mut b = reader(b);
    // Frames sent while the task waits go out as they come.
    for seq in 0..3 {
      sender.send(Arc::new(encoded(&patch(seq)))).unwrap();
      assert_eq!(b.read_message().await.unwrap(), Some(patch(seq)));
    }
    assert!(!writer.is_finished());
    drop(sender);
    tokio::time::timeout(Duration::from_secs(5), writer)
      .await
      .expect("write_frames returns once the channel closes")
      .unwrap();
    assert_eq!(b.read_message().await.unwrap(), None);
  }

  #[tokio::test]
  async fn write_frames_stops_at_a_failed_write() {
    let (a, b) = duplex(64 * 1024);
    drop(b);
    let (sender, receiver) = queued(0..1);
    // The sender stays alive: only the failed write can end the task.
    tokio::time::timeout(Duration::from_secs(5), write_frames(a, None, receiver))
      .await
      .expect("write_frames returns when the peer is gone");
    assert!(
      sender.send(Arc::new(encoded(&patch(1)))).is_err(),
      "the receiver was dropped"
    );
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
