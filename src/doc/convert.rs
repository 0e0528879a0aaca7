//! Conversions between [`Value`] and `serde_json::Value`, and from Rust's scalars: for tests,
//! the crate's and `tests/`, which state documents with `json!`. The library itself never converts
//! between the two value types: it parses text straight into a [`Value`].

use serde_json::Value as Json;

use super::{Map, Str, Value};

impl From<Json> for Value {
  fn from(value: Json) -> Value {
    match value {
      Json::Null => Value::Null,
      Json::Bool(b) => Value::Bool(b),
      Json::Number(n) => Value::Number(n),
      Json::String(s) => Value::String(Str::from(s)),
      Json::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
      Json::Object(map) => {
        let mut out = Map::with_capacity(map.len());
        for (key, value) in map {
          out.insert(key, Value::from(value));
        }
        Value::Object(out)
      }
    }
  }
}

impl From<&Value> for Json {
  fn from(value: &Value) -> Json {
    match value {
      Value::Null => Json::Null,
      Value::Bool(b) => Json::Bool(*b),
      Value::Number(n) => Json::Number(n.clone()),
      Value::String(s) => Json::String(s.to_string()),
      Value::Array(items) => Json::Array(items.iter().map(Json::from).collect()),
      Value::Object(map) => Json::Object(
        map
          .iter()
          .map(|(key, value)| (key.to_string(), Json::from(value)))
          .collect(),
      ),
    }
  }
}

macro_rules! from_integer {
  ($($t:ty)*) => {$(
    impl From<$t> for Value {
      fn from(n: $t) -> Value {
        Value::Number(n.into())
      }
    }
  )*};
}

from_integer!(i8 i16 i32 i64 isize u8 u16 u32 u64 usize);

/// As serde_json: a float that is not finite becomes null.
impl From<f64> for Value {
  fn from(n: f64) -> Value {
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
  }
}

impl From<&str> for Value {
  fn from(s: &str) -> Value {
    Value::String(Str::from(s))
  }
}

impl From<String> for Value {
  fn from(s: String) -> Value {
    Value::String(Str::from(s))
  }
}

/// Structural equality with serde_json's value, by the same rules as `Value`'s own: for tests
/// that state what they expect with `json!`.
impl PartialEq<Json> for Value {
  fn eq(&self, other: &Json) -> bool {
    match (self, other) {
      (Value::Null, Json::Null) => true,
      (Value::Bool(a), Json::Bool(b)) => a == b,
      (Value::Number(a), Json::Number(b)) => a == b,
      (Value::String(a), Json::String(b)) => a == b,
      (Value::Array(a), Json::Array(b)) => {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
      }
      (Value::Object(a), Json::Object(b)) => {
        a.len() == b.len()
          && a
            .iter()
            .all(|(key, value)| b.get(key.as_str()).is_some_and(|theirs| value == theirs))
      }
      _ => false,
    }
  }
}

impl PartialEq<Value> for Json {
  fn eq(&self, other: &Value) -> bool {
    other == self
  }
}

/// A string's comparison, as serde_json's (`value == "x"`).
impl PartialEq<&str> for Value {
  fn eq(&self, other: &&str) -> bool {
    self.as_str() == Some(*other)
  }
}
