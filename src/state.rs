//! The replica: one process's copy of the shared document and its version.
//!
//! A `parking_lot::Mutex` guards it rather than `tokio::sync::Mutex`: nothing is awaited while the
//! lock is held, every critical section is a short, CPU-only update, and the lock is taken from the
//! JS thread on every `patch()`, where an async lock would cost a task hop (mini-redis `db.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::patch::{Context, Update};

/// The longest accepted object name; it becomes part of a file name.
const MAX_NAME_LEN: usize = 100;

/// One process's copy of a named shared document.
pub struct Replica {
  name: String,
  document: Mutex<Document>,
}

struct Document {
  data: Value,
  version: u64,
  /// The last update parsed: services repeat the same update (`{$inc: {n: 1}}`) over and over,
  /// and parsing one costs as much as applying it.
  last_update: ParsedUpdate,
}

struct ParsedUpdate {
  text: String,
  update: Update,
}

impl ParsedUpdate {
  fn parse(text: &str) -> Result<ParsedUpdate> {
    let value: Value = serde_json::from_str(text)
      .map_err(|err| Error::BadValue(format!("The update is not valid JSON: {err}")))?;
    Ok(ParsedUpdate {
      text: text.to_owned(),
      update: Update::parse(&value)?,
    })
  }
}

impl Replica {
  /// A replica of `name` seeded with `data`, which must be a JSON object.
  pub fn new(name: &str, data: Value) -> Result<Replica> {
    check_name(name)?;
    if !data.is_object() {
      return Err(Error::BadValue(format!(
        "The data of '{name}' must be a plain object, not {}",
        type_name(&data)
      )));
    }
    Ok(Replica {
      name: name.to_owned(),
      document: Mutex::new(Document {
        data,
        version: 0,
        last_update: ParsedUpdate::parse("{}")?,
      }),
    })
  }

  /// The object's name.
  pub fn name(&self) -> &str {
    &self.name
  }

  /// The number of patches applied so far.
  pub fn version(&self) -> u64 {
    self.document.lock().version
  }

  /// Applies an update document given as JSON text. Returns the new version and the change list
  /// as JSON text (`[version, changes]`), or `None` when the update changes nothing. On error the
  /// document is exactly as it was.
  pub fn patch(&self, update_text: &str) -> Result<Option<String>> {
    let context = Context { now_ms: now_ms() };
    let mut document = self.document.lock();
    if document.last_update.text != update_text {
      document.last_update = ParsedUpdate::parse(update_text)?;
    }
    let Document {
      data,
      version,
      last_update,
    } = &mut *document;
    let update = &last_update.update;
    if update.is_empty() {
      return Ok(None);
    }
    let changes = update.apply(data, &context)?;
    if changes.is_empty() {
      return Ok(None);
    }
    *version += 1;
    let version = *version;
    drop(document);
    let text = serde_json::to_string(&(version, &changes))
      .map_err(|err| Error::BadValue(format!("The change could not be encoded: {err}")))?;
    Ok(Some(text))
  }

  /// The document and its version, as JSON text `[version, data]`.
  pub fn snapshot(&self) -> String {
    let document = self.document.lock();
    // Serialising a `Value` cannot fail: its keys are strings and its numbers finite.
    serde_json::to_string(&(document.version, &document.data)).unwrap_or_default()
  }
}

/// Names become file names (issue: sync), so only a conservative, portable set is accepted.
fn check_name(name: &str) -> Result<()> {
  if name.is_empty() {
    return Err(Error::InvalidName("Name not set for the MemSync".into()));
  }
  let portable = name
    .chars()
    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
  if !portable || name.starts_with('.') || name.len() > MAX_NAME_LEN {
    return Err(Error::InvalidName(format!(
      "Invalid MemSync name '{name}': use 1 to {MAX_NAME_LEN} letters, digits, '_', '-' or '.', not starting with '.'"
    )));
  }
  Ok(())
}

fn type_name(value: &Value) -> &'static str {
  match value {
    Value::Null => "null",
    Value::Bool(_) => "a boolean",
    Value::Number(_) => "a number",
    Value::String(_) => "a string",
    Value::Array(_) => "an array",
    Value::Object(_) => "an object",
  }
}

fn now_ms() -> i64 {
  SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
  use super::*;
  use serde_json::json;

  #[test]
  fn names_must_be_portable_file_names() {
    for good in ["jobs", "a.b-c_d", "X1"] {
      assert!(Replica::new(good, json!({})).is_ok(), "{good}");
    }
    for bad in ["", ".hidden", "a/b", "a b", "ü", &"x".repeat(101)] {
      let err = Replica::new(bad, json!({})).err().expect(bad);
      assert_eq!(err.code(), "ERR_INVALID_NAME");
    }
  }

  #[test]
  fn data_must_be_an_object() {
    let err = Replica::new("a", json!([1])).err().unwrap();
    assert_eq!(err.code(), "ERR_BAD_VALUE");
  }

  #[test]
  fn patch_counts_versions_and_skips_no_ops() {
    let replica = Replica::new("a", json!({ "n": 1 })).unwrap();
    assert_eq!(replica.patch("{}").unwrap(), None);
    assert_eq!(replica.patch(r#"{"$set":{"n":1}}"#).unwrap(), None);
    let text = replica.patch(r#"{"$inc":{"n":2}}"#).unwrap().unwrap();
    assert_eq!(text, r#"[1,[["s",["n"],3]]]"#);
    assert_eq!(replica.snapshot(), r#"[1,{"n":3}]"#);
  }

  #[test]
  fn a_failed_patch_changes_nothing() {
    let replica = Replica::new("a", json!({ "n": 1, "s": "x" })).unwrap();
    let err = replica.patch(r#"{"$inc":{"n":1,"s":1}}"#).err().unwrap();
    assert_eq!(err.code(), "ERR_TYPE_MISMATCH");
    assert_eq!(replica.snapshot(), r#"[0,{"n":1,"s":"x"}]"#);
  }
}
