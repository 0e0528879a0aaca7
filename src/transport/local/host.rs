//! The host's side of the network: [`serve`] runs one term as host (the listener, the lease's
//! heartbeat, the hand-over when it ends); a [`Listener`] accepts connections and a [`Handler`]
//! serves each one (handshake, then its patches in, ordered patches out).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::{Listener as SocketListener, Stream};
use interprocess::local_socket::traits::tokio::Listener as _;
use tokio::task::JoinHandle;

use crate::core::exchange::LOCK_GRACE;
use crate::core::message::{Message, PeerInfo};
use crate::core::replica::Replica;
use crate::error::Error;
use crate::services::Services;
use crate::transport::local::burst::{burst, split, split_burst, Reader};
use crate::transport::local::codec::{self, MAX_FRAME, PROTOCOL_VERSION};
use crate::transport::local::connection::{write_outbox, Budget, FrameReader, Outbox, ReadLimits};
use crate::transport::local::lease::{self, Lease};
use crate::transport::local::rendezvous::HostLock;
use crate::transport::local::shutdown::Shutdown;
use crate::transport::redis::bridge::{self, Shared};

/// How long a new connection may take to say hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping host waits for its clients' queued frames to go out.
const FLUSH_ON_STOP: Duration = Duration::from_secs(2);
/// Bytes a host queues for a client that does not read (a stuck event loop) before it drops the
/// connection; the client resyncs from a snapshot when it reconnects. A snapshot alone may be
/// bigger, up to a frame's limit.
const CLIENT_BACKLOG: usize = MAX_FRAME / 2;
/// How long a client's frame may stay incomplete after its first byte: a peer that starts a large
/// frame and stalls would otherwise hold up to a frame's limit of the host's memory for good.
const PARTIAL_FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// How a host's term ended.
pub enum Ended {
  /// The instance stopped; the role is handed over.
  Shutdown,
  /// A later epoch replaced this host while it was stopped.
  Fenced,
  /// The shared log of `options.transport` could not be joined.
  Unreachable(Error),
}

/// Serves as host until shutdown, or until a later epoch fences it. Fails only when it cannot
/// listen (something that is not a socket sits at the socket path and cannot be removed): the
/// caller reports it, so `start()` rejects with the reason instead of waiting for a host that
/// never comes.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
  replica: &Arc<Replica>,
  mut lock: HostLock,
  lease: Arc<Lease>,
  services: &Arc<Services>,
  saved: Option<u64>,
  budget: Arc<Budget>,
  log: Option<&Shared>,
  shutdown: &Shutdown,
) -> io::Result<Ended> {
  let socket = lock
    .bind()
    .map_err(|err| io::Error::new(err.kind(), format!("cannot listen: {err}")))?;
  // Before the role is announced: once start() resolves as host, the port is served.
  let services = services.start(replica, saved, lock.view_path()).await;
  // With a shared log, this host is the machine's bridge to it instead of its sequencer.
  let bridge = match log {
    Some(shared) => match bridge::start(replica, shared).await {
      Ok(running) => Some(running),
      Err(err) => {
        services.stop().await;
        drop(socket);
        let _ = lock.release();
        return Ok(Ended::Unreachable(err));
      }
    },
    None => {
      replica.become_host_under(lease.clone());
      None
    }
  };
  // Locks are granted again once the grace period after the election is over.
  let grace_replica = replica.clone();
  let grace = tokio::spawn(async move {
    tokio::time::sleep(LOCK_GRACE).await;
    let effects = grace_replica
      .exchange()
      .end_grace(grace_replica.time().now_ms());
    grace_replica.apply(effects, true);
  });
  let heartbeat = tokio::spawn(beat(replica.clone(), lease.clone()));
  let mut listener = Listener {
    replica: replica.clone(),
    socket,
    uid: lock.uid(),
    term: Term { budget, lease },
    handlers: Vec::new(),
    next_id: 1,
    shutdown: shutdown.clone(),
  };
  listener.run().await;
  drop(bridge);
  heartbeat.abort();
  grace.abort();
  // Handing over cleanly: clients are detached (their writers then drain what is queued and
  // close), the socket file goes, and only then the lock, so the next host starts from a state
  // every client has received.
  replica.go_offline();
  let (socket, lease) = listener.flush().await;
  // The last save and the closing of the port come before the lock goes: the next host never
  // races our write, and can bind the port.
  services.stop().await;
  drop(socket);
  if let Err(err) = lock.release() {
    replica.report_error(&Error::Rendezvous(format!(
      "the host's lock files could not be removed: {err}"
    )));
  }
  Ok(if lease.is_fenced() {
    Ended::Fenced
  } else {
    Ended::Shutdown
  })
}

/// Renews the lease on the same beat as the clients hear it, until a later epoch fences this
/// host.
async fn beat(replica: Arc<Replica>, lease: Arc<Lease>) {
  let mut beats = tokio::time::interval(lease::heartbeat_interval(lease.host_timeout()));
  beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
  loop {
    beats.tick().await;
    if !lease.renew() {
      return;
    }
    replica.heartbeat();
  }
}

/// What every client connection of one host's term shares.
#[derive(Clone)]
struct Term {
  /// Bounds what the connections buffer together.
  budget: Arc<Budget>,
  /// This host's right to order.
  lease: Arc<Lease>,
}

/// The accept loop of one term: a [`Handler`] task per connection.
struct Listener {
  replica: Arc<Replica>,
  socket: SocketListener,
  /// The uid every client must run as.
  uid: u32,
  term: Term,
  handlers: Vec<JoinHandle<()>>,
  next_id: u64,
  shutdown: Shutdown,
}

impl Listener {
  /// Accepts connections until shutdown or until this host is fenced.
  async fn run(&mut self) {
    loop {
      let accepted = tokio::select! {
        accepted = self.socket.accept() => accepted,
        _ = self.shutdown.recv() => return,
        _ = self.term.lease.fenced() => return,
      };
      match accepted {
        // The directory is private, but a descriptor can be passed on: only this user's
        // processes are clients.
        Ok(stream)
          if let Err(err) =
            crate::transport::local::rendezvous::check_peer(&stream, self.uid, "client") =>
        {
          self.replica.debug(|| format!("refusing a client: {err}"));
        }
        Ok(stream) => self.spawn_handler(stream),
        Err(err) => self.replica.debug(|| format!("accept failed: {err}")),
      }
    }
  }

  fn spawn_handler(&mut self, stream: Stream) {
    // Forget finished handlers so the list does not grow with every past connection.
    self.handlers.retain(|handler| !handler.is_finished());
    let id = self.next_id;
    self.next_id += 1;
    let (reader, writer, direct) = match split(stream) {
      Ok(halves) => halves,
      Err(err) => {
        self
          .replica
          .debug(|| format!("cannot use a client connection: {err}"));
        return;
      }
    };
    let outbox = Outbox::within(direct, CLIENT_BACKLOG, &self.term.budget);
    let limits = ReadLimits::new(PARTIAL_FRAME_TIMEOUT, outbox.clone());
    let handler = Handler {
      replica: self.replica.clone(),
      id,
      lease: self.term.lease.clone(),
      reader: FrameReader::limited(reader, limits),
      writer: tokio::spawn(write_outbox(writer, outbox.clone())),
      outbox,
      shutdown: self.shutdown.clone(),
    };
    self.handlers.push(tokio::spawn(handler.run()));
  }

  /// Waits a while for the handlers to write what they queued, and gives up the rest; returns
  /// the socket (closed once dropped) and the term's lease.
  async fn flush(self) -> (SocketListener, Arc<Lease>) {
    let mut handlers = self.handlers;
    let flushed = tokio::time::timeout(FLUSH_ON_STOP, async {
      for handler in &mut handlers {
        let _ = handler.await;
      }
    })
    .await;
    if flushed.is_err() {
      handlers.iter().for_each(JoinHandle::abort);
    }
    (self.socket, self.term.lease)
  }
}

/// One client connection on the host.
struct Handler {
  replica: Arc<Replica>,
  /// The connection's id in the exchange.
  id: u64,
  /// This host's right to order.
  lease: Arc<Lease>,
  reader: FrameReader<Reader>,
  outbox: Arc<Outbox>,
  /// Ends when the client stopped reading (see `Outbox::within`) or its connection failed.
  writer: JoinHandle<()>,
  shutdown: Shutdown,
}

impl Handler {
  /// Handshake, then the client's patches in, ordered patches out, until either side ends.
  async fn run(mut self) {
    // A replaced host welcomes nobody: its snapshot could hold what the new host never sees.
    let admitted = self.handshake().await.filter(|&origin| {
      self.lease.hold()
        && self
          .replica
          .attach_client(self.id, origin, self.outbox.clone(), codec::welcome)
    });
    if let Some(origin) = admitted {
      let effects = self
        .replica
        .exchange()
        .attached(self.id, self.outbox.clone());
      self.replica.apply(effects, true);
      self.serve(origin).await;
      self.replica.detach_client(self.id);
    }
    let effects = self.replica.exchange().detach(self.id);
    self.replica.apply(effects, true);
    // What it had partly sent is released before the socket closes.
    drop(self.reader);
    self.outbox.close();
    if !self.writer.is_finished() {
      let _ = self.writer.await;
    }
  }

  /// Reads the hello and admits the client (its origin), refuses it, or answers a status query.
  async fn handshake(&mut self) -> Option<u64> {
    // A stopping host does not wait for a silent connection to say hello; nor for one dropped to
    // keep the budget (its writer has ended).
    let hello = tokio::select! {
      hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.reader.read_message()) => hello,
      _ = self.shutdown.recv() => return None,
      _ = &mut self.writer => return None,
    };
    let why = match hello {
      Ok(Ok(Some(Message::Hello {
        protocol,
        origin,
        pid,
        peer,
        ..
      })))
        if protocol == PROTOCOL_VERSION =>
      {
        return self.admit(origin, pid, peer)
      }
      Ok(Ok(Some(Message::Hello { protocol, .. }))) => {
        let reason = format!("protocol {protocol} is not {PROTOCOL_VERSION}");
        self
          .replica
          .debug(|| format!("refusing a client: {reason}"));
        self
          .outbox
          .send_message(&Message::Refused { reason, code: None });
        return None;
      }
      // `memsync status`: answered, and the connection closes without a client being admitted.
      Ok(Ok(Some(Message::Query))) => {
        self.outbox.send_message(&status_message(&self.replica));
        return None;
      }
      // A client that closes before saying anything is no error: it stopped or died while
      // joining.
      Ok(Ok(None)) => return None,
      Ok(Ok(Some(message))) => format!("its first message is {}, not hello", message.kind()),
      Ok(Err(err)) => err.to_string(),
      Err(_) => format!("no hello within {HANDSHAKE_TIMEOUT:?}"),
    };
    self
      .replica
      .debug(|| format!("disconnecting a client before its hello: {why}"));
    None
  }

  /// Admits a client that said hello, if the exchange lets it write (`maxWriters`).
  fn admit(&self, origin: u64, pid: u32, peer: PeerInfo) -> Option<u64> {
    // Two statements: the exchange's lock must be released before `about` takes it again.
    let admitted = self.replica.exchange().admit(self.id, pid, origin, peer);
    match admitted {
      Ok(()) => {
        // Before the welcome: the client knows its host when its start() resolves.
        let about = self.replica.exchange().about();
        self.outbox.queue_message(&about);
        Some(origin)
      }
      Err(err) => {
        self.outbox.send_message(&Message::Refused {
          reason: err.to_string(),
          code: Some(err.code().to_owned()),
        });
        None
      }
    }
  }

  /// Hands the admitted client's bursts to the replica and the exchange until the connection
  /// ends, the instance stops, or this host is fenced.
  async fn serve(&mut self, origin: u64) {
    loop {
      let first = tokio::select! {
        message = self.reader.read_message() => message,
        _ = self.shutdown.recv() => return,
        _ = self.lease.fenced() => return,
        // The writer gave up: the client stopped reading, or its connection failed.
        _ = &mut self.writer => return,
      };
      let (batch, failed) = match first {
        Ok(Some(message)) => burst(&mut self.reader, message),
        Ok(None) => return,
        Err(err) => (Vec::new(), Some(err)),
      };
      // Replaced while stopped: nothing more is ordered or answered here. The client sends its
      // pending patches to the new host.
      if !self.lease.hold() {
        return;
      }
      if let Err(unexpected) = self.receive(origin, batch) {
        // The kind only: the message may be a whole document.
        self.replica.debug(|| {
          format!(
            "unexpected {} message from a client, disconnecting it",
            unexpected.kind()
          )
        });
        return;
      }
      if let Some(err) = failed {
        self
          .replica
          .debug(|| format!("client connection failed: {err}"));
        return;
      }
    }
  }

  /// A burst from this client, in order: runs of document messages go to the replica, the others
  /// to the exchange.
  fn receive(&self, origin: u64, batch: Vec<Message>) -> Result<(), Message> {
    split_burst(
      batch,
      |documents| self.replica.host_receive(origin, documents, &*self.outbox),
      |message| {
        // Two statements: the exchange's lock must be released before `apply`.
        let effects = self.replica.exchange().from_client(self.id, message);
        self.replica.apply(effects, true);
      },
    )
  }
}

/// The answer to a `Query` (`memsync status`).
fn status_message(replica: &Replica) -> Message {
  let (_, version, clients) = replica.status();
  Message::Status {
    host_pid: std::process::id(),
    version,
    clients: clients as u64,
  }
}
