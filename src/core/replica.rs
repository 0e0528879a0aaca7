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
//! Messages for other processes are queued on their connections ([`Link`]s, given by the
//! transport) under the lock, in the order the replica made them. Work done on a tokio worker
//! flushes at once; a `patch()` on the JS thread only queues, and JS flushes at the end of its
//! current task ([`Replica::flush`]), so a loop of patches costs one write. The ordering rules
//! are [`Order`]'s; time comes from the [`Time`] the replica is given.
//!
//! A `parking_lot::Mutex` guards the state rather than `tokio::sync::Mutex`: nothing is awaited
//! while the lock is held, every critical section is short and CPU-only, and the JS thread takes
//! it on every `patch()`, where an async lock would cost a task hop (mini-redis `db.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use foldhash::HashMap;
use futures_util::future::select_ok;
use parking_lot::{Condvar, Mutex};

use crate::clock::{Clock, Hlc, Time};
use crate::core::digest::digest;
use crate::core::events::{Document, Event, Queue, Received};
use crate::core::exchange::{Effects, Exchange, LOCK_GRACE};
use crate::core::link::{same, Fence, Followers, Link, Proposer};
use crate::core::message::{JsonText, LogEntry, Message, RawJson};
use crate::core::order::{Order, Progress, Verdict};
use crate::core::pending::{Pending, PendingPatch, Under};
use crate::core::recent::Recent;
use crate::doc::Value;
use crate::error::{Code, Error, Result};
use crate::patch::{apply_changes, compact, depth, Change, Context, Update, MAX_DEPTH};

/// Ordered entries a client keeps to hand to a new host that missed them after a failover.
const LOG_LEN: usize = 4096;
/// Update bytes the log keeps at most, whatever the number of entries: the entries a new host
/// may miss are the last few in flight, and large updates must not pin memory.
const LOG_BYTES: usize = 8 * 1024 * 1024;
/// Own patches that may wait to be ordered unless `network.maxPending` says otherwise: about
/// 130 MB of small patches (1.3 KB each, replica and JS together; docs/internals.md).
pub const DEFAULT_MAX_PENDING: usize = 100_000;

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
  time: Time,
  inner: Mutex<Inner>,
  /// Wakes the JS thread to drain events; set when started.
  waker: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
  /// Whether a wake-up is already on its way, so a burst of events costs one.
  woken: AtomicBool,
  /// Whether JS wants diagnostic lines (`NODE_DEBUG=memsync`); while it does not, none is even
  /// formatted.
  debug: AtomicBool,
  /// RPC, events, writer slots and locks. A lock of its own: never taken while `inner` is held,
  /// nor `inner` while it is held, so the two never wait on each other.
  exchange: Mutex<Exchange>,
  /// Signalled when a joining replica holds the host's snapshot (`Inner::joining` turns false).
  joined: Condvar,
}

/// A listener of a host's order (the file saver, the HTTP event streams), told of each patch
/// the host orders until it returns `false` or the host's role ends.
pub trait Tap: Send {
  /// Patch `version`, stamped `hlc`, was ordered with `update`.
  fn ordered(&mut self, version: u64, hlc: Hlc, update: &RawJson) -> bool;
}

struct Inner {
  data: Value,
  role: Role,
  clock: Clock,
  next_seq: u64,
  pending: Pending,
  /// The most own patches that may wait to be ordered (`network.maxPending`).
  max_pending: usize,
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
  to_host: Option<Arc<dyn Link>>,
  /// Host only: who hears of each ordered patch.
  audience: Audience,
  /// JS already has the host's snapshot but the replica is still parsing it.
  joining: bool,
  /// The length of the last welcome's document, sent as host or taken as client: the room the
  /// next welcome's text is written into (a client that becomes host welcomes every other
  /// client again).
  welcome_len: usize,
  /// Host only: the right to order in its epoch; a host without one (tests) always has it.
  lease: Option<Arc<dyn Fence>>,
  /// Bridge only: where the patches go instead of being ordered here.
  proposer: Option<Arc<dyn Proposer>>,
}

/// Host only: who hears of each ordered patch: the clients, and the taps (the host's services).
#[derive(Default)]
struct Audience {
  /// The clients, and the ordered patches not yet queued to them.
  followers: Followers,
  taps: Vec<Box<dyn Tap>>,
}

impl Audience {
  /// Tells everyone of patch `version`: an `Ordered` message for every client, and the taps; a
  /// failure to tell the clients is reported to JS through `events`.
  #[allow(clippy::too_many_arguments)]
  fn ordered(
    &mut self,
    version: u64,
    origin: u64,
    seq: u64,
    hlc: Hlc,
    update: &RawJson,
    changes: &[Change],
    events: &mut Queue,
  ) {
    if !self.followers.is_empty() {
      match serde_json::to_string(&changes) {
        Ok(changes) => self.followers.push(Message::Ordered {
          version,
          origin,
          seq,
          hlc,
          update: JsonText::from(update),
          changes: JsonText::from(changes),
        }),
        Err(err) => {
          events.push(&Event::Error {
            code: Code::Internal.as_str(),
            message: &format!("patch {version} cannot be sent to the clients ({err}); they resync"),
          });
          self.followers.close_all();
        }
      }
    }
    self
      .taps
      .retain_mut(|tap| tap.ordered(version, hlc, update));
  }
}

/// What the order has produced so far; apart from `data` so that ordering can borrow it while
/// the update being ordered is borrowed from the rest.
struct History {
  /// The version, each origin's progress and (host) the write times: the ordering rules' state.
  order: Order,
  /// The last ordered entries, for a host that may replace this one's.
  log: Recent,
  /// Host only: whether a client joined during this term, which only then may replace it.
  served: bool,
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
    Replica::with_time(name, data, origin, Time::wall())
  }

  /// A replica as [`Replica::new`] that reads the time from `time`.
  pub fn with_time(name: &str, data: Value, origin: u64, time: Time) -> Result<Replica> {
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
      time: time.clone(),
      inner: Mutex::new(Inner {
        data,
        role: Role::Offline,
        clock: Clock::new(),
        next_seq: 1,
        pending: Pending::default(),
        max_pending: DEFAULT_MAX_PENDING,
        history: History {
          order: Order::default(),
          log: Recent::new(LOG_LEN, LOG_BYTES),
          served: false,
        },
        last_update: ParsedUpdate::parse("{}")?,
        last_received: None,
        events: Queue::default(),
        wants_received: false,
        to_host: None,
        audience: Audience::default(),
        joining: false,
        welcome_len: 0,
        lease: None,
        proposer: None,
      }),
      waker: Mutex::new(None),
      woken: AtomicBool::new(false),
      debug: AtomicBool::new(false),
      exchange: Mutex::new(Exchange::new(time.clone())),
      joined: Condvar::new(),
    })
  }

  /// The object's name.
  pub fn name(&self) -> &str {
    &self.name
  }

  /// The id that names this instance's patches.
  pub fn origin(&self) -> u64 {
    self.origin
  }

  /// Where this instance reads the time.
  pub fn time(&self) -> &Time {
    &self.time
  }

  /// A fresh timestamp of this instance's hybrid clock (lock requests are ordered by it).
  pub fn stamp(&self) -> Hlc {
    let now = self.time.now_ms();
    self.inner.lock().clock.now(now)
  }

  /// The version of the ordered document.
  pub fn version(&self) -> u64 {
    self.inner.lock().history.order.version()
  }

  /// The version, origin and seq of the last entry kept, when it is the version reached: what a
  /// shared log must still hold for this replica to follow on from it.
  pub fn last_entry(&self) -> Option<(u64, u64, u64)> {
    let inner = self.inner.lock();
    inner
      .history
      .log
      .last()
      .filter(|&(version, _, _)| version == inner.history.order.version())
  }

  /// The role, the version and (host) how many clients are connected, read together.
  pub fn status(&self) -> (Role, u64, usize) {
    let inner = self.inner.lock();
    (
      inner.role,
      inner.history.order.version(),
      inner.audience.followers.len(),
    )
  }

  /// Sets what wakes the JS thread when events arrive from the network.
  pub fn set_waker(&self, waker: Option<Box<dyn Fn() + Send + Sync>>) {
    *self.waker.lock() = waker;
  }

  /// Wakes the JS thread even if a wake-up is on its way: the transport has something for it
  /// besides events (a client's socket to poll).
  pub fn nudge(&self) {
    self.woken.store(true, Ordering::Release);
    if let Some(waker) = self.waker.lock().as_ref() {
      waker();
    }
  }

  /// Whether JS wants the update of every patch ordered elsewhere (`receivedPatches`, `change`).
  pub fn set_wants_received(&self, wanted: bool) {
    self.inner.lock().wants_received = wanted;
  }

  /// Sends the frames that `patch()` queued for other processes. `false` on a host none of whose
  /// clients has all of them yet (every socket to them is full): until one has
  /// ([`Replica::replicated`]), the host's patches among them would die with it.
  pub fn flush(&self) -> bool {
    let (to_host, clients) = {
      let inner = self.inner.lock();
      let clients: Vec<Arc<dyn Link>> = inner.audience.followers.links().cloned().collect();
      (inner.to_host.clone(), clients)
    };
    for link in to_host.iter().chain(&clients) {
      link.flush();
    }
    replicated_now(&clients)
  }

  /// Ends once one of this host's clients has every frame queued to it so far, so that they
  /// survive the host (a client resends the ordered patches a new host lacks), or once none can
  /// (no client is left, or each connection ended first).
  pub async fn replicated(&self) {
    let links = self.client_links();
    if replicated_now(&links) {
      return;
    }
    let waits = links.into_iter().map(|link| {
      let sent = link.wait_sent();
      async move {
        if sent.await {
          Ok(())
        } else {
          Err(())
        }
      }
    });
    let _ = select_ok(waits.map(Box::pin)).await;
  }

  /// Sets how many own patches may wait to be ordered; past it [`Replica::patch`] refuses more.
  pub fn set_max_pending(&self, limit: usize) {
    self.inner.lock().max_pending = limit;
  }

  /// Applies an update given as JSON text and returns the queued events as a JSON array, the last
  /// one `["o", seq, version, changes, queued]` for this patch (`version` 0: not ordered yet; `changes`
  /// null: nothing changed). On error the document is exactly as it was: [`Error::PendingLimit`]
  /// when `max_pending` own patches wait to be ordered already.
  pub fn patch(&self, update_text: &str) -> Result<String> {
    let now = self.time.now_ms();
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
      return Ok(inner.events.drain(&Event::UNCHANGED.to_tokens()));
    }
    let hlc = inner.clock.now(now);
    let context = Context {
      now_ms: hlc.ms as i64,
    };
    let seq = inner.next_seq;
    // A host that finds itself fenced (it was stopped and replaced) keeps the patch pending: it
    // goes to the new host once this one has stepped down and joined it.
    let host = inner.role == Role::Host
      && inner.proposer.is_none()
      && inner.lease.as_ref().is_none_or(|lease| lease.holds());
    let own = if host {
      let changes = update.apply(&mut inner.data, &context)?;
      if changes.is_empty() {
        Event::UNCHANGED.to_tokens()
      } else {
        inner.next_seq += 1;
        let text = &inner.last_update.text;
        let version = inner.history.order.accept(self.origin, seq, hlc, update);
        inner.audience.ordered(
          version,
          self.origin,
          seq,
          hlc,
          text,
          &changes,
          &mut inner.events,
        );
        let queued = !inner.audience.followers.is_empty();
        // A host replaced while stopped hands its own patches to the new host when it rejoins:
        // no client may have received them (its clients may have left it already). A host that
        // never had a client cannot be replaced, and keeps nothing.
        if inner.history.served {
          inner
            .history
            .log
            .push(version, self.origin, seq, hlc, text.get());
        }
        inner.audience.followers.publish();
        own_event(seq, version, &changes, queued)
      }
    } else {
      if inner.pending.len() >= inner.max_pending {
        return Err(Error::PendingLimit {
          limit: inner.max_pending,
        });
      }
      let (changes, undo) = update.apply_with_undo(&mut inner.data, &context)?;
      if changes.is_empty() {
        Event::UNCHANGED.to_tokens()
      } else {
        inner.next_seq += 1;
        let update_text = inner.last_update.text.clone();
        let queued = match &inner.proposer {
          Some(proposer) => {
            proposer.propose(self.origin, seq, hlc, &update_text);
            false
          }
          None => inner
            .to_host
            .as_ref()
            .is_some_and(|to_host| to_host.queue(&patch_message(seq, hlc, &update_text))),
        };
        let event = own_event(seq, 0, &changes, queued);
        inner.pending.push_back(PendingPatch {
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

  /// The document of the snapshot event with null `data` in the last drain (see
  /// [`Queue::take_snapshot`]).
  pub fn take_snapshot(&self) -> Option<Arc<JsonText>> {
    self.inner.lock().events.take_snapshot()
  }

  /// The queued events followed by what JS checks `data` against for direct writes
  /// (`lib/changes.js`): the digest of the document they lead to (`["h", a, b]`), or with `whole`
  /// the document itself (`["d", data]`). Taken under one lock, so that the two agree; the
  /// digest walks the document under it (docs/guarantees.md has the times).
  pub fn drain_for_check(&self, whole: bool) -> String {
    self.woken.store(false, Ordering::Release);
    let mut inner = self.inner.lock();
    inner.resync_events();
    let last = if whole {
      Event::Document(&inner.data).to_tokens()
    } else {
      Event::Digest(digest(&inner.data)).to_tokens()
    };
    inner.events.drain(&last)
  }

  /// Becomes host under `lease` (see [`Replica::become_host`]).
  pub fn become_host_under(&self, lease: Arc<dyn Fence>) {
    self.inner.lock().lease = Some(lease);
    self.become_host();
  }

  /// Whether this instance may act as host now: it has no lease (it is no host, or a test's),
  /// or its lease holds (see `lease`).
  pub fn holds_lease(&self) -> bool {
    let lease = self.inner.lock().lease.clone();
    lease.is_none_or(|lease| lease.holds())
  }

  /// A host's connections to its clients, to use once the lock is released.
  fn client_links(&self) -> Vec<Arc<dyn Link>> {
    let inner = self.inner.lock();
    inner.audience.followers.links().cloned().collect()
  }

  /// Host: tells every client that this host is not stopped.
  pub fn heartbeat(&self) {
    for link in self.client_links() {
      link.queue(&Message::Heartbeat);
      link.flush();
    }
  }

  /// Becomes host: orders the pending patches, in order, and starts ordering every patch.
  pub fn become_host(&self) {
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    inner.role = Role::Host;
    inner.history.served = false;
    inner.to_host = None;
    let pending = inner.pending.take();
    for patch in pending {
      match patch.undo {
        Some(_) => {
          let origin = self.origin;
          let version = inner
            .history
            .order
            .accept(origin, patch.seq, patch.hlc, &patch.update);
          let (text, changes) = (&patch.update_text, &patch.changes);
          inner.audience.ordered(
            version,
            origin,
            patch.seq,
            patch.hlc,
            text,
            changes,
            &mut inner.events,
          );
          // Logged as in `patch`, for the host that may replace this one.
          inner.history.log.push(
            version,
            self.origin,
            patch.seq,
            patch.hlc,
            patch.update_text.get(),
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
    drop(guard);
    let grace_until = self.time.now_ms() + LOCK_GRACE.as_millis() as u64;
    self.exchange.lock().become_host(grace_until);
    self.wake();
  }

  /// Becomes the bridge of a log ordered elsewhere: host for this machine's clients (they
  /// join, and hear what the log orders through [`Replica::log_receive`]), but every patch, its
  /// own and theirs, goes to `proposer` instead of being ordered here. The pending patches are
  /// proposed first, in order; they stay pending until the log brings them back.
  pub fn become_bridge(&self, proposer: Arc<dyn Proposer>) {
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    inner.role = Role::Host;
    inner.history.served = false;
    inner.to_host = None;
    for patch in inner.pending.iter() {
      proposer.propose(self.origin, patch.seq, patch.hlc, &patch.update_text);
    }
    inner.proposer = Some(proposer.clone());
    inner.events.push(&Event::Role(Role::Host.name()));
    drop(guard);
    let effects = self.exchange.lock().become_bridge(self.origin, proposer);
    self.apply(effects, true);
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
      for link in effects.flush {
        link.flush();
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
    inner.proposer = None;
    // Each client's writer sends what is queued, then closes its connection.
    inner.audience.followers.close_all();
    inner.audience.taps.clear();
    inner.events.push(&Event::Role(Role::Offline.name()));
    drop(inner);
    self.exchange.lock().go_offline();
    self.wake();
  }

  /// Host: admits a client: queues the welcome that `greet` makes of the document (its version,
  /// JSON text and the applied map) on `link`, and from the same instant on every ordered patch,
  /// so the client misses none and gets none twice. `false` when this instance is no longer host
  /// or the welcome cannot be made.
  pub fn attach_client(
    &self,
    id: u64,
    origin: u64,
    link: Arc<dyn Link>,
    greet: impl FnOnce(u64, JsonText, Vec<(u64, u64)>) -> Message,
  ) -> bool {
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    // A connection accepted while the host was stopping: no welcome from a host that is leaving.
    if inner.role != Role::Host {
      return false;
    }
    // A bridge's own pending patches are not in the log yet: its clients are welcomed with the
    // document without them (undone and redone on the same base, which gives the same document,
    // so JS hears nothing of it).
    let bridging = inner.proposer.is_some() && !inner.pending.is_empty();
    if bridging && inner.undo_pending().is_err() {
      return false;
    }
    // Serialized straight from the document, under the lock, instead of cloning it first, into
    // room for the last welcome's document and an eighth more.
    let data = JsonText::serialize(&inner.data, inner.welcome_len + inner.welcome_len / 8);
    if bridging {
      inner.redo_pending(&mut Vec::new());
    }
    let Ok(data) = data else {
      return false;
    };
    inner.welcome_len = data.get().len();
    let order = &inner.history.order;
    let applied = order.applied().iter().map(|(&o, &s)| (o, s)).collect();
    let welcome = greet(order.version(), data, applied);
    // Ordered patches still waiting for the clients already are in this document.
    inner.audience.followers.publish();
    if !link.queue(&welcome) {
      drop(guard);
      // Most often the client left during its handshake, which is no failure of the
      // application's: a diagnostic line, not an `error` event.
      self.debug(|| {
        "a client was not welcomed: its connection ended, or the welcome is larger than a frame \
         may carry"
          .to_owned()
      });
      return false;
    }
    inner.audience.followers.attach(id, origin, link.clone());
    inner.history.served = true;
    drop(guard);
    link.flush();
    true
  }

  /// Host: forgets a client whose connection ended.
  pub fn detach_client(&self, id: u64) {
    self.inner.lock().audience.followers.detach(id);
  }

  /// Host: orders a burst of messages from one client (`Patch`, `Catchup`), in order; rejections
  /// go back through `reply`. The whole burst reaches JS as one event and every client as one
  /// write. Returns the first message a client may not send, if any (the caller disconnects it).
  pub fn host_receive(
    &self,
    origin: u64,
    messages: Vec<Message>,
    reply: &dyn Link,
  ) -> std::result::Result<(), Message> {
    let now = self.time.now_ms();
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    let mut all = Vec::new();
    let mut received = Vec::new();
    let mut unexpected = None;
    for message in messages {
      match message {
        Message::Patch { seq, hlc, update } if inner.proposer.is_some() => {
          inner.clock.observe(&hlc, now);
          if let Some(proposer) = &inner.proposer {
            proposer.propose(origin, seq, hlc, &update);
          }
        }
        Message::Patch { seq, hlc, update } => {
          if let Err(err) =
            inner.order_received(origin, seq, hlc, update, now, &mut all, &mut received)
          {
            reply.queue(&Message::Rejected {
              seq,
              code: err.code().to_owned(),
              message: err.to_string(),
            });
          }
        }
        // A bridge's document comes from the log alone: what a client read from it before is
        // in the log, or lost with it and proposed again by the bridge that placed it.
        Message::Catchup { .. } if inner.proposer.is_some() => {}
        Message::Catchup { entries } => inner.catch_up(entries, &mut all, &mut received),
        other => {
          unexpected = Some(other);
          break;
        }
      }
    }
    if !all.is_empty() || !received.is_empty() {
      let version = inner.history.order.version();
      inner.push_changes(version, all, &received);
    }
    let others = inner.audience.followers.publish_to_flush();
    drop(guard);
    // The origin of the burst last: the others' copies go out before its acknowledgement.
    for link in others.iter().filter(|link| !same(&***link, reply)) {
      link.flush();
    }
    reply.flush();
    self.wake();
    match unexpected {
      Some(message) => Err(message),
      None => Ok(()),
    }
  }

  /// Bridge (a log ordered elsewhere: the Redis transport): decides the log's entries, in order,
  /// by the rules every replica of that log runs (`Order::decide_logged`), with the own pending
  /// patches rebased on them. The changes go to this replica's clients as `Ordered` (they apply
  /// changes, never the engine); an own entry settles its pending patch, and a stale or refused
  /// entry of a client goes to it as `Rejected`, in log order. Returns those of the other
  /// machines' origins, whose own bridges tell them. An `Err`: the entries do
  /// not follow this replica's version (a gap: the caller reads the log again from it).
  pub fn log_receive(
    &self,
    entries: Vec<LogEntry>,
  ) -> std::result::Result<Vec<(u64, u64, Error)>, String> {
    let now = self.time.now_ms();
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    let mut undone = false;
    let mut all = Vec::new();
    let mut received = Vec::new();
    let mut settled = Vec::new();
    let mut refused = Vec::new();
    for entry in entries {
      let LogEntry {
        version,
        origin,
        seq,
        hlc,
        update,
      } = entry;
      let expected = inner.history.order.version() + 1;
      if version < expected {
        continue;
      }
      if version > expected {
        return Err(format!(
          "the log jumps from version {} to {version}",
          expected - 1
        ));
      }
      inner.clock.observe(&hlc, now);
      // The own oldest pending patch, applied on exactly this base and admitted by the rules:
      // its local effect is its verdict, with nothing to undo and redo (a burst of own patches
      // costs each entry its own work, not the work of every patch still pending).
      let own_front = !undone
        && origin == self.origin
        && inner.pending.front().is_some_and(|patch| {
          patch.seq == seq
            && patch.undo.is_some()
            && inner.history.order.admits(origin, seq, hlc, &patch.update)
        });
      if let Some(patch) = own_front.then(|| inner.pending.pop_front()).flatten() {
        inner
          .history
          .order
          .accept_logged(version, origin, seq, hlc, &patch.update);
        inner.audience.ordered(
          version,
          origin,
          seq,
          hlc,
          &update,
          &patch.changes,
          &mut inner.events,
        );
        settled.push(Settled::Accepted(seq));
        inner
          .history
          .log
          .push(version, origin, seq, hlc, update.get());
        continue;
      }
      let parsed = inner.parse_received(&update);
      // Another machine's entry is decided where the replica stands when that gives what the
      // full rebase would (see `Inner::decide_over_pending`).
      let over = match &parsed {
        Ok(parsed) if !undone && origin != self.origin => {
          inner.decide_over_pending(version, origin, seq, hlc, parsed)?
        }
        _ => None,
      };
      // With the changes as made here, when they differ from the verdict's.
      let (verdict, here) = match over {
        Some(over) => over,
        None => {
          if !undone {
            all.extend(inner.undo_pending()?);
            undone = true;
          }
          let verdict = match parsed {
            Ok(parsed) => {
              let Inner { history, data, .. } = &mut *inner;
              history
                .order
                .decide_logged(version, origin, seq, hlc, &parsed, data)
            }
            Err(err) => {
              inner.history.order.record(version, origin, seq);
              Verdict::Refused(match err {
                Error::Patch(err) => err,
                other => return Err(other.to_string()),
              })
            }
          };
          (verdict, None)
        }
      };
      let failure = match verdict {
        Verdict::Ordered { version, changes } => {
          inner.audience.ordered(
            version,
            origin,
            seq,
            hlc,
            &update,
            &changes,
            &mut inner.events,
          );
          all.extend(here.unwrap_or(changes));
          if origin == self.origin {
            inner.pending.retain(|patch| patch.seq != seq);
            settled.push(Settled::Accepted(seq));
          } else if inner.wants_received {
            received.extend(Received::record(version, hlc, &update));
          }
          inner
            .history
            .log
            .push(version, origin, seq, hlc, update.get());
          None
        }
        Verdict::Duplicate => None,
        Verdict::Stale { path } => Some(Error::StaleWrite { path }),
        Verdict::Refused(err) => Some(Error::Patch(err)),
      };
      match failure {
        Some(err) if origin == self.origin => {
          inner.pending.retain(|patch| patch.seq != seq);
          settled.push(Settled::Rejected {
            seq,
            code: err.code().to_owned(),
            message: err.to_string(),
          });
        }
        Some(err) => {
          let rejected = Message::Rejected {
            seq,
            code: err.code().to_owned(),
            message: err.to_string(),
          };
          // Another machine's patch: its own bridge tells it, from the same verdict.
          if !inner.audience.followers.send_to(origin, &rejected) {
            refused.push((origin, seq, err));
          }
        }
        None => {}
      }
    }
    inner.finish_receiving(undone, all, &received, settled);
    let clients = inner.audience.followers.publish_to_flush();
    drop(guard);
    for link in clients {
      link.flush();
    }
    self.wake();
    Ok(refused)
  }

  /// Client: takes the host's snapshot, keeps the pending patches it does not contain on top,
  /// and sends the host what it needs: log entries it missed, then the pending patches. An `Err`
  /// means the snapshot is not a JSON object (the caller drops the connection).
  pub fn client_welcome(
    &self,
    version: u64,
    data: JsonText,
    applied: Vec<(u64, u64)>,
    to_host: Arc<dyn Link>,
  ) -> std::result::Result<(), String> {
    if !data.get().trim_start().starts_with('{') {
      return Err("the host's data is not an object".to_owned());
    }
    // JS gets the snapshot's text first and parses it while this thread parses it too: a join
    // costs one parse, not two in a row. Until the replica holds it, `patch()` waits. Text that
    // is not JSON fails both parses: JS keeps its data and this connection is dropped.
    let data = Arc::new(data);
    {
      let mut inner = self.inner.lock();
      inner.events.push_snapshot(version, data.clone());
      inner.welcome_len = data.get().len();
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
    let missed = inner
      .history
      .log
      .select(|origin, seq| !covered(origin, seq));
    let mut acks = Vec::new();
    inner.pending.retain(|patch| {
      let done = covered(self.origin, patch.seq);
      if done {
        acks.push(patch.seq);
      }
      !done
    });
    inner.data = parsed;
    inner.history.order.reset(version, applied);
    inner.history.log.clear();
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
      to_host.queue(&Message::Catchup { entries: missed });
    }
    for patch in inner.pending.iter() {
      to_host.queue(&patch_message(patch.seq, patch.hlc, &patch.update_text));
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
    let now = self.time.now_ms();
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
            // Any other ordered patch goes under the pending ones: applied where the replica
            // stands when it commutes with them, else by the full rebase.
            let changes: Vec<Change> =
              serde_json::from_str(changes.get()).map_err(|err| err.to_string())?;
            let under = if origin == self.origin {
              Under::Blocked
            } else {
              inner.pending.put_under(&changes, &mut inner.data)?
            };
            if let Under::Applied(here) = under {
              all.extend(here.unwrap_or(changes));
            } else {
              if !undone {
                all.extend(inner.undo_pending()?);
                undone = true;
              }
              apply_changes(&mut inner.data, &changes)?;
              all.extend(changes);
            }
          }
          if origin == self.origin {
            if !own_front {
              inner.pending.retain(|patch| patch.seq != seq);
            }
            settled.push(Settled::Accepted(seq));
          } else if inner.wants_received {
            let update = update.checked().map_err(|err| err.to_string())?;
            received.extend(Received::record(version, hlc, &update));
          }
          inner
            .history
            .record(version, origin, seq, hlc, update.get());
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
    inner.finish_receiving(undone, all, &received, settled);
    drop(guard);
    self.wake();
    Ok(())
  }

  /// The JS thread is about to receive and then drains by itself: wake-ups meanwhile are not
  /// sent. True when none was on its way, and then the caller must drain (or `nudge`).
  pub fn claim_wake(&self) -> bool {
    !self.woken.swap(true, Ordering::AcqRel)
  }

  fn wake(&self) {
    if !self.woken.swap(true, Ordering::AcqRel) {
      if let Some(waker) = self.waker.lock().as_ref() {
        waker();
      }
    }
  }
}

/// A verdict, with the changes as made here when they differ from its own.
type Decided = (Verdict, Option<Vec<Change>>);

impl Inner {
  /// After dropped document events: queues the snapshot that replaces them, first. Called before
  /// anything changes the document, so the snapshot holds exactly what the dropped events did.
  fn resync_events(&mut self) {
    if self.events.take_resync() {
      self.events.push_front(&Event::Snapshot {
        version: self.history.order.version(),
        data: Document::Value(&self.data),
        resync: true,
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

  /// Host: orders one client patch by the ordering rules, adding its changes to `all` and its
  /// record to `received` (when JS wants it), or says why it is rejected. A resend of an ordered
  /// patch (after a failover) is skipped: the client learnt of it from the snapshot.
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
    if self.history.order.is_ordered(origin, seq) {
      return Ok(());
    }
    self.clock.observe(&hlc, now);
    let parsed = self.parse_received(&update)?;
    let (version, changes) =
      match self
        .history
        .order
        .decide(origin, seq, hlc, &parsed, &mut self.data)
      {
        Verdict::Ordered { version, changes } => (version, changes),
        Verdict::Duplicate => return Ok(()),
        Verdict::Stale { path } => return Err(Error::StaleWrite { path }),
        Verdict::Refused(err) => return Err(err.into()),
      };
    if self.wants_received {
      received.extend(Received::record(version, hlc, &update));
    }
    self.audience.ordered(
      version,
      origin,
      seq,
      hlc,
      &update,
      &changes,
      &mut self.events,
    );
    all.extend(changes);
    Ok(())
  }

  /// Bridge: decides the log's entry at `version` (another origin's) on the document with the
  /// pending patches, when that gives what the full rebase would: `update` reads nothing they
  /// wrote but counters they increment, whose ordered values it is planned on, so it plans the
  /// same there, and its changes commute with them (see `pending`). `None`: nothing was
  /// decided, the caller rebases. With the verdict, the changes as made here when they differ
  /// from its own.
  fn decide_over_pending(
    &mut self,
    version: u64,
    origin: u64,
    seq: u64,
    hlc: Hlc,
    update: &Update,
  ) -> std::result::Result<Option<Decided>, String> {
    let Some(mut counters) = self.pending.unwritten(update, &self.data) else {
      return Ok(None);
    };
    let order = &mut self.history.order;
    let context = Context {
      now_ms: hlc.ms as i64,
    };
    Pending::swap(&mut self.data, &mut counters);
    let planned = order
      .admits(origin, seq, hlc, update)
      .then(|| update.plan(&self.data, &context).ok())
      .flatten();
    // A duplicate or a stale write is decided without the document; a refusal, and its
    // message, is the one the document without the pending patches gets.
    let decided = match planned {
      Some(changes) => Ok(changes),
      None => Err(order.decide_logged(version, origin, seq, hlc, update, &mut self.data)),
    };
    Pending::swap(&mut self.data, &mut counters);
    let changes = match decided {
      Ok(changes) => changes,
      Err(verdict) => return Ok(Some((verdict, None))),
    };
    let Under::Applied(here) = self.pending.put_under(&changes, &mut self.data)? else {
      return Ok(None);
    };
    order.accept_logged(version, origin, seq, hlc, update);
    Ok(Some((Verdict::Ordered { version, changes }, here)))
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
      let Ok(parsed) = self.parse_received(&entry.update) else {
        continue;
      };
      let (origin, seq, hlc) = (entry.origin, entry.seq, entry.hlc);
      match self
        .history
        .order
        .decide(origin, seq, hlc, &parsed, &mut self.data)
      {
        Verdict::Ordered { version, changes } => {
          if self.wants_received {
            received.extend(Received::record(version, hlc, &entry.update));
          }
          self.audience.ordered(
            version,
            origin,
            seq,
            hlc,
            &entry.update,
            &changes,
            &mut self.events,
          );
          all.extend(changes);
        }
        // Overwritten meanwhile by a newer write on this host: the newer one wins, as it would
        // have if both had reached one host. Marked as ordered, so it is not brought again.
        Verdict::Stale { .. } => self.history.order.mark_ordered(origin, seq),
        Verdict::Duplicate | Verdict::Refused(_) => {}
      }
    }
  }

  /// The end of taking a burst of ordered patches: the pending patches again on top (when they
  /// were undone), the changes and the received patches as one event, then the settlements.
  fn finish_receiving(
    &mut self,
    undone: bool,
    mut all: Vec<Change>,
    received: &[RawJson],
    settled: Vec<Settled>,
  ) {
    if undone {
      self.redo_pending(&mut all);
    }
    if !all.is_empty() || !received.is_empty() {
      let version = self.history.order.version();
      self.push_changes(version, all, received);
    }
    push_settled(self, settled);
  }

  /// A copy of the document without the pending patches.
  fn ordered_data(&mut self) -> std::result::Result<Value, String> {
    let mut data = self.data.clone();
    self.pending.revert(&mut data)?;
    Ok(data)
  }

  /// Reverts every pending patch, newest first; returns the changes that did it.
  fn undo_pending(&mut self) -> std::result::Result<Vec<Change>, String> {
    self.pending.undo(&mut self.data)
  }

  /// Applies every pending patch again, oldest first, appending their changes to `all`. One that
  /// no longer applies stays pending without effect: the host decides.
  fn redo_pending(&mut self, all: &mut Vec<Change>) {
    self.pending.redo(&mut self.data, all);
  }
}

impl History {
  /// Client: notes an ordered patch: version, the origin's progress and the log.
  fn record(&mut self, version: u64, origin: u64, seq: u64, hlc: Hlc, update: &str) {
    self.order.record(version, origin, seq);
    self.log.push(version, origin, seq, hlc, update);
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
      resync: false,
    });
    inner.data = data;
    inner.history.order.set_version(version);
    let mut redone = Vec::new();
    inner.redo_pending(&mut redone);
    if !redone.is_empty() {
      inner.push_changes(version, redone, &[]);
    }
    drop(guard);
    self.wake();
  }

  /// Bridge: starts again from `data` with the rules' state `progress`, as every replica
  /// reading the log from there does: a snapshot of the log, or its first document when the log no
  /// longer holds what this replica read (Redis failed over to a replica that lacked the last
  /// entries). The own pending patches stay on top; the local clients are let go, so that they
  /// join again (on this document) and resend theirs.
  pub fn rejoin(&self, data: Value, progress: Progress) {
    let version = progress.version;
    let mut guard = self.inner.lock();
    let inner = &mut *guard;
    inner.audience.followers.close_all();
    inner.history.order = Order::from_progress(progress);
    inner.history.log.clear();
    inner.pending.forget_effects();
    inner.events.push(&Event::Snapshot {
      version,
      data: Document::Value(&data),
      resync: false,
    });
    inner.data = data;
    let mut redone = Vec::new();
    inner.redo_pending(&mut redone);
    if !redone.is_empty() {
      inner.push_changes(version, redone, &[]);
    }
    drop(guard);
    self.wake();
  }

  /// Bridge: takes the rules' state `progress`, computed from the log at this replica's version
  /// (a client never kept the stale-write window): a new local host's verdicts then agree with
  /// the other machines'. An `Err` when the versions differ.
  pub fn adopt_progress(&self, progress: Progress) -> std::result::Result<(), String> {
    let mut inner = self.inner.lock();
    let version = inner.history.order.version();
    if progress.version != version {
      return Err(format!(
        "the log's state is at version {}, this replica at {version}",
        progress.version
      ));
    }
    inner.history.order = Order::from_progress(progress);
    Ok(())
  }

  /// Bridge: a copy of the ordered document, without the pending patches, and the rules' state
  /// at its version: what a snapshot of the log holds.
  pub fn log_state(&self) -> std::result::Result<(Value, Progress), String> {
    let mut inner = self.inner.lock();
    Ok((inner.ordered_data()?, inner.history.order.progress()))
  }

  /// A copy of the ordered document, without the pending patches, and its version: what the
  /// file holds. (A host has pending patches only once it has stopped ordering.)
  pub fn ordered_snapshot(&self) -> std::result::Result<(Value, u64), String> {
    let mut inner = self.inner.lock();
    Ok((inner.ordered_data()?, inner.history.order.version()))
  }

  /// A copy of the value at the dotted `path` (`""`: the whole document), `None` when nothing
  /// is there.
  pub fn read(&self, path: &str) -> Option<Value> {
    crate::patch::value_at(&self.inner.lock().data, path).cloned()
  }

  /// Tells `tap` of each patch this instance orders as host, until it goes offline: the host's
  /// services register before the instance becomes host, so they miss nothing it orders.
  pub fn tap(&self, tap: Box<dyn Tap>) {
    self.inner.lock().audience.taps.push(tap);
  }

  /// [`Replica::tap`] for the rest of the current host term only: `false` (and `tap` dropped)
  /// when this instance is not host.
  pub fn tap_if_host(&self, tap: Box<dyn Tap>) -> bool {
    let mut inner = self.inner.lock();
    if inner.role != Role::Host {
      return false;
    }
    inner.audience.taps.push(tap);
    true
  }

  /// Turns diagnostic lines ([`Replica::debug`]) on or off.
  pub fn set_debug(&self, on: bool) {
    self.debug.store(on, Ordering::Relaxed);
  }

  /// Queues a diagnostic line for JS (`NODE_DEBUG=memsync`), which tags it with the object's
  /// name and pid; `line` is called only while such lines are wanted.
  pub fn debug(&self, line: impl FnOnce() -> String) {
    if !self.debug.load(Ordering::Relaxed) {
      return;
    }
    let line = line();
    self.inner.lock().events.push(&Event::Debug(&line));
    self.wake();
  }

  /// Warns of a condition that weakens a guarantee (JS: a process warning with `code`).
  pub fn warn(&self, code: &str, message: &str) {
    self
      .inner
      .lock()
      .events
      .push(&Event::Warning { code, message });
    self.wake();
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

fn patch_message(seq: u64, hlc: Hlc, update: &RawJson) -> Message {
  Message::Patch {
    seq,
    hlc,
    update: update.clone(),
  }
}

/// Whether a host's frames queued so far survive it: a client has all of them, or none is
/// connected.
fn replicated_now(clients: &[Arc<dyn Link>]) -> bool {
  clients.is_empty() || clients.iter().any(|link| link.sent())
}

/// The tokens of `Event::Own` for a patch that changed something.
fn own_event(seq: u64, version: u64, changes: &[Change], queued: bool) -> String {
  Event::Own {
    seq,
    version,
    changes: Some(changes),
    queued,
  }
  .to_tokens()
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

#[cfg(test)]
mod tests {
  use crate::doc::json;

  use std::collections::VecDeque;
  use std::sync::atomic::AtomicU64;

  use super::*;
  use crate::core::events::{nested, parse_events, MAX_EVENT_BACKLOG};
  use crate::core::link::Recorder;
  use crate::patch::tests::merged;
  use crate::patch::Key;

  /// A welcome as a host's transport makes one.
  fn welcome(version: u64, data: JsonText, applied: Vec<(u64, u64)>) -> Message {
    Message::Welcome {
      protocol: 0,
      host_pid: 0,
      version,
      data,
      applied,
    }
  }

  /// A host and one client wired by outboxes without sockets: frames are delivered only when a
  /// test says so, which lets it choose every interleaving.
  struct Network {
    host: Replica,
    client: Replica,
    to_client: Arc<Recorder>,
    to_host: Arc<Recorder>,
    /// Both replicas' clock, in epoch milliseconds: it moves only when a test says so.
    now: Arc<AtomicU64>,
  }

  /// The document and its version, as JSON text `[version, data]`.
  fn snapshot(replica: &Replica) -> String {
    let inner = replica.inner.lock();
    serde_json::to_string(&(inner.history.order.version(), &inner.data)).unwrap()
  }

  const HOST: u64 = 1;
  const CLIENT: u64 = 2;

  impl Network {
    fn new(data: Value) -> Network {
      let now = Arc::new(AtomicU64::new(1_000_000));
      let clock = now.clone();
      let time = Time::from_fn(move || clock.load(Ordering::Relaxed));
      let host = Replica::with_time("t", data, HOST, time.clone()).unwrap();
      host.become_host();
      let client = Replica::with_time("t", json!({"ignored": true}), CLIENT, time).unwrap();
      let network = Network {
        host,
        client,
        now,
        to_client: Recorder::new(),
        to_host: Recorder::new(),
      };
      assert!(network
        .host
        .attach_client(7, CLIENT, network.to_client.clone(), welcome));
      let mut frames = network.to_client.take().into_iter();
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

    /// Moves both replicas' clock forward.
    fn advance(&self, ms: u64) {
      self.now.fetch_add(ms, Ordering::Relaxed);
    }

    /// Delivers everything the client sent to the host, as one burst.
    fn deliver_to_host(&mut self) {
      let burst = self.to_host.take();
      self
        .host
        .host_receive(CLIENT, burst, &*self.to_client)
        .unwrap();
    }

    /// Delivers everything the host sent to the client.
    fn deliver_to_client(&mut self) {
      let batch = self.to_client.take();
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
    assert_eq!(replica.drain(), r#"["role",1,"host"]"#);
    assert_eq!(replica.patch("{}").unwrap(), r#"["o",0,0,0,-1]"#);
    assert_eq!(
      replica.patch(r#"{"$inc":{"n":2}}"#).unwrap(),
      r#"["o",1,1,0,1,"s",1,"n",3]"#
    );
    assert_eq!(snapshot(&replica), r#"[1,{"n":3}]"#);
  }

  #[test]
  fn what_the_direct_write_check_reads_follows_the_events_that_lead_to_it() {
    let replica = Replica::new("a", json!({ "n": 1 }), HOST).unwrap();
    replica.become_host();
    assert_eq!(
      replica.drain_for_check(true),
      r#"["role",1,"host","d",1,{"n":1}]"#
    );
    replica.patch(r#"{"$inc":{"n":2}}"#).unwrap();
    assert_eq!(replica.drain_for_check(true), r#"["d",1,{"n":3}]"#);
    let [a, b] = digest(&json!({ "n": 3 }));
    assert_eq!(
      replica.drain_for_check(false),
      format!(r#"["h",2,{a},{b}]"#)
    );
  }

  #[test]
  fn an_ordered_patch_whose_texts_are_not_json_fails_where_they_are_read() {
    let replica = Replica::new("a", json!({ "n": 1 }), 2).unwrap();
    let ordered = |version, update: &str, changes: &str| Message::Ordered {
      version,
      origin: 9,
      seq: version,
      hlc: Hlc::default(),
      update: JsonText::from(update.to_owned()),
      changes: JsonText::from(changes.to_owned()),
    };
    assert!(replica
      .client_receive(vec![ordered(1, "{}", "[x]")])
      .is_err());
    // The update is only stored, unless JS wants the records of received patches.
    let changes = r#"[["s",["n"],2]]"#;
    assert!(replica
      .client_receive(vec![ordered(1, "{x}", changes)])
      .is_ok());
    replica.set_wants_received(true);
    assert!(replica
      .client_receive(vec![ordered(2, "{x}", changes)])
      .is_err());
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
      nested(&replica.patch(r#"{"$inc":{"n":1}}"#).unwrap()),
      r#"[["o",1,0,[["s",["n"],1]],0]]"#
    );
    assert_eq!(replica.version(), 0);
    replica.become_host();
    assert_eq!(replica.drain(), r#"["a",2,1,1,"role",1,"host"]"#);
    assert_eq!(snapshot(&replica), r#"[1,{"n":1}]"#);
  }

  #[test]
  fn replicas_reading_one_log_in_any_chunks_decide_alike_and_settle_their_own_patches() {
    let entry = |version, origin, seq, ms, update: Value| LogEntry {
      version,
      origin,
      seq,
      hlc: Hlc { ms, counter: 0 },
      update: RawJson::to(&update).unwrap(),
    };
    let log = vec![
      entry(1, 1, 1, 10, json!({ "$inc": { "n": 1 } })),
      entry(2, 3, 1, 11, json!({ "$inc": { "s": 1 } })),
      entry(3, 2, 1, 12, json!({ "$set": { "s": "b" } })),
      entry(4, 3, 2, 13, json!({ "$inc": { "n": 10 } })),
    ];
    let start = json!({ "n": 0, "s": "x" });
    let a = Replica::new("log", start.clone(), 1).unwrap();
    let b = Replica::new("log", start, 2).unwrap();
    a.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    b.patch(r#"{"$set":{"s":"b"}}"#).unwrap();
    a.drain();
    b.drain();
    let refused_a = a.log_receive(log.clone()).unwrap();
    let mut refused_b = b.log_receive(log[..2].to_vec()).unwrap();
    // A chunk that repeats what was read is read from where it left off.
    refused_b.extend(b.log_receive(log[1..].to_vec()).unwrap());
    for (replica, refused) in [(&a, refused_a), (&b, refused_b)] {
      assert_eq!(snapshot(replica), r#"[4,{"n":11,"s":"b"}]"#);
      let refused: Vec<(u64, u64, &str)> = refused
        .iter()
        .map(|(origin, seq, err)| (*origin, *seq, err.code()))
        .collect();
      assert_eq!(refused, [(3, 1, "ERR_TYPE_MISMATCH")]);
      assert!(
        nested(&replica.drain()).contains(r#"["A",[1]]"#),
        "its own patch is accepted"
      );
    }
    let gap = a.log_receive(vec![entry(6, 3, 3, 14, json!({ "$inc": { "n": 1 } }))]);
    assert_eq!(gap, Err("the log jumps from version 4 to 6".to_owned()));
  }

  #[test]
  fn an_own_patch_the_log_refuses_is_rolled_back_under_the_entries_before_it() {
    let a = Replica::new("log", json!({ "n": 0 }), 1).unwrap();
    a.patch(r#"{"$set":{"m":1}}"#).unwrap();
    a.drain();
    let entries = vec![
      LogEntry {
        version: 1,
        origin: 3,
        seq: 1,
        hlc: Hlc { ms: 50, counter: 0 },
        update: RawJson::to(&json!({ "$set": { "m": 2 } })).unwrap(),
      },
      LogEntry {
        version: 2,
        origin: 1,
        seq: 1,
        hlc: Hlc { ms: 40, counter: 0 },
        update: RawJson::to(&json!({ "$set": { "m": 1 } })).unwrap(),
      },
    ];
    assert!(a.log_receive(entries).unwrap().is_empty());
    assert_eq!(snapshot(&a), r#"[2,{"n":0,"m":2}]"#, "the newer write wins");
    assert!(nested(&a.drain()).contains(r#"["x",1,"ERR_STALE_WRITE""#));
  }

  /// A proposer that keeps what it is given, as log entries would carry it.
  #[derive(Default)]
  struct Proposals(parking_lot::Mutex<Vec<(u64, u64, Hlc, RawJson)>>);

  impl Proposer for Proposals {
    fn propose(&self, origin: u64, seq: u64, hlc: Hlc, update: &RawJson) {
      self.0.lock().push((origin, seq, hlc, update.clone()));
    }

    fn propose_lock(&self, _: crate::core::locks::LockOp) {}
  }

  impl Proposals {
    /// What was proposed since the last call, as the log would order it from `version` + 1.
    fn ordered_from(&self, version: u64) -> Vec<LogEntry> {
      std::mem::take(&mut *self.0.lock())
        .into_iter()
        .zip(version + 1..)
        .map(|((origin, seq, hlc, update), version)| LogEntry {
          version,
          origin,
          seq,
          hlc,
          update,
        })
        .collect()
    }
  }

  #[test]
  fn a_bridge_proposes_every_patch_and_relays_what_the_log_orders_to_its_clients() {
    let bridge = Replica::new("bridged", json!({ "n": 0 }), HOST).unwrap();
    bridge.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    let proposals = Arc::new(Proposals::default());
    bridge.become_bridge(proposals.clone());
    let client = Recorder::new();
    assert!(bridge.attach_client(7, CLIENT, client.clone(), welcome));
    let Some(Message::Welcome {
      version,
      data: welcomed,
      ..
    }) = client.take().into_iter().next()
    else {
      panic!("no welcome");
    };
    assert_eq!(
      (version, welcomed.get()),
      (0, r#"{"n":0}"#),
      "without the pending patch"
    );
    let update = RawJson::to(&json!({ "$inc": { "n": 10 } })).unwrap();
    let hlc = Hlc { ms: 5, counter: 0 };
    let patch = Message::Patch {
      seq: 1,
      hlc,
      update,
    };
    let push = Message::Patch {
      seq: 2,
      hlc,
      update: RawJson::to(&json!({ "$push": { "n": 1 } })).unwrap(),
    };
    bridge
      .host_receive(CLIENT, vec![patch, push], &*client)
      .unwrap();
    bridge.patch(r#"{"$inc":{"n":100}}"#).unwrap();
    assert_eq!(bridge.version(), 0, "a bridge orders nothing itself");
    assert_eq!(
      data(&bridge),
      json!({ "n": 101 }),
      "its own patches show at once"
    );
    bridge.drain();
    let log = proposals.ordered_from(0);
    let proposed: Vec<(u64, u64)> = log.iter().map(|e| (e.origin, e.seq)).collect();
    assert_eq!(proposed, [(HOST, 1), (CLIENT, 1), (CLIENT, 2), (HOST, 2)]);
    assert!(bridge.log_receive(log).unwrap().is_empty());
    assert_eq!(snapshot(&bridge), r#"[4,{"n":111}]"#);
    assert!(nested(&bridge.drain()).contains(r#"["A",[1,2]]"#));
    let relayed: Vec<String> = client
      .take()
      .into_iter()
      .map(|message| match message {
        Message::Ordered {
          version, changes, ..
        } => format!("{version} {}", changes.get()),
        Message::Rejected { seq, code, .. } => format!("rejected {seq} {code}"),
        other => panic!("{other:?}"),
      })
      .collect();
    assert_eq!(
      relayed,
      [
        r#"1 [["s",["n"],1]]"#,
        r#"2 [["s",["n"],11]]"#,
        "rejected 2 ERR_TYPE_MISMATCH",
        r#"4 [["s",["n"],111]]"#,
      ],
      "the clients apply the changes the bridge computed on the log's base, and hear of their \
       refused patches in log order"
    );
  }

  #[test]
  fn a_bridge_that_rejoins_takes_the_logs_state_keeps_its_pending_patch_and_lets_its_clients_go() {
    let bridge = Replica::new("rejoined", json!({ "n": 0 }), HOST).unwrap();
    let proposals = Arc::new(Proposals::default());
    bridge.become_bridge(proposals.clone());
    let client = Recorder::new();
    assert!(bridge.attach_client(7, CLIENT, client.clone(), welcome));
    bridge.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    assert!(bridge
      .log_receive(proposals.ordered_from(0))
      .unwrap()
      .is_empty());
    bridge.patch(r#"{"$inc":{"n":10}}"#).unwrap();
    bridge.drain();
    // The log's state elsewhere: another document, at version 5, where this origin's patch 1 is
    // ordered and patch 2 is not.
    let progress = Progress {
      version: 5,
      applied: vec![(HOST, 1), (CLIENT, 3)],
      write_times: Vec::new(),
    };
    bridge.rejoin(json!({ "n": 100 }), progress.clone());
    assert!(
      client.is_closed(),
      "its clients join again, on the new document"
    );
    assert_eq!(bridge.version(), 5);
    assert_eq!(
      data(&bridge),
      json!({ "n": 110 }),
      "the pending patch on top"
    );
    let events = bridge.drain();
    assert!(
      events.starts_with(r#"["r",3,5,{"n":100},false"#),
      "{events}"
    );
    let (ordered, state) = bridge.log_state().unwrap();
    assert_eq!(ordered, json!({ "n": 100 }));
    assert_eq!(state.version, 5);
    // The pending patch is proposed again by the transport (its `Outgoing`), and settles here.
    let resent = LogEntry {
      version: 6,
      origin: HOST,
      seq: 2,
      hlc: Hlc { ms: 1, counter: 0 },
      update: RawJson::to(&json!({ "$inc": { "n": 10 } })).unwrap(),
    };
    assert!(bridge.log_receive(vec![resent]).unwrap().is_empty());
    assert_eq!(snapshot(&bridge), r#"[6,{"n":110}]"#);
  }

  #[test]
  fn a_joining_client_takes_the_hosts_data() {
    let network = Network::new(json!({ "n": 5 }));
    assert_eq!(data(&network.client), json!({ "n": 5 }));
    let events = network.client.drain();
    assert!(events.starts_with(r#"["r",3,0,null,false"#), "{events}");
    let snapshot = network.client.take_snapshot().expect("the host's document");
    assert_eq!(snapshot.get(), r#"{"n":5}"#);
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
      r#"["A",2,1,2,"x",3,3,"ERR_STALE_WRITE","stale","A",1,4]"#
    );
  }

  #[test]
  fn an_own_patch_ordered_first_needs_no_rebase() {
    let mut network = Network::new(json!({ "list": [] }));
    network.client.drain();
    network.client.patch(r#"{"$push":{"list":"b"}}"#).unwrap();
    network.deliver_to_host();
    network.deliver_to_client();
    assert_eq!(network.client.drain(), r#"["A",1,1]"#);
    network.assert_converged();
  }

  /// A network on `before` whose client made `mine` patches, then the host `theirs`, which the
  /// client receives: JS hears `heard` of it, and the client's data is `after`.
  fn ordered_under(
    before: Value,
    mine: (&str, usize),
    theirs: (&str, usize),
    heard: &str,
    after: Value,
  ) -> Network {
    let mut network = Network::new(before);
    network.client.drain();
    for _ in 0..mine.1 {
      network.client.patch(mine.0).unwrap();
    }
    for _ in 0..theirs.1 {
      network.host.patch(theirs.0).unwrap();
    }
    network.deliver_to_client();
    assert_eq!(nested(&network.client.drain()), heard);
    assert_eq!(data(&network.client), after);
    network
  }

  #[test]
  fn a_patch_on_other_paths_goes_under_the_pending_ones_without_moving_them() {
    // JS hears of the other patch alone.
    let mut network = ordered_under(
      json!({ "mine": 0, "theirs": 0 }),
      (r#"{"$inc":{"mine":1}}"#, 3),
      (r#"{"$inc":{"theirs":1}}"#, 1),
      r#"[["c",1,[["s",["theirs"],1]],[]]]"#,
      json!({ "mine": 3, "theirs": 1 }),
    );
    network.deliver_to_host();
    network.deliver_to_client();
    network.assert_converged();
  }

  #[test]
  fn an_increment_of_a_counter_goes_under_pending_increments_of_it_without_moving_them() {
    // JS hears of the counter's new value.
    let mut network = ordered_under(
      json!({ "hits": 0, "other": 1 }),
      (r#"{"$inc":{"hits":1}}"#, 100),
      (r#"{"$inc":{"hits":2}}"#, 3),
      r#"[["c",3,[["s",["hits"],106]],[]]]"#,
      json!({ "hits": 106, "other": 1 }),
    );
    let set = |value: i64| Change::Set {
      path: vec![Key::Field("hits".into())],
      value: json!(value),
    };
    {
      let inner = network.client.inner.lock();
      assert_eq!(inner.pending.undone, 0, "no pending patch was undone");
      let oldest = &inner.pending.records()[0];
      assert_eq!(
        format!("{oldest:?}"),
        format!("{:?}", (vec![set(7)], Some(vec![set(6)]))),
        "the oldest one's records are the rebased ones"
      );
    }
    network.deliver_to_host();
    network.deliver_to_client();
    network.assert_converged();
    assert_eq!(data(&network.client), json!({ "hits": 106, "other": 1 }));
    assert_eq!(network.client.inner.lock().pending.undone, 0);
  }

  #[test]
  fn the_index_counts_a_pending_patch_only_once_a_patch_received_must_go_under_it() {
    let mut network = Network::new(json!({ "mine": 0, "theirs": 0 }));
    network.client.drain();
    let counted = |network: &Network| network.client.inner.lock().pending.counted();
    // Awaited one at a time: acknowledged before anything reads the index.
    for _ in 0..3 {
      network.client.patch(r#"{"$inc":{"mine":1}}"#).unwrap();
      network.deliver_to_host();
      network.deliver_to_client();
      assert_eq!(counted(&network), (0, false));
    }
    network.client.patch(r#"{"$inc":{"mine":1}}"#).unwrap();
    network.host.patch(r#"{"$inc":{"theirs":1}}"#).unwrap();
    network.deliver_to_client();
    assert_eq!(
      counted(&network),
      (1, true),
      "counted in to let the host's patch under it"
    );
    assert_eq!(network.client.inner.lock().pending.undone, 0);
    network.client.patch(r#"{"$inc":{"mine":1}}"#).unwrap();
    assert_eq!(
      counted(&network),
      (1, true),
      "the newer patch waits to be counted"
    );
    network.deliver_to_host();
    network.deliver_to_client();
    assert_eq!(
      counted(&network),
      (0, false),
      "counted out as each was acknowledged"
    );
    network.assert_converged();
    assert_eq!(data(&network.client), json!({ "mine": 5, "theirs": 1 }));
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
    let rebase = r#"["c",2,0,3,"p",1,"list",0,1,[],"p",1,"list",0,0,["a"],"p",1,"list",1,0,["b"],"#;
    assert!(events.starts_with(rebase), "{events}");
    assert!(events.ends_with(r#""A",1,1]"#), "{events}");
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
    let events = nested(&network.client.drain());
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
    let events = nested(&network.client.drain());
    assert!(events.contains(r#"["x",1,"ERR_TYPE_MISMATCH""#), "{events}");
    assert_eq!(data(&network.client), json!({ "v": "text" }));
  }

  #[test]
  fn an_older_overwrite_than_an_accepted_write_is_stale() {
    let mut network = Network::new(json!({ "x": 0 }));
    network.client.drain();
    network.client.patch(r#"{"$set":{"x":"old"}}"#).unwrap();
    // The host's write is stamped later than the client's, and ordered first.
    network.advance(2);
    network.host.patch(r#"{"$set":{"x":"new"}}"#).unwrap();
    network.deliver_to_host();
    network.deliver_to_client();
    assert_eq!(data(&network.client), json!({ "x": "new" }));
    let events = nested(&network.client.drain());
    assert!(events.contains(r#"["x",1,"ERR_STALE_WRITE""#), "{events}");
    network.assert_converged();
  }

  #[test]
  fn accumulating_operators_are_never_stale() {
    let mut network = Network::new(json!({ "n": 0 }));
    network.client.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    network.advance(2);
    network.host.patch(r#"{"$set":{"n":10}}"#).unwrap();
    network.deliver_to_host();
    network.deliver_to_client();
    assert_eq!(data(&network.client), json!({ "n": 11 }));
    network.assert_converged();
  }

  #[tokio::test]
  async fn a_host_patch_is_replicated_once_any_client_has_its_frames_or_none_can() {
    use futures_util::FutureExt;
    let host = Replica::new("t", json!({ "n": 0 }), 1).unwrap();
    host.become_host();
    host.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    assert!(host.flush(), "no client: nothing to wait for");
    let (slow, fast) = (Recorder::new(), Recorder::new());
    assert!(host.attach_client(1, CLIENT, slow.clone(), welcome));
    assert!(host.attach_client(2, CLIENT + 1, fast.clone(), welcome));
    let within = |wait| tokio::time::timeout(std::time::Duration::from_secs(5), wait);

    slow.hold();
    fast.hold();
    host.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    assert!(!host.flush(), "both sockets are full");
    let mut replicated = std::pin::pin!(host.replicated());
    assert!((&mut replicated).now_or_never().is_none());
    fast.release(true);
    within(replicated)
      .await
      .expect("one client has it, the other still held");

    fast.hold();
    host.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    assert!(!host.flush());
    let mut replicated = std::pin::pin!(host.replicated());
    slow.release(false);
    assert!(
      (&mut replicated).now_or_never().is_none(),
      "one connection ended, the other may still get it"
    );
    fast.release(false);
    within(replicated).await.expect("both connections ended");

    fast.release(true);
    assert!(host.flush(), "a client has everything");
  }

  #[test]
  fn a_new_host_gets_the_entries_it_missed_and_no_patch_twice() {
    let mut network = Network::new(json!({ "list": [] }));
    network.client.patch(r#"{"$push":{"list":"c1"}}"#).unwrap();
    network.deliver_to_host();
    network.deliver_to_client();
    // A second client that missed the last ordered entry becomes the new host.
    let new_host = Replica::new("t", json!({}), 3).unwrap();
    let empty = JsonText::from(r#"{"list":[]}"#.to_owned());
    let unused = Recorder::new();
    new_host
      .client_welcome(0, empty, Vec::new(), unused)
      .unwrap();
    new_host.become_host();
    let to_client = Recorder::new();
    assert!(new_host.attach_client(1, CLIENT, to_client.clone(), welcome));
    let Some(Message::Welcome {
      version,
      data: welcome_data,
      applied,
      ..
    }) = to_client.take().into_iter().next()
    else {
      panic!("not a welcome");
    };
    let to_new_host = Recorder::new();
    network
      .client
      .client_welcome(version, welcome_data, applied, to_new_host.clone())
      .unwrap();
    new_host
      .host_receive(CLIENT, to_new_host.take(), &*to_client)
      .unwrap();
    network.client.client_receive(to_client.take()).unwrap();
    assert_eq!(data(&new_host), json!({ "list": ["c1"] }));
    assert_eq!(snapshot(&new_host), snapshot(&network.client));
  }

  /// A host's right to order that a test revokes.
  struct Switch(AtomicBool);

  impl Fence for Switch {
    fn holds(&self) -> bool {
      self.0.load(Ordering::Relaxed)
    }
  }

  #[test]
  fn a_fenced_host_orders_nothing_and_hands_the_new_host_its_own_patches_once() {
    let network = Network::new(json!({ "list": [] }));
    let fence = Arc::new(Switch(AtomicBool::new(true)));
    network.host.inner.lock().lease = Some(fence.clone());
    network.host.patch(r#"{"$push":{"list":"h1"}}"#).unwrap();
    // The host is stopped before its client reads `h1`; the client replaces it.
    let new_host = &network.client;
    new_host.become_host();
    // Resumed, the old host learns that it was replaced, and its next patch is not ordered: it
    // stays pending.
    fence.0.store(false, Ordering::Relaxed);
    let events = nested(&network.host.patch(r#"{"$push":{"list":"h2"}}"#).unwrap());
    // Version 0: not ordered yet.
    assert!(events.starts_with(r#"[["o",2,0,"#), "{events}");
    assert_eq!(network.host.version(), 1);
    // It steps down and joins the new host: `h1` goes as a missed entry, `h2` as a patch.
    network.host.go_offline();
    let to_old = Recorder::new();
    assert!(new_host.attach_client(9, HOST, to_old.clone(), welcome));
    let Some(Message::Welcome {
      version,
      data: welcome_data,
      applied,
      ..
    }) = to_old.take().into_iter().next()
    else {
      panic!("not a welcome");
    };
    let to_new_host = Recorder::new();
    network
      .host
      .client_welcome(version, welcome_data, applied, to_new_host.clone())
      .unwrap();
    new_host
      .host_receive(HOST, to_new_host.take(), &*to_old)
      .unwrap();
    network.host.client_receive(to_old.take()).unwrap();
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
    let events = parse_events(&network.client.patch(r#"{"$inc":{"n":100}}"#).unwrap());
    // The snapshot is taken before the patch applies: JS applies the patch once, on top of it.
    let kinds: Vec<&Value> = events.iter().map(|event| &event[0]).collect();
    assert_eq!(events[0][0], "r", "{kinds:?}");
    assert_eq!(events[0][2]["n"], json!(19));
    assert_eq!(
      events[0][3],
      json!(true),
      "JS learns that records were lost"
    );
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
    let tokens: Vec<Value> = serde_json::from_str(&replica.drain()).unwrap();
    assert_eq!(tokens[..3], [json!("edrop"), json!(1), json!(5)]);
    assert_eq!(
      tokens.len(),
      3 + 15 * 4,
      "the loss, then 15 events of 4 tokens"
    );
    // Drained: room again.
    let effects = Effects {
      events: vec![Event::Emit {
        event: "small".to_owned(),
        args: RawJson::to(&json!([])).unwrap(),
      }],
      flush: Vec::new(),
    };
    replica.apply(effects, false);
    assert_eq!(replica.drain(), r#"["e",2,"small",[]]"#);
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
      events.starts_with(r#"["r",3,7,{"n":10,"from":"file"},false,"c",7,0,1,"s",1,"n",11"#),
      "{events}"
    );
    replica.become_host();
    assert_eq!(snapshot(&replica), r#"[8,{"n":11,"from":"file"}]"#);
    assert_eq!(replica.ordered_snapshot().unwrap().1, 8);
  }

  /// The version and update of each patch a tap heard.
  type Records = Arc<Mutex<Vec<(u64, String)>>>;

  /// A tap that records what it hears, and stops listening once it heard `limit` patches.
  struct Heard {
    records: Records,
    limit: usize,
  }

  impl Tap for Heard {
    fn ordered(&mut self, version: u64, _: Hlc, update: &RawJson) -> bool {
      let mut records = self.records.lock();
      records.push((version, update.get().to_owned()));
      records.len() < self.limit
    }
  }

  fn heard(limit: usize) -> (Box<Heard>, Records) {
    let records = Arc::new(Mutex::new(Vec::new()));
    let tap = Box::new(Heard {
      records: records.clone(),
      limit,
    });
    (tap, records)
  }

  #[test]
  fn taps_hear_every_ordered_patch_until_the_role_ends() {
    let mut network = Network::new(json!({ "n": 0 }));
    let (tap, records) = heard(usize::MAX);
    assert!(network.host.tap_if_host(tap));
    network.host.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    network.client.patch(r#"{"$set":{"by":"client"}}"#).unwrap();
    network.deliver_to_host();
    let expected = vec![
      (1, r#"{"$inc":{"n":1}}"#.to_owned()),
      (2, r#"{"$set":{"by":"client"}}"#.to_owned()),
    ];
    assert_eq!(*records.lock(), expected);
    network.host.go_offline();
    network.host.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    assert_eq!(*records.lock(), expected);
    assert!(!network.host.tap_if_host(heard(1).0), "not host");
  }

  #[test]
  fn a_tap_registered_before_the_role_hears_it_until_it_stops_listening() {
    let host = Replica::new("a", json!({ "n": 0 }), HOST).unwrap();
    let (tap, records) = heard(2);
    host.tap(tap);
    host.become_host();
    for _ in 0..3 {
      host.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    }
    assert_eq!(records.lock().len(), 2);
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

  /// What JS holds and hears from a replica: the document its change lists build, the patches
  /// it is told of (`receivedPatches`), and every other event, in order.
  #[derive(Default, Debug, PartialEq)]
  struct Listener {
    data: String,
    received: Vec<Value>,
    events: Vec<Value>,
  }

  impl Listener {
    /// Takes events as `patch()` or `drain()` of `replica` hands them to JS.
    fn hear(&mut self, replica: &Replica, events: &str) {
      let events = parse_events(events);
      let mut data: Value = serde_json::from_str(&self.data).unwrap_or(Value::Null);
      for event in events {
        let at = match event[0].as_str() {
          Some("r") if event[2].is_null() => {
            let text = replica.take_snapshot().expect("the snapshot's document");
            data = serde_json::from_str(text.get()).unwrap();
            continue;
          }
          Some("r") => {
            data = event[2].clone();
            continue;
          }
          Some("o") => 3,
          Some("c") => 2,
          _ => {
            self.events.push(event);
            continue;
          }
        };
        if !event[at].is_null() {
          let changes: Vec<Change> =
            serde_json::from_value(serde_json::Value::from(&event[at])).unwrap();
          apply_changes(&mut data, &changes).unwrap();
        }
        match event[0].as_str() {
          Some("c") => self
            .received
            .extend(event[3].as_array().unwrap().iter().cloned()),
          _ => self.events.push(event),
        }
      }
      self.data = serde_json::to_string(&data).unwrap();
    }
  }

  /// A replica's document (its text: key order counts) and pending patches' records.
  fn state(replica: &Replica) -> String {
    let inner = replica.inner.lock();
    let pending: Vec<String> = inner
      .pending
      .iter()
      .zip(inner.pending.records())
      .map(|(patch, (changes, undo))| {
        format!(
          "{} {changes:?} {undo:?} {:?}",
          patch.seq,
          patch.failure.as_ref().map(ToString::to_string)
        )
      })
      .collect();
    format!(
      "{} {} {pending:?}",
      inner.history.order.version(),
      serde_json::to_string(&inner.data).unwrap()
    )
  }

  /// Twin replicas, one that takes patches ordered elsewhere under its pending ones when they
  /// commute, one that always rebases in full: everything each holds and tells must agree.
  struct Twins {
    fast: Replica,
    full: Replica,
    heard: [Listener; 2],
  }

  impl Twins {
    fn new(data: Value, origin: u64, time: &Time) -> Twins {
      let fast = Replica::with_time("t", data.clone(), origin, time.clone()).unwrap();
      let full = Replica::with_time("t", data.clone(), origin, time.clone()).unwrap();
      full.inner.lock().pending.full_rebase_only = true;
      for replica in [&fast, &full] {
        replica.set_wants_received(true);
      }
      let heard = || Listener {
        data: data.to_string(),
        ..Listener::default()
      };
      Twins {
        fast,
        full,
        heard: [heard(), heard()],
      }
    }

    fn both<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, f: impl Fn(&Replica) -> T) -> T {
      let (fast, full) = (f(&self.fast), f(&self.full));
      assert_eq!(fast, full, "{what}");
      fast
    }

    fn patch(&mut self, update: &str) {
      let events = self.both("a local patch", |replica| {
        replica.patch(update).map_err(|err| err.to_string())
      });
      let events = events.as_deref().unwrap_or("[]");
      self.heard[0].hear(&self.fast, events);
      self.heard[1].hear(&self.full, events);
    }

    fn check(&mut self, step: &str) {
      assert_eq!(state(&self.fast), state(&self.full), "after {step}");
      self.heard[0].hear(&self.fast, &self.fast.drain());
      self.heard[1].hear(&self.full, &self.full.drain());
      assert_eq!(self.heard[0], self.heard[1], "what JS hears after {step}");
      let inner = self.fast.inner.lock();
      let data = serde_json::to_string(&inner.data).unwrap();
      assert_eq!(self.heard[0].data, data, "JS's object after {step}");
    }
  }

  /// One step of a random exchange between a host and a client with patches in flight.
  #[derive(Debug, Clone)]
  enum Step {
    /// The client patches (its patch stays pending until the host orders it).
    Local(Value),
    /// Another process's patch, ordered by the host.
    Remote(Value),
    /// The host reads this many of the client's patches.
    ToHost(usize),
    /// The client reads this many of the host's messages, as one batch.
    ToClient(usize),
  }

  fn updates() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let path = prop::sample::select(vec![
      "a", "b", "c", "a.x", "a.y", "a.x.y", "b.x", "c.0", "c.1", "c.3", "c.$[]", "d.e", "_id", "n",
      "m", "a.0",
    ]);
    let value = prop_oneof![
      (-3i64..4).prop_map(Value::from),
      Just(json!(i64::MAX)),
      Just(json!(0.5)),
      Just(json!("s")),
      Just(Value::Null),
      Just(json!({ "x": 1 })),
      Just(json!([1, 2])),
    ];
    let op = prop_oneof![
      3 => (path.clone(), value.clone()).prop_map(|(p, v)| json!({ "$set": { p: v } })),
      4 => (path.clone(), -2i64..3).prop_map(|(p, n)| json!({ "$inc": { p: n } })),
      1 => (path.clone(), Just(0.5)).prop_map(|(p, n)| json!({ "$inc": { p: n } })),
      1 => (path.clone(), -2i64..3).prop_map(|(p, n)| json!({ "$mul": { p: n } })),
      1 => path.clone().prop_map(|p| json!({ "$unset": { p: "" } })),
      1 => (path.clone(), value.clone()).prop_map(|(p, v)| json!({ "$max": { p: v } })),
      2 => (path.clone(), value.clone()).prop_map(|(p, v)| json!({ "$push": { p: v } })),
      1 => (path.clone(), value.clone())
        .prop_map(|(p, v)| json!({ "$push": { p: { "$each": [v], "$position": 0, "$slice": 3 } } })),
      1 => (path.clone(), value.clone()).prop_map(|(p, v)| json!({ "$pull": { p: v } })),
      1 => (path.clone(), value.clone()).prop_map(|(p, v)| json!({ "$addToSet": { p: v } })),
      1 => path.clone().prop_map(|p| json!({ "$pop": { p: 1 } })),
      1 => (path.clone(), path.clone()).prop_map(|(a, b)| json!({ "$rename": { a: b } })),
      1 => (path.clone(), value).prop_map(|(p, v)| json!({ "$setOnInsert": { p: v } })),
    ];
    prop::collection::vec(op, 1..3).prop_map(merged)
  }

  /// Updates of a few counters, most of them increments by integers, which go under pending
  /// increments of the same field: near the limits of the integers (so that some sums overflow,
  /// here or under other patches), by doubles, and other writes of the same fields.
  fn counter_updates() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let path = prop::sample::select(vec!["n", "m", "a.x", "a"]);
    let number = prop_oneof![
      40 => (-3i64..4).prop_map(Value::from),
      1 => Just(json!(i64::MAX)),
      1 => Just(json!(i64::MIN)),
      1 => Just(json!(u64::MAX)),
      1 => Just(json!(1i64 << 62)),
      1 => Just(json!(-(1i64 << 62))),
      1 => Just(json!(0.5)),
    ];
    let op = prop_oneof![
      40 => (path.clone(), number.clone()).prop_map(|(p, n)| json!({ "$inc": { p: n } })),
      1 => (path.clone(), number.clone()).prop_map(|(p, v)| json!({ "$set": { p: v } })),
      1 => path.clone().prop_map(|p| json!({ "$unset": { p: "" } })),
      1 => (path.clone(), number.clone()).prop_map(|(p, v)| json!({ "$max": { p: v } })),
      1 => (path.clone(), number).prop_map(|(p, n)| json!({ "$mul": { p: n } })),
      1 => path.prop_map(|p| json!({ "$set": { p: "s" } })),
    ];
    prop::collection::vec(op, 1..3).prop_map(merged)
  }

  fn documents() -> impl proptest::strategy::Strategy<Value = Value> {
    proptest::sample::select(vec![
      json!({}),
      json!({ "n": 0, "m": 0 }),
      json!({ "_id": 1, "a": { "x": 1, "y": [1, 2] }, "b": 2, "c": [1, { "x": 1 }], "n": 5 }),
      json!({ "a": { "x": { "y": 1 } }, "b": { "x": "s" }, "c": [], "d": {} }),
    ])
  }

  fn counter_documents() -> impl proptest::strategy::Strategy<Value = Value> {
    proptest::sample::select(vec![
      json!({ "n": 0, "m": 5, "a": { "x": 1 } }),
      json!({ "n": i64::MAX - 2, "m": i64::MIN + 2, "a": { "x": u64::MAX - 1 } }),
      json!({ "n": -1, "m": i64::MAX, "a": { "x": i64::MIN } }),
      json!({ "n": 0.5, "a": {} }),
      json!({}),
    ])
  }

  fn steps<S: proptest::strategy::Strategy<Value = Value>>(
    updates: fn() -> S,
  ) -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
    use proptest::prelude::*;
    let step = prop_oneof![
      4 => updates().prop_map(Step::Local),
      3 => updates().prop_map(Step::Remote),
      1 => (1usize..4).prop_map(Step::ToHost),
      2 => (1usize..6).prop_map(Step::ToClient),
    ];
    prop::collection::vec(step, 1..40)
  }

  fn run_client_twins(data: Value, steps: Vec<Step>) {
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock = now.clone();
    let time = Time::from_fn(move || clock.load(Ordering::Relaxed));
    let host = Replica::with_time("t", data, HOST, time.clone()).unwrap();
    host.become_host();
    let mut twins = Twins::new(json!({}), CLIENT, &time);
    let (to_client, to_fast, to_full) = (Recorder::new(), Recorder::new(), Recorder::new());
    assert!(host.attach_client(7, CLIENT, to_client.clone(), welcome));
    let Some(Message::Welcome {
      version,
      data,
      applied,
      ..
    }) = to_client.take().pop()
    else {
      panic!("not a welcome");
    };
    twins
      .fast
      .client_welcome(version, data.clone(), applied.clone(), to_fast.clone())
      .unwrap();
    twins
      .full
      .client_welcome(version, data, applied, to_full.clone())
      .unwrap();
    twins.check("the welcome");
    let (mut outbox, mut inbox) = (VecDeque::new(), VecDeque::new());
    for step in steps {
      now.fetch_add(1, Ordering::Relaxed);
      match &step {
        Step::Local(update) => {
          let text = update.to_string();
          twins.patch(&text);
        }
        Step::Remote(update) => {
          let _ = host.patch(&update.to_string());
        }
        Step::ToHost(count) => {
          let burst: Vec<Message> = outbox.drain(..(*count).min(outbox.len())).collect();
          host.host_receive(CLIENT, burst, &*to_client).unwrap();
        }
        Step::ToClient(count) => {
          let batch: Vec<Message> = inbox.drain(..(*count).min(inbox.len())).collect();
          twins
            .both("a batch from the host", |replica| {
              replica.client_receive(batch.clone())
            })
            .unwrap();
        }
      }
      let (sent, reference) = (to_fast.take(), to_full.take());
      assert_eq!(
        format!("{sent:?}"),
        format!("{reference:?}"),
        "after {step:?}"
      );
      outbox.extend(sent);
      inbox.extend(to_client.take());
      twins.check(&format!("{step:?}"));
    }
  }

  /// A log ordered elsewhere (a Redis stream) read by twin bridges, with another machine's
  /// entries among their own.
  fn run_bridge_twins(data: Value, steps: Vec<Step>) {
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock = now.clone();
    let time = Time::from_fn(move || clock.load(Ordering::Relaxed));
    let mut twins = Twins::new(data, HOST, &time);
    let proposals = [
      Arc::new(Proposals::default()),
      Arc::new(Proposals::default()),
    ];
    let followers = [Recorder::new(), Recorder::new()];
    for (i, replica) in [&twins.fast, &twins.full].into_iter().enumerate() {
      replica.become_bridge(proposals[i].clone());
      assert!(replica.attach_client(7, CLIENT, followers[i].clone(), welcome));
    }
    twins.check("becoming bridges");
    let (mut own, mut log) = (VecDeque::new(), Vec::new());
    let (mut foreign_seq, mut read) = (0, 0);
    for step in steps {
      now.fetch_add(1, Ordering::Relaxed);
      match &step {
        Step::Local(update) => {
          let text = update.to_string();
          twins.patch(&text);
        }
        Step::Remote(update) => {
          // Another machine's patch, stamped a little in the past or the future, so that some
          // overwrites are stale.
          foreign_seq += 1;
          let ms = now.load(Ordering::Relaxed) + foreign_seq % 5 - 2;
          log.push((3, foreign_seq, Hlc { ms, counter: 0 }, raw(update)));
        }
        Step::ToHost(count) => {
          for _ in 0..*count {
            log.extend(own.pop_front());
          }
        }
        Step::ToClient(count) => {
          let end = (read + count).min(log.len());
          let entries: Vec<LogEntry> = log[read..end]
            .iter()
            .zip(read as u64 + 1..)
            .map(|((origin, seq, hlc, update), version)| LogEntry {
              version,
              origin: *origin,
              seq: *seq,
              hlc: *hlc,
              update: update.clone(),
            })
            .collect();
          read = end;
          twins
            .both("the verdicts on other machines' entries", |replica| {
              replica
                .log_receive(entries.clone())
                .map(|refused| format!("{refused:?}"))
            })
            .unwrap();
        }
      }
      let (mine, reference) = (
        proposals[0].0.lock().split_off(0),
        proposals[1].0.lock().split_off(0),
      );
      assert_eq!(
        format!("{mine:?}"),
        format!("{reference:?}"),
        "after {step:?}"
      );
      own.extend(mine);
      let (sent, reference) = (followers[0].take(), followers[1].take());
      assert_eq!(
        format!("{sent:?}"),
        format!("{reference:?}"),
        "to the clients after {step:?}"
      );
      twins.check(&format!("{step:?}"));
    }
  }

  fn raw(value: &Value) -> RawJson {
    RawJson::to(value).unwrap()
  }

  proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn patches_that_commute_go_under_the_pending_ones_as_the_full_rebase_would_put_them(
      data in documents(),
      steps in steps(updates),
    ) {
      run_client_twins(data, steps);
    }

    #[test]
    fn a_bridge_decides_the_logs_entries_over_its_pending_patches_as_the_full_rebase_would(
      data in documents(),
      steps in steps(updates),
    ) {
      run_bridge_twins(data, steps);
    }

    #[test]
    fn increments_of_a_counter_go_under_pending_ones_as_the_full_rebase_would_put_them(
      data in counter_documents(),
      steps in steps(counter_updates),
    ) {
      run_client_twins(data, steps);
    }

    #[test]
    fn a_bridge_decides_increments_over_its_pending_ones_as_the_full_rebase_would(
      data in counter_documents(),
      steps in steps(counter_updates),
    ) {
      run_bridge_twins(data, steps);
    }
  }
}
