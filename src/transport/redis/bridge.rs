//! The bridge's two loops over Redis: one proposes the machine's patches to the log in batches,
//! the other reads the log back into the replica. What they share is [`Bridge`], the replica's
//! [`Proposer`]: proposals queue there (never blocking the JS thread) and wake the writer.

use std::sync::Arc;

use parking_lot::Mutex;
use redis::aio::ConnectionLike;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::clock::Hlc;
use crate::core::link::Proposer;
use crate::core::message::{LogEntry, RawJson};
use crate::core::replica::Replica;
use crate::error::Error;
use crate::transport::redis::address::Target;
use crate::transport::redis::connect;
use crate::transport::redis::entry;
use crate::transport::redis::log::{wait_after, Keys, Orderer, Placed, Proposal};
use crate::transport::redis::outgoing::{Answer, Outgoing, Proposed};

/// Proposals sent in one call of the ordering script.
const MAX_BATCH: usize = 256;
/// Entries read in one `XREAD`.
const MAX_READ: usize = 1024;
/// How long one `XREAD` waits for an entry before it is sent again; below redis-rs's response
/// timeout.
const READ_BLOCK_MS: u64 = 100;
/// Placed proposals kept for a resubmission when nothing confirms them.
const KEEP: usize = 10_000;

/// The patches of this machine on their way to the log.
pub struct Bridge {
  outgoing: Mutex<Outgoing>,
  wake: Notify,
}

impl Bridge {
  pub fn new() -> Arc<Bridge> {
    Arc::new(Bridge {
      outgoing: Mutex::new(Outgoing::new(KEEP)),
      wake: Notify::new(),
    })
  }

  /// Proposes the queued patches in batches, one at a time, until a call fails; the batch it
  /// was sending is proposed again first by the next call.
  pub async fn write<C: ConnectionLike>(
    &self,
    connection: &mut C,
    keys: &Keys,
  ) -> Result<(), String> {
    let orderer = Orderer::default();
    loop {
      let batch = self
        .outgoing
        .lock()
        .next_batch(MAX_BATCH)
        .map(<[Proposed]>::to_vec);
      let Some(batch) = batch else {
        self.wake.notified().await;
        continue;
      };
      let proposals: Vec<Proposal> = batch
        .iter()
        .map(|proposed| Proposal {
          origin: proposed.origin,
          seq: proposed.seq,
          payload: &proposed.payload,
        })
        .collect();
      match orderer.order(connection, keys, &proposals).await {
        Ok(placed) => {
          let answers: Vec<Answer> = placed
            .into_iter()
            .map(|placed| match placed {
              Placed::Ordered(version) => Answer::Ordered(version),
              Placed::Duplicate => Answer::Duplicate,
              Placed::Gap { last } => Answer::Gap { last },
            })
            .collect();
          self.outgoing.lock().answered(&answers);
        }
        Err(err) => {
          self.outgoing.lock().unanswered();
          return Err(err.to_string());
        }
      }
    }
  }
}

impl Proposer for Bridge {
  fn propose(&self, origin: u64, seq: u64, hlc: Hlc, update: &RawJson) {
    let payload = entry::encode(hlc, update).into();
    self.outgoing.lock().propose(Proposed {
      origin,
      seq,
      payload,
    });
    self.wake.notify_one();
  }
}

/// Reads the log into `replica` from its version on, until a call fails or the log does not
/// follow on (the caller joins again).
pub async fn read<C: ConnectionLike>(
  replica: &Replica,
  connection: &mut C,
  keys: &Keys,
) -> Result<(), String> {
  loop {
    let entries = wait_after(connection, keys, replica.version(), MAX_READ, READ_BLOCK_MS)
      .await
      .map_err(|err| err.to_string())?;
    let mut decided = Vec::with_capacity(entries.len());
    for read in entries {
      let (hlc, update) = entry::decode(&read.payload)
        .map_err(|why| format!("entry {} of the log: {why}", read.version))?;
      decided.push(LogEntry {
        version: read.version,
        origin: read.origin,
        seq: read.seq,
        hlc,
        update,
      });
    }
    if decided.is_empty() {
      continue;
    }
    for (origin, seq, err) in replica.log_receive(decided)? {
      replica
        .debug(|| format!("patch {seq} of {origin:x}, of another machine, was not applied: {err}"));
    }
  }
}

/// A bridge at work for one host term: its loops end when it is dropped.
pub struct Running {
  tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
  fn drop(&mut self) {
    for task in &self.tasks {
      task.abort();
    }
  }
}

/// Makes `replica` this machine's bridge to the log `target` holds: it connects (twice: the
/// reader blocks its connection), starts from the object's base document when the log is new
/// to it, then proposes and reads until dropped. A failure of a loop is an `error` event.
pub async fn start(replica: &Arc<Replica>, target: &Target) -> Result<Running, Error> {
  let keys = Keys::of(replica.name());
  let mut writing = connect::primary(target).await.map_err(Error::Transport)?;
  let mut reading = connect::primary(target).await.map_err(Error::Transport)?;
  join(replica, &mut writing, &keys)
    .await
    .map_err(|why| Error::Transport(format!("{}: {why}", target.redacted())))?;
  let bridge = Bridge::new();
  replica.become_bridge(bridge.clone());
  let (writer, writer_keys) = (replica.clone(), keys.clone());
  let write = tokio::spawn(async move {
    if let Err(why) = bridge.write(&mut writing, &writer_keys).await {
      writer.report_error(&Error::Transport(format!(
        "proposing to the log failed: {why}"
      )));
    }
  });
  let reader = replica.clone();
  let read = tokio::spawn(async move {
    if let Err(why) = read(&reader, &mut reading, &keys).await {
      reader.report_error(&Error::Transport(format!("reading the log failed: {why}")));
    }
  });
  Ok(Running {
    tasks: vec![write, read],
  })
}

/// A replica at version 0 takes the object's base document, which the first bridge of all sets
/// to its own: every machine then replays the same log on the same start.
async fn join<C: ConnectionLike>(
  replica: &Replica,
  connection: &mut C,
  keys: &Keys,
) -> Result<(), String> {
  let (data, version) = replica.ordered_snapshot()?;
  if version > 0 {
    return Ok(());
  }
  let ours = serde_json::to_string(&data).map_err(|err| err.to_string())?;
  let () = redis::cmd("SET")
    .arg(&keys.base)
    .arg(&ours)
    .arg("NX")
    .query_async::<Option<()>>(connection)
    .await
    .map_err(|err| err.to_string())?
    .unwrap_or(());
  let base: Option<String> = redis::cmd("GET")
    .arg(&keys.base)
    .query_async(connection)
    .await
    .map_err(|err| err.to_string())?;
  match base {
    Some(base) if base != ours => {
      let base = serde_json::from_str(&base)
        .map_err(|err| format!("the object's base document is not JSON: {err}"))?;
      replica.seed(base, 0);
      Ok(())
    }
    Some(_) => Ok(()),
    None => Err("the object's base document vanished as it was set".to_owned()),
  }
}
