//! Undoing an applied update: the changes that take a document back to where it was.
//!
//! A client shows its own patches before the host has ordered them. When the host orders another
//! process's patch first, the client undoes its pending patches, applies the ordered one and
//! applies its own again. Undo costs what the change cost: it keeps only what each change
//! overwrote or removed, never a copy of the document.

use crate::doc::Value;

use super::change::{apply_changes, removal_run, Change};
use super::key::{get, Key};
use super::{plan, Context, PatchError, Update};

impl Update {
  /// Like [`Update::apply`], and also returns the changes that undo it: applying them, in order,
  /// to the updated document gives back the original (values equal; a restored object key may
  /// move to the end of its object).
  pub fn apply_with_undo(
    &self,
    doc: &mut Value,
    ctx: &Context,
  ) -> Result<(Vec<Change>, Vec<Change>), PatchError> {
    let changes = plan::plan(&self.ops, &self.order, self.check_concrete, doc, ctx.now_ms)?;
    let mut undo = Vec::new();
    let mut index = 0;
    while index < changes.len() {
      // A run of removals from one array at falling indices (what $pull emits) is applied in one
      // pass; each removes below the previous one, so every inverse can be read from the document
      // before the whole run. Any other change is inverted on the document just before it.
      let run = removal_run(&changes[index..]).max(1);
      for change in &changes[index..index + run] {
        let mut inverse = inverse_of(doc, change);
        inverse.reverse();
        undo.append(&mut inverse);
      }
      let committed = apply_changes(doc, &changes[index..index + run]);
      debug_assert!(committed.is_ok(), "planned change failed: {committed:?}");
      index += run;
    }
    undo.reverse();
    Ok((changes, undo))
  }
}

/// What undoes `change` on `doc` as it is before the change, in the order to apply.
fn inverse_of(doc: &Value, change: &Change) -> Vec<Change> {
  match change {
    Change::Set { path, .. } => vec![restore(doc, path)],
    Change::Unset { path } => match get(doc, path) {
      Some(old) => vec![Change::Set {
        path: path.clone(),
        value: old.clone(),
      }],
      None => Vec::new(),
    },
    Change::Splice {
      path,
      start,
      delete,
      insert,
    } => {
      let removed = match get(doc, path) {
        Some(Value::Array(items)) => items
          .get(*start..start + delete)
          .map(<[Value]>::to_vec)
          .unwrap_or_default(),
        _ => Vec::new(),
      };
      vec![Change::Splice {
        path: path.clone(),
        start: *start,
        delete: insert.len(),
        insert: removed,
      }]
    }
    Change::Move { from, to } => {
      let back = Change::Move {
        from: to.clone(),
        to: from.clone(),
      };
      match restore(doc, to) {
        // Moving back already removes the key the move created.
        Change::Unset { path } if path == *to => vec![back],
        restore => vec![back, restore],
      }
    }
  }
}

/// The change that gives `path` back what it holds in `doc`, once something has been written
/// there: the old value, or the removal of what the write created (the first missing object key,
/// or the array elements it appended and padded).
fn restore(doc: &Value, path: &[Key]) -> Change {
  let mut current = doc;
  for (depth, key) in path.iter().enumerate() {
    let next = match (current, key) {
      (Value::Object(map), Key::Field(name)) => map.get(name),
      (Value::Array(items), Key::Index(index)) => items.get(*index),
      _ => None,
    };
    match (next, current, key) {
      (Some(value), _, _) => current = value,
      (None, Value::Array(items), Key::Index(index)) => {
        return Change::Splice {
          path: path[..depth].to_vec(),
          start: items.len(),
          delete: index + 1 - items.len(),
          insert: Vec::new(),
        };
      }
      (None, _, _) => {
        return Change::Unset {
          path: path[..=depth].to_vec(),
        };
      }
    }
  }
  Change::Set {
    path: path.to_vec(),
    value: current.clone(),
  }
}

#[cfg(test)]
mod tests {
  use crate::doc::json;
  use proptest::prelude::*;

  use super::*;

  fn undo_restores(doc: Value, update: Value) {
    let mut updated = doc.clone();
    let parsed = Update::parse(&update).expect("valid update");
    let Ok((changes, undo)) = parsed.apply_with_undo(&mut updated, &Context { now_ms: 0 }) else {
      assert_eq!(updated, doc, "a failed update changes nothing");
      return;
    };
    let mut expected = doc.clone();
    apply_changes(&mut expected, &changes).expect("changes replay");
    assert_eq!(updated, expected, "same result as the changes");
    apply_changes(&mut updated, &undo).expect("undo applies");
    assert_eq!(updated, doc, "undo of {update} on {doc}");
  }

  #[test]
  fn undo_of_every_change_kind() {
    let doc = json!({"n": 1, "a": {"b": [1, 2, 3, 4, 5]}, "s": "x", "list": [], "o": {"k": 1}});
    for update in [
      json!({"$inc": {"n": 1, "fresh": 2}}),
      json!({"$set": {"deep.new.path": 1, "list.3": "padded", "a.b.1": 9}}),
      json!({"$set": {"list.2.x": 1}}),
      json!({"$unset": {"s": "", "a.b.0": "", "missing": ""}}),
      json!({"$push": {"a.b": {"$each": [7, 8], "$position": 1}, "new": 1}}),
      json!({"$push": {"a.b": {"$each": [0], "$sort": -1, "$slice": 3}}}),
      json!({"$pull": {"a.b": {"$in": [1, 3, 5]}}}),
      json!({"$pop": {"a.b": -1}}),
      json!({"$rename": {"o": "moved.here", "n": "s"}}),
      json!({"$addToSet": {"a.b": {"$each": [1, 6]}}}),
      json!({"$inc": {"a.b.$[]": 10}}),
    ] {
      undo_restores(doc.clone(), update);
    }
  }

  fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
      Just(Value::Null),
      any::<i8>().prop_map(|n| json!(n)),
      "[a-c]".prop_map(Value::from),
    ]
  }

  fn document() -> impl Strategy<Value = Value> {
    let value = leaf().prop_recursive(3, 16, 4, |inner| {
      prop_oneof![
        prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
        prop::collection::btree_map("[a-c]", inner, 0..4)
          .prop_map(|map| Value::Object(map.into_iter().collect())),
      ]
    });
    prop::collection::btree_map("[a-c]", value, 0..4)
      .prop_map(|map| Value::Object(map.into_iter().collect()))
  }

  fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof!["[a-c]", "[0-3]"], 1..4).prop_map(|parts| parts.join("."))
  }

  fn update() -> impl Strategy<Value = Value> {
    let op = prop_oneof![
      (path(), leaf()).prop_map(|(p, v)| json!({"$set": {p: v}})),
      path().prop_map(|p| json!({"$unset": {p: ""}})),
      (path(), any::<i8>()).prop_map(|(p, n)| json!({"$inc": {p: n}})),
      (path(), leaf()).prop_map(|(p, v)| json!({"$push": {p: v}})),
      (path(), leaf()).prop_map(|(p, v)| json!({"$pull": {p: v}})),
      (path(), prop_oneof![Just(1), Just(-1)]).prop_map(|(p, n)| json!({"$pop": {p: n}})),
      (path(), path()).prop_map(|(a, b)| json!({"$rename": {a: b}})),
    ];
    prop::collection::vec(op, 1..3).prop_map(super::super::tests::merged)
  }

  proptest! {
    #[test]
    fn undo_gives_back_the_original(doc in document(), update in update()) {
      if Update::parse(&update).is_ok() {
        undo_restores(doc, update);
      }
    }
  }
}
