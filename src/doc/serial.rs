//! `Serialize` and `Deserialize` for [`Value`] and [`Map`]: JSON text to and from the document
//! with no `serde_json::Value` in between, giving what serde_json's `Value` gives.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Key, Map, Number, Str, Value};

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
    ValueSeed::top(&mut Shapes::default()).deserialize(deserializer)
  }
}

impl<'de> Deserialize<'de> for Map {
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Map, D::Error> {
    match deserializer.deserialize_map(ValueSeed::top(&mut Shapes::default()))? {
      Value::Object(map) => Ok(map),
      _ => Err(de::Error::custom("expected a JSON object")),
    }
  }
}

/// The keys of the last object read at each depth inside an array: the next object there whose
/// keys are the same, in the same order (the records of a list, their nested objects), takes
/// them by reference instead of a copy each.
#[derive(Default)]
struct Shapes(Vec<Vec<Key>>);

impl Shapes {
  fn key(&self, depth: usize, at: usize) -> Option<Key> {
    self.0.get(depth)?.get(at).cloned()
  }

  fn remember(&mut self, depth: usize, map: &Map) {
    if self.0.len() <= depth {
      self.0.resize_with(depth + 1, Vec::new);
    }
    self.0[depth] = map.keys().cloned().collect();
  }
}

/// Reads one value at `depth`; `in_array`: an array holds it or one of its parents, where objects
/// of one shape repeat.
struct ValueSeed<'s> {
  shapes: &'s mut Shapes,
  depth: usize,
  in_array: bool,
}

impl<'s> ValueSeed<'s> {
  fn top(shapes: &'s mut Shapes) -> ValueSeed<'s> {
    ValueSeed {
      shapes,
      depth: 0,
      in_array: false,
    }
  }

  fn below(&mut self, in_array: bool) -> ValueSeed<'_> {
    ValueSeed {
      shapes: self.shapes,
      depth: self.depth + 1,
      in_array: self.in_array || in_array,
    }
  }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
  type Value = Value;

  fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
    deserializer.deserialize_any(self)
  }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
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
    self.deserialize(deserializer)
  }

  fn visit_unit<E>(self) -> Result<Value, E> {
    Ok(Value::Null)
  }

  fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
    while let Some(item) = seq.next_element_seed(self.below(true))? {
      items.push(item);
    }
    items.shrink_to_fit();
    Ok(Value::Array(items))
  }

  fn visit_map<A: MapAccess<'de>>(mut self, mut access: A) -> Result<Value, A::Error> {
    let mut map = Map::with_capacity(access.size_hint().unwrap_or(0));
    let mut reshaped = false;
    loop {
      let expected = if self.in_array {
        self.shapes.key(self.depth, map.len())
      } else {
        None
      };
      let Some(key) = access.next_key_seed(KeySeed(expected))? else {
        break;
      };
      reshaped |= !key.shared;
      // A repeated key keeps its first place and takes the last value, as serde_json's map.
      map.insert(key.key, access.next_value_seed(self.below(false))?);
    }
    map.shrink_to_fit();
    if self.in_array && reshaped {
      self.shapes.remember(self.depth, &map);
    }
    Ok(Value::Object(map))
  }
}

/// A key read; `shared`: it is the key expected there, taken by reference.
struct ReadKey {
  key: Key,
  shared: bool,
}

/// A key read straight into a [`Key`], without a `String` first: the one expected when its text
/// is the same.
struct KeySeed(Option<Key>);

impl<'de> DeserializeSeed<'de> for KeySeed {
  type Value = ReadKey;

  fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ReadKey, D::Error> {
    deserializer.deserialize_str(self)
  }
}

impl Visitor<'_> for KeySeed {
  type Value = ReadKey;

  fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("a string key")
  }

  fn visit_str<E>(self, s: &str) -> Result<ReadKey, E> {
    Ok(match self.0 {
      Some(expected) if expected == s => ReadKey {
        key: expected,
        shared: true,
      },
      _ => ReadKey {
        key: Key::from(s),
        shared: false,
      },
    })
  }
}
