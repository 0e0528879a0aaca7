//! Receiving [`Message`]s from, and sending encoded frames to, a byte stream (a local socket, or
//! `tokio::io::duplex` in tests). A connection is split in two halves that two tasks drive.
//!
//! - [`FrameReader`] offers each read at least 8 KiB of buffer and decodes the frames in place, so
//!   a burst of small frames costs one read and no copy per frame;
//!   [`FrameReader::buffered_message`] hands out what has already arrived without waiting, so the
//!   reader can handle a burst as one batch.
//! - [`Budget`] bounds what a host's connections hold together: partial frames received and
//!   frames queued for clients. Past it, the connections holding the most are dropped.
//! - [`Outbox`] is the sending side: frames are queued and flushed, straight to the socket from the
//!   sender's thread when nothing is in flight, else by the connection's writer task
//!   ([`write_outbox`]), which writes everything queued at once.

use std::collections::VecDeque;
use std::fmt;
use std::io;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;

use crate::core::link::{Link, Sending};
use crate::core::message::Message;
use crate::transport::local::codec::{self, ProtocolError};

/// The least free space offered to each read, so small frames arrive many at a time.
const READ_CHUNK: usize = 8 * 1024;

/// A read buffer whose capacity grew beyond this (a large snapshot went through) is freed once
/// empty, so one big frame does not pin its memory for the life of the connection.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// The size of the blocks an outbox queues frames in (see [`Queue`]).
const BLOCK: usize = 64 * 1024;

/// Empties `bytes`, freeing its memory when a large burst grew it: what the [`Budget`] does not
/// count (spare capacity kept for reuse) stays within [`KEEP_CAPACITY`] per buffer.
fn empty(bytes: &mut Vec<u8>) {
  if bytes.capacity() > KEEP_CAPACITY {
    *bytes = Vec::new();
  } else {
    bytes.clear();
  }
}

/// A backlog larger than this that was written or dropped has its memory given back to the
/// system at once (see [`release_freed`]).
const RELEASE_AFTER: usize = 4 * 1024 * 1024;

/// Returns the free memory of the allocator's arenas to the system after a backlog of `bytes` was
/// freed. glibc keeps what is freed in its arenas and gives back only a free top of a heap, which
/// a long-lived allocation above the backlog's blocks prevents: a host that dropped a client that
/// stopped reading (its 32 MiB) kept that memory resident. Only glibc needs it, and only once per
/// backlog of several MiB, which took far longer to queue and write than the trim takes.
fn release_freed(bytes: usize) {
  #[cfg(all(target_os = "linux", target_env = "gnu"))]
  if bytes > RELEASE_AFTER {
    // SAFETY: malloc_trim only returns free pages to the system; it may run on any thread.
    unsafe { libc::malloc_trim(0) };
  }
  #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
  let _ = bytes;
}

/// Frames waiting to be written, in blocks of [`BLOCK`] bytes (a block that a large frame
/// outgrows is shrunk to fit it). A backlog grows and is freed a block at a time. One buffer for a
/// whole backlog (tens of MiB for a client that does not read) doubled and copied itself as it
/// grew, and the copies it outgrew stayed resident (once a large buffer is freed, glibc serves
/// such sizes from its arenas and keeps them): under backlogs filling a 96 MiB budget, a host's
/// peak RSS grew by 120 to 220 MB from one run to the next.
#[derive(Default)]
struct Queue {
  blocks: VecDeque<Vec<u8>>,
  /// The bytes of the first block already written. Moving the rest to the block's start after
  /// every partial write instead moved a 10 MB welcome about 50 times, once per socket buffer
  /// (a sixth of a host's time in a 10 MB join).
  written: usize,
  /// The bytes not written yet.
  len: usize,
}

impl Queue {
  fn len(&self) -> usize {
    self.len
  }

  fn is_empty(&self) -> bool {
    self.len == 0
  }

  /// Appends with `write` (which leaves the block as it was when it returns `false`) to the
  /// last block, or to a new one when the last is full.
  fn append(&mut self, write: impl FnOnce(&mut Vec<u8>) -> bool) -> bool {
    let block = match self.blocks.back_mut() {
      Some(block) if block.len() < BLOCK => block,
      _ => {
        // The first block grows with what is queued, so that a connection sending little holds
        // little; the next ones come when a backlog builds up.
        let capacity = if self.blocks.is_empty() { 0 } else { BLOCK };
        self.blocks.push_back(Vec::with_capacity(capacity));
        self.blocks.back_mut().expect("a block was just pushed")
      }
    };
    let before = block.len();
    let written = write(block);
    // A large frame grew the block by doubling: what it does not use is given back.
    if block.len() > BLOCK {
      block.shrink_to_fit();
    }
    self.len += block.len() - before;
    if block.is_empty() {
      self.blocks.pop_back();
    }
    written
  }

  /// Puts `self`'s bytes (the rest of a write) before `queue`'s, which came after them (and
  /// none of which were written).
  fn put_before(mut self, queue: &mut Queue) {
    debug_assert_eq!(queue.written, 0);
    self.blocks.append(&mut queue.blocks);
    self.len += queue.len;
    *queue = self;
  }

  /// The bytes to write first (empty when nothing is queued).
  fn front(&self) -> &[u8] {
    self
      .blocks
      .front()
      .map_or(&[], |block| &block[self.written..])
  }

  /// Forgets the first `n` bytes of [`Queue::front`], which were written.
  fn consume(&mut self, n: usize) {
    let several = self.blocks.len() > 1;
    let Some(block) = self.blocks.front_mut() else {
      return;
    };
    self.len -= n;
    self.written += n;
    if self.written < block.len() {
      return;
    }
    self.written = 0;
    if several || block.capacity() > BLOCK {
      self.blocks.pop_front();
    } else {
      // The one block of a small burst is kept for the next, as a single buffer was.
      block.clear();
    }
  }

  /// Forgets everything queued and frees its memory.
  fn clear(&mut self) {
    *self = Queue::default();
  }
}

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
  /// A frame stayed incomplete longer than the reader allows.
  Stalled {
    /// How long after its first byte.
    after: Duration,
    /// How many bytes of it had arrived.
    buffered: usize,
  },
  /// The connection was dropped to keep its host within its [`Budget`].
  OverBudget,
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
      ConnectionError::Stalled { after, buffered } => write!(
        f,
        "a frame stayed incomplete for {after:?} ({buffered} bytes received)"
      ),
      ConnectionError::OverBudget => {
        write!(f, "dropped to keep the host's buffers within their budget")
      }
    }
  }
}

impl std::error::Error for ConnectionError {
  fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
    match self {
      ConnectionError::Io(err) => Some(err),
      ConnectionError::Protocol(err) => Some(err),
      ConnectionError::TruncatedFrame { .. }
      | ConnectionError::Stalled { .. }
      | ConnectionError::OverBudget => None,
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
pub(crate) struct ReadBuffer {
  bytes: Vec<u8>,
  start: usize,
  /// When the latest read brought bytes in (kept only under [`ReadLimits`]).
  read_at: Option<Instant>,
  /// When the first byte of the frame at `start` arrived, at the latest (under [`ReadLimits`]).
  frame_since: Option<Instant>,
}

impl ReadBuffer {
  async fn read_message<R>(
    &mut self,
    stream: &mut R,
    mut limits: Option<&mut ReadLimits>,
  ) -> Result<Option<Message>, ConnectionError>
  where
    R: AsyncRead + Unpin,
  {
    loop {
      if let Some(message) = self.buffered_message()? {
        return Ok(Some(message));
      }
      self.make_room();
      // `read_buf` is cancel-safe: bytes it returns are already in `self.bytes`, so a caller may
      // drop this future in a `select!` without losing data.
      let read = match limits.as_deref_mut() {
        None => stream.read_buf(&mut self.bytes).await?,
        Some(limits) => {
          // What is held while waiting is the partial frame alone.
          limits.hold(self.partial_frame())?;
          let read = match self.frame_since {
            Some(since) => {
              let deadline = since + limits.partial_timeout;
              tokio::time::timeout_at(deadline.into(), stream.read_buf(&mut self.bytes))
                .await
                .map_err(|_| ConnectionError::Stalled {
                  after: limits.partial_timeout,
                  buffered: self.partial_frame(),
                })??
            }
            None => stream.read_buf(&mut self.bytes).await?,
          };
          if read > 0 {
            let now = Instant::now();
            self.read_at = Some(now);
            self.frame_since.get_or_insert(now);
            limits.hold(self.partial_frame())?;
          }
          read
        }
      };
      if read == 0 {
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

  /// Reads once from the non-blocking socket `fd`: the number of bytes read (0 at its end), and
  /// whether they filled the room offered (if not, the socket held no more at that moment).
  pub(crate) fn read_fd(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> io::Result<(usize, bool)> {
    self.make_room();
    let mut spare = ReadBuf::uninit(self.bytes.spare_capacity_mut());
    crate::transport::local::socket::read_into(fd, &mut spare)?;
    let read = spare.filled().len();
    let filled = spare.remaining() == 0;
    // SAFETY: `read_into` initialised the first `read` bytes of the spare capacity.
    unsafe { self.bytes.set_len(self.bytes.len() + read) };
    Ok((read, filled))
  }

  /// Moves the unread tail to the front and offers the next read at least [`READ_CHUNK`] bytes,
  /// or room for the rest of a larger frame whose header is in: a 10 MB welcome read into room
  /// grown by doubling was copied and paged in again at every step.
  fn make_room(&mut self) {
    if self.start > 0 {
      self.bytes.drain(..self.start);
      self.start = 0;
    }
    let rest = codec::frame_len(&self.bytes).map_or(0, |len| len.saturating_sub(self.bytes.len()));
    if rest > READ_CHUNK {
      self.bytes.reserve_exact(rest);
    } else if self.bytes.capacity() - self.bytes.len() < READ_CHUNK {
      self.bytes.reserve(READ_CHUNK);
    }
  }

  /// The bytes of a frame still waiting for the rest.
  pub(crate) fn partial_frame(&self) -> usize {
    self.bytes.len() - self.start
  }

  /// How many frames are received in full and not decoded yet.
  pub(crate) fn complete_frames(&self) -> usize {
    codec::complete_frames(&self.bytes[self.start..])
  }

  /// The next message if it is already received in full; never reads.
  pub(crate) fn buffered_message(&mut self) -> Result<Option<Message>, ConnectionError> {
    let Some((message, consumed)) = codec::decode(&self.bytes[self.start..])? else {
      return Ok(None);
    };
    self.start += consumed;
    if self.start == self.bytes.len() {
      self.clear();
    } else {
      // The next frame's first byte came with the latest read, or before it.
      self.frame_since = self.read_at;
    }
    Ok(Some(message))
  }

  fn clear(&mut self) {
    empty(&mut self.bytes);
    self.start = 0;
    self.frame_since = None;
  }
}

/// What a host enforces on what a connection sends: a frame must be complete within
/// `partial_timeout` of its first byte, and what is received counts against the host's
/// [`Budget`] (through the connection's outbox, which is dropped with it).
pub struct ReadLimits {
  partial_timeout: Duration,
  account: Arc<Outbox>,
  /// The bytes charged to the budget.
  held: usize,
}

impl ReadLimits {
  /// Limits for a connection whose sending side is `account` (an outbox with a budget).
  pub fn new(partial_timeout: Duration, account: Arc<Outbox>) -> ReadLimits {
    ReadLimits {
      partial_timeout,
      account,
      held: 0,
    }
  }

  /// Charges `bytes` received in place of what was charged; fails once the connection is dropped.
  fn hold(&mut self, bytes: usize) -> Result<(), ConnectionError> {
    if bytes != self.held {
      let before = std::mem::replace(&mut self.held, bytes);
      self.account.recharge(before, bytes);
    }
    if self.account.is_dropped() {
      return Err(ConnectionError::OverBudget);
    }
    Ok(())
  }
}

impl fmt::Debug for ReadLimits {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("ReadLimits")
      .field("partial_timeout", &self.partial_timeout)
      .field("held", &self.held)
      .finish_non_exhaustive()
  }
}

impl Drop for ReadLimits {
  fn drop(&mut self) {
    self.account.recharge(self.held, 0);
  }
}

/// Reads [`Message`]s from a stream, decoding every frame that a read brought in before reading
/// again.
#[derive(Debug)]
pub struct FrameReader<R> {
  stream: R,
  read: ReadBuffer,
  limits: Option<ReadLimits>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
  /// Reads messages from `stream` (a read half, or a stream that splits natively such as `&Stream`).
  pub fn new(stream: R) -> FrameReader<R> {
    FrameReader {
      stream,
      read: ReadBuffer::default(),
      limits: None,
    }
  }

  /// Reads messages from `stream` under `limits` (a host's connection).
  pub fn limited(stream: R, limits: ReadLimits) -> FrameReader<R> {
    FrameReader {
      limits: Some(limits),
      ..FrameReader::new(stream)
    }
  }

  /// The next message; `Ok(None)` on a clean end of stream. Cancel-safe.
  pub async fn read_message(&mut self) -> Result<Option<Message>, ConnectionError> {
    self
      .read
      .read_message(&mut self.stream, self.limits.as_mut())
      .await
  }

  /// The next message if it has already arrived in full, without waiting: lets a reader handle a
  /// burst of messages as one batch.
  pub fn buffered_message(&mut self) -> Result<Option<Message>, ConnectionError> {
    self.read.buffered_message()
  }

  /// How many frames are received in full and not decoded yet; never reads.
  pub fn complete_frames(&self) -> usize {
    self.read.complete_frames()
  }

  /// The stream, and what was received from it but not decoded yet: for whoever reads it next.
  pub(crate) fn into_parts(self) -> (R, ReadBuffer) {
    (self.stream, self.read)
  }
}

/// A stream shared by its reading and writing tasks through an `Arc`: interprocess's `&Stream`
/// reads and writes on its own, where `tokio::io::split` would take a lock on every poll.
pub struct Shared<T>(pub Arc<T>);

impl<T> AsyncRead for Shared<T>
where
  for<'a> &'a T: AsyncRead,
{
  fn poll_read(
    self: Pin<&mut Self>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
  ) -> Poll<io::Result<()>> {
    Pin::new(&mut &*self.0).poll_read(cx, buf)
  }
}

impl<T> AsyncWrite for Shared<T>
where
  for<'a> &'a T: AsyncWrite,
{
  fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    Pin::new(&mut &*self.0).poll_write(cx, buf)
  }

  fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    Pin::new(&mut &*self.0).poll_flush(cx)
  }

  fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    Pin::new(&mut &*self.0).poll_shutdown(cx)
  }
}

pub use crate::transport::local::socket::DirectWrite;

/// The sending side of a connection, shared by everyone who sends on it (the JS thread's
/// `patch()`, the host's handlers) and the connection's writer task ([`write_outbox`]).
///
/// Frames are queued, then flushed. A flush with nothing in flight writes straight to the socket
/// from the calling thread, so a patch does not wait for a tokio worker to wake up; whatever the
/// socket does not take at once, or anything queued while an earlier write is still in flight,
/// goes to the writer task, so bytes never overtake each other. Queueing a burst before one flush
/// costs one write syscall per [`BLOCK`] of it.
///
/// A client that stops reading cannot make us buffer without bound: past `limit` queued bytes the
/// connection is dropped, and the client resyncs from a snapshot when it reconnects. A host's
/// outboxes also share a [`Budget`] with the frames its connections have partly received.
pub struct Outbox {
  state: Mutex<Outgoing>,
  wake_writer: Notify,
  /// Aborts a write the peer does not read when the connection is dropped.
  abort_write: Notify,
  /// Wakes [`Outbox::wait_sent`] when bytes left, or the connection was dropped.
  sent_progress: Notify,
  direct: Option<DirectWrite>,
  limit: usize,
  budget: Option<Arc<Budget>>,
  /// The bytes of the connection charged to `budget`: queued, in flight, and partly received.
  held: AtomicUsize,
}

#[derive(Default)]
struct Outgoing {
  queued: Queue,
  /// The writer task holds bytes not yet fully written; nothing may be written before them.
  writing: bool,
  /// A thread writes directly (`Outbox::flush`), without the lock: no one else writes meanwhile.
  flushing: bool,
  /// How many bytes the writer task, or a direct write, holds.
  in_flight: usize,
  /// `queued` and `in_flight` as charged to the budget.
  charged: usize,
  /// No more frames are accepted; the writer sends what is queued, then shuts the stream down.
  closed: bool,
  /// Dropped (over the limit, or a write failed): the writer gives up at once.
  dropped: bool,
  /// The bytes ever queued, and how many of them went to the operating system: the peer gets
  /// those even if this process dies.
  appended: u64,
  sent: u64,
}

impl Outbox {
  /// An outbox that writes directly through `direct` when it can (`None`: always through the
  /// writer task) and drops its connection past `limit` queued bytes.
  pub fn new(direct: Option<DirectWrite>, limit: usize) -> Arc<Outbox> {
    Outbox::build(direct, limit, None)
  }

  /// An outbox as [`Outbox::new`] whose bytes, and those its connection partly received, count
  /// against `budget`.
  pub fn within(direct: Option<DirectWrite>, limit: usize, budget: &Arc<Budget>) -> Arc<Outbox> {
    let outbox = Outbox::build(direct, limit, Some(budget.clone()));
    budget.join(&outbox);
    outbox
  }

  fn build(direct: Option<DirectWrite>, limit: usize, budget: Option<Arc<Budget>>) -> Arc<Outbox> {
    Arc::new(Outbox {
      state: Mutex::new(Outgoing::default()),
      wake_writer: Notify::new(),
      abort_write: Notify::new(),
      sent_progress: Notify::new(),
      direct,
      limit,
      budget,
      held: AtomicUsize::new(0),
    })
  }

  /// Charges `now` bytes in place of `before`; past the budget, drops the connections holding
  /// the most. Never called under `state`'s lock: dropping takes the other outboxes' locks.
  /// Whether it had to drop connections.
  fn recharge(&self, before: usize, now: usize) -> bool {
    let Some(budget) = &self.budget else {
      return false;
    };
    if now < before {
      self.held.fetch_sub(before - now, Ordering::Relaxed);
      budget.used.fetch_sub(before - now, Ordering::Relaxed);
    } else if now > before {
      self.held.fetch_add(now - before, Ordering::Relaxed);
      if budget.used.fetch_add(now - before, Ordering::Relaxed) + (now - before) > budget.limit {
        budget.enforce();
        return true;
      }
    }
    false
  }

  /// Records what `state` holds now: the charge before and after, for [`Outbox::recharge`] once
  /// the lock is released.
  fn settle(&self, state: &mut Outgoing) -> (usize, usize) {
    if self.budget.is_none() {
      return (0, 0);
    }
    let now = state.queued.len() + state.in_flight;
    (std::mem::replace(&mut state.charged, now), now)
  }

  /// Drops the connection: nothing more is sent, and the writer gives up its write.
  fn drop_connection(&self) {
    let mut state = self.state.lock();
    if state.dropped {
      return;
    }
    state.dropped = true;
    let freed = state.queued.len();
    state.queued.clear();
    let (before, now) = self.settle(&mut state);
    drop(state);
    self.wake_writer.notify_one();
    self.abort_write.notify_one();
    self.sent_progress.notify_waiters();
    self.recharge(before, now);
    release_freed(freed);
  }

  /// Queues a frame for the next [`Outbox::flush`]. `false` once the connection is closed or
  /// dropped: the frame will never be sent.
  pub fn queue(&self, frame: &[u8]) -> bool {
    self.append(|queued| {
      queued.extend_from_slice(frame);
      true
    })
  }

  /// Encodes `message` straight into the queue, without a frame of its own. `false` once the
  /// connection is closed or dropped, or when the message is too large for a frame (it is then
  /// not sent).
  pub fn queue_message(&self, message: &Message) -> bool {
    self.append(|queued| codec::encode(message, queued).is_ok())
  }

  /// Appends to the queue with `write` (which leaves it as it was when it returns `false`),
  /// then drops the connection if the queue outgrew the limit.
  fn append(&self, write: impl FnOnce(&mut Vec<u8>) -> bool) -> bool {
    let mut state = self.state.lock();
    if state.closed || state.dropped {
      return false;
    }
    let waiting = state.queued.len();
    if !state.queued.append(write) {
      return false;
    }
    state.appended += (state.queued.len() - waiting) as u64;
    // A single frame larger than the limit (a big snapshot) still goes when nothing is waiting.
    if waiting > 0 && state.queued.len() > self.limit {
      drop(state);
      self.drop_connection();
      return false;
    }
    let (before, now) = self.settle(&mut state);
    drop(state);
    !(self.recharge(before, now) && self.is_dropped())
  }

  /// Sends what is queued: straight to the socket when no write is in flight, else by the
  /// writer task once the write in flight is done. The direct write runs without the lock: a
  /// write wakes the reader, and the scheduler may switch to it before the writing thread lets
  /// go, while another thread queuing a frame (a host's JS thread in `patch()`) waits for the
  /// lock for a whole time slice (`bench/profile-cluster.mjs --switches`).
  pub fn flush(&self) {
    let mut state = self.state.lock();
    if state.queued.is_empty() || state.writing || state.flushing || state.dropped {
      return;
    }
    let Some(direct) = &self.direct else {
      state.writing = true;
      let (before, now) = self.settle(&mut state);
      drop(state);
      self.recharge(before, now);
      self.wake_writer.notify_one();
      return;
    };
    state.flushing = true;
    loop {
      let mut batch = std::mem::take(&mut state.queued);
      state.in_flight = batch.len();
      drop(state);
      while !batch.is_empty() {
        match direct(batch.front()) {
          Ok(0) => break,
          Ok(n) => batch.consume(n),
          Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
          // Full (`WouldBlock`) or failed: the writer task waits, or meets the error itself.
          Err(_) => break,
        }
      }
      state = self.state.lock();
      let sent = state.in_flight - batch.len();
      self.record_sent(&mut state, sent);
      state.in_flight = 0;
      if !state.dropped && batch.is_empty() && !state.queued.is_empty() {
        // Frames queued meanwhile go out now, after this write's.
        continue;
      }
      let handed_over = !state.dropped && !batch.is_empty();
      if handed_over {
        // The writer task goes on from there, with the rest of this write first.
        batch.put_before(&mut state.queued);
        state.writing = true;
      } else if batch.is_empty() && state.queued.is_empty() {
        // The one block of a small burst is kept for the next.
        state.queued = batch;
      }
      state.flushing = false;
      // The writer task waits for the end of a direct write to take over, or to shut down.
      let wake = handed_over || state.closed;
      let (before, now) = self.settle(&mut state);
      drop(state);
      self.recharge(before, now);
      if wake {
        self.wake_writer.notify_one();
      }
      return;
    }
  }

  /// Counts `n` more bytes as gone to the operating system, and wakes whoever waits for them.
  fn record_sent(&self, state: &mut Outgoing, n: usize) {
    state.sent += n as u64;
    if n > 0 {
      self.sent_progress.notify_waiters();
    }
  }

  /// Whether every byte queued so far went to the operating system.
  pub fn is_sent(&self) -> bool {
    let state = self.state.lock();
    state.sent == state.appended
  }

  /// Ends with `true` once every byte queued before the call went to the operating system, or
  /// with `false` when the connection is dropped first.
  pub async fn wait_sent(&self) -> bool {
    let mark = self.state.lock().appended;
    loop {
      // Registered before the check, so that no progress is missed in between.
      let progress = self.sent_progress.notified();
      let mut progress = std::pin::pin!(progress);
      progress.as_mut().enable();
      {
        let state = self.state.lock();
        if state.sent >= mark {
          return true;
        }
        if state.dropped {
          return false;
        }
      }
      progress.await;
    }
  }

  /// Queues a frame and flushes. `false` when the connection is closed or dropped.
  pub fn send(&self, frame: &[u8]) -> bool {
    let queued = self.queue(frame);
    self.flush();
    queued
  }

  /// Queues a message ([`Outbox::queue_message`]) and flushes.
  pub fn send_message(&self, message: &Message) -> bool {
    let queued = self.queue_message(message);
    self.flush();
    queued
  }

  /// Accepts no more frames; the writer task sends what is queued and shuts the stream down.
  pub fn close(&self) {
    self.state.lock().closed = true;
    self.wake_writer.notify_one();
  }

  /// Whether the connection was dropped (over the limit, or a failed write).
  pub fn is_dropped(&self) -> bool {
    self.state.lock().dropped
  }

  /// Takes what is queued without sending it (tests drive replicas without sockets).
  #[cfg(test)]
  pub fn take_queued(&self) -> Vec<u8> {
    let queued = std::mem::take(&mut self.state.lock().queued);
    let written = queued.written;
    queued.blocks.into_iter().flatten().skip(written).collect()
  }

  /// Takes what is queued, decoded (tests drive replicas without sockets).
  #[cfg(test)]
  pub fn take_messages(&self) -> Vec<Message> {
    let bytes = self.take_queued();
    let mut messages = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
      let (message, used) = codec::decode(&bytes[at..]).unwrap().unwrap();
      messages.push(message);
      at += used;
    }
    messages
  }
}

/// The core queues on an outbox as on any connection.
impl Link for Outbox {
  fn queue(&self, message: &Message) -> bool {
    self.queue_message(message)
  }

  fn queue_all(&self, messages: &[Message]) -> bool {
    self.append(|queued| {
      messages
        .iter()
        .all(|message| codec::encode(message, queued).is_ok())
    })
  }

  fn flush(&self) {
    Outbox::flush(self);
  }

  fn sent(&self) -> bool {
    self.is_sent()
  }

  fn wait_sent(self: Arc<Self>) -> Sending {
    Box::pin(async move { Outbox::wait_sent(&self).await })
  }

  fn close(&self) {
    Outbox::close(self);
  }
}

/// The memory a host's connections may hold together: frames partly received (up to a frame's
/// limit each) and frames queued for clients that do not read fast enough. Past `limit`, the
/// connections holding the most, which are the furthest behind, are dropped until the rest fits;
/// a dropped client resyncs from a snapshot when it reconnects.
pub struct Budget {
  limit: usize,
  used: AtomicUsize,
  /// The outboxes of the host's connections; each stands for its connection's share.
  members: Mutex<Vec<Weak<Outbox>>>,
}

impl Budget {
  /// A budget of `limit` bytes.
  pub fn new(limit: usize) -> Arc<Budget> {
    Arc::new(Budget {
      limit,
      used: AtomicUsize::new(0),
      members: Mutex::new(Vec::new()),
    })
  }

  /// The bytes held now.
  pub fn used(&self) -> usize {
    self.used.load(Ordering::Relaxed)
  }

  fn join(&self, outbox: &Arc<Outbox>) {
    let mut members = self.members.lock();
    // Forget closed connections so the list does not grow with every past one.
    members.retain(|member| member.strong_count() > 0);
    members.push(Arc::downgrade(outbox));
  }

  /// Drops the connections holding the most until the rest fits. One at a time: two senders over
  /// the budget at once must not both drop.
  fn enforce(&self) {
    let members = self.members.lock();
    let outboxes: Vec<Arc<Outbox>> = members
      .iter()
      .filter_map(Weak::upgrade)
      .filter(|outbox| !outbox.is_dropped())
      .collect();
    let held: Vec<usize> = outboxes
      .iter()
      .map(|outbox| outbox.held.load(Ordering::Relaxed))
      .collect();
    for index in to_drop(&held, self.limit) {
      outboxes[index].drop_connection();
    }
  }
}

/// Which of the connections holding `held` bytes to drop so that the rest holds at most `limit`:
/// those holding the most first. Connections that hold nothing are never dropped.
fn to_drop(held: &[usize], limit: usize) -> Vec<usize> {
  let mut total: usize = held.iter().sum();
  let mut order: Vec<usize> = (0..held.len()).collect();
  order.sort_by_key(|&index| std::cmp::Reverse(held[index]));
  order
    .into_iter()
    .take_while(|&index| {
      let dropped = total > limit && held[index] > 0;
      total -= if dropped { held[index] } else { 0 };
      dropped
    })
    .collect()
}

/// The writing task of a connection: writes what `outbox` hands over, in order, until the outbox
/// is closed and empty (then shuts the stream down) or dropped, or a write fails.
pub async fn write_outbox<W>(mut out: W, outbox: Arc<Outbox>)
where
  W: AsyncWrite + Unpin,
{
  // Whatever ends the task, the bytes in flight are no longer held, and what is left unsent
  // never will be: whoever waits for it learns so.
  struct Release<'a>(&'a Outbox);
  impl Drop for Release<'_> {
    fn drop(&mut self) {
      let mut state = self.0.state.lock();
      state.in_flight = 0;
      if state.sent < state.appended {
        state.dropped = true;
      }
      let (before, now) = self.0.settle(&mut state);
      drop(state);
      self.0.sent_progress.notify_waiters();
      self.0.recharge(before, now);
    }
  }
  let _release = Release(&outbox);
  let mut buffer = Queue::default();
  loop {
    let closed = 'taken: {
      let mut state = outbox.state.lock();
      if state.dropped {
        return;
      }
      if state.flushing {
        break 'taken None;
      }
      // The previous write is done: its bytes are released along with the swap below.
      state.in_flight = 0;
      let closed = if state.queued.is_empty() {
        state.writing = false;
        state.closed
      } else {
        std::mem::swap(&mut buffer, &mut state.queued);
        state.in_flight = buffer.len();
        state.writing = true;
        false
      };
      Some((closed, outbox.settle(&mut state)))
    };
    let Some((closed, (before, now))) = closed else {
      // A direct write is under way: it wakes this task when it is done.
      outbox.wake_writer.notified().await;
      continue;
    };
    outbox.recharge(before, now);
    if closed {
      let _ = out.shutdown().await;
      return;
    }
    if buffer.is_empty() {
      outbox.wake_writer.notified().await;
      continue;
    }
    let held = buffer.len();
    let written = tokio::select! {
      written = write_queue(&mut out, &mut buffer) => written.is_ok(),
      // Dropped while the peer does not read: give up the write instead of waiting for it.
      _ = outbox.abort_write.notified() => false,
    };
    if !written {
      // `_release` tells whoever waits for these bytes, as the task ends.
      outbox.state.lock().dropped = true;
      drop(buffer);
      release_freed(held);
      return;
    }
    outbox.record_sent(&mut outbox.state.lock(), held);
    release_freed(held);
  }
}

/// Writes what `queue` holds to `out`, freeing each block once it is written.
async fn write_queue<W>(out: &mut W, queue: &mut Queue) -> io::Result<()>
where
  W: AsyncWrite + Unpin,
{
  while !queue.is_empty() {
    match out.write(queue.front()).await? {
      0 => return Err(io::ErrorKind::WriteZero.into()),
      n => queue.consume(n),
    }
  }
  Ok(())
}

#[cfg(test)]
mod tests {
  use std::sync::atomic::{AtomicUsize, Ordering};
  use std::sync::{OnceLock, Weak};
  use std::time::Duration;

  use serde_json::json;
  use tokio::io::{duplex, DuplexStream};

  use super::*;
  use crate::clock::Hlc;
  use crate::core::message::RawJson;
  use crate::transport::local::codec::MAX_FRAME;

  fn patch(seq: u64) -> Message {
    Message::Patch {
      seq,
      hlc: Hlc {
        ms: seq,
        counter: 0,
      },
      update: RawJson::to(&json!({ "$set": { "n": seq } })).unwrap(),
    }
  }

  fn encoded(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    assert_eq!(codec::encode(message, &mut out), Ok(()));
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

  /// An outbox (without direct writes) holding the frames of `seqs`.
  fn queued(seqs: impl IntoIterator<Item = u64>) -> Arc<Outbox> {
    let outbox = Outbox::new(None, usize::MAX);
    for seq in seqs {
      assert!(outbox.queue(&encoded(&patch(seq))));
    }
    outbox
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
      peer: Default::default(),
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

  #[test]
  fn a_backlog_is_queued_in_blocks_and_consumed_in_order() {
    let small = encoded(&patch(1));
    let large = vec![7; 3 * BLOCK];
    let mut queue = Queue::default();
    let mut expected = Vec::new();
    for _ in 0..3 * BLOCK / small.len() {
      assert!(queue.append(|block| {
        block.extend_from_slice(&small);
        true
      }));
      expected.extend_from_slice(&small);
    }
    assert!(queue.append(|block| {
      block.extend_from_slice(&large);
      true
    }));
    expected.extend_from_slice(&large);
    assert!(!queue.append(|_| false), "a failed append adds nothing");
    assert_eq!(queue.len(), expected.len());
    assert!(queue.blocks.len() >= 3);
    for block in &queue.blocks {
      assert!(
        block.capacity() <= BLOCK.max(block.len()),
        "no block keeps more than it needs"
      );
    }
    let mut written = Vec::new();
    while !queue.is_empty() {
      let front = queue.front();
      let n = front.len().min(5_000);
      written.extend_from_slice(&front[..n]);
      queue.consume(n);
    }
    assert_eq!(written, expected);
    assert!(queue.blocks.is_empty(), "a written backlog is freed");
  }

  #[test]
  fn bytes_queued_after_a_partial_write_follow_its_rest() {
    let mut queue = Queue::default();
    let append = |queue: &mut Queue, bytes: &[u8]| {
      assert!(queue.append(|block| {
        block.extend_from_slice(bytes);
        true
      }));
    };
    append(&mut queue, b"abcdef");
    assert_eq!(queue.front(), b"abcdef");
    queue.consume(2);
    assert_eq!((queue.front(), queue.len()), (&b"cdef"[..], 4));
    append(&mut queue, b"gh");
    assert_eq!((queue.front(), queue.len()), (&b"cdefgh"[..], 6));
    queue.consume(6);
    assert!(queue.is_empty());
    assert_eq!(queue.front(), b"");
    append(&mut queue, b"ij");
    assert_eq!(queue.front(), b"ij", "the kept block starts over");
  }

  #[tokio::test]
  async fn a_thousand_queued_frames_go_in_one_write_and_arrive_in_order() {
    let (a, b) = duplex(4 * 1024 * 1024);
    let writes = Arc::new(AtomicUsize::new(0));
    let out = CountWrites {
      inner: a,
      writes: writes.clone(),
    };
    let outbox = queued(0..1_000);
    outbox.flush();
    outbox.close();
    write_outbox(out, outbox).await;
    assert_eq!(writes.load(Ordering::SeqCst), 1);
    let mut b = reader(b);
    for seq in 0..1_000 {
      assert_eq!(b.read_message().await.unwrap(), Some(patch(seq)));
    }
    assert_eq!(b.read_message().await.unwrap(), None);
  }

  /// A socket stand-in for direct writes: takes at most `room` bytes in all, then `WouldBlock`.
  fn direct_sink(room: usize) -> (DirectWrite, Arc<Mutex<Vec<u8>>>) {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let taken = sink.clone();
    let direct: DirectWrite = Box::new(move |bytes: &[u8]| {
      let mut sink = taken.lock();
      let n = bytes.len().min(room - sink.len());
      if n == 0 {
        return Err(io::ErrorKind::WouldBlock.into());
      }
      sink.extend_from_slice(&bytes[..n]);
      Ok(n)
    });
    (direct, sink)
  }

  #[tokio::test]
  async fn a_flush_with_nothing_in_flight_writes_directly_and_the_rest_follows_in_order() {
    let frames: Vec<Vec<u8>> = (0..10).map(|seq| encoded(&patch(seq))).collect();
    // Room for two and a half frames: the third is split between the direct write and the task.
    let room = frames[0].len() * 5 / 2;
    let (direct, sink) = direct_sink(room);
    let outbox = Outbox::new(Some(direct), usize::MAX);
    assert!(outbox.send(&frames[0]));
    assert_eq!(
      *sink.lock(),
      frames[0],
      "sent at once, without the writer task"
    );
    for frame in &frames[1..] {
      assert!(outbox.send(frame));
    }
    assert_eq!(sink.lock().len(), room);
    // Everything after the partial write waits for the writer task, behind the partial frame.
    let (a, b) = duplex(64 * 1024);
    outbox.close();
    write_outbox(a, outbox).await;
    let mut received = sink.lock().clone();
    let mut b = b;
    b.read_to_end(&mut received).await.unwrap();
    assert_eq!(received, frames.concat());
  }

  #[test]
  fn a_direct_write_leaves_the_outbox_free_and_what_is_queued_meanwhile_follows_it() {
    let frames: Vec<Vec<u8>> = (0..3).map(|seq| encoded(&patch(seq))).collect();
    let sink = Arc::new(Mutex::new(Vec::new()));
    let slot: Arc<OnceLock<Weak<Outbox>>> = Arc::new(OnceLock::new());
    let (written, outbox_of_write, later) = (sink.clone(), slot.clone(), frames[1..].to_vec());
    let direct: DirectWrite = Box::new(move |bytes: &[u8]| {
      let outbox = outbox_of_write.get().and_then(Weak::upgrade).unwrap();
      // Another thread queuing a frame during the write does not wait for the write.
      assert!(
        outbox.state.try_lock().is_some(),
        "the lock is held during a write"
      );
      if written.lock().is_empty() {
        for frame in &later {
          assert!(outbox.send(frame));
        }
      }
      written.lock().extend_from_slice(bytes);
      Ok(bytes.len())
    });
    let outbox = Outbox::new(Some(direct), usize::MAX);
    slot.set(Arc::downgrade(&outbox)).unwrap();
    assert!(outbox.send(&frames[0]));
    assert_eq!(
      *sink.lock(),
      frames.concat(),
      "in order, without the writer task"
    );
    assert!(outbox.take_queued().is_empty());
  }

  /// An outbox whose writer task writes into a pipe of 8 bytes, with one frame queued and
  /// [`Outbox::wait_sent`] begun in a task of its own (its mark taken): the outbox, the writer
  /// task, the pipe's other end and the wait.
  async fn a_frame_waited_for() -> (
    Arc<Outbox>,
    tokio::task::JoinHandle<()>,
    DuplexStream,
    tokio::task::JoinHandle<bool>,
  ) {
    let (a, b) = duplex(8);
    let outbox = Outbox::new(None, usize::MAX);
    let writer = tokio::spawn(write_outbox(a, outbox.clone()));
    assert!(outbox.send(&encoded(&patch(1))));
    let waiting = tokio::spawn({
      let outbox = outbox.clone();
      async move { outbox.wait_sent().await }
    });
    tokio::task::yield_now().await;
    (outbox, writer, b, waiting)
  }

  #[test]
  fn bytes_a_direct_write_took_are_sent_and_those_a_full_socket_refused_are_not() {
    let taken = Outbox::new(Some(Box::new(|bytes: &[u8]| Ok(bytes.len()))), usize::MAX);
    assert!(taken.is_sent(), "nothing queued");
    assert!(taken.send(&encoded(&patch(1))));
    assert!(taken.is_sent());
    let full = Outbox::new(
      Some(Box::new(|_: &[u8]| Err(io::ErrorKind::WouldBlock.into()))),
      usize::MAX,
    );
    assert!(full.send(&encoded(&patch(1))));
    assert!(!full.is_sent(), "left to the writer task");
  }

  #[tokio::test]
  async fn a_wait_for_sent_bytes_ends_once_those_queued_before_it_are_written() {
    let (outbox, writer, b, waiting) = a_frame_waited_for().await;
    // Queued after the wait began: the wait does not need it, and nobody reads it.
    assert!(outbox.send(&encoded(&patch(2))));
    let mut b = reader(b);
    assert_eq!(b.read_message().await.unwrap(), Some(patch(1)));
    let sent = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    assert!(sent.expect("the wait ends").unwrap());
    assert!(
      !outbox.is_sent(),
      "the second frame is still in the pipe's way"
    );
    writer.abort();
  }

  #[tokio::test]
  async fn a_wait_for_sent_bytes_ends_false_when_the_writer_ends_without_them() {
    let (_outbox, writer, _b, waiting) = a_frame_waited_for().await;
    writer.abort();
    let sent = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    assert!(!sent.expect("the wait ends").unwrap());
  }

  #[test]
  fn a_message_is_encoded_into_the_queue_and_one_too_large_is_refused() {
    let outbox = Outbox::new(None, usize::MAX);
    assert!(outbox.queue_message(&patch(1)));
    let too_large = Message::Patch {
      seq: 2,
      hlc: Hlc::default(),
      update: RawJson::to(&"x".repeat(MAX_FRAME)).unwrap(),
    };
    assert!(!outbox.queue_message(&too_large));
    assert_eq!(
      outbox.take_queued(),
      encoded(&patch(1)),
      "the queue is as it was"
    );
  }

  #[tokio::test]
  async fn a_client_that_does_not_read_is_dropped_past_the_limit() {
    let frame = encoded(&patch(1));
    let outbox = Outbox::new(None, 3 * frame.len());
    // A tiny pipe nobody reads: the writer's first write blocks.
    let (a, b) = duplex(8);
    let writer = tokio::spawn(write_outbox(a, outbox.clone()));
    let mut sent = 0;
    while outbox.send(&frame) {
      sent += 1;
      tokio::task::yield_now().await;
      assert!(sent < 100, "never dropped");
    }
    assert!(outbox.is_dropped());
    tokio::time::timeout(Duration::from_secs(5), writer)
      .await
      .expect("the blocked writer gives up")
      .unwrap();
    assert!(!outbox.send(&frame), "a dropped outbox takes no more");
    drop(b);
  }

  #[tokio::test]
  async fn a_closed_outbox_sends_what_is_queued_then_shuts_down() {
    let (a, b) = duplex(64 * 1024);
    let outbox = queued(0..3);
    let writer = tokio::spawn(write_outbox(a, outbox.clone()));
    outbox.flush();
    outbox.close();
    assert!(!outbox.queue(&encoded(&patch(9))), "closed: no more frames");
    let mut b = reader(b);
    for seq in 0..3 {
      assert_eq!(b.read_message().await.unwrap(), Some(patch(seq)));
    }
    assert_eq!(b.read_message().await.unwrap(), None);
    tokio::time::timeout(Duration::from_secs(5), writer)
      .await
      .expect("the writer ends once closed and empty")
      .unwrap();
  }

  #[tokio::test]
  async fn the_writer_stops_at_a_failed_write() {
    let (a, b) = duplex(64 * 1024);
    drop(b);
    let outbox = queued(0..1);
    outbox.flush();
    tokio::time::timeout(Duration::from_secs(5), write_outbox(a, outbox.clone()))
      .await
      .expect("the writer returns when the peer is gone");
    assert!(outbox.is_dropped());
    assert!(!outbox.send(&encoded(&patch(1))));
  }

  #[test]
  fn the_connections_holding_the_most_are_dropped_until_the_rest_fits() {
    assert_eq!(to_drop(&[], 10), Vec::<usize>::new());
    assert_eq!(to_drop(&[3, 4, 3], 10), Vec::<usize>::new(), "within");
    assert_eq!(to_drop(&[3, 8, 5], 10), vec![1], "the largest suffices");
    assert_eq!(
      to_drop(&[6, 1, 7, 6], 10),
      vec![2, 0],
      "largest first, ties in order"
    );
    assert_eq!(to_drop(&[0, 12], 10), vec![1]);
    assert_eq!(
      to_drop(&[0, 0], 0),
      Vec::<usize>::new(),
      "holding nothing, never dropped"
    );
  }

  #[tokio::test]
  async fn past_the_budget_the_outbox_holding_the_most_is_dropped_and_the_others_go_on() {
    let frame = encoded(&patch(1));
    let budget = Budget::new(10 * frame.len());
    let (behind, ahead) = (
      Outbox::within(None, usize::MAX, &budget),
      Outbox::within(None, usize::MAX, &budget),
    );
    for _ in 0..6 {
      assert!(behind.queue(&frame));
    }
    for _ in 0..4 {
      assert!(ahead.queue(&frame));
    }
    assert_eq!(budget.used(), 10 * frame.len());
    assert!(ahead.queue(&frame), "the frame that goes over is queued");
    assert!(behind.is_dropped(), "the one furthest behind goes");
    assert!(!ahead.is_dropped());
    assert_eq!(budget.used(), 5 * frame.len(), "its bytes are released");
    assert!(!behind.queue(&frame));
    // What the writer takes in flight stays held until it is written.
    let (a, mut b) = duplex(64 * 1024);
    let writer = tokio::spawn(write_outbox(a, ahead.clone()));
    ahead.flush();
    let mut received = vec![0; 5 * frame.len()];
    b.read_exact(&mut received).await.unwrap();
    ahead.close();
    writer.await.unwrap();
    assert_eq!(budget.used(), 0);
  }

  #[tokio::test]
  async fn a_frame_that_stays_partial_is_dropped_after_the_timeout_and_released() {
    let budget = Budget::new(usize::MAX);
    let account = Outbox::within(None, usize::MAX, &budget);
    let limits = ReadLimits::new(Duration::from_millis(50), account);
    let (mut a, b) = duplex(1024);
    let mut b = FrameReader::limited(b, limits);
    // A whole frame, then the first half of the next: the clock starts with the half.
    let second = encoded(&patch(2));
    let mut bytes = encoded(&patch(1));
    bytes.extend_from_slice(&second[..second.len() / 2]);
    a.write_all(&bytes).await.unwrap();
    assert_eq!(b.read_message().await.unwrap(), Some(patch(1)));
    let result = tokio::time::timeout(Duration::from_secs(5), b.read_message())
      .await
      .expect("the reader gives up within the timeout");
    assert!(
      matches!(result, Err(ConnectionError::Stalled { buffered, .. }) if buffered == second.len() / 2),
      "{result:?}"
    );
    assert_eq!(budget.used(), second.len() / 2, "held while it waited");
    drop(b);
    assert_eq!(budget.used(), 0, "released with the reader");
  }

  #[tokio::test]
  async fn a_frame_completed_within_the_timeout_is_read() {
    let budget = Budget::new(usize::MAX);
    let limits = ReadLimits::new(
      Duration::from_secs(5),
      Outbox::within(None, usize::MAX, &budget),
    );
    let (mut a, b) = duplex(7);
    let mut b = FrameReader::limited(b, limits);
    let writer = tokio::spawn(async move {
      for seq in 0..20 {
        a.write_all(&encoded(&patch(seq))).await.unwrap();
      }
    });
    for seq in 0..20 {
      assert_eq!(b.read_message().await.unwrap(), Some(patch(seq)));
    }
    writer.await.unwrap();
    assert_eq!(b.read_message().await.unwrap(), None);
    assert_eq!(budget.used(), 0);
  }

  #[tokio::test]
  async fn partial_frames_past_the_budget_drop_the_largest_holder() {
    let budget = Budget::new(1000);
    let header = (MAX_FRAME as u32).to_be_bytes();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for size in [700, 200] {
      let limits = ReadLimits::new(
        Duration::from_secs(60),
        Outbox::within(None, usize::MAX, &budget),
      );
      let (mut a, b) = duplex(64 * 1024);
      a.write_all(&header).await.unwrap();
      a.write_all(&vec![b' '; size]).await.unwrap();
      let mut reader = FrameReader::limited(b, limits);
      let pending = tokio::time::timeout(Duration::from_millis(20), reader.read_message()).await;
      assert!(pending.is_err(), "the frame is incomplete");
      readers.push(reader);
      writers.push(a);
    }
    assert_eq!(budget.used(), 908);
    // The third pushes the total over: the largest (the first) goes, not the newcomer.
    let limits = ReadLimits::new(
      Duration::from_secs(60),
      Outbox::within(None, usize::MAX, &budget),
    );
    let (mut a, b) = duplex(64 * 1024);
    a.write_all(&header).await.unwrap();
    a.write_all(&[b' '; 300]).await.unwrap();
    let mut third = FrameReader::limited(b, limits);
    let pending = tokio::time::timeout(Duration::from_millis(20), third.read_message()).await;
    assert!(pending.is_err(), "the newcomer goes on");
    let first = tokio::time::timeout(Duration::from_secs(5), readers[0].read_message())
      .await
      .unwrap();
    assert!(
      matches!(first, Err(ConnectionError::OverBudget)),
      "{first:?}"
    );
    drop(readers.remove(0));
    assert_eq!(budget.used(), 204 + 304);
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
    let stalled = ConnectionError::Stalled {
      after: Duration::from_secs(5),
      buffered: 7,
    };
    assert_eq!(
      stalled.to_string(),
      "a frame stayed incomplete for 5s (7 bytes received)"
    );
    assert_eq!(
      ConnectionError::OverBudget.to_string(),
      "dropped to keep the host's buffers within their budget"
    );
  }
}
