//! The ordering rules: what a sequencer decides about each proposed patch, the same wherever it
//! runs (a local host ordering its clients' patches, or every replica reading a shared log).
//!
//! A patch is identified by its origin (the proposing instance) and that origin's sequence
//! number, and stamped with the origin's hybrid clock. In order:
//! 1. **Dedupe**: a patch whose (origin, seq) is already ordered is skipped. After a failover a
//!    client resends what it cannot know was ordered; this makes the resend harmless.
//! 2. **Stale writes**: a patch that overwrites a path (or a parent or child of it) that a
//!    *newer* patch already wrote is refused: the newer write wins, as it would have had both
//!    reached one host in time order. Accumulating operators (`$inc`, `$push`...) never are.
//! 3. **The engine's verdict**: the update is applied all or nothing; an error refuses it.
//!
//! Pure: no I/O, no clock of its own (timestamps come with the patches).

use std::collections::BTreeMap;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use crate::clock::Hlc;
use crate::doc::Value;
use crate::patch::{Change, Context, PatchError, Update};

/// Paths whose last write time is remembered for the stale-write check, before old ones go.
const MAX_WRITE_TIMES: usize = 100_000;
/// Write times younger than this survive the trimming of [`MAX_WRITE_TIMES`].
const WRITE_TIME_WINDOW_MS: u64 = 60_000;

/// What was decided about a proposed patch.
#[derive(Debug)]
pub enum Verdict {
  /// It is ordered, with this version, and changed the document this way.
  Ordered { version: u64, changes: Vec<Change> },
  /// Its (origin, seq) was ordered before: nothing happens.
  Duplicate,
  /// A newer patch wrote this overwritten path first.
  Stale { path: String },
  /// The engine refused it; the document is unchanged.
  Refused(PatchError),
}

/// The rules' state at a version, as a snapshot of a shared log carries it: a replica that starts
/// from it decides the next entries as one that read the whole log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
  pub version: u64,
  /// For each origin, the highest sequence number ordered.
  pub applied: Vec<(u64, u64)>,
  /// When each recently written path was last written (the stale-write window).
  pub write_times: Vec<(String, Hlc)>,
}

/// The state the rules need: the version, each origin's progress and recent write times.
#[derive(Debug, Default)]
pub struct Order {
  version: u64,
  /// For each origin, the highest sequence number ordered: what a snapshot already contains.
  applied: HashMap<u64, u64>,
  /// When each path was last written, for the stale-write check (sequencer only).
  write_times: BTreeMap<String, Hlc>,
}

impl Order {
  /// The version of the last ordered patch (0: none).
  pub fn version(&self) -> u64 {
    self.version
  }

  /// For each origin, the highest sequence number ordered.
  pub fn applied(&self) -> &HashMap<u64, u64> {
    &self.applied
  }

  /// Whether the patch `seq` of `origin` is ordered.
  pub fn is_ordered(&self, origin: u64, seq: u64) -> bool {
    self.applied.get(&origin).is_some_and(|&done| done >= seq)
  }

  /// Starts again from a snapshot at `version` containing `applied`.
  pub fn reset(&mut self, version: u64, applied: HashMap<u64, u64>) {
    self.version = version;
    self.applied = applied;
  }

  /// The state to start another replica from.
  pub fn progress(&self) -> Progress {
    Progress {
      version: self.version,
      applied: self
        .applied
        .iter()
        .map(|(&origin, &seq)| (origin, seq))
        .collect(),
      write_times: self
        .write_times
        .iter()
        .map(|(path, &time)| (path.clone(), time))
        .collect(),
    }
  }

  /// Starts from `progress`, as the replica that wrote it was.
  pub fn from_progress(progress: Progress) -> Order {
    Order {
      version: progress.version,
      applied: progress.applied.into_iter().collect(),
      write_times: progress.write_times.into_iter().collect(),
    }
  }

  /// Starts again from a document at `version` (loaded from a file).
  pub fn set_version(&mut self, version: u64) {
    self.version = version;
  }

  /// Decides a patch proposed by `origin` and applies it to `data` if it is ordered.
  pub fn decide(
    &mut self,
    origin: u64,
    seq: u64,
    hlc: Hlc,
    update: &Update,
    data: &mut Value,
  ) -> Verdict {
    if self.is_ordered(origin, seq) {
      return Verdict::Duplicate;
    }
    if let Some(path) = self.stale_target(update, hlc) {
      return Verdict::Stale { path };
    }
    let context = Context {
      now_ms: hlc.ms as i64,
    };
    match update.apply(data, &context) {
      Ok(changes) => {
        let version = self.accept(origin, seq, hlc, update);
        Verdict::Ordered { version, changes }
      }
      Err(err) => Verdict::Refused(err),
    }
  }

  /// Decides the entry at `version` of a log ordered elsewhere (a Redis stream, where the
  /// ordering script cannot run the engine). Every entry takes its position whatever the verdict,
  /// so that every replica reading the log counts the same versions; a duplicate, stale or
  /// refused entry leaves `data` as it was, and is marked ordered like the others.
  pub fn decide_logged(
    &mut self,
    version: u64,
    origin: u64,
    seq: u64,
    hlc: Hlc,
    update: &Update,
    data: &mut Value,
  ) -> Verdict {
    let verdict = match self.decide(origin, seq, hlc, update, data) {
      Verdict::Ordered { changes, .. } => Verdict::Ordered { version, changes },
      other => other,
    };
    self.mark_ordered(origin, seq);
    self.version = version;
    verdict
  }

  /// Whether `decide_logged` would order this patch were the engine to accept it: not a
  /// duplicate, and no newer write of an overwritten path.
  pub fn admits(&self, origin: u64, seq: u64, hlc: Hlc, update: &Update) -> bool {
    !self.is_ordered(origin, seq) && self.stale_target(update, hlc).is_none()
  }

  /// Orders, at `version` of a log ordered elsewhere, a patch that `admits` let through and the
  /// engine already applied on the current document.
  pub fn accept_logged(&mut self, version: u64, origin: u64, seq: u64, hlc: Hlc, update: &Update) {
    for target in update.targets() {
      self.note_write(target.path, hlc);
    }
    self.mark_ordered(origin, seq);
    self.version = version;
  }

  /// Orders a patch already applied (the sequencer's own, fresh from its clock: nothing can be
  /// newer or a duplicate); returns its version.
  pub fn accept(&mut self, origin: u64, seq: u64, hlc: Hlc, update: &Update) -> u64 {
    let version = self.version + 1;
    self.accept_logged(version, origin, seq, hlc, update);
    version
  }

  /// Records a patch ordered by another sequencer, at `version`.
  pub fn record(&mut self, version: u64, origin: u64, seq: u64) {
    self.version = version;
    self.mark_ordered(origin, seq);
  }

  /// Marks a patch as ordered without ordering it (a stale one brought again after a failover:
  /// it must not be brought a third time).
  pub fn mark_ordered(&mut self, origin: u64, seq: u64) {
    let done = self.applied.entry(origin).or_insert(0);
    *done = (*done).max(seq);
  }

  fn note_write(&mut self, path: &str, hlc: Hlc) {
    let key = comparable_path(path);
    match self.write_times.get_mut(key) {
      Some(time) => *time = (*time).max(hlc),
      None => {
        self.write_times.insert(key.to_owned(), hlc);
      }
    }
    if self.write_times.len() > MAX_WRITE_TIMES {
      let floor = hlc.ms.saturating_sub(WRITE_TIME_WINDOW_MS);
      self.write_times.retain(|_, time| time.ms >= floor);
    }
  }

  /// The first overwriting target of `update` that a patch newer than `hlc` wrote (the path
  /// itself, a parent or a child).
  fn stale_target(&self, update: &Update, hlc: Hlc) -> Option<String> {
    for target in update.targets().filter(|target| target.overwrites) {
      let path = comparable_path(target.path);
      let newer = |key: &str| self.write_times.get(key).is_some_and(|&time| time > hlc);
      // The path itself and each of its parents.
      let mut ends = path.match_indices('.').map(|(index, _)| index);
      if ends.any(|end| newer(&path[..end])) || newer(path) {
        return Some(target.path.to_owned());
      }
      let children = format!("{path}.");
      let child_newer = self
        .write_times
        .range(children.clone()..)
        .take_while(|(key, _)| key.starts_with(&children))
        .any(|(_, &time)| time > hlc);
      if child_newer {
        return Some(target.path.to_owned());
      }
    }
    None
  }
}

/// The part of a path the stale-write check compares: everything before the first `$[]`, which
/// may touch any element.
fn comparable_path(path: &str) -> &str {
  match path.find(".$[") {
    Some(index) => &path[..index],
    None => path,
  }
}

#[cfg(test)]
mod tests {
  use crate::doc::json;

  use super::*;

  #[test]
  fn admitting_and_accepting_a_patch_applied_already_is_deciding_it() {
    let update = |text: &str| Update::parse(&serde_json::from_str(text).unwrap()).unwrap();
    let at = |ms| Hlc { ms, counter: 0 };
    let (mut decided, mut accepted) = (Order::default(), Order::default());
    let mut data = json!({});
    for order in [&mut decided, &mut accepted] {
      order.decide_logged(
        1,
        7,
        1,
        at(100),
        &update(r#"{"$set":{"a":1}}"#),
        &mut data.clone(),
      );
    }
    let fresh = update(r#"{"$set":{"b":1}}"#);
    assert!(matches!(
      decided.decide_logged(2, 8, 1, at(100), &fresh, &mut data),
      Verdict::Ordered { .. }
    ));
    assert!(accepted.admits(8, 1, at(100), &fresh));
    accepted.accept_logged(2, 8, 1, at(100), &fresh);
    assert_eq!(decided.progress().version, accepted.progress().version);
    assert_eq!(
      decided.progress().write_times,
      accepted.progress().write_times
    );
    assert!(!accepted.admits(8, 1, at(100), &fresh), "a duplicate");
    assert!(
      !accepted.admits(9, 1, at(50), &update(r#"{"$set":{"a":2}}"#)),
      "stale"
    );
  }

  #[test]
  fn a_replica_started_from_the_progress_decides_the_next_entries_alike() {
    let update = |text: &str| Update::parse(&serde_json::from_str(text).unwrap()).unwrap();
    let at = |ms| Hlc { ms, counter: 0 };
    let mut data = json!({});
    let mut whole = Order::default();
    whole.decide_logged(1, 7, 1, at(100), &update(r#"{"$set":{"a":1}}"#), &mut data);
    whole.decide_logged(2, 8, 1, at(50), &update(r#"{"$set":{"b":1}}"#), &mut data);
    let mut joined = Order::from_progress(whole.progress());
    let mut joined_data = data.clone();
    // An older overwrite of `a` is stale for both; a resend of 7/1 is a duplicate for both.
    let next = |order: &mut Order, data: &mut Value| {
      let stale = order.decide_logged(3, 9, 1, at(90), &update(r#"{"$set":{"a":2}}"#), data);
      assert!(matches!(stale, Verdict::Stale { .. }), "{stale:?}");
      let again = order.decide_logged(4, 7, 1, at(100), &update(r#"{"$set":{"a":3}}"#), data);
      assert!(matches!(again, Verdict::Duplicate), "{again:?}");
    };
    next(&mut whole, &mut data);
    next(&mut joined, &mut joined_data);
    assert_eq!(data, joined_data);
    let sorted = |mut progress: Progress| {
      progress.applied.sort_unstable();
      progress
    };
    assert_eq!(sorted(whole.progress()), sorted(joined.progress()));
  }

  fn update(value: Value) -> Update {
    Update::parse(&value).unwrap()
  }

  fn at(ms: u64) -> Hlc {
    Hlc { ms, counter: 0 }
  }

  #[test]
  fn a_patch_is_ordered_once() {
    let mut order = Order::default();
    let mut data = json!({ "n": 0 });
    let inc = update(json!({ "$inc": { "n": 1 } }));
    assert!(matches!(
      order.decide(7, 1, at(10), &inc, &mut data),
      Verdict::Ordered { version: 1, .. }
    ));
    assert!(matches!(
      order.decide(7, 1, at(10), &inc, &mut data),
      Verdict::Duplicate
    ));
    assert_eq!(data, json!({ "n": 1 }));
    assert!(order.is_ordered(7, 1) && !order.is_ordered(7, 2));
  }

  #[test]
  fn an_overwrite_older_than_a_write_it_touches_is_stale() {
    let mut order = Order::default();
    let mut data = json!({ "a": { "b": 1 } });
    order.decide(
      1,
      1,
      at(20),
      &update(json!({ "$set": { "a.b": 2 } })),
      &mut data,
    );
    for older in [
      json!({ "$set": { "a.b": 3 } }),
      json!({ "$set": { "a": {} } }),
      json!({ "$unset": { "a.b.c": 1 } }),
    ] {
      assert!(matches!(
        order.decide(2, 1, at(10), &update(older.clone()), &mut data),
        Verdict::Stale { .. }
      ));
    }
    assert_eq!(data, json!({ "a": { "b": 2 } }));
    assert!(matches!(
      order.decide(
        2,
        2,
        at(10),
        &update(json!({ "$inc": { "a.b": 1 } })),
        &mut data
      ),
      Verdict::Ordered { version: 2, .. }
    ));
  }

  #[test]
  fn a_refused_patch_changes_nothing_and_is_not_ordered() {
    let mut order = Order::default();
    let mut data = json!({ "s": "text" });
    let verdict = order.decide(
      1,
      1,
      at(1),
      &update(json!({ "$inc": { "s": 1 } })),
      &mut data,
    );
    assert!(matches!(verdict, Verdict::Refused(_)));
    assert_eq!(data, json!({ "s": "text" }));
    assert_eq!(order.version(), 0);
    assert!(!order.is_ordered(1, 1));
  }

  #[test]
  fn records_of_another_sequencer_set_the_version_and_the_progress() {
    let mut order = Order::default();
    order.record(41, 3, 9);
    assert_eq!(order.version(), 41);
    assert!(order.is_ordered(3, 9));
  }

  #[test]
  fn every_replica_reading_one_log_reaches_the_same_verdicts_and_document() {
    let log = [
      (1, 1, 30, json!({ "$set": { "a": 1 } })),
      (2, 1, 10, json!({ "$set": { "a": 2 } })),
      (2, 2, 40, json!({ "$inc": { "a": 5 } })),
      (1, 1, 30, json!({ "$set": { "a": 1 } })),
      (3, 1, 50, json!({ "$push": { "a": 1 } })),
      (3, 2, 60, json!({ "$set": { "b": { "c": 1 } } })),
    ];
    let replay = || {
      let mut order = Order::default();
      let mut data = json!({});
      let verdicts: Vec<String> = log
        .iter()
        .map(|(origin, seq, ms, value)| {
          let verdict = order.decide(*origin, *seq, at(*ms), &update(value.clone()), &mut data);
          match verdict {
            Verdict::Ordered { version, .. } => format!("ordered {version}"),
            Verdict::Duplicate => "duplicate".to_owned(),
            Verdict::Stale { path } => format!("stale {path}"),
            Verdict::Refused(err) => format!("refused {}", err.kind.code()),
          }
        })
        .collect();
      (verdicts, data)
    };
    let (verdicts, data) = replay();
    assert_eq!(
      verdicts,
      [
        "ordered 1",
        "stale a",
        "ordered 2",
        "duplicate",
        "refused ERR_TYPE_MISMATCH",
        "ordered 3"
      ]
    );
    assert_eq!(data, json!({ "a": 6, "b": { "c": 1 } }));
    assert_eq!(replay(), (verdicts, data));
  }

  #[test]
  fn a_log_ordered_elsewhere_gives_every_entry_its_position_whatever_the_verdict() {
    let log = [
      (1, 1, 30, json!({ "$set": { "a": 1 } })),
      (2, 1, 10, json!({ "$set": { "a": 2 } })),
      (3, 1, 50, json!({ "$push": { "a": 1 } })),
      (2, 2, 40, json!({ "$inc": { "a": 5 } })),
    ];
    let replay = || {
      let mut order = Order::default();
      let mut data = json!({});
      let verdicts: Vec<String> = log
        .iter()
        .zip(1..)
        .map(|((origin, seq, ms, value), version)| {
          match order.decide_logged(
            version,
            *origin,
            *seq,
            at(*ms),
            &update(value.clone()),
            &mut data,
          ) {
            Verdict::Ordered { version, .. } => format!("ordered {version}"),
            Verdict::Duplicate => "duplicate".to_owned(),
            Verdict::Stale { path } => format!("stale {path}"),
            Verdict::Refused(err) => format!("refused {}", err.kind.code()),
          }
        })
        .collect();
      (verdicts, data, order.version(), order.is_ordered(3, 1))
    };
    let (verdicts, data, version, refused_is_ordered) = replay();
    assert_eq!(
      verdicts,
      [
        "ordered 1",
        "stale a",
        "refused ERR_TYPE_MISMATCH",
        "ordered 4"
      ]
    );
    assert_eq!(data, json!({ "a": 6 }));
    assert_eq!(
      version, 4,
      "the log's length, refused and stale entries included"
    );
    assert!(refused_is_ordered, "a refused entry is not brought again");
    assert_eq!(replay(), (verdicts, data, version, refused_is_ordered));
  }
}
