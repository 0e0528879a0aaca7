//! A replica's pending patches (its own, applied to its document, not ordered yet) and the index
//! that lets a patch ordered elsewhere go under them without undoing and redoing them all.
//!
//! A patch R ordered before the pending ones belongs under them: the full rebase undoes every
//! pending patch, applies R and applies them all again, which costs what they cost on every
//! patch received (a writer with 20,000 patches in flight did 20,000 undos and redos for each
//! patch of another writer). When R touches nothing that they touch, the rebase gives the
//! document as it is with R's changes on top, and each pending patch's changes and undo as they
//! are: [`Pending::commutes`] says when, in time that depends on R's changes and not on the
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
//! A patch that must still be decided (a log ordered elsewhere: [`Pending::unwritten`]) is
//! planned on the document with the pending patches when none of them wrote its target paths
//! (cut the same way) or `_id` (which error messages quote): it plans the same changes, or the
//! same error, as on the document without them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use crate::clock::Hlc;
use crate::core::message::RawJson;
use crate::patch::{apply_changes, Change, Context, Key, PatchError, Update};

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
  /// Full rebases after which the index is not rebuilt: doubled (up to [`MAX_SKIP`]) each time a
  /// rebuilt index is found in the way, so that a writer of the same paths as this process's,
  /// patch after patch, does not make every rebase pay for an index it cannot use.
  backoff: u32,
  skip: u32,
  /// Tests: every patch received goes through the full rebase, the reference for the rule.
  #[cfg(test)]
  pub full_rebase_only: bool,
}

impl Default for Pending {
  fn default() -> Pending {
    Pending {
      patches: VecDeque::new(),
      index: Some(Index::default()),
      backoff: 0,
      skip: 0,
      #[cfg(test)]
      full_rebase_only: false,
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

  /// Oldest first.
  pub fn iter(&self) -> impl DoubleEndedIterator<Item = &PendingPatch> {
    self.patches.iter()
  }

  /// Adds the newest, applied on the document as it is.
  pub fn push_back(&mut self, patch: PendingPatch) {
    if let Some(index) = &mut self.index {
      index.count(&patch, true);
    }
    self.patches.push_back(patch);
  }

  /// Removes the oldest: it was ordered on the base it was applied on, which it joins.
  pub fn pop_front(&mut self) -> Option<PendingPatch> {
    let patch = self.patches.pop_front()?;
    if let Some(index) = &mut self.index {
      index.count(&patch, false);
    }
    Some(patch)
  }

  /// Keeps the patches `keep` says to keep.
  pub fn retain(&mut self, mut keep: impl FnMut(&PendingPatch) -> bool) {
    let index = &mut self.index;
    self.patches.retain(|patch| {
      let kept = keep(patch);
      if !kept {
        if let Some(index) = index.as_mut() {
          index.count(patch, false);
        }
      }
      kept
    });
  }

  /// Takes them all, oldest first.
  pub fn take(&mut self) -> VecDeque<PendingPatch> {
    self.index = Some(Index::default());
    std::mem::take(&mut self.patches)
  }

  /// Forgets their local effect: `data` no longer holds it (a new document replaced it).
  pub fn forget_effects(&mut self) {
    self.index = None;
    for patch in &mut self.patches {
      patch.undo = None;
    }
  }

  /// Reverts every pending patch on `data`, newest first; returns the changes that did it.
  pub fn undo(&mut self, data: &mut Value) -> Result<Vec<Change>, String> {
    self.index = None;
    let mut all = Vec::new();
    for patch in self.patches.iter_mut().rev() {
      if let Some(undo) = patch.undo.take() {
        apply_changes(data, &undo)?;
        all.extend(undo);
      }
    }
    Ok(all)
  }

  /// Applies every pending patch again on `data`, oldest first, appending their changes to
  /// `all`. One that no longer applies stays pending without effect: the host decides.
  pub fn redo(&mut self, data: &mut Value, all: &mut Vec<Change>) {
    let mut index = (self.skip == 0).then(Index::default);
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
      if let Some(index) = &mut index {
        index.count(patch, true);
      }
    }
    self.index = index;
  }

  /// Whether `changes`, made by a patch ordered before the pending ones on the document without
  /// them, may be applied on `data` (the document with them) in place of the full rebase, with
  /// the same result (see the module's rule).
  pub fn commutes(&mut self, changes: &[Change], data: &Value) -> bool {
    if self.patches.is_empty() {
      return true;
    }
    let Some(index) = self.usable_index() else {
      return false;
    };
    let commutes = changes.iter().all(|change| {
      if matches!(change, Change::Move { .. }) {
        return false;
      }
      let path = change.path();
      if index.paths.overlaps(cut_keys(path), Use::Touched) {
        return false;
      }
      match change {
        Change::Set { .. } => match created_in(data, path) {
          Some(object) => !index.reshaped.contains_key(&object),
          None => true,
        },
        _ => true,
      }
    });
    self.found(commutes)
  }

  /// Whether `update` may be planned on the document with the pending patches and plan what it
  /// would on the document without them: they wrote none of its target paths, nor `_id`.
  pub fn unwritten(&mut self, update: &Update) -> bool {
    if self.patches.is_empty() {
      return true;
    }
    let Some(index) = self.usable_index() else {
      return false;
    };
    let unwritten = !index.paths.overlaps(["_id"].into_iter(), Use::Written)
      && update
        .targets()
        .all(|target| !index.paths.overlaps(cut_text(target.path), Use::Written));
    self.found(unwritten)
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
}

/// How a path is used.
#[derive(Clone, Copy)]
enum Use {
  /// Read or written.
  Touched,
  Written,
}

/// A component of the tree of paths the pending patches touch.
#[derive(Default)]
struct Node {
  /// Paths that end here: [touched, written].
  here: [usize; 2],
  /// Paths that end here or below: [touched, written].
  below: [usize; 2],
  children: HashMap<String, Node>,
}

impl Node {
  /// Counts `path` in (`add`) or out, as touched, and as written when `written`. A name is
  /// copied only for a new node: this runs for every pending patch made, settled and redone.
  fn count<'p>(&mut self, mut path: impl Iterator<Item = &'p str>, written: bool, add: bool) {
    let uses = if written { 2 } else { 1 };
    let step = |counts: &mut [usize; 2]| {
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
    child.count(path, written, add);
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
}

impl Index {
  /// Counts what `patch` touches in (`add`) or out.
  fn count(&mut self, patch: &PendingPatch, add: bool) {
    let Some(undo) = &patch.undo else {
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
    for target in patch.update.targets() {
      self.paths.count(cut_text(target.path), false, add);
    }
    for change in patch.changes.iter().chain(undo) {
      self.paths.count(cut_keys(change.path()), true, add);
    }
    // A key removed by the patch or by its undo (which removes what the patch created); one
    // inside an array is covered by the array's path.
    for change in patch.changes.iter().chain(undo) {
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
      node.count(cut_text(path), *written, true);
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
    for (path, written) in [("a.b", true), ("a.c", false), ("a.b", false)] {
      node.count(cut_text(path), written, false);
    }
    assert!(node.children.is_empty());
    assert_eq!((node.here, node.below), ([0, 0], [0, 0]));
  }
}
