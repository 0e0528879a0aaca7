//! `$pull` conditions: a small MongoDB query matcher over JSON values.
//!
//! As in MongoDB's `pull_node.cpp`, an operand object whose first key is a query operator
//! (`{$gte: 6}`) is a condition on each element as a value, any other object is a query run on
//! each element that is a document (partial match, dotted keys, implicit array traversal), and
//! anything else matches by equality. Supported: `$eq $ne $gt $gte $lt $lte $in $nin $regex
//! $options $exists $not $elemMatch $size $all $mod $type` and `$and $or $nor`.

use std::cmp::Ordering;

use regex::{Regex, RegexBuilder};

use crate::doc::{Map, Value};

use super::compare::{compare_same_class, equal, Num};
use super::error::{render, ErrorKind, PatchError};
use super::path::parse_index;

/// How `$pull` decides which elements to remove.
#[derive(Debug, Clone)]
pub(crate) enum PullMatcher {
  /// A scalar or array operand: elements equal to it.
  Equal(Value),
  /// `{$op: ...}`: each element tested as a value.
  Value(Vec<Cond>),
  /// Any other object: a query on each element that is a document.
  Document(Query),
}

impl PullMatcher {
  /// Parses a `$pull` operand.
  pub(crate) fn parse(arg: &Value) -> Result<PullMatcher, PatchError> {
    match arg {
      Value::Object(map) => match map.keys().next() {
        Some(first) if is_value_operator(first) => Ok(PullMatcher::Value(parse_conds(map)?)),
        _ => Ok(PullMatcher::Document(Query::parse(map)?)),
      },
      other => Ok(PullMatcher::Equal(other.clone())),
    }
  }

  /// Whether `element` is to be removed.
  pub(crate) fn matches(&self, element: &Value) -> bool {
    match self {
      PullMatcher::Equal(value) => equal(element, value),
      PullMatcher::Value(conds) => all_match(conds, &[Some(element)]),
      PullMatcher::Document(query) => element.is_object() && query.matches(element),
    }
  }
}

/// The operators that apply to a value (MongoDB's "path-accepting keywords").
fn is_value_operator(name: &str) -> bool {
  matches!(
    name,
    "$eq"
      | "$ne"
      | "$gt"
      | "$gte"
      | "$lt"
      | "$lte"
      | "$in"
      | "$nin"
      | "$regex"
      | "$options"
      | "$exists"
      | "$not"
      | "$elemMatch"
      | "$size"
      | "$all"
      | "$mod"
      | "$type"
  )
}

/// A query on a document: all clauses must hold.
#[derive(Debug, Clone)]
pub(crate) struct Query {
  clauses: Vec<Clause>,
}

#[derive(Debug, Clone)]
enum Clause {
  /// Conditions on the values at a dotted path.
  Path(Vec<String>, Vec<Cond>),
  And(Vec<Query>),
  Or(Vec<Query>),
  Nor(Vec<Query>),
}

/// A comparison for `$gt`, `$gte`, `$lt`, `$lte`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cmp {
  Gt,
  Gte,
  Lt,
  Lte,
}

/// A type named by `$type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeName {
  Double,
  String,
  Object,
  Array,
  Bool,
  Null,
  Int,
  Long,
  Number,
}

/// A condition on the values found at a path.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
  Eq(Value),
  Ne(Value),
  Compare(Cmp, Value),
  In(Vec<Value>),
  Nin(Vec<Value>),
  Regex(Regex),
  Exists(bool),
  Not(Vec<Cond>),
  ElemMatchValue(Vec<Cond>),
  ElemMatchDocument(Query),
  /// `None` for a negative size, which matches nothing.
  Size(Option<usize>),
  All(Vec<Value>),
  Mod(i128, i128),
  Type(Vec<TypeName>),
}

fn bad_value(message: impl Into<String>) -> PatchError {
  PatchError::new(ErrorKind::BadValue, message)
}

impl Query {
  fn parse(map: &Map) -> Result<Query, PatchError> {
    let mut clauses = Vec::with_capacity(map.len());
    for (key, value) in map {
      let clause = match key.as_str() {
        "$and" => Clause::And(parse_list(key, value)?),
        "$or" => Clause::Or(parse_list(key, value)?),
        "$nor" => Clause::Nor(parse_list(key, value)?),
        "$comment" => continue,
        other if other.starts_with('$') => {
          return Err(bad_value(format!("unknown top level operator: {other}")))
        }
        path => {
          let path = path.split('.').map(str::to_string).collect();
          let conds = match value {
            Value::Object(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
              parse_conds(ops)?
            }
            other => vec![Cond::Eq(other.clone())],
          };
          Clause::Path(path, conds)
        }
      };
      clauses.push(clause);
    }
    Ok(Query { clauses })
  }

  fn matches(&self, doc: &Value) -> bool {
    self.clauses.iter().all(|clause| match clause {
      Clause::Path(path, conds) => {
        let mut found = Vec::new();
        leaves(doc, path, &mut found);
        all_match(conds, &found)
      }
      Clause::And(queries) => queries.iter().all(|q| q.matches(doc)),
      Clause::Or(queries) => queries.iter().any(|q| q.matches(doc)),
      Clause::Nor(queries) => !queries.iter().any(|q| q.matches(doc)),
    })
  }
}

fn parse_list(name: &str, value: &Value) -> Result<Vec<Query>, PatchError> {
  match value {
    Value::Array(items) if !items.is_empty() => items
      .iter()
      .map(|item| match item {
        Value::Object(map) => Query::parse(map),
        _ => Err(bad_value("$or/$and/$nor entries need to be full objects")),
      })
      .collect(),
    _ => Err(bad_value(format!("{name} must be a nonempty array"))),
  }
}

fn parse_conds(map: &Map) -> Result<Vec<Cond>, PatchError> {
  let mut conds = Vec::with_capacity(map.len());
  let mut regex = None;
  let mut options = None;
  for (name, arg) in map {
    let cond = match name.as_str() {
      "$eq" => Cond::Eq(arg.clone()),
      "$ne" => Cond::Ne(arg.clone()),
      "$gt" => Cond::Compare(Cmp::Gt, arg.clone()),
      "$gte" => Cond::Compare(Cmp::Gte, arg.clone()),
      "$lt" => Cond::Compare(Cmp::Lt, arg.clone()),
      "$lte" => Cond::Compare(Cmp::Lte, arg.clone()),
      "$in" => Cond::In(array_arg(name, arg)?),
      "$nin" => Cond::Nin(array_arg(name, arg)?),
      "$all" => Cond::All(array_arg(name, arg)?),
      "$regex" => {
        regex = Some(
          arg
            .as_str()
            .ok_or_else(|| bad_value("$regex has to be a string"))?,
        );
        continue;
      }
      "$options" => {
        options = Some(
          arg
            .as_str()
            .ok_or_else(|| bad_value("$options has to be a string"))?,
        );
        continue;
      }
      "$exists" => Cond::Exists(truthy(arg)),
      "$not" => match arg {
        Value::Object(inner) if inner.is_empty() => return Err(bad_value("$not cannot be empty")),
        Value::Object(inner) if inner.keys().all(|k| k.starts_with('$')) => {
          Cond::Not(parse_conds(inner)?)
        }
        _ => return Err(bad_value("$not needs a regex or a document")),
      },
      "$elemMatch" => match arg {
        Value::Object(inner) if inner.keys().next().is_some_and(|k| is_value_operator(k)) => {
          Cond::ElemMatchValue(parse_conds(inner)?)
        }
        Value::Object(inner) => Cond::ElemMatchDocument(Query::parse(inner)?),
        _ => return Err(bad_value("$elemMatch needs an Object")),
      },
      "$size" => Cond::Size(parse_size(arg)?),
      "$mod" => parse_mod(arg)?,
      "$type" => Cond::Type(parse_types(arg)?),
      other => return Err(bad_value(format!("unknown operator: {other}"))),
    };
    conds.push(cond);
  }
  match (regex, options) {
    (Some(pattern), options) => conds.push(Cond::Regex(compile(pattern, options.unwrap_or(""))?)),
    (None, Some(_)) => return Err(bad_value("$options needs a $regex")),
    (None, None) => {}
  }
  Ok(conds)
}

fn array_arg(name: &str, arg: &Value) -> Result<Vec<Value>, PatchError> {
  match arg {
    Value::Array(items) => Ok(items.clone()),
    _ => Err(bad_value(format!("{name} needs an array"))),
  }
}

/// MongoDB's `trueValue`: false, null and numeric zero are false, everything else is true.
fn truthy(value: &Value) -> bool {
  match value {
    Value::Null => false,
    Value::Bool(b) => *b,
    Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
    _ => true,
  }
}

/// Builds the regex with MongoDB's `i`, `m`, `s`, `x` options. This is Rust's `regex` engine,
/// not PCRE: look-around and back-references are rejected as invalid.
fn compile(pattern: &str, options: &str) -> Result<Regex, PatchError> {
  let mut builder = RegexBuilder::new(pattern);
  for flag in options.chars() {
    match flag {
      'i' => builder.case_insensitive(true),
      'm' => builder.multi_line(true),
      's' => builder.dot_matches_new_line(true),
      'x' => builder.ignore_whitespace(true),
      'u' => builder.unicode(true),
      other => return Err(bad_value(format!("invalid flag in regex options: {other}"))),
    };
  }
  builder
    .build()
    .map_err(|err| bad_value(format!("Regular expression is invalid: {err}")))
}

fn whole_number(arg: &Value) -> Option<i128> {
  match Num::of(arg.as_number()?) {
    Num::Int(i) => Some(i),
    Num::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => Some(f as i128),
    Num::Float(_) => None,
  }
}

fn parse_size(arg: &Value) -> Result<Option<usize>, PatchError> {
  let size = whole_number(arg).ok_or_else(|| bad_value("$size needs a number"))?;
  Ok(usize::try_from(size).ok())
}

fn parse_mod(arg: &Value) -> Result<Cond, PatchError> {
  let Value::Array(items) = arg else {
    return Err(bad_value("malformed mod, needs to be an array"));
  };
  match items.as_slice() {
    [divisor, remainder] => {
      let truncate = |v: &Value, what: &str| {
        v.as_number()
          .map(|n| match Num::of(n) {
            Num::Int(i) => i,
            Num::Float(f) => f.trunc().clamp(-1e30, 1e30) as i128,
          })
          .ok_or_else(|| bad_value(format!("malformed mod, {what} not a number")))
      };
      let divisor = truncate(divisor, "divisor")?;
      let remainder = truncate(remainder, "remainder")?;
      if divisor == 0 {
        return Err(bad_value("divisor cannot be 0"));
      }
      Ok(Cond::Mod(divisor, remainder))
    }
    [] | [_] => Err(bad_value("malformed mod, not enough elements")),
    _ => Err(bad_value("malformed mod, too many elements")),
  }
}

fn parse_types(arg: &Value) -> Result<Vec<TypeName>, PatchError> {
  let one = |v: &Value| -> Result<TypeName, PatchError> {
    match v {
      Value::String(alias) => Ok(match alias.as_str() {
        "double" => TypeName::Double,
        "string" => TypeName::String,
        "object" => TypeName::Object,
        "array" => TypeName::Array,
        "bool" => TypeName::Bool,
        "null" => TypeName::Null,
        "int" => TypeName::Int,
        "long" => TypeName::Long,
        "number" => TypeName::Number,
        other => return Err(bad_value(format!("Unknown type name alias: {other}"))),
      }),
      Value::Number(_) => Ok(match whole_number(v) {
        Some(1) => TypeName::Double,
        Some(2) => TypeName::String,
        Some(3) => TypeName::Object,
        Some(4) => TypeName::Array,
        Some(8) => TypeName::Bool,
        Some(10) => TypeName::Null,
        Some(16) => TypeName::Int,
        Some(18) => TypeName::Long,
        _ => {
          return Err(bad_value(format!(
            "Invalid numerical type code: {}",
            render(v)
          )))
        }
      }),
      _ => Err(bad_value(
        "type must be represented as a number or a string",
      )),
    }
  };
  match arg {
    Value::Array(items) => items.iter().map(one).collect(),
    single => Ok(vec![one(single)?]),
  }
}

/// Collects the values a dotted path reaches, MongoDB style: arrays along the way are searched
/// element by element (and by index for a numeric component); `None` stands for "missing".
fn leaves<'a>(value: &'a Value, path: &[String], out: &mut Vec<Option<&'a Value>>) {
  let Some((head, rest)) = path.split_first() else {
    out.push(Some(value));
    return;
  };
  match value {
    Value::Object(map) => match map.get(head) {
      Some(child) => leaves(child, rest, out),
      None => out.push(None),
    },
    Value::Array(items) => {
      let before = out.len();
      if let Some(child) = parse_index(head).and_then(|i| items.get(i)) {
        leaves(child, rest, out);
      }
      for item in items.iter().filter(|item| item.is_object()) {
        leaves(item, path, out);
      }
      if out.len() == before {
        out.push(None);
      }
    }
    _ => out.push(None),
  }
}

fn all_match(conds: &[Cond], found: &[Option<&Value>]) -> bool {
  conds.iter().all(|cond| cond.matches(found))
}

/// Whether `test` holds for a value or, when it is an array, for one of its elements (how
/// queries see arrays).
fn value_or_element(value: &Value, test: &dyn Fn(&Value) -> bool) -> bool {
  test(value) || matches!(value, Value::Array(items) if items.iter().any(test))
}

fn equals_leaf(target: &Value, leaf: Option<&Value>) -> bool {
  match leaf {
    None => target.is_null(),
    Some(value) => value_or_element(value, &|v| equal(v, target)),
  }
}

impl Cond {
  fn matches(&self, found: &[Option<&Value>]) -> bool {
    let any = |test: &dyn Fn(&Value) -> bool| found.iter().flatten().any(|v| test(v));
    match self {
      Cond::Eq(target) => found.iter().any(|leaf| equals_leaf(target, *leaf)),
      Cond::Ne(target) => !found.iter().any(|leaf| equals_leaf(target, *leaf)),
      Cond::In(targets) => found
        .iter()
        .any(|leaf| targets.iter().any(|t| equals_leaf(t, *leaf))),
      Cond::Nin(targets) => !found
        .iter()
        .any(|leaf| targets.iter().any(|t| equals_leaf(t, *leaf))),
      Cond::All(targets) => {
        !targets.is_empty()
          && targets
            .iter()
            .all(|t| found.iter().any(|leaf| equals_leaf(t, *leaf)))
      }
      Cond::Compare(cmp, target) => {
        let test = |v: &Value| {
          compare_same_class(v, target).is_some_and(|order| match cmp {
            Cmp::Gt => order == Ordering::Greater,
            Cmp::Gte => order != Ordering::Less,
            Cmp::Lt => order == Ordering::Less,
            Cmp::Lte => order != Ordering::Greater,
          })
        };
        // A missing field compares as null, so `$gte: null` and `$lte: null` match it.
        let missing = target.is_null() && matches!(cmp, Cmp::Gte | Cmp::Lte);
        found.iter().any(|leaf| match leaf {
          None => missing,
          Some(value) => value_or_element(value, &test),
        })
      }
      Cond::Regex(regex) => {
        any(&|v| value_or_element(v, &|e| e.as_str().is_some_and(|s| regex.is_match(s))))
      }
      Cond::Exists(wanted) => found.iter().any(Option::is_some) == *wanted,
      Cond::Not(conds) => !all_match(conds, found),
      Cond::ElemMatchValue(conds) => any(&|v| elements(v).any(|e| all_match(conds, &[Some(e)]))),
      Cond::ElemMatchDocument(query) => {
        any(&|v| elements(v).any(|e| e.is_object() && query.matches(e)))
      }
      Cond::Size(size) => {
        any(&|v| matches!((v, size), (Value::Array(items), Some(n)) if items.len() == *n))
      }
      Cond::Mod(divisor, remainder) => any(&|v| {
        value_or_element(v, &|e| {
          e.as_number().is_some_and(|n| {
            let whole = match Num::of(n) {
              Num::Int(i) => Some(i),
              Num::Float(f) if f.is_finite() => Some(f.trunc().clamp(-1e30, 1e30) as i128),
              Num::Float(_) => None,
            };
            whole.is_some_and(|w| w % divisor == *remainder)
          })
        })
      }),
      Cond::Type(types) => any(&|v| value_or_element(v, &|e| types.iter().any(|t| is_type(e, *t)))),
    }
  }
}

/// The elements of an array (nothing for other values).
fn elements(value: &Value) -> std::slice::Iter<'_, Value> {
  match value {
    Value::Array(items) => items.iter(),
    _ => [].iter(),
  }
}

fn is_type(value: &Value, wanted: TypeName) -> bool {
  match (wanted, value) {
    (TypeName::Null, Value::Null) => true,
    (TypeName::Bool, Value::Bool(_)) => true,
    (TypeName::String, Value::String(_)) => true,
    (TypeName::Object, Value::Object(_)) => true,
    (TypeName::Array, Value::Array(_)) => true,
    (TypeName::Number, Value::Number(_)) => true,
    (TypeName::Double, Value::Number(n)) => n.is_f64(),
    (TypeName::Int, Value::Number(n)) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
    (TypeName::Long, Value::Number(n)) => {
      !n.is_f64() && n.as_i64().is_none_or(|i| i32::try_from(i).is_err())
    }
    _ => false,
  }
}
