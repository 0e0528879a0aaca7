//! What processes say to each other beside the document: RPC calls and their replies, the
//! events of `mem.events`, the writer limit (`peer.roles`, `network.maxWriters`) and
//! cross-process locks (`mem.lock`).
//!
//! [`Exchange`] is one instance's part of it. As a client it sends to the host and hands JS what
//! the host sends. As host it is the switchboard: it knows what each client offers (from its
//! `Hello`), routes a call to the process that registered the method and the reply back to the
//! caller, and forwards events to every other client.
//!
//! Routing: a caller's own process first (JS does that without coming here), then the host's
//! own table, then the oldest connected client that registered the method (never the caller).
//! The host gives every routed call its own id, so callers' ids never meet: a route is
//! `host id -> (caller and its id, callee)`. A callee whose connection ends fails every call
//! routed to it at once, with `ERR_RPC_PEER_LOST` ([`Error::CalleeLost`]).
//!
//! No sockets and no lock of its own: the replica keeps it behind a mutex, frames are queued in
//! the connections' [`Link`]s (the caller flushes them), and what JS must hear comes back as
//! [`Effects`]. Events for JS are
//! JSON arrays: `["call", id, method, args]` (run a function, answer with `reply`),
//! `["reply", id, error, result?]` (the outcome of an own call), `["e", event, args]`,
//! `["g", id]` (an own lock request is granted) and `["pong", id, pid]` (a ping's answer).
//!
//! Across machines (a bridge of a shared log): the other machines are known from their presence
//! ([`Machine`]), each with a link for the calls and replies sent to it and one link for the
//! events sent to all. A call no process of this machine offers is routed to the first machine
//! that does; a call from another machine is only ever routed to a process of this one, so a
//! call cannot go round. A machine that is no longer present fails the calls routed to it with
//! `ERR_RPC_PEER_LOST`.
//!
//! Locks across machines: a bridge's table is the log's. Its own requests and its clients' are
//! proposed to the log ([`Proposer::propose_lock`]), the owners being processes' origins, and
//! every bridge applies the log's lock changes in order ([`Exchange::logged_lock`]), so all
//! tables agree and a grant follows the releasing holder's patches. A bridge tells its own
//! processes of their grants.
//!
//! Locks: every process keeps its own requests (held or waiting) so that it can re-announce
//! them to a new host after a failover, with their original request time; the host's table is
//! [`LockTable`], its own process being the owner [`HOST`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Hlc, Time};
use crate::core::events::Event;
use crate::core::link::{Link, Proposer};
use crate::core::locks::{KeyState, LockOp, LockTable, Owner, Ticket, HOST};
use crate::core::message::{Message, PeerInfo, Process, RawJson, RemoteError};
use crate::error::Error;

/// The role that `network.maxWriters` counts.
const WRITER: &str = "writer";
/// How long a new host grants no lock, so that holders reconnecting after a failover re-announce
/// theirs before anyone else is served. A failover takes a few milliseconds; this leaves room
/// for a loaded machine.
pub const LOCK_GRACE: Duration = Duration::from_millis(300);
/// Bytes of events emitted while no host is reachable that are kept to send after the next
/// welcome; past it the oldest are dropped, so a process cut off for long cannot grow without
/// bound.
const OFFLINE_EMIT_BYTES: usize = 4 * 1024 * 1024;

/// What one operation leaves to do once the lock is released: events for JS, and connections
/// to flush.
#[derive(Default)]
pub struct Effects {
  /// Events for the JS side, in order.
  pub events: Vec<Event<'static>>,
  /// Connections with frames queued.
  pub flush: Vec<Arc<dyn Link>>,
}

impl Effects {
  fn send(&mut self, outbox: &Arc<dyn Link>, message: &Message) {
    if outbox.queue(message) && !self.flush.iter().any(|o| Arc::ptr_eq(o, outbox)) {
      self.flush.push(outbox.clone());
    }
  }
}

/// Who is waiting for a routed call's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
  /// The host's own JS, under its own id.
  Local(u64),
  /// A client connection, under the client's id.
  Client { conn: u64, id: u64 },
  /// Another machine, under its own id for the call.
  Machine { machine: u64, id: u64 },
}

/// Who runs a routed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callee {
  Local,
  Client(u64),
  Machine(u64),
}

#[derive(Debug, Clone, Copy)]
struct Route {
  caller: Caller,
  callee: Callee,
}

/// A connected client, as the host knows it.
struct Client {
  pid: u32,
  /// Its instance's id: the owner of its locks in a shared log's table.
  origin: u64,
  info: PeerInfo,
  /// `None` until its welcome is queued: nothing may reach it before that.
  outbox: Option<Arc<dyn Link>>,
}

enum Upstream {
  Offline,
  Client(Arc<dyn Link>),
  Host,
}

/// Another machine of a shared log, as its presence says.
pub struct Machine {
  /// Its id (its bridge's origin).
  pub id: u64,
  /// Its host name, for `getStatus()`.
  pub name: String,
  /// Where the calls and replies for it go.
  pub link: Arc<dyn Link>,
  /// Its processes.
  pub processes: Vec<Process>,
}

/// An own lock request.
struct OwnLock {
  key: String,
  since: Hlc,
  held: bool,
}

/// One instance's part in the exchange: its offer, its link, its own calls' routes and lock
/// requests, and (host) the clients, routes and lock table of the network.
pub struct Exchange {
  /// Where lock times are read (the replica's).
  time: Time,
  own: PeerInfo,
  /// Whether a host admitted this process (or it became host) since its `start()`.
  admitted: bool,
  link: Upstream,
  /// Host: the clients by connection id; the oldest first.
  clients: BTreeMap<u64, Client>,
  /// Host: calls in flight, by the host's id.
  routes: HashMap<u64, Route>,
  next_route: u64,
  /// Events emitted while offline, sent after the next welcome, with their sizes.
  offline_emits: VecDeque<(usize, Message)>,
  offline_bytes: usize,
  /// Own lock requests, held or waiting, by JS's id.
  own_locks: BTreeMap<u64, OwnLock>,
  /// Host: every process's locks.
  locks: LockTable,
  /// Client: the host's process id and what it offers, once it said.
  host: Option<(u32, PeerInfo)>,
  /// Client: how many clients the host has, as it last said.
  host_clients: u64,
  /// Bridge: where the events for every other machine go.
  everyone: Option<Arc<dyn Link>>,
  /// Bridge: the other machines, by id.
  machines: BTreeMap<u64, Machine>,
  /// Bridge: this instance's origin and where lock changes are proposed; the lock table is then
  /// the log's.
  log: Option<(u64, Arc<dyn Proposer>)>,
}

impl Exchange {
  /// Offline, offering nothing; lock times are read from `time`.
  pub fn new(time: Time) -> Exchange {
    Exchange {
      time,
      own: PeerInfo::default(),
      admitted: false,
      link: Upstream::Offline,
      clients: BTreeMap::new(),
      routes: HashMap::new(),
      next_route: 1,
      offline_emits: VecDeque::new(),
      offline_bytes: 0,
      own_locks: BTreeMap::new(),
      locks: LockTable::new(0),
      host: None,
      host_clients: 0,
      everyone: None,
      machines: BTreeMap::new(),
      log: None,
    }
  }

  /// Sets what this process offers (its RPC methods), announced in every `Hello`.
  pub fn configure(&mut self, own: PeerInfo) {
    self.own = own;
  }

  /// What this process offers, for its `Hello`.
  pub fn peer_info(&self) -> PeerInfo {
    PeerInfo {
      rejoining: self.admitted,
      ..self.own.clone()
    }
  }

  /// `start()` was called: the next host checks the writer limit afresh.
  pub fn starting(&mut self) {
    self.admitted = false;
  }

  /// Whether `message` is for this module rather than for the document.
  pub fn handles(message: &Message) -> bool {
    matches!(
      message,
      Message::Call { .. }
        | Message::Reply { .. }
        | Message::Emit { .. }
        | Message::Lock { .. }
        | Message::Unlock { .. }
        | Message::Granted { .. }
        | Message::Ping { .. }
        | Message::Pong { .. }
        | Message::Clients { .. }
    )
  }

  /// Became host: serves calls, events and locks from now on, granting no lock before
  /// `grace_until` (epoch ms) except those re-announced as held. Events emitted while offline
  /// reached this process's listeners already and nobody else is connected yet: they are
  /// dropped.
  pub fn become_host(&mut self, grace_until: u64) {
    self.link = Upstream::Host;
    self.admitted = true;
    self.offline_emits.clear();
    self.offline_bytes = 0;
    self.locks = LockTable::new(grace_until);
    for (&id, lock) in &self.own_locks {
      let ticket = Ticket { owner: HOST, id };
      if lock.held {
        self.locks.claim(ticket, &lock.key, lock.since, 0);
      } else {
        // Before `grace_until`: nothing is granted yet.
        self.locks.request(ticket, &lock.key, lock.since, 0);
      }
    }
  }

  /// Became the bridge of a shared log, as instance `origin`. The lock table is the log's, as
  /// the transport restored it ([`Exchange::restore_locks`], [`Exchange::logged_lock`]). Own
  /// requests are proposed again (one the log has already changes nothing), and own requests the
  /// log granted meanwhile are granted.
  pub fn become_bridge(&mut self, origin: u64, log: Arc<dyn Proposer>) -> Effects {
    self.link = Upstream::Host;
    self.admitted = true;
    self.offline_emits.clear();
    self.offline_bytes = 0;
    for (&id, lock) in &self.own_locks {
      log.propose_lock(LockOp::Request {
        ticket: Ticket { owner: origin, id },
        key: lock.key.clone(),
        since: lock.since,
      });
    }
    self.log = Some((origin, log));
    let mut effects = Effects::default();
    self.tell_own_holders(&mut effects);
    effects
  }

  /// Bridge: applies a lock change of the log and tells this machine's processes of their grants
  /// (none before it is the bridge: it then tells them when it becomes one).
  pub fn logged_lock(&mut self, op: LockOp) -> Effects {
    let mut effects = Effects::default();
    let grants = self.locks.apply(op);
    if self.log.is_some() {
      self.deliver_grants(grants, &mut effects);
    }
    effects
  }

  /// Bridge: the lock table, for a snapshot of the log.
  pub fn lock_state(&self) -> Vec<KeyState> {
    self.locks.export()
  }

  /// Bridge: the log's lock table is `keys` (from a snapshot; empty from the log's start). This
  /// machine's processes that hold a lock by it and were not told yet are told.
  pub fn restore_locks(&mut self, keys: Vec<KeyState>) -> Effects {
    let mut effects = Effects::default();
    self.locks = LockTable::import(keys);
    self.tell_own_holders(&mut effects);
    effects
  }

  /// Bridge: grants the own requests the log's table says this process holds.
  fn tell_own_holders(&mut self, effects: &mut Effects) {
    let Some(&(origin, _)) = self.log.as_ref() else {
      return;
    };
    let holders: Vec<Ticket> = self
      .own_locks
      .iter()
      .map(|(&id, lock)| (Ticket { owner: origin, id }, lock))
      .filter(|(ticket, lock)| !lock.held && self.locks.holder(&lock.key) == Some(*ticket))
      .map(|(ticket, _)| ticket)
      .collect();
    self.deliver_grants(holders, effects);
  }

  /// Bridge: the owners of the log's locks, for finding those whose process is gone.
  pub fn lock_owners(&self) -> Vec<Owner> {
    self.locks.owners()
  }

  /// Bridge: proposes that `owner`'s locks go (its process is gone).
  pub fn drop_lock_owner(&self, owner: Owner) {
    if let Some((_, log)) = &self.log {
      log.propose_lock(LockOp::Drop { owner });
    }
  }

  /// Host: the grace period after the election is over: grants what waited for free keys.
  pub fn end_grace(&mut self, now: u64) -> Effects {
    let mut effects = Effects::default();
    // A shared log's table has no grace period: it is never rebuilt by a new host.
    if matches!(self.link, Upstream::Host) && self.log.is_none() {
      let grants = self.locks.end_grace(now);
      self.deliver_grants(grants, &mut effects);
    }
    effects
  }

  /// JS asks for lock `key` under its id `id`, stamped `since`.
  pub fn lock(&mut self, id: u64, key: String, since: Hlc, now: u64) -> Effects {
    let mut effects = Effects::default();
    self.own_locks.insert(
      id,
      OwnLock {
        key: key.clone(),
        since,
        held: false,
      },
    );
    match &self.link {
      Upstream::Client(to_host) => {
        let to_host = to_host.clone();
        let message = Message::Lock {
          id,
          key,
          since,
          held: false,
        };
        effects.send(&to_host, &message);
      }
      Upstream::Host => match &self.log {
        Some((origin, log)) => log.propose_lock(LockOp::Request {
          ticket: Ticket { owner: *origin, id },
          key,
          since,
        }),
        None => {
          let grants = self
            .locks
            .request(Ticket { owner: HOST, id }, &key, since, now);
          self.deliver_grants(grants, &mut effects);
        }
      },
      // Sent to the next host when it welcomes us.
      Upstream::Offline => {}
    }
    effects
  }

  /// JS releases its lock `id`, or gives up waiting for it.
  pub fn unlock(&mut self, id: u64, now: u64) -> Effects {
    let mut effects = Effects::default();
    if self.own_locks.remove(&id).is_none() {
      return effects;
    }
    match &self.link {
      Upstream::Client(to_host) => {
        let to_host = to_host.clone();
        effects.send(&to_host, &Message::Unlock { id });
      }
      Upstream::Host => match &self.log {
        Some((origin, log)) => log.propose_lock(LockOp::Release {
          ticket: Ticket { owner: *origin, id },
        }),
        None => {
          let grants = self.locks.release(Ticket { owner: HOST, id }, now);
          self.deliver_grants(grants, &mut effects);
        }
      },
      // The host that knew of it is gone; the next one never hears of it.
      Upstream::Offline => {}
    }
    effects
  }

  /// Tells each granted owner: JS for this process's own requests, else the client. A host's
  /// own table names owners by connection ([`HOST`] for itself), a shared log's by origin; the
  /// tickets of other machines' processes are their bridges' to tell.
  fn deliver_grants(&mut self, grants: Vec<Ticket>, effects: &mut Effects) {
    let own = self.log.as_ref().map_or(HOST, |&(origin, _)| origin);
    for ticket in grants {
      if ticket.owner == own {
        if let Some(lock) = self.own_locks.get_mut(&ticket.id) {
          lock.held = true;
          effects.events.push(Event::Grant(ticket.id));
        }
        continue;
      }
      let client = match self.log {
        Some(_) => self.clients.values().find(|c| c.origin == ticket.owner),
        None => self.clients.get(&ticket.owner),
      };
      if let Some(outbox) = client.and_then(|client| client.outbox.clone()) {
        effects.send(&outbox, &Message::Granted { id: ticket.id });
      }
    }
  }

  /// Welcomed by a host: sends it the events emitted while offline.
  pub fn client_connected(&mut self, to_host: Arc<dyn Link>) -> Effects {
    let mut effects = Effects::default();
    // Own locks first, held ones re-announced as held, each with its original request time.
    for (&id, lock) in &self.own_locks {
      to_host.queue(&Message::Lock {
        id,
        key: lock.key.clone(),
        since: lock.since,
        held: lock.held,
      });
    }
    for (_, message) in self.offline_emits.drain(..) {
      to_host.queue(&message);
    }
    self.offline_bytes = 0;
    effects.flush.push(to_host.clone());
    self.link = Upstream::Client(to_host);
    self.admitted = true;
    effects
  }

  /// Lost the host, or stopped being host: forgets every client and route. JS fails its own
  /// calls in flight itself when it hears that the instance went offline.
  pub fn go_offline(&mut self) {
    self.link = Upstream::Offline;
    self.host = None;
    self.host_clients = 0;
    self.clients.clear();
    self.routes.clear();
    self.everyone = None;
    self.machines.clear();
    self.log = None;
  }

  /// Bridge: events for the other machines go to `everyone` from now on.
  pub fn attach_machines(&mut self, everyone: Arc<dyn Link>) {
    self.everyone = Some(everyone);
  }

  /// Bridge: the other machines are `machines` now. The calls routed to one that is gone fail
  /// with `ERR_RPC_PEER_LOST`; the replies to its calls would go nowhere.
  pub fn set_machines(&mut self, machines: Vec<Machine>) -> Effects {
    let mut effects = Effects::default();
    if self.everyone.is_none() {
      return effects;
    }
    self.machines = machines
      .into_iter()
      .map(|machine| (machine.id, machine))
      .collect();
    let present = |machine: &u64| self.machines.contains_key(machine);
    let lost: Vec<u64> = self
      .routes
      .iter()
      .filter(|(_, route)| matches!(route.callee, Callee::Machine(m) if !present(&m)))
      .map(|(&id, _)| id)
      .collect();
    self.routes.retain(
      |_, route| !matches!(route.caller, Caller::Machine { machine, .. } if !present(&machine)),
    );
    for id in lost {
      if let Some(route) = self.routes.remove(&id) {
        self.answer(
          route.caller,
          None,
          Some(Error::CalleeLost.into()),
          &mut effects,
        );
      }
    }
    effects
  }

  /// Bridge: what this machine announces of its processes: itself and its welcomed clients.
  pub fn processes(&self) -> Vec<Process> {
    let own = Process {
      pid: std::process::id(),
      origin: self.log.as_ref().map_or(0, |&(origin, _)| origin),
      host: true,
      info: self.own.clone(),
    };
    let clients = self
      .clients
      .values()
      .filter(|client| client.outbox.is_some())
      .map(|client| Process {
        pid: client.pid,
        origin: client.origin,
        host: false,
        info: client.info.clone(),
      });
    std::iter::once(own).chain(clients).collect()
  }

  /// Bridge: whether this process may become the host of its machine beside `others`, the
  /// processes of the other machines: a writer is refused, as a client would be, when they have
  /// as many writers as the smallest `maxWriters` allows, unless it was admitted before (a new
  /// host after a local failover).
  pub fn admits_machine(&self, others: &[Process]) -> Result<(), Error> {
    if !is_writer(&self.own) || self.admitted {
      return Ok(());
    }
    let limit = others
      .iter()
      .filter_map(|process| process.info.max_writers)
      .chain(self.own.max_writers)
      .min();
    let writers = others.iter().filter(|p| is_writer(&p.info)).count();
    match limit.filter(|&limit| writers >= limit as usize) {
      Some(limit) => Err(Error::MaxWriters { writers, limit }),
      None => Ok(()),
    }
  }

  /// Bridge: a message from another machine: a call for a process of this one, the reply to a
  /// call routed there, or an event.
  pub fn from_machine(&mut self, machine: u64, message: Message) -> Effects {
    let mut effects = Effects::default();
    match message {
      Message::Call { id, method, args } => {
        self.route(Caller::Machine { machine, id }, method, args, &mut effects)
      }
      Message::Reply { id, result, error } => {
        self.callee_replied(Callee::Machine(machine), id, result, error, &mut effects)
      }
      Message::Emit { event, args } => self.relay_emit(None, event, args, &mut effects),
      _ => {}
    }
    effects
  }

  /// Host: the answer of `callee` to the call routed to it as `id`. Only the callee may answer,
  /// and only once.
  fn callee_replied(
    &mut self,
    callee: Callee,
    id: u64,
    result: Option<RawJson>,
    error: Option<RemoteError>,
    effects: &mut Effects,
  ) {
    if self
      .routes
      .get(&id)
      .is_some_and(|route| route.callee == callee)
    {
      if let Some(route) = self.routes.remove(&id) {
        self.answer(route.caller, result, error, effects);
      }
    }
  }

  /// Host: an event of client `from`, or of another machine (`None`), for this process's JS and
  /// every other client; one of this machine's for the other machines too.
  fn relay_emit(&mut self, from: Option<u64>, event: String, args: RawJson, effects: &mut Effects) {
    let message = Message::Emit { event, args };
    for (&conn, client) in &self.clients {
      if let (true, Some(outbox)) = (Some(conn) != from, &client.outbox) {
        effects.send(outbox, &message);
      }
    }
    if let (Some(_), Some(everyone)) = (from, &self.everyone) {
      effects.send(everyone, &message);
    }
    if let Message::Emit { event, args } = message {
      effects.events.push(Event::Emit { event, args });
    }
  }

  /// The writers of the other machines, and the smallest `maxWriters` one of their processes set.
  fn machines_writers(&self) -> (usize, Option<u32>) {
    let processes = self.machines.values().flat_map(|m| &m.processes);
    let writers = processes.clone().filter(|p| is_writer(&p.info)).count();
    (writers, processes.filter_map(|p| p.info.max_writers).min())
  }

  /// Host: a client said hello; it is not sent anything until [`Exchange::attached`]. A writer
  /// is refused (`Err` with the code and reason) when the network already has as many writers
  /// as the smaller of the host's and its own `maxWriters` allows, the host counting itself when
  /// it is a writer; a writer reconnecting after a failover (`rejoining`) keeps its slot.
  pub fn admit(&mut self, conn: u64, pid: u32, origin: u64, info: PeerInfo) -> Result<(), Error> {
    if is_writer(&info) && !info.rejoining {
      let (elsewhere, machines_limit) = self.machines_writers();
      let limit = [self.own.max_writers, info.max_writers, machines_limit]
        .into_iter()
        .flatten()
        .min();
      let writers = usize::from(is_writer(&self.own))
        + self.clients.values().filter(|c| is_writer(&c.info)).count()
        + elsewhere;
      if let Some(limit) = limit.filter(|&limit| writers >= limit as usize) {
        return Err(Error::MaxWriters { writers, limit });
      }
    }
    self.clients.insert(
      conn,
      Client {
        pid,
        origin,
        info,
        outbox: None,
      },
    );
    Ok(())
  }

  /// Host: the client's welcome is queued; it may be sent calls and events from now on. Every
  /// client hears the new count.
  pub fn attached(&mut self, conn: u64, outbox: Arc<dyn Link>) -> Effects {
    if let Some(client) = self.clients.get_mut(&conn) {
      client.outbox = Some(outbox);
    }
    self.announce_clients()
  }

  /// Host: the clients whose welcome is queued, the count JS's `getStatus()` reports.
  fn attached_count(&self) -> u64 {
    self.clients.values().filter(|c| c.outbox.is_some()).count() as u64
  }

  /// Host: tells every welcomed client how many clients there are.
  fn announce_clients(&self) -> Effects {
    let mut effects = Effects::default();
    let message = Message::Clients {
      count: self.attached_count(),
    };
    for outbox in self.clients.values().filter_map(|c| c.outbox.as_ref()) {
      effects.send(outbox, &message);
    }
    effects
  }

  /// Host: what it tells an admitted client about itself, before the welcome; the count
  /// includes that client, whose welcome comes next.
  pub fn about(&self) -> Message {
    Message::About {
      pid: std::process::id(),
      peer: self.own.clone(),
      clients: self.attached_count() + 1,
    }
  }

  /// Client: the host's `About`, received before its welcome, so that the host is known as soon
  /// as `start()` resolves.
  pub fn set_host(&mut self, pid: u32, peer: PeerInfo, clients: u64) {
    self.host = Some((pid, peer));
    self.host_clients = clients;
  }

  /// Client: how many clients its host has (memsync 0.5's `getStatus().host.connections`);
  /// `None` elsewhere.
  pub fn host_clients(&self) -> Option<u64> {
    matches!(self.link, Upstream::Client(_)).then_some(self.host_clients)
  }

  /// The other processes this one knows, as a JSON array of `{ pid, host, roles, methods }`:
  /// a host's clients, or a client's host.
  pub fn peers_json(&self) -> String {
    let peer = |pid: u32, host: bool, info: &PeerInfo| serde_json::json!({ "pid": pid, "host": host, "roles": info.roles, "methods": info.methods });
    let peers: Vec<serde_json::Value> = match &self.link {
      Upstream::Host => {
        let clients = self
          .clients
          .values()
          .filter(|client| client.outbox.is_some())
          .map(|client| peer(client.pid, false, &client.info));
        let elsewhere = self.machines.values().flat_map(|machine| {
          machine.processes.iter().map(|process| {
            let mut described = peer(process.pid, process.host, &process.info);
            described["machine"] = machine.name.clone().into();
            described
          })
        });
        clients.chain(elsewhere).collect()
      }
      Upstream::Client(_) => self
        .host
        .iter()
        .map(|(pid, info)| peer(*pid, true, info))
        .collect(),
      Upstream::Offline => Vec::new(),
    };
    serde_json::Value::from(peers).to_string()
  }

  /// This process's roles, as a JSON array.
  pub fn roles_json(&self) -> String {
    serde_json::Value::from(self.own.roles.clone()).to_string()
  }

  /// JS pings under `id`: the host, or every client. Returns the pids asked, as a JSON array;
  /// each answer arrives as `["pong", id, pid]`.
  pub fn ping(&mut self, id: u64) -> (String, Effects) {
    let mut effects = Effects::default();
    let mut pids = Vec::new();
    match &self.link {
      Upstream::Client(to_host) => {
        if let Some((pid, _)) = &self.host {
          pids.push(*pid);
          let to_host = to_host.clone();
          effects.send(&to_host, &Message::Ping { id });
        }
      }
      Upstream::Host => {
        for client in self.clients.values() {
          if let Some(outbox) = &client.outbox {
            pids.push(client.pid);
            effects.send(outbox, &Message::Ping { id });
          }
        }
      }
      Upstream::Offline => {}
    }
    (serde_json::Value::from(pids).to_string(), effects)
  }

  /// Host: a client's connection ended. Every call routed to it fails at once; calls it made
  /// are forgotten (their replies go nowhere); its locks are released and its requests
  /// cancelled.
  pub fn detach(&mut self, conn: u64) -> Effects {
    let client = self.clients.remove(&conn);
    let origin = client.as_ref().map(|client| client.origin);
    let mut effects = match client {
      Some(Client {
        outbox: Some(_), ..
      }) => self.announce_clients(),
      _ => Effects::default(),
    };
    match (&self.log, origin) {
      (Some((_, log)), Some(origin)) => log.propose_lock(LockOp::Drop { owner: origin }),
      (Some(_), None) => {}
      (None, _) => {
        let grants = self.locks.drop_owner(conn, self.time.now_ms());
        self.deliver_grants(grants, &mut effects);
      }
    }
    let lost: Vec<u64> = self
      .routes
      .iter()
      .filter(|(_, route)| route.callee == Callee::Client(conn))
      .map(|(&id, _)| id)
      .collect();
    for id in lost {
      let Some(route) = self.routes.remove(&id) else {
        continue;
      };
      self.answer(
        route.caller,
        None,
        Some(Error::CalleeLost.into()),
        &mut effects,
      );
    }
    self.routes.retain(|_, route| match route.caller {
      Caller::Client { conn: caller, .. } => caller != conn,
      Caller::Local(_) | Caller::Machine { .. } => true,
    });
    effects
  }

  /// JS calls `method` (not in its own table) under its id `id`. Offline, the call is not sent:
  /// JS waits for a connection before calling.
  pub fn call(&mut self, id: u64, method: String, args: RawJson) -> Effects {
    let mut effects = Effects::default();
    match &self.link {
      Upstream::Client(to_host) => {
        let to_host = to_host.clone();
        effects.send(&to_host, &Message::Call { id, method, args });
      }
      Upstream::Host => self.route(Caller::Local(id), method, args, &mut effects),
      Upstream::Offline => effects.events.push(Event::Reply {
        id,
        error: Some(Error::NotConnected.into()),
        result: None,
      }),
    }
    effects
  }

  /// JS answers the call it was handed as `["call", id, ...]`.
  pub fn reply(&mut self, id: u64, result: Option<RawJson>, error: Option<RemoteError>) -> Effects {
    let mut effects = Effects::default();
    match &self.link {
      Upstream::Client(to_host) => {
        let to_host = to_host.clone();
        effects.send(&to_host, &Message::Reply { id, result, error });
      }
      Upstream::Host => {
        // A route that is gone: the caller disconnected, or this host restarted its tables.
        if let Some(route) = self.routes.remove(&id) {
          self.answer(route.caller, result, error, &mut effects);
        }
      }
      // The host that asked is gone; so is its caller's wait.
      Upstream::Offline => {}
    }
    effects
  }

  /// JS emitted `event` (its own listeners heard it already): to every other process.
  pub fn emit(&mut self, event: String, args: RawJson) -> Effects {
    let mut effects = Effects::default();
    let size = event.len() + args.get().len();
    let message = Message::Emit { event, args };
    match &self.link {
      Upstream::Client(to_host) => {
        let to_host = to_host.clone();
        effects.send(&to_host, &message);
      }
      Upstream::Host => {
        for client in self.clients.values() {
          if let Some(outbox) = &client.outbox {
            effects.send(outbox, &message);
          }
        }
        if let Some(everyone) = &self.everyone {
          effects.send(everyone, &message);
        }
      }
      Upstream::Offline => {
        self.offline_bytes += size;
        self.offline_emits.push_back((size, message));
        while self.offline_bytes > OFFLINE_EMIT_BYTES {
          let Some((oldest, _)) = self.offline_emits.pop_front() else {
            break;
          };
          self.offline_bytes -= oldest;
        }
      }
    }
    effects
  }

  /// Host: a message from client `conn` (one that [`Exchange::handles`]).
  pub fn from_client(&mut self, conn: u64, message: Message) -> Effects {
    let mut effects = Effects::default();
    match message {
      Message::Call { id, method, args } => {
        self.route(Caller::Client { conn, id }, method, args, &mut effects)
      }
      Message::Reply { id, result, error } => {
        self.callee_replied(Callee::Client(conn), id, result, error, &mut effects)
      }
      Message::Lock {
        id,
        key,
        since,
        held,
      } => {
        if let Some((_, log)) = &self.log {
          if let Some(client) = self.clients.get(&conn) {
            let ticket = Ticket {
              owner: client.origin,
              id,
            };
            // A request the log granted while the client had no host (a local failover).
            if !held && self.locks.holder(&key) == Some(ticket) {
              if let Some(outbox) = &client.outbox {
                effects.send(outbox, &Message::Granted { id });
              }
            }
            // Held or not: a request the log's table has already changes nothing.
            log.propose_lock(LockOp::Request { ticket, key, since });
          }
          return effects;
        }
        let ticket = Ticket { owner: conn, id };
        let now = self.time.now_ms();
        if held {
          self.locks.claim(ticket, &key, since, now);
        } else {
          let grants = self.locks.request(ticket, &key, since, now);
          self.deliver_grants(grants, &mut effects);
        }
      }
      Message::Unlock { id } => {
        if let Some((_, log)) = &self.log {
          if let Some(client) = self.clients.get(&conn) {
            log.propose_lock(LockOp::Release {
              ticket: Ticket {
                owner: client.origin,
                id,
              },
            });
          }
          return effects;
        }
        let now = self.time.now_ms();
        let grants = self.locks.release(Ticket { owner: conn, id }, now);
        self.deliver_grants(grants, &mut effects);
      }
      Message::Ping { id } => {
        if let Some(outbox) = self.clients.get(&conn).and_then(|c| c.outbox.clone()) {
          effects.send(&outbox, &Message::Pong { id });
        }
      }
      Message::Pong { id } => {
        if let Some(client) = self.clients.get(&conn) {
          effects.events.push(Event::Pong {
            id,
            pid: client.pid,
          });
        }
      }
      Message::Emit { event, args } => self.relay_emit(Some(conn), event, args, &mut effects),
      _ => {}
    }
    effects
  }

  /// Client: a message from the host (one that [`Exchange::handles`]).
  pub fn from_host(&mut self, message: Message) -> Effects {
    let mut effects = Effects::default();
    match message {
      Message::Call { id, method, args } => effects.events.push(Event::Call { id, method, args }),
      Message::Reply { id, result, error } => {
        effects.events.push(Event::Reply { id, error, result });
      }
      Message::Emit { event, args } => effects.events.push(Event::Emit { event, args }),
      Message::Ping { id } => {
        if let Upstream::Client(to_host) = &self.link {
          let to_host = to_host.clone();
          effects.send(&to_host, &Message::Pong { id });
        }
      }
      Message::Pong { id } => {
        if let Some((pid, _)) = &self.host {
          effects.events.push(Event::Pong { id, pid: *pid });
        }
      }
      Message::Clients { count } => self.host_clients = count,
      Message::Granted { id } => {
        // Not found: JS gave up on it and its `Unlock` is on its way to the host.
        if let Some(lock) = self.own_locks.get_mut(&id) {
          lock.held = true;
          effects.events.push(Event::Grant(id));
        }
      }
      _ => {}
    }
    effects
  }

  /// Host: hands a call to the host's own JS, to a client that registered `method` or, for a
  /// call of this machine, to another machine where a process did; or fails it as not found.
  fn route(&mut self, caller: Caller, method: String, args: RawJson, effects: &mut Effects) {
    let offers = |info: &PeerInfo| info.methods.contains(&method);
    // The host's own JS checked its own table before calling.
    let callee = if !matches!(caller, Caller::Local(_)) && offers(&self.own) {
      Some(Callee::Local)
    } else {
      self
        .clients
        .iter()
        .find(|(&conn, client)| {
          client.outbox.is_some()
            && offers(&client.info)
            && !matches!(caller, Caller::Client { conn: c, .. } if c == conn)
        })
        .map(|(&conn, _)| Callee::Client(conn))
    };
    let callee = callee.or_else(|| {
      if matches!(caller, Caller::Machine { .. }) {
        return None;
      }
      self
        .machines
        .values()
        .find(|machine| machine.processes.iter().any(|p| offers(&p.info)))
        .map(|machine| Callee::Machine(machine.id))
    });
    let Some(callee) = callee else {
      let error = Error::RpcNotFound { method };
      self.answer(caller, None, Some(error.into()), effects);
      return;
    };
    let id = self.next_route;
    self.next_route += 1;
    self.routes.insert(id, Route { caller, callee });
    match callee {
      Callee::Local => effects.events.push(Event::Call { id, method, args }),
      Callee::Client(conn) => {
        if let Some(outbox) = self.clients.get(&conn).and_then(|c| c.outbox.clone()) {
          effects.send(&outbox, &Message::Call { id, method, args });
        }
      }
      Callee::Machine(machine) => {
        if let Some(link) = self.machines.get(&machine).map(|m| m.link.clone()) {
          effects.send(&link, &Message::Call { id, method, args });
        }
      }
    }
  }

  /// Host: delivers a call's outcome to its caller.
  fn answer(
    &self,
    caller: Caller,
    result: Option<RawJson>,
    error: Option<RemoteError>,
    effects: &mut Effects,
  ) {
    match caller {
      Caller::Local(id) => effects.events.push(Event::Reply { id, error, result }),
      Caller::Client { conn, id } => {
        if let Some(outbox) = self.clients.get(&conn).and_then(|c| c.outbox.clone()) {
          effects.send(&outbox, &Message::Reply { id, result, error });
        }
      }
      Caller::Machine { machine, id } => {
        if let Some(link) = self.machines.get(&machine).map(|m| m.link.clone()) {
          effects.send(&link, &Message::Reply { id, result, error });
        }
      }
    }
  }
}

fn is_writer(info: &PeerInfo) -> bool {
  info.roles.iter().any(|role| role == WRITER)
}

#[cfg(test)]
mod tests {
  use serde_json::json;

  use super::*;
  use crate::core::link::Recorder;

  /// The events of `effects` as the addon serializes them.
  fn texts(effects: &Effects) -> Vec<String> {
    effects.events.iter().map(Event::to_json).collect()
  }

  fn raw(value: serde_json::Value) -> RawJson {
    RawJson::to(&value).unwrap()
  }

  fn info(methods: &[&str]) -> PeerInfo {
    PeerInfo {
      methods: methods.iter().map(|m| m.to_string()).collect(),
      ..PeerInfo::default()
    }
  }

  fn writer(max_writers: Option<u32>) -> PeerInfo {
    PeerInfo {
      roles: vec![WRITER.into()],
      max_writers,
      ..PeerInfo::default()
    }
  }

  /// A host offering `own`, with clients 1, 2, 3 offering what `clients` lists.
  fn host(own: &[&str], clients: &[&[&str]]) -> (Exchange, Vec<Arc<Recorder>>) {
    let mut exchange = Exchange::new(Time::wall());
    exchange.configure(info(own));
    exchange.become_host(0);
    let mut outboxes = Vec::new();
    for (i, methods) in clients.iter().enumerate() {
      let conn = i as u64 + 1;
      let outbox = Recorder::new();
      exchange
        .admit(conn, 100 + conn as u32, 0, info(methods))
        .unwrap();
      exchange.attached(conn, outbox.clone());
      outboxes.push(outbox);
    }
    // The counts announced while the clients joined.
    for outbox in &outboxes {
      outbox.take();
    }
    (exchange, outboxes)
  }

  fn call(id: u64, method: &str) -> Message {
    Message::Call {
      id,
      method: method.into(),
      args: raw(json!([1])),
    }
  }

  #[test]
  fn the_host_answers_from_its_own_table_before_any_client() {
    let (mut exchange, outboxes) = host(&["f"], &[&[], &["f"]]);
    let effects = exchange.from_client(1, call(7, "f"));
    assert_eq!(effects.events.len(), 1);
    assert!(effects.events[0]
      .to_json()
      .starts_with(r#"["call",3,1,"f",[1]]"#));
    assert!(
      outboxes[1].take().is_empty(),
      "the client offering f is not asked"
    );
    // The host's JS answers under the host's id; the caller gets its own id back.
    exchange.reply(1, Some(raw(json!("r"))), None);
    assert_eq!(
      outboxes[0].take(),
      vec![Message::Reply {
        id: 7,
        result: Some(raw(json!("r"))),
        error: None
      }]
    );
  }

  #[test]
  fn a_call_goes_to_a_client_that_registered_it_never_back_to_the_caller() {
    let (mut exchange, outboxes) = host(&[], &[&["f"], &["f"], &["g"]]);
    exchange.from_client(1, call(5, "f"));
    assert!(outboxes[0].take().is_empty());
    let forwarded = outboxes[1].take();
    let [Message::Call { id: routed, .. }] = forwarded.as_slice() else {
      panic!("{forwarded:?}");
    };
    // Only the callee may answer the route.
    exchange.from_client(
      3,
      Message::Reply {
        id: *routed,
        result: Some(raw(json!(0))),
        error: None,
      },
    );
    assert!(outboxes[0].take().is_empty());
    exchange.from_client(
      2,
      Message::Reply {
        id: *routed,
        result: None,
        error: None,
      },
    );
    assert_eq!(
      outboxes[0].take(),
      vec![Message::Reply {
        id: 5,
        result: None,
        error: None
      }]
    );
  }

  #[test]
  fn an_unknown_method_is_not_found_with_the_js_packages_message() {
    let (mut exchange, outboxes) = host(&[], &[&[]]);
    exchange.from_client(1, call(2, "a.b"));
    let replies = outboxes[0].take();
    let [Message::Reply {
      id: 2,
      error: Some(error),
      ..
    }] = replies.as_slice()
    else {
      panic!("no reply");
    };
    assert_eq!(error.code.as_deref(), Some("ERR_RPC_NOT_FOUND"));
    assert_eq!(
      error.message,
      r#"The handler for "a.b" RPC call was not found"#
    );
    let effects = exchange.call(9, "a.b".into(), raw(json!([])));
    assert!(effects.events[0]
      .to_json()
      .starts_with(r#"["reply",2,9,{"code":"ERR_RPC_NOT_FOUND""#));
  }

  #[test]
  fn a_callee_that_leaves_fails_every_call_routed_to_it() {
    let (mut exchange, outboxes) = host(&[], &[&[], &["slow"]]);
    exchange.from_client(1, call(1, "slow"));
    exchange.from_client(1, call(2, "slow"));
    exchange.call(3, "slow".into(), raw(json!([])));
    let effects = exchange.detach(2);
    let mut replies = outboxes[0].take();
    assert_eq!(replies.remove(0), Message::Clients { count: 1 });
    assert_eq!(replies.len(), 2);
    for reply in replies {
      let Message::Reply {
        error: Some(error), ..
      } = reply
      else {
        panic!("{reply:?}");
      };
      assert_eq!(error.code.as_deref(), Some("ERR_RPC_PEER_LOST"));
    }
    assert_eq!(effects.events.len(), 1);
    assert!(effects.events[0]
      .to_json()
      .starts_with(r#"["reply",2,3,{"code":"ERR_RPC_PEER_LOST""#));
    assert!(exchange.routes.is_empty());
  }

  #[test]
  fn a_caller_that_leaves_drops_its_routes() {
    let (mut exchange, outboxes) = host(&[], &[&[], &["f"]]);
    exchange.from_client(1, call(1, "f"));
    exchange.detach(1);
    assert!(exchange.routes.is_empty());
    outboxes[1].take();
    exchange.from_client(
      2,
      Message::Reply {
        id: 1,
        result: None,
        error: None,
      },
    );
    assert!(outboxes[0].take().is_empty());
  }

  #[test]
  fn events_reach_the_host_and_every_other_client_in_order() {
    let (mut exchange, outboxes) = host(&[], &[&[], &[], &[]]);
    for n in 0..3 {
      let effects = exchange.from_client(
        2,
        Message::Emit {
          event: "tick".into(),
          args: raw(json!([n])),
        },
      );
      assert_eq!(texts(&effects), vec![format!(r#"["e",2,"tick",[{n}]]"#)]);
    }
    assert!(outboxes[1].take().is_empty(), "not back to the sender");
    for outbox in [&outboxes[0], &outboxes[2]] {
      let args: Vec<String> = outbox
        .take()
        .into_iter()
        .map(|m| match m {
          Message::Emit { args, .. } => args.get().to_owned(),
          other => panic!("{other:?}"),
        })
        .collect();
      assert_eq!(args, ["[0]", "[1]", "[2]"]);
    }
  }

  #[test]
  fn emits_while_offline_are_bounded_and_sent_after_the_welcome() {
    let mut exchange = Exchange::new(Time::wall());
    let big = "x".repeat(1024 * 1024);
    for n in 0..6 {
      exchange.emit(format!("e{n}"), raw(json!([big])));
    }
    let to_host = Recorder::new();
    exchange.client_connected(to_host.clone());
    let events: Vec<String> = to_host
      .take()
      .into_iter()
      .map(|m| match m {
        Message::Emit { event, .. } => event,
        other => panic!("{other:?}"),
      })
      .collect();
    // The oldest went past the bound; the newest are kept, in order.
    assert_eq!(events, ["e3", "e4", "e5"]);
  }

  #[test]
  fn writers_past_the_smaller_limit_are_refused_and_a_slot_frees_when_one_leaves() {
    let mut exchange = Exchange::new(Time::wall());
    exchange.configure(PeerInfo {
      max_writers: Some(3),
      ..writer(None)
    });
    exchange.become_host(0);
    // The host is a writer: one slot left under a client's limit of 2.
    assert!(exchange.admit(1, 0, 0, writer(Some(2))).is_ok());
    let err = exchange.admit(2, 0, 0, writer(Some(2))).unwrap_err();
    assert_eq!(err.code(), "ERR_MAX_WRITERS");
    // Readers are not counted; the host's own limit (3) applies to a client without one.
    assert!(exchange.admit(3, 0, 0, info(&[])).is_ok());
    assert!(exchange.admit(4, 0, 0, writer(None)).is_ok());
    assert!(exchange.admit(5, 0, 0, writer(None)).is_err());
    exchange.detach(4);
    assert!(exchange.admit(5, 0, 0, writer(None)).is_ok());
    // A writer reconnecting after a failover keeps its slot.
    let rejoining = PeerInfo {
      rejoining: true,
      ..writer(None)
    };
    assert!(exchange.admit(6, 0, 0, rejoining).is_ok());
  }

  #[test]
  fn without_a_limit_every_writer_is_admitted() {
    let mut exchange = Exchange::new(Time::wall());
    exchange.become_host(0);
    for conn in 1..10 {
      assert!(exchange.admit(conn, 0, 0, writer(None)).is_ok());
    }
  }

  #[test]
  fn the_hosts_own_lock_and_a_clients_take_turns() {
    let (mut exchange, outboxes) = host(&[], &[&[]]);
    let since = Hlc { ms: 1, counter: 0 };
    let effects = exchange.lock(1, "k".into(), since, 10);
    assert_eq!(texts(&effects), vec![r#"["g",1,1]"#.to_owned()]);
    exchange.from_client(
      1,
      Message::Lock {
        id: 9,
        key: "k".into(),
        since: Hlc { ms: 2, counter: 0 },
        held: false,
      },
    );
    assert!(outboxes[0].take().is_empty(), "held by the host");
    exchange.unlock(1, 11);
    assert_eq!(outboxes[0].take(), vec![Message::Granted { id: 9 }]);
    // The holder's connection ends: the host's next request is granted at once.
    exchange.lock(2, "k".into(), Hlc { ms: 3, counter: 0 }, 12);
    let effects = exchange.detach(1);
    assert_eq!(texts(&effects), vec![r#"["g",1,2]"#.to_owned()]);
  }

  #[test]
  fn a_client_re_announces_its_locks_to_a_new_host_and_a_new_host_its_own() {
    let mut client = Exchange::new(Time::wall());
    let first = Recorder::new();
    client.client_connected(first.clone());
    client.lock(1, "held".into(), Hlc { ms: 5, counter: 0 }, 5);
    client.lock(2, "waiting".into(), Hlc { ms: 6, counter: 0 }, 6);
    first.take();
    client.from_host(Message::Granted { id: 1 });
    client.go_offline();
    let second = Recorder::new();
    client.client_connected(second.clone());
    assert_eq!(
      second.take(),
      vec![
        Message::Lock {
          id: 1,
          key: "held".into(),
          since: Hlc { ms: 5, counter: 0 },
          held: true
        },
        Message::Lock {
          id: 2,
          key: "waiting".into(),
          since: Hlc { ms: 6, counter: 0 },
          held: false
        },
      ]
    );
    // Or it becomes host itself: it keeps the held lock, and the wait is granted after the grace.
    client.go_offline();
    client.become_host(1000);
    assert_eq!(
      client.locks.holder("held"),
      Some(Ticket { owner: HOST, id: 1 })
    );
    assert_eq!(client.locks.holder("waiting"), None);
    assert_eq!(
      texts(&client.end_grace(1000)),
      vec![r#"["g",1,2]"#.to_owned()]
    );
  }

  #[test]
  fn every_client_hears_the_hosts_count_of_clients() {
    let (mut exchange, outboxes) = host(&[], &[&[], &[]]);
    let Message::About { clients, .. } = exchange.about() else {
      panic!("not an about");
    };
    assert_eq!(clients, 3, "the joining client counts itself");
    let joining = Recorder::new();
    exchange.admit(3, 103, 0, info(&[])).unwrap();
    let effects = exchange.attached(3, joining.clone());
    assert_eq!(effects.flush.len(), 3);
    for outbox in outboxes.iter().chain([&joining]) {
      assert_eq!(outbox.take(), vec![Message::Clients { count: 3 }]);
    }
    exchange.detach(1);
    assert_eq!(outboxes[1].take(), vec![Message::Clients { count: 2 }]);
    // A client that never got its welcome leaves without a word.
    exchange.admit(4, 104, 0, info(&[])).unwrap();
    assert!(exchange.detach(4).flush.is_empty());

    let mut client = Exchange::new(Time::wall());
    client.set_host(9, info(&[]), 2);
    assert_eq!(client.host_clients(), None, "not connected yet");
    client.client_connected(Recorder::new());
    assert_eq!(client.host_clients(), Some(2));
    client.from_host(Message::Clients { count: 5 });
    assert_eq!(client.host_clients(), Some(5));
    client.go_offline();
    assert_eq!(client.host_clients(), None);
  }

  #[test]
  fn peers_and_pings_name_the_processes_they_reach() {
    let (mut exchange, outboxes) = host(&["f"], &[&["g"], &[]]);
    assert_eq!(
      exchange.peers_json(),
      r#"[{"pid":101,"host":false,"roles":[],"methods":["g"]},{"pid":102,"host":false,"roles":[],"methods":[]}]"#
    );
    let (pids, _) = exchange.ping(4);
    assert_eq!(pids, "[101,102]");
    for outbox in &outboxes {
      assert_eq!(outbox.take(), vec![Message::Ping { id: 4 }]);
    }
    let effects = exchange.from_client(2, Message::Pong { id: 4 });
    assert_eq!(texts(&effects), vec![r#"["pong",2,4,102]"#.to_owned()]);
    // A client answers the host's ping, and knows the host from its `About`.
    let mut client = Exchange::new(Time::wall());
    let to_host = Recorder::new();
    client.set_host(9, info(&["f"]), 1);
    client.client_connected(to_host.clone());
    client.from_host(Message::Ping { id: 3 });
    assert_eq!(to_host.take(), vec![Message::Pong { id: 3 }]);
    assert_eq!(
      client.peers_json(),
      r#"[{"pid":9,"host":true,"roles":[],"methods":["f"]}]"#
    );
  }

  /// Machine `id` (on host `name`), one process offering `methods`, with the recorder its link.
  fn machine(id: u64, methods: &[&str]) -> (Machine, Arc<Recorder>) {
    let link = Recorder::new();
    let machine = Machine {
      id,
      name: format!("box-{id}"),
      link: link.clone(),
      processes: vec![Process {
        pid: 900 + id as u32,
        origin: 9000 + id,
        host: true,
        info: info(methods),
      }],
    };
    (machine, link)
  }

  /// A bridge: [`host`] with the other machines of `machines`, and the link to every machine.
  fn bridge(
    own: &[&str],
    clients: &[&[&str]],
    machines: Vec<Machine>,
  ) -> (Exchange, Vec<Arc<Recorder>>, Arc<Recorder>) {
    let (mut exchange, outboxes) = host(own, clients);
    let everyone = Recorder::new();
    exchange.attach_machines(everyone.clone());
    assert!(exchange.set_machines(machines).events.is_empty());
    (exchange, outboxes, everyone)
  }

  #[test]
  fn a_call_nobody_on_this_machine_offers_goes_to_a_machine_that_does_and_its_reply_comes_back() {
    let (far, far_link) = machine(50, &["far"]);
    let (other, other_link) = machine(40, &["g"]);
    let (mut exchange, outboxes, _) = bridge(&[], &[&[]], vec![far, other]);
    let effects = exchange.from_client(1, call(3, "far"));
    assert_eq!(effects.flush.len(), 1);
    let [Message::Call { id, method, .. }] = &far_link.take()[..] else {
      panic!("a call for machine 50");
    };
    assert_eq!(method, "far");
    let id = *id;
    assert!(other_link.take().is_empty());
    // Only the machine the call went to may answer it.
    let answer = |id| Message::Reply {
      id,
      result: Some(raw(json!(8))),
      error: None,
    };
    exchange.from_machine(40, answer(id));
    assert!(outboxes[0].take().is_empty());
    exchange.from_machine(50, answer(id));
    assert_eq!(
      outboxes[0].take(),
      vec![Message::Reply {
        id: 3,
        result: Some(raw(json!(8))),
        error: None
      }]
    );
    // The bridge's own JS calls too.
    exchange.call(4, "g".into(), raw(json!([])));
    assert!(matches!(other_link.take()[..], [Message::Call { .. }]));
  }

  #[test]
  fn a_call_from_another_machine_runs_on_this_one_or_fails_there_and_never_goes_on() {
    let (far, far_link) = machine(50, &["far"]);
    let (other, other_link) = machine(40, &["g"]);
    let (mut exchange, outboxes, _) = bridge(&["mine"], &[&["theirs"]], vec![far, other]);
    let effects = exchange.from_machine(50, call(11, "mine"));
    assert_eq!(
      texts(&effects),
      vec![r#"["call",3,1,"mine",[1]]"#.to_owned()]
    );
    exchange.reply(1, Some(raw(json!("ok"))), None);
    assert_eq!(
      far_link.take(),
      vec![Message::Reply {
        id: 11,
        result: Some(raw(json!("ok"))),
        error: None
      }]
    );
    exchange.from_machine(50, call(12, "theirs"));
    assert!(matches!(outboxes[0].take()[..], [Message::Call { .. }]));
    // Machine 40 offers `g`, but a call from a machine only runs here.
    exchange.from_machine(50, call(13, "g"));
    assert!(other_link.take().is_empty());
    let [Message::Reply {
      id: 13,
      error: Some(RemoteError { code, .. }),
      ..
    }] = &far_link.take()[..]
    else {
      panic!("not found");
    };
    assert_eq!(code.as_deref(), Some("ERR_RPC_NOT_FOUND"));
  }

  #[test]
  fn a_machine_that_is_gone_fails_the_calls_routed_to_it() {
    let (far, far_link) = machine(50, &["far"]);
    let (mut exchange, outboxes, _) = bridge(&[], &[&[]], vec![far]);
    exchange.from_client(1, call(3, "far"));
    exchange.call(4, "far".into(), raw(json!([])));
    assert_eq!(far_link.take().len(), 2);
    let (other, _) = machine(40, &[]);
    let effects = exchange.set_machines(vec![other]);
    assert_eq!(texts(&effects).len(), 1);
    assert!(texts(&effects)[0].contains("ERR_RPC_PEER_LOST"));
    let [Message::Reply {
      id: 3,
      error: Some(RemoteError { code, .. }),
      ..
    }] = &outboxes[0].take()[..]
    else {
      panic!("peer lost");
    };
    assert_eq!(code.as_deref(), Some("ERR_RPC_PEER_LOST"));
    // Nobody offers it now.
    let effects = exchange.call(5, "far".into(), raw(json!([])));
    assert!(texts(&effects)[0].contains("ERR_RPC_NOT_FOUND"));
  }

  #[test]
  fn events_reach_every_machine_once_and_those_of_another_machine_every_process_here() {
    let (mut exchange, outboxes, everyone) = bridge(&[], &[&[], &[]], vec![machine(50, &[]).0]);
    let emit = |event: &str| Message::Emit {
      event: event.into(),
      args: raw(json!([1])),
    };
    exchange.emit("own".into(), raw(json!([1])));
    exchange.from_client(1, emit("client's"));
    assert_eq!(everyone.take(), vec![emit("own"), emit("client's")]);
    let effects = exchange.from_machine(50, emit("far"));
    assert_eq!(texts(&effects), vec![r#"["e",2,"far",[1]]"#.to_owned()]);
    assert!(everyone.take().is_empty(), "not sent back");
    assert_eq!(outboxes[0].take(), vec![emit("own"), emit("far")]);
    assert_eq!(
      outboxes[1].take(),
      vec![emit("own"), emit("client's"), emit("far")]
    );
  }

  #[test]
  fn writers_of_other_machines_count_against_the_limit() {
    let mut far = machine(50, &[]).0;
    far.processes[0].info = writer(Some(2));
    let mut exchange = Exchange::new(Time::wall());
    exchange.configure(writer(None));
    assert_eq!(exchange.admits_machine(&far.processes), Ok(()));
    let both = [far.processes.clone(), far.processes.clone()].concat();
    assert_eq!(
      exchange.admits_machine(&both),
      Err(Error::MaxWriters {
        writers: 2,
        limit: 2
      })
    );
    exchange.become_host(0);
    exchange.attach_machines(Recorder::new());
    exchange.set_machines(vec![far]);
    // The bridge and the other machine's writer fill the other machine's limit of 2.
    assert_eq!(
      exchange.admit(1, 101, 0, writer(None)),
      Err(Error::MaxWriters {
        writers: 2,
        limit: 2
      })
    );
    assert_eq!(exchange.admit(2, 102, 0, info(&[])), Ok(()));
    let listed: serde_json::Value = serde_json::from_str(&exchange.peers_json()).unwrap();
    assert_eq!(listed[0]["machine"], "box-50");
    assert_eq!(
      exchange.processes().len(),
      1,
      "client 2 is not welcomed yet"
    );
  }

  /// The lock changes a bridge proposes.
  #[derive(Default)]
  struct LockLog(parking_lot::Mutex<Vec<LockOp>>);

  impl Proposer for LockLog {
    fn propose(&self, _: u64, _: u64, _: Hlc, _: &RawJson) {}

    fn propose_lock(&self, op: LockOp) {
      self.0.lock().push(op);
    }
  }

  impl LockLog {
    fn take(&self) -> Vec<LockOp> {
      std::mem::take(&mut *self.0.lock())
    }
  }

  fn since(ms: u64) -> Hlc {
    Hlc { ms, counter: 0 }
  }

  #[test]
  fn a_bridge_proposes_its_machines_lock_requests_and_grants_what_the_log_decides() {
    const OWN: u64 = 500;
    let mut exchange = Exchange::new(Time::wall());
    exchange.lock(1, "k".into(), since(5), 0);
    let log = Arc::new(LockLog::default());
    assert!(exchange.become_bridge(OWN, log.clone()).events.is_empty());
    let own = Ticket { owner: OWN, id: 1 };
    let request = |ticket, ms| LockOp::Request {
      ticket,
      key: "k".into(),
      since: since(ms),
    };
    assert_eq!(log.take(), vec![request(own, 5)], "asked before start()");
    let client = Recorder::new();
    exchange.admit(3, 103, 77, info(&[])).unwrap();
    exchange.attached(3, client.clone());
    client.take();
    exchange.from_client(
      3,
      Message::Lock {
        id: 9,
        key: "k".into(),
        since: since(7),
        held: false,
      },
    );
    let theirs = Ticket { owner: 77, id: 9 };
    assert_eq!(log.take(), vec![request(theirs, 7)]);
    // Another machine asked first: the log grants it; nothing for this machine.
    let far = Ticket { owner: 1234, id: 1 };
    assert!(exchange.logged_lock(request(far, 1)).events.is_empty());
    assert!(exchange.logged_lock(request(own, 5)).events.is_empty());
    exchange.logged_lock(request(theirs, 7));
    let granted = exchange.logged_lock(LockOp::Release { ticket: far });
    assert_eq!(texts(&granted), vec!["[\"g\",1,1]".to_owned()]);
    exchange.unlock(1, 0);
    assert_eq!(log.take(), vec![LockOp::Release { ticket: own }]);
    let granted = exchange.logged_lock(LockOp::Release { ticket: own });
    assert_eq!(granted.flush.len(), 1);
    assert_eq!(client.take(), vec![Message::Granted { id: 9 }]);
    // The client's connection ends: the log hears that its locks go.
    exchange.detach(3);
    assert_eq!(log.take(), vec![LockOp::Drop { owner: 77 }]);
    assert_eq!(exchange.lock_owners(), vec![77]);
    exchange.logged_lock(LockOp::Drop { owner: 77 });
    assert!(exchange.lock_owners().is_empty());
  }

  #[test]
  fn a_new_bridge_takes_the_logs_table_and_grants_what_it_granted_meanwhile() {
    const OWN: u64 = 500;
    let mut exchange = Exchange::new(Time::wall());
    exchange.lock(1, "k".into(), since(5), 0);
    let mut table = LockTable::new(0);
    table.apply(LockOp::Request {
      ticket: Ticket { owner: OWN, id: 1 },
      key: "k".into(),
      since: since(5),
    });
    assert!(
      exchange.restore_locks(table.export()).events.is_empty(),
      "not a bridge yet"
    );
    let effects = exchange.become_bridge(OWN, Arc::new(LockLog::default()));
    assert_eq!(texts(&effects), vec!["[\"g\",1,1]".to_owned()]);
    assert_eq!(exchange.lock_state(), table.export());
    // A client that waited through a local failover is told when it asks again.
    let client = Recorder::new();
    table.apply(LockOp::Request {
      ticket: Ticket { owner: 77, id: 2 },
      key: "other".into(),
      since: since(6),
    });
    exchange.restore_locks(table.export());
    exchange.admit(3, 103, 77, info(&[])).unwrap();
    exchange.attached(3, client.clone());
    client.take();
    exchange.from_client(
      3,
      Message::Lock {
        id: 2,
        key: "other".into(),
        since: since(6),
        held: false,
      },
    );
    assert_eq!(client.take(), vec![Message::Granted { id: 2 }]);
  }
}
