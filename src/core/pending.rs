//! A replica's pending patches (its own, applied to its document, not ordered yet) and the index
//! that lets a patch ordered elsewhere go under them without undoing and redoing them all.
//!
//! A patch R ordered before the pending ones belongs under them: the full rebase undoes every
//! pending patch, applies R and applies them all again, which costs what they cost on every
//! patch received (a writer with 20,000 patches in flight did 20,000 undos and redos for each
//! patch of another writer). When R touches nothing that they touch, the rebase gives the
//! document as it is with R's changes on top, and each pending patch's changes and undo as they
//! are: [`Pending::put_under`] finds out, in time that depends on R's changes and not on the
//! number of pending patches, and the replica then applies R's changes where it stands.
//!
//! # The rule
//! Paths are compared component by component, cut at their first array index (an index moves
//! when elements are inserted, removed or padded, so anything in an array overlaps anything
//! else in it), and two paths overlap when one is a prefix of the other (`a` and `a.b`). R's
//! changes commute with the pending patches when:
//! 1. every pending patch applied locally (one that failed may apply on top of R) and none of
//!    them renames (`$rename` moves a value between two places), nor does R;
//! 2. no path R's changes write overlaps a path a pending patch reads or writes. A pending
//!    patch reads its update's target paths, cut at their first numeric or `$` component
//!    (planning reads only those paths' ancestors and what lies under them); it writes the paths
//!    of its changes and of its undo (which names the first key it created);
//! 3. no key R's changes create lands in an object to which a pending patch adds a key or from
//!    which it removes one: objects keep their keys in insertion order, and the rebase orders
//!    them otherwise (its redo adds the created key after R's, its undo puts a removed key back
//!    after R's, which is where it stays when the patch is then rejected).
//!
//! Then every pending patch plans on the document with R exactly what it planned without
//! (changes, undo and verdict: its reads are the same), and R's changes and theirs touch
//! disjoint places whose key order agrees, so applying R on top gives the rebase's document.
//! JS gets R's changes alone: its object already holds the pending patches' effects, and the
//! rebase's own undo and redo of them would change nothing there.
//!
//! # Counters
//! Increments of one field overlap on its path, yet they commute. A pending patch's
//! *increment* is a `$inc` by an integer of a field reached by object keys alone that found an
//! integer there: its records are a Set of the new value in its changes and of the old one in
//! its undo, which differ by the increment. Rule 2 lets R's change of a path that pending
//! patches touch through when:
//! 4. they touch the path, any path above it and any below it only by increments of it (so it
//!    holds the ordered value `o` plus their sum), R's change is the Set of an integer `v`, and
//!    `v - fall` and `v + rise` are integers the engine holds (i64 or u64), `rise` and `fall`
//!    being the sums of the positive increments and of the negative ones, negated.
//!
//! The full rebase applies each increment again on `v` plus the increments before it, a sum
//! between `v - fall` and `v + rise`: none overflows, each adds exactly what it added (integer
//! sums are checked, never rounded), and the field ends at its value here shifted by `v - o`,
//! each record at the one here shifted by the same; nothing else reads the field. The replica
//! applies the Set of the shifted value, which JS gets in place of R's change. Left to the full
//! rebase: doubles (their sums depend on the order), a field a pending patch created (R's Set
//! would create it elsewhere in key order), and every other operator.
//!
//! Shifting every increment's records would cost what they number: the field's [`Counter`], in
//! the index, adds up the shifts, and a record catches up when it is read: the oldest pending
//! patch's when it settles (a bridge sends its changes on), all of them before something reads
//! them all (the full rebase's undo, a new host's `take`, a copy of the ordered document) or
//! drops the index.
//!
//! The index counts a patch in when it is first read after the patch was made, not when it is
//! made: a process that awaits each patch has it acknowledged before another's arrives, and
//! counting it in and out was about 7% of its instructions per patch.
//!
//! # Entries still to decide
//! A patch that must still be decided (a log ordered elsewhere: [`Pending::unwritten`]) is
//! planned on the document with the pending patches when none of them wrote its target paths
//! (cut the same way) or `_id` (which error messages quote): it plans the same changes, or the
//! same error, as on the document without them. A target that is a counter whose pending uses
//! are all increments (rule 4) is planned on the counter's ordered value, its value here minus
//! their sum, put in place for the planning: it reads nothing else there.

use std::collections::VecDeque;
use std::sync::Arc;

use foldhash::HashMap;

use crate::clock::Hlc;
use crate::core::message::RawJson;
use crate::doc::Value;
use crate::patch::{
  apply_changes, integer, integer_value, value_at_keys, value_at_keys_mut, Change, Context, Key,
  PatchError, Update,
};

/// The most changes of a patch among which its increments are looked for, pair by pair: a
/// larger patch's increments count as plain writes, which only costs it the fast path.
const MAX_MATCHED: usize = 16;

/// The integers the engine's arithmetic stays within (i64 or u64).
const INTEGERS: std::ops::RangeInclusive<i128> = i64::MIN as i128..=u64::MAX as i128;

/// The most full rebases after which the index is not rebuilt (see `Pending::backoff`): a
/// patch that would commute waits at most this many rebases to be taken without one.
const MAX_SKIP: u32 = 16;

/// An own patch that the host has not ordered yet.
pub(crate) struct PendingPatch {
  pub seq: u64,
  pub hlc: Hlc,
  pub update_text: RawJson,
  pub update: Arc<Update>,
  /// Reverts its local effect; `None` when it could not be applied on the current base (the
  /// host will decide).
  pub undo: Option<Vec<Change>>,
  /// Why it could not be applied on the current base, when it could not.
  pub failure: Option<PatchError>,
  /// Its local effect, which a new host broadcasts when it orders the patch.
  pub changes: Vec<Change>,
}

/// The pending patches, oldest first, with an index of what they touch.
pub(crate) struct Pending {
  patches: VecDeque<PendingPatch>,
  /// What the pending patches touch; `None` while they are undone (their records are being
  /// rewritten, and nothing may go under them but through the full rebase), or when it was not
  /// rebuilt after one (`skip`).
  index: Option<Index>,
  /// How many of the oldest patches the index counts; the newer ones are counted in when it is
  /// next read (see the module's doc).
  counted: usize,
  /// Full rebases after which the index is not rebuilt: doubled (up to [`MAX_SKIP`]) each time a
  /// rebuilt index is found in the way, so that a writer of the same paths as this process's,
  /// patch after patch, does not make every rebase pay for an index it cannot use.
  backoff: u32,
  skip: u32,
  /// Tests: every patch received goes through the full rebase, the reference for the rule.
  #[cfg(test)]
  pub full_rebase_only: bool,
  /// Tests: how many times the pending patches were undone.
  #[cfg(test)]
  pub undone: usize,
}

/// What [`Pending::put_under`] did with a patch ordered before the pending ones.
#[derive(Debug)]
pub enum Under {
  /// Applied where the replica stands, with the changes as made here when some differ (a
  /// counter's Set shifted).
  Applied(Option<Vec<Change>>),
  /// Its changes do not commute with the pending patches: nothing was applied, and the full
  /// rebase must apply it.
  Blocked,
}

impl Default for Pending {
  fn default() -> Pending {
    Pending {
      patches: VecDeque::new(),
      index: Some(Index::default()),
      counted: 0,
      backoff: 0,
      skip: 0,
      #[cfg(test)]
      full_rebase_only: false,
      #[cfg(test)]
      undone: 0,
    }
  }
}

impl Pending {
  /// How many there are.
  pub fn len(&self) -> usize {
    self.patches.len()
  }

  /// Whether there is none.
  pub fn is_empty(&self) -> bool {
    self.patches.is_empty()
  }

  /// The oldest.
  pub fn front(&self) -> Option<&PendingPatch> {
    self.patches.front()
  }

  /// Oldest first. Their `changes` and `undo` may lag behind what patches received since shifted
  /// their counters by (see [`Counter`]): those are read through `pop_front`, `take` or `revert`.
  pub fn iter(&self) -> impl DoubleEndedIterator<Item = &PendingPatch> {
    self.patches.iter()
  }

  /// Adds the newest, applied on the document as it is.
  pub fn push_back(&mut self, patch: PendingPatch) {
    self.patches.push_back(patch);
  }

  /// Removes the oldest: it was ordered on the base it was applied on, which it joins.
  pub fn pop_front(&mut self) -> Option<PendingPatch> {
    let mut patch = self.patches.pop_front()?;
    if self.counted > 0 {
      self.counted -= 1;
      if let Some(index) = &mut self.index {
        index.count(&mut patch, false);
      }
    }
    Some(patch)
  }

  /// Keeps the patches `keep` says to keep.
  pub fn retain(&mut self, mut keep: impl FnMut(&PendingPatch) -> bool) {
    // Up to date, the records of every increment are as far behind (not at all), so any of
    // them may be counted out.
    self.refresh();
    let index = &mut self.index;
    let counted = self.counted;
    let (mut position, mut kept_counted) = (0, 0);
    self.patches.retain_mut(|patch| {
      let was_counted = position < counted;
      position += 1;
      let kept = keep(patch);
      if was_counted {
        if kept {
          kept_counted += 1;
        } else if let Some(index) = index.as_mut() {
          index.count(patch, false);
        }
      }
      kept
    });
    self.counted = kept_counted;
  }

  /// Takes them all, oldest first.
  pub fn take(&mut self) -> VecDeque<PendingPatch> {
    self.refresh();
    self.index = Some(Index::default());
    self.counted = 0;
    std::mem::take(&mut self.patches)
  }

  /// Forgets their local effect: `data` no longer holds it (a new document replaced it).
  pub fn forget_effects(&mut self) {
    self.refresh();
    self.index = None;
    self.counted = 0;
    for patch in &mut self.patches {
      patch.undo = None;
    }
  }

  /// Reverts every pending patch on `data`, newest first; returns the changes that did it.
  pub fn undo(&mut self, data: &mut Value) -> Result<Vec<Change>, String> {
    self.refresh();
    self.index = None;
    self.counted = 0;
    #[cfg(test)]
    {
      self.undone += 1;
    }
    let mut all = Vec::new();
    for patch in self.patches.iter_mut().rev() {
      if let Some(undo) = patch.undo.take() {
        apply_changes(data, &undo)?;
        all.extend(undo);
      }
    }
    Ok(all)
  }

  /// Reverts every pending patch on `data`, a copy of the document, keeping them.
  pub fn revert(&mut self, data: &mut Value) -> Result<(), String> {
    self.refresh();
    for patch in self.patches.iter().rev() {
      if let Some(undo) = &patch.undo {
        apply_changes(data, undo)?;
      }
    }
    Ok(())
  }

  /// Applies every pending patch again on `data`, oldest first, appending their changes to
  /// `all`. One that no longer applies stays pending without effect: the host decides.
  pub fn redo(&mut self, data: &mut Value, all: &mut Vec<Change>) {
    self.index = (self.skip == 0).then(Index::default);
    self.counted = 0;
    self.skip = self.skip.saturating_sub(1);
    for patch in self.patches.iter_mut() {
      let context = Context {
        now_ms: patch.hlc.ms as i64,
      };
      match patch.update.apply_with_undo(data, &context) {
        Ok((changes, undo)) => {
          all.extend(changes.iter().cloned());
          patch.changes = changes;
          patch.undo = Some(undo);
          patch.failure = None;
        }
        Err(err) => {
          patch.changes.clear();
          patch.undo = None;
          patch.failure = Some(err);
        }
      }
    }
  }

  /// Applies `changes`, made by a patch ordered before the pending ones on the document without
  /// them, on `data` (the document with them) in place of the full rebase, when that gives the
  /// same result (see the module's rule): the Set of a counter becomes the Set of its value here
  /// shifted by what it shifts the ordered value by, and the counter notes the shift, which the
  /// pending patches' records catch up on when next read. [`Under::Blocked`] leaves `data` as it
  /// is, for the full rebase.
  pub fn put_under(&mut self, changes: &[Change], data: &mut Value) -> Result<Under, String> {
    if self.patches.is_empty() {
      apply_changes(data, changes)?;
      return Ok(Under::Applied(None));
    }
    self.count_in();
    let Some(index) = self.usable_index() else {
      return Ok(Under::Blocked);
    };
    // Each counter Set's position, shift and value here, decided on `data` before any change.
    let mut shifts = Vec::new();
    let commutes = changes.iter().enumerate().all(|(at, change)| {
      if matches!(change, Change::Move { .. }) {
        return false;
      }
      let path = change.path();
      if index.paths.overlaps(cut_keys(path), Use::Touched) {
        // Only increments of a counter may be in the way, of which a Set shifts the value.
        return match index.shift(change, data) {
          Some((shift, value)) => {
            shifts.push((at, shift, value));
            true
          }
          None => false,
        };
      }
      match change {
        Change::Set { .. } => match created_in(data, path) {
          Some(object) => !index.reshaped.contains_key(&object),
          None => true,
        },
        _ => true,
      }
    });
    if !self.found(commutes) {
      return Ok(Under::Blocked);
    }
    let here = match (&mut self.index, shifts.is_empty()) {
      (Some(index), false) => {
        let mut here = changes.to_vec();
        for (at, shift, value) in shifts {
          let path = changes[at].path();
          if let Some(counter) = index.paths.counter_mut(cut_keys(path)) {
            counter.shifted += shift;
          }
          here[at] = Change::Set {
            path: path.to_vec(),
            value,
          };
        }
        index.behind = true;
        Some(here)
      }
      _ => None,
    };
    apply_changes(data, here.as_deref().unwrap_or(changes))?;
    Ok(Under::Applied(here))
  }

  /// Whether `update` may be planned on the document with the pending patches and plan what it
  /// would on the document without them: they wrote none of its target paths, nor `_id`, or
  /// only increments of a counter it targets. Returns those counters, each with its ordered
  /// value, which [`Pending::swap`] puts in place for the planning.
  pub fn unwritten(&mut self, update: &Update, data: &Value) -> Option<Vec<(Vec<Key>, Value)>> {
    if self.patches.is_empty() {
      return Some(Vec::new());
    }
    self.count_in();
    let index = self.usable_index()?;
    let mut counters = Vec::new();
    let unwritten = !index.paths.overlaps(["_id"].into_iter(), Use::Written)
      && update.targets().all(|target| {
        if !index.paths.overlaps(cut_text(target.path), Use::Written) {
          return true;
        }
        let ordered = plain_keys(target.path).and_then(|path| {
          let counter = index.paths.counter(&path)?;
          let here = integer(value_at_keys(data, &path)?)?;
          Some((path, integer_value(here - counter.total())?))
        });
        match ordered {
          Some(counter) => {
            counters.push(counter);
            true
          }
          None => false,
        }
      });
    self.found(unwritten).then_some(counters)
  }

  /// Swaps the value at each path of `data` with the one held beside it: the counters'
  /// ordered values in place of their values here, and back.
  pub fn swap(data: &mut Value, counters: &mut [(Vec<Key>, Value)]) {
    for (path, value) in counters {
      if let Some(here) = value_at_keys_mut(data, path) {
        std::mem::swap(here, value);
      }
    }
  }

  /// Tests: how many pending patches the index counts, and whether it counts any path.
  #[cfg(test)]
  pub fn counted(&self) -> (usize, bool) {
    let paths = self
      .index
      .as_ref()
      .is_some_and(|index| index.paths.below[0] > 0);
    (self.counted, paths)
  }

  /// Tests: the pending patches' changes and undo, caught up with their counters' shifts.
  #[cfg(test)]
  pub fn records(&self) -> Vec<(Vec<Change>, Option<Vec<Change>>)> {
    let mut seen: HashMap<String, usize> = HashMap::default();
    self
      .patches
      .iter()
      .enumerate()
      .map(|(position, patch)| {
        let (mut changes, mut undo) = (patch.changes.clone(), patch.undo.clone());
        let counted = self.index.as_ref().filter(|_| position < self.counted);
        if let (Some(index), Some(undo)) = (counted, &mut undo) {
          for inc in increments(&patch.update, &changes, undo) {
            let count = seen.entry(inc.path.to_owned()).or_default();
            let behind = index
              .paths
              .node(cut_text(inc.path))
              .and_then(|node| node.counter.as_deref())
              .map_or(0, |counter| counter.behind(*count));
            *count += 1;
            shift_record(&mut changes[inc.change], behind);
            shift_record(&mut undo[inc.undo], behind);
          }
        }
        (changes, undo)
      })
      .collect()
  }

  /// Brings the records of every increment up to date with its counter (see [`Counter`]),
  /// before something reads them all or drops the index that knows how far behind they are.
  fn refresh(&mut self) {
    let Some(index) = self.index.as_mut().filter(|index| index.behind) else {
      return;
    };
    for patch in self.patches.iter_mut().take(self.counted) {
      let Some(undo) = &mut patch.undo else {
        continue;
      };
      let update = Arc::clone(&patch.update);
      for inc in increments(&update, &patch.changes, undo) {
        let Some(counter) = index.paths.counter_mut(cut_text(inc.path)) else {
          continue;
        };
        // Taken out as the oldest and put back as the newest, up to date: one turn of the
        // walk takes every increment out once, oldest first, as the runs hold them.
        let behind = counter.take(inc.by);
        counter.add(inc.by);
        shift_record(&mut patch.changes[inc.change], behind);
        shift_record(&mut undo[inc.undo], behind);
      }
    }
    index.behind = false;
  }

  /// Counts in the patches the index does not count yet, before it is read.
  fn count_in(&mut self) {
    let Some(index) = &mut self.index else {
      return;
    };
    for patch in self.patches.iter_mut().skip(self.counted) {
      index.count(patch, true);
    }
    self.counted = self.patches.len();
  }

  /// Notes what the index said (`clear`: the patch may go under the pending ones), and says it.
  fn found(&mut self, clear: bool) -> bool {
    if clear {
      self.backoff = 0;
    } else {
      self.backoff = (self.backoff * 2).clamp(1, MAX_SKIP);
      self.skip = self.backoff;
    }
    clear
  }

  /// The index, when it describes every pending patch.
  fn usable_index(&self) -> Option<&Index> {
    #[cfg(test)]
    if self.full_rebase_only {
      return None;
    }
    self.index.as_ref().filter(|index| index.opaque == 0)
  }
}

/// What the applied pending patches touch, counted so that a settled patch is taken out.
#[derive(Default)]
struct Index {
  paths: Node,
  /// Each object (by its path) to which pending patches add keys or from which they remove
  /// some, and how many such changes there are.
  reshaped: HashMap<Vec<String>, usize>,
  /// Pending patches whose effect the index does not describe: failed locally, or renaming.
  opaque: usize,
  /// Whether some records lag behind their counter's shifts.
  behind: bool,
}

/// How a path is used.
#[derive(Clone, Copy)]
enum Use {
  /// Read or written.
  Touched,
  Written,
  /// Written by an increment of an integer (see [`Counter`]).
  Incremented,
}

/// A component of the tree of paths the pending patches touch.
#[derive(Default)]
struct Node {
  /// Paths that end here: [touched, written, incremented].
  here: [usize; 3],
  /// Paths that end here or below: [touched, written, incremented].
  below: [usize; 3],
  children: HashMap<String, Node>,
  /// The increments of this path, while there are some.
  counter: Option<Box<Counter>>,
}

/// The pending patches' increments of one field (see the module's rule 4): what bounds their
/// sums, and how far their records lag behind the Sets received under them.
#[derive(Default)]
struct Counter {
  /// The sum of the positive increments, and of the negative ones negated.
  rise: i128,
  fall: i128,
  /// What Sets received under the increments have shifted the field by, in all.
  shifted: i128,
  /// The increments, oldest first, in runs whose records take into account the same part of
  /// `shifted` (it was that much when they were made or last caught up): a record is behind
  /// by what `shifted` gained since.
  runs: VecDeque<(i128, usize)>,
}

impl Counter {
  /// The sum of the increments.
  fn total(&self) -> i128 {
    self.rise - self.fall
  }

  /// Counts in the newest increment, by `by`, with its records up to date.
  fn add(&mut self, by: i128) {
    if by > 0 {
      self.rise += by;
    } else {
      self.fall -= by;
    }
    match self.runs.back_mut() {
      Some((mark, count)) if *mark == self.shifted => *count += 1,
      _ => self.runs.push_back((self.shifted, 1)),
    }
  }

  /// Counts out the oldest increment, by `by`; returns how far its records are behind.
  fn take(&mut self, by: i128) -> i128 {
    if by > 0 {
      self.rise -= by;
    } else {
      self.fall += by;
    }
    let Some((mark, count)) = self.runs.front_mut() else {
      return 0;
    };
    let behind = self.shifted - *mark;
    *count -= 1;
    if *count == 0 {
      self.runs.pop_front();
    }
    behind
  }

  /// Tests: how far the records of the increment at `position` (oldest first) are behind.
  #[cfg(test)]
  fn behind(&self, mut position: usize) -> i128 {
    for (mark, count) in &self.runs {
      if position < *count {
        return self.shifted - mark;
      }
      position -= count;
    }
    0
  }
}

impl Node {
  /// Counts `path` in (`add`) or out, as `used` (an increment is also written, and what is
  /// written is also touched). A name is copied only for a new node: this runs for every
  /// pending patch made, settled and redone.
  fn count<'p>(&mut self, mut path: impl Iterator<Item = &'p str>, used: Use, add: bool) {
    let uses = used as usize + 1;
    let step = |counts: &mut [usize; 3]| {
      for count in &mut counts[..uses] {
        if add {
          *count += 1;
        } else {
          *count -= 1;
        }
      }
    };
    step(&mut self.below);
    let Some(first) = path.next() else {
      step(&mut self.here);
      return;
    };
    if add && !self.children.contains_key(first) {
      self.children.insert(first.to_owned(), Node::default());
    }
    let Some(child) = self.children.get_mut(first) else {
      return;
    };
    child.count(path, used, add);
    if child.below[0] == 0 {
      self.children.remove(first);
    }
  }

  /// Whether a path counted as `used` overlaps `path`: is a prefix of it, or has it as prefix.
  fn overlaps<'p>(&self, path: impl Iterator<Item = &'p str>, used: Use) -> bool {
    let slot = used as usize;
    let mut node = self;
    for part in path {
      if node.here[slot] > 0 {
        return true;
      }
      match node.children.get(part) {
        Some(child) => node = child,
        None => return false,
      }
    }
    node.below[slot] > 0
  }

  /// Tests: the node of `path`, when one is counted.
  #[cfg(test)]
  fn node<'p>(&self, mut path: impl Iterator<Item = &'p str>) -> Option<&Node> {
    path.try_fold(self, |node, part| node.children.get(part))
  }

  /// The node of `path`, to change, when one is counted.
  fn node_mut<'p>(&mut self, mut path: impl Iterator<Item = &'p str>) -> Option<&mut Node> {
    path.try_fold(self, |node, part| node.children.get_mut(part))
  }

  /// The counter of `path`.
  fn counter_mut<'p>(&mut self, path: impl Iterator<Item = &'p str>) -> Option<&mut Counter> {
    self.node_mut(path)?.counter.as_deref_mut()
  }

  /// The counter of `path` (object keys only), when its increments are all that the pending
  /// patches do to it, to a path above it or to one below it.
  fn counter(&self, path: &[Key]) -> Option<&Counter> {
    let mut node = self;
    for key in path {
      let Key::Field(name) = key else {
        return None;
      };
      if node.here[0] > 0 {
        return None;
      }
      node = node.children.get(name)?;
    }
    let only_increments = node.here[0] == node.here[2] && node.below[0] == node.here[0];
    node.counter.as_deref().filter(|_| only_increments)
  }
}

/// A pending patch's increment of an integer (see [`Counter`]): its path as written, where its
/// changes and its undo hold it, and by how much.
struct Increment<'u> {
  path: &'u str,
  change: usize,
  undo: usize,
  by: i128,
}

/// The increments of a patch that applied, with `changes` and `undo`: each `$inc` by an
/// integer of a field reached by object keys alone, whose records are Sets of integers that
/// differ by it (so the field was there, an integer).
fn increments<'u>(update: &'u Update, changes: &[Change], undo: &[Change]) -> Vec<Increment<'u>> {
  if changes.len() > MAX_MATCHED {
    return Vec::new();
  }
  let set_at = |records: &[Change], path: &str| {
    records
      .iter()
      .enumerate()
      .find_map(|(at, record)| match record {
        Change::Set { path: keys, value } if same_path(keys, path) => Some((at, integer(value)?)),
        _ => None,
      })
  };
  update
    .integer_increments()
    .filter(|(path, _)| plain(path))
    .filter_map(|(path, by)| {
      let (change, new) = set_at(changes, path)?;
      let (undo, old) = set_at(undo, path)?;
      (new - old == by).then_some(Increment {
        path,
        change,
        undo,
        by,
      })
    })
    .collect()
}

impl Index {
  /// Counts what `patch` touches in (`add`) or out; counting out an increment brings its
  /// records up to date, as its patch is the oldest of the counter's (see `Pending::retain`).
  fn count(&mut self, patch: &mut PendingPatch, add: bool) {
    let Some(undo) = &mut patch.undo else {
      self.count_opaque(add);
      return;
    };
    let renames = |changes: &[Change]| {
      changes
        .iter()
        .any(|change| matches!(change, Change::Move { .. }))
    };
    if renames(&patch.changes) || renames(undo) {
      self.count_opaque(add);
      return;
    }
    let update = Arc::clone(&patch.update);
    let increments = increments(&update, &patch.changes, undo);
    for target in update.targets() {
      if !increments.iter().any(|inc| inc.path == target.path) {
        self.paths.count(cut_text(target.path), Use::Touched, add);
      }
    }
    for (at, change) in patch.changes.iter().enumerate() {
      if !increments.iter().any(|inc| inc.change == at) {
        self.paths.count(cut_keys(change.path()), Use::Written, add);
      }
    }
    for (at, change) in undo.iter().enumerate() {
      if !increments.iter().any(|inc| inc.undo == at) {
        self.paths.count(cut_keys(change.path()), Use::Written, add);
      }
    }
    for inc in &increments {
      let path = || cut_text(inc.path);
      if add {
        self.paths.count(path(), Use::Incremented, true);
        if let Some(node) = self.paths.node_mut(path()) {
          node.counter.get_or_insert_default().add(inc.by);
        }
      } else {
        let mut behind = 0;
        if let Some(node) = self.paths.node_mut(path()) {
          if let Some(counter) = &mut node.counter {
            behind = counter.take(inc.by);
            if counter.runs.is_empty() {
              node.counter = None;
            }
          }
        }
        shift_record(&mut patch.changes[inc.change], behind);
        shift_record(&mut undo[inc.undo], behind);
        self.paths.count(path(), Use::Incremented, false);
      }
    }
    // A key removed by the patch or by its undo (which removes what the patch created); one
    // inside an array is covered by the array's path.
    for change in patch.changes.iter().chain(undo.iter()) {
      let Change::Unset { path } = change else {
        continue;
      };
      let Some(object) = path
        .split_last()
        .and_then(|(_, parent)| field_names(parent))
      else {
        continue;
      };
      if add {
        *self.reshaped.entry(object).or_default() += 1;
      } else if let Some(count) = self.reshaped.get_mut(&object) {
        *count -= 1;
        if *count == 0 {
          self.reshaped.remove(&object);
        }
      }
    }
  }

  fn count_opaque(&mut self, add: bool) {
    if add {
      self.opaque += 1;
    } else {
      self.opaque -= 1;
    }
  }

  /// When `change` is the Set of a counter to an integer under which its increments all still
  /// apply: by how much it shifts the field, and the field's value here after it.
  fn shift(&self, change: &Change, data: &Value) -> Option<(i128, Value)> {
    let Change::Set { path, value } = change else {
      return None;
    };
    let counter = self.paths.counter(path)?;
    let (set, here) = (integer(value)?, integer(value_at_keys(data, path)?)?);
    let fits = INTEGERS.contains(&(set - counter.fall)) && INTEGERS.contains(&(set + counter.rise));
    let shift = set - (here - counter.total());
    fits.then(|| Some((shift, integer_value(here + shift)?)))?
  }
}

/// Shifts a record of an increment (the Set of an integer) by `by`, which keeps it an integer
/// (a counter shifts only while every sum stays one).
fn shift_record(record: &mut Change, by: i128) {
  if by == 0 {
    return;
  }
  if let Change::Set { value, .. } = record {
    let shifted = integer(value).and_then(|n| integer_value(n + by));
    debug_assert!(shifted.is_some(), "a shifted record left the integers");
    if let Some(shifted) = shifted {
      *value = shifted;
    }
  }
}

/// Whether the concrete `keys` are the object keys of the dotted `path`.
fn same_path(keys: &[Key], path: &str) -> bool {
  let mut parts = path.split('.');
  keys
    .iter()
    .all(|key| matches!(key, Key::Field(name) if parts.next() == Some(name.as_str())))
    && parts.next().is_none()
}

/// Whether a dotted update path names object keys alone (nothing that may index an array, nor
/// an operator).
fn plain(path: &str) -> bool {
  cut_text(path).count() == path.split('.').count()
}

/// The keys of a dotted update path that names object keys alone.
fn plain_keys(path: &str) -> Option<Vec<Key>> {
  plain(path).then(|| {
    cut_text(path)
      .map(|part| Key::Field(part.to_owned()))
      .collect()
  })
}

/// The object keys of `path` up to its first array index.
fn cut_keys(path: &[Key]) -> impl Iterator<Item = &str> {
  path.iter().map_while(|key| match key {
    Key::Field(name) => Some(name.as_str()),
    Key::Index(_) => None,
  })
}

/// The components of a dotted update path up to the first that may index an array (numeric)
/// or is an operator (`$[]`; `$`-prefixed names are cut too, which only widens the path).
fn cut_text(path: &str) -> impl Iterator<Item = &str> {
  path
    .split('.')
    .take_while(|part| !part.starts_with('$') && !part.bytes().all(|byte| byte.is_ascii_digit()))
}

/// The names of `path`, when it has no array index.
fn field_names(path: &[Key]) -> Option<Vec<String>> {
  path
    .iter()
    .map(|key| match key {
      Key::Field(name) => Some(name.clone()),
      Key::Index(_) => None,
    })
    .collect()
}

/// The object in which a `Set` of `path` on `data` creates a key (the parent of the first
/// missing one), when it creates one outside any array.
fn created_in(data: &Value, path: &[Key]) -> Option<Vec<String>> {
  let mut node = data;
  for (depth, key) in path.iter().enumerate() {
    let next = match (node, key) {
      (Value::Object(map), Key::Field(name)) => map.get(name),
      (Value::Array(items), Key::Index(index)) => items.get(*index),
      _ => None,
    };
    match next {
      Some(value) => node = value,
      None => return field_names(&path[..depth]),
    }
  }
  None
}

#[cfg(test)]
mod tests {
  use super::*;

  fn paths(entries: &[(&str, bool)]) -> Node {
    let mut node = Node::default();
    for (path, written) in entries {
      let used = if *written { Use::Written } else { Use::Touched };
      node.count(cut_text(path), used, true);
    }
    node
  }

  #[test]
  fn a_path_overlaps_its_prefixes_and_what_lies_under_it() {
    let node = paths(&[("a.b", true), ("c", false)]);
    for (path, touched, written) in [
      ("a", true, true),
      ("a.b", true, true),
      ("a.b.c", true, true),
      ("a.c", false, false),
      ("ab", false, false),
      ("c", true, false),
      ("c.d", true, false),
      ("d", false, false),
    ] {
      assert_eq!(
        node.overlaps(cut_text(path), Use::Touched),
        touched,
        "{path}"
      );
      assert_eq!(
        node.overlaps(cut_text(path), Use::Written),
        written,
        "{path}"
      );
    }
  }

  #[test]
  fn paths_are_cut_at_the_first_array_index_or_operator() {
    let cut = |path| cut_text(path).collect::<Vec<_>>();
    assert_eq!(cut("a.b.0.c"), ["a", "b"]);
    assert_eq!(cut("a.$[].c"), ["a"]);
    assert_eq!(cut("a.$b"), ["a"]);
    let keys = [
      Key::Field("a".into()),
      Key::Index(2),
      Key::Field("b".into()),
    ];
    assert_eq!(cut_keys(&keys).collect::<Vec<_>>(), ["a"]);
  }

  #[test]
  fn counted_out_paths_leave_nothing_behind() {
    let mut node = paths(&[("a.b", true), ("a.c", false), ("a.b", false)]);
    for (path, used) in [
      ("a.b", Use::Written),
      ("a.c", Use::Touched),
      ("a.b", Use::Touched),
    ] {
      node.count(cut_text(path), used, false);
    }
    assert!(node.children.is_empty());
    assert_eq!((node.here, node.below), ([0; 3], [0; 3]));
  }
}
