//! What the machines of an object say to each other beside the log: who runs where (presence),
//! RPC calls and replies between machines, and the events of `mem.events`. The exchange
//! (`core::exchange`) decides where each goes; this module carries them, in one task per bridge
//! with two connections of its own (one blocks on `XREAD`), apart from the log's sessions: a
//! rejoin of the log does not cut a call short.
//!
//! Keys, under the object's hash tag:
//! - `machines`, a set of machine ids (a machine is its bridge's origin), and `machine:<id>`,
//!   its presence: its host name and processes, as JSON, expiring [`PRESENCE_TTL`] after the
//!   last beat. An id whose presence expired is taken out of the set by the next reader.
//! - `inbox:<id>`, a capped stream of the calls and replies for machine `id`, expiring a while
//!   after its machine stopped beating.
//! - `events`, one capped stream of every machine's events: a machine reads it from where it
//!   stopped, so a reconnect loses none that the stream still holds, and each sender's events
//!   keep their order (they leave one queue, in order, and a failed send is sent again first).
//!
//! Locks are the log's (`core::exchange`); this module only notices owners whose process no
//! machine lists any more, for [`PRESENCE_TTL`], and has the machine with the smallest id
//! propose that their locks go.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::core::exchange::Machine;
use crate::core::link::Link;
use crate::core::message::{Message, Process};
use crate::core::replica::Replica;
use crate::transport::redis::address::Target;
use crate::transport::redis::connect;
use crate::transport::redis::log::Keys;

/// How often a machine announces itself and reads who else is there.
const BEAT: Duration = Duration::from_secs(1);
/// How long a presence lasts without a beat: a machine whose bridge died (or lost Redis) is
/// gone after it, and the calls routed to it fail with `ERR_RPC_PEER_LOST`.
pub const PRESENCE_TTL: Duration = Duration::from_secs(3);
/// How long an inbox outlives its machine's last beat, so that a dead machine's inbox goes.
const INBOX_TTL: Duration = Duration::from_secs(60);
/// Entries an inbox or the events stream keeps, about (`MAXLEN ~`).
const KEPT: usize = 10_000;
/// Bytes of messages kept while Redis cannot be reached; past it the oldest go.
const QUEUED_BYTES: usize = 4 * 1024 * 1024;
/// Entries read in one `XREAD`, and how long it waits (it is sent again after): below redis-rs's
/// response timeout (500 ms), past which the read would fail.
const MAX_READ: usize = 256;
const READ_BLOCK_MS: u64 = 100;
/// Reconnection attempts back off up to this pause.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A machine's presence, as JSON in `machine:<id>`.
#[derive(Debug, Serialize, Deserialize)]
struct Presence {
  name: String,
  processes: Vec<Process>,
}

/// What leaves this machine, in the order the exchange queued it: to every machine (`None`,
/// an event) or to one.
#[derive(Default)]
struct Queue {
  messages: VecDeque<(Option<u64>, String)>,
  bytes: usize,
}

/// The exchange's links to the other machines: they queue here, the task sends.
pub struct Outbox {
  queue: Mutex<Queue>,
  wake: Notify,
}

impl Outbox {
  fn new() -> Arc<Outbox> {
    Arc::new(Outbox {
      queue: Mutex::new(Queue::default()),
      wake: Notify::new(),
    })
  }

  /// The link for every machine (`None`) or for one.
  fn to(self: &Arc<Outbox>, machine: Option<u64>) -> Arc<dyn Link> {
    Arc::new(To {
      machine,
      outbox: self.clone(),
    })
  }
}

struct To {
  machine: Option<u64>,
  outbox: Arc<Outbox>,
}

impl Link for To {
  fn queue(&self, message: &Message) -> bool {
    let Ok(text) = serde_json::to_string(message) else {
      return false;
    };
    let mut queue = self.outbox.queue.lock();
    queue.bytes += text.len();
    queue.messages.push_back((self.machine, text));
    while queue.bytes > QUEUED_BYTES {
      let Some((_, oldest)) = queue.messages.pop_front() else {
        break;
      };
      queue.bytes -= oldest.len();
    }
    true
  }

  fn flush(&self) {
    self.outbox.wake.notify_one();
  }

  fn close(&self) {}
}

/// This machine's name, for the other machines' `getStatus()`.
fn host_name() -> String {
  let mut buffer = [0u8; 256];
  // SAFETY: the buffer is writable for its whole length, which is passed.
  let failed = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } != 0;
  let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
  match String::from_utf8_lossy(&buffer[..end]) {
    name if failed || name.is_empty() => "unknown".into(),
    name => name.into_owned(),
  }
}

/// The processes of the other machines present now (`me` excluded), reading `machines` and
/// each presence; ids whose presence expired are taken out of the set.
async fn present(
  connection: &mut MultiplexedConnection,
  keys: &Keys,
  me: u64,
) -> redis::RedisResult<Vec<(u64, Presence)>> {
  let ids: Vec<String> = redis::cmd("SMEMBERS")
    .arg(&keys.machines)
    .query_async(connection)
    .await?;
  let ids: Vec<u64> = ids
    .iter()
    .filter_map(|id| u64::from_str_radix(id, 16).ok())
    .filter(|&id| id != me)
    .collect();
  if ids.is_empty() {
    return Ok(Vec::new());
  }
  let texts: Vec<Option<String>> = redis::cmd("MGET")
    .arg(ids.iter().map(|&id| keys.machine(id)).collect::<Vec<_>>())
    .query_async(connection)
    .await?;
  let mut present = Vec::new();
  let mut gone = Vec::new();
  for (id, text) in ids.into_iter().zip(texts) {
    match text.and_then(|text| serde_json::from_str::<Presence>(&text).ok()) {
      Some(presence) => present.push((id, presence)),
      None => gone.push(format!("{id:x}")),
    }
  }
  if !gone.is_empty() {
    redis::cmd("SREM")
      .arg(&keys.machines)
      .arg(gone)
      .query_async::<()>(connection)
      .await?;
  }
  Ok(present)
}

/// A machine as `memsync status --transport` lists it.
#[derive(Debug, Serialize)]
pub struct Listed {
  pub name: String,
  pub processes: Vec<Process>,
}

/// The machines present now.
pub async fn listed(
  connection: &mut MultiplexedConnection,
  keys: &Keys,
) -> redis::RedisResult<Vec<Listed>> {
  // No machine has id 0 (bridges' origins are random): none is left out.
  let present = present(connection, keys, 0).await?;
  Ok(
    present
      .into_iter()
      .map(|(_, presence)| Listed {
        name: presence.name,
        processes: presence.processes,
      })
      .collect(),
  )
}

/// The processes of the other machines present now, for the writer limit at a bridge's start.
pub async fn processes_elsewhere(
  connection: &mut MultiplexedConnection,
  keys: &Keys,
  me: u64,
) -> Result<Vec<Process>, String> {
  let present = present(connection, keys, me)
    .await
    .map_err(|err| err.to_string())?;
  Ok(
    present
      .into_iter()
      .flat_map(|(_, presence)| presence.processes)
      .collect(),
  )
}

/// Carries this machine's part of the exchange: give the exchange the link to every machine,
/// then run [`run`] until the bridge ends.
pub fn attach(replica: &Replica) -> Arc<Outbox> {
  let outbox = Outbox::new();
  replica.exchange().attach_machines(outbox.to(None));
  outbox
}

/// What a machine keeps between sessions: where the reading of the two streams stands, and
/// since when each lock owner has been missing from every machine's presence.
#[derive(Default)]
struct Cursors {
  /// The last event read; `None` before the first session, which starts at the stream's end.
  events: Option<String>,
  inbox: String,
  missing: HashMap<u64, Instant>,
}

/// Announces this machine, learns the others, sends what the exchange queued and hands it what
/// arrives, connecting again after any failure.
pub async fn run(replica: Arc<Replica>, target: Target, keys: Keys, outbox: Arc<Outbox>) {
  let me = replica.origin();
  let name = host_name();
  let mut cursors = Cursors {
    events: None,
    inbox: "0-0".into(),
    missing: HashMap::new(),
  };
  let mut backoff = Duration::from_millis(10);
  loop {
    let began = Instant::now();
    let why = session(&replica, &target, &keys, me, &name, &outbox, &mut cursors).await;
    replica.debug(|| format!("the machines' exchange through Redis failed ({why}): trying again"));
    // Only a session that lasted ends the trouble; one that fails at once again and again backs off.
    if began.elapsed() >= BEAT {
      backoff = Duration::from_millis(10);
    }
    tokio::time::sleep(backoff).await;
    backoff = (backoff * 2).min(MAX_BACKOFF);
  }
}

/// One session: two connections of its own (one blocks on `XREAD`), beating and sending on one
/// and reading on the other until a command fails; returns why.
async fn session(
  replica: &Replica,
  target: &Target,
  keys: &Keys,
  me: u64,
  name: &str,
  outbox: &Arc<Outbox>,
  cursors: &mut Cursors,
) -> String {
  let connected = async {
    let (sending, _) = connect::primary(target, keys).await?;
    let (mut reading, _) = connect::primary(target, keys).await?;
    if cursors.events.is_none() {
      cursors.events = Some(newest_event(&mut reading, keys).await?);
    }
    Ok::<_, String>((sending, reading))
  };
  let (mut sending, mut reading) = match connected.await {
    Ok(both) => both,
    Err(why) => return why,
  };
  let Cursors {
    events,
    inbox,
    missing,
  } = cursors;
  let outcome = tokio::select! {
    err = send(replica, &mut sending, keys, me, name, outbox, missing) => err,
    err = receive(replica, &mut reading, keys, me, events, inbox) => err,
  };
  outcome.to_string()
}

/// The id of the newest event, where a machine starts reading.
async fn newest_event(
  connection: &mut MultiplexedConnection,
  keys: &Keys,
) -> Result<String, String> {
  let newest: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
    .arg(&keys.events)
    .arg("+")
    .arg("-")
    .arg("COUNT")
    .arg(1)
    .query_async(connection)
    .await
    .map_err(|err| err.to_string())?;
  Ok(
    newest
      .ids
      .into_iter()
      .next()
      .map_or_else(|| "0-0".to_owned(), |entry| entry.id),
  )
}

/// Beats every [`BEAT`] (presence, then who else is there) and sends what is queued as soon as
/// it is, until a command fails.
async fn send(
  replica: &Replica,
  connection: &mut MultiplexedConnection,
  keys: &Keys,
  me: u64,
  name: &str,
  outbox: &Arc<Outbox>,
  missing: &mut HashMap<u64, Instant>,
) -> redis::RedisError {
  let mut beat = tokio::time::interval(BEAT);
  beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
  loop {
    tokio::select! {
      _ = beat.tick() => {
        if let Err(err) = announce(replica, connection, keys, me, name, outbox, missing).await {
          return err;
        }
      }
      () = outbox.wake.notified() => {}
    }
    if let Err(err) = send_queued(connection, keys, me, outbox).await {
      return err;
    }
  }
}

/// Writes this machine's presence and hands the exchange the machines present.
async fn announce(
  replica: &Replica,
  connection: &mut MultiplexedConnection,
  keys: &Keys,
  me: u64,
  name: &str,
  outbox: &Arc<Outbox>,
  missing: &mut HashMap<u64, Instant>,
) -> redis::RedisResult<()> {
  let presence = Presence {
    name: name.to_owned(),
    processes: replica.exchange().processes(),
  };
  let text = serde_json::to_string(&presence).unwrap_or_default();
  redis::pipe()
    .cmd("SET")
    .arg(keys.machine(me))
    .arg(text)
    .arg("PX")
    .arg(PRESENCE_TTL.as_millis() as u64)
    .ignore()
    .cmd("SADD")
    .arg(&keys.machines)
    .arg(format!("{me:x}"))
    .ignore()
    .cmd("PEXPIRE")
    .arg(keys.inbox(me))
    .arg(INBOX_TTL.as_millis() as u64)
    .ignore()
    .query_async::<()>(connection)
    .await?;
  let mut alive: HashSet<u64> = presence.processes.iter().map(|p| p.origin).collect();
  let machines: Vec<Machine> = present(connection, keys, me)
    .await?
    .into_iter()
    .map(|(id, presence)| Machine {
      id,
      name: presence.name,
      link: outbox.to(Some(id)),
      processes: presence.processes,
    })
    .collect();
  alive.extend(
    machines
      .iter()
      .flat_map(|m| m.processes.iter().map(|p| p.origin)),
  );
  let proposer = machines.iter().all(|machine| machine.id > me);
  let effects = replica.exchange().set_machines(machines);
  replica.apply(effects, true);
  release_missing(replica, &alive, proposer, missing);
  Ok(())
}

/// Proposes that the locks of owners missing from every presence for [`PRESENCE_TTL`] go, when
/// this machine is the `proposer`.
fn release_missing(
  replica: &Replica,
  alive: &HashSet<u64>,
  proposer: bool,
  missing: &mut HashMap<u64, Instant>,
) {
  let owners = replica.exchange().lock_owners();
  let owners: Vec<u64> = owners
    .into_iter()
    .filter(|owner| !alive.contains(owner))
    .collect();
  missing.retain(|owner, _| owners.contains(owner));
  for owner in owners {
    let since = *missing.entry(owner).or_insert_with(Instant::now);
    if proposer && since.elapsed() >= PRESENCE_TTL {
      replica.debug(|| format!("the process of {owner:x} is gone: its locks are released"));
      replica.exchange().drop_lock_owner(owner);
      // Proposed again only if it is still there after another wait.
      missing.insert(owner, Instant::now());
    }
  }
}

/// Sends everything queued, in order, in one pipeline; on a failure the messages stay queued,
/// first, for the next session.
async fn send_queued(
  connection: &mut MultiplexedConnection,
  keys: &Keys,
  me: u64,
  outbox: &Outbox,
) -> redis::RedisResult<()> {
  let taken: Vec<(Option<u64>, String)> = {
    let mut queue = outbox.queue.lock();
    queue.bytes = 0;
    queue.messages.drain(..).collect()
  };
  if taken.is_empty() {
    return Ok(());
  }
  let sender = format!("{me:x}");
  let mut pipe = redis::pipe();
  for (to, text) in &taken {
    let stream = to.map_or_else(|| keys.events.clone(), |machine| keys.inbox(machine));
    pipe
      .cmd("XADD")
      .arg(&stream)
      .arg("MAXLEN")
      .arg("~")
      .arg(KEPT)
      .arg("*")
      .arg("f")
      .arg(&sender)
      .arg("m")
      .arg(text)
      .ignore();
    if to.is_some() {
      pipe
        .cmd("PEXPIRE")
        .arg(&stream)
        .arg(INBOX_TTL.as_millis() as u64)
        .ignore();
    }
  }
  let sent = pipe.query_async::<()>(connection).await;
  if sent.is_err() {
    let mut queue = outbox.queue.lock();
    for message in taken.into_iter().rev() {
      queue.bytes += message.1.len();
      queue.messages.push_front(message);
    }
  }
  sent
}

/// Reads the events and this machine's inbox, handing each message to the exchange, until a
/// read fails.
async fn receive(
  replica: &Replica,
  connection: &mut MultiplexedConnection,
  keys: &Keys,
  me: u64,
  events_cursor: &mut Option<String>,
  inbox_cursor: &mut String,
) -> redis::RedisError {
  let inbox = keys.inbox(me);
  loop {
    let events_from = events_cursor.clone().unwrap_or_else(|| "0-0".into());
    let read: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
      .arg("COUNT")
      .arg(MAX_READ)
      .arg("BLOCK")
      .arg(READ_BLOCK_MS)
      .arg("STREAMS")
      .arg(&keys.events)
      .arg(&inbox)
      .arg(&events_from)
      .arg(&*inbox_cursor)
      .query_async(connection)
      .await;
    let reply = match read {
      Ok(reply) => reply,
      Err(err) => return err,
    };
    for stream in reply.into_iter().flat_map(|reply| reply.keys) {
      let events = stream.key == keys.events;
      for entry in stream.ids {
        let from = entry
          .get::<String>("f")
          .and_then(|from| u64::from_str_radix(&from, 16).ok());
        let message = entry
          .get::<String>("m")
          .and_then(|text| serde_json::from_str::<Message>(&text).ok());
        if events {
          *events_cursor = Some(entry.id);
        } else {
          *inbox_cursor = entry.id;
        }
        match (from, message) {
          (Some(from), _) if from == me => {}
          (Some(from), Some(message)) => {
            let effects = replica.exchange().from_machine(from, message);
            replica.apply(effects, true);
          }
          _ => replica.debug(|| format!("an entry of {} is not memsync's: skipped", stream.key)),
        }
      }
    }
  }
}
