//! The network side of one instance: the driver that performs what the role machine (`role`)
//! decides. Runs on a tokio runtime (napi's) and reaches the document only through [`Replica`]
//! methods, which never await while holding its lock.
//!
//! One task per instance runs [`run`]: it feeds the machine what it observed and performs the
//! action it gets back (read the file, try the lock, connect, serve as host (`host`) or as a
//! client (`client`), pause), until the machine says stop or fail. Host loss is an input, not an
//! error; the decisions about it (elect again, replace a silent host, back off) are the machine's.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use interprocess::local_socket::tokio::Stream;
use tokio::sync::watch;

use crate::core::replica::Replica;
use crate::error::Code;
use crate::services::{Loaded, Services};
use crate::transport::local::client::{self, Client};
use crate::transport::local::connection::Budget;
use crate::transport::local::host;
use crate::transport::local::inbox::InboxSlot;
use crate::transport::local::lease::Lease;
use crate::transport::local::rendezvous::{HostLock, Rendezvous};
use crate::transport::local::role::{Action, Config, Failure, Input, Role};
use crate::transport::local::shutdown::Shutdown;
use crate::transport::redis::bridge::Shared;

/// What a host's connections may hold together by default (`network.maxBuffer`): see [`Budget`].
pub const DEFAULT_MAX_BUFFER: usize = 256 * 1024 * 1024;

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
  /// Where a client's socket is offered to the JS thread's event loop.
  pub inboxes: Arc<InboxSlot>,
  /// The shared log of `options.transport`, which the host bridges this machine to.
  pub log: Option<Shared>,
}

/// Runs the instance's network life until `stop` turns true. Reports a fatal failure (such as
/// an unusable rendezvous directory, or a corrupt file) through `fail` and returns. `services`
/// run while the instance is host. Returns once every task it started has ended.
pub async fn run(
  replica: Arc<Replica>,
  rendezvous: Rendezvous,
  options: Options,
  services: Arc<Services>,
  stop: watch::Receiver<bool>,
  fail: impl Fn(Failure),
) {
  let (shutdown, stopped) = Shutdown::new(stop);
  let mut role = Role::new(Config {
    client_only: options.client_only,
    server_only: options.server_only,
    host_timeout: options.host_timeout,
  });
  let mut peer = Peer {
    replica,
    rendezvous,
    options,
    services,
    shutdown,
    clock: Instant::now(),
    loaded: None,
    saved: None,
    lock: None,
    lease: None,
    stream: None,
    client: None,
  };
  // Best effort, before the election: the files of hosts killed by a signal, of any name. On
  // this thread, as the election's own file operations are: a directory listing and a
  // non-blocking lock probe per name, where the blocking pool's first task would start a thread
  // (a tenth of a process's first start()).
  let _ = peer.rendezvous.sweep();
  let mut action = role.step(Input::Start);
  loop {
    action = match action {
      Action::Exit => break,
      Action::Fail(failure) => {
        fail(failure);
        break;
      }
      action => role.step(peer.perform(action).await),
    };
  }
  // Dropping what the driver still holds releases a lock or leaves a host; the handlers'
  // `Shutdown`s are then the last ones `stopped` waits for.
  drop(peer);
  stopped.wait().await;
}

/// What the driver holds between two actions.
struct Peer {
  replica: Arc<Replica>,
  rendezvous: Rendezvous,
  options: Options,
  services: Arc<Services>,
  shutdown: Shutdown,
  /// The origin of the times the role machine reads.
  clock: Instant,
  /// The file's object, read before the election so that a corrupt file fails start() whatever
  /// the role; kept until it seeds the network or a host welcomes us.
  loaded: Option<Loaded>,
  /// The version of the seeded file, for the saver of the host that seeded it.
  saved: Option<u64>,
  /// The lock of the epoch this instance is host of, from the election until its term ends.
  lock: Option<HostLock>,
  lease: Option<Arc<Lease>>,
  /// A connection to the host, until the hello.
  stream: Option<Stream>,
  /// The welcomed connection to the host.
  client: Option<Client>,
}

impl Peer {
  /// Performs one action (all but `Exit` and `Fail`) and says what came of it.
  async fn perform(&mut self, action: Action) -> Input {
    if self.shutdown.is_shutdown() {
      return Input::Stop;
    }
    match action {
      Action::Load => {
        // A read that blocks (a FIFO, a hung network filesystem) is abandoned when the instance
        // stops, so that start()'s timeout bounds it.
        match or_stop(&mut self.shutdown, self.services.load(&self.replica)).await {
          None => Input::Stop,
          Some(Ok(loaded)) => {
            self.loaded = Some(loaded);
            Input::Loaded
          }
          Some(Err(err)) => Input::Broken(self.storage_failure(err)),
        }
      }
      Action::ReadEpoch => match self.rendezvous.current_epoch() {
        Ok(epoch) => Input::Epoch(epoch),
        Err(err) => Input::Broken(self.unusable(err)),
      },
      Action::TryLock => {
        let locked = self.rendezvous.try_become_host();
        self.locked(locked)
      }
      Action::TakeOver { epoch } => {
        let locked = self.rendezvous.take_over(epoch);
        self.locked(locked)
      }
      Action::CheckPrevious => match self.lock.as_ref().map(HostLock::previous_held) {
        Some(Ok(held)) => Input::PreviousHeld(held),
        Some(Err(err)) => Input::Broken(self.unusable(err)),
        None => self.lost_track(action),
      },
      Action::RenewLease => {
        let Some(lock) = &self.lock else {
          return self.lost_track(action);
        };
        let lease = Arc::new(Lease::new(lock.next_lock_path(), self.options.host_timeout));
        let renewed = lease.renew();
        if renewed {
          self.lease = Some(lease);
        } else {
          // Released: a later epoch exists already.
          self.lock = None;
        }
        Input::LeaseRenewed(renewed)
      }
      Action::Seed => {
        let Some(loaded) = self.loaded.take() else {
          return self.lost_track(action);
        };
        match or_stop(
          &mut self.shutdown,
          self.services.seed(&self.replica, loaded),
        )
        .await
        {
          None => Input::Stop,
          Some(Ok(version)) => {
            self.saved = Some(version);
            Input::Seeded
          }
          Some(Err(err)) => Input::Broken(self.storage_failure(err)),
        }
      }
      Action::ServeAsHost => self.serve_as_host().await,
      Action::Connect => match or_stop(&mut self.shutdown, self.rendezvous.connect()).await {
        None => Input::Stop,
        Some(Ok(stream)) => {
          self.stream = Some(stream);
          Input::Connected
        }
        // No host listening yet (it is between taking the lock and binding), or any more.
        Some(Err(err))
          if matches!(
            err.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
          ) =>
        {
          Input::NoHost
        }
        Some(Err(err)) => Input::Broken(self.unusable(err)),
      },
      Action::Join => {
        let Some(stream) = self.stream.take() else {
          return self.lost_track(action);
        };
        let host_timeout = self.options.host_timeout;
        match client::join(
          &self.replica,
          stream,
          host_timeout,
          &self.options.inboxes,
          self.clock,
          &mut self.shutdown,
        )
        .await
        {
          Ok(client) => {
            // The role machine seeds only before the first welcome: the host's object is newer.
            self.loaded = None;
            let now = client.heard();
            self.client = Some(client);
            Input::Welcomed { now }
          }
          Err(ended) => ended,
        }
      }
      Action::Follow { check_in } => {
        let Some(client) = &mut self.client else {
          return self.lost_track(action);
        };
        match client.follow(check_in, &mut self.shutdown).await {
          None => Input::HostChecked {
            now: self.clock.elapsed(),
            heard: client.heard(),
          },
          Some(ended) => {
            self.client = None;
            ended
          }
        }
      }
      Action::LeaveHost => {
        // Dropping the connection leaves the host.
        self.client = None;
        Input::Left
      }
      Action::Wait(pause) => match or_stop(&mut self.shutdown, tokio::time::sleep(pause)).await {
        Some(()) => Input::Waited,
        None => Input::Stop,
      },
      Action::Exit | Action::Fail(_) => self.lost_track(action),
    }
  }

  /// Serves one term as host with the lock and lease the election took.
  async fn serve_as_host(&mut self) -> Input {
    let (Some(lock), Some(lease)) = (self.lock.take(), self.lease.take()) else {
      return self.lost_track(Action::ServeAsHost);
    };
    let budget = self.options.budget.clone();
    let saved = self.saved.take();
    let served = host::serve(
      &self.replica,
      lock,
      lease,
      &self.services,
      saved,
      budget,
      self.options.log.as_ref(),
      &self.shutdown,
    )
    .await;
    match served {
      Ok(host::Ended::Fenced) => {
        self.replica.debug(|| {
          format!(
            "this host was stopped for too long (hostTimeout {} ms) and steps \
           down; it joins the next host",
            self.options.host_timeout.as_millis()
          )
        });
        Input::Fenced
      }
      Ok(host::Ended::Shutdown) => Input::Stop,
      Ok(host::Ended::Unreachable(err)) => Input::Broken(Failure {
        code: err.kind(),
        message: format!("memsync '{}': {err}", self.replica.name()),
      }),
      Err(err) => Input::Broken(self.unusable(err)),
    }
  }

  /// What a lock attempt came to.
  fn locked(&mut self, locked: io::Result<Option<HostLock>>) -> Input {
    match locked {
      Ok(Some(lock)) => {
        self.lock = Some(lock);
        Input::LockAcquired
      }
      Ok(None) => Input::LockBusy,
      Err(err) => Input::Broken(self.unusable(err)),
    }
  }

  fn storage_failure(&self, err: crate::error::Error) -> Failure {
    Failure {
      code: err.kind(),
      message: format!("memsync '{}': {err}", self.replica.name()),
    }
  }

  fn unusable(&self, err: io::Error) -> Failure {
    Failure {
      code: Code::Rendezvous,
      message: format!(
        "memsync '{}' cannot use {}: {err}",
        self.replica.name(),
        self.rendezvous.dir().display()
      ),
    }
  }

  /// The role machine asked for something the driver has not got (a bug): stop with a reason
  /// rather than panic on a runtime thread.
  fn lost_track(&self, action: Action) -> Input {
    Input::Broken(Failure {
      code: Code::Internal,
      message: format!(
        "memsync '{}': cannot perform {action:?} now",
        self.replica.name()
      ),
    })
  }
}

/// `future`'s output, or `None` once the instance is stopping first.
async fn or_stop<T>(shutdown: &mut Shutdown, future: impl Future<Output = T>) -> Option<T> {
  tokio::select! {
    output = future => Some(output),
    _ = shutdown.recv() => None,
  }
}
