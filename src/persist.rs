//! The file of `options.file.path`, in memsync 0.5's shape `{ "data": {..}, "version": n,
//! "timestamp": ms }`: read when an instance starts, saved by the host.
//!
//! A save never leaves a torn file, whenever the process dies: the contents go to a temporary
//! file in the same directory, which is fsynced and then renamed over the file (atomic on POSIX),
//! and the directory is fsynced so that the rename itself is durable. A reader, or a `kill -9` at
//! any moment, sees the old complete file or the new one.
//!
//! Only the host saves, and a host's last save ends before it releases the host lock (see
//! `peer::serve_as_host`), so two processes never write the file at once. That is also why the
//! temporary file can have a fixed name: a stale one left by a killed host is simply overwritten.
//!
//! [`Saver`] is the host's task: a save at most [`DEBOUNCE`] after a change, one write at a time,
//! and one at once for `flush()`. The document is copied under the replica's lock, then encoded
//! and written, all on the runtime's blocking pool: neither the JS thread nor the worker that
//! relays patches waits for it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::error::{Error, Result};
use crate::state::{now_ms, Replica};

/// How long after a change the host saves: one save covers the changes of that window.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// The pause between attempts while saving fails (a full disk, a removed directory).
const RETRY: Duration = Duration::from_secs(1);

/// What a file held when it was read.
#[derive(Debug)]
pub struct Stored {
  /// The object.
  pub data: Value,
  /// Its version (0 when the file has none).
  pub version: u64,
  identity: Identity,
}

/// Tells whether a file was replaced or rewritten since it was read: a save renames a new inode
/// over it, an editor at least changes its size or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
  dev: u64,
  ino: u64,
  len: u64,
  mtime: i64,
  mtime_nsec: i64,
}

impl Identity {
  fn of(meta: &fs::Metadata) -> Identity {
    Identity {
      dev: meta.dev(),
      ino: meta.ino(),
      len: meta.len(),
      mtime: meta.mtime(),
      mtime_nsec: meta.mtime_nsec(),
    }
  }
}

impl Stored {
  /// Whether the file at `path` is still the one this was read from.
  pub fn is_current(&self, path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| Identity::of(&meta) == self.identity)
  }
}

#[derive(Deserialize)]
struct FileIn {
  data: Map<String, Value>,
  #[serde(default)]
  version: u64,
}

#[derive(Serialize)]
struct FileOut<'a> {
  data: &'a Value,
  version: u64,
  timestamp: u64,
}

/// Reads the file at `path`: `Ok(None)` when there is none. A file that cannot be read, is not
/// JSON or is not `{ data: {..}, version }` is an error, and is left as it is.
pub fn load(path: &Path) -> Result<Option<Stored>> {
  let failed = |detail: String| {
    Error::Storage(format!(
      "Cannot load {}: {detail}; the file was left untouched",
      path.display()
    ))
  };
  let mut file = match File::open(path) {
    Ok(file) => file,
    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
    Err(err) => return Err(failed(err.to_string())),
  };
  let meta = file.metadata().map_err(|err| failed(err.to_string()))?;
  if !meta.is_file() {
    return Err(failed("it is not a regular file".into()));
  }
  let mut text = Vec::with_capacity(meta.len() as usize);
  file
    .read_to_end(&mut text)
    .map_err(|err| failed(err.to_string()))?;
  let stored: FileIn = serde_json::from_slice(&text).map_err(|err| {
    failed(match err.classify() {
      serde_json::error::Category::Data => {
        format!("it does not hold memsync's {{ data: {{..}}, version, timestamp }} ({err})")
      }
      _ => format!("it is not valid JSON ({err})"),
    })
  })?;
  Ok(Some(Stored {
    data: Value::Object(stored.data),
    version: stored.version,
    identity: Identity::of(&meta),
  }))
}

/// The file's contents for `data` at `version`, saved at `timestamp` (epoch ms).
pub fn encode(data: &Value, version: u64, timestamp: u64) -> io::Result<Vec<u8>> {
  let file = FileOut {
    data,
    version,
    timestamp,
  };
  serde_json::to_vec(&file).map_err(io::Error::other)
}

/// Replaces the file at `path` with `contents`, atomically and durably (see the module doc).
/// The new file keeps the permissions of the one it replaces.
pub fn save(path: &Path, contents: &[u8]) -> io::Result<()> {
  let name = path.file_name().ok_or_else(|| {
    io::Error::new(
      io::ErrorKind::InvalidInput,
      format!("{} does not name a file", path.display()),
    )
  })?;
  let dir = match path.parent() {
    Some(dir) if !dir.as_os_str().is_empty() => dir,
    _ => Path::new("."),
  };
  let mut temp_name = OsString::from(".");
  temp_name.push(name);
  temp_name.push(".memsync-tmp");
  let temp = dir.join(temp_name);
  let written = match write_synced(&temp, path, contents) {
    // memsync 0.5 created the missing directories (its file library did). They get mkdir -p's
    // mode, 0777 less the umask, as the file gets 0666 less the umask: the umask decides.
    Err(err) if err.kind() == io::ErrorKind::NotFound && !dir.exists() => {
      fs::create_dir_all(dir).and_then(|()| write_synced(&temp, path, contents))
    }
    other => other,
  }
  .and_then(|()| fs::rename(&temp, path));
  if written.is_err() {
    // Best effort: a leftover is overwritten by the next save anyway.
    let _ = fs::remove_file(&temp);
  }
  written?;
  // The rename is durable only once the directory entry is.
  File::open(dir)?.sync_all()
}

fn write_synced(temp: &Path, target: &Path, contents: &[u8]) -> io::Result<()> {
  let mut file = OpenOptions::new()
    .write(true)
    .create(true)
    .truncate(true)
    .mode(0o666)
    .open(temp)?;
  if let Ok(meta) = fs::metadata(target) {
    file.set_permissions(meta.permissions())?;
  }
  file.write_all(contents)?;
  file.sync_all()
}

/// A `flush()` waiting for a save that started after it asked; answered with the outcome.
pub type Flush = oneshot::Sender<std::result::Result<(), String>>;

/// The host's task that keeps the file up to date.
pub struct Saver {
  replica: Arc<Replica>,
  path: PathBuf,
  /// The version the file holds as far as this host knows; `None`: unknown, save at once.
  saved: Option<u64>,
  changed: Arc<Notify>,
  flushes: mpsc::UnboundedReceiver<Flush>,
  /// Whether the last save failed: a failing disk is reported once, not at every attempt.
  failing: bool,
}

impl Saver {
  /// A saver of `replica` to `path`, which holds version `saved` (if known). It hears of every
  /// patch the replica orders from now on, and takes `flush()` requests from `flushes`.
  pub fn new(
    replica: Arc<Replica>,
    path: PathBuf,
    saved: Option<u64>,
    flushes: mpsc::UnboundedReceiver<Flush>,
  ) -> Saver {
    let changed = Arc::new(Notify::new());
    replica.notify_orders(changed.clone());
    Saver {
      replica,
      path,
      saved,
      changed,
      flushes,
      failing: false,
    }
  }

  /// Saves until `shutdown` turns true, then saves a last time if the file is behind. Ends only
  /// after that last write, so the caller may then hand the host role over.
  pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
    let mut waiting: Vec<Flush> = Vec::new();
    loop {
      // Idle while the file is up to date and nobody flushes.
      while waiting.is_empty() && !self.is_behind() {
        tokio::select! {
          _ = self.changed.notified() => {}
          Some(flush) = self.flushes.recv() => waiting.push(flush),
          _ = shutdown.wait_for(|stop| *stop) => break,
        }
      }
      // The debounce: the changes of the next moment go into the same save. A flush or a
      // shutdown does not wait for it.
      if waiting.is_empty() && !*shutdown.borrow() {
        let pause = if self.failing { RETRY } else { DEBOUNCE };
        tokio::select! {
          _ = tokio::time::sleep(pause) => {}
          Some(flush) = self.flushes.recv() => waiting.push(flush),
          _ = shutdown.wait_for(|stop| *stop) => {}
        }
      }
      if *shutdown.borrow() {
        return self.finish(waiting).await;
      }
      while let Ok(flush) = self.flushes.try_recv() {
        waiting.push(flush);
      }
      let outcome = self.save().await;
      for flush in waiting.drain(..) {
        let _ = flush.send(outcome.clone());
      }
    }
  }

  fn is_behind(&self) -> bool {
    self.saved != Some(self.replica.version())
  }

  async fn finish(mut self, mut waiting: Vec<Flush>) {
    while let Ok(flush) = self.flushes.try_recv() {
      waiting.push(flush);
    }
    if !waiting.is_empty() || self.is_behind() {
      let outcome = self.save().await;
      for flush in waiting {
        let _ = flush.send(outcome.clone());
      }
    }
  }

  /// One save of the ordered document; the only write in flight, since the loop awaits it.
  async fn save(&mut self) -> std::result::Result<(), String> {
    let replica = self.replica.clone();
    let path = self.path.clone();
    // The copy of the document, too, is made off the runtime's worker, which relays patches.
    let outcome = tokio::task::spawn_blocking(move || {
      let (data, version) = replica.ordered_snapshot()?;
      let contents = encode(&data, version, now_ms()).map_err(|err| err.to_string())?;
      save(&path, &contents).map_err(|err| err.to_string())?;
      Ok(version)
    })
    .await
    .unwrap_or_else(|err| Err(err.to_string()));
    match outcome {
      Ok(version) => {
        self.saved = Some(version);
        self.failing = false;
        Ok(())
      }
      Err(err) => {
        let message = format!(
          "memsync '{}' cannot save {}: {err}",
          self.replica.name(),
          self.path.display()
        );
        if !self.failing {
          self.replica.report_error("ERR_STORAGE", &message);
        }
        self.failing = true;
        Err(message)
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use std::os::unix::fs::PermissionsExt;

  use serde_json::json;

  use super::*;

  fn saved(path: &Path, data: &Value, version: u64) {
    save(path, &encode(data, version, 1).unwrap()).unwrap();
  }

  #[test]
  fn a_saved_file_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    let data = json!({ "n": 1, "list": ["a", { "b": null }] });
    saved(&path, &data, 7);
    let stored = load(&path).unwrap().unwrap();
    assert_eq!(stored.data, data);
    assert_eq!(stored.version, 7);
    let text: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(text, json!({ "data": data, "version": 7, "timestamp": 1 }));
  }

  #[test]
  fn a_missing_file_is_none() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load(&dir.path().join("none.json")).unwrap().is_none());
  }

  #[test]
  fn a_file_of_memsync_0_5_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.json");
    fs::write(
      &path,
      r#"{"data":{"a":[1,2]},"version":42,"timestamp":1700000000000}"#,
    )
    .unwrap();
    let stored = load(&path).unwrap().unwrap();
    assert_eq!(stored.data, json!({ "a": [1, 2] }));
    assert_eq!(stored.version, 42);
  }

  #[test]
  fn a_corrupt_file_is_an_error_and_stays_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    for (contents, says) in [
      (&b"{\"data\":{\"a\":1},\"vers"[..], "not valid JSON"),
      (b"", "not valid JSON"),
      (b"[1,2]", "does not hold"),
      (b"{\"version\":3}", "does not hold"),
      (b"{\"data\":[1],\"version\":3}", "does not hold"),
      (b"{\"data\":{},\"version\":-1}", "does not hold"),
    ] {
      fs::write(&path, contents).unwrap();
      let err = load(&path).unwrap_err();
      assert_eq!(err.code(), "ERR_STORAGE");
      let message = err.to_string();
      assert!(message.contains(says), "{message}");
      assert!(message.contains("bad.json"), "{message}");
      assert_eq!(fs::read(&path).unwrap(), contents);
    }
  }

  #[test]
  fn a_directory_is_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
  }

  #[test]
  fn a_save_replaces_the_file_keeps_its_mode_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    saved(&path, &json!({ "v": 1 }), 1);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    saved(&path, &json!({ "v": 2 }), 2);
    assert_eq!(load(&path).unwrap().unwrap().data, json!({ "v": 2 }));
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let names: Vec<_> = fs::read_dir(dir.path())
      .unwrap()
      .map(|entry| entry.unwrap().file_name())
      .collect();
    assert_eq!(names, ["jobs.json"]);
  }

  #[test]
  fn a_stale_temporary_file_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    fs::write(dir.path().join(".jobs.json.memsync-tmp"), "torn garbage").unwrap();
    saved(&path, &json!({ "ok": true }), 3);
    assert_eq!(load(&path).unwrap().unwrap().data, json!({ "ok": true }));
    assert!(!dir.path().join(".jobs.json.memsync-tmp").exists());
  }

  #[test]
  fn a_save_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new").join("deeper").join("jobs.json");
    save(&path, b"{}").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"{}");
    assert!(!dir
      .path()
      .join("new/deeper/.jobs.json.memsync-tmp")
      .exists());
  }

  #[test]
  fn a_save_under_a_file_fails_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("plain"), b"x").unwrap();
    let err = save(&dir.path().join("plain").join("jobs.json"), b"{}").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
    assert_eq!(fs::read(dir.path().join("plain")).unwrap(), b"x");
  }

  #[test]
  fn a_rewritten_file_is_no_longer_current() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    saved(&path, &json!({}), 1);
    let stored = load(&path).unwrap().unwrap();
    assert!(stored.is_current(&path));
    saved(&path, &json!({}), 2);
    assert!(!stored.is_current(&path));
  }

  /// A host replica and its saver task, driven by a flush channel and a shutdown switch.
  struct Host {
    replica: Arc<Replica>,
    flusher: mpsc::UnboundedSender<Flush>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
  }

  impl Host {
    fn new(path: &Path) -> Host {
      let replica = Arc::new(Replica::new("s", json!({ "n": 0 }), 1).unwrap());
      replica.become_host();
      let (flusher, flushes) = mpsc::unbounded_channel();
      let (stop, stopped) = watch::channel(false);
      let saver = Saver::new(replica.clone(), path.to_owned(), Some(0), flushes);
      let task = tokio::spawn(saver.run(stopped));
      Host {
        replica,
        flusher,
        stop,
        task,
      }
    }

    async fn flush(&self) -> std::result::Result<(), String> {
      let (done, outcome) = oneshot::channel();
      self.flusher.send(done).unwrap();
      outcome.await.unwrap()
    }
  }

  #[tokio::test]
  async fn the_saver_writes_on_flush_and_a_last_time_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let host = Host::new(&path);
    host.replica.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    assert_eq!(host.flush().await, Ok(()));
    let stored = load(&path).unwrap().unwrap();
    assert_eq!((stored.data, stored.version), (json!({ "n": 1 }), 1));
    for _ in 0..3 {
      host.replica.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    }
    host.stop.send(true).unwrap();
    host.task.await.unwrap();
    let stored = load(&path).unwrap().unwrap();
    assert_eq!((stored.data, stored.version), (json!({ "n": 4 }), 4));
  }

  #[tokio::test]
  async fn a_failing_save_is_reported_once_and_to_every_flush() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("plain"), b"x").unwrap();
    let host = Host::new(&dir.path().join("plain").join("s.json"));
    host.replica.drain();
    for _ in 0..2 {
      let err = host.flush().await.unwrap_err();
      assert!(err.contains("memsync 's' cannot save"), "{err}");
    }
    let events = host.replica.drain();
    assert_eq!(
      events.matches(r#"["error","ERR_STORAGE""#).count(),
      1,
      "{events}"
    );
    host.stop.send(true).unwrap();
    host.task.await.unwrap();
  }
}
