//! The core's side of the transport seam: what the replica and the exchange need of the
//! connections to other processes, and nothing of how they are made.
//!
//! A transport (`transport/local/` today) implements [`Link`] for each connection and hands the
//! core its links; the core queues [`Message`]s on them in the order it makes them, under its
//! lock, and flushes outside it. Encoding, sockets and tasks stay in the transport, so the core
//! imports nothing above it and its tests use [`Recorder`] links instead of sockets.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::locks::LockOp;
use super::message::{Message, RawJson};
use crate::clock::Hlc;

/// [`Link::wait_sent`]'s wait.
pub type Sending = Pin<Box<dyn Future<Output = bool> + Send>>;

/// A connection to another process. Messages leave in the order they are queued.
pub trait Link: Send + Sync {
  /// Queues `message` for the next [`Link::flush`]. `false` once the connection is closed or
  /// dropped, or when the message cannot be sent at all (too large): it will never arrive.
  fn queue(&self, message: &Message) -> bool;

  /// Queues `messages` in order as one append ([`Link::queue`] for each, cheaper). `false` as
  /// for [`Link::queue`]; a prefix may have been queued.
  fn queue_all(&self, messages: &[Message]) -> bool {
    messages.iter().all(|message| self.queue(message))
  }

  /// Sends what is queued, now or as soon as the connection can take it.
  fn flush(&self);

  /// Whether everything queued so far has left this process: the peer gets it even if this
  /// process dies now. A link that cannot tell says yes.
  fn sent(&self) -> bool {
    true
  }

  /// Ends with `true` once everything queued before the call has left this process, or with
  /// `false` when the connection ends first.
  fn wait_sent(self: Arc<Self>) -> Sending {
    Box::pin(std::future::ready(true))
  }

  /// Accepts nothing more; what is queued is still sent, then the connection ends.
  fn close(&self);
}

/// A host's right to order: a transport may replace a host it cannot reach (a stopped process),
/// and the old host must then order nothing more.
pub trait Fence: Send + Sync {
  /// Whether this host may still order (checking again if need be).
  fn holds(&self) -> bool;
}

/// Whether `a` and `b` are the same connection.
pub fn same(a: &dyn Link, b: &dyn Link) -> bool {
  std::ptr::addr_eq(a as *const dyn Link, b as *const dyn Link)
}

/// A host's clients and the ordered messages not yet queued to them: a burst of patches reaches
/// every client as one append.
#[derive(Default)]
pub struct Followers {
  /// Each client's connection id, origin and connection.
  clients: Vec<(u64, u64, Arc<dyn Link>)>,
  ordered: Vec<Message>,
}

impl Followers {
  /// How many clients are connected.
  pub fn len(&self) -> usize {
    self.clients.len()
  }

  /// Whether no client is connected.
  pub fn is_empty(&self) -> bool {
    self.clients.is_empty()
  }

  /// Admits a client of `origin`, which gets every message [`Followers::push`]ed from now on.
  pub fn attach(&mut self, id: u64, origin: u64, link: Arc<dyn Link>) {
    self.clients.push((id, origin, link));
  }

  /// Forgets a client whose connection ended.
  pub fn detach(&mut self, id: u64) {
    self.clients.retain(|(client, _, _)| *client != id);
  }

  /// The clients' connections.
  pub fn links(&self) -> impl Iterator<Item = &Arc<dyn Link>> {
    self.clients.iter().map(|(_, _, link)| link)
  }

  /// Queues `message` for the client of `origin` alone, after the ordered messages pushed before
  /// it (a bridge's rejection of that client's patch, in log order); `false` when no client of
  /// `origin` is connected.
  pub fn send_to(&mut self, origin: u64, message: &Message) -> bool {
    self.publish();
    match self.clients.iter().find(|(_, of, _)| *of == origin) {
      Some((_, _, link)) => link.queue(message),
      None => false,
    }
  }

  /// Adds an ordered message for every client, queued at the next [`Followers::publish`].
  pub fn push(&mut self, message: Message) {
    self.ordered.push(message);
  }

  /// Queues the pushed messages to every client. A client that cannot take them (gone, over its
  /// limit, a message too large to send) is closed and forgotten: it resyncs from a snapshot when
  /// it reconnects, so it never misses a version. True when there was something to queue.
  pub fn publish(&mut self) -> bool {
    if self.ordered.is_empty() {
      return false;
    }
    let ordered = &self.ordered;
    self.clients.retain(|(_, _, link)| {
      let taken = link.queue_all(ordered);
      if !taken {
        link.close();
      }
      taken
    });
    self.ordered.clear();
    true
  }

  /// [`Followers::publish`], returning the links to flush once the caller has let go of the
  /// replica's lock: a write wakes the reader, which on a small machine may take the CPU from
  /// the lock's holder while patches wait for the lock.
  pub fn publish_to_flush(&mut self) -> Vec<Arc<dyn Link>> {
    if self.publish() {
      self.links().cloned().collect()
    } else {
      Vec::new()
    }
  }

  /// Closes every client's connection, after what is queued.
  pub fn close_all(&mut self) {
    self.ordered.clear();
    for (_, _, link) in self.clients.drain(..) {
      link.close();
    }
  }
}

/// Where a bridge sends the patches it does not order itself: to a log ordered elsewhere (the
/// Redis transport), which every replica then reads back (`Replica::log_receive`); and the
/// changes of the lock table, which every bridge applies in the log's order.
pub trait Proposer: Send + Sync {
  /// Proposes patch `seq` of `origin`, stamped `hlc`, with `update`. Never blocks: it queues.
  fn propose(&self, origin: u64, seq: u64, hlc: Hlc, update: &RawJson);

  /// Proposes a change of the lock table, after the patches proposed before it. Never blocks.
  fn propose_lock(&self, op: LockOp);
}

/// A link that keeps what is queued (tests drive replicas and the exchange without sockets).
#[cfg(test)]
pub struct Recorder {
  state: parking_lot::Mutex<RecorderState>,
  /// Whether what is queued has left: `Some(true)` (the default), not yet (`None`), or never
  /// (`Some(false)`, the connection ended).
  sent: tokio::sync::watch::Sender<Option<bool>>,
}

#[cfg(test)]
#[derive(Default)]
struct RecorderState {
  queued: Vec<Message>,
  closed: bool,
}

#[cfg(test)]
impl Recorder {
  /// A new, open link.
  pub fn new() -> Arc<Recorder> {
    Arc::new(Recorder {
      state: parking_lot::Mutex::default(),
      sent: tokio::sync::watch::Sender::new(Some(true)),
    })
  }

  /// Plays a full socket: what is queued has not left until [`Recorder::release`].
  pub fn hold(&self) {
    self.sent.send_replace(None);
  }

  /// Ends [`Recorder::hold`]: what was queued has left (`true`), or never will (`false`).
  pub fn release(&self, sent: bool) {
    self.sent.send_replace(Some(sent));
  }

  /// Takes what was queued so far.
  pub fn take(&self) -> Vec<Message> {
    std::mem::take(&mut self.state.lock().queued)
  }

  /// Whether the core closed it.
  pub fn is_closed(&self) -> bool {
    self.state.lock().closed
  }
}

#[cfg(test)]
impl Link for Recorder {
  fn queue(&self, message: &Message) -> bool {
    let mut state = self.state.lock();
    if state.closed {
      return false;
    }
    state.queued.push(message.clone());
    true
  }

  fn flush(&self) {}

  fn sent(&self) -> bool {
    *self.sent.borrow() == Some(true)
  }

  fn wait_sent(self: Arc<Self>) -> Sending {
    let mut sent = self.sent.subscribe();
    Box::pin(async move {
      match sent.wait_for(Option::is_some).await {
        Ok(sent) => sent.unwrap_or(false),
        Err(_) => false,
      }
    })
  }

  fn close(&self) {
    self.state.lock().closed = true;
  }
}
