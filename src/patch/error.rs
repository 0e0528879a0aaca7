//! The engine's one error type, and the helpers that word its messages like MongoDB's.

use std::fmt::{self, Write as _};

use crate::doc::Value;

use super::key::Key;

/// The category of a rejected update; each has a stable code that JS sees as `error.code`
/// (SEMANTICS §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
  /// A top-level key that is not an update operator, or plain keys mixed with operators.
  UnknownOperator,
  /// An operator's value is not an object (`{$set: 1}`).
  BadOperatorArg,
  /// An invalid argument to an operator (`$inc` by a string, a bad `$pop`, `$each`, `$slice`, ...).
  BadValue,
  /// The existing field has the wrong type for the operator (`$inc` on a string, `$push` on a number).
  TypeMismatch,
  /// The path runs through a scalar, `null` or string, or uses a non-index on an array.
  PathNotViable,
  /// Two paths of the update overlap.
  PathConflict,
  /// An empty path or an empty path component.
  EmptyPath,
  /// A `$`-prefixed field name where a field is expected.
  DollarField,
  /// `$` or `$[id]` (no query, no arrayFilters), or `$[]` on a missing or non-array field.
  Positional,
  /// `$rename` with equal, overlapping or dynamic paths, or an array element as source or target.
  RenameInvalid,
  /// An arithmetic result that fits neither a 64-bit integer nor a finite double.
  Overflow,
}

impl ErrorKind {
  /// Every kind.
  pub const ALL: [ErrorKind; 11] = [
    ErrorKind::UnknownOperator,
    ErrorKind::BadOperatorArg,
    ErrorKind::BadValue,
    ErrorKind::TypeMismatch,
    ErrorKind::PathNotViable,
    ErrorKind::PathConflict,
    ErrorKind::EmptyPath,
    ErrorKind::DollarField,
    ErrorKind::Positional,
    ErrorKind::RenameInvalid,
    ErrorKind::Overflow,
  ];

  /// The memsync error code, e.g. `"ERR_PATH_CONFLICT"`.
  pub const fn code(self) -> &'static str {
    match self {
      ErrorKind::UnknownOperator => "ERR_UNKNOWN_OPERATOR",
      ErrorKind::BadOperatorArg => "ERR_BAD_OPERATOR_ARG",
      ErrorKind::BadValue => "ERR_BAD_VALUE",
      ErrorKind::TypeMismatch => "ERR_TYPE_MISMATCH",
      ErrorKind::PathNotViable => "ERR_PATH_NOT_VIABLE",
      ErrorKind::PathConflict => "ERR_PATH_CONFLICT",
      ErrorKind::EmptyPath => "ERR_EMPTY_PATH",
      ErrorKind::DollarField => "ERR_DOLLAR_FIELD",
      ErrorKind::Positional => "ERR_POSITIONAL",
      ErrorKind::RenameInvalid => "ERR_RENAME_INVALID",
      ErrorKind::Overflow => "ERR_OVERFLOW",
    }
  }
}

/// A rejected update: the category and a message that reads like MongoDB's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError {
  /// The category, which carries the stable code.
  pub kind: ErrorKind,
  /// The human-readable explanation.
  pub message: String,
}

impl PatchError {
  pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> PatchError {
    PatchError {
      kind,
      message: message.into(),
    }
  }
}

impl fmt::Display for PatchError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&self.message)
  }
}

impl std::error::Error for PatchError {}

/// The BSON type name MongoDB prints for a value (`int` for 32-bit integers, `long` beyond).
pub(crate) fn type_name(value: &Value) -> &'static str {
  match value {
    Value::Null => "null",
    Value::Bool(_) => "bool",
    Value::Number(n) => match n.as_i64() {
      Some(i) if i32::try_from(i).is_ok() => "int",
      Some(_) => "long",
      None if n.is_u64() => "long",
      None => "double",
    },
    Value::String(_) => "string",
    Value::Array(_) => "array",
    Value::Object(_) => "object",
  }
}

/// Messages quote values; a long one is cut here so that an error on a huge document stays cheap.
const RENDER_LIMIT: usize = 120;

/// Renders a value the way the mongo shell prints it (`{ a: 1, b: "x" }`), cut after
/// [`RENDER_LIMIT`] characters.
pub(crate) fn render(value: &Value) -> String {
  let mut out = String::new();
  write_value(&mut out, value);
  out
}

fn write_value(out: &mut String, value: &Value) {
  if out.len() > RENDER_LIMIT {
    return;
  }
  match value {
    Value::Array(items) if items.is_empty() => out.push_str("[]"),
    Value::Object(map) if map.is_empty() => out.push_str("{}"),
    Value::Array(items) => {
      out.push_str("[ ");
      for (i, item) in items.iter().enumerate() {
        if out.len() > RENDER_LIMIT {
          out.push_str("...");
          break;
        }
        if i > 0 {
          out.push_str(", ");
        }
        write_value(out, item);
      }
      out.push_str(" ]");
    }
    Value::Object(map) => {
      out.push_str("{ ");
      for (i, (key, item)) in map.iter().enumerate() {
        if out.len() > RENDER_LIMIT {
          out.push_str("...");
          break;
        }
        if i > 0 {
          out.push_str(", ");
        }
        out.push_str(key);
        out.push_str(": ");
        write_value(out, item);
      }
      out.push_str(" }");
    }
    scalar => {
      let _ = write!(out, "{scalar}");
    }
  }
}

/// Renders an element as MongoDB's `BSONElement::toString` does: `name: value` (just the value
/// for the document root).
pub(crate) fn render_element(keys: &[Key], value: &Value) -> String {
  match keys.last() {
    Some(key) => format!("{key}: {}", render(value)),
    None => render(value),
  }
}

/// How a message names the document: MongoDB quotes its `_id`, memsync documents may lack one.
pub(crate) fn document_name(doc: &Value) -> String {
  match doc.get("_id") {
    Some(id) => format!("{{_id: {}}}", render(id)),
    None => "The document".to_string(),
  }
}

/// The dotted form of a concrete path, as messages print it.
pub(crate) fn dotted(keys: &[Key]) -> String {
  let mut out = String::new();
  for (i, key) in keys.iter().enumerate() {
    if i > 0 {
      out.push('.');
    }
    let _ = write!(out, "{key}");
  }
  out
}
