//! What a host does besides ordering patches: it saves the object to `options.file.path`
//! (`persist`) and serves the HTTP view of `options.server` (`http`). Both follow the host role:
//! they start when an instance becomes host and stop before it hands the role over, so only one
//! process writes the file and listens on the port at a time.
//!
//! The file is also read when an instance starts: a corrupt file fails `start()` whatever role
//! the instance then takes, and the process that starts a network seeds it from the file.

pub mod http;
pub mod persist;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::core::replica::Replica;
use crate::error::{Error, Result};
use http::View;
use persist::{FileTarget, Flush, Saver, Stored};

/// An instance's host services, as configured.
#[derive(Debug, Default)]
pub struct Services {
  file: Option<FileTarget>,
  http: Option<View>,
  /// Where `flush()` reaches the saver while this instance is host.
  flusher: Mutex<Option<mpsc::UnboundedSender<Flush>>>,
}

/// What `start()` read from the file, kept in case this instance starts the network.
#[derive(Debug)]
pub struct Loaded(Option<Stored>);

/// The services of a host while it is host.
pub struct Running {
  services: Arc<Services>,
  shutdown: watch::Sender<bool>,
  tasks: Vec<JoinHandle<()>>,
}

/// Reads `file` on the blocking pool. A caller that stops waiting (a stop, or start()'s timeout)
/// abandons the read: a FIFO or a hung network filesystem may never answer, and nothing waits for
/// it then; a diagnostic line of `replica` says so, while its JS side still drains them.
async fn read(file: FileTarget, replica: Arc<Replica>) -> Result<Option<Stored>> {
  struct Waiting {
    ended: bool,
    replica: Arc<Replica>,
    path: PathBuf,
    began: Instant,
  }
  impl Drop for Waiting {
    fn drop(&mut self) {
      if !self.ended {
        self.replica.debug(|| {
          format!(
            "reading {} did not end within {:.1} s and is abandoned; what it reads will be dropped",
            self.path.display(),
            self.began.elapsed().as_secs_f64()
          )
        });
      }
    }
  }
  let mut waiting = Waiting {
    ended: false,
    replica,
    path: file.path.clone(),
    began: Instant::now(),
  };
  let read = tokio::task::spawn_blocking(move || persist::load(&file)).await;
  waiting.ended = true;
  read.map_err(|err| Error::Storage(err.to_string()))?
}

impl Services {
  /// Saves to `file` and serves `http`, each when given.
  pub fn new(file: Option<FileTarget>, http: Option<View>) -> Services {
    Services {
      file,
      http,
      flusher: Mutex::new(None),
    }
  }

  /// Reads the file, off the async workers. A file that cannot be read or parsed is an error.
  pub async fn load(&self, replica: &Arc<Replica>) -> Result<Loaded> {
    let Some(file) = self.file.clone() else {
      return Ok(Loaded(None));
    };
    Ok(Loaded(read(file, replica.clone()).await?))
  }

  /// For the instance that starts the network, now host: puts the file's object into `replica`.
  /// Read again if it changed since `start()` read it (a previous host may have saved once more
  /// before it handed over; nobody writes it now). Returns the version the file holds.
  pub async fn seed(&self, replica: &Arc<Replica>, loaded: Loaded) -> Result<u64> {
    let stored = match (loaded.0, &self.file) {
      (Some(stored), Some(file)) if !stored.is_current(file) => {
        read(file.clone(), replica.clone()).await?
      }
      (stored, _) => stored,
    };
    Ok(match stored {
      Some(stored) => {
        replica.seed(stored.data, stored.version);
        stored.version
      }
      // No file yet: there is nothing to save until the object changes.
      None => replica.version(),
    })
  }

  /// Starts the services of a host whose file holds version `saved` (`None`: unknown, save at
  /// once). The HTTP port is bound before this returns, so it is served by the time `start()`
  /// resolves as host.
  /// `view_file` is where the HTTP view's URL and token are kept (`<stem>.view.json`).
  pub async fn start(
    self: &Arc<Self>,
    replica: &Arc<Replica>,
    saved: Option<u64>,
    view_file: PathBuf,
  ) -> Running {
    let (shutdown, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(file) = &self.file {
      let (flusher, flushes) = mpsc::unbounded_channel();
      let saver = Saver::new(replica.clone(), file.clone(), saved, flushes);
      tasks.push(tokio::spawn(saver.run(stopped.clone())));
      *self.flusher.lock() = Some(flusher);
    }
    if let Some(view) = &self.http {
      let listener = http::bind(&view.address).await;
      tasks.push(tokio::spawn(http::run(
        replica.clone(),
        view.clone(),
        listener,
        view_file,
        stopped,
      )));
    }
    Running {
      services: self.clone(),
      shutdown,
      tasks,
    }
  }

  /// Saves the object now if this instance is host (with a file), and resolves once it is
  /// written. Elsewhere there is nothing to do: the host saves.
  pub async fn flush(&self) -> std::result::Result<(), String> {
    let Some(flusher) = self.flusher.lock().clone() else {
      return Ok(());
    };
    let (done, outcome) = oneshot::channel();
    if flusher.send(done).is_err() {
      return Ok(());
    }
    // A saver that ended without answering has handed the role over: the next host saves.
    outcome.await.unwrap_or(Ok(()))
  }
}

impl Running {
  /// Stops the services: the last save is written and the port closed when this returns.
  pub async fn stop(self) {
    let _ = self.shutdown.send(true);
    for task in self.tasks {
      let _ = task.await;
    }
    *self.services.flusher.lock() = None;
  }
}
