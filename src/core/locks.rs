//! The host's table of cross-process locks (`mem.lock(key, fn)`), as a pure state machine: no
//! clock and no sockets. The caller feeds it requests, releases and the end of connections, with
//! the time, and sends the grants it returns.
//!
//! Each key has at most one holder and a queue of waiters ordered by request time (the
//! requester's hybrid-clock stamp, then owner and id to break ties), so a waiter keeps its place
//! when it re-announces its request to a new host after a failover.
//!
//! After a failover the new host starts with an empty table. Holders re-announce their locks
//! ([`LockTable::claim`]) and waiters their requests; for a grace period after the election no
//! lock is granted, so that a holder that reconnects a little later than a waiter is not
//! overtaken. [`LockTable::end_grace`] grants what waited.
//!
//! Across machines (a shared log), the table is not a host's: every bridge builds the same one
//! from the [`LockOp`]s of the log, in order, the owners being processes' origins; a snapshot of
//! the log carries it as [`LockTable::export`] gives it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::clock::Hlc;

/// Who asks for a lock: a client's connection id, or [`HOST`].
pub type Owner = u64;

/// The host's own process (connection ids start at 1).
pub const HOST: Owner = 0;

/// One lock request: its owner and the owner's id for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ticket {
  /// Who asked.
  pub owner: Owner,
  /// The owner's id of the request.
  pub id: u64,
}

#[derive(Debug, Clone, Copy)]
struct Request {
  ticket: Ticket,
  since: Hlc,
}

impl Request {
  fn order(&self) -> (Hlc, Owner, u64) {
    (self.since, self.ticket.owner, self.ticket.id)
  }
}

#[derive(Debug, Default)]
struct Key {
  holder: Option<Ticket>,
  /// In request order.
  waiting: Vec<Request>,
}

/// A change of the lock table, as a shared log carries it; the owners are processes' origins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum LockOp {
  /// `ticket` asks for `key` (again: a process that re-announces its lock asks again, which
  /// changes nothing when the table has it).
  Request {
    ticket: Ticket,
    key: String,
    since: Hlc,
  },
  /// `ticket` releases its lock, or stops waiting.
  Release { ticket: Ticket },
  /// `owner` is gone: everything it held or waited for is released.
  Drop { owner: Owner },
}

/// One key of a table, as a snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
  pub key: String,
  pub holder: Option<Ticket>,
  /// In request order.
  pub waiting: Vec<(Ticket, Hlc)>,
}

/// The locks of one host.
#[derive(Debug)]
pub struct LockTable {
  keys: HashMap<String, Key>,
  /// The key of every ticket held or waiting.
  tickets: HashMap<Ticket, String>,
  /// No lock is granted before this time (ms), except to holders re-announcing theirs.
  grace_until: u64,
}

impl LockTable {
  /// An empty table that grants nothing before `grace_until` (epoch ms).
  pub fn new(grace_until: u64) -> LockTable {
    LockTable {
      keys: HashMap::new(),
      tickets: HashMap::new(),
      grace_until,
    }
  }

  /// Asks for `key`, stamped `since`. Returns the tickets granted now: this one when the key is
  /// free (and the grace period is over), else none; it waits its turn.
  pub fn request(&mut self, ticket: Ticket, key: &str, since: Hlc, now: u64) -> Vec<Ticket> {
    if self.tickets.contains_key(&ticket) {
      return Vec::new();
    }
    self.tickets.insert(ticket, key.to_owned());
    let entry = self.keys.entry(key.to_owned()).or_default();
    let request = Request { ticket, since };
    let at = entry
      .waiting
      .partition_point(|other| other.order() < request.order());
    entry.waiting.insert(at, request);
    self.grant_next(key, now).into_iter().collect()
  }

  /// A holder re-announces `key` to a new host. `true`: it holds it. `false`: another holder
  /// re-announced it first (which only happens when two processes held it at once, a holder
  /// that came back after the grace period); the claim then waits like a request.
  pub fn claim(&mut self, ticket: Ticket, key: &str, since: Hlc, now: u64) -> bool {
    if self.tickets.contains_key(&ticket) {
      return self.keys.get(key).and_then(|k| k.holder) == Some(ticket);
    }
    let free = self.keys.get(key).is_none_or(|k| k.holder.is_none());
    if !free {
      self.request(ticket, key, since, now);
      return false;
    }
    self.tickets.insert(ticket, key.to_owned());
    self.keys.entry(key.to_owned()).or_default().holder = Some(ticket);
    true
  }

  /// Releases a held ticket, or cancels a waiting one. Returns the tickets granted as a result.
  pub fn release(&mut self, ticket: Ticket, now: u64) -> Vec<Ticket> {
    let Some(key) = self.tickets.remove(&ticket) else {
      return Vec::new();
    };
    let Some(entry) = self.keys.get_mut(&key) else {
      return Vec::new();
    };
    if entry.holder == Some(ticket) {
      entry.holder = None;
    } else {
      entry.waiting.retain(|request| request.ticket != ticket);
    }
    self.grant_next(&key, now).into_iter().collect()
  }

  /// Releases and cancels everything `owner` held or waited for (its connection ended).
  pub fn drop_owner(&mut self, owner: Owner, now: u64) -> Vec<Ticket> {
    let mine: Vec<Ticket> = self
      .tickets
      .keys()
      .filter(|ticket| ticket.owner == owner)
      .copied()
      .collect();
    mine
      .into_iter()
      .flat_map(|ticket| self.release(ticket, now))
      .collect()
  }

  /// Ends the grace period, whatever the time says (the caller's timer and the wall clock may
  /// disagree by a millisecond, which must not leave waiters without a grant), and grants every
  /// free key to its first waiter.
  pub fn end_grace(&mut self, now: u64) -> Vec<Ticket> {
    self.grace_until = 0;
    let keys: Vec<String> = self.keys.keys().cloned().collect();
    keys
      .iter()
      .filter_map(|key| self.grant_next(key, now))
      .collect()
  }

  /// The holder of `key`, if any.
  pub fn holder(&self, key: &str) -> Option<Ticket> {
    self.keys.get(key).and_then(|entry| entry.holder)
  }

  /// Applies `op` of a shared log (no grace period there). Returns the tickets granted.
  pub fn apply(&mut self, op: LockOp) -> Vec<Ticket> {
    match op {
      LockOp::Request { ticket, key, since } => self.request(ticket, &key, since, 0),
      LockOp::Release { ticket } => self.release(ticket, 0),
      LockOp::Drop { owner } => self.drop_owner(owner, 0),
    }
  }

  /// Every owner that holds or waits for a lock.
  pub fn owners(&self) -> Vec<Owner> {
    let mut owners: Vec<Owner> = self.tickets.keys().map(|ticket| ticket.owner).collect();
    owners.sort_unstable();
    owners.dedup();
    owners
  }

  /// The table's keys, sorted, for a snapshot.
  pub fn export(&self) -> Vec<KeyState> {
    let mut keys: Vec<KeyState> = self
      .keys
      .iter()
      .map(|(key, entry)| KeyState {
        key: key.clone(),
        holder: entry.holder,
        waiting: entry
          .waiting
          .iter()
          .map(|request| (request.ticket, request.since))
          .collect(),
      })
      .collect();
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    keys
  }

  /// The table [`LockTable::export`] gave `keys`, without a grace period.
  pub fn import(keys: Vec<KeyState>) -> LockTable {
    let mut table = LockTable::new(0);
    for state in keys {
      let tickets = state
        .holder
        .into_iter()
        .chain(state.waiting.iter().map(|(ticket, _)| *ticket));
      for ticket in tickets {
        table.tickets.insert(ticket, state.key.clone());
      }
      let waiting = state
        .waiting
        .into_iter()
        .map(|(ticket, since)| Request { ticket, since })
        .collect();
      table.keys.insert(
        state.key,
        Key {
          holder: state.holder,
          waiting,
        },
      );
    }
    table
  }

  fn grant_next(&mut self, key: &str, now: u64) -> Option<Ticket> {
    let entry = self.keys.get_mut(key)?;
    if entry.holder.is_some() || now < self.grace_until {
      return None;
    }
    if entry.waiting.is_empty() {
      // Nobody holds or waits: the key costs nothing any more.
      self.keys.remove(key);
      return None;
    }
    let next = entry.waiting.remove(0).ticket;
    entry.holder = Some(next);
    Some(next)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn t(owner: Owner, id: u64) -> Ticket {
    Ticket { owner, id }
  }

  fn at(ms: u64) -> Hlc {
    Hlc { ms, counter: 0 }
  }

  #[test]
  fn a_free_key_is_granted_at_once_and_waiters_follow_in_request_order() {
    let mut table = LockTable::new(0);
    assert_eq!(table.request(t(1, 1), "k", at(10), 100), vec![t(1, 1)]);
    assert_eq!(table.request(t(2, 1), "k", at(30), 100), vec![]);
    // Asked earlier, though it arrived later: served first.
    assert_eq!(table.request(t(3, 1), "k", at(20), 100), vec![]);
    assert_eq!(table.release(t(1, 1), 100), vec![t(3, 1)]);
    assert_eq!(table.release(t(3, 1), 100), vec![t(2, 1)]);
    assert_eq!(table.release(t(2, 1), 100), vec![]);
    assert!(table.keys.is_empty() && table.tickets.is_empty());
  }

  #[test]
  fn keys_are_independent() {
    let mut table = LockTable::new(0);
    assert_eq!(table.request(t(1, 1), "a", at(1), 1), vec![t(1, 1)]);
    assert_eq!(table.request(t(2, 1), "b", at(2), 1), vec![t(2, 1)]);
  }

  #[test]
  fn a_cancelled_waiter_is_never_granted() {
    let mut table = LockTable::new(0);
    table.request(t(1, 1), "k", at(1), 1);
    table.request(t(2, 1), "k", at(2), 1);
    table.request(t(3, 1), "k", at(3), 1);
    assert_eq!(table.release(t(2, 1), 1), vec![]);
    assert_eq!(table.release(t(1, 1), 1), vec![t(3, 1)]);
  }

  #[test]
  fn an_owner_that_leaves_releases_its_locks_and_its_waits() {
    let mut table = LockTable::new(0);
    table.request(t(1, 1), "a", at(1), 1);
    table.request(t(1, 2), "b", at(1), 1);
    table.request(t(2, 1), "a", at(2), 1);
    table.request(t(1, 3), "a", at(3), 1);
    table.request(t(3, 1), "a", at(4), 1);
    let mut granted = table.drop_owner(1, 1);
    granted.sort_by_key(|ticket| ticket.owner);
    assert_eq!(granted, vec![t(2, 1)]);
    assert_eq!(table.release(t(2, 1), 1), vec![t(3, 1)]);
    assert_eq!(table.holder("b"), None);
  }

  #[test]
  fn a_repeated_request_is_ignored() {
    let mut table = LockTable::new(0);
    table.request(t(1, 1), "k", at(1), 1);
    assert_eq!(table.request(t(1, 1), "k", at(1), 1), vec![]);
    assert_eq!(table.release(t(1, 1), 1), vec![]);
    assert_eq!(table.holder("k"), None);
  }

  #[test]
  fn after_a_failover_a_holder_that_reconnects_late_keeps_its_lock() {
    // The new host was elected at 1000 and waits until 1300.
    let mut table = LockTable::new(1300);
    // A waiter that asked before the failover reconnects first...
    assert_eq!(table.request(t(2, 7), "k", at(500), 1001), vec![]);
    // ...and a fresh request after it: neither is granted during the grace period.
    assert_eq!(table.request(t(3, 1), "k", at(1002), 1002), vec![]);
    // The holder re-announces its lock later, still within the grace period.
    assert!(table.claim(t(4, 1), "k", at(400), 1100));
    assert_eq!(table.end_grace(1300), vec![]);
    assert_eq!(table.holder("k"), Some(t(4, 1)));
    // Released: the waiter keeps the place its original request time gave it.
    assert_eq!(table.release(t(4, 1), 1400), vec![t(2, 7)]);
    assert_eq!(table.release(t(2, 7), 1400), vec![t(3, 1)]);
  }

  #[test]
  fn the_grace_period_ends_by_granting_free_keys() {
    let mut table = LockTable::new(1300);
    table.request(t(2, 1), "a", at(900), 1001);
    table.request(t(3, 1), "a", at(800), 1001);
    table.request(t(2, 2), "b", at(900), 1001);
    // The timer may fire a millisecond early by the wall clock: the grace period ends anyway.
    let mut granted = table.end_grace(1299);
    granted.sort_by_key(|ticket| (ticket.owner, ticket.id));
    assert_eq!(granted, vec![t(2, 2), t(3, 1)]);
    assert_eq!(table.request(t(4, 1), "c", at(901), 1299), vec![t(4, 1)]);
  }

  #[test]
  fn a_late_claim_on_a_held_key_waits() {
    let mut table = LockTable::new(0);
    table.request(t(1, 1), "k", at(5), 10);
    assert!(!table.claim(t(2, 1), "k", at(1), 10));
    assert_eq!(table.release(t(1, 1), 10), vec![t(2, 1)]);
  }

  #[test]
  fn a_table_built_from_log_ops_survives_its_export_and_grants_alike() {
    let ops = [
      LockOp::Request {
        ticket: t(7, 1),
        key: "k".into(),
        since: at(1),
      },
      LockOp::Request {
        ticket: t(8, 1),
        key: "k".into(),
        since: at(3),
      },
      LockOp::Request {
        ticket: t(9, 2),
        key: "k".into(),
        since: at(2),
      },
    ];
    let mut table = LockTable::new(0);
    let granted: Vec<Ticket> = ops.into_iter().flat_map(|op| table.apply(op)).collect();
    assert_eq!(granted, vec![t(7, 1)]);
    assert_eq!(table.owners(), vec![7, 8, 9]);
    let mut copy = LockTable::import(table.export());
    assert_eq!(copy.export(), table.export());
    for one in [&mut table, &mut copy] {
      assert_eq!(one.apply(LockOp::Drop { owner: 7 }), vec![t(9, 2)]);
      assert_eq!(
        one.apply(LockOp::Release { ticket: t(9, 2) }),
        vec![t(8, 1)]
      );
    }
  }
}
