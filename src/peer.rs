//! The network side of one instance: the election, the host's listener and its handlers, the
//! client's connection, and failover. Runs on a tokio runtime (napi's) and reaches the document
//! only through [`Replica`] methods, which never await while holding its lock.
//!
//! One task per instance runs [`run`]: elect (become host, or connect to the host), serve that
//! role until it ends (shutdown, or the host is lost), and elect again. Host loss is an event,
//! not an error: a clean EOF from the host starts the next election at once. A host silent for
//! `hostTimeout` (stopped) is replaced under the next epoch, and steps down when it resumes
//! (see `lease`).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::tokio::Listener as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[cfg(not(unix))]
use crate::connection::Shared;
use crate::connection::{
  write_outbox, Budget, ConnectionError, DirectWrite, FrameReader, Outbox, ReadLimits,
};
use crate::exchange::{Exchange, ERR_MAX_WRITERS, LOCK_GRACE};
#[cfg(unix)]
use crate::inbox::{Inbox, InboxEnd};
use crate::lease::{self, Lease, Silence};
use crate::protocol::{Message, MAX_FRAME, PROTOCOL_VERSION};
use crate::rendezvous::{HostLock, Rendezvous};
use crate::services::Services;
#[cfg(unix)]
use crate::socket::{SocketReader, SocketWriter};
use crate::state::Replica;

/// How long a new connection may take to say hello, and a client to be welcomed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest pause between two election attempts while no host answers.
const MAX_BACKOFF: Duration = Duration::from_millis(20);
/// How long a stopping host waits for its clients' queued frames to go out.
const FLUSH_ON_STOP: Duration = Duration::from_secs(2);
/// Bytes a host queues for a client that does not read (a stuck event loop) before it drops the
/// connection; the client resyncs from a snapshot when it reconnects. A snapshot alone may be
/// bigger, up to a frame's limit.
const CLIENT_BACKLOG: usize = MAX_FRAME / 2;
/// What a host's connections may hold together by default (`network.maxBuffer`): see [`Budget`].
pub const DEFAULT_MAX_BUFFER: usize = 256 * 1024 * 1024;
/// How long a client's frame may stay incomplete after its first byte: a peer that starts a large
/// frame and stalls would otherwise hold up to a frame's limit of the host's memory for good.
const PARTIAL_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// The first pause before connecting again to a host that did not welcome us or sent something
/// invalid, doubled up to [`MAX_FAILED_BACKOFF`] while it keeps failing: without it, a host that
/// answers the hello with garbage is reconnected to thousands of times a second.
const FAILED_BACKOFF: Duration = Duration::from_millis(1);
/// The longest pause between attempts to join a host that keeps failing.
const MAX_FAILED_BACKOFF: Duration = Duration::from_secs(1);
/// How long frames may wait unread while the JS thread polls the client socket before the tokio
/// task reads them itself (a stalled event loop): bounds how late a blocked process notices that
/// its host is gone.
#[cfg(unix)]
const JS_PATIENCE: Duration = Duration::from_millis(20);

/// Which roles an instance may take (memsync 0.5's `clientOnly` / `serverOnly`), what its
/// connections may hold while it is host, and when a silent host is replaced.
#[derive(Clone)]
pub struct Options {
  /// Never become host.
  pub client_only: bool,
  /// Never join as a client.
  pub server_only: bool,
  /// Bounds what the host's connections buffer together (`network.maxBuffer`).
  pub budget: Arc<Budget>,
  /// How long a host may be silent (stopped) before its clients replace it (`hostTimeout`).
  pub host_timeout: Duration,
}

/// Why an instance could not take part in its network.
#[derive(Debug)]
pub struct Failure {
  /// The `ERR_*` code JS sees.
  pub code: &'static str,
  /// What went wrong.
  pub message: String,
}

/// Runs the instance's network life until `shutdown` turns true. Reports a fatal failure (such as
/// an unusable rendezvous directory, or a corrupt file) through `fail` and returns. `services`
/// run while the instance is host.
pub async fn run(
  replica: Arc<Replica>,
  rendezvous: Rendezvous,
  options: Options,
  services: Arc<Services>,
  mut shutdown: watch::Receiver<bool>,
  fail: impl Fn(Failure),
) {
  // Read before the election, so that a corrupt file fails start() whatever the role; kept only
  // until this instance joins a host, whose object is newer than any file.
  let storage_failure = |err: crate::error::Error| Failure {
    code: err.code(),
    message: format!("memsync '{}': {err}", replica.name()),
  };
  // A read that blocks (a FIFO, a hung network filesystem) is abandoned when the instance stops,
  // so that start()'s timeout bounds it.
  let loaded = tokio::select! {
    loaded = services.load() => loaded,
    _ = shutdown.wait_for(|stop| *stop) => return,
  };
  let mut loaded = match loaded {
    Ok(loaded) => Some(loaded),
    Err(err) => {
      fail(storage_failure(err));
      return;
    }
  };
  let mut failed_backoff = FAILED_BACKOFF;
  let unusable = |err: io::Error| Failure {
    code: "ERR_RENDEZVOUS",
    message: format!(
      "memsync '{}' cannot use {}: {err}",
      replica.name(),
      rendezvous.dir().display()
    ),
  };
  // Best effort, before the election: the files of hosts killed by a signal, of any name.
  let sweeping = rendezvous.clone();
  tokio::select! {
    _ = tokio::task::spawn_blocking(move || sweeping.sweep()) => {}
    _ = shutdown.wait_for(|stop| *stop) => return,
  }
  // The epoch of a host that went silent: the next election tries to replace it first.
  let mut silent = None;
  loop {
    let elected = tokio::select! {
      elected = elect(&rendezvous, &options, silent.take()) => elected,
      _ = shutdown.wait_for(|stop| *stop) => return,
    };
    match elected {
      Ok(Elected::Host(lock)) => {
        let lease = tokio::select! {
          lease = take_lease(&lock, options.host_timeout) => lease,
          _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let lease = match lease {
          Ok(Some(lease)) => lease,
          // A later epoch exists already: elect again within it.
          Ok(None) => continue,
          Err(err) => {
            fail(unusable(err));
            return;
          }
        };
        // The file seeds only a network this instance starts; after a failover it is behind.
        let saved = match loaded.take() {
          Some(loaded) => match tokio::select! {
            seeded = services.seed(&replica, loaded) => seeded,
            _ = shutdown.wait_for(|stop| *stop) => return,
          } {
            Ok(version) => Some(version),
            Err(err) => {
              fail(storage_failure(err));
              return;
            }
          },
          None => None,
        };
        let served = serve_as_host(
          &replica,
          lock,
          lease,
          &services,
          saved,
          &options,
          &mut shutdown,
        )
        .await;
        match served {
          // Replaced while stopped: rejoins as a client of the new host.
          Ok(HostEnded::Fenced) => report!(
            "memsync '{}': this host was stopped for too long (hostTimeout {} ms) and steps \
             down; it joins the next host",
            replica.name(),
            options.host_timeout.as_millis()
          ),
          Ok(HostEnded::Shutdown) => return,
          Err(err) => {
            fail(unusable(err));
            return;
          }
        }
      }
      Ok(Elected::Client(stream, epoch)) => {
        let ended = serve_as_client(&replica, stream, options.host_timeout, &mut shutdown).await;
        // Welcomed: the host's object is newer than any file.
        if matches!(ended, Ended::HostLost | Ended::Failed | Ended::Silent) {
          loaded = None;
        }
        match ended {
          Ended::Shutdown => return,
          // Final: trying again would only be refused again (and never stop).
          Ended::Refused(failure) => {
            fail(failure);
            return;
          }
          Ended::HostLost => failed_backoff = FAILED_BACKOFF,
          Ended::Silent => {
            silent = Some(epoch);
            failed_backoff = FAILED_BACKOFF;
          }
          Ended::NotWelcomed | Ended::Failed => {
            tokio::select! {
              _ = tokio::time::sleep(failed_backoff) => {}
              _ = shutdown.wait_for(|stop| *stop) => return,
            }
            failed_backoff = (failed_backoff * 2).min(MAX_FAILED_BACKOFF);
          }
        }
      }
      Err(err) => {
        fail(unusable(err));
        return;
      }
    }
  }
}

/// The lease of a host that just took `lock`, once it may order: after a wait while an older
/// epoch's host, possibly stopped, may still hold a lease. `None`: a later epoch exists already.
async fn take_lease(lock: &HostLock, host_timeout: Duration) -> io::Result<Option<Arc<Lease>>> {
  if lock.previous_held()? {
    tokio::time::sleep(lease::lease_length(host_timeout)).await;
  }
  let lease = Arc::new(Lease::new(lock.next_lock_path(), host_timeout));
  Ok(lease.renew().then_some(lease))
}

enum Elected {
  Host(HostLock),
  /// Connected to the host of this epoch (or of a later one).
  Client(Stream, u64),
}

/// Tries to become host and else connects to the host, until one works. The lock decides: two
/// processes can never both hold it, and the kernel frees it when its holder dies. With `silent`,
/// tries first to replace that epoch's host, which was silent for `hostTimeout`.
async fn elect(
  rendezvous: &Rendezvous,
  options: &Options,
  silent: Option<u64>,
) -> io::Result<Elected> {
  if let Some(epoch) = silent.filter(|_| !options.client_only) {
    if let Some(lock) = rendezvous.take_over(epoch)? {
      return Ok(Elected::Host(lock));
    }
  }
  let mut backoff = Duration::from_micros(500);
  loop {
    let epoch = rendezvous.current_epoch()?;
    if !options.client_only {
      if let Some(lock) = rendezvous.try_become_host()? {
        return Ok(Elected::Host(lock));
      }
    }
    if !options.server_only {
      match rendezvous.connect().await {
        Ok(stream) => return Ok(Elected::Client(stream, epoch)),
        // No host listening yet (it is between taking the lock and binding), or any more.
        Err(err)
          if matches!(
            err.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
          ) => {}
        Err(err) => return Err(err),
      }
    }
    tokio::time::sleep(backoff).await;
    backoff = (backoff * 2).min(MAX_BACKOFF);
  }
}

/// How a host's role ended.
enum HostEnded {
  Shutdown,
  /// A later epoch replaced this host while it was stopped.
  Fenced,
}

/// Serves as host until shutdown, or until a later epoch fences it. Fails only when it cannot
/// listen (something that is not a socket sits at the socket path and cannot be removed): the
/// caller reports it, so `start()` rejects with the reason instead of waiting for a host that
/// never comes.
async fn serve_as_host(
  replica: &Arc<Replica>,
  mut lock: HostLock,
  lease: Arc<Lease>,
  services: &Arc<Services>,
  saved: Option<u64>,
  options: &Options,
  shutdown: &mut watch::Receiver<bool>,
) -> io::Result<HostEnded> {
  let listener = lock
    .bind()
    .map_err(|err| io::Error::new(err.kind(), format!("cannot listen: {err}")))?;
  // Before the role is announced: once start() resolves as host, the port is served.
  let services = services.start(replica, saved, lock.view_path()).await;
  replica.become_host_under(lease.clone());
  // Locks are granted again once the grace period after the election is over.
  let grace_replica = replica.clone();
  let grace = tokio::spawn(async move {
    tokio::time::sleep(LOCK_GRACE).await;
    let effects = grace_replica.exchange().end_grace(crate::state::now_ms());
    grace_replica.apply(effects, true);
  });
  // The lease is renewed on the same beat as the clients hear it, and ends the role when a later
  // epoch fenced this host.
  let beating_replica = replica.clone();
  let beating = lease.clone();
  let beat = lease::heartbeat_interval(options.host_timeout);
  let heartbeat = tokio::spawn(async move {
    let mut beats = tokio::time::interval(beat);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
      beats.tick().await;
      if !beating.renew() {
        return;
      }
      beating_replica.heartbeat();
    }
  });
  let mut handlers = Vec::new();
  let next_id = AtomicU64::new(1);
  accept_clients(
    replica,
    &listener,
    lock.uid(),
    &Term {
      budget: options.budget.clone(),
      lease: lease.clone(),
    },
    &mut handlers,
    &next_id,
    shutdown,
  )
  .await;
  heartbeat.abort();
  grace.abort();
  // Handing over cleanly: clients are detached (their writers then drain what is queued and
  // close), the socket file goes, and only then the lock, so the next host starts from a state
  // every client has received.
  replica.go_offline();
  let flushed = tokio::time::timeout(FLUSH_ON_STOP, async {
    for handler in &mut handlers {
      let _ = handler.await;
    }
  })
  .await;
  if flushed.is_err() {
    handlers.iter().for_each(JoinHandle::abort);
  }
  // The last save and the closing of the port come before the lock goes: the next host never
  // races our write, and can bind the port.
  services.stop().await;
  drop(listener);
  if let Err(err) = lock.release() {
    report!("memsync '{}': {err}", replica.name());
  }
  Ok(if lease.is_fenced() {
    HostEnded::Fenced
  } else {
    HostEnded::Shutdown
  })
}

/// What every client connection of one host's term shares.
#[derive(Clone)]
struct Term {
  /// Bounds what the connections buffer together.
  budget: Arc<Budget>,
  /// This host's right to order.
  lease: Arc<Lease>,
}

async fn accept_clients(
  replica: &Arc<Replica>,
  listener: &Listener,
  uid: u32,
  term: &Term,
  handlers: &mut Vec<JoinHandle<()>>,
  next_id: &AtomicU64,
  shutdown: &mut watch::Receiver<bool>,
) {
  loop {
    let accepted = tokio::select! {
      accepted = listener.accept() => accepted,
      _ = shutdown.wait_for(|stop| *stop) => return,
      _ = term.lease.fenced() => return,
    };
    match accepted {
      // The directory is private, but a descriptor can be passed on: only this user's
      // processes are clients.
      Ok(stream) if let Err(err) = crate::rendezvous::check_peer(&stream, uid, "client") => {
        report!("memsync '{}': refusing a client: {err}", replica.name());
      }
      Ok(stream) => {
        // Forget finished handlers so the list does not grow with every past connection.
        handlers.retain(|handler| !handler.is_finished());
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        handlers.push(tokio::spawn(handle_client(
          replica.clone(),
          stream,
          id,
          term.clone(),
          shutdown.clone(),
        )));
      }
      Err(err) => report!("memsync '{}': accept failed: {err}", replica.name()),
    }
  }
}

/// One client connection on the host: handshake, then its patches in, ordered patches out.
async fn handle_client(
  replica: Arc<Replica>,
  stream: Stream,
  id: u64,
  Term { budget, lease }: Term,
  mut shutdown: watch::Receiver<bool>,
) {
  let (reader, writer, direct) = match split(stream) {
    Ok(halves) => halves,
    Err(err) => {
      report!(
        "memsync '{}': cannot use a client connection: {err}",
        replica.name()
      );
      return;
    }
  };
  let outbox = Outbox::within(direct, CLIENT_BACKLOG, &budget);
  let limits = ReadLimits::new(PARTIAL_FRAME_TIMEOUT, outbox.clone());
  let mut reader = FrameReader::limited(reader, limits);
  let mut writer = tokio::spawn(write_outbox(writer, outbox.clone()));
  // A stopping host does not wait for a silent connection to say hello; nor for one dropped to
  // keep the budget (its writer has ended).
  let hello = tokio::select! {
    hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.read_message()) => Some(hello),
    _ = shutdown.wait_for(|stop| *stop) => None,
    _ = &mut writer => None,
  };
  let origin = match hello {
    Some(Ok(Ok(Some(Message::Hello {
      protocol,
      origin,
      pid,
      peer,
      ..
    }))))
      if protocol == PROTOCOL_VERSION =>
    {
      let admitted = replica.exchange().admit(id, pid, peer);
      match admitted {
        Ok(()) => {
          // Before the welcome: the client knows its host when its start() resolves.
          let about = replica.exchange().about();
          outbox.queue_message(&about);
          Some(origin)
        }
        Err((code, reason)) => {
          outbox.send_message(&Message::Refused {
            reason,
            code: Some(code.to_owned()),
          });
          None
        }
      }
    }
    Some(Ok(Ok(Some(Message::Hello { protocol, .. })))) => {
      let reason = format!("protocol {protocol} is not {PROTOCOL_VERSION}");
      report!("memsync '{}': refusing a client: {reason}", replica.name());
      outbox.send_message(&Message::Refused { reason, code: None });
      None
    }
    // `memsync status`: answered, and the connection closes without a client being admitted.
    Some(Ok(Ok(Some(Message::Query)))) => {
      outbox.send_message(&status_message(&replica));
      None
    }
    // A client that closes before saying anything is no error: it stopped or died while
    // joining; nor is a host that stops.
    Some(Ok(Ok(None))) | None => None,
    Some(other) => {
      let why = match other {
        Ok(Ok(Some(message))) => format!("its first message is {}, not hello", message.kind()),
        Ok(Err(err)) => err.to_string(),
        _ => format!("no hello within {HANDSHAKE_TIMEOUT:?}"),
      };
      report!(
        "memsync '{}': disconnecting a client before its hello: {why}",
        replica.name()
      );
      None
    }
  };
  // A replaced host welcomes nobody: its snapshot could hold what the new host never sees.
  let welcomed = |_: &u64| lease.hold() && replica.attach_client(id, outbox.clone());
  let Some(origin) = origin.filter(welcomed) else {
    let effects = replica.exchange().detach(id);
    replica.apply(effects, true);
    drop(reader);
    outbox.close();
    if !writer.is_finished() {
      let _ = writer.await;
    }
    return;
  };
  let effects = replica.exchange().attached(id, outbox.clone());
  replica.apply(effects, true);
  loop {
    let first = tokio::select! {
      message = reader.read_message() => message,
      _ = shutdown.wait_for(|stop| *stop) => break,
      _ = lease.fenced() => break,
      // The writer gave up: the client stopped reading, or its connection failed.
      _ = &mut writer => break,
    };
    let (batch, failed) = match first {
      Ok(Some(message)) => burst(&mut reader, message),
      Ok(None) => break,
      Err(err) => (Vec::new(), Some(err)),
    };
    // Replaced while stopped: nothing more is ordered or answered here. The client sends its
    // pending patches to the new host.
    if !lease.hold() {
      break;
    }
    if let Err(unexpected) = host_receive(&replica, id, origin, batch, &outbox) {
      // The kind only: the message may be a whole document.
      report!(
        "memsync '{}': unexpected {} message from a client, disconnecting it",
        replica.name(),
        unexpected.kind()
      );
      break;
    }
    if let Some(err) = failed {
      report!(
        "memsync '{}': client connection failed: {err}",
        replica.name()
      );
      break;
    }
  }
  replica.detach_client(id);
  let effects = replica.exchange().detach(id);
  replica.apply(effects, true);
  // What it had partly sent is released before the socket closes.
  drop(reader);
  outbox.close();
  if !writer.is_finished() {
    let _ = writer.await;
  }
}

/// Host: a burst from client `conn`, in order: runs of document messages go to the replica,
/// the others to the exchange.
fn host_receive(
  replica: &Replica,
  conn: u64,
  origin: u64,
  batch: Vec<Message>,
  outbox: &Outbox,
) -> Result<(), Message> {
  split_burst(
    batch,
    |documents| replica.host_receive(origin, documents, outbox),
    |message| {
      // Two statements: the exchange's lock must be released before `apply`.
      let effects = replica.exchange().from_client(conn, message);
      replica.apply(effects, true);
    },
  )
}

/// Client: a burst from the host, in order, as [`host_receive`] splits it. Any frame, a
/// heartbeat included, shows that the host is not stopped: `heard` notes when.
fn client_receive(replica: &Replica, mut batch: Vec<Message>, heard: &Heard) -> Result<(), String> {
  heard.now();
  batch.retain(|message| !matches!(message, Message::Heartbeat));
  split_burst(
    batch,
    |documents| replica.client_receive(documents),
    |message| {
      // Two statements: the exchange's lock must be released before `apply`.
      let effects = replica.exchange().from_host(message);
      replica.apply(effects, true);
    },
  )
}

/// Hands a burst over in order: each run of document messages (patches and what orders them) to
/// `documents` as one batch, every other message to `exchange`.
fn split_burst<E>(
  batch: Vec<Message>,
  mut documents: impl FnMut(Vec<Message>) -> Result<(), E>,
  mut exchange: impl FnMut(Message),
) -> Result<(), E> {
  let mut run = Vec::new();
  for message in batch {
    if !Exchange::handles(&message) {
      run.push(message);
      continue;
    }
    if !run.is_empty() {
      documents(std::mem::take(&mut run))?;
    }
    exchange(message);
  }
  if run.is_empty() {
    return Ok(());
  }
  documents(run)
}

/// `first` and every message that already arrived behind it, handled as one batch; and the
/// error that ended the burst, if one did.
fn burst<R>(reader: &mut FrameReader<R>, first: Message) -> (Vec<Message>, Option<ConnectionError>)
where
  R: tokio::io::AsyncRead + Unpin,
{
  let mut batch = vec![first];
  loop {
    match reader.buffered_message() {
      Ok(Some(message)) => batch.push(message),
      Ok(None) => return (batch, None),
      Err(err) => return (batch, Some(err)),
    }
  }
}

/// A connection's reading half, writing half (for the writer task) and the writes from the
/// sending thread: see `socket` (Unix domain sockets).
#[cfg(unix)]
fn split(stream: Stream) -> io::Result<(SocketReader, SocketWriter, Option<DirectWrite>)> {
  let Stream::UdSocket(socket) = stream;
  let (reader, writer, direct) = crate::socket::split(socket.try_into()?)?;
  Ok((reader, writer, Some(direct)))
}

/// Named pipes: both halves share the stream, and the writer task does every write.
#[cfg(not(unix))]
fn split(stream: Stream) -> io::Result<(Shared<Stream>, Shared<Stream>, Option<DirectWrite>)> {
  let stream = Arc::new(stream);
  Ok((Shared(stream.clone()), Shared(stream), None))
}

/// The incoming side of a welcomed client connection, with what the handshake's reader had
/// received beyond the welcome.
#[cfg(unix)]
fn client_inbox(
  reader: FrameReader<SocketReader>,
  replica: &Arc<Replica>,
  heard: Arc<Heard>,
) -> Arc<Inbox> {
  let receiving = replica.clone();
  let (socket, received) = reader.into_parts();
  Arc::new(Inbox::new(
    socket.into_socket(),
    received,
    Box::new(move |batch| client_receive(&receiving, batch, &heard)),
  ))
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

#[derive(Debug)]
enum Ended {
  Shutdown,
  /// The host closed the connection after welcoming us: elect again at once (the failover
  /// path).
  HostLost,
  /// The host did not welcome us: it refused us, closed (a host that was stopping) or sent
  /// something else. Try again after a pause that grows while it lasts, since a broken host would
  /// otherwise be reconnected to thousands of times a second.
  NotWelcomed,
  /// The host welcomed us, then sent something invalid: try again after the same growing pause.
  Failed,
  /// The host welcomed us, then sent nothing for `hostTimeout` (stopped): replace it.
  Silent,
  /// The host refused us for good (`ERR_MAX_WRITERS`).
  Refused(Failure),
}

async fn serve_as_client(
  replica: &Arc<Replica>,
  stream: Stream,
  host_timeout: Duration,
  shutdown: &mut watch::Receiver<bool>,
) -> Ended {
  let (reader, writer, direct) = match split(stream) {
    Ok(halves) => halves,
    Err(err) => {
      report!(
        "memsync '{}': cannot use the host connection: {err}",
        replica.name()
      );
      return Ended::NotWelcomed;
    }
  };
  let mut reader = FrameReader::new(reader);
  // The host reads whatever we send: a client's own backlog is bounded by its pending patches.
  let outbox = Outbox::new(direct, usize::MAX);
  let writer = tokio::spawn(write_outbox(writer, outbox.clone()));
  outbox.send_message(&replica.hello());
  // `stop()` does not wait for a hung host's welcome. `about` comes first: the host's pid and
  // what it offers.
  let mut welcome = None;
  // A stopped host accepts (the kernel does) but never welcomes: its welcome is waited for as long
  // as a host may be silent.
  for _ in 0..2 {
    let message = tokio::select! {
      message = tokio::time::timeout(host_timeout, reader.read_message()) => message,
      _ = shutdown.wait_for(|stop| *stop) => {
        writer.abort();
        return Ended::Shutdown;
      }
    };
    if let Ok(Ok(Some(Message::About { pid, peer, clients }))) = message {
      replica.exchange().set_host(pid, peer, clients);
      continue;
    }
    welcome = Some(message);
    break;
  }
  let Some(welcome) = welcome else {
    report!(
      "memsync '{}': cannot join the host: two about messages",
      replica.name()
    );
    writer.abort();
    return Ended::NotWelcomed;
  };
  // Only a process that holds the object replaces a stopped host (see `run`): a newcomer's
  // default object would replace the network's.
  let Ok(welcome) = welcome else {
    report!(
      "memsync '{}': cannot join the host: no welcome within {host_timeout:?}",
      replica.name()
    );
    writer.abort();
    return Ended::NotWelcomed;
  };
  let welcomed = match welcome {
    Ok(Some(Message::Welcome {
      version,
      data,
      applied,
      ..
    })) => replica
      .client_welcome(version, data, applied, outbox.clone())
      .map_err(|err| Some(format!("the host's welcome is unusable: {err}"))),
    Ok(Some(Message::Refused {
      reason,
      code: Some(code),
    }))
      if code == ERR_MAX_WRITERS =>
    {
      writer.abort();
      return Ended::Refused(Failure {
        code: ERR_MAX_WRITERS,
        message: format!("memsync '{}': {reason}", replica.name()),
      });
    }
    Ok(Some(Message::Refused { reason, .. })) => {
      Err(Some(format!("the host refused us: {reason}")))
    }
    Ok(Some(message)) => Err(Some(format!(
      "its first message is {}, not welcome",
      message.kind()
    ))),
    // A host that stops while we join closes without a welcome (or resets the connection, our
    // hello unread): nothing to report, the next host will welcome us.
    Ok(None) => Err(None),
    Err(err) if is_reset(&err) => Err(None),
    Err(err) => Err(Some(err.to_string())),
  };
  if let Err(why) = welcomed {
    if let Some(why) = why {
      report!("memsync '{}': cannot join the host: {why}", replica.name());
    }
    writer.abort();
    return Ended::NotWelcomed;
  }
  let heard = Arc::new(Heard::new());
  #[cfg(unix)]
  let ended = read_through_inbox(
    replica,
    client_inbox(reader, replica, heard.clone()),
    &heard,
    host_timeout,
    shutdown,
  )
  .await;
  #[cfg(not(unix))]
  let ended = read_in_task(replica, reader, &heard, host_timeout, shutdown).await;
  replica.go_offline();
  writer.abort();
  ended
}

/// Reads the host's messages as the JS thread and the tokio task take turns (see `inbox`) until
/// the connection ends.
#[cfg(unix)]
async fn read_through_inbox(
  replica: &Arc<Replica>,
  inbox: Arc<Inbox>,
  heard: &Heard,
  host_timeout: Duration,
  shutdown: &mut watch::Receiver<bool>,
) -> Ended {
  inbox.receive();
  replica.offer_inbox(inbox.clone());
  let ended = loop {
    let turn = async {
      if inbox.polled_by_js() {
        inbox.watch_js(JS_PATIENCE).await;
        Ok(())
      } else {
        inbox.read_in_tokio().await
      }
    };
    let turned = tokio::select! {
      turned = turn => turned,
      _ = shutdown.wait_for(|stop| *stop) => break Ended::Shutdown,
      _ = heard.silence(host_timeout) => break Ended::Silent,
    };
    if let Err(err) = turned {
      break host_loss(replica, &ConnectionError::Io(err));
    }
    match inbox.take_end() {
      Some(InboxEnd::Lost(err)) => break host_loss(replica, &err),
      Some(InboxEnd::Failed(err)) => {
        report!("memsync '{}': {err}; reconnecting", replica.name());
        break Ended::Failed;
      }
      None => {}
    }
  };
  // Before going offline: a batch the JS thread is handling completes first.
  inbox.close();
  ended
}

/// Reads the host's messages in this task until the connection ends.
#[cfg(not(unix))]
async fn read_in_task(
  replica: &Replica,
  mut reader: FrameReader<Shared<Stream>>,
  heard: &Heard,
  host_timeout: Duration,
  shutdown: &mut watch::Receiver<bool>,
) -> Ended {
  loop {
    let first = tokio::select! {
      message = reader.read_message() => message,
      _ = shutdown.wait_for(|stop| *stop) => break Ended::Shutdown,
      _ = heard.silence(host_timeout) => break Ended::Silent,
    };
    let (batch, failed) = match first {
      Ok(Some(message)) => burst(&mut reader, message),
      Ok(None) => break Ended::HostLost,
      Err(err) => (Vec::new(), Some(err)),
    };
    // Whatever else has already arrived is handled with it: one rebase per burst.
    if let Err(err) = client_receive(replica, batch, heard) {
      report!("memsync '{}': {err}; reconnecting", replica.name());
      break Ended::Failed;
    }
    if let Some(err) = failed {
      break host_loss(replica, &err);
    }
  }
}

/// When a client last heard from its host, on the monotonic clock.
struct Heard {
  start: Instant,
  /// Nanoseconds after `start`.
  at: AtomicU64,
}

impl Heard {
  fn new() -> Heard {
    Heard {
      start: Instant::now(),
      at: AtomicU64::new(0),
    }
  }

  fn now(&self) {
    let now = self.start.elapsed().as_nanos() as u64;
    self.at.fetch_max(now, Ordering::Relaxed);
  }

  /// Resolves once the host has been silent for `timeout`, and still is a heartbeat later: a
  /// client that was stopped itself reads what its host sent meanwhile before it decides.
  async fn silence(&self, timeout: Duration) {
    let confirm = lease::heartbeat_interval(timeout);
    loop {
      let heard = Duration::from_nanos(self.at.load(Ordering::Relaxed));
      match Silence::new(timeout, heard).remaining(self.start.elapsed()) {
        Some(wait) => tokio::time::sleep(wait).await,
        None => {
          tokio::time::sleep(confirm).await;
          let since = Duration::from_nanos(self.at.load(Ordering::Relaxed));
          if since == heard {
            return;
          }
        }
      }
    }
  }
}

/// Whether the connection ended the way a host that stops or dies ends it.
fn is_reset(err: &ConnectionError) -> bool {
  matches!(err, ConnectionError::Io(io) if matches!(
    io.kind(),
    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
  ))
}

/// A host that dies resets its connections: that is the failover's ordinary start, not worth a
/// line on stderr. Anything else is; bytes that are not a valid frame mean a broken host, which
/// is retried after a pause rather than at once.
fn host_loss(replica: &Replica, err: &ConnectionError) -> Ended {
  if !is_reset(err) {
    report!(
      "memsync '{}': host connection failed: {err}",
      replica.name()
    );
  }
  match err {
    ConnectionError::Protocol(_) => Ended::Failed,
    _ => Ended::HostLost,
  }
}
