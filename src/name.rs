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
  for byte in &sha256(name.as_bytes())[..16] {
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

/// SHA-256 (FIPS 180-4): names are hashed the same by every build, which std's hashers do not
/// promise, and no one can make two names collide on purpose.
fn sha256(input: &[u8]) -> [u8; 32] {
  const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ];
  let mut state: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ];
  let mut message = input.to_vec();
  message.push(0x80);
  while message.len() % 64 != 56 {
    message.push(0);
  }
  message.extend_from_slice(&((input.len() as u64) * 8).to_be_bytes());
  for block in message.chunks_exact(64) {
    let mut w = [0u32; 64];
    for (i, word) in block.chunks_exact(4).enumerate() {
      w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    }
    for i in 16..64 {
      let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
      let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16]
        .wrapping_add(s0)
        .wrapping_add(w[i - 7])
        .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
    for i in 0..64 {
      let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
      let choice = (e & f) ^ (!e & g);
      let t1 = h
        .wrapping_add(s1)
        .wrapping_add(choice)
        .wrapping_add(K[i])
        .wrapping_add(w[i]);
      let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
      let majority = (a & b) ^ (a & c) ^ (b & c);
      let t2 = s0.wrapping_add(majority);
      h = g;
      g = f;
      f = e;
      e = d.wrapping_add(t1);
      d = c;
      c = b;
      b = a;
      a = t1.wrapping_add(t2);
    }
    for (word, add) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
      *word = word.wrapping_add(add);
    }
  }
  let mut digest = [0u8; 32];
  for (out, word) in digest.chunks_exact_mut(4).zip(state) {
    out.copy_from_slice(&word.to_be_bytes());
  }
  digest
}

#[cfg(test)]
mod tests {
  use super::*;

  fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
  }

  #[test]
  fn sha256_matches_the_standard_vectors() {
    assert_eq!(
      hex(&sha256(b"")),
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
      hex(&sha256(b"abc")),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
      hex(&sha256(
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
      )),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    // Many blocks (the same as `sha256sum`).
    assert_eq!(
      hex(&sha256(&[b'a'; 1000])),
      "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
    );
  }

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
