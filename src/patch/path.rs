//! Dotted update paths: parsing and validation, MongoDB's field order, and read-only resolution
//! against a document (which is where `$[]` expands into concrete paths).

use std::cmp::Ordering;

use serde_json::Value;

use super::change::Key;
use super::error::{dotted, render_element, ErrorKind, PatchError};
use super::MAX_PADDING;

/// One component of a parsed path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Part {
  /// A field name, or an array index when it meets an array (decided against the document).
  Field(String),
  /// `$[]`: every element of the array.
  All,
}

impl Part {
  /// The component as written.
  fn name(&self) -> &str {
    match self {
      Part::Field(name) => name,
      Part::All => "$[]",
    }
  }
}

/// A validated dotted path as written in the update.
#[derive(Debug, Clone)]
pub(crate) struct Path {
  text: String,
  parts: Vec<Part>,
}

/// Which `$rename` side a path is, for its messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RenameSide {
  Source,
  Destination,
}

impl Path {
  /// Parses a path of any operator except `$rename`: `$[]` is allowed after the first component,
  /// `$` and `$[id]` cannot work without a query and arrayFilters.
  pub(crate) fn parse(text: &str) -> Result<Path, PatchError> {
    let raw = split(text)?;
    check_first(text, raw[0])?;
    let parts = raw
      .into_iter()
      .map(|part| match (part, array_filter(part)) {
        ("$", _) => Err(PatchError::new(
          ErrorKind::Positional,
          "The positional operator did not find the match needed from the query.",
        )),
        ("$[]", _) => Ok(Part::All),
        (_, Some(id)) => Err(PatchError::new(
          ErrorKind::Positional,
          format!("No array filter found for identifier '{id}' in path '{text}'"),
        )),
        (field, None) => Ok(Part::Field(field.to_string())),
      })
      .collect::<Result<Vec<Part>, PatchError>>()?;
    Ok(Path {
      text: text.to_string(),
      parts,
    })
  }

  /// Parses a `$rename` path, which may not contain any positional component.
  pub(crate) fn parse_rename(text: &str, side: RenameSide) -> Result<Path, PatchError> {
    let raw = split(text)?;
    if raw
      .iter()
      .any(|part| *part == "$" || *part == "$[]" || array_filter(part).is_some())
    {
      let side = match side {
        RenameSide::Source => "source",
        RenameSide::Destination => "destination",
      };
      return Err(PatchError::new(
        ErrorKind::RenameInvalid,
        format!("The {side} field for $rename may not be dynamic: {text}"),
      ));
    }
    check_first(text, raw[0])?;
    Ok(Path {
      text: text.to_string(),
      parts: raw
        .into_iter()
        .map(|part| Part::Field(part.to_string()))
        .collect(),
    })
  }

  /// The path as written.
  pub(crate) fn text(&self) -> &str {
    &self.text
  }

  /// The components.
  pub(crate) fn parts(&self) -> &[Part] {
    &self.parts
  }

  /// Whether the path contains `$[]`.
  pub(crate) fn has_all(&self) -> bool {
    self.parts.contains(&Part::All)
  }

  /// Whether `self` equals `other` or is a component-wise prefix of it (`a` of `a.b`, not of `ab`).
  pub(crate) fn covers(&self, other: &Path) -> bool {
    other.parts.starts_with(&self.parts)
  }
}

/// MongoDB's nesting limit for documents. Paths are held to it so that no update can build a
/// document deep enough to overflow the stack of the recursive code that serialises or drops it.
const MAX_DEPTH: usize = 100;

/// Splits on `.`, rejecting empty paths, empty components and paths deeper than [`MAX_DEPTH`].
fn split(text: &str) -> Result<Vec<&str>, PatchError> {
  if text.is_empty() {
    return Err(PatchError::new(
      ErrorKind::EmptyPath,
      "An empty update path is not valid.",
    ));
  }
  let parts: Vec<&str> = text.split('.').collect();
  if parts.iter().any(|part| part.is_empty()) {
    return Err(PatchError::new(
      ErrorKind::EmptyPath,
      format!("The update path '{text}' contains an empty field name, which is not allowed."),
    ));
  }
  if parts.len() > MAX_DEPTH {
    let start: String = text.chars().take(40).collect();
    return Err(PatchError::new(
      ErrorKind::BadValue,
      format!(
        "The update path '{start}...' has {} components, more than the {MAX_DEPTH} levels a document may nest",
        parts.len()
      ),
    ));
  }
  Ok(parts)
}

/// The first component names a top-level field, which may not start with `$`; nested `$` fields
/// are fine (MongoDB ≥ 5.0).
fn check_first(text: &str, first: &str) -> Result<(), PatchError> {
  if first == "$" {
    Err(PatchError::new(
      ErrorKind::Positional,
      format!("Cannot have positional (i.e. '$') element in the first position in path '{text}'"),
    ))
  } else if first == "$[]" || array_filter(first).is_some() {
    Err(PatchError::new(
      ErrorKind::Positional,
      format!(
        "Cannot have array filter identifier (i.e. '$[<id>]') element in the first position in path '{text}'"
      ),
    ))
  } else if first.starts_with('$') {
    Err(PatchError::new(
      ErrorKind::DollarField,
      format!(
        "The dollar ($) prefixed field '{first}' in '{text}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith."
      ),
    ))
  } else {
    Ok(())
  }
}

/// The identifier of an array-filter component `$[id]` (`$[]` itself is not a filter).
fn array_filter(part: &str) -> Option<&str> {
  part
    .strip_prefix("$[")
    .and_then(|rest| rest.strip_suffix(']'))
    .filter(|id| !id.is_empty())
}

/// A component as an array index: decimal digits only (no sign), within `usize`.
pub(crate) fn parse_index(part: &str) -> Option<usize> {
  if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
    return None;
  }
  part.parse().ok()
}

/// MongoDB's field order (since 5.0): numeric components compare as numbers, others as bytes.
pub(crate) fn field_order(a: &Path, b: &Path) -> Ordering {
  for (x, y) in a.parts.iter().zip(&b.parts) {
    let order = component_order(x.name(), y.name());
    if order != Ordering::Equal {
      return order;
    }
  }
  a.parts.len().cmp(&b.parts.len())
}

fn component_order(a: &str, b: &str) -> Ordering {
  let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
  if numeric(a) && numeric(b) {
    // Compare arbitrarily long digit strings as numbers without parsing them.
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
  } else {
    a.cmp(b)
  }
}

/// What a concrete path finds in the document.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot<'a> {
  /// The whole path exists.
  Found(&'a Value),
  /// A component is missing from the object or array that the path reaches; creating it first
  /// adds `pad` nulls to that array.
  Missing { pad: usize },
  /// Component `depth` cannot be applied to `parent` (a scalar, or a non-index on an array).
  Blocked { depth: usize, parent: &'a Value },
}

/// One concrete path of a parsed path: the keys that reach it (missing components as they would
/// be created) and what is there.
#[derive(Debug, Clone)]
pub(crate) struct Resolved<'a> {
  pub(crate) keys: Vec<Key>,
  pub(crate) slot: Slot<'a>,
}

impl Resolved<'_> {
  /// The error of a creating operator on a [`Slot::Blocked`] path.
  pub(crate) fn cannot_create(&self, depth: usize, parent: &Value) -> PatchError {
    PatchError::new(
      ErrorKind::PathNotViable,
      format!(
        "Cannot create field '{}' in element {{{}}}",
        self.keys[depth],
        render_element(&self.keys[..depth], parent)
      ),
    )
  }

  /// The error of a non-creating operator on a [`Slot::Blocked`] path.
  pub(crate) fn cannot_traverse(&self, depth: usize, parent: &Value) -> PatchError {
    PatchError::new(
      ErrorKind::PathNotViable,
      format!(
        "Cannot use the part ({}) of ({}) to traverse the element ({{{}}})",
        self.keys[depth],
        dotted(&self.keys),
        render_element(&self.keys[..depth], parent)
      ),
    )
  }

  /// Whether a padding this large may be created.
  pub(crate) fn check_padding(&self) -> Result<(), PatchError> {
    match self.slot {
      Slot::Missing { pad } if pad > MAX_PADDING => Err(PatchError::new(
        ErrorKind::BadValue,
        format!("can't backfill more than {MAX_PADDING} elements"),
      )),
      _ => Ok(()),
    }
  }
}

/// Resolves `path` against `doc` without changing it: one [`Resolved`] per concrete path, in
/// document order (several only through `$[]`, none for `$[]` over an empty array).
pub(crate) fn resolve<'a>(doc: &'a Value, path: &Path) -> Result<Vec<Resolved<'a>>, PatchError> {
  let mut out = Vec::new();
  let mut keys = Vec::with_capacity(path.parts.len());
  descend(doc, path, 0, &mut keys, &mut out)?;
  Ok(out)
}

fn descend<'a>(
  current: &'a Value,
  path: &Path,
  depth: usize,
  keys: &mut Vec<Key>,
  out: &mut Vec<Resolved<'a>>,
) -> Result<(), PatchError> {
  let Some(part) = path.parts.get(depth) else {
    out.push(Resolved {
      keys: keys.clone(),
      slot: Slot::Found(current),
    });
    return Ok(());
  };
  match (part, current) {
    (Part::All, Value::Array(items)) => {
      for (index, item) in items.iter().enumerate() {
        keys.push(Key::Index(index));
        descend(item, path, depth + 1, keys, out)?;
        keys.pop();
      }
      Ok(())
    }
    (Part::All, other) => Err(PatchError::new(
      ErrorKind::Positional,
      format!(
        "Cannot apply array updates to non-array element {}",
        render_element(keys, other)
      ),
    )),
    (Part::Field(name), Value::Object(map)) => match map.get(name) {
      Some(child) => {
        keys.push(Key::Field(name.clone()));
        descend(child, path, depth + 1, keys, out)?;
        keys.pop();
        Ok(())
      }
      None => stop(
        path,
        depth,
        keys,
        Key::Field(name.clone()),
        Slot::Missing { pad: 0 },
        out,
      ),
    },
    (Part::Field(name), Value::Array(items)) => match parse_index(name) {
      Some(index) => match items.get(index) {
        Some(child) => {
          keys.push(Key::Index(index));
          descend(child, path, depth + 1, keys, out)?;
          keys.pop();
          Ok(())
        }
        None => {
          let pad = index - items.len();
          stop(
            path,
            depth,
            keys,
            Key::Index(index),
            Slot::Missing { pad },
            out,
          )
        }
      },
      None => {
        let slot = Slot::Blocked {
          depth,
          parent: current,
        };
        stop(path, depth, keys, Key::Field(name.clone()), slot, out)
      }
    },
    (Part::Field(name), _) => {
      let slot = Slot::Blocked {
        depth,
        parent: current,
      };
      stop(path, depth, keys, Key::Field(name.clone()), slot, out)
    }
  }
}

/// Ends a resolution at the first component that does not exist (or cannot): the rest of the
/// path becomes object keys, as creation would make them. `$[]` needs an existing array, so a
/// `$[]` in that rest is an error.
fn stop<'a>(
  path: &Path,
  depth: usize,
  keys: &[Key],
  first: Key,
  slot: Slot<'a>,
  out: &mut Vec<Resolved<'a>>,
) -> Result<(), PatchError> {
  let mut full = keys.to_vec();
  full.push(first);
  for part in &path.parts[depth + 1..] {
    match part {
      Part::Field(name) => full.push(Key::Field(name.clone())),
      Part::All => {
        return Err(PatchError::new(
          ErrorKind::Positional,
          format!(
            "The path '{}' must exist in the document in order to apply array updates.",
            dotted(&full)
          ),
        ));
      }
    }
  }
  out.push(Resolved { keys: full, slot });
  Ok(())
}
