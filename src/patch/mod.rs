//! The MongoDB update engine: applies an update document (`{$set: {...}, $inc: {...}}`) to a
//! document ([`crate::doc::Value`], which the update is parsed into too), all-or-nothing, and
//! describes what it did as a list of [`Change`]s that other replicas replay with
//! [`apply_changes`]. Pure: no I/O, no clock (time comes in through [`Context`]).
//!
//! # How an update is applied
//! 1. [`Update::parse`] validates the update document on its own: operator names, argument
//!    shapes, paths, and conflicts between paths (`a` vs `a.b`).
//! 2. [`Update::apply`] *plans* every operation against the unchanged document, read-only. All
//!    errors that depend on the document are found here, so on error the document is untouched,
//!    and nothing had to be copied to make that so. Because conflicting paths were rejected,
//!    each operation can be planned against the original document.
//! 3. It then *commits* the planned changes, which cannot fail, in MongoDB's field order (string
//!    components lexicographically, numeric ones numerically), so that array padding comes out
//!    as MongoDB's: `{a: []}` with `{$set: {'a.3': 1}, $inc: {'a.1': 1}}` gives
//!    `[null, 1, null, 1]`.
//!
//! Cost follows the change, not the document: `$push` onto a long array is one
//! [`Change::Splice`] of one element, `$set` in a big object one [`Change::Set`]; nothing is
//! cloned but the values written (and an array `$push` with `$sort` rewrites anyway).
//!
//! # Semantics
//! MongoDB ≥ 5.0 as described in `SEMANTICS.md`, with memsync's departures:
//! - A document whose keys are all plain field names is shorthand for `$set`; `{}` (or only
//!   empty operands) is a no-op; plain keys mixed with operators are an unknown operator.
//! - `_id` is an ordinary field (no immutable field).
//! - `$setOnInsert` never applies (memsync never upserts), but its paths are validated and take
//!   part in conflicts.
//! - `$currentDate` writes a date as an ISO-8601 UTC string with milliseconds (like JS
//!   `Date#toJSON`) and a timestamp as integer epoch milliseconds.
//! - Numbers: i64/u64 are integers, f64 is a double. Integer arithmetic is checked (the result
//!   must fit i64 or u64) and a double result must be finite; otherwise [`ErrorKind::Overflow`].
//! - Equality and order compare numbers by value (`1 == 1.0`). Object equality ignores key order;
//!   the order (`$min`, `$max`, `$sort`) compares objects pair by pair in key order, as BSON.
//! - Nested `$`-prefixed field names (`a.$b`) are allowed, as since MongoDB 5.0; a top-level one
//!   (`$b`) is an [`ErrorKind::DollarField`].
//! - `$pull` conditions support `$eq $ne $gt $gte $lt $lte $in $nin $regex $options $exists $not
//!   $elemMatch $size $all $mod $type $and $or $nor`; regexes use Rust's `regex` syntax (no
//!   look-around or back-references).
//! - `$push`'s `$sort: {field: ±1}` follows object keys and array indices, without MongoDB's
//!   array sort keys.
//! - The 1,500,000-element padding limit is checked per path against the document before the
//!   update.
//! - A path may have at most 100 components (MongoDB's nesting limit), so that no update builds a
//!   document too deep for recursive serialisation.
//!
//! # Layout
//! - `op`: the update document to typed operations; argument and conflict checks.
//! - `path`: dotted paths, field order, read-only resolution (and `$[]` expansion).
//! - `plan`: operations to [`Change`]s against the unchanged document.
//! - `change`: [`Change`], its wire form, and [`apply_changes`] (also the engine's commit).
//! - `key`: [`Key`], a component of a concrete path, and reading the value at such a path.
//! - `undo`: the changes that revert an applied update.
//! - `compare`: BSON order and equality over JSON; `matcher`: `$pull` conditions.
//! - `error`: [`PatchError`] and MongoDB-style message helpers.
//! - `tests` with `testdata/*.json`: the table cases (`{name, doc, update, expect | error}`),
//!   properties and cost checks.

mod change;
mod compare;
mod error;
mod key;
mod matcher;
mod op;
mod path;
mod plan;
#[cfg(test)]
pub(crate) mod tests;
mod undo;

use std::cmp::Ordering;

use crate::doc::Value;

pub use change::{apply_changes, compact, Change};
pub use error::{ErrorKind, PatchError};
pub use key::{get as value_at_keys, get_mut as value_at_keys_mut, Key};
pub use path::MAX_DEPTH;

use op::{Action, Op, Operator};
use path::field_order;

/// The deepest an update document may nest: a value at [`MAX_DEPTH`] under its operator and field
/// (`$set`), or under `$each` and its array (`$push`), one level less. Held even for values that
/// are never written (`$setOnInsert`, `$pull` conditions): an update travels again inside deeper
/// frames (a client's catch-up after a failover), which must stay within the 128 levels a JSON
/// decoder accepts.
pub const MAX_UPDATE_DEPTH: usize = MAX_DEPTH + 2;

/// The most nulls one path may add to an array (MongoDB's backfill limit).
const MAX_PADDING: usize = 1_500_000;

/// What the engine needs from outside: the clock, injected so that replicas and tests agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
  /// The current time in epoch milliseconds, for `$currentDate`.
  pub now_ms: i64,
}

/// A path an update writes, for the host's stale-write check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
  /// The dotted path as written in the update.
  pub path: &'a str,
  /// `true` when the operator replaces the value ($set, $unset, $rename (both paths),
  /// $currentDate, $setOnInsert), `false` when it builds on it ($inc, $push, ...).
  pub overwrites: bool,
}

/// A parsed, validated update document.
#[derive(Debug, Clone)]
pub struct Update {
  /// The operations in document order.
  ops: Vec<Op>,
  /// Indices into `ops` in MongoDB's field order, the order changes are applied in; empty when
  /// that is document order (always so for one operation), which saves an allocation.
  order: Vec<usize>,
  /// Whether the concrete paths must be checked for conflicts once resolved: some path contains
  /// `$[]`, or an index with a leading zero, which conflict with other paths only as resolved.
  check_concrete: bool,
}

impl Update {
  /// Parses and validates an update document; needs no document, so errors here are about the
  /// update alone (syntax, arguments, paths, conflicts).
  pub fn parse(update: &Value) -> Result<Update, PatchError> {
    let levels = depth(update);
    if levels > MAX_UPDATE_DEPTH {
      return Err(PatchError::new(
        ErrorKind::BadValue,
        format!("The update nests {levels} levels deep, more than the {MAX_UPDATE_DEPTH} levels an update may nest"),
      ));
    }
    let ops = op::parse_update(update)?;
    let sorted = ops
      .windows(2)
      .all(|pair| field_order(pair[0].written(), pair[1].written()) != Ordering::Greater);
    let order = if sorted {
      Vec::new()
    } else {
      let mut order: Vec<usize> = (0..ops.len()).collect();
      order.sort_by(|&a, &b| field_order(ops[a].written(), ops[b].written()));
      order
    };
    let check_concrete = ops.iter().any(|op| op.path.has_all() || op.path.aliases());
    Ok(Update {
      ops,
      order,
      check_concrete,
    })
  }

  /// Whether the update cannot change anything: `{}`, only empty operands, or only
  /// `$setOnInsert` (which never applies here). Nothing needs to be sent for it.
  pub fn is_empty(&self) -> bool {
    self
      .ops
      .iter()
      .all(|op| op.operator == Operator::SetOnInsert)
  }

  /// Every target path of the update with whether the operator overwrites ($set, $unset, $rename
  /// (both source and target), $currentDate, $setOnInsert) or accumulates ($inc $mul $min $max
  /// $push $addToSet $pull $pullAll $pop $bit). Used later by the host's stale-write check.
  pub fn targets(&self) -> impl Iterator<Item = Target<'_>> {
    self.ops.iter().flat_map(|op| {
      let overwrites = op.operator.overwrites();
      let to = match &op.action {
        Action::Rename(to) => Some(Target {
          path: to.text(),
          overwrites,
        }),
        _ => None,
      };
      std::iter::once(Target {
        path: op.path.text(),
        overwrites,
      })
      .chain(to)
    })
  }

  /// Every `$inc` by an integer, with its path as written: on an integer it adds exactly (an
  /// integer sum is checked, never rounded), so such increments of one field commute while no
  /// sum leaves the integers.
  pub fn integer_increments(&self) -> impl Iterator<Item = (&str, i128)> {
    self.ops.iter().filter_map(|op| match &op.action {
      Action::Inc(by) => op::integer(by).map(|by| (op.path.text(), by)),
      _ => None,
    })
  }

  /// The changes that applying to `doc` would make, without making them (read-only): what
  /// [`Update::apply`] returns, to commit with [`apply_changes`] once the caller wants them.
  pub fn plan(&self, doc: &Value, ctx: &Context) -> Result<Vec<Change>, PatchError> {
    plan::plan(&self.ops, &self.order, self.check_concrete, doc, ctx.now_ms)
  }

  /// Plans against `doc` and applies; on Err, `doc` is exactly as before.
  pub fn apply(&self, doc: &mut Value, ctx: &Context) -> Result<Vec<Change>, PatchError> {
    let changes = self.plan(doc, ctx)?;
    // Planning checked every path against this document, so a change that does not apply
    // would be an engine bug; debug builds (and so the tests) stop on it.
    let committed = change::commit(doc, &changes);
    debug_assert!(committed.is_ok(), "planned change failed: {committed:?}");
    Ok(changes)
  }
}

/// How many levels `value` nests: 0 for a scalar, 1 for `{}`, `[]` or `{"a": 1}`, 2 for
/// `{"a": []}`. A document may nest at most [`MAX_DEPTH`] levels.
pub fn depth(value: &Value) -> usize {
  match value {
    Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
    Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
    _ => 0,
  }
}

/// A JSON integer (never a double, even `5.0`) widened to i128, as `$inc` reads it.
pub fn integer(value: &Value) -> Option<i128> {
  value.as_number().and_then(op::integer)
}

/// An integer as the engine writes it (i64 when it fits, else u64); `None` outside both, where
/// the engine's integer arithmetic overflows.
pub fn integer_value(n: i128) -> Option<Value> {
  compare::Num::Int(n).to_value()
}

/// Convenience: parse + apply.
pub fn apply(doc: &mut Value, update: &Value, ctx: &Context) -> Result<Vec<Change>, PatchError> {
  Update::parse(update)?.apply(doc, ctx)
}

/// The value at a dotted `path` of `doc` (`""`: the whole document), read with the engine's
/// rules: a numeric component indexes an array, leading zeros allowed (`a.01` is `a.1`).
/// `None` when nothing is there.
pub fn value_at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
  if path.is_empty() {
    return Some(doc);
  }
  path.split('.').try_fold(doc, |node, part| match node {
    Value::Object(fields) => fields.get(part),
    Value::Array(items) => path::parse_index(part).and_then(|index| items.get(index)),
    _ => None,
  })
}
