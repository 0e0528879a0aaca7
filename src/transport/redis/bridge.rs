//! The bridge's two loops over Redis: one proposes the machine's patches to the log in batches,
//! the other reads the log back into the replica. What they share is [`Bridge`], the replica's
//! [`Proposer`]: proposals queue there (never blocking the JS thread) and wake the writer.

use std::sync::Arc;

use parking_lot::Mutex;
use redis::aio::ConnectionLike;
use tokio::sync::Notify;

use crate::clock::Hlc;
use crate::core::link::Proposer;
use crate::core::message::{LogEntry, RawJson};
use crate::core::replica::Replica;
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
      replica.debug(|| format!("patch {seq} of {origin:x} was not applied: {err}"));
    }
  }
}
