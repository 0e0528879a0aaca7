//! The change description: what an applied update did, in a form that costs what the change
//! costs (not what the document costs), that other replicas replay with [`apply_changes`], and
//! that travels as compact JSON (`["s", path, value]`, `["u", path]`,
//! `["p", path, start, delete, [values...]]`, `["m", from, to]`).

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use crate::doc::{Map, Value};

use super::error::{dotted, type_name};
use super::key::Key;
use super::MAX_PADDING;

/// One step of an applied update, addressed by a concrete path.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
  /// Set the value at `path`. Missing intermediates are created as objects; an array index past
  /// the end pads with null first (so applying Sets in field order reproduces MongoDB's padding).
  Set {
    /// Where to write.
    path: Vec<Key>,
    /// What to write.
    value: Value,
  },
  /// Remove an object key (an $unset inside an array is a `Set` to null instead).
  Unset {
    /// The key to remove.
    path: Vec<Key>,
  },
  /// Edit the existing array at `path`: remove `delete` elements at `start`, insert `insert` there.
  Splice {
    /// The array.
    path: Vec<Key>,
    /// First index removed, and where `insert` goes.
    start: usize,
    /// How many elements to remove.
    delete: usize,
    /// The elements to insert at `start`.
    insert: Vec<Value>,
  },
  /// $rename: take the value at `from` (removing the key) and Set it at `to` (same creation rules
  /// as Set). No clone of the moved value.
  Move {
    /// The key whose value moves.
    from: Vec<Key>,
    /// Where the value goes.
    to: Vec<Key>,
  },
}

impl Change {
  /// The path the change writes (for `Move`, the target).
  pub fn path(&self) -> &[Key] {
    match self {
      Change::Set { path, .. } | Change::Unset { path } | Change::Splice { path, .. } => path,
      Change::Move { to, .. } => to,
    }
  }

  /// Every path the change touches: `Move` gives its source, then its target.
  pub fn paths(&self) -> impl Iterator<Item = &[Key]> {
    let source = match self {
      Change::Move { from, .. } => Some(from.as_slice()),
      _ => None,
    };
    source.into_iter().chain(std::iter::once(self.path()))
  }
}

/// Applies changes produced by `Update::apply` on an identical replica; returns Err (with a
/// message) rather than panicking when the replica does not fit (a peer's bug), but may leave it
/// partially applied in that case.
pub fn apply_changes(doc: &mut Value, changes: &[Change]) -> Result<(), String> {
  commit(doc, changes).map_err(|(i, e)| format!("change {i} does not fit the document: {e}"))
}

/// The most paths [`compact`] tracks at once; past that it merges fewer changes, which is always
/// correct, instead of spending quadratic time.
const MAX_TRACKED: usize = 64;

/// Merges each `Set` into an earlier `Set` of the same path when nothing in between touches that
/// path, a parent or a child of it: the earlier one takes the later value (and keeps its place,
/// so keys are created in the same order). Applying the result gives the same document and
/// touches the same paths as applying them all. A burst of counter increments (each a `Set` of
/// the counter) then reaches JS as one `Set`, and a rebase (undo and redo of the pending patches)
/// costs JS what actually changed.
pub fn compact(changes: Vec<Change>) -> Vec<Change> {
  if changes.len() < 2 {
    return changes;
  }
  // Paths whose last change is a Set, with its index in `kept`.
  let mut last_set: Vec<(Vec<Key>, usize)> = Vec::new();
  let mut kept: Vec<Change> = Vec::with_capacity(changes.len());
  for change in changes {
    if let Change::Set { path, value } = &change {
      if let Some(&(_, index)) = last_set.iter().find(|(set, _)| set == path) {
        if let Change::Set { value: earlier, .. } = &mut kept[index] {
          *earlier = value.clone();
          continue;
        }
      }
    }
    for touched in change.paths() {
      last_set.retain(|(set, _)| !set.starts_with(touched) && !touched.starts_with(set));
    }
    if let Change::Set { path, .. } = &change {
      if last_set.len() < MAX_TRACKED {
        last_set.push((path.clone(), kept.len()));
      }
    }
    kept.push(change);
  }
  kept
}

/// Applies changes in order; on failure, says which one failed and why. The engine commits its
/// own plans through this too, so replicas run exactly the same code.
pub(crate) fn commit(doc: &mut Value, changes: &[Change]) -> Result<(), (usize, String)> {
  let mut i = 0;
  while i < changes.len() {
    let run = removal_run(&changes[i..]);
    if run > 1 {
      remove_runs(doc, &changes[i..i + run]).map_err(|e| (i, e))?;
      i += run;
    } else {
      apply_change(doc, &changes[i]).map_err(|e| (i, e))?;
      i += 1;
    }
  }
  Ok(())
}

/// How many changes from the start are pure removals from one array, each below the previous
/// (what $pull emits). Applied one by one, each would shift the array's tail: quadratic for a
/// scattered $pull on a long array, so such a run is applied in one pass instead.
pub(super) fn removal_run(changes: &[Change]) -> usize {
  let Some(Change::Splice {
    path,
    start: mut floor,
    insert,
    ..
  }) = changes.first()
  else {
    return 0;
  };
  if !insert.is_empty() {
    return 0;
  }
  let mut len = 1;
  for change in &changes[1..] {
    match change {
      Change::Splice {
        path: next,
        start,
        delete,
        insert,
      } if next == path
        && insert.is_empty()
        && start.checked_add(*delete).is_some_and(|end| end <= floor) =>
      {
        floor = *start;
        len += 1;
      }
      _ => break,
    }
  }
  len
}

/// Applies a run found by [`removal_run`] with one `retain` over the array.
fn remove_runs(doc: &mut Value, run: &[Change]) -> Result<(), String> {
  let mut ranges = Vec::with_capacity(run.len());
  let mut array = None;
  for change in run {
    if let Change::Splice {
      path,
      start,
      delete,
      ..
    } = change
    {
      array = Some(path);
      ranges.push((*start, start.saturating_add(*delete)));
    }
  }
  let Some(path) = array else {
    return Ok(());
  };
  let Value::Array(items) = walk(doc, path, false)? else {
    return Err(format!("'{}' is not an array", dotted(path)));
  };
  // The first range is the highest; the others lie below it without overlapping.
  if ranges[0].1 > items.len() {
    return Err(format!(
      "splice up to {} is outside an array of {}",
      ranges[0].1,
      items.len()
    ));
  }
  ranges.reverse();
  let mut index = 0;
  let mut next = ranges.iter().peekable();
  items.retain(|_| {
    while next.peek().is_some_and(|(_, end)| *end <= index) {
      next.next();
    }
    let removed = next
      .peek()
      .is_some_and(|(start, end)| (*start..*end).contains(&index));
    index += 1;
    !removed
  });
  Ok(())
}

/// Applies one change.
fn apply_change(doc: &mut Value, change: &Change) -> Result<(), String> {
  match change {
    Change::Set { path, value } => place(doc, path, value.clone()),
    Change::Unset { path } => take(doc, path).map(drop),
    Change::Splice {
      path,
      start,
      delete,
      insert,
    } => {
      let Value::Array(items) = walk(doc, path, false)? else {
        return Err(format!("'{}' is not an array", dotted(path)));
      };
      let end = start
        .checked_add(*delete)
        .filter(|end| *end <= items.len())
        .ok_or_else(|| {
          format!(
            "splice {start}+{delete} is outside an array of {}",
            items.len()
          )
        })?;
      items.splice(*start..end, insert.iter().cloned());
      Ok(())
    }
    Change::Move { from, to } => {
      let value = take(doc, from)?;
      place(doc, to, value)
    }
  }
}

/// Writes `value` at `path`, creating missing intermediates as objects and padding arrays.
fn place(doc: &mut Value, path: &[Key], value: Value) -> Result<(), String> {
  let Some((last, parents)) = path.split_last() else {
    *doc = value;
    return Ok(());
  };
  // Most writes go into an existing parent, which `find` reaches with one lookup per component
  // instead of the creating walk's two.
  if let Some(parent) = find(doc, parents) {
    return put(parent, last, value);
  }
  put(walk(doc, parents, true)?, last, value)
}

/// Writes `value` under `key` of `parent`.
fn put(parent: &mut Value, key: &Key, value: Value) -> Result<(), String> {
  match (parent, key) {
    (Value::Object(map), Key::Field(name)) => {
      // Overwriting in place needs no owned key.
      if let Some(slot) = map.get_mut(name) {
        *slot = value;
      } else {
        map.insert(name.as_str(), value);
      }
    }
    (Value::Array(items), Key::Index(index)) => {
      if let Some(slot) = items.get_mut(*index) {
        *slot = value;
      } else {
        pad(items, *index)?;
        items.push(value);
      }
    }
    (parent, key) => return Err(mismatch(parent, key)),
  }
  Ok(())
}

/// Removes and returns the object member at `path` (moved out, never cloned).
fn take(doc: &mut Value, path: &[Key]) -> Result<Value, String> {
  let Some((last, parents)) = path.split_last() else {
    return Err("cannot remove the document itself".to_string());
  };
  match (walk(doc, parents, false)?, last) {
    // shift_remove keeps the remaining keys in the order a JS object keeps them.
    (Value::Object(map), Key::Field(name)) => map
      .shift_remove(name)
      .ok_or_else(|| format!("no field '{}'", dotted(path))),
    (parent, key) => Err(mismatch(parent, key)),
  }
}

/// Follows `path` through existing values only.
fn find<'a>(doc: &'a mut Value, path: &[Key]) -> Option<&'a mut Value> {
  path
    .iter()
    .try_fold(doc, |current, key| match (current, key) {
      (Value::Object(map), Key::Field(name)) => map.get_mut(name),
      (Value::Array(items), Key::Index(index)) => items.get_mut(*index),
      _ => None,
    })
}

/// Follows `path`; with `create`, missing object members become `{}` and an index past the end
/// of an array pads with nulls and appends `{}` (MongoDB's creation rules).
fn walk<'a>(doc: &'a mut Value, path: &[Key], create: bool) -> Result<&'a mut Value, String> {
  let mut current = doc;
  for key in path {
    current = match (current, key) {
      (Value::Object(map), Key::Field(name)) => {
        if create && map.get(name).is_none() {
          map.insert(name.as_str(), Value::Object(Map::new()));
        }
        map
          .get_mut(name)
          .ok_or_else(|| format!("no field '{name}'"))?
      }
      (Value::Array(items), Key::Index(index)) => {
        if create && *index >= items.len() {
          pad(items, *index)?;
          items.push(Value::Object(Map::new()));
        }
        let len = items.len();
        items
          .get_mut(*index)
          .ok_or_else(|| format!("index {index} is past the end of an array of {len}"))?
      }
      (parent, key) => return Err(mismatch(parent, key)),
    };
  }
  Ok(current)
}

/// Fills `items` with nulls up to `index`, within MongoDB's backfill limit.
fn pad(items: &mut Vec<Value>, index: usize) -> Result<(), String> {
  if index - items.len() > MAX_PADDING {
    return Err(format!("can't backfill more than {MAX_PADDING} elements"));
  }
  items.resize(index, Value::Null);
  Ok(())
}

fn mismatch(parent: &Value, key: &Key) -> String {
  format!(
    "cannot use {} '{key}' on a value of type {}",
    match key {
      Key::Field(_) => "field",
      Key::Index(_) => "index",
    },
    type_name(parent)
  )
}

impl Serialize for Key {
  fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
    match self {
      Key::Field(name) => serializer.serialize_str(name),
      Key::Index(index) => serializer.serialize_u64(*index as u64),
    }
  }
}

impl<'de> Deserialize<'de> for Key {
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
    struct KeyVisitor;
    impl Visitor<'_> for KeyVisitor {
      type Value = Key;
      fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key (string) or an array index (non-negative integer)")
      }
      fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key::Field(v.to_string()))
      }
      fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
        Ok(Key::Field(v))
      }
      fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
        usize::try_from(v)
          .map(Key::Index)
          .map_err(|_| E::custom("array index too large"))
      }
      fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
        usize::try_from(v)
          .map(Key::Index)
          .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
      }
    }
    deserializer.deserialize_any(KeyVisitor)
  }
}

impl Serialize for Change {
  fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
    match self {
      Change::Set { path, value } => {
        let mut tuple = serializer.serialize_tuple(3)?;
        tuple.serialize_element("s")?;
        tuple.serialize_element(path)?;
        tuple.serialize_element(value)?;
        tuple.end()
      }
      Change::Unset { path } => {
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element("u")?;
        tuple.serialize_element(path)?;
        tuple.end()
      }
      Change::Splice {
        path,
        start,
        delete,
        insert,
      } => {
        let mut tuple = serializer.serialize_tuple(5)?;
        tuple.serialize_element("p")?;
        tuple.serialize_element(path)?;
        tuple.serialize_element(start)?;
        tuple.serialize_element(delete)?;
        tuple.serialize_element(insert)?;
        tuple.end()
      }
      Change::Move { from, to } => {
        let mut tuple = serializer.serialize_tuple(3)?;
        tuple.serialize_element("m")?;
        tuple.serialize_element(from)?;
        tuple.serialize_element(to)?;
        tuple.end()
      }
    }
  }
}

impl<'de> Deserialize<'de> for Change {
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Change, D::Error> {
    struct ChangeVisitor;
    impl<'de> Visitor<'de> for ChangeVisitor {
      type Value = Change;
      fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a change: ["s", path, value], ["u", path], ["p", path, start, delete, values] or ["m", from, to]"#)
      }
      fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Change, A::Error> {
        let tag: String = next(&mut seq, 0, &self)?;
        let change = match tag.as_str() {
          "s" => Change::Set {
            path: next(&mut seq, 1, &self)?,
            value: next(&mut seq, 2, &self)?,
          },
          "u" => Change::Unset {
            path: next(&mut seq, 1, &self)?,
          },
          "p" => Change::Splice {
            path: next(&mut seq, 1, &self)?,
            start: next(&mut seq, 2, &self)?,
            delete: next(&mut seq, 3, &self)?,
            insert: next(&mut seq, 4, &self)?,
          },
          "m" => Change::Move {
            from: next(&mut seq, 1, &self)?,
            to: next(&mut seq, 2, &self)?,
          },
          other => {
            return Err(de::Error::unknown_variant(other, &["s", "u", "p", "m"]));
          }
        };
        if seq.next_element::<IgnoredAny>()?.is_some() {
          return Err(de::Error::custom(format!(
            "too many elements in a '{tag}' change"
          )));
        }
        Ok(change)
      }
    }
    fn next<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
      seq: &mut A,
      index: usize,
      expected: &ChangeVisitor,
    ) -> Result<T, A::Error> {
      seq
        .next_element()?
        .ok_or_else(|| de::Error::invalid_length(index, expected))
    }
    deserializer.deserialize_seq(ChangeVisitor)
  }
}
