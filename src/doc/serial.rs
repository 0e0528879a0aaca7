//! `Serialize` and `Deserialize` for [`Value`] and [`Map`]: JSON text to and from the document
//! with no `serde_json::Value` in between, giving what serde_json's `Value` gives.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Map, Number, Str, Value};

impl Serialize for Value {
  fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
    match self {
      Value::Null => serializer.serialize_unit(),
      Value::Bool(b) => serializer.serialize_bool(*b),
      Value::Number(n) => n.serialize(serializer),
      Value::String(s) => serializer.serialize_str(s),
      Value::Array(items) => {
        let mut seq = serializer.serialize_seq(Some(items.len()))?;
        for item in items {
          seq.serialize_element(item)?;
        }
        seq.end()
      }
      Value::Object(map) => map.serialize(serializer),
    }
  }
}

impl Serialize for Map {
  fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
    let mut out = serializer.serialize_map(Some(self.len()))?;
    for (key, value) in self {
      out.serialize_entry(key.as_str(), value)?;
    }
    out.end()
  }
}

impl<'de> Deserialize<'de> for Value {
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    deserializer.deserialize_any(ValueVisitor)
  }
}

impl<'de> Deserialize<'de> for Map {
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Map, D::Error> {
    match deserializer.deserialize_map(ValueVisitor)? {
      Value::Object(map) => Ok(map),
      _ => Err(de::Error::custom("expected a JSON object")),
    }
  }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
  type Value = Value;

  fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("any valid JSON value")
  }

  fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
    Ok(Value::Bool(b))
  }

  fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
    Ok(Value::Number(n.into()))
  }

  fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
    Ok(Value::Number(n.into()))
  }

  fn visit_i128<E: de::Error>(self, n: i128) -> Result<Value, E> {
    Number::from_i128(n)
      .map(Value::Number)
      .ok_or_else(|| E::custom("JSON number out of range"))
  }

  fn visit_u128<E: de::Error>(self, n: u128) -> Result<Value, E> {
    Number::from_u128(n)
      .map(Value::Number)
      .ok_or_else(|| E::custom("JSON number out of range"))
  }

  // As serde_json: a float that is not finite (which JSON text cannot hold) becomes null.
  fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
    Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
  }

  fn visit_str<E>(self, s: &str) -> Result<Value, E> {
    Ok(Value::String(Str::from(s)))
  }

  fn visit_string<E>(self, s: String) -> Result<Value, E> {
    Ok(Value::String(Str::from(s)))
  }

  fn visit_none<E>(self) -> Result<Value, E> {
    Ok(Value::Null)
  }

  fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
    Value::deserialize(deserializer)
  }

  fn visit_unit<E>(self) -> Result<Value, E> {
    Ok(Value::Null)
  }

  fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
    while let Some(item) = seq.next_element()? {
      items.push(item);
    }
    items.shrink_to_fit();
    Ok(Value::Array(items))
  }

  fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
    let mut map = Map::with_capacity(access.size_hint().unwrap_or(0));
    while let Some(key) = access.next_key_seed(KeySeed)? {
      // A repeated key keeps its first place and takes the last value, as serde_json's map.
      map.insert(key, access.next_value()?);
    }
    map.shrink_to_fit();
    Ok(Value::Object(map))
  }
}

/// A key read straight into a [`Str`], without a `String` first.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
  type Value = Str;

  fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Str, D::Error> {
    deserializer.deserialize_str(self)
  }
}

impl Visitor<'_> for KeySeed {
  type Value = Str;

  fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("a string key")
  }

  fn visit_str<E>(self, s: &str) -> Result<Str, E> {
    Ok(Str::from(s))
  }

  fn visit_string<E>(self, s: String) -> Result<Str, E> {
    Ok(Str::from(s))
  }
}
