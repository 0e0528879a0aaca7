//! Planning: each operation is checked against the unchanged document (read-only) and turned into
//! [`Change`]s. Every error is found here, so a failing update leaves the document untouched and
//! committing the plan cannot fail. Conflicting paths were rejected by the parser, which is what
//! makes planning each operation against the original document equivalent to MongoDB's in-order
//! application.

use std::cmp::Ordering;

use crate::doc::{Number, Value};

use super::change::Change;
use super::compare::{compare, equal, Num};
use super::depth;
use super::error::{document_name, dotted, render, type_name, ErrorKind, PatchError};
use super::key::{get, Key};
use super::op::{integer, Action, BitOp, DateKind, Op, Operator, Push, Sort};
use super::path::{parse_index, resolve, Path, Resolved, Slot, MAX_DEPTH};

/// Plans `ops` (in `order`, MongoDB's field order, or as they are when `order` is empty) against
/// `doc`. `check_concrete` says whether some path has `$[]` or a leading-zero index, so that the
/// concrete paths must then be checked against each other.
pub(crate) fn plan(
  ops: &[Op],
  order: &[usize],
  check_concrete: bool,
  doc: &Value,
  now_ms: i64,
) -> Result<Vec<Change>, PatchError> {
  let mut planner = Planner {
    doc,
    now_ms,
    // Most operations make one change.
    changes: Vec::with_capacity(ops.len()),
    concrete: check_concrete.then(Vec::new),
  };
  for position in 0..ops.len() {
    let index = if order.is_empty() {
      position
    } else {
      order[position]
    };
    let op = &ops[index];
    if op.path.has_all() {
      // A dry run first: an error in resolving any expansion takes precedence over an error in
      // planning an earlier one.
      resolve(doc, &op.path, &mut |_| Ok(()))?;
    }
    resolve(doc, &op.path, &mut |target| {
      if let Some(concrete) = &mut planner.concrete {
        concrete.push((index, target.keys()));
      }
      planner.step(op, target)
    })?;
  }
  if let Some(concrete) = planner.concrete.take() {
    check_expanded(concrete)?;
  }
  check_depth(doc, &planner.changes)?;
  Ok(planner.changes)
}

/// Refuses changes that would nest the document deeper than [`MAX_DEPTH`] levels. Paths alone
/// cannot exceed it, but a value written at a path can: and every frame that carries the document
/// (or a value in it) to another replica must stay within the 128 levels a JSON decoder accepts
/// (serde_json's recursion limit), or no client could ever receive it again, nor a new one join.
fn check_depth(doc: &Value, changes: &[Change]) -> Result<(), PatchError> {
  for change in changes {
    let (path, below) = match change {
      Change::Set { path, value } => (path, depth(value)),
      // The inserted elements sit one level below the array.
      Change::Splice { path, insert, .. } => (
        path,
        insert.iter().map(|item| depth(item) + 1).max().unwrap_or(0),
      ),
      Change::Move { from, to } => (to, get(doc, from).map_or(0, depth)),
      Change::Unset { .. } => continue,
    };
    let levels = path.len() + below;
    if levels > MAX_DEPTH {
      return Err(PatchError::new(
        ErrorKind::BadValue,
        format!(
          "The update would nest the document {levels} levels deep at '{}', more than the {MAX_DEPTH} levels a document may nest",
          dotted(path)
        ),
      ));
    }
  }
  Ok(())
}

/// `a.$[]` and `a.0` do not conflict as written, but do once `$[]` expands over a non-empty
/// array: MongoDB reports that when it applies the update, so this runs after planning. So do
/// `a.01` and `a.1` where `a` is an array.
fn check_expanded(mut concrete: Vec<(usize, Vec<Key>)>) -> Result<(), PatchError> {
  // Sorted, a path is directly followed by the paths it is a prefix of. One operation's
  // expansions all have the same length and differ, so they never cover each other.
  concrete.sort_by(|a, b| a.1.cmp(&b.1));
  for pair in concrete.windows(2) {
    if pair[0].0 != pair[1].0 && pair[1].1.starts_with(&pair[0].1) {
      return Err(PatchError::new(
        ErrorKind::PathConflict,
        format!("Update created a conflict at '{}'", dotted(&pair[0].1)),
      ));
    }
  }
  Ok(())
}

struct Planner<'a> {
  doc: &'a Value,
  now_ms: i64,
  changes: Vec<Change>,
  /// Every concrete path with its operation's index, kept only when some path has `$[]` or a
  /// leading-zero index.
  concrete: Option<Vec<(usize, Vec<Key>)>>,
}

/// The new value of a writing operator, or `None` when it changes nothing.
type Outcome = Result<Option<Value>, PatchError>;

impl<'a> Planner<'a> {
  /// Plans one operation at one concrete path.
  fn step(&mut self, op: &Op, target: Resolved<'a, '_>) -> Result<(), PatchError> {
    let doc = self.doc;
    match &op.action {
      Action::Set(value) => self.write(target, |current, _| {
        // `==` is exact here (1 vs 1.0 differ), so a type change is still written.
        Ok((current != Some(value)).then(|| value.clone()))
      }),
      Action::Unset => {
        if let Slot::Found(current) = target.slot {
          if target.ends_in_index() {
            // Inside an array $unset nulls the element: removing it would shift the others.
            if !current.is_null() {
              self.changes.push(Change::Set {
                path: target.keys(),
                value: Value::Null,
              });
            }
          } else {
            self.changes.push(Change::Unset {
              path: target.keys(),
            });
          }
        }
        // A missing or non-viable path is a no-op for $unset.
        Ok(())
      }
      Action::Inc(arg) | Action::Mul(arg) => self.write(target, |current, target| {
        arithmetic(op.operator, arg, current, target, doc)
      }),
      Action::Min(value) | Action::Max(value) => self.write(target, |current, _| {
        let wanted = if op.operator == Operator::Min {
          Ordering::Less
        } else {
          Ordering::Greater
        };
        Ok(match current {
          // Equal values are a no-op, which keeps the original representation (1 vs 1.0).
          Some(current) if compare(value, current) != wanted => None,
          _ => Some(value.clone()),
        })
      }),
      Action::CurrentDate(kind) => {
        let now = match kind {
          DateKind::Date => Value::String(iso_date(self.now_ms).into()),
          DateKind::Timestamp => Value::from(self.now_ms),
        };
        self.write(target, |current, _| {
          Ok((current != Some(&now)).then_some(now))
        })
      }
      Action::Bit(operations) => self.write(target, |current, target| {
        bit(operations, current, target, doc)
      }),
      Action::Push(push) => self.push(push, target),
      Action::AddToSet(values) => self.add_to_set(values, target),
      Action::Pop(first) => self.cull(op.operator, target, |items| {
        // $pop removes one end; an empty array is left alone.
        let last = items.len().checked_sub(1);
        last
          .map(|last| (if *first { 0 } else { last }, 1))
          .into_iter()
      }),
      Action::Pull(matcher) => self.cull(op.operator, target, |items| {
        runs(items, |item| matcher.matches(item))
      }),
      Action::PullAll(values) => self.cull(op.operator, target, |items| {
        runs(items, |item| values.iter().any(|value| equal(item, value)))
      }),
      Action::Rename(to) => self.rename(target, to),
      // memsync never upserts; the path was still validated and resolved.
      Action::SetOnInsert => Ok(()),
    }
  }

  /// A creating operator: `compute` gets the current value (`None` when missing) and returns
  /// what to write.
  fn write(
    &mut self,
    target: Resolved<'a, '_>,
    compute: impl FnOnce(Option<&'a Value>, &Resolved<'a, '_>) -> Outcome,
  ) -> Result<(), PatchError> {
    let current = match target.slot {
      Slot::Blocked { depth, parent } => return Err(target.cannot_create(depth, parent)),
      Slot::Missing { .. } => {
        target.check_padding()?;
        None
      }
      Slot::Found(current) => Some(current),
    };
    if let Some(value) = compute(current, &target)? {
      self.changes.push(Change::Set {
        path: target.keys(),
        value,
      });
    }
    Ok(())
  }

  fn push(&mut self, push: &Push, target: Resolved<'a, '_>) -> Result<(), PatchError> {
    let items = match target.slot {
      Slot::Blocked { depth, parent } => return Err(target.cannot_create(depth, parent)),
      Slot::Missing { .. } => {
        // A missing field is created as [] with the modifiers applied to it.
        target.check_padding()?;
        let mut items = push.each.clone();
        if let Some(sort) = &push.sort {
          sort_values(&mut items, sort);
        }
        if let Some(slice) = push.slice {
          let (start, delete) = slice_removal(slice, items.len());
          items.drain(start..start + delete);
        }
        self.changes.push(Change::Set {
          path: target.keys(),
          value: Value::Array(items),
        });
        return Ok(());
      }
      Slot::Found(Value::Array(items)) => items,
      Slot::Found(other) => {
        let id = match self.doc.get("_id") {
          Some(id) => format!(" in document {{_id: {}}}", render(id)),
          None => String::new(),
        };
        return Err(PatchError::new(
          ErrorKind::TypeMismatch,
          format!(
            "The field '{}' must be an array but is of type {}{id}",
            dotted(&target.keys()),
            type_name(other)
          ),
        ));
      }
    };
    let len = items.len();
    let at = match push.position {
      Some(p) if p >= 0 => usize::try_from(p).map_or(len, |p| p.min(len)),
      Some(p) => usize::try_from(p.unsigned_abs()).map_or(0, |back| len.saturating_sub(back)),
      None => len,
    };
    if let Some(sort) = &push.sort {
      // Sorting touches every element anyway, so the whole new array is the change.
      let mut sorted = Vec::with_capacity(len + push.each.len());
      sorted.extend_from_slice(&items[..at]);
      sorted.extend_from_slice(&push.each);
      sorted.extend_from_slice(&items[at..]);
      sort_values(&mut sorted, sort);
      if let Some(slice) = push.slice {
        let (start, delete) = slice_removal(slice, sorted.len());
        sorted.drain(start..start + delete);
      }
      if sorted != *items {
        self.changes.push(Change::Set {
          path: target.keys(),
          value: Value::Array(sorted),
        });
      }
      return Ok(());
    }
    if !push.each.is_empty() {
      self.changes.push(Change::Splice {
        path: target.keys(),
        start: at,
        delete: 0,
        insert: push.each.clone(),
      });
    }
    if let Some(slice) = push.slice {
      let (start, delete) = slice_removal(slice, len + push.each.len());
      if delete > 0 {
        self.changes.push(Change::Splice {
          path: target.keys(),
          start,
          delete,
          insert: Vec::new(),
        });
      }
    }
    Ok(())
  }

  fn add_to_set(&mut self, values: &[Value], target: Resolved<'a, '_>) -> Result<(), PatchError> {
    match target.slot {
      Slot::Blocked { depth, parent } => Err(target.cannot_create(depth, parent)),
      Slot::Missing { .. } => {
        target.check_padding()?;
        self.changes.push(Change::Set {
          path: target.keys(),
          value: Value::Array(values.to_vec()),
        });
        Ok(())
      }
      Slot::Found(Value::Array(items)) => {
        // Values already present (by value, 1 == 1.0) are skipped; existing duplicates stay.
        let new: Vec<Value> = values
          .iter()
          .filter(|value| !items.iter().any(|item| equal(item, value)))
          .cloned()
          .collect();
        if !new.is_empty() {
          self.changes.push(Change::Splice {
            path: target.keys(),
            start: items.len(),
            delete: 0,
            insert: new,
          });
        }
        Ok(())
      }
      Slot::Found(other) => Err(PatchError::new(
        ErrorKind::TypeMismatch,
        format!(
          "Cannot apply $addToSet to non-array field. Field named '{}' has non-array type {}",
          last_name(&target.keys()),
          type_name(other)
        ),
      )),
    }
  }

  /// A removing array operator ($pop, $pull, $pullAll): `select` gives the runs
  /// `(start, count)` to remove in descending order, so that each one's indices are still valid
  /// when its Splice is applied.
  fn cull<I: Iterator<Item = (usize, usize)>>(
    &mut self,
    operator: Operator,
    target: Resolved<'a, '_>,
    select: impl FnOnce(&'a [Value]) -> I,
  ) -> Result<(), PatchError> {
    match target.slot {
      Slot::Blocked { depth, parent } => Err(target.cannot_traverse(depth, parent)),
      Slot::Missing { .. } => Ok(()),
      Slot::Found(Value::Array(items)) => {
        for (start, delete) in select(items) {
          self.changes.push(Change::Splice {
            path: target.keys(),
            start,
            delete,
            insert: Vec::new(),
          });
        }
        Ok(())
      }
      Slot::Found(other) => Err(PatchError::new(
        ErrorKind::TypeMismatch,
        if operator == Operator::Pop {
          format!(
            "Path '{}' contains an element of non-array type '{}'",
            dotted(&target.keys()),
            type_name(other)
          )
        } else {
          format!("Cannot apply {} to a non-array value", operator.name())
        },
      )),
    }
  }

  fn rename(&mut self, source: Resolved<'a, '_>, to: &Path) -> Result<(), PatchError> {
    match source.slot {
      // A missing source makes the whole $rename a no-op, whatever the destination.
      Slot::Missing { .. } => return Ok(()),
      Slot::Blocked { depth, parent } => return Err(source.cannot_traverse(depth, parent)),
      Slot::Found(_) => {}
    }
    let doc = self.doc;
    let in_doc = || match doc.get("_id") {
      Some(id) => format!(" in doc with _id: {}", render(id)),
      None => String::new(),
    };
    let mut from = source.keys();
    if let Some(array) = array_ancestor(&from) {
      return Err(PatchError::new(
        ErrorKind::RenameInvalid,
        format!(
          "The source field cannot be an array element, '{}'{} has an array field called '{array}'",
          dotted(&from),
          in_doc()
        ),
      ));
    }
    let dest_error = |array: String| {
      PatchError::new(
        ErrorKind::RenameInvalid,
        format!(
          "The destination field cannot be an array element, '{}'{} has an array field called '{array}'",
          to.text(),
          in_doc()
        ),
      )
    };
    resolve(doc, to, &mut |dest| {
      let keys = dest.keys();
      if let Some(array) = array_ancestor(&keys) {
        return Err(dest_error(array));
      }
      if let Slot::Blocked { depth, parent } = dest.slot {
        return Err(if parent.is_array() {
          dest_error(dotted(&keys[..depth]))
        } else {
          dest.cannot_create(depth, parent)
        });
      }
      self.changes.push(Change::Move {
        // A path without `$[]` resolves to exactly one target, so this runs once.
        from: std::mem::take(&mut from),
        to: keys,
      });
      Ok(())
    })
  }
}

/// The name of the array a concrete path first indexes into, if any.
fn array_ancestor(keys: &[Key]) -> Option<String> {
  let index = keys.iter().position(|key| matches!(key, Key::Index(_)))?;
  Some(dotted(&keys[..index]))
}

/// The last component, which MongoDB's messages call the field name.
fn last_name(keys: &[Key]) -> String {
  keys.last().map(Key::to_string).unwrap_or_default()
}

/// $inc/$mul: integer arithmetic stays integral (checked, must fit i64 or u64), anything with a
/// double is a double (must be finite).
fn arithmetic(
  operator: Operator,
  arg: &Number,
  current: Option<&Value>,
  target: &Resolved,
  doc: &Value,
) -> Outcome {
  let Some(current) = current else {
    return Ok(Some(match (operator, Num::of(arg)) {
      (Operator::Inc, _) => Value::Number(arg.clone()),
      // $mul on a missing field creates 0 of the multiplier's type.
      (_, Num::Int(_)) => Value::from(0),
      (_, Num::Float(_)) => Value::from(0.0),
    }));
  };
  let Value::Number(n) = current else {
    return Err(PatchError::new(
      ErrorKind::TypeMismatch,
      format!(
        "Cannot apply {} to a value of non-numeric type. {} has the field '{}' of non-numeric type {}",
        operator.name(),
        document_name(doc),
        last_name(&target.keys()),
        type_name(current)
      ),
    ));
  };
  let inc = operator == Operator::Inc;
  let result = match (Num::of(n), Num::of(arg)) {
    // i64/u64 sums always fit i128; products may not.
    (Num::Int(a), Num::Int(b)) if inc => Some(Num::Int(a + b)),
    (Num::Int(a), Num::Int(b)) => a.checked_mul(b).map(Num::Int),
    (a, b) if inc => Some(Num::Float(a.to_f64() + b.to_f64())),
    (a, b) => Some(Num::Float(a.to_f64() * b.to_f64())),
  };
  let integral = matches!((Num::of(n), Num::of(arg)), (Num::Int(_), Num::Int(_)));
  let value = result.and_then(Num::to_value).ok_or_else(|| {
    PatchError::new(
      ErrorKind::Overflow,
      format!(
        "Failed to apply {} operations to current value ({n}) for field '{}': {}",
        operator.name(),
        dotted(&target.keys()),
        if integral {
          "the result does not fit in a 64-bit integer"
        } else {
          "the result is not a finite number"
        }
      ),
    )
  })?;
  Ok((value != *current).then_some(value))
}

/// $bit: integers only on both sides; a missing field starts from 0.
fn bit(
  operations: &[(BitOp, i128)],
  current: Option<&Value>,
  target: &Resolved,
  doc: &Value,
) -> Outcome {
  let start = match current {
    None => 0,
    Some(value) => match value.as_number().and_then(integer) {
      Some(start) => start,
      None => {
        return Err(PatchError::new(
          ErrorKind::TypeMismatch,
          format!(
            "Cannot apply $bit to a value of non-integral type. {} has the field '{}' of non-integer type {}",
            document_name(doc),
            last_name(&target.keys()),
            type_name(value)
          ),
        ))
      }
    },
  };
  let result = operations
    .iter()
    .fold(start, |acc, (op, operand)| match op {
      BitOp::And => acc & operand,
      BitOp::Or => acc | operand,
      BitOp::Xor => acc ^ operand,
    });
  let value = Num::Int(result).to_value().ok_or_else(|| {
    PatchError::new(
      ErrorKind::Overflow,
      format!(
        "Failed to apply $bit operations for field '{}': the result does not fit in a 64-bit integer",
        dotted(&target.keys())
      ),
    )
  })?;
  Ok((current != Some(&value)).then_some(value))
}

/// The runs `(start, count)` of consecutive matching elements, the last run first. Each element
/// is tested once.
fn runs<'v>(
  items: &'v [Value],
  matches: impl Fn(&Value) -> bool + 'v,
) -> impl Iterator<Item = (usize, usize)> + 'v {
  // Elements from `end` on are done.
  let mut end = items.len();
  std::iter::from_fn(move || {
    let last = items[..end].iter().rposition(&matches)?;
    let start = items[..last]
      .iter()
      .rposition(|item| !matches(item))
      .map_or(0, |before| before + 1);
    // The element before the run did not match.
    end = start.saturating_sub(1);
    Some((start, last + 1 - start))
  })
}

/// What `$slice: k` removes from an array of `len`: `(start, count)`.
fn slice_removal(slice: i64, len: usize) -> (usize, usize) {
  let keep = usize::try_from(slice.unsigned_abs()).unwrap_or(usize::MAX);
  if keep >= len {
    (0, 0)
  } else if slice >= 0 {
    (keep, len - keep)
  } else {
    (0, len - keep)
  }
}

fn sort_values(items: &mut [Value], sort: &Sort) {
  match sort {
    Sort::Whole(ascending) => items.sort_by(|a, b| directed(compare(a, b), *ascending)),
    Sort::Fields(fields) => items.sort_by(|a, b| {
      fields
        .iter()
        .map(|(path, ascending)| {
          directed(compare(sort_key(a, path), sort_key(b, path)), *ascending)
        })
        .find(|order| *order != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
    }),
  }
}

fn directed(order: Ordering, ascending: bool) -> Ordering {
  if ascending {
    order
  } else {
    order.reverse()
  }
}

static NULL: Value = Value::Null;

/// The value a `$sort: {field: ±1}` pattern sorts an element by; missing (or a non-document
/// element) sorts as null.
fn sort_key<'v>(value: &'v Value, path: &[String]) -> &'v Value {
  let mut current = value;
  for part in path {
    let next = match current {
      Value::Object(map) => map.get(part),
      Value::Array(items) => parse_index(part).and_then(|i| items.get(i)),
      _ => None,
    };
    match next {
      Some(next) => current = next,
      None => return &NULL,
    }
  }
  current
}

/// Epoch milliseconds as JS `Date#toJSON` prints them: `2024-05-01T12:00:00.000Z`, with a signed
/// six-digit year outside 0..=9999.
pub(crate) fn iso_date(ms: i64) -> String {
  let days = ms.div_euclid(86_400_000);
  let in_day = ms.rem_euclid(86_400_000);
  let (year, month, day) = civil_from_days(days);
  let year = if (0..=9999).contains(&year) {
    format!("{year:04}")
  } else if year < 0 {
    format!("-{:06}", year.unsigned_abs())
  } else {
    format!("+{year:06}")
  };
  format!(
    "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
    in_day / 3_600_000,
    in_day / 60_000 % 60,
    in_day / 1000 % 60,
    in_day % 1000
  )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a proleptic Gregorian date.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
  let z = days + 719_468;
  let era = z.div_euclid(146_097);
  let doe = z.rem_euclid(146_097);
  let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
  let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  let mp = (5 * doy + 2) / 153;
  let day = doy - (153 * mp + 2) / 5 + 1;
  let month = if mp < 10 { mp + 3 } else { mp - 9 };
  let year = yoe + era * 400 + i64::from(month <= 2);
  (year, month, day)
}
