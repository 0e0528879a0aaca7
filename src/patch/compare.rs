//! BSON comparison order and value equality over JSON (SEMANTICS §5, §6).
//!
//! `serde_json`'s `PartialEq` says `1 != 1.0`, while MongoDB compares numbers by value; these
//! functions do what MongoDB does, except that object equality ignores key order (a JS object's
//! key order is not something two replicas should disagree on).

use std::cmp::Ordering;

use crate::doc::{Number, Value};

/// A JSON number as MongoDB sees it: an integer (i64 or u64, widened so both fit) or a double.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
  Int(i128),
  Float(f64),
}

impl Num {
  /// Classifies a JSON number; without `arbitrary_precision` it is always one of the three.
  pub(crate) fn of(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
      Num::Int(i.into())
    } else if let Some(u) = n.as_u64() {
      Num::Int(u.into())
    } else {
      Num::Float(n.as_f64().unwrap_or(f64::NAN))
    }
  }

  /// The value as a double, for mixed arithmetic.
  pub(crate) fn to_f64(self) -> f64 {
    match self {
      Num::Int(i) => i as f64,
      Num::Float(f) => f,
    }
  }

  /// Back to JSON: an integer must fit i64 or u64 and a double must be finite, else `None`
  /// (overflow).
  pub(crate) fn to_value(self) -> Option<Value> {
    match self {
      Num::Int(i) => {
        if let Ok(i) = i64::try_from(i) {
          Some(Value::from(i))
        } else {
          u64::try_from(i).ok().map(Value::from)
        }
      }
      Num::Float(f) => Number::from_f64(f).map(Value::Number),
    }
  }
}

/// The rank of a value's type in BSON order, restricted to JSON types:
/// null < numbers < strings < objects < arrays < booleans.
fn rank(value: &Value) -> u8 {
  match value {
    Value::Null => 0,
    Value::Number(_) => 1,
    Value::String(_) => 2,
    Value::Object(_) => 3,
    Value::Array(_) => 4,
    Value::Bool(_) => 5,
  }
}

/// Total BSON order: type rank first, numbers by value, strings by UTF-8 bytes, objects pair by
/// pair in field order (type, name, value), arrays element by element; shorter is smaller.
pub(crate) fn compare(a: &Value, b: &Value) -> Ordering {
  rank(a).cmp(&rank(b)).then_with(|| compare_same_rank(a, b))
}

/// Order within one type class, or `None` across classes: query comparisons (`$gt`, ...) only
/// match values of the compared value's type.
pub(crate) fn compare_same_class(a: &Value, b: &Value) -> Option<Ordering> {
  (rank(a) == rank(b)).then(|| compare_same_rank(a, b))
}

fn compare_same_rank(a: &Value, b: &Value) -> Ordering {
  match (a, b) {
    (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
    (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
    (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
    (Value::Array(x), Value::Array(y)) => {
      for (p, q) in x.iter().zip(y) {
        let order = compare(p, q);
        if order != Ordering::Equal {
          return order;
        }
      }
      x.len().cmp(&y.len())
    }
    (Value::Object(x), Value::Object(y)) => {
      for ((pk, pv), (qk, qv)) in x.iter().zip(y) {
        let order = rank(pv)
          .cmp(&rank(qv))
          .then_with(|| pk.as_bytes().cmp(qk.as_bytes()))
          .then_with(|| compare_same_rank(pv, qv));
        if order != Ordering::Equal {
          return order;
        }
      }
      x.len().cmp(&y.len())
    }
    _ => Ordering::Equal,
  }
}

/// Compares two JSON numbers by value, exactly (no rounding of large integers through f64).
pub(crate) fn compare_numbers(a: &Number, b: &Number) -> Ordering {
  match (Num::of(a), Num::of(b)) {
    (Num::Int(x), Num::Int(y)) => x.cmp(&y),
    (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    (Num::Int(x), Num::Float(y)) => compare_int_float(x, y),
    (Num::Float(x), Num::Int(y)) => compare_int_float(y, x).reverse(),
  }
}

fn compare_int_float(i: i128, f: f64) -> Ordering {
  // Every integer here lies in [-2^63, 2^64); floats outside that range order trivially, and
  // inside it the integral part converts exactly.
  if f >= 18_446_744_073_709_551_616.0 {
    Ordering::Less
  } else if f < -9_223_372_036_854_775_808.0 {
    Ordering::Greater
  } else {
    let whole = f.trunc();
    i.cmp(&(whole as i128)).then_with(|| {
      if f > whole {
        Ordering::Less
      } else if f < whole {
        Ordering::Greater
      } else {
        Ordering::Equal
      }
    })
  }
}

/// MongoDB value equality: numbers by value (`1 == 1.0`), arrays in order, objects with the same
/// members regardless of key order.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
  match (a, b) {
    (Value::Null, Value::Null) => true,
    (Value::Bool(x), Value::Bool(y)) => x == y,
    (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Ordering::Equal,
    (Value::String(x), Value::String(y)) => x == y,
    (Value::Array(x), Value::Array(y)) => {
      x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
    }
    (Value::Object(x), Value::Object(y)) => {
      x.len() == y.len()
        && x
          .iter()
          .all(|(key, p)| y.get(key).is_some_and(|q| equal(p, q)))
    }
    _ => false,
  }
}
