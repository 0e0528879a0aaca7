//! The local transport's wire format between a host and its clients: length-prefixed frames.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload: the UTF-8 JSON of one
//! [`Message`], except for the two that every patch costs, [`Message::Patch`] and
//! [`Message::Ordered`], and the one that carries the whole document, [`Message::Welcome`],
//! which are a tag byte (never the start of JSON), their numbers in little-endian binary and
//! their JSON texts as they are: decoding their JSON envelope took a quarter of a writing
//! client's JS thread, and scanning a 10 MB document to find its end a tenth of a join. Either
//! form decodes. Everything here is synchronous and does no I/O: [`encode`] appends to a buffer
//! and [`decode`] reads from a slice, so the codec is tested byte by byte (mini-redis
//! `tests/frame_validation.rs`). "Not enough bytes yet" is `Ok(None)`, a normal result kept
//! apart from [`ProtocolError`], which means the peer sent something we will never accept.

use std::fmt;

use crate::clock::Hlc;
use crate::core::message::{JsonText, Message, RawJson};

/// The version a client announces in [`Message::Hello`]; the host refuses any other.
pub const PROTOCOL_VERSION: u32 = 5;

/// The largest payload a frame may carry, in bytes. A larger announced length is rejected before
/// its body arrives, so a broken peer cannot make us buffer without bound.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
/// The largest update JS sends, as UTF-8 JSON: a quarter of a frame, since the ordered patch
/// carries the update and its changes, which may be as large. A larger frame could not be sent,
/// and other processes would never receive the patch.
pub const MAX_UPDATE_BYTES: usize = MAX_FRAME / 4;

/// Bytes of the length prefix.
const HEADER_LEN: usize = 4;

/// The first payload byte of a binary [`Message::Ordered`]: version, origin, seq, hlc ms (u64
/// each), hlc counter and the update's length (u32 each), the update, the changes.
const ORDERED_TAG: u8 = 1;
/// The first payload byte of a binary [`Message::Patch`]: seq, hlc ms (u64 each), hlc counter
/// (u32), the update.
const PATCH_TAG: u8 = 2;
/// The first payload byte of a binary [`Message::Welcome`]: protocol, host pid (u32 each),
/// version (u64), the number of applied pairs (u32), each pair's origin and seq (u64 each), the
/// document.
const WELCOME_TAG: u8 = 3;

/// Why bytes received are not a valid frame, or a message cannot be sent as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
  /// The payload length exceeds [`MAX_FRAME`].
  Oversized {
    /// The payload length announced or produced.
    len: usize,
    /// The limit, [`MAX_FRAME`].
    max: usize,
  },
  /// The payload is not well-formed JSON.
  InvalidJson(String),
  /// The payload is JSON but not a known message (unknown type, missing or mistyped field).
  InvalidMessage(String),
}

impl fmt::Display for ProtocolError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      ProtocolError::Oversized { len, max } => {
        write!(f, "frame of {len} bytes exceeds the limit of {max} bytes")
      }
      ProtocolError::InvalidJson(detail) => write!(f, "frame is not valid JSON: {detail}"),
      ProtocolError::InvalidMessage(detail) => write!(f, "frame is not a valid message: {detail}"),
    }
  }
}

impl std::error::Error for ProtocolError {}

impl From<serde_json::Error> for ProtocolError {
  fn from(err: serde_json::Error) -> Self {
    // Syntax and early end are the sender's framing or encoding bugs; data errors mean well-formed
    // JSON of the wrong shape, typically a message type this version does not know.
    match err.classify() {
      serde_json::error::Category::Data => ProtocolError::InvalidMessage(err.to_string()),
      _ => ProtocolError::InvalidJson(err.to_string()),
    }
  }
}

/// The host's `Welcome` to a client: the document at `version`, and what it contains.
pub fn welcome(version: u64, data: JsonText, applied: Vec<(u64, u64)>) -> Message {
  Message::Welcome {
    protocol: PROTOCOL_VERSION,
    host_pid: std::process::id(),
    version,
    data,
    applied,
  }
}

/// Appends one frame carrying `message` to `out`.
///
/// Appending (rather than returning a buffer) lets a writer coalesce several frames into one
/// write. On error `out` is left as it was.
pub fn encode(message: &Message, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
  let start = out.len();
  out.extend_from_slice(&[0; HEADER_LEN]);
  let written = match message {
    Message::Ordered {
      version,
      origin,
      seq,
      hlc,
      update,
      changes,
    } => {
      out.push(ORDERED_TAG);
      for number in [version, origin, seq, &hlc.ms] {
        out.extend_from_slice(&number.to_le_bytes());
      }
      out.extend_from_slice(&hlc.counter.to_le_bytes());
      // Past u32::MAX the frame is oversized anyway, which the check below reports.
      let update_len = u32::try_from(update.get().len()).unwrap_or(u32::MAX);
      out.extend_from_slice(&update_len.to_le_bytes());
      out.extend_from_slice(update.get().as_bytes());
      out.extend_from_slice(changes.get().as_bytes());
      Ok(())
    }
    Message::Patch { seq, hlc, update } => {
      out.push(PATCH_TAG);
      out.extend_from_slice(&seq.to_le_bytes());
      out.extend_from_slice(&hlc.ms.to_le_bytes());
      out.extend_from_slice(&hlc.counter.to_le_bytes());
      out.extend_from_slice(update.get().as_bytes());
      Ok(())
    }
    Message::Welcome {
      protocol,
      host_pid,
      version,
      data,
      applied,
    } => {
      // Sized once: the document is most of it.
      out.reserve(1 + 20 + 16 * applied.len() + data.get().len());
      out.push(WELCOME_TAG);
      out.extend_from_slice(&protocol.to_le_bytes());
      out.extend_from_slice(&host_pid.to_le_bytes());
      out.extend_from_slice(&version.to_le_bytes());
      // Past u32::MAX pairs the frame is oversized anyway, which the check below reports.
      let pairs = u32::try_from(applied.len()).unwrap_or(u32::MAX);
      out.extend_from_slice(&pairs.to_le_bytes());
      for (origin, seq) in applied {
        out.extend_from_slice(&origin.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
      }
      out.extend_from_slice(data.get().as_bytes());
      Ok(())
    }
    _ => serde_json::to_writer(&mut *out, message),
  };
  let len = out.len() - start - HEADER_LEN;
  let header = match (written, u32::try_from(len)) {
    (Err(err), _) => Err(ProtocolError::from(err)),
    (Ok(()), Ok(header)) if len <= MAX_FRAME => Ok(header),
    // Refused here too: the peer would reject it, and only after the whole frame was sent.
    (Ok(()), _) => Err(ProtocolError::Oversized {
      len,
      max: MAX_FRAME,
    }),
  };
  match header {
    Ok(header) => {
      out[start..start + HEADER_LEN].copy_from_slice(&header.to_be_bytes());
      Ok(())
    }
    Err(err) => {
      out.truncate(start);
      Err(err)
    }
  }
}

/// Decodes the frame at the start of `buf`.
///
/// `Ok(None)`: `buf` holds only a prefix of a frame; read more and call again.
/// `Ok(Some((message, consumed)))`: the first `consumed` bytes were one frame.
/// `Err`: the bytes can never become a valid frame; an oversized length is reported as soon as the
/// header is complete, without waiting for the body.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, ProtocolError> {
  let Some(len) = declared_len(buf) else {
    return Ok(None);
  };
  if len > MAX_FRAME {
    return Err(ProtocolError::Oversized {
      len,
      max: MAX_FRAME,
    });
  }
  let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
    return Ok(None);
  };
  let message = match payload.split_first() {
    Some((&ORDERED_TAG, fields)) => decode_ordered(&mut Fields(fields))?,
    Some((&PATCH_TAG, fields)) => decode_patch(&mut Fields(fields))?,
    Some((&WELCOME_TAG, fields)) => decode_welcome(&mut Fields(fields))?,
    _ => serde_json::from_slice(payload)?,
  };
  Ok(Some((message, HEADER_LEN + len)))
}

/// How many complete frames `buf` begins with: the room a burst's batch needs (bursts of tens
/// of frames are common, and a batch grown one message at a time was reallocated for each
/// doubling: 5-7% of a client's receive samples in the clustered service's profile).
pub fn complete_frames(mut buf: &[u8]) -> usize {
  let mut count = 0;
  while let Some(len) = declared_len(buf) {
    match buf[HEADER_LEN..].get(len..) {
      Some(rest) => {
        buf = rest;
        count += 1;
      }
      None => break,
    }
  }
  count
}

/// The length of the frame at the start of `buf` (header included, at most a frame's limit),
/// once its header is in: what a reader makes room for before the rest arrives.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
  declared_len(buf).map(|len| HEADER_LEN + len.min(MAX_FRAME))
}

/// The payload length declared by the header at the start of `buf`, once the header is in.
fn declared_len(buf: &[u8]) -> Option<usize> {
  let header = buf.first_chunk::<HEADER_LEN>()?;
  // A u32 always fits in usize on the 32- and 64-bit targets we build for; saturate otherwise so
  // that a size check still refuses it.
  Some(usize::try_from(u32::from_be_bytes(*header)).unwrap_or(usize::MAX))
}

/// The fields of a binary payload, read in order.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
  fn take<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
    let Some((bytes, rest)) = self.0.split_first_chunk::<N>() else {
      return Err(ProtocolError::InvalidMessage(
        "a binary frame ends inside its fields".to_owned(),
      ));
    };
    self.0 = rest;
    Ok(*bytes)
  }

  fn u64(&mut self) -> Result<u64, ProtocolError> {
    self.take().map(u64::from_le_bytes)
  }

  fn u32(&mut self) -> Result<u32, ProtocolError> {
    self.take().map(u32::from_le_bytes)
  }

  fn hlc(&mut self) -> Result<Hlc, ProtocolError> {
    Ok(Hlc {
      ms: self.u64()?,
      counter: self.u32()?,
    })
  }

  /// The next `len` bytes, which must be UTF-8.
  fn str(&mut self, len: usize) -> Result<&str, ProtocolError> {
    if len > self.0.len() {
      return Err(ProtocolError::InvalidMessage(
        "a binary frame ends inside its JSON".to_owned(),
      ));
    }
    let (text, rest) = self.0.split_at(len);
    self.0 = rest;
    std::str::from_utf8(text).map_err(|err| ProtocolError::InvalidJson(err.to_string()))
  }

  /// The next `len` bytes as text that opens with `open` and closes with `close`, not checked
  /// further to be JSON (see [`JsonText`]): a frame cut short or misframed fails here.
  fn text(&mut self, len: usize, open: char, close: char) -> Result<JsonText, ProtocolError> {
    let text = self.str(len)?;
    if !(text.starts_with(open) && text.ends_with(close)) {
      return Err(ProtocolError::InvalidJson(format!(
        "a binary frame's JSON is not enclosed in {open}{close}"
      )));
    }
    Ok(JsonText::from(text.to_owned()))
  }

  /// The rest as one JSON value.
  fn rest_json(&mut self) -> Result<RawJson, ProtocolError> {
    let text = self.str(self.0.len())?.to_owned();
    Ok(RawJson::parse(text)?)
  }
}

fn decode_ordered(fields: &mut Fields<'_>) -> Result<Message, ProtocolError> {
  let version = fields.u64()?;
  let origin = fields.u64()?;
  let seq = fields.u64()?;
  let hlc = fields.hlc()?;
  let update_len = usize::try_from(fields.u32()?).unwrap_or(usize::MAX);
  // Not checked to be JSON here: the receiving replica parses the changes anyway, and checks
  // the update when it needs it as JSON (`JsonText`).
  let update = fields.text(update_len, '{', '}')?;
  Ok(Message::Ordered {
    version,
    origin,
    seq,
    hlc,
    update,
    changes: fields.text(fields.0.len(), '[', ']')?,
  })
}

fn decode_patch(fields: &mut Fields<'_>) -> Result<Message, ProtocolError> {
  Ok(Message::Patch {
    seq: fields.u64()?,
    hlc: fields.hlc()?,
    update: fields.rest_json()?,
  })
}

fn decode_welcome(fields: &mut Fields<'_>) -> Result<Message, ProtocolError> {
  let protocol = fields.u32()?;
  let host_pid = fields.u32()?;
  let version = fields.u64()?;
  let pairs = fields.u32()?;
  // Each pair is 16 bytes: a count the frame cannot hold is refused before any room is made.
  let pairs = usize::try_from(pairs).unwrap_or(usize::MAX);
  if pairs > fields.0.len() / 16 {
    return Err(ProtocolError::InvalidMessage(
      "a welcome's applied pairs run past its frame".to_owned(),
    ));
  }
  let mut applied = Vec::with_capacity(pairs);
  for _ in 0..pairs {
    applied.push((fields.u64()?, fields.u64()?));
  }
  Ok(Message::Welcome {
    protocol,
    host_pid,
    version,
    applied,
    // Not checked to be JSON here: the client parses it as it takes it (`JsonText`).
    data: fields.text(fields.0.len(), '{', '}')?,
  })
}

#[cfg(test)]
mod tests {
  use serde_json::json;

  use super::*;
  use crate::core::message::{LogEntry, PeerInfo, RemoteError};

  fn frame(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    assert_eq!(encode(message, &mut out), Ok(()));
    out
  }

  /// A frame whose payload is the given bytes, valid or not.
  fn raw_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
  }

  fn raw(value: serde_json::Value) -> RawJson {
    RawJson::to(&value).unwrap()
  }

  fn text(value: serde_json::Value) -> JsonText {
    JsonText::from(value.to_string())
  }

  fn hlc(ms: u64, counter: u32) -> Hlc {
    Hlc { ms, counter }
  }

  fn every_message() -> Vec<Message> {
    vec![
      Message::Hello {
        protocol: PROTOCOL_VERSION,
        pid: 4242,
        origin: u64::MAX,
        version: 7,
        peer: PeerInfo::default(),
      },
      Message::Hello {
        protocol: PROTOCOL_VERSION,
        pid: 1,
        origin: 2,
        version: 0,
        peer: PeerInfo {
          methods: vec!["getFoo".into(), "nested.fn".into()],
          roles: vec!["writer".into()],
          max_writers: Some(2),
          rejoining: true,
        },
      },
      Message::Call {
        id: 3,
        method: "nested.fn".into(),
        args: raw(json!([1, { "a": null }])),
      },
      Message::Reply {
        id: 3,
        result: Some(raw(json!({ "ok": [1] }))),
        error: None,
      },
      Message::Reply {
        id: 4,
        result: None,
        error: Some(RemoteError {
          code: Some("ERR_X".into()),
          message: "no".into(),
        }),
      },
      Message::Emit {
        event: "tick".into(),
        args: raw(json!(["a", 2])),
      },
      Message::Lock {
        id: 1,
        key: "jobs".into(),
        since: hlc(5, 1),
        held: true,
      },
      Message::Unlock { id: 1 },
      Message::Granted { id: u64::MAX },
      Message::About {
        pid: 7,
        peer: PeerInfo::default(),
        clients: 2,
      },
      Message::Clients { count: 3 },
      Message::Ping { id: 1 },
      Message::Pong { id: 1 },
      Message::Welcome {
        protocol: PROTOCOL_VERSION,
        host_pid: 1,
        version: 9,
        data: text(json!({ "a": { "b": [1, 2.5, "x", null, true] }, "é": "ü" })),
        applied: vec![(1, 3), (u64::MAX, 0)],
      },
      Message::Refused {
        reason: "protocol 2 is not supported".into(),
        code: None,
      },
      Message::Refused {
        reason: "2 writers already".into(),
        code: Some("ERR_MAX_WRITERS".into()),
      },
      Message::Patch {
        seq: 1,
        hlc: hlc(1_700_000_000_000, 3),
        update: raw(json!({ "$set": { "a.b": 1 } })),
      },
      Message::Ordered {
        version: 10,
        origin: 5,
        seq: 2,
        hlc: hlc(1, u32::MAX),
        update: text(json!({ "$inc": { "n": 1 } })),
        changes: text(json!([{ "op": "set", "path": ["n"], "value": 1 }])),
      },
      Message::Rejected {
        seq: 3,
        code: "ERR_BAD_UPDATE".into(),
        message: "unknown operator $nope".into(),
      },
      Message::Catchup { entries: vec![] },
      Message::Catchup {
        entries: vec![
          LogEntry {
            version: 11,
            origin: 5,
            seq: 3,
            hlc: hlc(2, 0),
            update: raw(json!({ "$unset": { "a": "" } })),
          },
          LogEntry {
            version: 12,
            origin: 6,
            seq: 1,
            hlc: hlc(2, 1),
            update: raw(json!({})),
          },
        ],
      },
      Message::Query,
      Message::Heartbeat,
      Message::Status {
        host_pid: 7,
        version: 8,
        clients: 9,
      },
    ]
  }

  #[test]
  fn complete_frames_counts_the_frames_received_in_full() {
    let mut bytes = Vec::new();
    for message in every_message() {
      bytes.extend(frame(&message));
    }
    let all = every_message().len();
    assert_eq!(complete_frames(&bytes), all);
    assert_eq!(complete_frames(&bytes[..bytes.len() - 1]), all - 1);
    assert_eq!(complete_frames(&[]), 0);
    assert_eq!(complete_frames(&bytes[..HEADER_LEN - 1]), 0);
    assert_eq!(complete_frames(&bytes[..HEADER_LEN]), 0);
    // An oversized length counts as incomplete: decode refuses it.
    assert_eq!(complete_frames(&u32::MAX.to_be_bytes()), 0);
  }

  #[test]
  fn every_message_roundtrips() {
    for message in every_message() {
      let bytes = frame(&message);
      assert_eq!(
        decode(&bytes),
        Ok(Some((message.clone(), bytes.len()))),
        "{message:?}"
      );
    }
  }

  #[test]
  fn wire_format_is_compact_camel_case() {
    let bytes = frame(&Message::Status {
      host_pid: 1,
      version: 2,
      clients: 3,
    });
    let expected = br#"{"t":"status","c":{"hostPid":1,"version":2,"clients":3}}"#;
    assert_eq!(&bytes[..4], (expected.len() as u32).to_be_bytes());
    assert_eq!(&bytes[4..], expected);

    let bytes = frame(&Message::Welcome {
      protocol: 1,
      host_pid: 2,
      version: 3,
      data: text(json!({})),
      applied: vec![(4, 5)],
    });
    let mut expected = vec![WELCOME_TAG];
    expected.extend_from_slice(&1u32.to_le_bytes());
    expected.extend_from_slice(&2u32.to_le_bytes());
    expected.extend_from_slice(&3u64.to_le_bytes());
    expected.extend_from_slice(&1u32.to_le_bytes());
    expected.extend_from_slice(&4u64.to_le_bytes());
    expected.extend_from_slice(&5u64.to_le_bytes());
    expected.extend_from_slice(b"{}");
    assert_eq!(&bytes[4..], expected);

    let bytes = frame(&Message::Patch {
      seq: 1,
      hlc: hlc(2, 3),
      update: raw(json!({})),
    });
    let mut expected = vec![PATCH_TAG];
    expected.extend_from_slice(&1u64.to_le_bytes());
    expected.extend_from_slice(&2u64.to_le_bytes());
    expected.extend_from_slice(&3u32.to_le_bytes());
    expected.extend_from_slice(b"{}");
    assert_eq!(&bytes[4..], expected);
  }

  #[test]
  fn patches_and_ordered_patches_decode_from_json_too() {
    let patch = raw_frame(br#"{"t":"patch","c":{"seq":1,"hlc":[2,3],"update":{"$inc":{"n":1}}}}"#);
    assert_eq!(
      decode(&patch),
      Ok(Some((
        Message::Patch {
          seq: 1,
          hlc: hlc(2, 3),
          update: raw(json!({"$inc": {"n": 1}})),
        },
        patch.len()
      )))
    );
    let ordered = raw_frame(
      br#"{"t":"ordered","c":{"version":4,"origin":5,"seq":1,"hlc":[2,3],"update":{},"changes":[]}}"#,
    );
    let Ok(Some((
      Message::Ordered {
        version, changes, ..
      },
      _,
    ))) = decode(&ordered)
    else {
      panic!("the JSON form of an ordered patch decodes");
    };
    assert_eq!((version, changes.get()), (4, "[]"));
  }

  #[test]
  fn broken_binary_frames_are_errors() {
    let good = frame(&Message::Ordered {
      version: 1,
      origin: 2,
      seq: 3,
      hlc: hlc(4, 5),
      update: text(json!({"$set": {"a": 1}})),
      changes: text(json!([["s", ["a"], 1]])),
    });
    let payload = &good[4..];
    // Cut inside the numbers, inside the update's length (bytes 37 to 40), inside the update
    // (41 to 56), and before the changes.
    for cut in [5, 39, 45, 56, 57] {
      assert!(
        matches!(
          decode(&raw_frame(&payload[..cut])),
          Err(ProtocolError::InvalidMessage(_) | ProtocolError::InvalidJson(_))
        ),
        "cut at {cut}"
      );
    }
    // An update length past the end of the frame.
    let mut long = payload.to_vec();
    long[37..41].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
      decode(&raw_frame(&long)),
      Err(ProtocolError::InvalidMessage(_))
    ));
    // Text that is not JSON, or not UTF-8.
    let mut patch = vec![PATCH_TAG];
    patch.extend_from_slice(&[0; 20]);
    for update in [&b"{"[..], b"{} 1", &[0xff, 0xfe]] {
      let mut bytes = patch.clone();
      bytes.extend_from_slice(update);
      assert!(
        matches!(
          decode(&raw_frame(&bytes)),
          Err(ProtocolError::InvalidJson(_))
        ),
        "{update:?}"
      );
    }
  }

  #[test]
  fn broken_welcomes_are_errors() {
    let welcome = |pairs: u32, rest: &[u8]| {
      let mut payload = vec![WELCOME_TAG];
      payload.extend_from_slice(&[0; 16]);
      payload.extend_from_slice(&pairs.to_le_bytes());
      payload.extend_from_slice(rest);
      raw_frame(&payload)
    };
    assert!(matches!(
      decode(&welcome(0, b"{}")),
      Ok(Some((Message::Welcome { .. }, _)))
    ));
    // More pairs than the frame holds (no room is made for them), a pair cut short, a document
    // that is not an object, or none.
    for (pairs, rest) in [(u32::MAX, &b"{}"[..]), (2, &[0; 18][..]), (1, &[0; 15][..])] {
      assert!(
        matches!(
          decode(&welcome(pairs, rest)),
          Err(ProtocolError::InvalidMessage(_))
        ),
        "{pairs} pairs, {} bytes",
        rest.len()
      );
    }
    for document in [&b"[]"[..], b"", b"{", &[b'{', 0xff, b'}']] {
      assert!(
        matches!(
          decode(&welcome(0, document)),
          Err(ProtocolError::InvalidJson(_))
        ),
        "{document:?}"
      );
    }
  }

  #[test]
  fn every_prefix_of_a_frame_is_incomplete() {
    for message in every_message() {
      let bytes = frame(&message);
      for split in 0..bytes.len() {
        assert_eq!(
          decode(&bytes[..split]),
          Ok(None),
          "{message:?} cut at {split}"
        );
      }
    }
  }

  #[test]
  fn a_truncated_header_is_incomplete() {
    assert_eq!(decode(&[]), Ok(None));
    assert_eq!(decode(&[0]), Ok(None));
    assert_eq!(decode(&[0, 0, 0]), Ok(None));
    // Even a header that will announce an oversized frame: its length is not known yet.
    assert_eq!(decode(&[0xff, 0xff, 0xff]), Ok(None));
  }

  #[test]
  fn frames_in_one_buffer_decode_in_turn() {
    let messages = every_message();
    let mut bytes = Vec::new();
    for message in &messages {
      assert_eq!(encode(message, &mut bytes), Ok(()));
    }
    let mut offset = 0;
    for message in &messages {
      let Ok(Some((decoded, consumed))) = decode(&bytes[offset..]) else {
        panic!("expected a frame at offset {offset}");
      };
      assert_eq!(&decoded, message);
      offset += consumed;
    }
    assert_eq!(offset, bytes.len());
    assert_eq!(decode(&bytes[offset..]), Ok(None));
  }

  #[test]
  fn an_oversized_length_is_rejected_without_the_body() {
    let len = MAX_FRAME + 1;
    let header = (len as u32).to_be_bytes();
    let expected = Err(ProtocolError::Oversized {
      len,
      max: MAX_FRAME,
    });
    assert_eq!(decode(&header), expected);
    assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff, b'{']), {
      Err(ProtocolError::Oversized {
        len: u32::MAX as usize,
        max: MAX_FRAME,
      })
    });
    // The limit itself is allowed: only the body is missing.
    assert_eq!(decode(&(MAX_FRAME as u32).to_be_bytes()), Ok(None));
  }

  #[test]
  fn an_oversized_message_is_not_encoded() {
    let mut out = vec![1, 2, 3];
    let message = Message::Refused {
      reason: "x".repeat(MAX_FRAME),
      code: None,
    };
    assert!(matches!(
      encode(&message, &mut out),
      Err(ProtocolError::Oversized { max: MAX_FRAME, .. })
    ));
    assert_eq!(out, [1, 2, 3], "the buffer is left as it was");
  }

  #[test]
  fn garbage_is_invalid_json() {
    for payload in [
      &b"{not json"[..],
      b"",
      b"\xff\xfe",
      b"{\"t\":\"hello\"",
      // A whole message followed by more bytes in the same frame.
      br#"{"t":"refused","c":{"reason":"x"}} 3"#,
    ] {
      assert!(
        matches!(
          decode(&raw_frame(payload)),
          Err(ProtocolError::InvalidJson(_))
        ),
        "{payload:?}"
      );
    }
  }

  #[test]
  fn unknown_or_malformed_messages_are_invalid() {
    let cases = [
      r#"{"t":"teleport","c":{}}"#,
      r#"{"c":{"reason":"no tag"}}"#,
      r#"{"t":"refused","c":{}}"#,
      r#"{"t":"patch","c":{"seq":-1,"hlc":[1,2],"update":{}}}"#,
      r#"{"t":"patch","c":{"seq":1,"hlc":[1],"update":{}}}"#,
      r#"[1,2,3]"#,
      r#""hello""#,
    ];
    for payload in cases {
      let result = decode(&raw_frame(payload.as_bytes()));
      assert!(
        matches!(result, Err(ProtocolError::InvalidMessage(_))),
        "{payload}: {result:?}"
      );
    }
  }

  #[test]
  fn errors_display_their_cause() {
    let oversized = ProtocolError::Oversized { len: 10, max: 5 };
    assert_eq!(
      oversized.to_string(),
      "frame of 10 bytes exceeds the limit of 5 bytes"
    );
    let Err(err) = decode(&raw_frame(br#"{"t":"teleport","c":{}}"#)) else {
      panic!("expected an error");
    };
    assert!(
      err.to_string().contains("unknown variant `teleport`"),
      "{err}"
    );
  }
}
