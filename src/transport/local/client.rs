//! A client's connection to its host: [`join`] says hello and waits for the welcome, then
//! [`Client::follow`] reads what the host sends until the connection ends or the role machine
//! asks about the host's silence (see `role`). Dropping the [`Client`] leaves the host.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use interprocess::local_socket::tokio::Stream;
use tokio::task::JoinHandle;

use crate::core::message::Message;
use crate::core::replica::Replica;
use crate::error::Code;
use crate::transport::local::burst::{split, split_burst};
use crate::transport::local::codec::PROTOCOL_VERSION;
use crate::transport::local::connection::{write_outbox, ConnectionError, FrameReader, Outbox};
use crate::transport::local::inbox::{Inbox, InboxEnd, InboxSlot};
use crate::transport::local::role::{Failure, Input};
use crate::transport::local::shutdown::Shutdown;
use crate::transport::local::socket::SocketReader;

/// How long frames may wait unread while the JS thread polls the client socket before the tokio
/// task reads them itself (a stalled event loop): bounds how late a blocked process notices that
/// its host is gone.
const JS_PATIENCE: Duration = Duration::from_millis(20);

/// A welcomed connection to the host.
pub struct Client {
  replica: Arc<Replica>,
  writer: JoinHandle<()>,
  heard: Arc<Heard>,
  inbox: Arc<Inbox>,
}

/// Says hello over `stream` and waits for the welcome: the connection once welcomed, else what
/// ended the attempt ([`Input::NotWelcomed`], [`Input::Refused`] or [`Input::Stop`]). `clock` is
/// the origin of the times the role machine reads.
pub async fn join(
  replica: &Arc<Replica>,
  stream: Stream,
  host_timeout: Duration,
  inboxes: &InboxSlot,
  clock: Instant,
  shutdown: &mut Shutdown,
) -> Result<Client, Input> {
  let (reader, writer, direct) = match split(stream) {
    Ok(halves) => halves,
    Err(err) => {
      replica.debug(|| format!("cannot use the host connection: {err}"));
      return Err(Input::NotWelcomed);
    }
  };
  let mut reader = FrameReader::new(reader);
  // The host reads whatever we send: a client's own backlog is bounded by its pending patches.
  let outbox = Outbox::new(direct, usize::MAX);
  let writer = tokio::spawn(write_outbox(writer, outbox.clone()));
  outbox.send_message(&hello(replica));
  if let Err(ended) = welcome(replica, &mut reader, outbox, host_timeout, shutdown).await {
    writer.abort();
    return Err(ended);
  }
  let heard = Arc::new(Heard::new(clock));
  let client = {
    let inbox = client_inbox(reader, replica, heard.clone());
    inbox.receive();
    inboxes.offer(inbox.clone(), replica);
    Client {
      replica: replica.clone(),
      writer,
      heard,
      inbox,
    }
  };
  Ok(client)
}

/// The `Hello` that opens a client's connection.
fn hello(replica: &Replica) -> Message {
  Message::Hello {
    protocol: PROTOCOL_VERSION,
    pid: std::process::id(),
    origin: replica.origin(),
    version: replica.version(),
    peer: replica.exchange().peer_info(),
  }
}

/// Waits for the host's welcome and hands it to the replica.
async fn welcome<R>(
  replica: &Replica,
  reader: &mut FrameReader<R>,
  outbox: Arc<Outbox>,
  host_timeout: Duration,
  shutdown: &mut Shutdown,
) -> Result<(), Input>
where
  R: tokio::io::AsyncRead + Unpin,
{
  // `stop()` does not wait for a hung host's welcome. `about` comes first: the host's pid and
  // what it offers.
  let mut welcome = None;
  // A stopped host accepts (the kernel does) but never welcomes: its welcome is waited for as long
  // as a host may be silent.
  for _ in 0..2 {
    let message = tokio::select! {
      message = tokio::time::timeout(host_timeout, reader.read_message()) => message,
      _ = shutdown.recv() => return Err(Input::Stop),
    };
    if let Ok(Ok(Some(Message::About { pid, peer, clients }))) = message {
      replica.exchange().set_host(pid, peer, clients);
      continue;
    }
    welcome = Some(message);
    break;
  }
  let Some(welcome) = welcome else {
    replica.debug(|| "cannot join the host: two about messages".to_owned());
    return Err(Input::NotWelcomed);
  };
  // Only a process that holds the object replaces a stopped host (see `role`): a newcomer's
  // default object would replace the network's.
  let Ok(welcome) = welcome else {
    replica.debug(|| format!("cannot join the host: no welcome within {host_timeout:?}"));
    return Err(Input::NotWelcomed);
  };
  let why = match welcome {
    Ok(Some(Message::Welcome {
      version,
      data,
      applied,
      ..
    })) => match replica.client_welcome(version, data, applied, outbox) {
      Ok(()) => return Ok(()),
      Err(err) => Some(format!("the host's welcome is unusable: {err}")),
    },
    Ok(Some(Message::Refused {
      reason,
      code: Some(code),
    }))
      if code == Code::MaxWriters.as_str() =>
    {
      return Err(Input::Refused(Failure {
        code: Code::MaxWriters,
        message: format!("memsync '{}': {reason}", replica.name()),
      }));
    }
    Ok(Some(Message::Refused { reason, .. })) => Some(format!("the host refused us: {reason}")),
    Ok(Some(message)) => Some(format!(
      "its first message is {}, not welcome",
      message.kind()
    )),
    // A host that stops while we join closes without a welcome (or resets the connection, our
    // hello unread): nothing to report, the next host will welcome us.
    Ok(None) => None,
    Err(err) if is_reset(&err) => None,
    Err(err) => Some(err.to_string()),
  };
  if let Some(why) = why {
    replica.debug(|| format!("cannot join the host: {why}"));
  }
  Err(Input::NotWelcomed)
}

impl Client {
  /// When the last frame came from the host, on the clock given to [`join`].
  pub fn heard(&self) -> Duration {
    self.heard.last()
  }

  /// Reads the host's messages, as the JS thread and the tokio task take turns (see `inbox`),
  /// for `check_in`: `None` once that time has come, else what ended the connection.
  pub async fn follow(&mut self, check_in: Duration, shutdown: &mut Shutdown) -> Option<Input> {
    let check = tokio::time::sleep(check_in);
    tokio::pin!(check);
    loop {
      let inbox = &self.inbox;
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
        _ = shutdown.recv() => return Some(Input::Stop),
        _ = &mut check => return None,
      };
      if let Err(err) = turned {
        return Some(host_loss(&self.replica, &ConnectionError::Io(err)));
      }
      match self.inbox.take_end() {
        Some(InboxEnd::Lost(err)) => return Some(host_loss(&self.replica, &err)),
        Some(InboxEnd::Failed(err)) => {
          self.replica.debug(|| format!("{err}; reconnecting"));
          return Some(Input::HostBroken);
        }
        None => {}
      }
    }
  }
}

impl Drop for Client {
  /// Leaves the host: a batch the JS thread is handling completes first, then the replica goes
  /// offline (its pending patches wait for the next host).
  fn drop(&mut self) {
    self.inbox.close();
    self.replica.go_offline();
    self.writer.abort();
  }
}

/// A burst from the host, in order, as `burst::split_burst` splits it. Any frame, a heartbeat
/// included, shows that the host is not stopped: `heard` notes when.
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

/// The incoming side of a welcomed client connection, with what the handshake's reader had
/// received beyond the welcome.
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

/// When a client last heard from its host, on the monotonic clock: written by whichever thread
/// reads the host's frames, read by the role machine's checks.
struct Heard {
  clock: Instant,
  /// Nanoseconds after `clock`.
  at: AtomicU64,
}

impl Heard {
  /// Heard now: the welcome.
  fn new(clock: Instant) -> Heard {
    Heard {
      clock,
      at: AtomicU64::new(clock.elapsed().as_nanos() as u64),
    }
  }

  fn now(&self) {
    let now = self.clock.elapsed().as_nanos() as u64;
    self.at.fetch_max(now, Ordering::Relaxed);
  }

  fn last(&self) -> Duration {
    Duration::from_nanos(self.at.load(Ordering::Relaxed))
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
fn host_loss(replica: &Replica, err: &ConnectionError) -> Input {
  if !is_reset(err) {
    replica.debug(|| format!("host connection failed: {err}"));
  }
  match err {
    ConnectionError::Protocol(_) => Input::HostBroken,
    _ => Input::HostLost,
  }
}
