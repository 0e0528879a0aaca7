//! A component of a concrete path, and reading a value at such a path. Apart from the changes
//! and the errors, which both name paths.

use std::fmt;

use crate::doc::Value;

/// One component of a concrete path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
  /// An object key (numeric-looking keys of objects stay keys).
  Field(String),
  /// An index into an array.
  Index(usize),
}

impl fmt::Display for Key {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Key::Field(name) => f.write_str(name),
      Key::Index(index) => write!(f, "{index}"),
    }
  }
}

/// The value at `path` in `doc`, if there is one.
pub fn get<'a>(doc: &'a Value, path: &[Key]) -> Option<&'a Value> {
  path
    .iter()
    .try_fold(doc, |current, key| match (current, key) {
      (Value::Object(map), Key::Field(name)) => map.get(name),
      (Value::Array(items), Key::Index(index)) => items.get(*index),
      _ => None,
    })
}

/// The value at `path` in `doc`, to change, if there is one.
pub fn get_mut<'a>(doc: &'a mut Value, path: &[Key]) -> Option<&'a mut Value> {
  path
    .iter()
    .try_fold(doc, |current, key| match (current, key) {
      (Value::Object(map), Key::Field(name)) => map.get_mut(name),
      (Value::Array(items), Key::Index(index)) => items.get_mut(*index),
      _ => None,
    })
}
