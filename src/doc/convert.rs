//! Conversions between [`Value`] and `serde_json::Value`, for the edges where a value is not
//! document content (RPC arguments, messages) and for tests written with `json!`.

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

impl From<&Json> for Value {
  fn from(value: &Json) -> Value {
    match value {
      Json::Null => Value::Null,
      Json::Bool(b) => Value::Bool(*b),
      Json::Number(n) => Value::Number(n.clone()),
      Json::String(s) => Value::String(Str::from(s.as_str())),
      Json::Array(items) => Value::Array(items.iter().map(Value::from).collect()),
      Json::Object(map) => {
        let mut out = Map::with_capacity(map.len());
        for (key, value) in map {
          out.insert(key.as_str(), Value::from(value));
        }
        Value::Object(out)
      }
    }
  }
}

impl From<Value> for Json {
  fn from(value: Value) -> Json {
    match value {
      Value::Null => Json::Null,
      Value::Bool(b) => Json::Bool(b),
      Value::Number(n) => Json::Number(n),
      Value::String(s) => Json::String(s.into_string()),
      Value::Array(items) => Json::Array(items.into_iter().map(Json::from).collect()),
      Value::Object(map) => Json::Object(
        map
          .into_iter()
          .map(|(key, value)| (key.into_string(), Json::from(value)))
          .collect(),
      ),
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

impl From<bool> for Value {
  fn from(b: bool) -> Value {
    Value::Bool(b)
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

impl From<Str> for Value {
  fn from(s: Str) -> Value {
    Value::String(s)
  }
}

impl From<Vec<Value>> for Value {
  fn from(items: Vec<Value>) -> Value {
    Value::Array(items)
  }
}

impl From<Map> for Value {
  fn from(map: Map) -> Value {
    Value::Object(map)
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

// Comparisons with plain values, as serde_json's (`value == "x"`, `value == 1`).

impl PartialEq<str> for Value {
  fn eq(&self, other: &str) -> bool {
    self.as_str() == Some(other)
  }
}

impl PartialEq<&str> for Value {
  fn eq(&self, other: &&str) -> bool {
    self.as_str() == Some(*other)
  }
}

impl PartialEq<String> for Value {
  fn eq(&self, other: &String) -> bool {
    self.as_str() == Some(other.as_str())
  }
}

impl PartialEq<bool> for Value {
  fn eq(&self, other: &bool) -> bool {
    self.as_bool() == Some(*other)
  }
}

impl PartialEq<f64> for Value {
  fn eq(&self, other: &f64) -> bool {
    self.as_f64() == Some(*other)
  }
}

macro_rules! eq_integer {
  ($as:ident, $wide:ty: $($t:ty)*) => {$(
    impl PartialEq<$t> for Value {
      fn eq(&self, other: &$t) -> bool {
        self.$as().is_some_and(|n| n == *other as $wide)
      }
    }
  )*};
}

eq_integer!(as_i64, i64: i8 i16 i32 i64 isize);
eq_integer!(as_u64, u64: u8 u16 u32 u64 usize);
