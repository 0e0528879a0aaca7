//! The replica: one instance's copy of the shared document, and the rules that keep every copy
//! identical.
//!
//! The host gives every accepted patch a version (one total order). A replica shows its own
//! patches at once: `data` is the ordered document with the instance's *pending* patches (sent,
//! not yet ordered) applied on top. When the host orders somebody else's patch first, the pending
//! patches are undone, the ordered one is applied, and the pending ones are applied again
//! (a rebase), so every replica ends with the host's order. When the host orders our own first
//! pending patch, nothing needs to change.
//!
//! Everything the JS side must apply to its `data` object is queued as events, in the order the
//! replica applied them, and drained by `patch()` or by the wake-up of the JS thread.
//!
//! Frames for other processes are queued in their connections' [`Outbox`]es under the lock, in
//! the order the replica made them. Work done on a tokio worker flushes at once; a `patch()` on
//! the JS thread only queues, and JS flushes at the end of its current task ([`Replica::flush`]),
//! so a loop of patches costs one write.
//!
//! A `parking_lot::Mutex` guards the state rather than `tokio::sync::Mutex`: nothing is awaited
//! while the lock is held, every critical section is short and CPU-only, and the JS thread takes
//! it on every `patch()`, where an async lock would cost a task hop (mini-redis `db.rs`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use crate::connection::Outbox;
use crate::error::{Error, Result};
use crate::events::{Document, Event, Queue, Received};
use crate::exchange::{Effects, Exchange, LOCK_GRACE};
use crate::lease::Lease;
use crate::patch::{apply_changes, compact, depth, Change, Context, PatchError, Update, MAX_DEPTH};
use crate::protocol::{self, Clock, Hlc, LogEntry, Message, RawJson, PROTOCOL_VERSION};

/// Ordered entries a client keeps to hand to a new host that missed them after a failover.
const LOG_LEN: usize = 4096;
/// Update bytes the log keeps at most, whatever the number of entries: the entries a new host
/// may miss are the last few in flight, and large updates must not pin memory.
const LOG_BYTES: usize = 8 * 1024 * 1024;
/// Paths whose last write time is remembered for the stale-write check, before old ones go.
const MAX_WRITE_TIMES: usize = 100_000;
/// Write times younger than this survive the trimming of [`MAX_WRITE_TIMES`].
const WRITE_TIME_WINDOW_MS: u64 = 60_000;

/// What this instance is in its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
  /// Not connected: patches queue until a host orders them.
  Offline,
  /// Orders every patch.
  Host,
  /// Sends its patches to the host.
  Client,
}

impl Role {
  /// The name JS sees.
  pub fn name(self) -> &'static str {
    match self {
      Role::Offline => "offline",
      Role::Host => "host",
      Role::Client => "client",
    }
  }
}

/// One instance's replica of a named document.
pub struct Replica {
  name: String,
  origin: u64,
  inner: Mutex<Inner>,
  /// Wakes the JS thread to drain events; set when started.
  waker: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
  /// Whether a wake-up is already on its way, so a burst of events costs one.
  woken: AtomicBool,
  /// RPC, events, writer slots and locks. A lock of its own: never taken while `inner` is held,
  /// nor `inner` while it is held, so the two never wait on each other.
  exchange: Mutex<Exchange>,
  /// Signalled when a joining replica holds the host's snapshot (`Inner::joining` turns false).
  joined: Condvar,
  /// A client connection's socket offered to the JS thread's event loop (see `inbox`), until
  /// the JS side takes it.
  #[cfg(unix)]
  offered_inbox: Mutex<Option<Arc<crate::inbox::Inbox>>>,
}

struct Inner {
  data: Value,
  role: Role,
  clock: Clock,
  next_seq: u64,
  pending: VecDeque<Pending>,
  history: History,
  last_update: ParsedUpdate,
  /// Host only: the last update text a client sent, parsed (clients repeat their updates).
  last_received: Option<(RawJson, Arc<Update>)>,
  /// The events for the JS side, in the order they happened here.
  events: Queue,
  /// Whether JS listens to `receivedPatches`/`change`, which need the update of every patch
  /// ordered elsewhere; otherwise those records are neither built nor parsed.
  wants_received: bool,
  /// Client only: the connection to the host.
  to_host: Option<Arc<Outbox>>,
  /// JS already has the host's snapshot but the replica is still parsing it.
  joining: bool,
  /// Host only: the right to order in its epoch; a host without one (tests) always has it.
  lease: Option<Arc<Lease>>,
}

/// What the order has produced so far; apart from `data` so that ordering can borrow it while
/// the update being ordered is borrowed from the rest.
struct History {
  version: u64,
  /// For each origin, the highest sequence number ordered: what a snapshot already contains.
  applied: HashMap<u64, u64>,
  log: VecDeque<LogEntry>,
  /// Bytes of the updates in `log`.
  log_bytes: usize,
  /// Host only: when each path was last written, for the stale-write check.
  write_times: BTreeMap<String, Hlc>,
  /// Host only: the connection of each client.
  clients: Vec<(u64, Arc<Outbox>)>,
  /// Host only: whether a client joined during this term, which only then may replace it.
  served: bool,
  /// Host only: `Ordered` frames not yet queued to the clients; a burst of patches reaches
  /// every client as one append.
  broadcast: Vec<u8>,
  /// Host only: what the file saver and the HTTP event streams hear of each ordered patch.
  taps: Taps,
}

/// Host only: the listeners of the host's services (`services.rs`) on the order.
#[derive(Default)]
struct Taps {
  /// Woken after each ordered patch: the file saver, which then saves within its debounce.
  saver: Option<Arc<Notify>>,
  /// The record `{ version, timestamp, patch }` of each ordered patch, for the HTTP event
  /// streams. A stream whose buffer is full is dropped: a reader that falls behind is cut off
  /// rather than let the host's memory grow.
  streams: Vec<mpsc::Sender<Arc<str>>>,
}

/// An own patch that the host has not ordered yet.
struct Pending {
  seq: u64,
  hlc: Hlc,
  update_text: RawJson,
  update: Arc<Update>,
  /// Reverts its local effect; `None` when it could not be applied on the current base (the
  /// host will decide).
  undo: Option<Vec<Change>>,
  /// Why it could not be applied on the current base, when it could not.
  failure: Option<PatchError>,
  /// Its local effect, which a new host broadcasts when it orders the patch.
  changes: Vec<Change>,
}

struct ParsedUpdate {
  text: RawJson,
  /// Shared with the pending patches made from it, which would otherwise copy it.
  update: Arc<Update>,
}

impl ParsedUpdate {
  fn parse(text: &str) -> Result<ParsedUpdate> {
    let value: Value = serde_json::from_str(text)
      .map_err(|err| Error::BadValue(format!("The update is not valid JSON: {err}")))?;
    let update = Arc::new(Update::parse(&value)?);
    let text = RawJson::parse(text.to_owned())
      .map_err(|err| Error::BadValue(format!("The update is not valid JSON: {err}")))?;
    Ok(ParsedUpdate { text, update })
  }
}

impl Replica {
  /// A replica of `name` seeded with `data` (a JSON object); `origin` names its patches.
  pub fn new(name: &str, data: Value, origin: u64) -> Result<Replica> {
    crate::name::check(name).map_err(Error::InvalidName)?;
    if !data.is_object() {
      return Err(Error::BadValue(format!(
        "The data of '{name}' must be a plain object, not {}",
        type_name(&data)
      )));
    }
    // The limit every update is held to: a deeper document could not be sent to a client.
    let levels = depth(&data);
    if levels > MAX_DEPTH {
      return Err(Error::BadValue(format!(
        "The data of '{name}' nests {levels} levels deep, more than the {MAX_DEPTH} levels a document may nest"
      )));
    }
    Ok(Replica {
      name: name.to_owned(),
      origin,
      inner: Mutex::new(Inner {
        data,
        role: Role::Offline,
        clock: Clock::new(),
        next_seq: 1,
        pending: VecDeque::new(),
        history: History {
          version: 0,
          applied: HashMap::new(),
          log: VecDeque::new(),
          log_bytes: 0,
          write_times: BTreeMap::new(),
          clients: Vec::new(),
          served: false,
          broadcast: Vec::new(),
          taps: Taps::default(),
        },
        last_update: ParsedUpdate::parse("{}")?,
        last_received: None,
        events: Queue::default(),
        wants_received: false,
        to_host: None,
        joining: false,
        lease: None,
      }),
      waker: Mutex::new(None),
      woken: AtomicBool::new(false),
      #[cfg(unix)]
      offered_inbox: Mutex::new(None),
      exchange: Mutex::new(Exchange::new()),
      joined: Condvar::new(),
    })
  }

  /// The object's name.
  pub fn name(&self) -> &str {
    &self.name
  }

  /// A fresh timestamp of this instance's hybrid clock (lock requests are ordered by it).
  pub fn stamp(&self) -> Hlc {
    self.inner.lock().clock.now(now_ms())
  }

  /// The version of the ordered document.
  pub fn version(&self) -> u64 {
    self.inner.lock().history.version
  }

  /// The role, the version and (host) how many clients are connected, read together.
  pub fn status(&self) -> (Role, u64, usize) {
    let inner = self.inner.lock();
    (
      inner.role,
      inner.history.version,
      inner.history.clients.len(),
    )
  }

  /// Sets what wakes the JS thread when events arrive from the network.
  pub fn set_waker(&self, waker: Option<Box<dyn Fn() + Send + Sync>>) {
    *self.waker.lock() = waker;
  }

  /// Offers a client connection's socket to the JS thread, and wakes it to take it.
  #[cfg(unix)]
  pub fn offer_inbox(&self, inbox: Arc<crate::inbox::Inbox>) {
    *self.offered_inbox.lock() = Some(inbox);
    self.woken.store(true, Ordering::Release);
    if let Some(waker) = self.waker.lock().as_ref() {
      waker();
    }
  }

  /// The socket offered to the JS thread, once.
  #[cfg(unix)]
  pub fn take_offered_inbox(&self) -> Option<Arc<crate::inbox::Inbox>> {
    self.offered_inbox.lock().take()
  }

  /// Whether JS wants the update of every patch ordered elsewhere (`receivedPatches`, `change`).
  pub fn set_wants_received(&self, wanted: bool) {
    self.inner.lock().wants_received = wanted;
  }

  /// Sends the frames that `patch()` queued for other processes.
  pub fn flush(&self) {
    let outboxes: Vec<Arc<Outbox>> = {
      let inner = self.inner.lock();
      let clients = inner.history.clients.iter().map(|(_, outbox)| outbox);
      inner.to_host.iter().chain(clients).cloned().collect()
    };
    for outbox in outboxes {
      outbox.flush();
    }
  }

  /// Applies an update given as JSON text and returns the queued events as a JSON array, the last
  /// one `["o", seq, version, changes, queued]` for this patch (`version` 0: not ordered yet; `changes`
  /// null: nothing changed). On error the document is exactly as it was.
  pub fn patch(&self, update_text: &str) -> Result<String> {
    let now = now_ms();
    let mut guard = self.inner.lock();
    while guard.joining {
      self.joined.wait(&mut guard);
    }
    let inner = &mut *guard;
    inner.resync_events();
    if inner.last_update.text.get() != update_text {
      inner.last_update = ParsedUpdate::parse(update_text)?;
    }
    let update = &inner.last_update.update;
    if update.is_empty() {
      return Ok(inner.events.drain(&Event::UNCHANGED.to_json()));
    }
    let hlc = inner.clock.now(now);
    let context = Context {
      now_ms: hlc.ms as i64,
    };
    let seq = inner.next_seq;
    // A host that finds itself fenced (it was stopped and replaced) keeps the patch pending: it
    // goes to the new host once this one has stepped down and joined it.
    let host = inner.role == Role::Host && inner.lease.as_ref().is_none_or(|lease| lease.hold());
    let own = if host {
      let changes = update.apply(&mut inner.data, &context)?;
      if changes.is_empty() {
        Event::UNCHANGED.to_json()
      } else {
        inner.next_seq += 1;
        let text = &inner.last_update.text;
        let version = inner
          .history
          .order(self.origin, seq, hlc, text, update, &changes);
        let queued = !inner.history.clients.is_empty();
        // A host replaced while stopped hands its own patches to the new host when it rejoins:
        // no client may have received them (its clients may have left it already). A host that
        // never had a client cannot be replaced, and keeps nothing.
        if inner.history.served {
          inner
            .history
            .keep(version, self.origin, seq, hlc, text.clone());
        }
        inner.history.publish(false);
        own_event(seq, version, &changes, queued)
      }
    } else {
      let (changes, undo) = update.apply_with_undo(&mut inner.data, &context)?;
      if changes.is_empty() {
        Event::UNCHANGED.to_json()
      } else {
        inner.next_seq += 1;
        let update_text = inner.last_update.text.clone();
        let queued = inner
          .to_host
          .as_ref()
          .is_some_and(|to_host| to_host.queue_message(&patch_message(seq, hlc, &update_text)));
        let event = own_event(seq, 0, &changes, queued);
        inner.pending.push_back(Pending {
          seq,
          hlc,
          update_text,
          update: Arc::clone(update),
          undo: Some(undo),
          failure: None,
          changes,
        });
        event
      }
    };
    Ok(inner.events.drain(&own))
  }

  /// The queued events as a JSON array.
  pub fn drain(&self) -> String {
    self.woken.store(false, Ordering::Release);
    let mut inner = self.inner.lock();
    inner.resync_events();
    inner.events.drain("")
  }

  /// Becomes host under `lease` (see [`Replica::become_host`]).
  pub fn become_host_under(&self, lease: Arc<Lease>) {
    self.inner.lock().lease = Some(lease);
    self.become_host();
  }

  /// Whether this instance may act as host now: it has no lease (it is no host, or a test's),
  /// or its lease holds (see `lease`).
  pub fn holds_lease(&self) -> bool {
    let lease = self.inner.lock().lease.clone();
    lease.is_none_or(|lease| lease.hold())
  }

  /// Host: tells every client that this host is not stopped.
  pub fn heartbeat(&self) {
    let mut frame = Vec::new();
    if protocol::encode(&Message::Heartbeat, &mut frame).is_err() {
      return;
    }
    let outboxes: Vec<Arc<Outbox>> = {
      let inner = self.inner.lock();
      inner
        .history
        .clients
        .iter()
        .map(|(_, outbox)| outbox.clone())
        .collect()
    };
    for outbox in outboxes {
      outbox.queue(&frame);
      outbox.flush();
    }
  }

  /// Becomes host: orders the pending patches, in order, and starts ordering every patch.
  pub fn become_host(&self) {
    let mut inner = self.inner.lock();
    inner.role = Role::Host;
    inner.history.served = false;
    inner.to_host = None;
    let pending = std::mem::take(&mut inner.pending);
    for patch in pending {
      match patch.undo {
        Some(_) => {
          let version = inner.history.order(
            self.origin,
            patch.seq,
            patch.hlc,
            &patch.update_text,
            &patch.update,
            &patch.changes,
          );
          // Logged as in `patch`, for the host that may replace this one.
          inner.history.keep(
            version,
            self.origin,
            patch.seq,
            patch.hlc,
            patch.update_text,
          );
          inner.events.push(&Event::Ack {
            seq: patch.seq,
            version,
          });
        }
        None => {
          // It did not apply on the document this host holds, for the reason kept when it was
          // last applied again.
          let error = match patch.failure {
            Some(err) => Error::Patch(err),
            None => Error::BadValue("The patch does not apply on the host's data".to_owned()),
          };
          inner.events.push(&Event::Rejected {
            seq: patch.seq,
            code: error.code(),
            message: &error.to_string(),
          });
        }
      }
    }
    inner.events.push(&Event::Role(Role::Host.name()));
    drop(inner);
    let grace_until = now_ms() + LOCK_GRACE.as_millis() as u64;
    self.exchange.lock().become_host(grace_until);
    self.wake();
  }

  /// The RPC and event state (see [`Exchange`]); hand what an operation returns to
  /// [`Replica::apply`]. Never call with the guard of another replica lock held.
  pub fn exchange(&self) -> parking_lot::MutexGuard<'_, Exchange> {
    self.exchange.lock()
  }

  /// Hands JS the events of an exchange operation and, with `flush`, sends the frames it queued
  /// (without: JS flushes at the end of its task, as for patches).
  pub fn apply(&self, effects: Effects, flush: bool) {
    if !effects.events.is_empty() {
      let mut inner = self.inner.lock();
      for event in &effects.events {
        inner.events.push(event);
      }
      drop(inner);
      self.wake();
    }
    if flush {
      for outbox in effects.flush {
        outbox.flush();
      }
    }
  }

  /// Reports that the instance cannot join its network (JS: `start()` rejects).
  pub fn report_failure(&self, code: &str, message: &str) {
    self
      .inner
      .lock()
      .events
      .push(&Event::Fail { code, message });
    self.wake();
  }

  /// Stops being connected (host lost, or stopped): patches queue from now on.
  pub fn go_offline(&self) {
    let mut inner = self.inner.lock();
    inner.role = Role::Offline;
    inner.to_host = None;
    inner.lease = None;
    // Each client's writer sends what is queued, then closes its connection.
    for (_, outbox) in inner.history.clients.drain(..) {
      outbox.close();
    }
    inner.history.taps = Taps::default();
    inner.events.push(&Event::Role(Role::Offline.name()));
    drop(inner);
    self.exchange.lock().go_offline();
    self.wake();
  }

  /// Host: admits a client: queues the `Welcome` in its outbox, and from the same instant on every
  /// ordered patch, so the client misses none and gets none twice. `false` when this instance is
  /// no longer host.
  pub fn attach_client(&self, id: u64, outbox: Arc<Outbox>) -> bool {
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    // A connection accepted while the host was stopping: no welcome from a host that is leaving.
    if inner.role != Role::Host {
      return false;
    }
    // Serialized straight from the document, under the lock, instead of cloning it first.
    let Ok(data) = RawJson::to(&inner.data) else {
      return false;
    };
    let welcome = Message::Welcome {
      protocol: PROTOCOL_VERSION,
      host_pid: std::process::id(),
      version: inner.history.version,
      data,
      applied: inner
        .history
        .applied
        .iter()
        .map(|(&o, &s)| (o, s))
        .collect(),
    };
    let mut frame = Vec::new();
    if let Err(err) = protocol::encode(&welcome, &mut frame) {
      report!("memsync '{}': cannot welcome a client: {err}", self.name);
      return false;
    }
    // Ordered frames still waiting for the clients already include this document's patches.
    inner.history.publish(false);
    outbox.queue(&frame);
    inner.history.clients.push((id, outbox.clone()));
    inner.history.served = true;
    drop(guard);
    outbox.flush();
    true
  }

  /// Host: forgets a client whose connection ended.
  pub fn detach_client(&self, id: u64) {
    self
      .inner
      .lock()
      .history
      .clients
      .retain(|(client, _)| *client != id);
  }

  /// Host: orders a burst of messages from one client (`Patch`, `Catchup`), in order; rejections
  /// go back through `reply`. The whole burst reaches JS as one event and every client as one
  /// write. Returns the first message a client may not send, if any (the caller disconnects it).
  pub fn host_receive(
    &self,
    origin: u64,
    messages: Vec<Message>,
    reply: &Outbox,
  ) -> std::result::Result<(), Message> {
    let now = now_ms();
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    let mut all = Vec::new();
    let mut received = Vec::new();
    let mut unexpected = None;
    for message in messages {
      match message {
        Message::Patch { seq, hlc, update } => {
          if let Err(err) =
            inner.order_received(origin, seq, hlc, update, now, &mut all, &mut received)
          {
            reply.queue_message(&Message::Rejected {
              seq,
              code: err.code().to_owned(),
              message: err.to_string(),
            });
          }
        }
        Message::Catchup { entries } => inner.catch_up(entries, &mut all, &mut received),
        other => {
          unexpected = Some(other);
          break;
        }
      }
    }
    if !all.is_empty() || !received.is_empty() {
      let version = inner.history.version;
      inner.push_changes(version, all, &received);
    }
    inner.history.publish_except(true, Some(reply));
    drop(guard);
    reply.flush();
    self.wake();
    match unexpected {
      Some(message) => Err(message),
      None => Ok(()),
    }
  }

  /// Client: the `Hello` that opens a connection.
  pub fn hello(&self) -> Message {
    Message::Hello {
      protocol: PROTOCOL_VERSION,
      pid: std::process::id(),
      origin: self.origin,
      version: self.version(),
      peer: self.exchange.lock().peer_info(),
    }
  }

  /// Client: takes the host's snapshot, keeps the pending patches it does not contain on top,
  /// and sends the host what it needs: log entries it missed, then the pending patches. An `Err`
  /// means the snapshot is not a JSON object (the caller drops the connection).
  pub fn client_welcome(
    &self,
    version: u64,
    data: RawJson,
    applied: Vec<(u64, u64)>,
    to_host: Arc<Outbox>,
  ) -> std::result::Result<(), String> {
    if !data.get().trim_start().starts_with('{') {
      return Err("the host's data is not an object".to_owned());
    }
    // JS gets the snapshot's text first and parses it while this thread parses it too: a join
    // costs one parse, not two in a row. Until the replica holds it, `patch()` waits.
    {
      let mut inner = self.inner.lock();
      inner.events.drop_documents();
      inner.events.push(&Event::Snapshot {
        version,
        data: Document::Text(&data),
      });
      inner.joining = true;
    }
    self.wake();
    let parsed = serde_json::from_str::<Value>(data.get());
    drop(data);
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    inner.joining = false;
    self.joined.notify_all();
    let parsed = parsed.map_err(|err| err.to_string())?;
    let applied: HashMap<u64, u64> = applied.into_iter().collect();
    let covered = |origin: u64, seq: u64| applied.get(&origin).is_some_and(|&done| done >= seq);
    let missed: Vec<LogEntry> = inner
      .history
      .log
      .iter()
      .filter(|entry| !covered(entry.origin, entry.seq))
      .cloned()
      .collect();
    let mut acks = Vec::new();
    inner.pending.retain(|patch| {
      let done = covered(self.origin, patch.seq);
      if done {
        acks.push(patch.seq);
      }
      !done
    });
    inner.data = parsed;
    inner.history.version = version;
    inner.history.applied = applied;
    inner.history.log.clear();
    inner.history.log_bytes = 0;
    inner.role = Role::Client;
    let mut redone = Vec::new();
    inner.redo_pending(&mut redone);
    if !redone.is_empty() {
      inner.push_changes(version, redone, &[]);
    }
    for seq in acks {
      inner.events.push(&Event::Ack { seq, version });
    }
    if !missed.is_empty() {
      to_host.queue_message(&Message::Catchup { entries: missed });
    }
    for patch in &inner.pending {
      to_host.queue_message(&patch_message(patch.seq, patch.hlc, &patch.update_text));
    }
    inner.to_host = Some(to_host.clone());
    inner.events.push(&Event::Role(Role::Client.name()));
    drop(guard);
    // After the document's frames: what the exchange sends depends on being welcomed.
    let effects = self.exchange.lock().client_connected(to_host.clone());
    self.apply(effects, false);
    to_host.flush();
    self.wake();
    Ok(())
  }

  /// Client: applies a batch of messages from the host (ordered patches, rejections) in order.
  /// Pending patches are undone at most once per batch and applied again at its end, so a burst
  /// costs one rebase. An `Err` means this replica no longer fits the host's changes (a bug); the
  /// caller reconnects, and the snapshot repairs it.
  pub fn client_receive(&self, messages: Vec<Message>) -> std::result::Result<(), String> {
    let now = now_ms();
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    let mut undone = false;
    let mut all = Vec::new();
    let mut received = Vec::new();
    let mut settled = Vec::new();
    for message in messages {
      match message {
        Message::Ordered {
          version,
          origin,
          seq,
          hlc,
          update,
          changes,
        } => {
          inner.clock.observe(&hlc, now);
          let own_front = !undone
            && origin == self.origin
            && inner
              .pending
              .front()
              .is_some_and(|patch| patch.seq == seq && patch.undo.is_some());
          if own_front {
            // Applied on exactly this base already: nothing to change.
            inner.pending.pop_front();
          } else {
            // Any other ordered patch goes under the pending ones.
            if !undone {
              all.extend(inner.undo_pending()?);
              undone = true;
            }
            let changes: Vec<Change> =
              serde_json::from_str(changes.get()).map_err(|err| err.to_string())?;
            apply_changes(&mut inner.data, &changes)?;
            all.extend(changes);
          }
          if origin == self.origin {
            if !own_front {
              inner.pending.retain(|patch| patch.seq != seq);
            }
            settled.push(Settled::Accepted(seq));
          } else if inner.wants_received {
            received.extend(Received::record(version, hlc, &update));
          }
          inner.history.record(version, origin, seq, hlc, update);
        }
        Message::Rejected { seq, code, message } => {
          if !undone {
            all.extend(inner.undo_pending()?);
            undone = true;
          }
          inner.pending.retain(|patch| patch.seq != seq);
          settled.push(Settled::Rejected { seq, code, message });
        }
        other => return Err(format!("unexpected message from the host: {other:?}")),
      }
    }
    if undone {
      inner.redo_pending(&mut all);
    }
    if !all.is_empty() || !received.is_empty() {
      let version = inner.history.version;
      inner.push_changes(version, all, &received);
    }
    push_settled(inner, settled);
    drop(guard);
    self.wake();
    Ok(())
  }

  fn wake(&self) {
    if !self.woken.swap(true, Ordering::AcqRel) {
      if let Some(waker) = self.waker.lock().as_ref() {
        waker();
      }
    }
  }
}

impl Inner {
  /// After dropped document events: queues the snapshot that replaces them, first. Called before
  /// anything changes the document, so the snapshot holds exactly what the dropped events did.
  fn resync_events(&mut self) {
    if self.events.take_resync() {
      self.events.push_front(&Event::Snapshot {
        version: self.history.version,
        data: Document::Value(&self.data),
      });
    }
  }

  /// Queues changes for JS, compacted: JS applies what changed, not every intermediate step.
  fn push_changes(&mut self, version: u64, changes: Vec<Change>, received: &[RawJson]) {
    self.events.push(&Event::Changes {
      version,
      changes: &compact(changes),
      received,
    });
  }

  /// Host: orders one client patch, adding its changes to `all` and its record to `received`
  /// (when JS wants it), or says why it is rejected. A resend of an ordered patch (after a
  /// failover) is skipped: the client learnt of it from the snapshot.
  #[allow(clippy::too_many_arguments)]
  fn order_received(
    &mut self,
    origin: u64,
    seq: u64,
    hlc: Hlc,
    update: RawJson,
    now: u64,
    all: &mut Vec<Change>,
    received: &mut Vec<RawJson>,
  ) -> Result<()> {
    if self.history.is_ordered(origin, seq) {
      return Ok(());
    }
    self.clock.observe(&hlc, now);
    let parsed = self.parse_received(&update)?;
    if let Some(path) = self.history.stale_target(&parsed, hlc) {
      return Err(Error::StaleWrite { path });
    }
    let context = Context {
      now_ms: hlc.ms as i64,
    };
    let changes = parsed.apply(&mut self.data, &context)?;
    if self.wants_received {
      received.extend(Received::record(self.history.version + 1, hlc, &update));
    }
    self
      .history
      .order(origin, seq, hlc, &update, &parsed, &changes);
    all.extend(changes);
    Ok(())
  }

  /// The parsed form of a client's update; the last one is kept, as clients repeat theirs.
  fn parse_received(&mut self, update: &RawJson) -> Result<Arc<Update>> {
    if let Some((text, parsed)) = &self.last_received {
      if text == update {
        return Ok(parsed.clone());
      }
    }
    let value: Value = serde_json::from_str(update.get())
      .map_err(|err| Error::BadValue(format!("The update is not valid JSON: {err}")))?;
    let parsed = Arc::new(Update::parse(&value)?);
    self.last_received = Some((update.clone(), parsed.clone()));
    Ok(parsed)
  }

  /// Host: orders entries a client brings after a failover, skipping those already ordered.
  fn catch_up(
    &mut self,
    entries: Vec<LogEntry>,
    all: &mut Vec<Change>,
    received: &mut Vec<RawJson>,
  ) {
    for entry in entries {
      if self.history.is_ordered(entry.origin, entry.seq) {
        continue;
      }
      let Ok(parsed) = self.parse_received(&entry.update) else {
        continue;
      };
      // Overwritten meanwhile by a newer write on this host: the newer one wins, as it would
      // have if both had reached one host. Marked as ordered, so it is not brought again.
      if self.history.stale_target(&parsed, entry.hlc).is_some() {
        self.history.mark_ordered(entry.origin, entry.seq);
        continue;
      }
      let context = Context {
        now_ms: entry.hlc.ms as i64,
      };
      let Ok(changes) = parsed.apply(&mut self.data, &context) else {
        continue;
      };
      if self.wants_received {
        received.extend(Received::record(
          self.history.version + 1,
          entry.hlc,
          &entry.update,
        ));
      }
      self.history.order(
        entry.origin,
        entry.seq,
        entry.hlc,
        &entry.update,
        &parsed,
        &changes,
      );
      all.extend(changes);
    }
  }

  /// Reverts every pending patch, newest first; returns the changes that did it.
  fn undo_pending(&mut self) -> std::result::Result<Vec<Change>, String> {
    let mut all = Vec::new();
    for patch in self.pending.iter_mut().rev() {
      if let Some(undo) = patch.undo.take() {
        apply_changes(&mut self.data, &undo)?;
        all.extend(undo);
      }
    }
    Ok(all)
  }

  /// Applies every pending patch again, oldest first, appending their changes to `all`. One that
  /// no longer applies stays pending without effect: the host decides.
  fn redo_pending(&mut self, all: &mut Vec<Change>) {
    let Inner { data, pending, .. } = self;
    for patch in pending.iter_mut() {
      let context = Context {
        now_ms: patch.hlc.ms as i64,
      };
      match patch.update.apply_with_undo(data, &context) {
        Ok((changes, undo)) => {
          all.extend(changes.iter().cloned());
          patch.changes = changes;
          patch.undo = Some(undo);
          patch.failure = None;
        }
        Err(err) => {
          patch.changes.clear();
          patch.undo = None;
          patch.failure = Some(err);
        }
      }
    }
  }
}

impl History {
  /// Host: gives an applied patch its version, notes its writes and sends it to every client.
  /// A host logs only its own patches (see [`Replica::patch`]): it hands its role over only after
  /// its clients received everything, unless it is replaced while stopped.
  fn order(
    &mut self,
    origin: u64,
    seq: u64,
    hlc: Hlc,
    update: &RawJson,
    parsed: &Update,
    changes: &[Change],
  ) -> u64 {
    let version = self.version + 1;
    if !self.clients.is_empty() {
      let encoded = RawJson::to(&changes).and_then(|changes| {
        let ordered = Message::Ordered {
          version,
          origin,
          seq,
          hlc,
          update: update.clone(),
          changes,
        };
        protocol::encode(&ordered, &mut self.broadcast)
      });
      // Too large for a frame: no client may miss a version, so every client is dropped and
      // resyncs from a snapshot when it reconnects.
      if let Err(err) = encoded {
        report!("memsync: patch {version} cannot be sent ({err}); clients resync");
        self.publish(true);
        for (_, outbox) in self.clients.drain(..) {
          outbox.close();
        }
      }
    }
    for target in parsed.targets() {
      self.note_write(target.path, hlc);
    }
    self.taps.ordered(version, hlc, update);
    self.version = version;
    self.mark_ordered(origin, seq);
    version
  }

  /// Host: queues the ordered frames not yet sent in every client's outbox, forgetting clients
  /// whose connection is gone. `flush` sends them at once (a tokio worker); otherwise JS flushes
  /// at the end of its task.
  fn publish(&mut self, flush: bool) {
    self.publish_except(flush, None);
  }

  /// [`History::publish`], leaving the flush of `origin` (the clients whose patches these
  /// are) to the caller: the other clients' readers get the CPU first, the origin only needs
  /// its acknowledgement.
  fn publish_except(&mut self, flush: bool, origin: Option<&Outbox>) {
    if self.broadcast.is_empty() {
      return;
    }
    let broadcast = &self.broadcast;
    self.clients.retain(|(_, outbox)| {
      let queued = outbox.queue(broadcast);
      if queued && flush && !origin.is_some_and(|origin| std::ptr::eq(origin, &**outbox)) {
        outbox.flush();
      }
      queued
    });
    self.broadcast.clear();
  }

  /// Client: notes an ordered patch: version, the origin's progress and the log.
  fn record(&mut self, version: u64, origin: u64, seq: u64, hlc: Hlc, update: RawJson) {
    self.version = version;
    self.mark_ordered(origin, seq);
    self.keep(version, origin, seq, hlc, update);
  }

  /// Appends an ordered entry to the log, which forgets its oldest past its bounds.
  fn keep(&mut self, version: u64, origin: u64, seq: u64, hlc: Hlc, update: RawJson) {
    self.log_bytes += update.get().len();
    while self.log.len() >= LOG_LEN || (self.log_bytes > LOG_BYTES && !self.log.is_empty()) {
      if let Some(oldest) = self.log.pop_front() {
        self.log_bytes -= oldest.update.get().len();
      }
    }
    self.log.push_back(LogEntry {
      version,
      origin,
      seq,
      hlc,
      update,
    });
  }

  fn note_write(&mut self, path: &str, hlc: Hlc) {
    let key = comparable_path(path);
    match self.write_times.get_mut(key) {
      Some(time) => *time = (*time).max(hlc),
      None => {
        self.write_times.insert(key.to_owned(), hlc);
      }
    }
    if self.write_times.len() > MAX_WRITE_TIMES {
      let floor = hlc.ms.saturating_sub(WRITE_TIME_WINDOW_MS);
      self.write_times.retain(|_, time| time.ms >= floor);
    }
  }

  /// The first overwriting target of `update` that a patch newer than `hlc` wrote (the path
  /// itself, a parent or a child).
  fn stale_target(&self, update: &Update, hlc: Hlc) -> Option<String> {
    for target in update.targets().filter(|target| target.overwrites) {
      let path = comparable_path(target.path);
      let newer = |key: &str| self.write_times.get(key).is_some_and(|&time| time > hlc);
      // The path itself and each of its parents.
      let mut ends = path.match_indices('.').map(|(index, _)| index);
      if ends.any(|end| newer(&path[..end])) || newer(path) {
        return Some(target.path.to_owned());
      }
      let children = format!("{path}.");
      let child_newer = self
        .write_times
        .range(children.clone()..)
        .take_while(|(key, _)| key.starts_with(&children))
        .any(|(_, &time)| time > hlc);
      if child_newer {
        return Some(target.path.to_owned());
      }
    }
    None
  }

  fn mark_ordered(&mut self, origin: u64, seq: u64) {
    let done = self.applied.entry(origin).or_insert(0);
    *done = (*done).max(seq);
  }

  fn is_ordered(&self, origin: u64, seq: u64) -> bool {
    self.applied.get(&origin).is_some_and(|&done| done >= seq)
  }
}

/// What the host's services (`services.rs`: the file and the HTTP view) need of the replica.
/// Each method holds the lock only to copy out or to register; serializing and I/O happen
/// outside it.
impl Replica {
  /// Replaces the document with `data` at `version`, loaded from the file by the process that
  /// starts the network. The pending patches stay on top, as with a host's snapshot.
  pub fn seed(&self, data: Value, version: u64) {
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    inner.events.push(&Event::Snapshot {
      version,
      data: Document::Value(&data),
    });
    inner.data = data;
    inner.history.version = version;
    let mut redone = Vec::new();
    inner.redo_pending(&mut redone);
    if !redone.is_empty() {
      inner.push_changes(version, redone, &[]);
    }
    drop(guard);
    self.wake();
  }

  /// A copy of the ordered document, without the pending patches, and its version: what the
  /// file holds. (A host has pending patches only once it has stopped ordering.)
  pub fn ordered_snapshot(&self) -> std::result::Result<(Value, u64), String> {
    let inner = self.inner.lock();
    let mut data = inner.data.clone();
    for patch in inner.pending.iter().rev() {
      if let Some(undo) = &patch.undo {
        apply_changes(&mut data, undo)?;
      }
    }
    Ok((data, inner.history.version))
  }

  /// A copy of the value at the dotted `path` (`""`: the whole document), `None` when nothing
  /// is there.
  pub fn read(&self, path: &str) -> Option<Value> {
    crate::patch::value_at(&self.inner.lock().data, path).cloned()
  }

  /// Wakes `saver` after each patch this host orders, until it stops being host.
  pub fn notify_orders(&self, saver: Arc<Notify>) {
    self.inner.lock().history.taps.saver = Some(saver);
  }

  /// The records `{ version, timestamp, patch }` (JSON) of the patches this host orders from now
  /// on, until it stops being host; `None` when it is not host. The stream ends when it falls
  /// `capacity` records behind.
  pub fn subscribe(&self, capacity: usize) -> Option<mpsc::Receiver<Arc<str>>> {
    let mut inner = self.inner.lock();
    if inner.role != Role::Host {
      return None;
    }
    let (sender, receiver) = mpsc::channel(capacity);
    inner.history.taps.streams.push(sender);
    Some(receiver)
  }

  /// Reports a failure that does not stop the instance (JS: an `error` event with `code`).
  pub fn report_error(&self, err: &Error) {
    self.inner.lock().events.push(&Event::Error {
      code: err.code(),
      message: &err.to_string(),
    });
    self.wake();
  }
}

impl Taps {
  fn ordered(&mut self, version: u64, hlc: Hlc, update: &RawJson) {
    if let Some(saver) = &self.saver {
      saver.notify_one();
    }
    if let (false, Some(record)) = (
      self.streams.is_empty(),
      Received::record(version, hlc, update),
    ) {
      let record: Arc<str> = record.get().into();
      self
        .streams
        .retain(|stream| stream.try_send(Arc::clone(&record)).is_ok());
    }
  }
}

/// The part of a path the stale-write check compares: everything before the first `$[]`, which
/// may touch any element.
fn comparable_path(path: &str) -> &str {
  match path.find(".$[") {
    Some(index) => &path[..index],
    None => path,
  }
}

fn patch_message(seq: u64, hlc: Hlc, update: &RawJson) -> Message {
  Message::Patch {
    seq,
    hlc,
    update: update.clone(),
  }
}

/// `Event::Own` for a patch that changed something.
fn own_event(seq: u64, version: u64, changes: &[Change], queued: bool) -> String {
  Event::Own {
    seq,
    version,
    changes: Some(changes),
    queued,
  }
  .to_json()
}

/// How the host settled one of this replica's patches, in the order it did.
enum Settled {
  Accepted(u64),
  Rejected {
    seq: u64,
    code: String,
    message: String,
  },
}

/// Queues the settlements in order, each run of acceptances as one `Accepted` event: a writer's
/// burst of acknowledgements costs JS one small array, not one per patch.
fn push_settled(inner: &mut Inner, settled: Vec<Settled>) {
  let mut accepted = Vec::new();
  for settlement in settled {
    match settlement {
      Settled::Accepted(seq) => accepted.push(seq),
      Settled::Rejected { seq, code, message } => {
        if !accepted.is_empty() {
          inner.events.push(&Event::Accepted(&accepted));
          accepted.clear();
        }
        inner.events.push(&Event::Rejected {
          seq,
          code: &code,
          message: &message,
        });
      }
    }
  }
  if !accepted.is_empty() {
    inner.events.push(&Event::Accepted(&accepted));
  }
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

/// Wall-clock epoch milliseconds, the physical part of the hybrid logical clock.
pub fn now_ms() -> u64 {
  SystemTime::now()
    .duration_since(UNIX_EPOCH)
    .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
  use serde_json::json;

  use super::*;
  use crate::events::MAX_EVENT_BACKLOG;

  /// A host and one client wired by outboxes without sockets: frames are delivered only when a
  /// test says so, which lets it choose every interleaving.
  struct Network {
    host: Replica,
    client: Replica,
    to_client: Arc<Outbox>,
    to_host: Arc<Outbox>,
  }

  /// The document and its version, as JSON text `[version, data]`.
  fn snapshot(replica: &Replica) -> String {
    let inner = replica.inner.lock();
    serde_json::to_string(&(inner.history.version, &inner.data)).unwrap()
  }

  const HOST: u64 = 1;
  const CLIENT: u64 = 2;

  impl Network {
    fn new(data: Value) -> Network {
      let host = Replica::new("t", data, HOST).unwrap();
      host.become_host();
      let client = Replica::new("t", json!({"ignored": true}), CLIENT).unwrap();
      let network = Network {
        host,
        client,
        to_client: Outbox::new(None, usize::MAX),
        to_host: Outbox::new(None, usize::MAX),
      };
      assert!(network.host.attach_client(7, network.to_client.clone()));
      let mut frames = network.to_client.take_messages().into_iter();
      let Some(Message::Welcome {
        version,
        data,
        applied,
        ..
      }) = frames.next()
      else {
        panic!("not a welcome");
      };
      network
        .client
        .client_welcome(version, data, applied, network.to_host.clone())
        .unwrap();
      network
    }

    /// Delivers everything the client sent to the host, as one burst.
    fn deliver_to_host(&mut self) {
      let burst = self.to_host.take_messages();
      self
        .host
        .host_receive(CLIENT, burst, &self.to_client)
        .unwrap();
    }

    /// Delivers everything the host sent to the client.
    fn deliver_to_client(&mut self) {
      let batch = self.to_client.take_messages();
      self.client.client_receive(batch).unwrap();
    }

    fn assert_converged(&self) {
      assert_eq!(snapshot(&self.host), snapshot(&self.client));
    }
  }

  fn data(replica: &Replica) -> Value {
    let (_, data): (u64, Value) = serde_json::from_str(&snapshot(replica)).unwrap();
    data
  }

  #[test]
  fn names_are_any_non_empty_string_up_to_the_limit() {
    for good in [
      "jobs",
      "a.b-c_d",
      ".hidden",
      "a/b",
      "a b",
      "ü",
      &"x".repeat(1024),
    ] {
      assert!(Replica::new(good, json!({}), 1).is_ok(), "{good}");
    }
    for bad in ["", &"x".repeat(1025)] {
      let err = Replica::new(bad, json!({}), 1).err().expect(bad);
      assert_eq!(err.code(), "ERR_INVALID_NAME");
    }
  }

  #[test]
  fn data_must_be_an_object() {
    let err = Replica::new("a", json!([1]), 1).err().unwrap();
    assert_eq!(err.code(), "ERR_BAD_VALUE");
  }

  #[test]
  fn data_may_not_nest_deeper_than_a_document_may() {
    let nested = |levels| (1..levels).fold(json!({}), |inner, _| json!({ "x": inner }));
    assert!(Replica::new("a", nested(MAX_DEPTH), 1).is_ok());
    let err = Replica::new("a", nested(MAX_DEPTH + 1), 1).err().unwrap();
    assert_eq!(err.code(), "ERR_BAD_VALUE");
    assert!(err.to_string().contains("101 levels deep"), "{err}");
  }

  #[test]
  fn a_host_orders_its_own_patches_at_once() {
    let replica = Replica::new("a", json!({ "n": 1 }), HOST).unwrap();
    replica.become_host();
    assert_eq!(replica.drain(), r#"[["role","host"]]"#);
    assert_eq!(replica.patch("{}").unwrap(), r#"[["o",0,0,null,0]]"#);
    assert_eq!(
      replica.patch(r#"{"$inc":{"n":2}}"#).unwrap(),
      r#"[["o",1,1,[["s",["n"],3]],0]]"#
    );
    assert_eq!(snapshot(&replica), r#"[1,{"n":3}]"#);
  }

  #[test]
  fn a_failed_patch_changes_nothing() {
    let replica = Replica::new("a", json!({ "n": 1, "s": "x" }), HOST).unwrap();
    let err = replica.patch(r#"{"$inc":{"n":1,"s":1}}"#).err().unwrap();
    assert_eq!(err.code(), "ERR_TYPE_MISMATCH");
    assert_eq!(snapshot(&replica), r#"[0,{"n":1,"s":"x"}]"#);
  }

  #[test]
  fn patches_before_a_host_exists_wait_and_are_ordered_when_one_does() {
    let replica = Replica::new("a", json!({ "n": 0 }), HOST).unwrap();
    assert_eq!(
      replica.patch(r#"{"$inc":{"n":1}}"#).unwrap(),
      r#"[["o",1,0,[["s",["n"],1]],0]]"#
    );
    assert_eq!(replica.version(), 0);
    replica.become_host();
    assert_eq!(replica.drain(), r#"[["a",1,1],["role","host"]]"#);
    assert_eq!(snapshot(&replica), r#"[1,{"n":1}]"#);
  }

  #[test]
  fn a_joining_client_takes_the_hosts_data() {
    let network = Network::new(json!({ "n": 5 }));
    assert_eq!(data(&network.client), json!({ "n": 5 }));
    let events = network.client.drain();
    assert!(events.starts_with(r#"[["r",0,{"n":5}]"#), "{events}");
    network.assert_converged();
  }

  #[test]
  fn settlements_keep_their_order_with_acceptances_in_runs() {
    let replica = Replica::new("a", json!({}), HOST).unwrap();
    let mut inner = replica.inner.lock();
    let rejected = || Settled::Rejected {
      seq: 3,
      code: "ERR_STALE_WRITE".to_owned(),
      message: "stale".to_owned(),
    };
    let settled = vec![
      Settled::Accepted(1),
      Settled::Accepted(2),
      rejected(),
      Settled::Accepted(4),
    ];
    push_settled(&mut inner, settled);
    assert_eq!(
      inner.events.drain(""),
      r#"[["A",[1,2]],["x",3,"ERR_STALE_WRITE","stale"],["A",[4]]]"#
    );
  }

  #[test]
  fn an_own_patch_ordered_first_needs_no_rebase() {
    let mut network = Network::new(json!({ "list": [] }));
    network.client.drain();
    network.client.patch(r#"{"$push":{"list":"b"}}"#).unwrap();
    network.deliver_to_host();
    network.deliver_to_client();
    assert_eq!(network.client.drain(), r#"[["A",[1]]]"#);
    network.assert_converged();
  }

  #[test]
  fn pending_patches_are_rebased_on_what_the_host_ordered_first() {
    let mut network = Network::new(json!({ "list": [] }));
    network.client.drain();
    network.client.patch(r#"{"$push":{"list":"b"}}"#).unwrap();
    assert_eq!(data(&network.client), json!({ "list": ["b"] }));
    network.host.patch(r#"{"$push":{"list":"a"}}"#).unwrap();
    network.deliver_to_host();
    network.deliver_to_client();
    assert_eq!(data(&network.client), json!({ "list": ["a", "b"] }));
    // Undo "b", apply "a", apply "b" again, then the acknowledgement.
    let events = network.client.drain();
    let rebase =
      r#"[["c",2,[["p",["list"],0,1,[]],["p",["list"],0,0,["a"]],["p",["list"],1,0,["b"]]],"#;
    assert!(events.starts_with(rebase), "{events}");
    assert!(events.ends_with(r#"["A",[1]]]"#), "{events}");
    network.assert_converged();
  }

  #[test]
  fn concurrent_increments_all_count() {
    let mut network = Network::new(json!({ "n": 0 }));
    for _ in 0..10 {
      network.client.patch(r#"{"$inc":{"n":1}}"#).unwrap();
      network.host.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    }
    network.deliver_to_host();
    network.deliver_to_client();
    assert_eq!(data(&network.client), json!({ "n": 20 }));
    network.assert_converged();
  }

  #[test]
  fn a_patch_the_host_rejects_is_rolled_back() {
    let mut network = Network::new(json!({ "v": 1 }));
    network.client.drain();
    network.client.patch(r#"{"$inc":{"v":1}}"#).unwrap();
    network.host.patch(r#"{"$set":{"v":"text"}}"#).unwrap();
    network.deliver_to_host();
    network.deliver_to_client();
    assert_eq!(data(&network.client), json!({ "v": "text" }));
    let events = network.client.drain();
    assert!(events.contains(r#"["x",1,"ERR_TYPE_MISMATCH""#), "{events}");
    network.assert_converged();
  }

  #[test]
  fn a_new_host_rejects_its_pending_patch_that_no_longer_applies_with_the_reason() {
    let mut network = Network::new(json!({ "v": 1 }));
    network.client.drain();
    network.client.patch(r#"{"$inc":{"v":1}}"#).unwrap();
    network.host.patch(r#"{"$set":{"v":"text"}}"#).unwrap();
    // The host's $set arrives, the client's $inc never reaches it, and the client takes over.
    network.deliver_to_client();
    network.client.drain();
    network.client.become_host();
    let events = network.client.drain();
    assert!(events.contains(r#"["x",1,"ERR_TYPE_MISMATCH""#), "{events}");
    assert_eq!(data(&network.client), json!({ "v": "text" }));
  }

  #[test]
  fn an_older_overwrite_than_an_accepted_write_is_stale() {
    let mut network = Network::new(json!({ "x": 0 }));
    network.client.drain();
    network.client.patch(r#"{"$set":{"x":"old"}}"#).unwrap();
    // The host's write is stamped later than the client's, and ordered first.
    std::thread::sleep(std::time::Duration::from_millis(2));
    network.host.patch(r#"{"$set":{"x":"new"}}"#).unwrap();
    network.deliver_to_host();
    network.deliver_to_client();
    assert_eq!(data(&network.client), json!({ "x": "new" }));
    let events = network.client.drain();
    assert!(events.contains(r#"["x",1,"ERR_STALE_WRITE""#), "{events}");
    network.assert_converged();
  }

  #[test]
  fn accumulating_operators_are_never_stale() {
    let mut network = Network::new(json!({ "n": 0 }));
    network.client.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    network.host.patch(r#"{"$set":{"n":10}}"#).unwrap();
    network.deliver_to_host();
    network.deliver_to_client();
    assert_eq!(data(&network.client), json!({ "n": 11 }));
    network.assert_converged();
  }

  #[test]
  fn a_new_host_gets_the_entries_it_missed_and_no_patch_twice() {
    let mut network = Network::new(json!({ "list": [] }));
    network.client.patch(r#"{"$push":{"list":"c1"}}"#).unwrap();
    network.deliver_to_host();
    network.deliver_to_client();
    // A second client that missed the last ordered entry becomes the new host.
    let new_host = Replica::new("t", json!({}), 3).unwrap();
    let empty = RawJson::to(&json!({ "list": [] })).unwrap();
    let unused = Outbox::new(None, usize::MAX);
    new_host
      .client_welcome(0, empty, Vec::new(), unused)
      .unwrap();
    new_host.become_host();
    let to_client = Outbox::new(None, usize::MAX);
    assert!(new_host.attach_client(1, to_client.clone()));
    let Some(Message::Welcome {
      version,
      data: welcome_data,
      applied,
      ..
    }) = to_client.take_messages().into_iter().next()
    else {
      panic!("not a welcome");
    };
    let to_new_host = Outbox::new(None, usize::MAX);
    network
      .client
      .client_welcome(version, welcome_data, applied, to_new_host.clone())
      .unwrap();
    new_host
      .host_receive(CLIENT, to_new_host.take_messages(), &to_client)
      .unwrap();
    network
      .client
      .client_receive(to_client.take_messages())
      .unwrap();
    assert_eq!(data(&new_host), json!({ "list": ["c1"] }));
    assert_eq!(snapshot(&new_host), snapshot(&network.client));
  }

  #[test]
  fn a_fenced_host_orders_nothing_and_hands_the_new_host_its_own_patches_once() {
    let network = Network::new(json!({ "list": [] }));
    let dir = tempfile::tempdir().unwrap();
    let next_epoch = dir.path().join("t~1.lock");
    let lease = Arc::new(Lease::new(
      next_epoch.clone(),
      std::time::Duration::from_secs(5),
    ));
    network.host.inner.lock().lease = Some(lease.clone());
    network.host.patch(r#"{"$push":{"list":"h1"}}"#).unwrap();
    // The host is stopped before its client reads `h1`; the client replaces it.
    let new_host = &network.client;
    new_host.become_host();
    std::fs::write(&next_epoch, b"").unwrap();
    // Resumed, the old host checks (its lease has lapsed, or a heartbeat is due) and its next
    // patch is not ordered: it stays pending.
    assert!(!lease.renew());
    let events = network.host.patch(r#"{"$push":{"list":"h2"}}"#).unwrap();
    // Version 0: not ordered yet.
    assert!(events.starts_with(r#"[["o",2,0,"#), "{events}");
    assert_eq!(network.host.version(), 1);
    // It steps down and joins the new host: `h1` goes as a missed entry, `h2` as a patch.
    network.host.go_offline();
    let to_old = Outbox::new(None, usize::MAX);
    assert!(new_host.attach_client(9, to_old.clone()));
    let Some(Message::Welcome {
      version,
      data: welcome_data,
      applied,
      ..
    }) = to_old.take_messages().into_iter().next()
    else {
      panic!("not a welcome");
    };
    let to_new_host = Outbox::new(None, usize::MAX);
    network
      .host
      .client_welcome(version, welcome_data, applied, to_new_host.clone())
      .unwrap();
    new_host
      .host_receive(HOST, to_new_host.take_messages(), &to_old)
      .unwrap();
    network.host.client_receive(to_old.take_messages()).unwrap();
    assert_eq!(data(new_host), json!({ "list": ["h1", "h2"] }));
    assert_eq!(snapshot(new_host), snapshot(&network.host));
    assert_eq!(network.host.status().0, Role::Client);
  }

  #[test]
  fn events_js_does_not_drain_are_replaced_by_one_snapshot() {
    let mut network = Network::new(json!({ "n": 0 }));
    network.client.drain();
    for n in 0..20 {
      // A different megabyte each time: setting an equal value changes nothing.
      let big = char::from(b'a' + n as u8).to_string().repeat(1024 * 1024);
      let update = json!({ "$set": { "big": big, "n": n } }).to_string();
      network.host.patch(&update).unwrap();
      network.host.flush();
      network.deliver_to_client();
    }
    let queued = network.client.inner.lock().events.bytes();
    assert!(queued < MAX_EVENT_BACKLOG, "{queued} bytes queued");
    let events = network.client.patch(r#"{"$inc":{"n":100}}"#).unwrap();
    let events: Vec<Value> = serde_json::from_str(&events).unwrap();
    // The snapshot is taken before the patch applies: JS applies the patch once, on top of it.
    let kinds: Vec<&Value> = events.iter().map(|event| &event[0]).collect();
    assert_eq!(events[0][0], "r", "{kinds:?}");
    assert_eq!(events[0][2]["n"], json!(19));
    assert_eq!(events.last().unwrap()[0], "o");
    assert!(
      !events.iter().any(|event| event[0] == "c"),
      "the changes were dropped"
    );
    network.deliver_to_host();
    network.deliver_to_client();
    network.assert_converged();
    assert_eq!(data(&network.client)["n"], json!(119));
  }

  #[test]
  fn bus_events_js_does_not_drain_are_bounded_and_their_loss_reported() {
    let replica = Replica::new("a", json!({}), HOST).unwrap();
    let args = RawJson::to(&json!(["x".repeat(1024 * 1024)])).unwrap();
    let effects = Effects {
      events: (0..20)
        .map(|_| Event::Emit {
          event: "big".to_owned(),
          args: args.clone(),
        })
        .collect(),
      flush: Vec::new(),
    };
    replica.apply(effects, false);
    let events: Vec<Value> = serde_json::from_str(&replica.drain()).unwrap();
    assert_eq!(events[0], json!(["edrop", 5]));
    assert_eq!(events.len(), 16);
    // Drained: room again.
    let effects = Effects {
      events: vec![Event::Emit {
        event: "small".to_owned(),
        args: RawJson::to(&json!([])).unwrap(),
      }],
      flush: Vec::new(),
    };
    replica.apply(effects, false);
    assert_eq!(replica.drain(), r#"[["e","small",[]]]"#);
  }

  #[test]
  fn a_seed_replaces_the_data_and_keeps_pending_patches_on_top() {
    let replica = Replica::new("a", json!({ "n": 0 }), HOST).unwrap();
    replica.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    replica.seed(json!({ "n": 10, "from": "file" }), 7);
    assert_eq!(data(&replica), json!({ "n": 11, "from": "file" }));
    assert_eq!(
      replica.ordered_snapshot().unwrap(),
      (json!({ "n": 10, "from": "file" }), 7)
    );
    let events = replica.drain();
    assert!(
      events.starts_with(r#"[["r",7,{"n":10,"from":"file"}],["c",7,[["s",["n"],11]],[]]"#),
      "{events}"
    );
    replica.become_host();
    assert_eq!(snapshot(&replica), r#"[8,{"n":11,"from":"file"}]"#);
    assert_eq!(replica.ordered_snapshot().unwrap().1, 8);
  }

  #[test]
  fn event_streams_and_the_saver_hear_every_ordered_patch_until_the_role_ends() {
    let mut network = Network::new(json!({ "n": 0 }));
    let saver = Arc::new(Notify::new());
    network.host.notify_orders(saver.clone());
    let mut stream = network.host.subscribe(16).unwrap();
    network.host.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    network.client.patch(r#"{"$set":{"by":"client"}}"#).unwrap();
    network.deliver_to_host();
    let first = stream.try_recv().unwrap();
    assert!(first.starts_with(r#"{"version":1,"timestamp":"#), "{first}");
    assert!(first.ends_with(r#","patch":{"$inc":{"n":1}}}"#), "{first}");
    let second = stream.try_recv().unwrap();
    assert!(second.starts_with(r#"{"version":2,"#), "{second}");
    assert!(
      second.ends_with(r#""patch":{"$set":{"by":"client"}}}"#),
      "{second}"
    );
    // One stored wake-up however many patches: the saver coalesces them.
    let woken = saver.notified();
    tokio::pin!(woken);
    assert!(woken.as_mut().enable());
    network.host.go_offline();
    assert!(stream.try_recv().is_err());
    assert!(network.host.subscribe(16).is_none(), "only a host streams");
  }

  #[test]
  fn a_stream_that_falls_behind_is_dropped() {
    let host = Replica::new("a", json!({ "n": 0 }), HOST).unwrap();
    host.become_host();
    let mut slow = host.subscribe(2).unwrap();
    for _ in 0..3 {
      host.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    }
    assert!(slow.try_recv().is_ok());
    assert!(slow.try_recv().is_ok());
    assert_eq!(
      slow.try_recv(),
      Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
    );
  }

  #[test]
  fn reads_follow_dotted_paths() {
    let replica = Replica::new("a", json!({ "a": { "list": [1, { "b": 2 }] } }), HOST).unwrap();
    assert_eq!(replica.read("a.list.1.b"), Some(json!(2)));
    assert_eq!(
      replica.read(""),
      Some(json!({ "a": { "list": [1, { "b": 2 }] } }))
    );
    assert_eq!(replica.read("a.list.01.b"), Some(json!(2)));
    assert_eq!(replica.read("a.missing"), None);
    assert_eq!(replica.read("a.list.0.x"), None);
  }
}
