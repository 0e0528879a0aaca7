//! The last ordered entries a replica keeps, for a new host that may have missed them after a
//! failover (`Message::Catchup`), within a bound on their number and on their updates' bytes.
//!
//! The updates' texts are kept end to end in one buffer instead of one block each: every patch
//! a replica receives adds an entry and forgets the oldest, and freeing a block allocated
//! thousands of patches earlier (cold in the cache, often by another thread) cost about a tenth
//! of a client's receive path (docs/benchmarks.md). Now the received text's block is freed
//! while still hot, and the buffer's front is dropped in bulk.

use std::collections::VecDeque;

use crate::clock::Hlc;
use crate::core::message::{LogEntry, RawJson};

/// An entry without its text, which is `texts[at..at + len]` of its [`Recent`].
#[derive(Debug, Clone, Copy)]
struct Kept {
  version: u64,
  origin: u64,
  seq: u64,
  hlc: Hlc,
  at: usize,
  len: usize,
}

/// The last ordered entries, oldest first, at most `max_entries` of them holding at most
/// `max_bytes` of update text.
#[derive(Debug)]
pub struct Recent {
  entries: VecDeque<Kept>,
  /// The texts of `entries` in order, after `start` bytes of forgotten ones.
  texts: String,
  start: usize,
  max_entries: usize,
  max_bytes: usize,
}

impl Recent {
  /// An empty log with these bounds.
  pub fn new(max_entries: usize, max_bytes: usize) -> Recent {
    Recent {
      entries: VecDeque::new(),
      texts: String::new(),
      start: 0,
      max_entries,
      max_bytes,
    }
  }

  /// Appends an entry, forgetting the oldest past the bounds. An update longer than
  /// `max_bytes` is kept alone, as the newest entry always is.
  pub fn push(&mut self, version: u64, origin: u64, seq: u64, hlc: Hlc, text: &str) {
    while !self.entries.is_empty()
      && (self.entries.len() >= self.max_entries || self.bytes() + text.len() > self.max_bytes)
    {
      self.pop_front();
    }
    self.compact();
    self.entries.push_back(Kept {
      version,
      origin,
      seq,
      hlc,
      at: self.texts.len(),
      len: text.len(),
    });
    self.texts.push_str(text);
  }

  /// The version, origin and seq of the newest entry.
  pub fn last(&self) -> Option<(u64, u64, u64)> {
    self
      .entries
      .back()
      .map(|kept| (kept.version, kept.origin, kept.seq))
  }

  /// Copies of the entries `keep(origin, seq)` selects, oldest first.
  pub fn select(&self, keep: impl Fn(u64, u64) -> bool) -> Vec<LogEntry> {
    self
      .entries
      .iter()
      .filter(|kept| keep(kept.origin, kept.seq))
      .filter_map(|kept| {
        // A text that is not JSON (a host's bug, see `JsonText`) is left out: the new host
        // could not order it either.
        let text = &self.texts[kept.at..kept.at + kept.len];
        let update = RawJson::parse(text.to_owned()).ok()?;
        Some(LogEntry {
          version: kept.version,
          origin: kept.origin,
          seq: kept.seq,
          hlc: kept.hlc,
          update,
        })
      })
      .collect()
  }

  /// Forgets every entry.
  pub fn clear(&mut self) {
    self.entries.clear();
    self.texts.clear();
    self.start = 0;
  }

  fn bytes(&self) -> usize {
    self.texts.len() - self.start
  }

  fn pop_front(&mut self) {
    if let Some(oldest) = self.entries.pop_front() {
      self.start = oldest.at + oldest.len;
    }
    if self.entries.is_empty() {
      self.clear();
    }
  }

  /// Moves the live texts to the front of the buffer once the forgotten ones are the larger
  /// part, so that the buffer stays within twice the live bytes, each byte moved about once.
  fn compact(&mut self) {
    if self.start == 0 || self.start < self.bytes() {
      return;
    }
    self.texts.drain(..self.start);
    for kept in &mut self.entries {
      kept.at -= self.start;
    }
    self.start = 0;
  }
}

#[cfg(test)]
mod tests {
  use serde_json::json;

  use super::*;

  fn update(n: usize) -> RawJson {
    RawJson::to(&json!({ "$set": { "n": "x".repeat(n) } })).unwrap()
  }

  fn versions(recent: &Recent) -> Vec<u64> {
    recent
      .select(|_, _| true)
      .iter()
      .map(|entry| entry.version)
      .collect()
  }

  #[test]
  fn keeps_the_newest_entries_within_their_number() {
    let mut recent = Recent::new(3, 1 << 20);
    for version in 1..=10 {
      recent.push(
        version,
        7,
        version,
        Hlc::default(),
        update(version as usize).get(),
      );
    }
    assert_eq!(versions(&recent), [8, 9, 10]);
    assert_eq!(recent.last(), Some((10, 7, 10)));
    let entries = recent.select(|_, seq| seq != 9);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].update, update(10));
    assert_eq!(entries[1].hlc, Hlc::default());
  }

  #[test]
  fn keeps_the_newest_entries_within_their_bytes_and_moves_each_text_about_once() {
    let size = update(10).get().len();
    let mut recent = Recent::new(1000, 3 * size);
    for version in 1..=1000 {
      recent.push(version, 1, version, Hlc::default(), update(10).get());
      assert!(recent.texts.len() <= 2 * 3 * size, "{}", recent.texts.len());
    }
    assert_eq!(versions(&recent), [998, 999, 1000]);
    for entry in recent.select(|_, _| true) {
      assert_eq!(entry.update, update(10));
    }
  }

  #[test]
  fn an_update_larger_than_the_bound_is_kept_alone() {
    let mut recent = Recent::new(10, 100);
    recent.push(1, 1, 1, Hlc::default(), update(10).get());
    recent.push(2, 1, 2, Hlc::default(), update(200).get());
    assert_eq!(versions(&recent), [2]);
    recent.push(3, 1, 3, Hlc::default(), update(10).get());
    assert_eq!(versions(&recent), [3]);
  }
}
