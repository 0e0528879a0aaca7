//! Object names and the file names they become in the rendezvous directory.
//!
//! A name is any non-empty string of at most [`MAX_NAME_BYTES`] bytes (memsync 0.5 took any
//! string). Its file stem is one safe file-name component, and two names never share one:
//! - Letters, digits, `_`, `-` and `.` (not first) stay as they are, every other byte becomes
//!   `%XX`. That is injective (`%` itself is escaped), so a name such as `jobs` or `app.v2` keeps
//!   the file name it always had, and no name can reach `/`, `..` or a hidden file.
//! - A stem longer than [`MAX_PLAIN_STEM`] would not fit a socket path (`sun_path` holds 108
//!   bytes with the directory) and becomes the start of that escaping, `~` and 128 bits of the
//!   name's SHA-256. `~` is always escaped otherwise, so a hashed stem never equals a plain one.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// The longest accepted name, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// The longest stem kept as the escaped name; a longer one is hashed.
const MAX_PLAIN_STEM: usize = 64;
/// How much of the escaped name a hashed stem keeps, for people reading the directory.
const HASHED_PREFIX: usize = 31;

/// Why a name is refused: empty or too long (anything else is a valid name).
pub fn check(name: &str) -> Result<(), String> {
  if name.is_empty() {
    return Err("Name not set for the MemSync".into());
  }
  if name.len() > MAX_NAME_BYTES {
    return Err(format!(
      "The MemSync name '{}...' takes {} bytes as UTF-8, more than the {MAX_NAME_BYTES} it may",
      name.chars().take(32).collect::<String>(),
      name.len()
    ));
  }
  Ok(())
}

fn is_kept(byte: u8, first: bool) -> bool {
  byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-') || (byte == b'.' && !first)
}

fn escape(name: &str) -> String {
  let mut stem = String::with_capacity(name.len());
  for (i, &byte) in name.as_bytes().iter().enumerate() {
    if is_kept(byte, i == 0) {
      stem.push(byte as char);
    } else {
      let _ = write!(stem, "%{byte:02X}");
    }
  }
  stem
}

/// The file stem of `name` (a valid name): `<stem>.lock` and `<stem>.sock` in the directory.
pub fn file_stem(name: &str) -> String {
  let stem = escape(name);
  if stem.len() <= MAX_PLAIN_STEM {
    return stem;
  }
  // Cut before a `%XX` that the prefix would split.
  let mut cut = HASHED_PREFIX;
  while let Some(percent) = stem[..cut].rfind('%').filter(|&at| at + 3 > cut) {
    cut = percent;
  }
  let mut hashed = format!("{}~", &stem[..cut]);
  // SHA-256 (the sha2 crate): every build hashes a name the same, which std's hashers do not
  // promise, and nobody can make two names collide on purpose.
  for byte in &Sha256::digest(name.as_bytes())[..16] {
    let _ = write!(hashed, "{byte:02x}");
  }
  hashed
}

/// The name whose stem is `stem`, if `stem` is a plain (not hashed) one.
pub fn name_of_stem(stem: &str) -> Option<String> {
  let mut bytes = Vec::with_capacity(stem.len());
  let mut rest = stem.as_bytes();
  while let Some((&byte, tail)) = rest.split_first() {
    if byte == b'%' {
      let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
      bytes.push(u8::from_str_radix(hex, 16).ok()?);
      rest = &tail[2..];
    } else {
      bytes.push(byte);
      rest = tail;
    }
  }
  let name = String::from_utf8(bytes).ok()?;
  // Only the canonical spelling: `%61` is not the stem of `a`.
  (check(&name).is_ok() && file_stem(&name) == stem).then_some(name)
}

/// Whether `file_stem` makes `stem` for some name: the rendezvous removes files of such stems
/// only.
pub fn is_stem(stem: &str) -> bool {
  name_of_stem(stem).is_some()
    || stem.split_once('~').is_some_and(|(prefix, hash)| {
      prefix.len() <= HASHED_PREFIX
        && prefix
          .bytes()
          .enumerate()
          .all(|(i, byte)| is_kept(byte, i == 0) || byte == b'%')
        && hash.len() == 32
        && hash
          .bytes()
          .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn portable_names_keep_their_file_name() {
    for name in ["jobs", "my-doc.v2", "a_b", "x".repeat(64).as_str()] {
      assert_eq!(file_stem(name), name);
      assert_eq!(name_of_stem(name).as_deref(), Some(name));
    }
  }

  #[test]
  fn other_names_are_escaped_into_one_safe_component() {
    for (name, stem) in [
      ("app:cache", "app%3Acache"),
      ("my object", "my%20object"),
      (".hidden", "%2Ehidden"),
      (".", "%2E"),
      ("..", "%2E."),
      ("../up", "%2E.%2Fup"),
      ("a/b", "a%2Fb"),
      ("nul\0", "nul%00"),
      ("ü", "%C3%BC"),
      ("50%", "50%25"),
      ("a~b", "a%7Eb"),
    ] {
      assert_eq!(file_stem(name), stem, "{name:?}");
      assert_eq!(name_of_stem(stem).as_deref(), Some(name), "{stem}");
    }
  }

  #[test]
  fn long_names_are_hashed_and_never_collide_with_plain_ones() {
    let long = "x".repeat(65);
    let stem = file_stem(&long);
    assert_eq!(stem.len(), HASHED_PREFIX + 1 + 32, "{stem}");
    assert!(stem.starts_with(&"x".repeat(HASHED_PREFIX)));
    assert_ne!(file_stem(&"x".repeat(66)), stem);
    // A name's file must not move between builds: pinned to `sha256sum`'s digest of 100 `x`.
    assert_eq!(
      file_stem(&"x".repeat(100)),
      format!(
        "{}~09ecb6ebc8bcefc733f6f2ec44f791ab",
        "x".repeat(HASHED_PREFIX)
      )
    );
    assert_eq!(name_of_stem(&stem), None);
    // A plain name spelled like a hashed stem is escaped.
    assert_ne!(file_stem(&stem), stem);
    // The prefix never splits an escape.
    let stem = file_stem(&"ü".repeat(40));
    assert!(
      stem.split('~').next().unwrap().len().is_multiple_of(3),
      "{stem}"
    );
    assert!(stem.len() <= MAX_PLAIN_STEM);
  }

  #[test]
  fn stems_of_names_are_told_from_other_file_stems() {
    for name in ["jobs", "app:cache", &"x".repeat(100), &"ü".repeat(40)] {
      assert!(is_stem(&file_stem(name)), "{name:?}");
    }
    for stem in [
      "%61",
      "a~b",
      "",
      ".hidden",
      "a b",
      &format!("{}~{}", "x".repeat(31), "A".repeat(32)),
    ] {
      assert!(!is_stem(stem), "{stem:?}");
    }
  }

  #[test]
  fn non_canonical_or_broken_stems_name_nothing() {
    for stem in ["%61", "%2", "%zz", "%FF", "a~b", ""] {
      assert_eq!(name_of_stem(stem), None, "{stem}");
    }
  }

  #[test]
  fn empty_and_oversized_names_are_refused() {
    assert!(check("").is_err());
    assert!(check(&"x".repeat(MAX_NAME_BYTES)).is_ok());
    let err = check(&"x".repeat(MAX_NAME_BYTES + 1)).unwrap_err();
    assert!(err.contains("1025 bytes"), "{err}");
  }
}
