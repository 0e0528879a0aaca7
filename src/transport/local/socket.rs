//! A connection's Unix socket, split for tokio so that a thread is woken only for what it waits
//! for (Unix domain sockets).
//!
//! A socket registered with tokio for reading and writing wakes the runtime's thread whenever data
//! arrives and whenever the peer reads what we sent (the socket turns writable again): twice per
//! message, though frames are written straight from the sending thread and, on a client, read by
//! the JS thread. So the reading half is registered for readability only, and dropped once the JS
//! thread reads; the writing half writes at once and registers for writability only while the
//! socket is full.
//!
//! Both halves and the sending thread share one descriptor. A second registration of it with the
//! same epoll would fail (`EEXIST`), so the writing half registers a duplicate, only while the
//! socket is full.

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Writes bytes straight to a connection's socket without waiting: how many it took, or
/// `WouldBlock` when the socket buffer is full.
pub type DirectWrite = Box<dyn Fn(&[u8]) -> io::Result<usize> + Send + Sync>;

/// Registers `fd` with the current runtime for `interest` only.
pub(crate) fn register<T: AsRawFd>(fd: T, interest: Interest) -> io::Result<AsyncFd<T>> {
  // SAFETY: our callers pass owned descriptors (`UnixStream`, or an `Arc` of one), which stay
  // open, on the same socket, for the `AsyncFd`'s life.
  Ok(unsafe { AsyncFd::register_with_interest(fd, interest) }?)
}

/// `read(2)` from the non-blocking `fd` into `buf`'s unfilled part (which may be uninitialised).
pub(crate) fn read_into(fd: BorrowedFd<'_>, buf: &mut ReadBuf<'_>) -> io::Result<()> {
  // SAFETY: `read` writes at most `unfilled.len()` bytes into `unfilled`; the bytes it reports
  // are initialised before `assume_init` and `advance` expose them.
  unsafe {
    let unfilled: &mut [MaybeUninit<u8>] = buf.unfilled_mut();
    let read = libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len());
    let read = usize::try_from(read).map_err(|_| io::Error::last_os_error())?;
    buf.assume_init(read);
    buf.advance(read);
  }
  Ok(())
}

/// Writes `bytes` without waiting (and without SIGPIPE, which std's socket writes avoid).
fn write_now(socket: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
  (&*socket).write(bytes)
}

/// The reading half: tokio wakes its task when data arrives, never when the peer reads.
pub struct SocketReader(AsyncFd<Arc<UnixStream>>);

impl AsyncRead for SocketReader {
  fn poll_read(
    self: Pin<&mut Self>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
  ) -> Poll<io::Result<()>> {
    loop {
      let mut ready = ready!(self.0.poll_read_ready(cx))?;
      if let Ok(read) = ready.try_io(|fd| read_into(fd.get_ref().as_fd(), buf)) {
        return Poll::Ready(read);
      }
    }
  }
}

/// The writing half: writes at once, and waits for writability (registered for it) only while
/// the socket is full.
pub struct SocketWriter {
  socket: Arc<UnixStream>,
  full: Option<AsyncFd<UnixStream>>,
}

impl AsyncWrite for SocketWriter {
  fn poll_write(
    mut self: Pin<&mut Self>,
    cx: &mut Context<'_>,
    bytes: &[u8],
  ) -> Poll<io::Result<usize>> {
    loop {
      let Some(full) = &self.full else {
        match write_now(&self.socket, bytes) {
          Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
            let socket = self.socket.try_clone()?;
            self.full = Some(register(socket, Interest::WRITABLE)?);
            continue;
          }
          written => return Poll::Ready(written),
        }
      };
      let mut ready = ready!(full.poll_write_ready(cx))?;
      if let Ok(written) = ready.try_io(|fd| write_now(fd.get_ref(), bytes)) {
        if matches!(written, Ok(n) if n == bytes.len()) {
          self.full = None;
        }
        return Poll::Ready(written);
      }
    }
  }

  fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
    Poll::Ready(Ok(()))
  }

  fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
    Poll::Ready(self.socket.shutdown(std::net::Shutdown::Write))
  }
}

/// A connected socket's halves, on one descriptor: the reader, the writer task's writer, and the
/// writes from the sending thread.
pub fn split(socket: OwnedFd) -> io::Result<(SocketReader, SocketWriter, DirectWrite)> {
  let socket = Arc::new(UnixStream::from(socket));
  let reader = SocketReader(register(socket.clone(), Interest::READABLE)?);
  let writer = SocketWriter {
    socket: socket.clone(),
    full: None,
  };
  let direct: DirectWrite = Box::new(move |bytes: &[u8]| write_now(&socket, bytes));
  Ok((reader, writer, direct))
}

impl SocketReader {
  /// The socket, no longer registered with tokio (it may be registered again).
  pub fn into_socket(self) -> Arc<UnixStream> {
    self.0.into_inner()
  }
}
