//! The events the native side hands to the JS facade (`lib/memsync.js`), and the queue that holds
//! them until JS drains it.
//!
//! An event crosses as a compact JSON array whose first element is its tag (`["o", ...]`), and a
//! drain as one flat array of all its events' tokens, which JS parses once and splits into those
//! arrays (`lib/events.js`; see `Serialize for Event` for why flat). [`Event`] documents each
//! one's array; [`Kind::ALL`] is the one table of tags, which JS reads through `eventTags()`
//! instead of copying it.

use std::sync::Arc;

use serde::ser::SerializeSeq;
use serde::Serialize;
use serde::Serializer;

use crate::clock::Hlc;
use crate::core::message::{JsonText, RawJson, RemoteError};
use crate::doc::Value;
use crate::patch::{Change, Key};

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

/// One event for JS. Each variant's doc gives the array JS makes of it and what its fields mean.
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
  /// `["r", version, data, resync]`: the whole document, at `version`, replaces `data` (joining a
  /// host, a loaded file, or with `resync` after JS left too many changes undrained, whose
  /// records are lost). `data` is null when the document's text is handed to JS beside the
  /// drain ([`Queue::take_snapshot`]).
  Snapshot {
    version: u64,
    data: Document<'a>,
    resync: bool,
  },
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

/// The document of a snapshot, as the value held or as text handed to JS beside the drain.
#[derive(Debug)]
pub enum Document<'a> {
  /// A value, serialized.
  Value(&'a Value),
  /// The text that arrived, which JS parses as it is ([`Queue::push_snapshot`]). Inside the
  /// drain's text, a 10 MB document was copied twice more on its way to JS (25 ms of a 190 ms
  /// join), and JS parsed it as part of the drain all the same.
  Aside,
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

  /// The event's JSON text, an array of its tokens: the one place an event is serialized.
  pub fn to_json(&self) -> String {
    // Only a map with non-string keys fails to serialize, and no event holds one; were one to,
    // a line that cannot fail keeps the drain's tokens whole.
    serde_json::to_string(self).unwrap_or_else(|err| {
      Event::Debug(&format!("an event could not be serialized: {err}")).to_json()
    })
  }

  /// The event's tokens, as a drain lists them: its JSON text without the array's brackets.
  pub fn to_tokens(&self) -> String {
    let mut text = self.to_json();
    text.pop();
    text.remove(0);
    text
  }
}

impl Serialize for Event<'_> {
  /// One flat JSON array of tokens: the tag, then the fields in the order the variant's doc
  /// gives. V8's `JSON.parse` pays for every array it builds (about 150 ns on these machines, more
  /// than a dozen numbers), so the lists of the events on every patch's path (changes, a run of
  /// acknowledgements) are spelled out in line after their length, and every other event gives
  /// its field count after its tag. JS rebuilds the arrays the variants' docs show
  /// (`lib/events.js`), except the change lists, which `lib/changes.js` reads in place. In
  /// tokens: own `"o", seq, version, queued, changes` (changes: their count, or -1 for null, then
  /// each one, see [`change_tokens`]), changes `"c", version, records' count, records...,
  /// changes`, accepted `"A", count, seq...`, any other `tag, field count, fields...`.
  fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
    let mut tokens = serializer.serialize_seq(None)?;
    tokens.serialize_element(self.kind().tag())?;
    /// The field count, then the fields.
    macro_rules! fields {
      ($($field:expr),*) => {{
        let count: u8 = [$(stringify!($field)),*].len() as u8;
        tokens.serialize_element(&count)?;
        $(tokens.serialize_element($field)?;)*
      }};
    }
    match self {
      Event::Own {
        seq,
        version,
        changes,
        queued,
      } => {
        tokens.serialize_element(seq)?;
        tokens.serialize_element(version)?;
        tokens.serialize_element(&u8::from(*queued))?;
        match changes {
          Some(changes) => change_tokens(&mut tokens, changes)?,
          None => tokens.serialize_element(&-1)?,
        }
      }
      Event::Changes {
        version,
        changes,
        received,
      } => {
        tokens.serialize_element(version)?;
        tokens.serialize_element(&received.len())?;
        for record in *received {
          tokens.serialize_element(record)?;
        }
        change_tokens(&mut tokens, changes)?;
      }
      Event::Accepted(seqs) => {
        tokens.serialize_element(&seqs.len())?;
        for seq in *seqs {
          tokens.serialize_element(seq)?;
        }
      }
      Event::Snapshot {
        version,
        data: Document::Aside,
        resync,
      } => fields!(version, &(), resync),
      Event::Snapshot {
        version,
        data: Document::Value(value),
        resync,
      } => fields!(version, value, resync),
      Event::Ack { seq, version } => fields!(seq, version),
      Event::Rejected { seq, code, message } => fields!(seq, code, message),
      Event::Role(role) => fields!(role),
      Event::Fail { code, message }
      | Event::Error { code, message }
      | Event::Warning { code, message } => fields!(code, message),
      Event::Call { id, method, args } => fields!(id, method, args),
      Event::Reply {
        id,
        error,
        result: Some(result),
      } => fields!(id, error, result),
      Event::Reply {
        id,
        error,
        result: None,
      } => fields!(id, error),
      Event::Pong { id, pid } => fields!(id, pid),
      Event::Grant(number) | Event::EventsDropped(number) => fields!(number),
      Event::Emit { event, args } => fields!(event, args),
      Event::Debug(line) => fields!(line),
      Event::Document(data) => fields!(data),
      Event::Digest([a, b]) => fields!(a, b),
    }
    tokens.end()
  }
}

/// A change list as tokens: its length, then each change's tag, its path's length and keys, and
/// its operands (`"s", 1, "a", 5` for `["s", ["a"], 5]`; a Splice's inserted values stay one
/// array).
fn change_tokens<S: SerializeSeq>(tokens: &mut S, changes: &[Change]) -> Result<(), S::Error> {
  tokens.serialize_element(&changes.len())?;
  let path = |tokens: &mut S, keys: &[Key]| {
    tokens.serialize_element(&keys.len())?;
    keys
      .iter()
      .try_for_each(|key| tokens.serialize_element(key))
  };
  for change in changes {
    match change {
      Change::Set { path: keys, value } => {
        tokens.serialize_element("s")?;
        path(tokens, keys)?;
        tokens.serialize_element(value)?;
      }
      Change::Unset { path: keys } => {
        tokens.serialize_element("u")?;
        path(tokens, keys)?;
      }
      Change::Splice {
        path: keys,
        start,
        delete,
        insert,
      } => {
        tokens.serialize_element("p")?;
        path(tokens, keys)?;
        tokens.serialize_element(start)?;
        tokens.serialize_element(delete)?;
        tokens.serialize_element(insert)?;
      }
      Change::Move { from, to } => {
        tokens.serialize_element("m")?;
        path(tokens, from)?;
        path(tokens, to)?;
      }
    }
  }
  Ok(())
}

/// The events waiting for JS, serialized as they are queued, with the bounds that keep a JS
/// thread that does not drain from growing the process without limit.
#[derive(Default)]
pub struct Queue {
  /// Each event's kind and tokens ([`Event::to_tokens`]), in the order they happened.
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
  /// The text of the queued snapshot whose document goes beside the events.
  aside: Option<Arc<JsonText>>,
  /// The text of the drained snapshot whose document goes beside the events, until JS takes it.
  handed: Option<Arc<JsonText>>,
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
        let text = event.to_tokens();
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
        let text = event.to_tokens();
        if bound.admit(text.len(), limit) {
          self.events.push((kind, text));
        }
      }
      _ => self.events.push((kind, event.to_tokens())),
    }
  }

  /// Whether document events were dropped since the last call; the caller then queues the
  /// snapshot that replaces them with [`Queue::push_front`], before anything changes the
  /// document, so that it holds exactly what the dropped events did.
  pub fn take_resync(&mut self) -> bool {
    std::mem::take(&mut self.resync)
  }

  /// Queues a snapshot of the document `text` at `version`, which the drain hands JS beside the
  /// events instead of inside them. It does not count towards the backlog: it replaces every
  /// document event before it, and a document larger than the backlog would otherwise be
  /// replaced at once by a snapshot of what the replica held before it.
  pub fn push_snapshot(&mut self, version: u64, text: Arc<JsonText>) {
    self.drop_documents();
    let event = Event::Snapshot {
      version,
      data: Document::Aside,
      resync: false,
    };
    self.events.push((Kind::Snapshot, event.to_tokens()));
    self.aside = Some(text);
  }

  /// Queues `event` before every other.
  pub fn push_front(&mut self, event: &Event) {
    self.events.insert(0, (event.kind(), event.to_tokens()));
  }

  /// Drops the queued changes and snapshots (a snapshot supersedes them).
  pub fn drop_documents(&mut self) {
    self
      .events
      .retain(|(kind, _)| !matches!(kind, Kind::Changes | Kind::Snapshot));
    self.backlog = 0;
    self.resync = false;
    self.aside = None;
  }

  /// Bytes of the queued events' texts.
  #[cfg(test)]
  pub fn bytes(&self) -> usize {
    self.events.iter().map(|(_, text)| text.len()).sum()
  }

  /// The document of the snapshot event with null `data` that the last drain returned, once: JS
  /// takes it as it parses the drain, so a later drain (which may bring another) cannot come
  /// between.
  pub fn take_snapshot(&mut self) -> Option<Arc<JsonText>> {
    self.handed.take()
  }

  /// The queued events plus `last` (an event's tokens, or empty), as one JSON array of tokens.
  pub fn drain(&mut self, last: &str) -> String {
    // Sized once: the events' texts are most of it, and growing it copied them again.
    let queued: usize = self.events.iter().map(|(_, text)| text.len() + 1).sum();
    let mut out = String::with_capacity(2 + queued + last.len());
    out.push('[');
    self.backlog = 0;
    let bus_dropped = self.bus.drain();
    let debug_dropped = self.debug.drain();
    if bus_dropped > 0 {
      // First, so that JS reports the loss as soon as it drains.
      out.push_str(&Event::EventsDropped(bus_dropped).to_tokens());
      out.push(',');
    }
    for (_, text) in self.events.drain(..) {
      out.push_str(&text);
      out.push(',');
    }
    if debug_dropped > 0 {
      let line = format!("{debug_dropped} diagnostic lines were dropped: the event loop left {MAX_DEBUG_BACKLOG} bytes of them waiting");
      out.push_str(&Event::Debug(&line).to_tokens());
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
    self.handed = self.aside.take();
    out
  }
}

/// The arrays JS makes of a drain's tokens (`lib/events.js`), for the tests that read events as
/// JS does.
#[cfg(test)]
pub(crate) fn parse_events(text: &str) -> Vec<Value> {
  let tokens: Vec<Value> = serde_json::from_str(text).unwrap();
  let number = |at: usize| tokens[at].as_i64().unwrap();
  let list = |at: usize, count: i64| tokens[at..at + count as usize].to_vec();
  let read_changes = |mut at: usize, count: i64| {
    let mut changes = Vec::new();
    for _ in 0..count {
      let path = Value::Array(list(at + 2, number(at + 1)));
      let tag = tokens[at].clone();
      at += 2 + number(at + 1) as usize;
      changes.push(match tag.as_str().unwrap() {
        "s" => {
          at += 1;
          Value::Array(vec![tag, path, tokens[at - 1].clone()])
        }
        "u" => Value::Array(vec![tag, path]),
        "p" => {
          at += 3;
          let operands = tokens[at - 3..at].iter().cloned();
          Value::Array([tag, path].into_iter().chain(operands).collect())
        }
        _ => {
          let to = Value::Array(list(at + 1, number(at)));
          at += 1 + number(at) as usize;
          Value::Array(vec![tag, path, to])
        }
      });
    }
    (Value::Array(changes), at)
  };
  let mut events = Vec::new();
  let mut at = 0;
  while at < tokens.len() {
    let tag = tokens[at].clone();
    at += 1;
    let event = match tag.as_str().unwrap() {
      "o" => {
        let (seq, version, queued) = (
          tokens[at].clone(),
          tokens[at + 1].clone(),
          tokens[at + 2].clone(),
        );
        let (changes, next) = match number(at + 3) {
          count if count < 0 => (Value::Null, at + 4),
          count => read_changes(at + 4, count),
        };
        at = next;
        vec![tag, seq, version, changes, queued]
      }
      "c" => {
        let version = tokens[at].clone();
        let received = list(at + 2, number(at + 1));
        at += 2 + received.len();
        let (changes, next) = read_changes(at + 1, number(at));
        at = next;
        vec![tag, version, changes, Value::Array(received)]
      }
      "A" => {
        let seqs = list(at + 1, number(at));
        at += 1 + seqs.len();
        vec![tag, Value::Array(seqs)]
      }
      _ => {
        let fields = list(at + 1, number(at));
        at += 1 + fields.len();
        [tag].into_iter().chain(fields).collect()
      }
    };
    events.push(Value::Array(event));
  }
  events
}

/// [`parse_events`] as JSON text: `[["o",1,1,[["s",["n"],3]],0]]`.
#[cfg(test)]
pub(crate) fn nested(text: &str) -> String {
  serde_json::to_string(&parse_events(text)).unwrap()
}

#[cfg(test)]
mod tests {
  use crate::doc::json;

  use super::*;

  #[test]
  fn events_are_flat_arrays_of_tokens_opened_by_their_tag() {
    let args = RawJson::to(&json!([1, "a"])).unwrap();
    let data = json!({ "b": 1, "a": [null] });
    let changes: Vec<Change> = serde_json::from_value(serde_json::json!([
      ["s", ["a", 0], { "x": [1] }],
      ["u", ["b"]],
      ["p", ["c"], 1, 2, [3, [4]]],
      ["m", ["d", "e"], ["f"]]
    ]))
    .unwrap();
    let record = RawJson::to(&json!({ "version": 2 })).unwrap();
    let cases = [
      (
        Event::Own {
          seq: 0,
          version: 0,
          changes: None,
          queued: false,
        },
        r#"["o",0,0,0,-1]"#,
      ),
      (
        Event::Own {
          seq: 4,
          version: 9,
          changes: Some(&changes),
          queued: true,
        },
        r#"["o",4,9,1,4,"s",2,"a",0,{"x":[1]},"u",1,"b","p",1,"c",1,2,[3,[4]],"m",2,"d","e",1,"f"]"#,
      ),
      (
        Event::Changes {
          version: 2,
          changes: &changes[1..2],
          received: std::slice::from_ref(&record),
        },
        r#"["c",2,1,{"version":2},1,"u",1,"b"]"#,
      ),
      (
        Event::Reply {
          id: 3,
          error: None,
          result: Some(args.clone()),
        },
        r#"["reply",3,3,null,[1,"a"]]"#,
      ),
      (
        Event::Reply {
          id: 3,
          error: None,
          result: None,
        },
        r#"["reply",2,3,null]"#,
      ),
      (
        Event::Emit {
          event: "tick".into(),
          args,
        },
        r#"["e",2,"tick",[1,"a"]]"#,
      ),
      (Event::Role("host"), r#"["role",1,"host"]"#),
      (Event::Accepted(&[1, 2]), r#"["A",2,1,2]"#),
      (Event::Debug("a \"peer\""), r#"["debug",1,"a \"peer\""]"#),
      (Event::Document(&data), r#"["d",1,{"b":1,"a":[null]}]"#),
      (Event::Digest([1, 4294967295]), r#"["h",2,1,4294967295]"#),
    ];
    for (event, text) in cases {
      assert_eq!(event.to_json(), text);
      assert_eq!(event.to_tokens(), text[1..text.len() - 1]);
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
    let fits = MAX_DEBUG_BACKLOG / Event::Debug(&line).to_tokens().len();
    for _ in 0..fits + 500 {
      queue.push(&Event::Debug(&line));
    }
    queue.push(&Event::Role("host"));
    // Each line is 3 tokens ("debug", 1, line), as is the role.
    let tokens: Vec<Value> = serde_json::from_str(&queue.drain("")).unwrap();
    assert_eq!(tokens.len(), 3 * (fits + 2));
    assert_eq!(
      tokens[3 * fits..3 * fits + 3],
      [json!("role"), json!(1), json!("host")],
      "other events are kept"
    );
    assert_eq!(tokens[3 * fits + 3], "debug");
    assert!(tokens[3 * fits + 5]
      .as_str()
      .unwrap()
      .starts_with("500 diagnostic lines were dropped"));
    queue.push(&Event::Debug("again"));
    assert_eq!(
      queue.drain(""),
      r#"["debug",1,"again"]"#,
      "a drain makes room"
    );
  }

  #[test]
  fn a_drain_lists_the_queued_events_in_order_then_the_last_one() {
    let mut queue = Queue::default();
    assert_eq!(queue.drain(""), "[]");
    assert_eq!(queue.drain(&Event::Grant(1).to_tokens()), r#"["g",1,1]"#);
    let data = json!({ "n": 1 });
    let unset: Vec<Change> = serde_json::from_value(serde_json::json!([["u", ["b"]]])).unwrap();
    queue.push(&Event::Role("client"));
    queue.push(&Event::Changes {
      version: 2,
      changes: &unset,
      received: &[],
    });
    queue.push(&Event::Grant(7));
    queue.push(&Event::Changes {
      version: 3,
      changes: &unset,
      received: &[],
    });
    // A snapshot supersedes the changes; what is not a document event stays, in order.
    queue.drop_documents();
    queue.push_front(&Event::Snapshot {
      version: 3,
      data: Document::Value(&data),
      resync: false,
    });
    queue.push(&Event::Accepted(&[4, 5]));
    let expected = r#"["r",3,3,{"n":1},false,"role",1,"client","g",1,7,"A",2,4,5]"#;
    assert_eq!(
      queue.bytes(),
      expected.len() - 2 - 3,
      "the tokens, without the separating commas"
    );
    assert_eq!(queue.drain(""), expected);
    queue.push(&Event::Grant(8));
    assert_eq!(
      queue.drain(&Event::UNCHANGED.to_tokens()),
      r#"["g",1,8,"o",0,0,0,-1]"#
    );
    assert_eq!(queue.drain(""), "[]", "a drain empties the queue");
  }

  #[test]
  fn a_snapshot_of_text_goes_beside_the_events_and_replaces_the_document_events() {
    let text = || Arc::new(JsonText::from(r#"{"n":1}"#.to_owned()));
    let mut queue = Queue::default();
    queue.push(&Event::Changes {
      version: 1,
      changes: &[],
      received: &[],
    });
    queue.push(&Event::Grant(7));
    queue.push_snapshot(2, text());
    queue.push(&Event::Changes {
      version: 3,
      changes: &[],
      received: &[],
    });
    assert_eq!(queue.drain(""), r#"["g",1,7,"r",3,2,null,false,"c",3,0,0]"#);
    assert_eq!(queue.take_snapshot().as_deref(), Some(&*text()));
    assert!(queue.take_snapshot().is_none(), "taken once");

    // A snapshot of the document replaces it, text and all; a drain without one hands none.
    queue.push_snapshot(4, text());
    queue.drop_documents();
    assert_eq!(queue.drain(""), "[]");
    assert!(queue.take_snapshot().is_none());
    queue.push_snapshot(5, text());
    queue.drain("");
    queue.drain("");
    assert!(queue.take_snapshot().is_none(), "only the last drain's");
  }
}
