//! Dotted update paths: parsing and validation, MongoDB's field order, and read-only resolution
//! against a document (which is where `$[]` expands into concrete paths).

use std::cmp::Ordering;

use crate::doc::Value;

use super::error::{dotted, render_element, ErrorKind, PatchError};
use super::key::Key;
use super::MAX_PADDING;

/// The component `$[]`: every element of the array.
const ALL: &str = "$[]";

/// A validated dotted path as written in the update. Only the text is stored: components are
/// split off it on demand, which costs less than allocating each one.
#[derive(Debug, Clone)]
pub(crate) struct Path {
  text: String,
  /// The number of components.
  len: usize,
  /// Whether some component is `$[]`.
  has_all: bool,
}

/// Which `$rename` side a path is, for its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenameSide {
  Source,
  Destination,
}

impl Path {
  /// Parses a path of any operator except `$rename`: `$[]` is allowed after the first component,
  /// `$` and `$[id]` cannot work without a query and arrayFilters.
  pub(crate) fn parse(text: &str) -> Result<Path, PatchError> {
    let (len, dollar) = scan(text)?;
    let mut has_all = false;
    // Every positional component and every error of the first component has a `$`.
    if dollar {
      check_first(text)?;
      for part in components(text) {
        match (part, array_filter(part)) {
          ("$", _) => {
            return Err(PatchError::new(
              ErrorKind::Positional,
              "The positional operator did not find the match needed from the query.",
            ))
          }
          (ALL, _) => has_all = true,
          (_, Some(id)) => {
            return Err(PatchError::new(
              ErrorKind::Positional,
              format!("No array filter found for identifier '{id}' in path '{text}'"),
            ))
          }
          (_, None) => {}
        }
      }
    }
    Ok(Path {
      text: text.to_string(),
      len,
      has_all,
    })
  }

  /// Parses a `$rename` path, which may not contain any positional component.
  pub(crate) fn parse_rename(text: &str, side: RenameSide) -> Result<Path, PatchError> {
    let (len, dollar) = scan(text)?;
    // Every dynamic component and every error of the first component has a `$`.
    if dollar {
      if components(text).any(|part| part == "$" || part == ALL || array_filter(part).is_some()) {
        let side = match side {
          RenameSide::Source => "source",
          RenameSide::Destination => "destination",
        };
        return Err(PatchError::new(
          ErrorKind::RenameInvalid,
          format!("The {side} field for $rename may not be dynamic: {text}"),
        ));
      }
      // Only creating a `$`-prefixed field is refused: moving one away is how a document is
      // cleaned of it (MongoDB's rename tests do `{$rename: {'$a': 'a'}}`).
      if side == RenameSide::Destination {
        check_first(text)?;
      }
    }
    Ok(Path {
      text: text.to_string(),
      len,
      has_all: false,
    })
  }

  /// The path as written.
  pub(crate) fn text(&self) -> &str {
    &self.text
  }

  /// The number of components.
  pub(crate) fn len(&self) -> usize {
    self.len
  }

  /// The components as written.
  pub(crate) fn components(&self) -> Components<'_> {
    components(&self.text)
  }

  /// The first `count` (at least one) components, as written.
  pub(crate) fn prefix(&self, count: usize) -> &str {
    let end = self
      .text
      .match_indices('.')
      .nth(count - 1)
      .map_or(self.text.len(), |(end, _)| end);
    &self.text[..end]
  }

  /// Whether the path contains `$[]`.
  pub(crate) fn has_all(&self) -> bool {
    self.has_all
  }

  /// Whether a component is a number with a leading zero (`a.01`), which names the same array
  /// element as its canonical spelling (`a.1`).
  pub(crate) fn aliases(&self) -> bool {
    self.components().any(non_canonical_index)
  }

  /// Whether `self` equals `other` or is a component-wise prefix of it (`a` of `a.b`, not of `ab`).
  pub(crate) fn covers(&self, other: &Path) -> bool {
    // Components hold no `.`, so a prefix of the text that ends at a `.` is a prefix of components.
    // The byte after the prefix is checked first: it rules out most pairs without comparing text.
    let (short, long) = (self.text.as_bytes(), other.text.as_bytes());
    match long.get(short.len()) {
      None => long == short,
      Some(&byte) => byte == b'.' && long.starts_with(short),
    }
  }
}

/// MongoDB's nesting limit for documents. Paths are held to it so that no update can build a
/// document deep enough to overflow the stack of the recursive code that serialises or drops it;
/// what an update writes is held to it too (`plan::check_depth`).
pub const MAX_DEPTH: usize = 100;

/// Counts the components and tells whether the text has a `$`, rejecting empty paths, empty
/// components and paths deeper than [`MAX_DEPTH`].
fn scan(text: &str) -> Result<(usize, bool), PatchError> {
  let bytes = text.as_bytes();
  let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
    return Err(PatchError::new(
      ErrorKind::EmptyPath,
      "An empty update path is not valid.",
    ));
  };
  let mut dots = 0;
  let mut dollar = false;
  for &byte in bytes {
    dots += usize::from(byte == b'.');
    dollar |= byte == b'$';
  }
  let len = dots + 1;
  // A component is empty when a `.` comes first, last or right after another.
  let empty =
    first == b'.' || last == b'.' || (dots > 1 && bytes.windows(2).any(|pair| pair == b".."));
  if empty {
    return Err(PatchError::new(
      ErrorKind::EmptyPath,
      format!("The update path '{text}' contains an empty field name, which is not allowed."),
    ));
  }
  if len > MAX_DEPTH {
    let start: String = text.chars().take(40).collect();
    return Err(PatchError::new(
      ErrorKind::BadValue,
      format!(
        "The update path '{start}...' has {len} components, more than the {MAX_DEPTH} levels a document may nest"
      ),
    ));
  }
  Ok((len, dollar))
}

/// The first component names a top-level field, which may not start with `$`; nested `$` fields
/// are fine (MongoDB ≥ 5.0).
fn check_first(text: &str) -> Result<(), PatchError> {
  let first = first(text);
  if first == "$" {
    Err(PatchError::new(
      ErrorKind::Positional,
      format!("Cannot have positional (i.e. '$') element in the first position in path '{text}'"),
    ))
  } else if first == ALL || array_filter(first).is_some() {
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

/// A component as an array index: decimal digits only, no sign, within `usize`; leading zeros
/// are allowed (`a.01` is element 1), as MongoDB's `parseUnsignedBase10Integer` reads them. Two
/// spellings of one element (`a.1`, `a.01`) pass the conflict check as different paths, so an
/// update that has such a spelling checks its concrete paths too (see [`Path::aliases`]).
pub(crate) fn parse_index(part: &str) -> Option<usize> {
  if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
    return None;
  }
  part.parse().ok()
}

/// Whether a component is a number with a leading zero: an index that another spelling may name.
fn non_canonical_index(part: &str) -> bool {
  part.len() > 1 && part.starts_with('0') && part.bytes().all(|b| b.is_ascii_digit())
}

/// MongoDB's field order (since 5.0): numeric components compare as numbers, others as bytes.
#[inline]
pub(crate) fn field_order(a: &Path, b: &Path) -> Ordering {
  match (a.text.as_bytes().first(), b.text.as_bytes().first()) {
    // Most paths differ from the first byte (never a `.`), which then decides unless both
    // components are numbers.
    (Some(p), Some(q)) if p != q && !(p.is_ascii_digit() && q.is_ascii_digit()) => p.cmp(q),
    _ => component_wise(a, b),
  }
}

/// [`field_order`] in general; kept out of line so that the common case above stays small.
#[inline(never)]
fn component_wise(a: &Path, b: &Path) -> Ordering {
  // The components before the first differing byte are equal, so the components that hold it
  // decide; as above, by that byte unless it ends one of them (`.`) or both have a digit there.
  let (x, y) = (a.text.as_bytes(), b.text.as_bytes());
  let same = x.iter().zip(y).take_while(|(p, q)| p == q).count();
  if let (Some(&p), Some(&q)) = (x.get(same), y.get(same)) {
    if p != b'.' && q != b'.' && !(p.is_ascii_digit() && q.is_ascii_digit()) {
      return p.cmp(&q);
    }
  }
  for (x, y) in a.components().zip(b.components()) {
    let order = component_order(x, y);
    if order != Ordering::Equal {
      return order;
    }
  }
  a.len.cmp(&b.len)
}

/// The first component of a dotted text.
fn first(text: &str) -> &str {
  components(text).next().unwrap_or(text)
}

/// The components of a dotted text.
pub(crate) fn components(text: &str) -> Components<'_> {
  Components(Some(text))
}

/// An iterator over the components of a dotted text, like `split('.')` but a plain byte scan
/// that inlines: components are short.
#[derive(Debug, Clone)]
pub(crate) struct Components<'t>(Option<&'t str>);

impl<'t> Iterator for Components<'t> {
  type Item = &'t str;

  fn next(&mut self) -> Option<&'t str> {
    let text = self.0?;
    match text.bytes().position(|byte| byte == b'.') {
      Some(dot) => {
        self.0 = Some(&text[dot + 1..]);
        Some(&text[..dot])
      }
      None => {
        self.0 = None;
        Some(text)
      }
    }
  }
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

/// One concrete path of a parsed path and what is there. Its keys (missing components as they
/// would be created) are only built by [`Resolved::keys`], as most resolutions need them only
/// for the change they emit, if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved<'a, 'r> {
  path: &'r Path,
  /// Bit `i` is set when component `i` is an array index; a path has at most [`MAX_DEPTH`]
  /// components.
  indices: u128,
  /// The indices that the path's `$[]` components stand for, in order.
  expanded: &'r [usize],
  pub(crate) slot: Slot<'a>,
}

impl Resolved<'_, '_> {
  /// The concrete path.
  pub(crate) fn keys(&self) -> Vec<Key> {
    keys(self.path, self.path.len, self.indices, self.expanded)
  }

  /// Whether the last component is an array index.
  pub(crate) fn ends_in_index(&self) -> bool {
    self.indices >> (self.path.len - 1) & 1 == 1
  }

  /// The error of a creating operator on a [`Slot::Blocked`] path.
  pub(crate) fn cannot_create(&self, depth: usize, parent: &Value) -> PatchError {
    let keys = self.keys();
    PatchError::new(
      ErrorKind::PathNotViable,
      format!(
        "Cannot create field '{}' in element {{{}}}",
        keys[depth],
        render_element(&keys[..depth], parent)
      ),
    )
  }

  /// The error of a non-creating operator on a [`Slot::Blocked`] path.
  pub(crate) fn cannot_traverse(&self, depth: usize, parent: &Value) -> PatchError {
    let keys = self.keys();
    PatchError::new(
      ErrorKind::PathNotViable,
      format!(
        "Cannot use the part ({}) of ({}) to traverse the element ({{{}}})",
        keys[depth],
        dotted(&keys),
        render_element(&keys[..depth], parent)
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

/// The keys of the first `count` components of `path`, with `indices` and `expanded` as in
/// [`Resolved`].
fn keys(path: &Path, count: usize, indices: u128, expanded: &[usize]) -> Vec<Key> {
  let mut expanded = expanded.iter().copied();
  let mut keys = Vec::with_capacity(count);
  for (depth, name) in path.components().take(count).enumerate() {
    let index = match name {
      ALL => expanded.next(),
      _ if indices >> depth & 1 == 1 => parse_index(name),
      _ => None,
    };
    keys.push(index.map_or_else(|| Key::Field(name.to_string()), Key::Index));
  }
  keys
}

/// Resolves `path` against `doc` without changing it, and passes each concrete path to `visit`
/// in document order (several only through `$[]`, none for `$[]` over an empty array).
pub(crate) fn resolve<'a>(
  doc: &'a Value,
  path: &Path,
  visit: &mut impl FnMut(Resolved<'a, '_>) -> Result<(), PatchError>,
) -> Result<(), PatchError> {
  descend(doc, path, path.components(), 0, 0, &mut Vec::new(), visit)
}

/// Follows the components left in `parts` (the first is component `depth`) from `current`,
/// branching at each `$[]`.
fn descend<'a>(
  mut current: &'a Value,
  path: &Path,
  mut parts: Components<'_>,
  mut depth: usize,
  mut indices: u128,
  expanded: &mut Vec<usize>,
  visit: &mut impl FnMut(Resolved<'a, '_>) -> Result<(), PatchError>,
) -> Result<(), PatchError> {
  let slot = loop {
    let Some(name) = parts.next() else {
      break Slot::Found(current);
    };
    match (name, current) {
      (ALL, Value::Array(items)) => {
        for (index, item) in items.iter().enumerate() {
          expanded.push(index);
          let indices = indices | 1 << depth;
          descend(
            item,
            path,
            parts.clone(),
            depth + 1,
            indices,
            expanded,
            visit,
          )?;
          expanded.pop();
        }
        return Ok(());
      }
      (ALL, other) => {
        return Err(PatchError::new(
          ErrorKind::Positional,
          format!(
            "Cannot apply array updates to non-array element {}",
            render_element(&keys(path, depth, indices, expanded), other)
          ),
        ))
      }
      (name, Value::Object(map)) => match map.get(name) {
        Some(child) => current = child,
        None => break Slot::Missing { pad: 0 },
      },
      (name, Value::Array(items)) => match parse_index(name) {
        Some(index) => {
          indices |= 1 << depth;
          match items.get(index) {
            Some(child) => current = child,
            None => {
              break Slot::Missing {
                pad: index - items.len(),
              }
            }
          }
        }
        None => {
          break Slot::Blocked {
            depth,
            parent: current,
          }
        }
      },
      (_, parent) => break Slot::Blocked { depth, parent },
    }
    depth += 1;
  };
  // The resolution stopped at the first component that does not exist (or cannot): the rest of
  // the path becomes object keys, as creation would make them. `$[]` needs an existing array, so
  // a `$[]` in that rest is an error.
  if path.has_all && !matches!(slot, Slot::Found(_)) {
    if let Some(at) = parts.position(|part| part == ALL) {
      return Err(PatchError::new(
        ErrorKind::Positional,
        format!(
          "The path '{}' must exist in the document in order to apply array updates.",
          dotted(&keys(path, depth + 1 + at, indices, expanded))
        ),
      ));
    }
  }
  visit(Resolved {
    path,
    indices,
    expanded,
    slot,
  })
}
