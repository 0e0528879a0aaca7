//! A client's incoming frames, read by whichever of its two threads is awake (Unix sockets).
//!
//! Read by the tokio task alone, a patch from the host wakes two threads of the receiving process:
//! the tokio worker, then the JS thread it hands the events to. On a small machine each wake-up
//! of an idle thread costs tens of microseconds, so while the JS thread is responsive its event
//! loop polls the socket itself (`binding`'s `JsPoll`) and the tokio task does not listen. When the
//! JS thread stalls (a long synchronous job) with frames waiting, the tokio task takes the socket
//! back, so the replica keeps up and a lost host is noticed; JS claims it again once it runs.
//!
//! Both may read at any moment: reads and the handling of what they bring happen under one lock,
//! in arrival order, so who listens decides only who is woken.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::Interest;
use tokio::sync::Notify;

use crate::core::message::Message;
use crate::core::replica::Replica;
use crate::transport::local::connection::{ConnectionError, ReadBuffer};

/// Handles a burst of messages from the host, in order; an error ends the connection.
pub type Handler = Box<dyn Fn(Vec<Message>) -> Result<(), String> + Send + Sync>;

/// Why the host connection ended.
#[derive(Debug)]
pub enum InboxEnd {
  /// The host closed the connection or it failed.
  Lost(ConnectionError),
  /// The host sent something we cannot apply.
  Failed(String),
}

/// The incoming side of a client's connection to its host.
pub struct Inbox {
  /// The connection's socket, non-blocking (shared with its writer).
  socket: Arc<UnixStream>,
  handle: Handler,
  reading: Mutex<Reading>,
  /// Whether the JS thread's event loop polls the socket (the tokio task then does not).
  js_polls: AtomicBool,
  /// How many times the JS thread took its turn: the tokio task's sign that JS is alive.
  js_turns: AtomicU64,
  /// Wakes the tokio task: the connection ended, or JS claims the socket.
  changed: Notify,
}

struct Reading {
  buffer: ReadBuffer,
  /// Why it ended, until the tokio task takes it.
  end: Option<InboxEnd>,
  /// Nothing is read any more.
  closed: bool,
}

impl Inbox {
  /// Takes over the socket `socket` (non-blocking) after the handshake, with the bytes the
  /// handshake's reader had already received.
  pub(crate) fn new(socket: Arc<UnixStream>, received: ReadBuffer, handle: Handler) -> Inbox {
    Inbox {
      socket,
      handle,
      reading: Mutex::new(Reading {
        buffer: received,
        end: None,
        closed: false,
      }),
      js_polls: AtomicBool::new(false),
      js_turns: AtomicU64::new(0),
      changed: Notify::new(),
    }
  }

  /// The socket, for the JS thread's poll.
  pub fn socket(&self) -> BorrowedFd<'_> {
    self.socket.as_fd()
  }

  /// Reads and handles everything that has arrived; false once the connection has ended.
  pub fn receive(&self) -> bool {
    self.read_and_handle(false)
  }

  /// Reads and handles what has arrived, until a read would block or, with `until_short_read`,
  /// until a read that did not fill the buffer (which emptied the socket); false once the
  /// connection has ended.
  fn read_and_handle(&self, until_short_read: bool) -> bool {
    let mut reading = self.reading.lock();
    if reading.closed {
      return false;
    }
    // Frames that came in with the welcome, or that an earlier turn could not handle.
    let mut end = self.handle_buffered(&mut reading.buffer);
    while end.is_none() {
      match reading.buffer.read_fd(self.socket.as_fd()) {
        Ok((0, _)) => {
          let err = match reading.buffer.partial_frame() {
            0 => io::Error::from(io::ErrorKind::UnexpectedEof).into(),
            buffered => ConnectionError::TruncatedFrame { buffered },
          };
          end = Some(InboxEnd::Lost(err));
        }
        Ok((_, filled)) => {
          end = self.handle_buffered(&mut reading.buffer);
          if until_short_read && !filled {
            break;
          }
        }
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
        Err(err) => end = Some(InboxEnd::Lost(err.into())),
      }
    }
    let Some(end) = end else {
      return true;
    };
    reading.end = Some(end);
    reading.closed = true;
    drop(reading);
    self.changed.notify_one();
    false
  }

  /// Handles the complete frames in `buffer` as one burst.
  fn handle_buffered(&self, buffer: &mut ReadBuffer) -> Option<InboxEnd> {
    let mut batch = Vec::with_capacity(buffer.complete_frames());
    let mut failed = None;
    loop {
      match buffer.buffered_message() {
        Ok(Some(message)) => batch.push(message),
        Ok(None) => break,
        Err(err) => {
          failed = Some(err);
          break;
        }
      }
    }
    if !batch.is_empty() {
      if let Err(err) = (self.handle)(batch) {
        return Some(InboxEnd::Failed(err));
      }
    }
    failed.map(InboxEnd::Lost)
  }

  /// The JS thread's turn, when its event loop saw the socket readable. libuv's poll is
  /// level-triggered: bytes left or arriving after a short read make it call again, so the read
  /// that would only say "would block" (one system call of four per patch received) is skipped.
  /// Tokio's readiness is edge-triggered and cleared on "would block": its reads go on to it.
  pub fn js_turn(&self) -> bool {
    self.js_turns.fetch_add(1, Ordering::Relaxed);
    self.read_and_handle(true)
  }

  /// The JS thread polls the socket from now on (and runs): the tokio task stops listening.
  pub fn claim_for_js(&self) {
    self.js_turns.fetch_add(1, Ordering::Relaxed);
    if !self.js_polls.swap(true, Ordering::AcqRel) {
      self.changed.notify_one();
    }
  }

  /// Whether the JS thread polls the socket.
  pub fn polled_by_js(&self) -> bool {
    self.js_polls.load(Ordering::Acquire)
  }

  /// Whether the connection has ended.
  pub fn has_ended(&self) -> bool {
    self.reading.lock().closed
  }

  /// Stops reading (once a read in progress is handled) and shuts the socket down, which the
  /// host and the JS thread's poll both see.
  pub fn close(&self) {
    self.reading.lock().closed = true;
    let _ = self.socket.shutdown(Shutdown::Both);
  }

  /// Why the connection ended, once it has.
  pub fn take_end(&self) -> Option<InboxEnd> {
    self.reading.lock().end.take()
  }

  /// Reads as the tokio task until the connection ends or the JS thread claims the socket.
  pub async fn read_in_tokio(&self) -> io::Result<()> {
    // Readable only: the connection's writer registers a duplicate for writability. Nothing else
    // registers this descriptor now (the handshake's reader gave it up), so no duplicate here.
    let socket =
      crate::transport::local::socket::register(self.socket.clone(), Interest::READABLE)?;
    loop {
      if self.polled_by_js() {
        return Ok(());
      }
      tokio::select! {
        ready = socket.readable() => {
          let mut ready = ready?;
          if !self.receive() {
            return Ok(());
          }
          ready.clear_ready();
        }
        _ = self.changed.notified() => {
          if self.has_ended() {
            return Ok(());
          }
        }
      }
    }
  }

  /// Waits while the JS thread polls: until the connection ends, or JS leaves frames unread for
  /// `patience` (a stalled event loop), when the tokio task takes the socket back.
  pub async fn watch_js(&self, patience: std::time::Duration) {
    let mut seen = self.js_turns.load(Ordering::Relaxed);
    loop {
      tokio::select! {
        _ = self.changed.notified() => {
          if self.has_ended() {
            return;
          }
        }
        _ = tokio::time::sleep(patience) => {
          let turns = self.js_turns.load(Ordering::Relaxed);
          if turns == seen && self.has_unread() {
            self.js_polls.store(false, Ordering::Release);
            return;
          }
          seen = turns;
        }
      }
    }
  }

  /// Whether the socket holds bytes (or its end) nobody has read.
  fn has_unread(&self) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: `recv` writes at most one byte into `byte`. (std's `UnixStream::peek` is unstable.)
    let peeked = unsafe {
      libc::recv(
        std::os::fd::AsRawFd::as_raw_fd(&self.socket),
        byte.as_mut_ptr().cast(),
        1,
        libc::MSG_PEEK | libc::MSG_DONTWAIT,
      )
    };
    peeked >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock
  }
}

/// Where a client's task offers its socket to the JS thread's event loop, until JS takes it.
#[derive(Default)]
pub struct InboxSlot(Mutex<Option<Arc<Inbox>>>);

impl InboxSlot {
  /// Offers `inbox`, and wakes `replica`'s JS thread to take it.
  pub fn offer(&self, inbox: Arc<Inbox>, replica: &Replica) {
    *self.0.lock() = Some(inbox);
    replica.nudge();
  }

  /// The socket offered, once.
  pub fn take(&self) -> Option<Arc<Inbox>> {
    self.0.lock().take()
  }
}
