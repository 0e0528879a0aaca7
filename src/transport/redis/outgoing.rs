//! What a bridge has proposed to the log and must be able to propose again: pure bookkeeping,
//! no Redis (the bridge task does the I/O and tells this what happened).
//!
//! A proposal goes through three states: *queued* (waiting for the next batch), *in flight* (sent
//! in a batch not answered yet) and *placed* (the script gave it a version, or found it in the
//! log already: a resend of a batch whose answer was lost). The newest `keep`
//! placed proposals are kept, even those `WAIT` confirmed: the replica that confirmed one may
//! resynchronize from a new primary that lacks it (a manual failover while the old primary still
//! took writes). After Redis lost entries, everything kept goes back to the queue, in the order
//! first proposed: the script drops what the log still has, so resubmitting is safe.

use std::collections::VecDeque;
use std::sync::Arc;

/// One proposal: its origin's identity and sequence number, and its entry's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposed {
  pub origin: u64,
  pub seq: u64,
  pub payload: Arc<[u8]>,
  /// The log lost this origin's patches before it and nobody holds them any more: the script
  /// places it after the origin's last entry instead of answering a gap again.
  pub skips_gap: bool,
}

/// How the script answered one proposal (see `log::Placed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
  Ordered(u64),
  Duplicate,
  Gap { last: u64 },
}

/// The bridge's proposals, from queued to placed.
#[derive(Debug)]
pub struct Outgoing {
  queued: VecDeque<Proposed>,
  in_flight: Vec<Proposed>,
  /// In the log, in the order placed: ordered by the script, or found there already (a resend
  /// of a batch whose answer was lost, which the log holds since the first sending).
  placed: VecDeque<Proposed>,
  /// How many placed proposals are kept.
  keep: usize,
}

impl Outgoing {
  /// Keeps the newest `keep` placed proposals.
  pub fn new(keep: usize) -> Outgoing {
    Outgoing {
      queued: VecDeque::new(),
      in_flight: Vec::new(),
      placed: VecDeque::new(),
      keep,
    }
  }

  /// Queues a proposal for the next batch.
  pub fn propose(&mut self, proposed: Proposed) {
    self.queued.push_back(proposed);
  }

  /// The next batch, at most `max` proposals, in the order proposed; `None` while one is in
  /// flight (one batch at a time keeps each origin's order) or nothing is queued.
  pub fn next_batch(&mut self, max: usize) -> Option<&[Proposed]> {
    if !self.in_flight.is_empty() || self.queued.is_empty() {
      return None;
    }
    let count = max.min(self.queued.len());
    self.in_flight.extend(self.queued.drain(..count));
    Some(&self.in_flight)
  }

  /// The script's answers to the batch in flight, in its order. A gap means the log lost that
  /// origin's entries after `last` (a failover between two batches): its kept proposals after
  /// `last` and those of the batch go back to the front of the queue, in order; when they do not
  /// start at `last + 1`, the missing ones are lost for good and the first skips the gap. The
  /// others are placed, ordered now or found in the log (both kept for a resubmission).
  pub fn answered(&mut self, answers: &[Answer]) {
    let batch = std::mem::take(&mut self.in_flight);
    let mut again = Vec::new();
    let mut gaps: Vec<(u64, u64)> = Vec::new();
    for (proposed, answer) in batch.into_iter().zip(answers.iter().copied()) {
      match answer {
        Answer::Ordered(_) | Answer::Duplicate => self.placed.push_back(proposed),
        Answer::Gap { last } => {
          if !gaps.iter().any(|&(origin, _)| origin == proposed.origin) {
            gaps.push((proposed.origin, last));
          }
          again.push(proposed);
        }
      }
    }
    while self.placed.len() > self.keep {
      self.placed.pop_front();
    }
    if gaps.is_empty() {
      return;
    }
    let lost = |proposed: &Proposed| {
      gaps
        .iter()
        .any(|&(origin, last)| proposed.origin == origin && proposed.seq > last)
    };
    let (kept, lost_kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.placed)
      .into_iter()
      .partition(|proposed| !lost(proposed));
    self.placed = kept;
    let mut again: Vec<Proposed> = lost_kept.into_iter().chain(again).collect();
    for &(origin, last) in &gaps {
      let first = again.iter_mut().find(|proposed| proposed.origin == origin);
      if let Some(first) = first.filter(|first| first.seq > last + 1) {
        first.skips_gap = true;
      }
    }
    for proposed in again.into_iter().rev() {
      self.queued.push_front(proposed);
    }
  }

  /// The batch in flight was not answered (the connection failed): it is proposed again first.
  pub fn unanswered(&mut self) {
    for proposed in std::mem::take(&mut self.in_flight).into_iter().rev() {
      self.queued.push_front(proposed);
    }
  }

  /// The log lost entries: everything kept is proposed again, in the order first proposed,
  /// before what was queued since.
  pub fn resubmit(&mut self) {
    self.unanswered();
    for proposed in std::mem::take(&mut self.placed).into_iter().rev() {
      self.queued.push_front(proposed);
    }
  }

  /// The document the replica took, up to `taken` (each origin's highest seq in it), becomes the
  /// log's start again (Redis lost the object): proposing what it holds again would apply it
  /// twice, while the placed proposals it does not hold yet (an own patch placed just before the
  /// loss, not read back) are still to be proposed.
  pub fn forget_taken(&mut self, taken: &[(u64, u64)]) {
    let taken: std::collections::HashMap<u64, u64> = taken.iter().copied().collect();
    self.placed.retain(|proposed| {
      taken
        .get(&proposed.origin)
        .is_none_or(|&seq| proposed.seq > seq)
    });
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn proposed(origin: u64, seq: u64) -> Proposed {
    Proposed {
      origin,
      seq,
      payload: Arc::from(format!("{origin}/{seq}").into_bytes()),
      skips_gap: false,
    }
  }

  fn ids(batch: Option<&[Proposed]>) -> Vec<(u64, u64)> {
    batch
      .unwrap_or_default()
      .iter()
      .map(|p| (p.origin, p.seq))
      .collect()
  }

  /// What a resubmission would propose again, leaving `outgoing` as it was otherwise.
  fn kept(outgoing: &Outgoing) -> Vec<(u64, u64)> {
    outgoing.placed.iter().map(|p| (p.origin, p.seq)).collect()
  }

  #[test]
  fn batches_go_one_at_a_time_in_the_order_proposed() {
    let mut outgoing = Outgoing::new(100);
    for seq in 1..=5 {
      outgoing.propose(proposed(1, seq));
    }
    assert_eq!(ids(outgoing.next_batch(3)), [(1, 1), (1, 2), (1, 3)]);
    assert_eq!(ids(outgoing.next_batch(3)), [], "one batch in flight");
    outgoing.answered(&[Answer::Ordered(1), Answer::Ordered(2), Answer::Duplicate]);
    assert_eq!(ids(outgoing.next_batch(3)), [(1, 4), (1, 5)]);
    outgoing.unanswered();
    assert_eq!(
      ids(outgoing.next_batch(3)),
      [(1, 4), (1, 5)],
      "sent again first"
    );
    outgoing.answered(&[Answer::Ordered(3), Answer::Ordered(4)]);
    assert_eq!(ids(outgoing.next_batch(3)), []);
    assert_eq!(
      kept(&outgoing),
      [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5)],
      "a duplicate is in the log too: kept like the others"
    );
  }

  #[test]
  fn a_gap_puts_the_origins_proposals_back_first_in_order() {
    let mut outgoing = Outgoing::new(100);
    for (origin, seq) in [(1, 3), (2, 1), (1, 4)] {
      outgoing.propose(proposed(origin, seq));
    }
    outgoing.next_batch(10);
    outgoing.propose(proposed(2, 2));
    outgoing.answered(&[
      Answer::Gap { last: 1 },
      Answer::Ordered(9),
      Answer::Gap { last: 1 },
    ]);
    let batch = outgoing.next_batch(10).unwrap_or_default();
    assert_eq!(ids(Some(batch)), [(1, 3), (1, 4), (2, 2)]);
    let skipping: Vec<bool> = batch.iter().map(|p| p.skips_gap).collect();
    assert_eq!(
      skipping,
      [true, false, false],
      "nobody holds origin 1's patch 2: its next one skips the gap"
    );
  }

  #[test]
  fn a_gap_brings_back_the_kept_proposals_the_log_lost_before_the_batchs() {
    let mut outgoing = Outgoing::new(100);
    for (origin, seq) in [(1, 1), (1, 2), (2, 1)] {
      outgoing.propose(proposed(origin, seq));
    }
    outgoing.next_batch(10);
    outgoing.answered(&[Answer::Ordered(1), Answer::Ordered(2), Answer::Ordered(3)]);
    // A failover kept only version 1; origin 1's next proposal learns it.
    outgoing.propose(proposed(1, 3));
    outgoing.next_batch(10);
    outgoing.answered(&[Answer::Gap { last: 1 }]);
    let batch = outgoing.next_batch(10).unwrap_or_default();
    assert_eq!(ids(Some(batch)), [(1, 2), (1, 3)]);
    assert!(
      batch.iter().all(|p| !p.skips_gap),
      "the kept proposal fills the gap"
    );
    assert_eq!(
      kept(&outgoing),
      [(1, 1), (2, 1)],
      "other origins are checked apart"
    );
  }

  #[test]
  fn when_the_object_starts_again_from_the_replica_only_what_it_took_is_forgotten() {
    let mut outgoing = Outgoing::new(100);
    for (origin, seq) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
      outgoing.propose(proposed(origin, seq));
    }
    outgoing.next_batch(10);
    let answers: Vec<Answer> = (1..=4).map(Answer::Ordered).collect();
    outgoing.answered(&answers);
    outgoing.forget_taken(&[(1, 2), (2, 1)]);
    assert_eq!(
      kept(&outgoing),
      [(2, 2)],
      "placed, not read back before the loss"
    );
  }

  #[test]
  fn the_newest_placed_proposals_are_resubmitted_after_a_loss() {
    let mut outgoing = Outgoing::new(3);
    for seq in 1..=4 {
      outgoing.propose(proposed(1, seq));
    }
    outgoing.next_batch(10);
    let answers: Vec<Answer> = (1..=4).map(Answer::Ordered).collect();
    outgoing.answered(&answers);
    assert_eq!(
      kept(&outgoing),
      [(1, 2), (1, 3), (1, 4)],
      "only the newest 3"
    );
    outgoing.propose(proposed(1, 5));
    outgoing.resubmit();
    assert_eq!(
      ids(outgoing.next_batch(10)),
      [(1, 2), (1, 3), (1, 4), (1, 5)]
    );
    outgoing.answered(&[
      Answer::Duplicate,
      Answer::Duplicate,
      Answer::Ordered(5),
      Answer::Ordered(6),
    ]);
    assert_eq!(kept(&outgoing), [(1, 3), (1, 4), (1, 5)]);
  }
}
