//! Telling an instance's tasks to stop, and knowing when they all have (mini-redis's
//! `shutdown.rs`).
//!
//! `stop()` in the binding flips a `watch` channel; every task that must notice holds a
//! [`Shutdown`]. A `watch` rather than a broadcast: a `Shutdown` cloned after the signal still
//! sees it. Each `Shutdown` also holds a completion sender, so [`Stopped::wait`] returns once the
//! last task holding one has ended (or was aborted and dropped).

use tokio::sync::{mpsc, watch};

/// One task's view of the instance's stop signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
  signal: watch::Receiver<bool>,
  /// Never sent on: dropped with the task, which is what [`Stopped::wait`] waits for.
  _complete: mpsc::Sender<()>,
}

/// Resolves once every [`Shutdown`] of one instance has been dropped.
#[derive(Debug)]
pub struct Stopped(mpsc::Receiver<()>);

impl Shutdown {
  /// The first `Shutdown` of an instance stopped when `signal` turns true (or its sender is
  /// dropped), and the means to wait for all its clones.
  pub fn new(signal: watch::Receiver<bool>) -> (Shutdown, Stopped) {
    let (complete, completed) = mpsc::channel(1);
    let shutdown = Shutdown {
      signal,
      _complete: complete,
    };
    (shutdown, Stopped(completed))
  }

  /// Whether the instance is stopping.
  pub fn is_shutdown(&self) -> bool {
    *self.signal.borrow() || self.signal.has_changed().is_err()
  }

  /// Resolves once the instance is stopping. Cancel-safe: meant for `tokio::select!`.
  pub async fn recv(&mut self) {
    // An error means the sender is gone: nobody can ask to stop any more, so stop now.
    let _ = self.signal.wait_for(|stop| *stop).await;
  }
}

impl Stopped {
  /// Resolves once every task holding a [`Shutdown`] of this instance has ended.
  pub async fn wait(mut self) {
    // `None` only: nothing is ever sent.
    let _ = self.0.recv().await;
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[tokio::test]
  async fn a_stop_reaches_clones_made_before_and_after_it() {
    let (stop, signal) = watch::channel(false);
    let (mut before, stopped) = Shutdown::new(signal);
    assert!(!before.is_shutdown());
    stop.send_replace(true);
    let mut after = before.clone();
    before.recv().await;
    after.recv().await;
    assert!(after.is_shutdown());
    drop((before, after));
    stopped.wait().await;
  }

  #[tokio::test]
  async fn stopped_waits_for_the_last_task_holding_a_shutdown() {
    let (stop, signal) = watch::channel(false);
    let (shutdown, stopped) = Shutdown::new(signal);
    let (ended, mut ended_rx) = mpsc::unbounded_channel();
    for task in 0..3 {
      let mut shutdown = shutdown.clone();
      let ended = ended.clone();
      tokio::spawn(async move {
        shutdown.recv().await;
        let _ = ended.send(task);
      });
    }
    drop(shutdown);
    stop.send_replace(true);
    stopped.wait().await;
    let mut seen = 0;
    while ended_rx.try_recv().is_ok() {
      seen += 1;
    }
    assert_eq!(seen, 3, "every task ended before wait() returned");
  }

  #[tokio::test]
  async fn a_dropped_signal_stops_too() {
    let (stop, signal) = watch::channel(false);
    let (mut shutdown, _stopped) = Shutdown::new(signal);
    drop(stop);
    shutdown.recv().await;
    assert!(shutdown.is_shutdown());
  }
}
