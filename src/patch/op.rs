//! Parsing an update document into typed operations. Everything that can be checked without the
//! document is checked here: operator names, argument shapes, paths, and path conflicts.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

use crate::doc::{Map, Number, Value};

use super::compare::equal;
use super::error::{render, type_name, ErrorKind, PatchError};
use super::matcher::PullMatcher;
use super::path::{components, Path, RenameSide};

/// An update operator (SEMANTICS §3, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
  Set,
  Unset,
  Inc,
  Mul,
  Min,
  Max,
  Rename,
  CurrentDate,
  SetOnInsert,
  Push,
  AddToSet,
  Pop,
  Pull,
  PullAll,
  Bit,
}

impl Operator {
  fn from_name(name: &str) -> Option<Operator> {
    Some(match name {
      "$set" => Operator::Set,
      "$unset" => Operator::Unset,
      "$inc" => Operator::Inc,
      "$mul" => Operator::Mul,
      "$min" => Operator::Min,
      "$max" => Operator::Max,
      "$rename" => Operator::Rename,
      "$currentDate" => Operator::CurrentDate,
      "$setOnInsert" => Operator::SetOnInsert,
      "$push" => Operator::Push,
      "$addToSet" => Operator::AddToSet,
      "$pop" => Operator::Pop,
      "$pull" => Operator::Pull,
      "$pullAll" => Operator::PullAll,
      "$bit" => Operator::Bit,
      _ => return None,
    })
  }

  /// The operator as written, for messages.
  pub(crate) fn name(self) -> &'static str {
    match self {
      Operator::Set => "$set",
      Operator::Unset => "$unset",
      Operator::Inc => "$inc",
      Operator::Mul => "$mul",
      Operator::Min => "$min",
      Operator::Max => "$max",
      Operator::Rename => "$rename",
      Operator::CurrentDate => "$currentDate",
      Operator::SetOnInsert => "$setOnInsert",
      Operator::Push => "$push",
      Operator::AddToSet => "$addToSet",
      Operator::Pop => "$pop",
      Operator::Pull => "$pull",
      Operator::PullAll => "$pullAll",
      Operator::Bit => "$bit",
    }
  }

  /// Whether the operator replaces what is at its path (as opposed to building on it).
  pub(crate) fn overwrites(self) -> bool {
    matches!(
      self,
      Operator::Set
        | Operator::Unset
        | Operator::Rename
        | Operator::CurrentDate
        | Operator::SetOnInsert
    )
  }
}

/// What `$currentDate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateKind {
  /// An ISO-8601 string like JS `Date#toJSON`.
  Date,
  /// Integer epoch milliseconds.
  Timestamp,
}

/// A `$bit` operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BitOp {
  And,
  Or,
  Xor,
}

/// `$push`'s sort clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sort {
  /// Whole elements, ascending when `true`.
  Whole(bool),
  /// Documents by dotted fields, each ascending when `true`.
  Fields(Vec<(Vec<String>, bool)>),
}

/// `$push` with its modifiers (a plain value is `$each: [value]`).
#[derive(Debug, Clone)]
pub(crate) struct Push {
  pub(crate) each: Vec<Value>,
  pub(crate) position: Option<i64>,
  pub(crate) sort: Option<Sort>,
  pub(crate) slice: Option<i64>,
}

/// An operator's argument for one path, validated.
#[derive(Debug, Clone)]
pub(crate) enum Action {
  Set(Value),
  Unset,
  Inc(Number),
  Mul(Number),
  Min(Value),
  Max(Value),
  Rename(Path),
  CurrentDate(DateKind),
  SetOnInsert,
  Push(Push),
  AddToSet(Vec<Value>),
  /// `true` removes the first element, `false` the last.
  Pop(bool),
  Pull(PullMatcher),
  PullAll(Vec<Value>),
  Bit(Vec<(BitOp, i128)>),
}

/// One operator applied to one path.
#[derive(Debug, Clone)]
pub(crate) struct Op {
  pub(crate) operator: Operator,
  pub(crate) path: Path,
  pub(crate) action: Action,
}

impl Op {
  /// The path whose place in field order the operation takes: a $rename's target, where the
  /// value appears, else its path.
  pub(crate) fn written(&self) -> &Path {
    match &self.action {
      Action::Rename(to) => to,
      _ => &self.path,
    }
  }
}

/// Parses an update document: either operators (`{$set: {...}, $inc: {...}}`) or, as memsync's
/// shorthand, plain fields meaning `$set`. Conflicting paths are rejected here.
pub(crate) fn parse_update(update: &Value) -> Result<Vec<Op>, PatchError> {
  let Value::Object(fields) = update else {
    return Err(PatchError::new(
      ErrorKind::BadValue,
      format!(
        "An update must be an object, but it is of type {}",
        type_name(update)
      ),
    ));
  };
  let shorthand = fields.keys().all(|key| !key.starts_with('$'));
  // One operation per field of the document or of the operands: sized up front, not grown.
  let mut ops = Vec::with_capacity(if shorthand {
    fields.len()
  } else {
    fields
      .values()
      .map(|operand| operand.as_object().map_or(0, Map::len))
      .sum()
  });
  if shorthand {
    for (path, value) in fields {
      ops.push(Op {
        operator: Operator::Set,
        path: Path::parse(path)?,
        action: Action::Set(value.clone()),
      });
    }
  } else {
    for (name, operand) in fields {
      let Some(operator) = Operator::from_name(name) else {
        return Err(PatchError::new(
          ErrorKind::UnknownOperator,
          format!(
            "Unknown modifier: {name}. Expected a valid update modifier or pipeline-style update specified as an array"
          ),
        ));
      };
      let Value::Object(targets) = operand else {
        return Err(PatchError::new(
          ErrorKind::BadOperatorArg,
          format!(
            "Modifiers operate on fields but we found type {} instead. For example: {{$mod: {{<field>: ...}}}} not {{{name}: {}}}",
            type_name(operand),
            render(operand)
          ),
        ));
      };
      for (path, arg) in targets {
        ops.push(parse_op(operator, path, arg)?);
      }
    }
  }
  check_conflicts(&ops)?;
  Ok(ops)
}

fn parse_op(operator: Operator, path: &str, arg: &Value) -> Result<Op, PatchError> {
  let path = if operator == Operator::Rename {
    Path::parse_rename(path, RenameSide::Source)?
  } else {
    Path::parse(path)?
  };
  let action = match operator {
    Operator::Set => Action::Set(arg.clone()),
    Operator::Unset => Action::Unset,
    Operator::Inc | Operator::Mul => {
      let Value::Number(n) = arg else {
        let verb = if operator == Operator::Inc {
          "increment"
        } else {
          "multiply"
        };
        return Err(bad_value(format!(
          "Cannot {verb} with non-numeric argument: {{{}: {}}}",
          path.text(),
          render(arg)
        )));
      };
      if operator == Operator::Inc {
        Action::Inc(n.clone())
      } else {
        Action::Mul(n.clone())
      }
    }
    Operator::Min => Action::Min(arg.clone()),
    Operator::Max => Action::Max(arg.clone()),
    Operator::Rename => Action::Rename(parse_rename_target(&path, arg)?),
    Operator::CurrentDate => Action::CurrentDate(parse_current_date(arg)?),
    Operator::SetOnInsert => Action::SetOnInsert,
    Operator::Push => Action::Push(parse_push(arg)?),
    Operator::AddToSet => Action::AddToSet(parse_add_to_set(arg)?),
    Operator::Pop => Action::Pop(parse_pop(path.text(), arg)?),
    Operator::Pull => Action::Pull(PullMatcher::parse(arg)?),
    Operator::PullAll => match arg {
      Value::Array(values) => Action::PullAll(values.clone()),
      other => {
        return Err(bad_value(format!(
          "$pullAll requires an array argument but was given a {}",
          type_name(other)
        )))
      }
    },
    Operator::Bit => Action::Bit(parse_bit(arg)?),
  };
  Ok(Op {
    operator,
    path,
    action,
  })
}

fn bad_value(message: impl Into<String>) -> PatchError {
  PatchError::new(ErrorKind::BadValue, message)
}

fn parse_rename_target(from: &Path, arg: &Value) -> Result<Path, PatchError> {
  let Value::String(to) = arg else {
    return Err(bad_value(format!(
      "The 'to' field for $rename must be a string: {}: {}",
      from.text(),
      render(arg)
    )));
  };
  let to = Path::parse_rename(to, RenameSide::Destination)?;
  let quoted = || format!("{}: {}", from.text(), render(arg));
  if from.text() == to.text() {
    return Err(PatchError::new(
      ErrorKind::RenameInvalid,
      format!(
        "The source and target field for $rename must differ: {}",
        quoted()
      ),
    ));
  }
  if from.covers(&to) || to.covers(from) {
    return Err(PatchError::new(
      ErrorKind::RenameInvalid,
      format!(
        "The source and target field for $rename must not be on the same path: {}",
        quoted()
      ),
    ));
  }
  Ok(to)
}

fn parse_current_date(arg: &Value) -> Result<DateKind, PatchError> {
  match arg {
    // MongoDB accepts `false` too: any boolean means "the current date".
    Value::Bool(_) => Ok(DateKind::Date),
    Value::Object(options) => {
      let mut kind = None;
      for (name, value) in options {
        if name != "$type" {
          return Err(bad_value(format!(
            "Unrecognized $currentDate option: {name}"
          )));
        }
        kind = match value.as_str() {
          Some("date") => Some(DateKind::Date),
          Some("timestamp") => Some(DateKind::Timestamp),
          _ => None,
        };
      }
      kind.ok_or_else(|| {
        bad_value(
          "The '$type' string field is required to be 'date' or 'timestamp': \
           {$currentDate: {field : {$type: 'date'}}}",
        )
      })
    }
    other => Err(bad_value(format!(
      "{} is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({{$type: 'timestamp/date'}}).",
      type_name(other)
    ))),
  }
}

/// A number that is integral (`2` or `2.0`) as an i64, as MongoDB's `parseIntegerElementToLong`.
fn integral(value: &Value) -> Option<i64> {
  let n = value.as_number()?;
  if let Some(i) = n.as_i64() {
    return Some(i);
  }
  let f = n.as_f64()?;
  // The range check keeps the cast exact; u64 values above i64::MAX are rejected.
  (f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f))
    .then_some(f as i64)
}

fn parse_push(arg: &Value) -> Result<Push, PatchError> {
  let modifiers = match arg {
    Value::Object(map) if map.contains_key("$each") => map,
    // Without `$each`, an object (even one with `$slice`) is just the value to push.
    plain => {
      return Ok(Push {
        each: vec![plain.clone()],
        position: None,
        sort: None,
        slice: None,
      })
    }
  };
  let mut push = Push {
    each: Vec::new(),
    position: None,
    sort: None,
    slice: None,
  };
  for (clause, value) in modifiers {
    match clause.as_str() {
      "$each" => match value {
        Value::Array(items) => push.each = items.clone(),
        other => {
          return Err(bad_value(format!(
            "The argument to $each in $push must be an array but it was of type: {}",
            type_name(other)
          )))
        }
      },
      "$slice" => {
        push.slice = Some(integral(value).ok_or_else(|| {
          bad_value(format!(
            "The value for $slice must be an integer value but was given type: {}",
            type_name(value)
          ))
        })?)
      }
      "$position" => {
        push.position = Some(integral(value).ok_or_else(|| {
          bad_value(format!(
            "The value for $position must be an integer value, not of type: {}",
            type_name(value)
          ))
        })?)
      }
      "$sort" => push.sort = Some(parse_sort(value)?),
      other => return Err(bad_value(format!("Unrecognized clause in $push: {other}"))),
    }
  }
  Ok(push)
}

/// `1`/`-1` as ascending/descending.
fn direction(value: &Value) -> Option<bool> {
  match integral(value) {
    Some(1) => Some(true),
    Some(-1) => Some(false),
    _ => None,
  }
}

fn parse_sort(value: &Value) -> Result<Sort, PatchError> {
  match value {
    Value::Object(pattern) if pattern.is_empty() => Err(bad_value(
      "The $sort pattern is empty when it should be a set of fields.",
    )),
    Value::Object(pattern) => {
      let mut fields = Vec::with_capacity(pattern.len());
      for (field, order) in pattern {
        let parts: Vec<String> = field.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
          return Err(bad_value(format!(
            "The $sort field is a dotted field but has an empty part: {field}"
          )));
        }
        let ascending = direction(order)
          .ok_or_else(|| bad_value("The $sort element value must be either 1 or -1"))?;
        fields.push((parts, ascending));
      }
      Ok(Sort::Fields(fields))
    }
    Value::Number(_) => direction(value)
      .map(Sort::Whole)
      .ok_or_else(|| bad_value("The $sort element value must be either 1 or -1")),
    _ => Err(bad_value(
      "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded \
       fields",
    )),
  }
}

fn parse_add_to_set(arg: &Value) -> Result<Vec<Value>, PatchError> {
  // As in MongoDB, only an object whose first key is `$each` is the modifier form.
  let Some((first, each)) = arg.as_object().and_then(|map| map.iter().next()) else {
    return Ok(vec![arg.clone()]);
  };
  if first != "$each" {
    return Ok(vec![arg.clone()]);
  }
  if arg.as_object().map_or(0, Map::len) > 1 {
    return Err(bad_value(format!(
      "Found unexpected fields after $each in $addToSet: {}",
      render(arg)
    )));
  }
  let Value::Array(items) = each else {
    return Err(bad_value(format!(
      "The argument to $each in $addToSet must be an array but it was of type {}",
      type_name(each)
    )));
  };
  // The input list is de-duplicated first (by value, so 1 and 1.0 are one value).
  let mut unique: Vec<Value> = Vec::with_capacity(items.len());
  for item in items {
    if !unique.iter().any(|seen| equal(seen, item)) {
      unique.push(item.clone());
    }
  }
  Ok(unique)
}

fn parse_pop(path: &str, arg: &Value) -> Result<bool, PatchError> {
  let Value::Number(n) = arg else {
    return Err(bad_value(format!(
      "Expected a number in: {path}: {}",
      render(arg)
    )));
  };
  match n.as_f64() {
    Some(1.0) => Ok(false),
    Some(-1.0) => Ok(true),
    _ => Err(bad_value(format!("$pop expects 1 or -1, found: {n}"))),
  }
}

fn parse_bit(arg: &Value) -> Result<Vec<(BitOp, i128)>, PatchError> {
  let Value::Object(operations) = arg else {
    return Err(bad_value(format!(
      "The $bit modifier is not compatible with a {}. You must pass in an embedded document: {{$bit: {{field: {{and/or/xor: #}}}}",
      type_name(arg)
    )));
  };
  if operations.is_empty() {
    return Err(bad_value(
      "You must pass in at least one bitwise operation. The format is: \
       {$bit: {field: {and/or/xor: #}}",
    ));
  }
  let mut out = Vec::with_capacity(operations.len());
  for (name, operand) in operations {
    let op = match name.as_str() {
      "and" => BitOp::And,
      "or" => BitOp::Or,
      "xor" => BitOp::Xor,
      other => {
        return Err(bad_value(format!(
          "The $bit modifier only supports 'and', 'or', and 'xor', not '{other}' which is an unknown operator: {{{other}: {}}}",
          render(operand)
        )))
      }
    };
    let Some(value) = operand.as_number().and_then(integer) else {
      return Err(bad_value(format!(
        "The $bit modifier field must be an Integer(32/64 bit); a '{}' is not supported here",
        type_name(operand)
      )));
    };
    out.push((op, value));
  }
  Ok(out)
}

/// A JSON integer (never a double, even `5.0`) widened to i128.
pub(crate) fn integer(n: &Number) -> Option<i128> {
  n.as_i64()
    .map(i128::from)
    .or_else(|| n.as_u64().map(i128::from))
}

/// Rejects overlapping paths across the whole update (`a` vs `a.b`, equal paths); `$rename`
/// registers both of its paths. Like MongoDB, paths are added in document order and the first
/// one that overlaps an earlier one is reported.
fn check_conflicts(ops: &[Op]) -> Result<(), PatchError> {
  let paths = ops.iter().flat_map(|op| {
    let to = match &op.action {
      Action::Rename(to) => Some(to),
      _ => None,
    };
    std::iter::once(&op.path).chain(to)
  });
  let conflict = match ops.first() {
    None => None,
    Some(first) if ops.len() <= PAIRWISE => {
      // At most two paths per operation, gathered on the stack.
      let mut buffer = [&first.path; 2 * PAIRWISE];
      let mut count = 0;
      for path in paths {
        buffer[count] = path;
        count += 1;
      }
      first_conflict_pairwise(&buffer[..count])
    }
    Some(_) => first_conflict_sorted(paths),
  };
  match conflict {
    None => Ok(()),
    Some((path, at)) => Err(PatchError::new(
      ErrorKind::PathConflict,
      format!(
        "Updating the path '{}' would create a conflict at '{}'",
        path.text(),
        path.prefix(at)
      ),
    )),
  }
}

/// Up to this many operations, comparing every pair of paths costs less than building a set.
const PAIRWISE: usize = 12;

/// The first path that overlaps an earlier one, with the number of components they share.
fn first_conflict_pairwise<'p>(paths: &[&'p Path]) -> Option<(&'p Path, usize)> {
  paths.iter().enumerate().find_map(|(i, &path)| {
    // The shortest earlier path that is a prefix of this one (or equal to it)...
    let mut prefix: Option<usize> = None;
    // ...or else one that this path is a prefix of.
    let mut longer = false;
    for other in &paths[..i] {
      if other.covers(path) {
        prefix = Some(prefix.map_or(other.len(), |len| len.min(other.len())));
      } else if path.covers(other) {
        longer = true;
      }
    }
    prefix.or(longer.then(|| path.len())).map(|at| (path, at))
  })
}

/// [`first_conflict_pairwise`] in O(n log n) for large updates: the earlier paths are kept in a
/// set ordered component by component, where the paths that a path is a prefix of directly
/// follow it.
fn first_conflict_sorted<'p>(paths: impl Iterator<Item = &'p Path>) -> Option<(&'p Path, usize)> {
  let mut seen: BTreeSet<ByComponents<'p>> = BTreeSet::new();
  for path in paths {
    let text = path.text();
    let ends = text.match_indices('.').map(|(end, _)| end);
    let prefix = ends
      .chain([text.len()])
      .position(|end| seen.contains(&ByComponents(&text[..end])))
      .map(|index| index + 1);
    let longer = seen
      .range((Bound::Excluded(ByComponents(text)), Bound::Unbounded))
      .next()
      .is_some_and(|other| {
        other
          .0
          .strip_prefix(text)
          .is_some_and(|rest| rest.starts_with('.'))
      });
    match (prefix, longer) {
      (Some(at), _) => return Some((path, at)),
      (None, true) => return Some((path, path.len())),
      (None, false) => {
        seen.insert(ByComponents(text));
      }
    }
  }
  None
}

/// A path's text ordered as its sequence of components.
#[derive(PartialEq, Eq)]
struct ByComponents<'p>(&'p str);

impl Ord for ByComponents<'_> {
  fn cmp(&self, other: &Self) -> Ordering {
    components(self.0).cmp(components(other.0))
  }
}

impl PartialOrd for ByComponents<'_> {
  fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
    Some(self.cmp(other))
  }
}
