//! What replicas say to each other: the messages between a host and its clients, whatever
//! carries them. How a message becomes bytes is the transport's business (the local transport's
//! codec); serde's derives here give the JSON shape of the messages that have no binary form.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::clock::Hlc;
use crate::error::Error;

/// A JSON value carried as its text: updates, change lists and snapshots cross a host on their
/// way to other replicas and to JS, so they are kept as the bytes that arrived instead of being
/// built into a `Value` tree and serialized again at every hop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
  /// The JSON text of `value`.
  pub fn to(value: &impl Serialize) -> serde_json::Result<RawJson> {
    Ok(RawJson(serde_json::value::to_raw_value(value)?))
  }

  /// Checks that `text` is one JSON value and keeps it.
  pub fn parse(text: String) -> serde_json::Result<RawJson> {
    Ok(RawJson(RawValue::from_string(text)?))
  }

  /// The JSON text.
  pub fn get(&self) -> &str {
    self.0.get()
  }
}

impl PartialEq for RawJson {
  fn eq(&self, other: &RawJson) -> bool {
    self.get() == other.get()
  }
}

/// JSON text from a frame that nothing has checked yet. A client parses an ordered patch's
/// changes at once and only stores its update, so checking both when the frame was decoded read
/// every received patch twice (about a tenth of a client's receive path). What needs a
/// [`RawJson`] checks it then ([`JsonText::checked`]); a text that is not JSON is a bug of the
/// host that sent it, and fails there.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonText(Box<str>);

impl JsonText {
  /// The text.
  pub fn get(&self) -> &str {
    &self.0
  }

  /// The text, checked to be one JSON value.
  pub fn checked(&self) -> serde_json::Result<RawJson> {
    RawJson::parse(self.0.to_string())
  }

  /// The JSON text of `value`, written into room for `capacity` bytes: a snapshot's text grown
  /// by doubling from nothing is copied and paged in again at every step (a host serializes a
  /// 10 MB document in 26–28 ms so, in 18–20 ms into room for it).
  pub fn serialize(value: &impl Serialize, capacity: usize) -> serde_json::Result<JsonText> {
    let mut text = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut text, value)?;
    let text = String::from_utf8(text).map_err(serde::ser::Error::custom)?;
    Ok(JsonText::from(text))
  }
}

impl From<String> for JsonText {
  fn from(text: String) -> JsonText {
    JsonText(text.into_boxed_str())
  }
}

impl From<&RawJson> for JsonText {
  fn from(json: &RawJson) -> JsonText {
    JsonText(json.get().into())
  }
}

impl Serialize for JsonText {
  /// As the JSON value it holds: checked here, as a message sent as JSON is rare.
  fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
    self
      .checked()
      .map_err(serde::ser::Error::custom)?
      .serialize(serializer)
  }
}

impl<'de> Deserialize<'de> for JsonText {
  fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<JsonText, D::Error> {
    let json = RawJson::deserialize(deserializer)?;
    Ok(JsonText(json.0.into()))
  }
}

/// One entry of the ordered log, as resent by a client in [`Message::Catchup`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
  /// The document version this entry produced on the host that ordered it.
  pub version: u64,
  /// The instance that proposed the patch.
  pub origin: u64,
  /// The origin's sequence number of the patch.
  pub seq: u64,
  /// When the origin stamped the patch.
  pub hlc: Hlc,
  /// The update document as proposed.
  pub update: RawJson,
}

/// Everything a host and a client say to each other, one per frame.
///
/// On the wire: `{"t":"<variant in camelCase>","c":{<fields in camelCase>}}`. The tag comes first
/// and the content is a separate member (adjacent tagging) so that serde deserializes the content
/// straight into the variant; internal tagging (`{"t":..,"seq":..}`) would first buffer the whole
/// message, `Value`s included, and then convert it. New variants (RPC, events) can be added; an
/// old peer rejects them as a message it does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
  tag = "t",
  content = "c",
  rename_all = "camelCase",
  rename_all_fields = "camelCase"
)]
pub enum Message {
  /// Client to host, the first frame of a connection.
  Hello {
    /// The client's protocol version (the local transport's `PROTOCOL_VERSION`).
    protocol: u32,
    /// The client's process id, for diagnostics.
    pid: u32,
    /// The client instance's id; it names the origin of the client's patches.
    origin: u64,
    /// The highest document version the client holds (0 if none).
    version: u64,
    /// What the client offers and is: its RPC methods, roles and writer limit. Absent (empty)
    /// from a client that offers nothing.
    #[serde(default)]
    peer: PeerInfo,
  },
  /// Host to client, the answer to `Hello`: a snapshot of the document.
  Welcome {
    /// The host's protocol version.
    protocol: u32,
    /// The host's process id, for diagnostics.
    host_pid: u32,
    /// The version of `data`.
    version: u64,
    /// The whole document, which the client parses (and checks) as it takes it.
    data: JsonText,
    /// For each origin, the highest sequence number already applied to `data`, so a client knows
    /// which of its pending patches need no resend.
    applied: Vec<(u64, u64)>,
  },
  /// Host to client instead of `Welcome` (wrong protocol version, ...); the host then closes.
  Refused {
    /// Why, for the client's error message.
    reason: String,
    /// The `ERR_*` code when the refusal is final (`ERR_MAX_WRITERS`): the client stops trying
    /// and its `start()` rejects with it. Absent: the client tries again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
  },
  /// Client to host: a proposed update.
  Patch {
    /// The client's sequence number for this patch, increasing per origin.
    seq: u64,
    /// When the client stamped it.
    hlc: Hlc,
    /// The update document.
    update: RawJson,
  },
  /// Host to every client: a patch in its final place in the order.
  Ordered {
    /// The document version the patch produced.
    version: u64,
    /// The instance that proposed it.
    origin: u64,
    /// The origin's sequence number of the patch.
    seq: u64,
    /// The origin's timestamp.
    hlc: Hlc,
    /// The update document as proposed.
    update: JsonText,
    /// The engine's change list, which a replica applies without re-running the update.
    changes: JsonText,
  },
  /// Host to the origin of a patch that failed to apply; nothing changed.
  Rejected {
    /// The origin's sequence number of the patch.
    seq: u64,
    /// The error's stable `ERR_*` code.
    code: String,
    /// The error's message.
    message: String,
  },
  /// Client to a new host after a failover: ordered entries the new host may have missed.
  Catchup {
    /// The entries, in version order.
    entries: Vec<LogEntry>,
  },
  /// Either way: run RPC `method`. From a client, `id` is the caller's; from the host, it is the
  /// host's own id for the route, which the callee's [`Message::Reply`] names.
  Call {
    /// Names the call in the sender's id space.
    id: u64,
    /// The dotted path of the function, e.g. `getFoo` or `nested.fn`.
    method: String,
    /// The arguments, a JSON array.
    args: RawJson,
  },
  /// Either way: the outcome of the [`Message::Call`] with the same `id`.
  Reply {
    /// The `id` of the call.
    id: u64,
    /// What the function returned; absent for `undefined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<RawJson>,
    /// Set when the function threw, or the call could not be routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<RemoteError>,
  },
  /// Either way: an event of `mem.events`; the host forwards a client's to every other client.
  Emit {
    /// The event name.
    event: String,
    /// The listener arguments, a JSON array.
    args: RawJson,
  },
  /// Client to host: asks for lock `key` (or, `held`, re-announces it to a new host).
  Lock {
    /// The client's id of the request.
    id: u64,
    /// The lock's name.
    key: String,
    /// When the client first asked: waiters are served in this order, across failovers too.
    since: Hlc,
    /// The client holds it already (granted by a previous host).
    #[serde(default)]
    held: bool,
  },
  /// Client to host: releases the lock of request `id`, or cancels the request.
  Unlock {
    /// The client's id of the request.
    id: u64,
  },
  /// Host to client: the lock of request `id` is the client's until it sends `Unlock`.
  Granted {
    /// The client's id of the request.
    id: u64,
  },
  /// Host to an admitted client, right before `Welcome`: what the host offers and is, for
  /// `getStatus()`.
  About {
    /// The host's process id.
    pid: u32,
    /// The host's RPC methods and roles.
    peer: PeerInfo,
    /// How many clients the host has, this one included (`getStatus().host.connections`).
    clients: u64,
  },
  /// Host to every client when its number of clients changed (protocol 3): a client's
  /// `getStatus().host.connections`, as memsync 0.5 reported it, without asking the host.
  Clients {
    /// How many clients the host has.
    count: u64,
  },
  /// Either way: asks for a [`Message::Pong`] with the same `id` (`ping()`).
  Ping {
    /// The sender's id of the ping.
    id: u64,
  },
  /// The answer to [`Message::Ping`].
  Pong {
    /// The `id` of the ping.
    id: u64,
  },
  /// The first frame of a one-off connection instead of `Hello` (`memsync status`): the host
  /// answers with `Status` and closes, without admitting a client.
  Query,
  /// Host to every client, every tenth of `hostTimeout` (protocol 4): the host is not stopped.
  Heartbeat,
  /// Host to a `Query`: who serves the object and how far it is.
  Status {
    /// The host's process id.
    host_pid: u32,
    /// The version of the document.
    version: u64,
    /// How many clients are connected.
    clients: u64,
  },
}

impl Message {
  /// The message's type as on the wire (`"hello"`, `"patch"`...), for logs: a message may carry
  /// a whole document, too much to print.
  pub fn kind(&self) -> &'static str {
    match self {
      Message::Hello { .. } => "hello",
      Message::Welcome { .. } => "welcome",
      Message::Refused { .. } => "refused",
      Message::Patch { .. } => "patch",
      Message::Ordered { .. } => "ordered",
      Message::Rejected { .. } => "rejected",
      Message::Catchup { .. } => "catchup",
      Message::Call { .. } => "call",
      Message::Reply { .. } => "reply",
      Message::Emit { .. } => "emit",
      Message::Lock { .. } => "lock",
      Message::Unlock { .. } => "unlock",
      Message::Granted { .. } => "granted",
      Message::About { .. } => "about",
      Message::Clients { .. } => "clients",
      Message::Ping { .. } => "ping",
      Message::Pong { .. } => "pong",
      Message::Query => "query",
      Message::Heartbeat => "heartbeat",
      Message::Status { .. } => "status",
    }
  }
}

/// What a client tells the host about itself in [`Message::Hello`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
  /// The dotted paths of the RPC functions the process registered.
  #[serde(default)]
  pub methods: Vec<String>,
  /// Its `peer.roles` (`writer`, `reader`, `rpc`).
  #[serde(default)]
  pub roles: Vec<String>,
  /// Its `network.maxWriters`, if set.
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub max_writers: Option<u32>,
  /// Whether a host admitted it since its `start()`: it reconnects after a failover and keeps
  /// its writer slot.
  #[serde(default)]
  pub rejoining: bool,
}

/// A process as its machine announces it to the other machines of a shared log (the Redis
/// transport's presence): what `getStatus().peers` lists, RPC routes to and `maxWriters` counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
  /// Its process id.
  pub pid: u32,
  /// Its instance's id (the origin of its patches and the owner of its locks).
  pub origin: u64,
  /// Whether it is its machine's host (the bridge to the log).
  pub host: bool,
  /// What it offers and is.
  pub info: PeerInfo,
}

/// Why an RPC call failed, as the caller's error sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
  /// The thrown error's `code`, when it had one.
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub code: Option<String>,
  /// The thrown error's message.
  pub message: String,
}

/// An RPC failure travels to the caller's process as a `RemoteError`, as a JS callee's does.
impl From<Error> for RemoteError {
  fn from(err: Error) -> Self {
    RemoteError {
      code: Some(err.code().to_owned()),
      message: err.to_string(),
    }
  }
}
