//! Replacing a host that stopped (`SIGSTOP`, a debugger, a frozen container) without splitting
//! the brain.
//!
//! A stopped host keeps its `flock`, so the next host cannot take that lock: it takes the lock of
//! the next *epoch* instead (`rendezvous`). What keeps two hosts from ordering at once is a lease,
//! measured on the machine's monotonic clock, which every process reads at the same rate:
//!
//! - A host orders only within [`lease_length`] of a check that found no lock file of the next
//!   epoch ([`Lease::hold`]). A host that was stopped finds its lease over when it resumes, checks
//!   again before it orders anything, and steps down when the next epoch exists.
//! - A process that creates the next epoch's lock while the old host still holds its own waits
//!   [`lease_length`] before it orders anything: whatever the old host checked before the file
//!   existed has run out by then.
//!
//! Clients only decide *when* to take over: after [`Silence`] of `hostTimeout` (the host sends a
//! heartbeat every [`heartbeat_interval`]). A client that is wrong (it was stopped itself) costs
//! a needless failover, never two hosts.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::core::link::Fence;

/// The default `hostTimeout`.
pub const DEFAULT_HOST_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a host renews its lease and tells its clients it is alive: often enough that a
/// host under load misses several beats before its clients give up on it.
pub fn heartbeat_interval(host_timeout: Duration) -> Duration {
  // A timer's period may not be zero.
  (host_timeout / 10).max(Duration::from_millis(1))
}

/// How long a check keeps a host's right to order: longer than two heartbeats, so a host that
/// runs renews before it lapses, and short, since a new host of the next epoch waits this long.
pub fn lease_length(host_timeout: Duration) -> Duration {
  host_timeout / 4
}

/// How long a host may go without a check before it steps down even though no next epoch exists
/// yet: its clients may be taking over, and what it ordered or welcomed then could be hidden from
/// the new host (a client it welcomed brings only what came after). Well before `hostTimeout`,
/// after which they may.
pub fn stale_after(host_timeout: Duration) -> Duration {
  host_timeout * 3 / 4
}

/// What a check at `checked` does to a lease last checked at `last`: `Some(until)`, the lease
/// runs until then; `None`, the host is fenced.
pub fn renewal(
  host_timeout: Duration,
  last: Duration,
  checked: Duration,
  next_exists: bool,
) -> Option<Duration> {
  let stale = checked.saturating_sub(last) >= stale_after(host_timeout);
  (!next_exists && !stale).then(|| checked + lease_length(host_timeout))
}

/// A client's view of its host's liveness, on its own monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Silence {
  timeout: Duration,
  heard: Duration,
}

impl Silence {
  /// Heard from the host at `now`.
  pub fn new(timeout: Duration, now: Duration) -> Silence {
    Silence {
      timeout,
      heard: now,
    }
  }

  /// Heard from the host (any frame) at `now`.
  pub fn heard(&mut self, now: Duration) {
    self.heard = self.heard.max(now);
  }

  /// `None`: silent for the whole timeout. Else how much longer to wait before asking again.
  pub fn remaining(&self, now: Duration) -> Option<Duration> {
    let silent_until = self.heard + self.timeout;
    (now < silent_until).then(|| silent_until - now)
  }
}

/// A host's right to order patches in its epoch. Shared by the tasks and the JS thread: the check
/// on the hot path is a clock read and an atomic load.
#[derive(Debug)]
pub struct Lease {
  start: Instant,
  host_timeout: Duration,
  /// Nanoseconds after `start` until which this host may order.
  until: AtomicU64,
  /// Nanoseconds after `start` of the last check that renewed the lease.
  checked: AtomicU64,
  /// The next epoch's lock file: once it exists, this host is fenced.
  next: PathBuf,
  fenced: watch::Sender<bool>,
}

impl Fence for Lease {
  fn holds(&self) -> bool {
    self.hold()
  }
}

impl Lease {
  /// The lease of a host whose next epoch's lock file is `next`, not yet checked.
  pub fn new(next: PathBuf, host_timeout: Duration) -> Lease {
    Lease {
      start: Instant::now(),
      host_timeout,
      until: AtomicU64::new(0),
      checked: AtomicU64::new(0),
      next,
      fenced: watch::Sender::new(false),
    }
  }

  /// The `hostTimeout` this lease is measured against.
  pub fn host_timeout(&self) -> Duration {
    self.host_timeout
  }

  /// Whether this host may order now: within its lease, or after a check that renews it.
  pub fn hold(&self) -> bool {
    let now = self.start.elapsed().as_nanos() as u64;
    now < self.until.load(Ordering::Acquire) || self.renew()
  }

  /// Checks that no next epoch exists and extends the lease from the moment before the check
  /// (a host stopped during the check must not count the stop as checked time), unless the last
  /// check is too old ([`stale_after`]). `false`: fenced, for good.
  pub fn renew(&self) -> bool {
    if *self.fenced.borrow() {
      return false;
    }
    let checked = self.start.elapsed();
    // Anything but "not found" (it exists, or cannot be told) could split the brain.
    let next_exists = !matches!(
      std::fs::symlink_metadata(&self.next),
      Err(err) if err.kind() == io::ErrorKind::NotFound
    );
    let last = Duration::from_nanos(self.checked.load(Ordering::Acquire));
    match renewal(self.host_timeout, last, checked, next_exists) {
      Some(until) => {
        self
          .checked
          .fetch_max(checked.as_nanos() as u64, Ordering::AcqRel);
        self
          .until
          .fetch_max(until.as_nanos() as u64, Ordering::AcqRel);
        true
      }
      None => {
        self.until.store(0, Ordering::Release);
        self.fenced.send_replace(true);
        false
      }
    }
  }

  /// Resolves once this host is fenced.
  pub async fn fenced(&self) {
    let mut fenced = self.fenced.subscribe();
    let _ = fenced.wait_for(|fenced| *fenced).await;
  }

  /// Whether a next epoch fenced this host.
  pub fn is_fenced(&self) -> bool {
    *self.fenced.borrow()
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  const T: Duration = Duration::from_secs(5);
  const fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
  }

  #[test]
  fn a_host_renews_twice_within_a_lease() {
    assert!(lease_length(T) > heartbeat_interval(T) * 2);
    assert!(lease_length(T) < T);
  }

  #[test]
  fn silence_is_counted_from_the_last_frame_heard() {
    let mut silence = Silence::new(T, ms(1000));
    assert_eq!(silence.remaining(ms(1000)), Some(T));
    silence.heard(ms(3000));
    // A late report of an older frame does not move it back.
    silence.heard(ms(2000));
    assert_eq!(silence.remaining(ms(7999)), Some(ms(1)));
    assert_eq!(silence.remaining(ms(8000)), None);
  }

  #[test]
  fn a_check_renews_the_lease_unless_the_next_epoch_exists_or_the_last_check_is_stale() {
    assert_eq!(renewal(T, ms(0), ms(500), false), Some(ms(1750)));
    assert_eq!(renewal(T, ms(0), ms(500), true), None);
    // Stopped for most of hostTimeout: its clients may be replacing it already.
    assert_eq!(renewal(T, ms(1000), ms(4749), false), Some(ms(5999)));
    assert_eq!(renewal(T, ms(1000), ms(4750), false), None);
  }

  #[test]
  fn a_lease_is_renewed_until_the_next_epoch_exists_then_fenced_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let next = dir.path().join("doc~1.lock");
    let lease = Lease::new(next.clone(), T);
    assert!(!lease.is_fenced());
    assert!(lease.hold());
    std::fs::write(&next, b"").unwrap();
    // Within the lease the hot path does not look at the file.
    assert!(lease.hold());
    assert!(!lease.renew());
    assert!(lease.is_fenced());
    assert!(!lease.hold());
    std::fs::remove_file(&next).unwrap();
    assert!(!lease.renew(), "a fenced host stays fenced");
  }
}
