//! A machine's bridge to the log: one task that proposes the machine's patches in batches and
//! reads the log back into the replica, over two connections to the primary, and starts again
//! after any failure. What the replica calls is [`Bridge`], its [`Proposer`]: proposals queue
//! there (never blocking the JS thread) and wake the writer.
//!
//! After every reconnect, and every second while reading, the bridge checks that the primary is
//! one and that the log still holds the last entry it read. Redis replicates asynchronously, so
//! a failover can lose the last entries: the bridge then starts again from the log (`rejoin`) and
//! proposes again everything it keeps (`Outgoing`); the script drops what the log still has.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::RedisError;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::clock::Hlc;
use crate::core::link::Proposer;
use crate::core::locks::{KeyState, LockOp};
use crate::core::message::{LogEntry, RawJson};
use crate::core::order::Progress;
use crate::core::replica::Replica;
use crate::doc::Value;
use crate::error::Error;
use crate::transport::redis::address::{Node, Target};
use crate::transport::redis::connect;
use crate::transport::redis::entry;
use crate::transport::redis::log::{self, wait_after, Keys, Orderer, Placed, Proposal};
use crate::transport::redis::machines;
use crate::transport::redis::outgoing::{Answer, Outgoing, Proposed};
use crate::transport::redis::snapshot::{self, Compaction, Snapshot};

/// Proposals sent in one call of the ordering script.
const MAX_BATCH: usize = 256;
/// Entries read in one `XREAD`.
const MAX_READ: usize = 1024;
/// How long one `XREAD` waits for an entry before it is sent again; below redis-rs's response
/// timeout (500 ms), which is how a hung primary shows.
const READ_BLOCK_MS: u64 = 100;
/// How long one `WAIT` lets a replica confirm, for the same reason.
const WAIT_MS: u64 = 300;
/// Placed proposals kept for a resubmission when nothing confirms them.
const KEEP: usize = 10_000;
/// How often a reading bridge checks the primary's role and the last entry it read.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Reconnection attempts back off up to this pause.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a bridge holds the right to write a snapshot: at most one is written this often.
const LEASE_MS: u64 = 10_000;
/// An outage longer than this is an `error` event (shorter ones are NODE_DEBUG lines).
const REPORT_OUTAGE_AFTER: Duration = Duration::from_secs(5);

/// When a patch's promise resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
  /// Once the primary ordered it and the bridge read it back: a failover of Redis can lose it
  /// (the bridge proposes again what it keeps, up to [`KEEP`] patches).
  #[default]
  Primary,
  /// Once a replica of Redis has it too (`WAIT 1`). In both modes, after a failover of Redis
  /// that lost entries, the bridge proposes again the last [`KEEP`] patches it placed.
  Replicated,
}

impl Durability {
  /// The `durability` option's value, or why it is none.
  pub fn parse(text: &str) -> Result<Durability, String> {
    match text {
      "primary" => Ok(Durability::Primary),
      "replicated" => Ok(Durability::Replicated),
      other => Err(format!(
        "durability must be 'primary' or 'replicated', not '{other}'"
      )),
    }
  }
}

/// Where and how a machine shares its object: `options.transport` and `options.durability`.
#[derive(Debug, Clone)]
pub struct Shared {
  pub target: Target,
  pub durability: Durability,
  pub compaction: Compaction,
}

/// Why a bridge's session with Redis ended.
enum Fault {
  /// The connection failed, or the server is no longer the primary: connect again.
  Connection(String),
  /// The log no longer holds what the replica read: start again from it.
  Lost(String),
}

impl From<RedisError> for Fault {
  fn from(err: RedisError) -> Fault {
    Fault::Connection(err.to_string())
  }
}

/// The patches of this machine on their way to the log.
pub struct Bridge {
  outgoing: Mutex<Outgoing>,
  wake: Notify,
  durability: Durability,
  /// The origins that propose through this bridge: with `Replicated`, their entries are read
  /// into the replica (which settles them) only once a replica of Redis confirmed them.
  local: Mutex<HashSet<u64>>,
  /// The highest version `WAIT` confirmed for this bridge's writes.
  confirmed: watch::Sender<u64>,
  /// The reader waits for a confirmation that no proposal will bring (entries a previous bridge
  /// of this machine placed): the writer asks for one with an empty batch.
  confirm_wanted: AtomicBool,
  /// The last entry the replica took, from the reader or, for this machine's own batches, from
  /// the writer: whoever takes entries holds it, so the two take each entry once, in order.
  cursor: Mutex<Option<Read>>,
  /// The origin of this bridge's lock changes (apart from its patches', whose sequence numbers
  /// the replica gives) and the last sequence number given to one.
  lock_origin: u64,
  lock_seq: AtomicU64,
}

impl Bridge {
  fn new(durability: Durability, origin: u64) -> Arc<Bridge> {
    Arc::new(Bridge {
      // Origins are random: the complement of this one is no other instance's.
      lock_origin: !origin,
      lock_seq: AtomicU64::new(0),
      outgoing: Mutex::new(Outgoing::new(KEEP)),
      wake: Notify::new(),
      durability,
      local: Mutex::new(HashSet::new()),
      confirmed: watch::Sender::new(0),
      confirm_wanted: AtomicBool::new(false),
      cursor: Mutex::new(None),
    })
  }

  /// Proposes the queued patches in batches, one at a time, until a call fails; the batch it
  /// was sending is proposed again first by the next session.
  async fn write<C: ConnectionLike>(
    &self,
    replica: &Replica,
    connection: &mut C,
    keys: &Keys,
  ) -> Fault {
    let orderer = Orderer::default();
    loop {
      let batch = self
        .outgoing
        .lock()
        .next_batch(MAX_BATCH)
        .map(<[Proposed]>::to_vec);
      let confirm = self.confirm_wanted.swap(false, Ordering::AcqRel);
      if batch.is_none() && !confirm {
        self.wake.notified().await;
        continue;
      }
      let batch = batch.unwrap_or_default();
      let proposals: Vec<Proposal> = batch
        .iter()
        .map(|proposed| Proposal {
          origin: proposed.origin,
          seq: proposed.seq,
          skips_gap: proposed.skips_gap,
          payload: &proposed.payload,
        })
        .collect();
      let ordered = match orderer.order(connection, keys, &proposals).await {
        Ok(ordered) => ordered,
        Err(err) => return err.into(),
      };
      let answers: Vec<Answer> = ordered
        .placed
        .into_iter()
        .map(|placed| match placed {
          Placed::Ordered(version) => Answer::Ordered(version),
          Placed::Duplicate => Answer::Duplicate,
          Placed::Gap { last } => Answer::Gap { last },
        })
        .collect();
      let gaps = answers
        .iter()
        .filter(|answer| matches!(answer, Answer::Gap { .. }))
        .count();
      if gaps > 0 {
        replica.debug(|| {
          format!("{gaps} proposals follow patches the log lost: proposing again from the gap")
        });
      }
      if !answers.is_empty() {
        self.outgoing.lock().answered(&answers);
      }
      if self.durability == Durability::Replicated {
        if let Err(fault) = self
          .wait_replicated(replica, connection, ordered.head)
          .await
        {
          return fault;
        }
      }
      self.take_own(replica, &batch, &answers);
    }
  }

  /// A batch the script placed right after the last entry the replica took goes into the replica
  /// from its answer, without waiting for the reader to read it back: a patch then resolves one
  /// read sooner. The chain is the script's, computed here too.
  fn take_own(&self, replica: &Replica, batch: &[Proposed], answers: &[Answer]) {
    let mut cursor = self.cursor.lock();
    let Some(Read {
      version: taken,
      chain: Some(chain),
      ..
    }) = cursor.as_ref()
    else {
      return;
    };
    let mut chain = chain.clone();
    let mut entries = Vec::with_capacity(batch.len());
    let mut locks = Vec::new();
    for (position, (proposed, answer)) in (taken + 1..).zip(batch.iter().zip(answers)) {
      let (Answer::Ordered(version), Ok((hlc, update))) =
        (answer, entry::decode(&proposed.payload))
      else {
        return;
      };
      if *version != position {
        return;
      }
      chain = log::chain_after(&chain, proposed.origin, proposed.seq);
      locks.push(entry::lock_of(&proposed.payload));
      entries.push(LogEntry {
        version: *version,
        origin: proposed.origin,
        seq: proposed.seq,
        hlc,
        update,
      });
    }
    let Some(newest) = entries.last() else { return };
    let read = Read {
      version: newest.version,
      id: Some((newest.origin, newest.seq)),
      chain: Some(chain),
    };
    // An `Err` (the log jumps) leaves the cursor: the reader reads the entries and finds out.
    if replica.log_receive(entries).is_ok() {
      *cursor = Some(read);
      take_locks(replica, locks);
    }
  }

  /// Waits until a replica of Redis has every write of this connection: the log up to
  /// `head`, since the script that answered `head` wrote.
  async fn wait_replicated<C: ConnectionLike>(
    &self,
    replica: &Replica,
    connection: &mut C,
    head: u64,
  ) -> Result<(), Fault> {
    let began = Instant::now();
    let mut told = Duration::ZERO;
    loop {
      let replicas: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(WAIT_MS)
        .query_async(connection)
        .await?;
      if replicas >= 1 {
        self.confirmed.send_if_modified(|confirmed| {
          let newer = head > *confirmed;
          *confirmed = (*confirmed).max(head);
          newer
        });
        return Ok(());
      }
      if began.elapsed() >= told + CHECK_EVERY {
        told = began.elapsed();
        replica.debug(|| {
          format!(
            "durability 'replicated': no Redis replica confirmed version {head} for {} ms",
            told.as_millis()
          )
        });
      }
    }
  }

  /// Entries of this machine's origins wait, with `Replicated`, until `WAIT` confirmed them:
  /// how many of `entries` the replica may read now.
  fn readable(&self, entries: &[LogEntry]) -> usize {
    if self.durability == Durability::Primary {
      return entries.len();
    }
    let confirmed = *self.confirmed.borrow();
    let local = self.local.lock();
    entries
      .iter()
      .position(|entry| entry.version > confirmed && local.contains(&entry.origin))
      .unwrap_or(entries.len())
  }
}

impl Bridge {
  fn propose_payload(&self, origin: u64, seq: u64, payload: Vec<u8>) {
    if self.durability == Durability::Replicated {
      self.local.lock().insert(origin);
    }
    self.outgoing.lock().propose(Proposed {
      origin,
      seq,
      payload: payload.into(),
      skips_gap: false,
    });
    self.wake.notify_one();
  }
}

impl Proposer for Bridge {
  fn propose(&self, origin: u64, seq: u64, hlc: Hlc, update: &RawJson) {
    self.propose_payload(origin, seq, entry::encode(hlc, update));
  }

  fn propose_lock(&self, op: LockOp) {
    let seq = self.lock_seq.fetch_add(1, Ordering::Relaxed) + 1;
    self.propose_payload(self.lock_origin, seq, entry::encode_lock(&op));
  }
}

/// Applies the lock changes among entries the replica just took, in order.
fn take_locks(replica: &Replica, locks: impl IntoIterator<Item = Option<LockOp>>) {
  for op in locks.into_iter().flatten() {
    let effects = replica.exchange().logged_lock(op);
    replica.apply(effects, true);
  }
}

/// The last entry the replica read: what the log must still hold, and what the next entry
/// must chain on to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Read {
  version: u64,
  /// Its origin and seq; unknown when the replica started from a snapshot at this version.
  id: Option<(u64, u64)>,
  /// Unknown for the entries a previous bridge of this machine read (a local failover).
  chain: Option<String>,
}

impl Read {
  /// Before the first entry of the log.
  fn start() -> Read {
    Read {
      version: 0,
      id: None,
      chain: Some(String::new()),
    }
  }

  /// Where a snapshot leaves the replica.
  fn snapshot(snapshot: &Snapshot) -> Read {
    Read {
      version: snapshot.progress.version,
      id: None,
      chain: Some(snapshot.chain.clone()),
    }
  }

  /// Whether `entry` is this one.
  fn is(&self, entry: &log::Entry) -> bool {
    self.id.is_none_or(|id| id == (entry.origin, entry.seq))
      && self
        .chain
        .as_ref()
        .is_none_or(|chain| *chain == entry.chain)
  }

  /// Whether `entry` follows this one in the same log.
  fn is_followed_by(&self, entry: &log::Entry) -> bool {
    entry.version == self.version + 1
      && self
        .chain
        .as_ref()
        .is_none_or(|chain| log::chain_after(chain, entry.origin, entry.seq) == entry.chain)
  }
}

/// Reads the log into `replica` from its version on, checking that each entry follows the last
/// one read, and every [`CHECK_EVERY`] that the server is still the primary.
async fn read(
  replica: &Replica,
  bridge: &Bridge,
  connection: &mut MultiplexedConnection,
  server: &Server<'_>,
  keys: &Keys,
  compactor: &mut Compactor,
) -> Fault {
  let mut checked = Instant::now();
  let mut confirmations = bridge.confirmed.subscribe();
  loop {
    if checked.elapsed() >= CHECK_EVERY {
      let last = bridge.cursor.lock().clone();
      if let Err(fault) = check(connection, server, keys, last.as_ref()).await {
        return fault;
      }
      compactor
        .tick(replica, connection, keys, &bridge.cursor)
        .await;
      checked = Instant::now();
    }
    let entries =
      match wait_after(connection, keys, replica.version(), MAX_READ, READ_BLOCK_MS).await {
        Ok(entries) => entries,
        Err(err) => return err.into(),
      };
    let last = bridge.cursor.lock().clone();
    let taken = last.as_ref().map_or(0, |last| last.version);
    // What the writer took from its answers since this read began is taken already.
    let fresh = entries.into_iter().filter(|read| read.version > taken);
    let (mut decided, mut reads, mut locks) = match decode(fresh, last.as_ref()) {
      Ok(decoded) => decoded,
      Err(fault) => return fault,
    };
    while !decided.is_empty() {
      let readable = bridge.readable(&decided);
      if readable == 0 {
        // A replica of Redis has not confirmed this machine's next entry yet; the wait is
        // bounded so that the primary's role is still checked.
        bridge.confirm_wanted.store(true, Ordering::Release);
        bridge.wake.notify_one();
        if let Ok(Err(_)) = tokio::time::timeout(CHECK_EVERY, confirmations.changed()).await {
          return Fault::Connection("the bridge stopped".into());
        }
        if checked.elapsed() >= CHECK_EVERY {
          replica.debug(|| {
            format!(
              "durability 'replicated': entry {} waits for a Redis replica to confirm it (confirmed up to {})",
              decided[0].version,
              *bridge.confirmed.borrow()
            )
          });
          if let Err(fault) = check(connection, server, keys, None).await {
            return fault;
          }
          checked = Instant::now();
        }
        continue;
      }
      let mut cursor = bridge.cursor.lock();
      let taken = cursor.as_ref().map_or(0, |last| last.version);
      let skip = decided[..readable]
        .iter()
        .take_while(|entry| entry.version <= taken)
        .count();
      decided.drain(..skip);
      reads.drain(..skip);
      locks.drain(..skip);
      let readable = readable - skip;
      if readable == 0 {
        continue;
      }
      let rest = decided.split_off(readable);
      let unread = reads.split_off(readable);
      let later = locks.split_off(readable);
      *cursor = std::mem::replace(&mut reads, unread).pop();
      match replica.log_receive(std::mem::replace(&mut decided, rest)) {
        Ok(refused) => {
          take_locks(replica, std::mem::replace(&mut locks, later));
          for (origin, seq, err) in refused {
            replica.debug(|| {
              format!("patch {seq} of {origin:x}, of another machine, was not applied: {err}")
            });
          }
        }
        Err(why) => return Fault::Lost(why),
      }
    }
  }
}

/// The entries read, checked to follow `last` and each other (their chain), as the replica takes
/// them, with where each leaves the reading and the lock change each carries.
fn decode(
  entries: impl Iterator<Item = log::Entry>,
  last: Option<&Read>,
) -> Result<Decoded, Fault> {
  let mut decided = Vec::new();
  let mut reads: Vec<Read> = Vec::new();
  let mut locks = Vec::new();
  for read in entries {
    let previous = reads.last().or(last);
    if let Some(previous) = previous.filter(|previous| !previous.is_followed_by(&read)) {
      return Err(Fault::Lost(format!(
        "the log changed under this machine after version {}",
        previous.version
      )));
    }
    let (hlc, update) = entry::decode(&read.payload).map_err(|why| {
      Fault::Lost(format!(
        "entry {} of the log is not one of memsync: {why}",
        read.version
      ))
    })?;
    locks.push(entry::lock_of(&read.payload));
    reads.push(Read {
      version: read.version,
      id: Some((read.origin, read.seq)),
      chain: Some(read.chain),
    });
    decided.push(LogEntry {
      version: read.version,
      origin: read.origin,
      seq: read.seq,
      hlc,
      update,
    });
  }
  Ok((decided, reads, locks))
}

/// What [`decode`] gives: the entries, where each leaves the reading, their lock changes.
type Decoded = (Vec<LogEntry>, Vec<Read>, Vec<Option<LockOp>>);

/// Reads the log up to its end into a replica that just joined, so that `start()` resolves
/// with the object as it is now, not as its snapshot or base was. A log that does not follow on
/// from the replica (trimmed past a new local host's version, or changed) is joined again from
/// its newest snapshot.
async fn catch_up<C: ConnectionLike>(
  replica: &Replica,
  connection: &mut C,
  keys: &Keys,
  mut last: Option<Read>,
) -> Result<Option<Read>, String> {
  let mut joins = 0;
  loop {
    let entries = log::read_after(connection, keys, replica.version(), MAX_READ)
      .await
      .map_err(|err| err.to_string())?;
    if entries.is_empty() {
      return Ok(last);
    }
    let taken = decode(entries.into_iter(), last.as_ref())
      .map_err(|fault| match fault {
        Fault::Lost(why) | Fault::Connection(why) => why,
      })
      .and_then(|(decided, mut reads, locks)| {
        replica.log_receive(decided)?;
        take_locks(replica, locks);
        Ok(reads.pop())
      });
    match taken {
      Ok(read) => last = read,
      Err(why) if joins < 3 => {
        joins += 1;
        replica
          .debug(|| format!("the log does not follow on from this machine ({why}): joining again"));
        let (ours, _) = replica.ordered_snapshot()?;
        let start = starting_point(connection, keys, &ours).await?;
        last = Some(take(replica, start, ours));
      }
      Err(why) => return Err(why),
    }
  }
}

/// Makes the snapshots of the log, when this bridge holds the lease and one is due.
struct Compactor {
  compaction: Compaction,
  /// The newest snapshot's version, as last seen, and since when.
  newest: Option<u64>,
  since: Instant,
}

impl Compactor {
  fn new(compaction: Compaction) -> Compactor {
    Compactor {
      compaction,
      newest: None,
      since: Instant::now(),
    }
  }

  /// Writes a snapshot of the replica, at `last`, when the log has grown enough since the newest
  /// one and no other bridge is writing one. A failure is a NODE_DEBUG line: the next tick tries
  /// again, and the log is only trimmed behind a snapshot that was written.
  async fn tick(
    &mut self,
    replica: &Replica,
    connection: &mut MultiplexedConnection,
    keys: &Keys,
    cursor: &Mutex<Option<Read>>,
  ) {
    let last = cursor.lock().clone();
    let last = last.as_ref();
    let Ok(newest) = snapshot::newest_version(connection, keys).await else {
      return;
    };
    if newest != self.newest {
      self.newest = newest;
      self.since = Instant::now();
    }
    let from = newest.unwrap_or(0);
    let version = replica.version();
    let due = version >= from + self.compaction.every_entries
      || (version > from
        && self.since.elapsed().as_millis() >= u128::from(self.compaction.every_ms));
    let Some(chain) = last
      .filter(|last| due && last.version == version)
      .and_then(|last| last.chain.clone())
    else {
      return;
    };
    let leased = redis::cmd("SET")
      .arg(&keys.lease)
      .arg(replica.origin().to_string())
      .arg("NX")
      .arg("PX")
      .arg(LEASE_MS)
      .query_async::<Option<String>>(connection)
      .await;
    if !matches!(leased, Ok(Some(_))) {
      return;
    }
    // Under the cursor: the writer takes no entry (nor lock change) between the two.
    let state = {
      let _taking = cursor.lock();
      replica
        .log_state()
        .map(|(data, progress)| (data, progress, replica.exchange().lock_state()))
    };
    let outcome = match state {
      Ok((data, progress, locks)) if progress.version == version => {
        let snapshot = Snapshot {
          chain,
          progress,
          data,
          locks,
        };
        snapshot::write(connection, keys, &snapshot, &self.compaction).await
      }
      Ok(_) => return,
      Err(why) => Err(why),
    };
    match outcome {
      Ok(_) => {
        self.newest = Some(version);
        self.since = Instant::now();
        replica.debug(|| format!("snapshot of the log at version {version} written"));
      }
      Err(why) => replica.debug(|| format!("a snapshot of the log failed: {why}")),
    }
  }
}

/// Whether the server at `server` is still the primary (by its role, and by the sentinels or the
/// Cluster) and the log still holds `last`.
async fn check(
  connection: &mut MultiplexedConnection,
  server: &Server<'_>,
  keys: &Keys,
  last: Option<&Read>,
) -> Result<(), Fault> {
  if !connect::is_primary(connection).await? {
    return Err(Fault::Connection(
      "the server is no longer the primary".into(),
    ));
  }
  match connect::named_primary(server.target, keys).await {
    Ok(Some(named)) if named != server.node => {
      return Err(Fault::Connection(format!(
        "{} now names {}:{} the primary",
        connect::namer(server.target),
        named.host,
        named.port
      )))
    }
    // Sentinels or nodes that cannot be asked leave the question to the server's role.
    Ok(_) | Err(_) => {}
  }
  let Some(last) = last.filter(|last| last.version > 0) else {
    return Ok(());
  };
  match log::entry_at(connection, keys, last.version).await? {
    Some(entry) if last.is(&entry) => Ok(()),
    Some(_) => Err(Fault::Lost(format!(
      "the log holds another entry at version {}",
      last.version
    ))),
    // Trimmed up to a snapshot at that version: the next entry must follow on from it.
    None => match log::read_after(connection, keys, last.version, 1)
      .await?
      .first()
    {
      Some(next) if last.chain.is_some() && last.is_followed_by(next) => Ok(()),
      None if log::head(connection, keys).await? == last.version => Ok(()),
      _ => Err(Fault::Lost(format!(
        "the log no longer holds version {}",
        last.version
      ))),
    },
  }
}

/// The Redis server a session talks to, as `target` led to it.
struct Server<'a> {
  target: &'a Target,
  node: Node,
}

/// A bridge at work for one host term: its tasks (the log's, the machines' exchange) end when it
/// is dropped.
pub struct Running {
  task: JoinHandle<()>,
  machines: JoinHandle<()>,
}

impl Drop for Running {
  fn drop(&mut self) {
    self.task.abort();
    self.machines.abort();
  }
}

/// Makes `replica` this machine's bridge to the log `shared.target` holds: it connects (twice:
/// the reader blocks its connection), checks the object's keys, starts from the object's base
/// document when the log is new to it, then proposes and reads until dropped, connecting again
/// after failures; beside it, the machines' exchange (presence, RPC, events). An `Err`: Redis
/// cannot be reached, refuses the object, or the other machines have as many writers as
/// `maxWriters` allows.
pub async fn start(replica: &Arc<Replica>, shared: &Shared) -> Result<Running, Error> {
  let target = shared.target.clone();
  let keys = Keys::of(replica.name());
  let fail = |why: String| Error::Transport(format!("{}: {why}", target.redacted()));
  let (mut writing, reading, node) = connect_both(&target, &keys)
    .await
    .map_err(Error::Transport)?;
  log::check_keys(&mut writing, &keys).await.map_err(fail)?;
  let elsewhere = machines::processes_elsewhere(&mut writing, &keys, replica.origin())
    .await
    .map_err(fail)?;
  replica.exchange().admits_machine(&elsewhere)?;
  warn_of_skew(replica, &mut writing).await;
  let last = join(replica, &mut writing, &keys).await.map_err(fail)?;
  let last = catch_up(replica, &mut writing, &keys, last)
    .await
    .map_err(fail)?;
  let bridge = Bridge::new(shared.durability, replica.origin());
  *bridge.cursor.lock() = last;
  replica.become_bridge(bridge.clone());
  let outbox = machines::attach(replica);
  let machines = tokio::spawn(machines::run(
    replica.clone(),
    target.clone(),
    keys.clone(),
    outbox,
  ));
  let compactor = Compactor::new(shared.compaction);
  let replica = replica.clone();
  let task = tokio::spawn(async move {
    supervise(
      &replica,
      &bridge,
      &target,
      &keys,
      (writing, reading, node),
      compactor,
    )
    .await;
  });
  Ok(Running { task, machines })
}

/// Clocks further apart than this weaken the stale-write rule across machines.
const MAX_SKEW_MS: u64 = 500;

/// Warns when this machine's clock and Redis's differ by more than [`MAX_SKEW_MS`]: a patch's
/// timestamp decides whether it is stale against another machine's.
async fn warn_of_skew(replica: &Replica, connection: &mut MultiplexedConnection) {
  let asked = replica.time().now_ms();
  let Ok((seconds, micros)) = redis::cmd("TIME")
    .query_async::<(u64, u64)>(connection)
    .await
  else {
    return;
  };
  let answered = replica.time().now_ms();
  let redis_ms = seconds * 1000 + micros / 1000;
  // Compared with the middle of the round trip.
  let local_ms = asked + (answered - asked) / 2;
  let skew = redis_ms.abs_diff(local_ms);
  if skew > MAX_SKEW_MS {
    replica.warn(
      "MEMSYNC_CLOCK_SKEW",
      &format!(
        "this machine's clock is {skew} ms {} Redis's (TIME): a patch's timestamp decides \
         whether it overwrites another machine's, so keep the clocks in sync (NTP)",
        if local_ms > redis_ms {
          "ahead of"
        } else {
          "behind"
        }
      ),
    );
  }
}

/// Runs sessions with Redis one after another, connecting again after a failure and starting
/// again from the log when it lost entries.
async fn supervise(
  replica: &Replica,
  bridge: &Bridge,
  target: &Target,
  keys: &Keys,
  first: (MultiplexedConnection, MultiplexedConnection, Node),
  mut compactor: Compactor,
) {
  let mut connections = Some(first);
  let mut backoff = Duration::from_millis(10);
  let mut outage: Option<(Instant, bool)> = None;
  let mut lost = false;
  loop {
    let (mut writing, mut reading, node) = match connections.take() {
      Some(both) => both,
      None => match connect_both(target, keys).await {
        Ok(both) => both,
        Err(why) => {
          note_outage(replica, &mut outage, &why);
          tokio::time::sleep(backoff).await;
          backoff = (backoff * 2).min(MAX_BACKOFF);
          continue;
        }
      },
    };
    // This session's WAITs confirm what the previous primary's did not.
    bridge.confirmed.send_replace(0);
    let server = Server { target, node };
    let last = bridge.cursor.lock().clone();
    let verified = match check(&mut reading, &server, keys, last.as_ref()).await {
      Err(Fault::Lost(why)) => {
        replica.debug(|| format!("the log lost entries this machine read ({why}): joining again"));
        lost = true;
        Err(Fault::Lost(why))
      }
      other => other,
    };
    let ready = match verified {
      Ok(()) if !lost => Ok(()),
      Ok(()) | Err(Fault::Lost(_)) => match rejoin(replica, bridge, &mut writing, keys).await {
        Ok(read) => {
          lost = false;
          *bridge.cursor.lock() = Some(read);
          Ok(())
        }
        Err(fault) => Err(fault),
      },
      Err(fault) => Err(fault),
    };
    if let Err(Fault::Connection(why) | Fault::Lost(why)) = ready {
      note_outage(replica, &mut outage, &why);
      tokio::time::sleep(backoff).await;
      backoff = (backoff * 2).min(MAX_BACKOFF);
      continue;
    }
    replica.debug(|| "bridging to Redis".to_owned());
    bridge.wake.notify_one();
    let began = Instant::now();
    let fault = tokio::select! {
      fault = bridge.write(replica, &mut writing, keys) => fault,
      fault = read(replica, bridge, &mut reading, &server, keys, &mut compactor) => fault,
    };
    bridge.outgoing.lock().unanswered();
    // Only a session that lasted ends the trouble: one that fails at once again and again (an
    // entry that is not memsync's, a server that keeps dropping it) backs off and is reported.
    if began.elapsed() >= CHECK_EVERY {
      outage = None;
      backoff = Duration::from_millis(10);
    }
    match fault {
      Fault::Connection(why) => note_outage(replica, &mut outage, &why),
      Fault::Lost(why) => {
        note_outage(
          replica,
          &mut outage,
          &format!("the log lost entries this machine read ({why}): joining again"),
        );
        lost = true;
        connections = Some((writing, reading, server.node));
      }
    }
    tokio::time::sleep(backoff).await;
    backoff = (backoff * 2).min(MAX_BACKOFF);
  }
}

/// Two connections to one primary: the writer's and the reader's (which blocks on `XREAD`).
async fn connect_both(
  target: &Target,
  keys: &Keys,
) -> Result<(MultiplexedConnection, MultiplexedConnection, Node), String> {
  let (writing, node) = connect::primary(target, keys).await?;
  let (reading, other) = connect::primary(target, keys).await?;
  if other != node {
    return Err(format!(
      "the primary moved from {}:{} to {}:{} while connecting",
      node.host, node.port, other.host, other.port
    ));
  }
  Ok((writing, reading, node))
}

/// A failed attempt: a NODE_DEBUG line, and one `error` event once it lasts.
fn note_outage(replica: &Replica, outage: &mut Option<(Instant, bool)>, why: &str) {
  let (since, reported) = outage.get_or_insert((Instant::now(), false));
  replica.debug(|| {
    format!(
      "bridging to Redis failed ({why}), {} ms into the outage: trying again",
      since.elapsed().as_millis()
    )
  });
  if !*reported && since.elapsed() >= REPORT_OUTAGE_AFTER {
    *reported = true;
    replica.report_error(&Error::Transport(format!(
      "cannot bridge to Redis for {} s ({why}); patches wait, and are proposed once it answers",
      since.elapsed().as_secs()
    )));
  }
}

/// Where a replica that starts reading the log starts from.
enum Start {
  /// The newest snapshot.
  Snapshot(Snapshot),
  /// The object's base document, from which the whole log is read.
  Base(Value),
  /// Nothing of the object was in Redis: the document offered became its base.
  Seeded,
}

/// The newest snapshot, else the object's base document, which the first bridge of all sets to
/// `ours`: every machine then replays the same log from the same start.
async fn starting_point<C: ConnectionLike>(
  connection: &mut C,
  keys: &Keys,
  ours: &Value,
) -> Result<Start, String> {
  if let Some(snapshot) = snapshot::read(connection, keys).await? {
    return Ok(Start::Snapshot(snapshot));
  }
  let text = serde_json::to_string(ours).map_err(|err| err.to_string())?;
  let set = redis::cmd("SET")
    .arg(&keys.base)
    .arg(&text)
    .arg("NX")
    .query_async::<Option<String>>(connection)
    .await
    .map_err(|err| err.to_string())?
    .is_some();
  if set {
    return Ok(Start::Seeded);
  }
  let base: Option<String> = redis::cmd("GET")
    .arg(&keys.base)
    .query_async(connection)
    .await
    .map_err(|err| err.to_string())?;
  let base = base.ok_or("the object's base document vanished as it was read")?;
  serde_json::from_str(&base)
    .map(Start::Base)
    .map_err(|err| format!("the object's base document is not JSON: {err}"))
}

/// Takes `start` into the replica; where the reading goes on from.
fn take(replica: &Replica, start: Start, ours: Value) -> Read {
  match start {
    Start::Snapshot(snapshot) => {
      let read = Read::snapshot(&snapshot);
      replica.rejoin(snapshot.data, snapshot.progress);
      restore_locks(replica, snapshot.locks);
      read
    }
    Start::Base(base) => {
      replica.rejoin(base, Progress::default());
      restore_locks(replica, Vec::new());
      Read::start()
    }
    Start::Seeded => {
      replica.rejoin(ours, Progress::default());
      restore_locks(replica, Vec::new());
      Read::start()
    }
  }
}

/// What a client replica never kept and a bridge needs, at `version`: the rules' state (the
/// stale-write window, each origin's progress) and the lock table. They are computed on a scratch
/// replica from the newest snapshot (or the base) and the log up to `version`, so that the
/// verdicts of a new local host agree with the other machines'. `None` when the log cannot tell
/// (trimmed past it, or its snapshot is newer): the caller joins from the newest snapshot.
pub async fn state_at<C: ConnectionLike>(
  connection: &mut C,
  keys: &Keys,
  name: &str,
  version: u64,
) -> Result<Option<(Progress, Vec<KeyState>)>, String> {
  let (data, progress, locks) = match snapshot::read(connection, keys).await? {
    Some(snapshot) if snapshot.progress.version <= version => {
      (snapshot.data, snapshot.progress, snapshot.locks)
    }
    Some(_) => return Ok(None),
    None => {
      let base: Option<String> = redis::cmd("GET")
        .arg(&keys.base)
        .query_async(connection)
        .await
        .map_err(|err| err.to_string())?;
      let Some(base) = base else { return Ok(None) };
      let base = serde_json::from_str(&base)
        .map_err(|err| format!("the object's base document is not JSON: {err}"))?;
      (base, Progress::default(), Vec::new())
    }
  };
  let scratch =
    Replica::new(name, Value::Object(Default::default()), 0).map_err(|err| err.to_string())?;
  scratch.rejoin(data, progress);
  restore_locks(&scratch, locks);
  while scratch.version() < version {
    let at = scratch.version();
    let entries = log::read_after(connection, keys, at, MAX_READ)
      .await
      .map_err(|err| err.to_string())?;
    if entries.first().is_none_or(|first| first.version != at + 1) {
      return Ok(None);
    }
    let wanted = entries
      .into_iter()
      .take_while(|read| read.version <= version);
    let (decided, _, locks) = decode(wanted, None).map_err(|fault| match fault {
      Fault::Lost(why) | Fault::Connection(why) => why,
    })?;
    scratch.log_receive(decided)?;
    take_locks(&scratch, locks);
  }
  let (_, progress) = scratch.log_state()?;
  let locks = scratch.exchange().lock_state();
  Ok(Some((progress, locks)))
}

/// The log's lock table where a replica starts reading it.
fn restore_locks(replica: &Replica, locks: Vec<KeyState>) {
  let effects = replica.exchange().restore_locks(locks);
  replica.apply(effects, true);
}

/// Starts the replica again from the log and proposes again everything the bridge keeps. When
/// the object is gone from Redis (restarted empty), the replica's ordered document becomes its
/// base: the patches it contains are not proposed again.
async fn rejoin(
  replica: &Replica,
  bridge: &Bridge,
  connection: &mut MultiplexedConnection,
  keys: &Keys,
) -> Result<Read, Fault> {
  let (ours, progress) = replica.log_state().map_err(Fault::Lost)?;
  let start = starting_point(connection, keys, &ours)
    .await
    .map_err(Fault::Connection)?;
  if let Start::Seeded = start {
    replica
      .debug(|| "the object is gone from Redis: this machine's document is its base again".into());
    bridge.outgoing.lock().forget_taken(&progress.applied);
  }
  let read = take(replica, start, ours);
  bridge.outgoing.lock().resubmit();
  Ok(read)
}

/// A replica starts from the newest snapshot or the object's base document, unless it read the
/// log before (a new local host), when it goes on from its last entry. Where the reading goes
/// on from, when known.
async fn join<C: ConnectionLike>(
  replica: &Replica,
  connection: &mut C,
  keys: &Keys,
) -> Result<Option<Read>, String> {
  if replica.version() > 0 {
    if let Some((version, origin, seq)) = replica.last_entry() {
      if let Some((progress, locks)) = state_at(connection, keys, replica.name(), version).await? {
        replica.adopt_progress(progress)?;
        restore_locks(replica, locks);
        return Ok(Some(Read {
          version,
          id: Some((origin, seq)),
          chain: None,
        }));
      }
      replica.debug(|| {
        format!("the log cannot give its state at version {version}: joining from its snapshot")
      });
    }
    // A version this machine cannot place in the log (a document loaded from options.file): the
    // log's state wins, and the document only seeds an object Redis does not hold.
  }
  let (ours, _) = replica.ordered_snapshot()?;
  let start = starting_point(connection, keys, &ours).await?;
  Ok(Some(take(replica, start, ours)))
}
