//! The document's JSON value: [`Value`] and [`Map`], smaller and quicker to build than
//! `serde_json::Value` with `preserve_order`. Pure: no I/O.
//!
//! - Strings are [`Str`] (`CompactString`): up to 24 bytes inline, so most cost no allocation of
//!   their own.
//! - An object's keys are [`Key`]s, shared strings behind one thin pointer: the objects of a
//!   parsed array whose keys are the same, in the same order (records), share one copy of each.
//! - A [`Map`] keeps its entries in insertion order behind one thin pointer, scans them when
//!   small and builds a hash index once it has more than 32 keys.
//! - A [`Value`] is 32 bytes (serde_json's with `preserve_order` is 80), an entry of a [`Map`] 40.
//!
//! The method names are serde_json's, so code written against it reads the same. Text is parsed
//! straight into a [`Value`] (its `Deserialize`); `From` converts from and to `serde_json::Value`
//! for tests written with `json!`.
//!
//! `docs/design/compact-document.md` has the measurements.

mod convert;
mod map;
mod serial;
#[cfg(test)]
mod tests;

use std::fmt;

pub use map::{Iter, IterMut, Map};
pub use serde_json::Number;

/// A string of the document.
pub type Str = compact_str::CompactString;

/// A key of an object in the document: 8 bytes, its text shared by reference count.
pub type Key = arcstr::ArcStr;

/// A JSON value of the document. Equality compares numbers as serde_json does (an integer is not
/// equal to a double) and objects regardless of key order.
#[derive(Clone, PartialEq, Default)]
pub enum Value {
  /// `null`.
  #[default]
  Null,
  /// `true` or `false`.
  Bool(bool),
  /// A number: u64, i64 or a finite f64.
  Number(Number),
  /// A string.
  String(Str),
  /// An array.
  Array(Vec<Value>),
  /// An object, its keys in insertion order.
  Object(Map),
}

static NULL: Value = Value::Null;

impl Value {
  /// The string, if this is one.
  pub fn as_str(&self) -> Option<&str> {
    match self {
      Value::String(s) => Some(s),
      _ => None,
    }
  }

  /// The boolean, if this is one.
  pub fn as_bool(&self) -> Option<bool> {
    match self {
      Value::Bool(b) => Some(*b),
      _ => None,
    }
  }

  /// The number, if this is one.
  pub fn as_number(&self) -> Option<&Number> {
    match self {
      Value::Number(n) => Some(n),
      _ => None,
    }
  }

  /// The number as an i64, if it is an integer that fits.
  pub fn as_i64(&self) -> Option<i64> {
    self.as_number().and_then(Number::as_i64)
  }

  /// The number as a u64, if it is a non-negative integer that fits.
  pub fn as_u64(&self) -> Option<u64> {
    self.as_number().and_then(Number::as_u64)
  }

  /// The number as an f64 (possibly rounded), if this is a number.
  pub fn as_f64(&self) -> Option<f64> {
    self.as_number().and_then(Number::as_f64)
  }

  /// The array, if this is one.
  pub fn as_array(&self) -> Option<&Vec<Value>> {
    match self {
      Value::Array(items) => Some(items),
      _ => None,
    }
  }

  /// The array to change, if this is one.
  pub fn as_array_mut(&mut self) -> Option<&mut Vec<Value>> {
    match self {
      Value::Array(items) => Some(items),
      _ => None,
    }
  }

  /// The object, if this is one.
  pub fn as_object(&self) -> Option<&Map> {
    match self {
      Value::Object(map) => Some(map),
      _ => None,
    }
  }

  /// The object to change, if this is one.
  pub fn as_object_mut(&mut self) -> Option<&mut Map> {
    match self {
      Value::Object(map) => Some(map),
      _ => None,
    }
  }

  /// Whether this is `null`.
  pub fn is_null(&self) -> bool {
    matches!(self, Value::Null)
  }

  /// Whether this is a number stored as an i64 (or a u64 that fits one).
  pub fn is_i64(&self) -> bool {
    self.as_number().is_some_and(Number::is_i64)
  }

  /// Whether this is a number stored as a u64 (or a non-negative i64).
  pub fn is_u64(&self) -> bool {
    self.as_number().is_some_and(Number::is_u64)
  }

  /// Whether this is a number stored as an f64.
  pub fn is_f64(&self) -> bool {
    self.as_number().is_some_and(Number::is_f64)
  }

  /// Whether this is an array.
  pub fn is_array(&self) -> bool {
    matches!(self, Value::Array(_))
  }

  /// Whether this is an object.
  pub fn is_object(&self) -> bool {
    matches!(self, Value::Object(_))
  }

  /// The field `key` of an object; `None` for anything else.
  pub fn get(&self, key: &str) -> Option<&Value> {
    self.as_object().and_then(|map| map.get(key))
  }

  /// The field `key` of an object to change; `None` for anything else.
  pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
    self.as_object_mut().and_then(|map| map.get_mut(key))
  }

  /// Moves the value out and leaves `null`.
  pub fn take(&mut self) -> Value {
    std::mem::take(self)
  }
}

/// `value["key"]`: the field, or `null` when it is missing or `value` is not an object (as
/// serde_json's).
impl std::ops::Index<&str> for Value {
  type Output = Value;
  fn index(&self, key: &str) -> &Value {
    self.get(key).unwrap_or(&NULL)
  }
}

/// `value[i]`: the element, or `null` when it is missing or `value` is not an array.
impl std::ops::Index<usize> for Value {
  type Output = Value;
  fn index(&self, at: usize) -> &Value {
    self
      .as_array()
      .and_then(|items| items.get(at))
      .unwrap_or(&NULL)
  }
}

/// The compact JSON text, as serde_json's `Display`.
impl fmt::Display for Value {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
    f.write_str(&text)
  }
}

impl fmt::Debug for Value {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Value::Null => f.write_str("Null"),
      Value::Bool(b) => write!(f, "Bool({b})"),
      Value::Number(n) => write!(f, "Number({n})"),
      Value::String(s) => write!(f, "String({s:?})"),
      Value::Array(items) => {
        f.write_str("Array ")?;
        f.debug_list().entries(items).finish()
      }
      Value::Object(map) => {
        f.write_str("Object ")?;
        fmt::Debug::fmt(map, f)
      }
    }
  }
}

/// serde_json's `json!`, converted into a document [`Value`]: tests (the crate's, `tests/` and
/// `benches/`) state documents as before. Use it as `memsync::doc::json!`.
#[doc(hidden)]
#[macro_export]
macro_rules! doc_json {
  ($($json:tt)+) => {
    $crate::doc::Value::from(::serde_json::json!($($json)+))
  };
}
pub use crate::doc_json as json;
