//! The events the native side hands to the JS facade (`lib/memsync.js`), and the queue that holds
//! them until JS drains it.
//!
//! An event crosses as a compact JSON array whose first element is its tag (`["o", ...]`): JS
//! parses one array of them per drain, which costs less than objects with field names on the
//! path of every patch. [`Event`] documents each one's fields; [`Kind::ALL`] is the one table of
//! tags, which JS reads through `eventTags()` instead of copying it.

use serde::Serialize;
use serde::Serializer;
use serde_json::Value;

use crate::clock::Hlc;
use crate::core::message::{RawJson, RemoteError};
use crate::patch::Change;

/// Bytes of document events queued for a JS thread that does not drain them (a stuck event
/// loop) before they are replaced by one snapshot taken when it drains again.
pub const MAX_EVENT_BACKLOG: usize = 16 * 1024 * 1024;
/// Bytes of `mem.events` events from other processes queued for a JS thread that does not
/// drain them, past which further ones are dropped (and counted): unlike document events, they
/// have no snapshot to be replaced by, and a stuck process must not grow without bound.
pub const MAX_BUS_BACKLOG: usize = 16 * 1024 * 1024;
/// Bytes of diagnostic lines queued for a JS thread that does not drain them, past which further
/// ones are dropped (and counted in one last line).
pub const MAX_DEBUG_BACKLOG: usize = 1024 * 1024;

/// Declares [`Kind`] with its tag and name from one table.
macro_rules! kinds {
  ($($(#[$doc:meta])* $variant:ident = $tag:literal as $name:literal,)*) => {
    /// What an event is, without its fields: its tag on the wire.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
      $($(#[$doc])* $variant,)*
    }

    impl Kind {
      /// Every kind, for JS's table of tags.
      pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

      /// The tag that opens the event's array.
      pub const fn tag(self) -> &'static str {
        match self {
          $(Kind::$variant => $tag,)*
        }
      }

      /// The name JS gives the tag (`eventTags()`).
      pub const fn name(self) -> &'static str {
        match self {
          $(Kind::$variant => $name,)*
        }
      }
    }
  };
}

kinds! {
  /// [`Event::Own`].
  Own = "o" as "own",
  /// [`Event::Changes`].
  Changes = "c" as "changes",
  /// [`Event::Snapshot`].
  Snapshot = "r" as "snapshot",
  /// [`Event::Ack`].
  Ack = "a" as "ack",
  /// [`Event::Accepted`].
  Accepted = "A" as "accepted",
  /// [`Event::Rejected`].
  Rejected = "x" as "rejected",
  /// [`Event::Role`].
  Role = "role" as "role",
  /// [`Event::Fail`].
  Fail = "fail" as "fail",
  /// [`Event::Call`].
  Call = "call" as "call",
  /// [`Event::Reply`].
  Reply = "reply" as "reply",
  /// [`Event::Pong`].
  Pong = "pong" as "pong",
  /// [`Event::Grant`].
  Grant = "g" as "grant",
  /// [`Event::EventsDropped`].
  EventsDropped = "edrop" as "eventsDropped",
  /// [`Event::Emit`].
  Emit = "e" as "emit",
  /// [`Event::Error`].
  Error = "error" as "error",
  /// [`Event::Debug`].
  Debug = "debug" as "debug",
  /// [`Event::Warning`].
  Warning = "warn" as "warning",
  /// [`Event::Document`].
  Document = "d" as "document",
  /// [`Event::Digest`].
  Digest = "h" as "digest",
}

/// One event for JS. Each variant's doc gives its array on the wire and what its fields mean.
#[derive(Debug)]
pub enum Event<'a> {
  /// `["o", seq, version, changes, queued]`: the result of this process's own `patch()`, the
  /// last event `patch()` returns: its sequence number, the version the host gave it (0: not
  /// ordered yet), what it changed in `data` (null: nothing, and `seq` is 0), and whether frames
  /// for other processes wait for JS to flush (0 or 1).
  Own {
    seq: u64,
    version: u64,
    changes: Option<&'a [Change]>,
    queued: bool,
  },
  /// `["c", version, changes, received]`: patches ordered elsewhere (and rebases of the pending
  /// ones): the version reached, the compacted changes to apply to `data`, and the records
  /// `{ version, timestamp, patch }` of the patches ordered elsewhere when JS listens to
  /// `receivedPatches`/`change` (else `[]`).
  Changes {
    version: u64,
    changes: &'a [Change],
    received: &'a [RawJson],
  },
  /// `["r", version, data]`: the whole document, at `version`, replaces `data` (joining a host, a
  /// loaded file, or after JS left too many changes undrained).
  Snapshot { version: u64, data: Document<'a> },
  /// `["a", seq, version]`: the host ordered own patch `seq` at `version`.
  Ack { seq: u64, version: u64 },
  /// `["A", [seq, ...]]`: the host ordered these own patches (a run of acknowledgements).
  Accepted(&'a [u64]),
  /// `["x", seq, code, message]`: the host rejected own patch `seq` with this error; it was
  /// rolled back.
  Rejected {
    seq: u64,
    code: &'a str,
    message: &'a str,
  },
  /// `["role", role]`: the instance became `offline`, `host` or `client`.
  Role(&'static str),
  /// `["fail", code, message]`: the instance cannot take part in its network, for this error
  /// (`start()` rejects, or it left it).
  Fail { code: &'a str, message: &'a str },
  /// `["call", id, method, args]`: run RPC `method` (a dotted name) here with `args` (a JSON
  /// array), and answer with `reply(id, ...)`.
  Call {
    id: u64,
    method: String,
    args: RawJson,
  },
  /// `["reply", id, error, result?]`: the outcome of this process's call `id`: `error` null on
  /// success, `result` absent for `undefined`.
  Reply {
    id: u64,
    error: Option<RemoteError>,
    result: Option<RawJson>,
  },
  /// `["pong", id, pid]`: process `pid` answered ping `id`.
  Pong { id: u64, pid: u32 },
  /// `["g", id]`: lock request `id` is granted.
  Grant(u64),
  /// `["edrop", count]`: `count` bus events were dropped because JS did not drain them.
  EventsDropped(u64),
  /// `["e", event, args]`: another process emitted `event` on `mem.events` with `args` (a JSON
  /// array).
  Emit { event: String, args: RawJson },
  /// `["error", code, message]`: a failure that does not stop the instance (an `error` event).
  Error { code: &'a str, message: &'a str },
  /// `["warn", code, message]`: a condition that weakens a guarantee without failing anything
  /// (a process warning, as Node.js's own deprecations are).
  Warning { code: &'a str, message: &'a str },
  /// `["debug", line]`: what the instance noticed that is not a failure of the application's
  /// (a client that went away, a peer refused), for `NODE_DEBUG=memsync`.
  Debug(&'a str),
  /// `["h", a, b]`: the digest (`core::digest`) of the document as the events before it leave
  /// it, which JS compares with that of `data` to find direct writes. Never queued: only the last
  /// event of `Replica::drain_for_check`.
  Digest([u32; 2]),
  /// `["d", data]`: the whole document as the events before it leave it, which JS restores `data`
  /// from when the digests differ. Never queued, as [`Event::Digest`].
  Document(&'a Value),
}

/// The document of a snapshot, as the text that arrived or as the value held.
#[derive(Debug)]
pub enum Document<'a> {
  /// JSON text, sent on as it is.
  Text(&'a RawJson),
  /// A value, serialized.
  Value(&'a Value),
}

/// A patch ordered elsewhere, as JS reports it (`receivedPatches`, `change`) and the HTTP view
/// streams it: `{ version, timestamp, patch }`.
#[derive(Debug, Serialize)]
pub struct Received<'a> {
  /// The version it produced.
  pub version: u64,
  /// When its origin stamped it (epoch ms).
  pub timestamp: u64,
  /// The update document.
  pub patch: &'a RawJson,
}

impl Received<'_> {
  /// The record of the patch `update` stamped `hlc` and ordered at `version`, as JSON text.
  /// Rendered at once, since the update moves on into the log.
  pub fn record(version: u64, hlc: Hlc, update: &RawJson) -> Option<RawJson> {
    let received = Received {
      version,
      timestamp: hlc.ms,
      patch: update,
    };
    // Only a map with non-string keys fails to serialize, and a record holds none.
    RawJson::to(&received).ok()
  }
}

impl Event<'_> {
  /// The last event of a `patch()` that changed nothing.
  pub const UNCHANGED: Event<'static> = Event::Own {
    seq: 0,
    version: 0,
    changes: None,
    queued: false,
  };

  /// What the event is.
  pub fn kind(&self) -> Kind {
    match self {
      Event::Own { .. } => Kind::Own,
      Event::Changes { .. } => Kind::Changes,
      Event::Snapshot { .. } => Kind::Snapshot,
      Event::Ack { .. } => Kind::Ack,
      Event::Accepted(_) => Kind::Accepted,
      Event::Rejected { .. } => Kind::Rejected,
      Event::Role(_) => Kind::Role,
      Event::Fail { .. } => Kind::Fail,
      Event::Call { .. } => Kind::Call,
      Event::Reply { .. } => Kind::Reply,
      Event::Pong { .. } => Kind::Pong,
      Event::Grant(_) => Kind::Grant,
      Event::EventsDropped(_) => Kind::EventsDropped,
      Event::Emit { .. } => Kind::Emit,
      Event::Error { .. } => Kind::Error,
      Event::Warning { .. } => Kind::Warning,
      Event::Debug(_) => Kind::Debug,
      Event::Document(_) => Kind::Document,
      Event::Digest(_) => Kind::Digest,
    }
  }

  /// The event's JSON text: the one place an event is serialized.
  pub fn to_json(&self) -> String {
    // Only a map with non-string keys fails to serialize, and no event holds one.
    serde_json::to_string(self).unwrap_or_else(|_| "null".to_owned())
  }
}

impl Serialize for Event<'_> {
  /// A tuple is a JSON array: the tag, then the fields in the order the variant's doc gives.
  fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
    let tag = self.kind().tag();
    match self {
      Event::Own {
        seq,
        version,
        changes,
        queued,
      } => (tag, seq, version, changes, u8::from(*queued)).serialize(serializer),
      Event::Changes {
        version,
        changes,
        received,
      } => (tag, version, changes, received).serialize(serializer),
      Event::Snapshot {
        version,
        data: Document::Text(text),
      } => (tag, version, text).serialize(serializer),
      Event::Snapshot {
        version,
        data: Document::Value(value),
      } => (tag, version, value).serialize(serializer),
      Event::Ack { seq, version } => (tag, seq, version).serialize(serializer),
      Event::Accepted(seqs) => (tag, seqs).serialize(serializer),
      Event::Rejected { seq, code, message } => (tag, seq, code, message).serialize(serializer),
      Event::Role(role) => (tag, role).serialize(serializer),
      Event::Fail { code, message }
      | Event::Error { code, message }
      | Event::Warning { code, message } => (tag, code, message).serialize(serializer),
      Event::Call { id, method, args } => (tag, id, method, args).serialize(serializer),
      Event::Reply {
        id,
        error,
        result: Some(result),
      } => (tag, id, error, result).serialize(serializer),
      Event::Reply {
        id,
        error,
        result: None,
      } => (tag, id, error).serialize(serializer),
      Event::Pong { id, pid } => (tag, id, pid).serialize(serializer),
      Event::Grant(number) | Event::EventsDropped(number) => (tag, number).serialize(serializer),
      Event::Emit { event, args } => (tag, event, args).serialize(serializer),
      Event::Debug(line) => (tag, line).serialize(serializer),
      Event::Document(data) => (tag, data).serialize(serializer),
      Event::Digest([a, b]) => (tag, a, b).serialize(serializer),
    }
  }
}

/// The events waiting for JS, serialized as they are queued, with the bounds that keep a JS
/// thread that does not drain from growing the process without limit.
#[derive(Default)]
pub struct Queue {
  /// Each event's kind and JSON text, in the order they happened.
  events: Vec<(Kind, String)>,
  /// Bytes of the document events (changes, snapshots) queued.
  backlog: usize,
  /// The bus events queued, up to [`MAX_BUS_BACKLOG`].
  bus: Bounded,
  /// The diagnostic lines queued, up to [`MAX_DEBUG_BACKLOG`].
  debug: Bounded,
  /// The document events were dropped for the backlog: the next drain starts with a snapshot,
  /// and no document event is queued until then.
  resync: bool,
}

/// The bytes of one kind of events queued, up to a limit past which further ones are dropped and
/// counted.
#[derive(Default)]
struct Bounded {
  backlog: usize,
  dropped: u64,
}

impl Bounded {
  /// Whether an event of `bytes` fits under `limit`: then it is counted as queued, else as
  /// dropped.
  fn admit(&mut self, bytes: usize, limit: usize) -> bool {
    let fits = self.backlog + bytes <= limit;
    if fits {
      self.backlog += bytes;
    } else {
      self.dropped += 1;
    }
    fits
  }

  /// Nothing is queued any more: returns how many were dropped since the last drain.
  fn drain(&mut self) -> u64 {
    self.backlog = 0;
    std::mem::take(&mut self.dropped)
  }
}

impl Queue {
  /// Queues `event`. Past [`MAX_EVENT_BACKLOG`] bytes of document events they are all dropped
  /// for a snapshot at the next drain (see [`Queue::take_resync`]), so a stuck event loop costs
  /// memory bounded by the document, not by the traffic; past [`MAX_BUS_BACKLOG`] bytes of bus
  /// events (and [`MAX_DEBUG_BACKLOG`] of diagnostic lines), further ones are dropped and counted.
  pub fn push(&mut self, event: &Event) {
    let kind = event.kind();
    match kind {
      Kind::Changes | Kind::Snapshot if self.resync => {}
      Kind::Changes | Kind::Snapshot => {
        let text = event.to_json();
        self.backlog += text.len();
        self.events.push((kind, text));
        if self.backlog > MAX_EVENT_BACKLOG {
          self.drop_documents();
          self.resync = true;
        }
      }
      Kind::Emit | Kind::Debug => {
        let (bound, limit) = match kind {
          Kind::Emit => (&mut self.bus, MAX_BUS_BACKLOG),
          _ => (&mut self.debug, MAX_DEBUG_BACKLOG),
        };
        let text = event.to_json();
        if bound.admit(text.len(), limit) {
          self.events.push((kind, text));
        }
      }
      _ => self.events.push((kind, event.to_json())),
    }
  }

  /// Whether document events were dropped since the last call; the caller then queues the
  /// snapshot that replaces them with [`Queue::push_front`], before anything changes the
  /// document, so that it holds exactly what the dropped events did.
  pub fn take_resync(&mut self) -> bool {
    std::mem::take(&mut self.resync)
  }

  /// Queues `event` before every other.
  pub fn push_front(&mut self, event: &Event) {
    self.events.insert(0, (event.kind(), event.to_json()));
  }

  /// Drops the queued changes and snapshots (a snapshot supersedes them).
  pub fn drop_documents(&mut self) {
    self
      .events
      .retain(|(kind, _)| !matches!(kind, Kind::Changes | Kind::Snapshot));
    self.backlog = 0;
    self.resync = false;
  }

  /// Bytes of the queued events' texts.
  #[cfg(test)]
  pub fn bytes(&self) -> usize {
    self.events.iter().map(|(_, text)| text.len()).sum()
  }

  /// The queued events plus `last` (an event's JSON text, or empty), as one JSON array.
  pub fn drain(&mut self, last: &str) -> String {
    let mut out = String::with_capacity(2 + last.len());
    out.push('[');
    self.backlog = 0;
    let bus_dropped = self.bus.drain();
    let debug_dropped = self.debug.drain();
    if bus_dropped > 0 {
      // First, so that JS reports the loss as soon as it drains.
      out.push_str(&Event::EventsDropped(bus_dropped).to_json());
      out.push(',');
    }
    for (_, text) in self.events.drain(..) {
      out.push_str(&text);
      out.push(',');
    }
    if debug_dropped > 0 {
      let line = format!("{debug_dropped} diagnostic lines were dropped: the event loop left {MAX_DEBUG_BACKLOG} bytes of them waiting");
      out.push_str(&Event::Debug(&line).to_json());
      out.push(',');
    }
    if last.is_empty() {
      if out.ends_with(',') {
        out.pop();
      }
    } else {
      out.push_str(last);
    }
    out.push(']');
    out
  }
}

#[cfg(test)]
mod tests {
  use serde_json::json;

  use super::*;

  #[test]
  fn events_are_compact_arrays_opened_by_their_tag() {
    let args = RawJson::to(&json!([1, "a"])).unwrap();
    let data = json!({ "b": 1, "a": [null] });
    let cases = [
      (
        Event::Own {
          seq: 0,
          version: 0,
          changes: None,
          queued: false,
        },
        r#"["o",0,0,null,0]"#,
      ),
      (
        Event::Reply {
          id: 3,
          error: None,
          result: Some(args.clone()),
        },
        r#"["reply",3,null,[1,"a"]]"#,
      ),
      (
        Event::Reply {
          id: 3,
          error: None,
          result: None,
        },
        r#"["reply",3,null]"#,
      ),
      (
        Event::Emit {
          event: "tick".into(),
          args,
        },
        r#"["e","tick",[1,"a"]]"#,
      ),
      (Event::Role("host"), r#"["role","host"]"#),
      (Event::Accepted(&[1, 2]), r#"["A",[1,2]]"#),
      (Event::Debug("a \"peer\""), r#"["debug","a \"peer\""]"#),
      (Event::Document(&data), r#"["d",{"b":1,"a":[null]}]"#),
      (Event::Digest([1, 4294967295]), r#"["h",1,4294967295]"#),
    ];
    for (event, text) in cases {
      assert_eq!(event.to_json(), text);
    }
  }

  #[test]
  fn tags_and_names_are_unique() {
    for (i, a) in Kind::ALL.iter().enumerate() {
      for b in &Kind::ALL[i + 1..] {
        assert_ne!(a.tag(), b.tag());
        assert_ne!(a.name(), b.name());
      }
    }
  }

  #[test]
  fn diagnostic_lines_an_undrained_queue_cannot_hold_are_counted_in_one_line() {
    let mut queue = Queue::default();
    let line = "x".repeat(1000);
    let fits = MAX_DEBUG_BACKLOG / Event::Debug(&line).to_json().len();
    for _ in 0..fits + 500 {
      queue.push(&Event::Debug(&line));
    }
    queue.push(&Event::Role("host"));
    let drained: Vec<Value> = serde_json::from_str(&queue.drain("")).unwrap();
    assert_eq!(drained.len(), fits + 2);
    assert_eq!(
      drained[fits],
      json!(["role", "host"]),
      "other events are kept"
    );
    let last = drained[fits + 1].as_array().unwrap();
    assert_eq!(last[0], "debug");
    assert!(last[1]
      .as_str()
      .unwrap()
      .starts_with("500 diagnostic lines were dropped"));
    queue.push(&Event::Debug("again"));
    assert_eq!(
      queue.drain(""),
      r#"[["debug","again"]]"#,
      "a drain makes room"
    );
  }
}
