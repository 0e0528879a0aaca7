//! The digest of a document that `lib/changes.js` computes alike over `mem.data`: JS compares
//! the two to find direct writes without keeping a second copy of the object, and asks for the
//! whole document only when they differ.
//!
//! Two 32-bit lanes of MurmurHash3's mixing, each from its own seed, over what JSON.parse makes
//! of the document's text: numbers as the bits of their double (`-0` as `0`, which JS's `!==`
//! does not tell apart either), strings as UTF-16 code units (what JS's `charCodeAt` reads),
//! arrays in order, and objects as the sum of their entries' digests, since JS enumerates
//! integer-like keys first whatever order the replica keeps. Both sides must compute exactly
//! this; `__test__/direct-write.test.mjs` compares them on many documents.

use crate::doc::Value;

const SEEDS: [u32; 2] = [0, 0x9747_b28c];
const NULL: u32 = 1;
const FALSE: u32 = 2;
const TRUE: u32 = 3;
const NUMBER: u32 = 4;
const STRING: u32 = 5;
const ARRAY: u32 = 6;
const OBJECT: u32 = 7;

/// The digest of `value`, one number per lane.
pub fn digest(value: &Value) -> [u32; 2] {
  match value {
    Value::Null => leaf(NULL),
    Value::Bool(false) => leaf(FALSE),
    Value::Bool(true) => leaf(TRUE),
    Value::Number(number) => {
      // Every JSON number has a double (integers past 2^53 round, as JSON.parse rounds them).
      let double = number.as_f64().unwrap_or(0.0);
      let bits = if double == 0.0 { 0 } else { double.to_bits() };
      SEEDS.map(|seed| finish(step(step(seed ^ NUMBER, bits as u32), (bits >> 32) as u32)))
    }
    Value::String(text) => string(text),
    Value::Array(items) => {
      let mut hash = SEEDS.map(|seed| seed ^ ARRAY);
      for item in items {
        let item = digest(item);
        hash = [step(hash[0], item[0]), step(hash[1], item[1])];
      }
      hash.map(|hash| finish(hash ^ items.len() as u32))
    }
    Value::Object(map) => {
      let mut sum = [0u32; 2];
      for (key, item) in map {
        let (key, item) = (string(key), digest(item));
        for lane in 0..2 {
          let entry = finish(step(step(SEEDS[lane], key[lane]), item[lane]));
          sum[lane] = sum[lane].wrapping_add(entry);
        }
      }
      [0, 1].map(|lane| finish(step(SEEDS[lane] ^ OBJECT, sum[lane]) ^ map.len() as u32))
    }
  }
}

fn leaf(tag: u32) -> [u32; 2] {
  SEEDS.map(|seed| finish(seed ^ tag))
}

fn string(text: &str) -> [u32; 2] {
  let mut hash = SEEDS.map(|seed| seed ^ STRING);
  let mut units = 0u32;
  for unit in text.encode_utf16() {
    hash = [
      step(hash[0], u32::from(unit)),
      step(hash[1], u32::from(unit)),
    ];
    units = units.wrapping_add(1);
  }
  hash.map(|hash| finish(hash ^ units))
}

/// MurmurHash3's step: mixes `word` into `hash`.
fn step(hash: u32, word: u32) -> u32 {
  let word = word
    .wrapping_mul(0xcc9e_2d51)
    .rotate_left(15)
    .wrapping_mul(0x1b87_3593);
  (hash ^ word)
    .rotate_left(13)
    .wrapping_mul(5)
    .wrapping_add(0xe654_6b64)
}

/// MurmurHash3's finalizer: every bit of `hash` reaches every bit of the result.
fn finish(mut hash: u32) -> u32 {
  hash ^= hash >> 16;
  hash = hash.wrapping_mul(0x85eb_ca6b);
  hash ^= hash >> 13;
  hash = hash.wrapping_mul(0xc2b2_ae35);
  hash ^ (hash >> 16)
}

#[cfg(test)]
mod tests {
  use crate::doc::json;

  use super::*;

  #[test]
  fn key_order_and_the_sign_of_zero_do_not_count() {
    assert_eq!(
      digest(&json!({ "b": 1, "a": [0.0, "x"] })),
      digest(&json!({ "a": [-0.0, "x"], "b": 1 }))
    );
    assert_eq!(digest(&json!(1)), digest(&json!(1.0)));
    assert_eq!(
      digest(&json!(9007199254740993u64)),
      digest(&json!(9007199254740992u64))
    );
  }

  #[test]
  fn what_a_direct_write_changes_changes_the_digest() {
    let base = json!({ "n": 1, "list": ["a"], "deep": { "tags": ["t"] } });
    let changed = [
      json!({ "n": 2, "list": ["a"], "deep": { "tags": ["t"] } }),
      json!({ "n": 1, "list": ["a", "x"], "deep": { "tags": ["t"] } }),
      json!({ "n": 1, "list": ["a"], "deep": { "tags": ["t"] }, "extra": true }),
      json!({ "n": 1, "list": ["a"] }),
      json!({ "n": 1, "list": ["a"], "deep": { "tags": "t" } }),
      json!({ "n": 1, "list": [["a"]], "deep": { "tags": ["t"] } }),
      json!({ "n": "1", "list": ["a"], "deep": { "tags": ["t"] } }),
      json!({ "n": null, "list": ["a"], "deep": { "tags": ["t"] } }),
      json!({ "list": 1, "n": ["a"], "deep": { "tags": ["t"] } }),
    ];
    for other in changed {
      assert_ne!(digest(&base), digest(&other), "{other}");
    }
    assert_ne!(digest(&json!([1, 2])), digest(&json!([2, 1])));
    assert_ne!(digest(&json!({})), digest(&json!([])));
    assert_ne!(digest(&json!("")), digest(&json!(null)));
  }

  #[test]
  fn strings_are_read_as_utf16_code_units() {
    // JS: digest('\u{1F600}') walks the surrogate pair 0xD83D 0xDE00.
    let mut hash = SEEDS[0] ^ STRING;
    for unit in [0xd83d, 0xde00] {
      hash = step(hash, unit);
    }
    assert_eq!(string("\u{1F600}")[0], finish(hash ^ 2));
  }
}
