//! Diagnostic lines on stderr (`report!`).

use std::io::{self, Write};
use std::time::{Duration, Instant};

/// How long one line may wait for room in a full stderr pipe before the rest of it is dropped.
const STDERR_PATIENCE: Duration = Duration::from_secs(1);

/// Writes the line and a newline to stderr. Node.js 22 and 24 make a child process's stderr pipe
/// non-blocking once its JS side uses `process.stderr`, so a burst of lines can meet a full pipe
/// (`EAGAIN`): `eprintln!` would then panic, ending the task that reports while its socket stays
/// open. Here the write waits for room as a blocking pipe would, for a bounded time.
pub fn report_line(line: std::fmt::Arguments) {
  let text = format!("{line}\n");
  let mut rest = text.as_bytes();
  let deadline = Instant::now() + STDERR_PATIENCE;
  let mut stderr = io::stderr().lock();
  while !rest.is_empty() {
    match stderr.write(rest) {
      Ok(0) => return,
      Ok(written) => rest = &rest[written..],
      Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
      Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !wait_writable(left) {
          return;
        }
      }
      Err(_) => return,
    }
  }
}

fn wait_writable(timeout: Duration) -> bool {
  let mut stderr = libc::pollfd {
    fd: libc::STDERR_FILENO,
    events: libc::POLLOUT,
    revents: 0,
  };
  let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
  // SAFETY: one valid pollfd, alive for the whole call.
  unsafe { libc::poll(&mut stderr, 1, millis) > 0 }
}
