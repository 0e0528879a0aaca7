//! The payload of a log entry: the patch's hybrid timestamp, then its update's JSON text.
//!
//! The origin and sequence number are fields of their own (the script reads them); the rest
//! only replicas read. Binary for the numbers, as in the local codec: 12 bytes, then the text as
//! it was proposed, so that every replica parses the same bytes.
//!
//! A change of the lock table is an entry too, so that it takes its place among the patches: a
//! zero byte (which no JSON text starts with) after the header, then the change as JSON. To the
//! document it is an empty update: it takes its version and changes nothing.

use crate::clock::Hlc;
use crate::core::locks::LockOp;
use crate::core::message::RawJson;

/// Bytes before the update text: the milliseconds (8, little-endian) and the counter (4).
const HEADER: usize = 12;

/// The payload of a patch stamped `hlc` with `update`.
pub fn encode(hlc: Hlc, update: &RawJson) -> Vec<u8> {
  let text = update.get().as_bytes();
  let mut payload = Vec::with_capacity(HEADER + text.len());
  payload.extend_from_slice(&hlc.ms.to_le_bytes());
  payload.extend_from_slice(&hlc.counter.to_le_bytes());
  payload.extend_from_slice(text);
  payload
}

/// The payload of a change of the lock table.
pub fn encode_lock(op: &LockOp) -> Vec<u8> {
  let mut payload = vec![0; HEADER + 1];
  payload.extend_from_slice(serde_json::to_string(op).unwrap_or_default().as_bytes());
  payload
}

/// The change of the lock table a payload carries, if it carries one.
pub fn lock_of(payload: &[u8]) -> Option<LockOp> {
  match payload.get(HEADER..) {
    Some([0, op @ ..]) => serde_json::from_slice(op).ok(),
    _ => None,
  }
}

/// The timestamp and update of a payload (an empty update for a change of the lock table), or
/// why it is not one (a foreign or corrupt entry, which a replica refuses to apply rather than
/// guess at).
pub fn decode(payload: &[u8]) -> Result<(Hlc, RawJson), String> {
  if let Some([0, op @ ..]) = payload.get(HEADER..) {
    serde_json::from_slice::<LockOp>(op)
      .map_err(|err| format!("the lock change is not one: {err}"))?;
    let nothing = RawJson::parse("{}".to_owned()).map_err(|err| err.to_string())?;
    return Ok((Hlc::default(), nothing));
  }
  if payload.len() < HEADER {
    return Err(format!(
      "an entry of {} bytes is shorter than its header",
      payload.len()
    ));
  }
  let (ms, rest) = payload.split_at(8);
  let (counter, text) = rest.split_at(4);
  let hlc = Hlc {
    ms: u64::from_le_bytes(ms.try_into().map_err(|_| "no milliseconds")?),
    counter: u32::from_le_bytes(counter.try_into().map_err(|_| "no counter")?),
  };
  let text = String::from_utf8(text.to_vec()).map_err(|_| "the update is not UTF-8")?;
  let update = RawJson::parse(text).map_err(|err| format!("the update is not JSON: {err}"))?;
  Ok((hlc, update))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_payload_gives_back_its_timestamp_and_exact_update_text() {
    let hlc = Hlc {
      ms: 1_764_000_000_123,
      counter: u32::MAX,
    };
    let update = RawJson::parse(r#"{"$set": {"a.01": 1.50}}"#.to_owned()).unwrap();
    let (back, text) = decode(&encode(hlc, &update)).unwrap();
    assert_eq!(back, hlc);
    assert_eq!(
      text.get(),
      update.get(),
      "the same bytes, spacing and number spelling kept"
    );
  }

  #[test]
  fn a_lock_change_is_an_empty_update_that_carries_the_change() {
    let op = LockOp::Drop { owner: 7 };
    let payload = encode_lock(&op);
    assert_eq!(lock_of(&payload), Some(op));
    assert_eq!(decode(&payload).unwrap().1.get(), "{}");
    let update = RawJson::parse("{}".to_owned()).unwrap();
    assert_eq!(lock_of(&encode(Hlc::default(), &update)), None);
  }

  #[test]
  fn a_payload_that_is_not_one_is_refused_with_the_reason() {
    let cases: [(&[u8], &str); 3] = [
      (b"short", "shorter than its header"),
      (&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff], "not UTF-8"),
      (b"\0\0\0\0\0\0\0\0\0\0\0\0{", "not JSON"),
    ];
    for (payload, why) in cases {
      let err = decode(payload).unwrap_err();
      assert!(err.contains(why), "{err}");
    }
  }
}
