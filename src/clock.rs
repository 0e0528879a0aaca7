//! Time, injected: the hybrid logical clock that stamps every patch, and the wall clock that
//! feeds it. Pure parts take `now_ms` as an argument; only [`Time::wall`] reads the system clock,
//! so tests drive replicas with a clock of their own.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A hybrid logical clock timestamp: wall-clock milliseconds plus a counter that orders events
/// within one millisecond (or while the wall clock stands still or goes backwards).
///
/// The derived order is by `(ms, counter)`. On the wire it is the array `[ms, counter]`.
#[derive(
  Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(from = "(u64, u32)", into = "(u64, u32)")]
pub struct Hlc {
  /// Milliseconds since the Unix epoch, as far as this clock knows.
  pub ms: u64,
  /// Orders timestamps that share `ms`.
  pub counter: u32,
}

impl From<(u64, u32)> for Hlc {
  fn from((ms, counter): (u64, u32)) -> Self {
    Hlc { ms, counter }
  }
}

impl From<Hlc> for (u64, u32) {
  fn from(hlc: Hlc) -> Self {
    (hlc.ms, hlc.counter)
  }
}

impl Hlc {
  /// The timestamp of a local event that follows `self`, given the wall clock `now_ms`.
  pub fn tick(self, now_ms: u64) -> Hlc {
    if now_ms > self.ms {
      Hlc {
        ms: now_ms,
        counter: 0,
      }
    } else {
      self.successor()
    }
  }

  /// The timestamp of receiving `remote` when the local clock last read `self`: later than both.
  pub fn observe(self, remote: Hlc, now_ms: u64) -> Hlc {
    self.max(remote).tick(now_ms)
  }

  /// The smallest timestamp after `self` in the same millisecond; when the counter is exhausted
  /// it borrows the next millisecond rather than wrapping, which would break monotonicity.
  fn successor(self) -> Hlc {
    match self.counter.checked_add(1) {
      Some(counter) => Hlc {
        ms: self.ms,
        counter,
      },
      None => Hlc {
        ms: self.ms.saturating_add(1),
        counter: 0,
      },
    }
  }
}

/// A process's hybrid logical clock: the last timestamp it issued or observed.
///
/// Time is injected (`now_ms`) so the clock stays pure and testable; the caller reads the wall
/// clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
  last: Hlc,
}

impl Clock {
  /// A clock that has seen nothing yet.
  pub fn new() -> Clock {
    Clock::default()
  }

  /// The last timestamp issued or observed.
  pub fn last(&self) -> Hlc {
    self.last
  }

  /// A fresh timestamp for a local event, strictly after every earlier one even if the wall clock
  /// went backwards.
  pub fn now(&mut self, now_ms: u64) -> Hlc {
    self.last = self.last.tick(now_ms);
    self.last
  }

  /// Records a timestamp received from another process, so that later local timestamps follow it;
  /// returns the timestamp of the receipt.
  pub fn observe(&mut self, remote: &Hlc, now_ms: u64) -> Hlc {
    self.last = self.last.observe(*remote, now_ms);
    self.last
  }
}

/// Where an instance reads the time: the wall clock, or a test's.
#[derive(Clone)]
pub struct Time(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Time {
  /// The system's wall clock, in epoch milliseconds.
  pub fn wall() -> Time {
    Time(Arc::new(now_ms))
  }

  /// A clock that reads `now` (tests).
  pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Time {
    Time(Arc::new(now))
  }

  /// Epoch milliseconds now.
  pub fn now_ms(&self) -> u64 {
    (self.0)()
  }
}

/// Wall-clock epoch milliseconds, the physical part of the hybrid logical clock.
pub fn now_ms() -> u64 {
  SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
  use super::*;

  fn hlc(ms: u64, counter: u32) -> Hlc {
    Hlc { ms, counter }
  }

  #[test]
  fn hlc_orders_by_ms_then_counter() {
    assert!(hlc(1, 5) < hlc(2, 0));
    assert!(hlc(2, 0) < hlc(2, 1));
    assert_eq!(hlc(3, 3).max(hlc(3, 4)), hlc(3, 4));
  }

  #[test]
  fn clock_is_monotonic_when_wall_time_goes_backwards() {
    let mut clock = Clock::new();
    let wall = [100, 100, 101, 50, 50, 0, 101, 102, 90];
    let stamps: Vec<Hlc> = wall.iter().map(|&now| clock.now(now)).collect();
    for pair in stamps.windows(2) {
      assert!(pair[0] < pair[1], "{pair:?}");
    }
    assert_eq!(stamps[0], hlc(100, 0));
    assert_eq!(stamps[1], hlc(100, 1));
    assert_eq!(
      stamps[3],
      hlc(101, 1),
      "a clock going back keeps the last ms"
    );
    assert_eq!(
      stamps[7],
      hlc(102, 0),
      "a wall clock ahead again resets the counter"
    );
    assert_eq!(clock.last(), hlc(102, 1));
  }

  #[test]
  fn clock_counter_overflow_borrows_the_next_millisecond() {
    let mut clock = Clock::new();
    clock.observe(&hlc(5, u32::MAX), 0);
    assert_eq!(clock.last(), hlc(6, 0));
    assert_eq!(clock.now(0), hlc(6, 1));
  }

  #[test]
  fn observing_a_future_remote_moves_ahead() {
    let mut clock = Clock::new();
    clock.now(1_000);
    let remote = hlc(5_000, 7);
    let receipt = clock.observe(&remote, 1_001);
    assert!(receipt > remote);
    assert_eq!(receipt, hlc(5_000, 8));
    assert!(
      clock.now(1_002) > remote,
      "later local events follow the remote"
    );
  }

  #[test]
  fn observing_a_past_remote_follows_the_wall_clock() {
    let mut clock = Clock::new();
    clock.now(1_000);
    assert_eq!(clock.observe(&hlc(10, 3), 2_000), hlc(2_000, 0));
    // Same millisecond everywhere: the counter moves past the larger of the two.
    let mut clock = Clock::new();
    clock.now(3_000);
    assert_eq!(clock.observe(&hlc(3_000, 9), 3_000), hlc(3_000, 10));
  }
}
