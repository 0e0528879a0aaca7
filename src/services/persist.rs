//! The file of `options.file.path`, in memsync 0.5's shape `{ "data": {..}, "version": n,
//! "timestamp": ms }`: read when an instance starts, saved by the host.
//!
//! A save never leaves a torn file, whenever the process dies: the contents go to a temporary
//! file in the same directory, which is fsynced and then renamed over the file (atomic on POSIX),
//! and the directory is fsynced so that the rename itself is durable. A reader, or a `kill -9` at
//! any moment, sees the old complete file or the new one.
//!
//! The directory may be writable by others (a group or shared directory): the temporary file has
//! a random name and is created exclusively, not following a symbolic link, with its final mode
//! (0600, or the replaced file's) from the start, so nothing planted at a temporary name redirects
//! or exposes a save; a symbolic link at the file itself is refused unless followed on purpose
//! (`options.file.followSymlinks`). Only the host saves, and a host's last save ends before it
//! releases the host lock (see `host::serve`), so two processes never write the file at
//! once; the temporary files a killed host left are removed when the next host starts saving.
//!
//! [`Saver`] is the host's task: a save at most [`DEBOUNCE`] after a change, one write at a time,
//! and one at once for `flush()`. The document is copied under the replica's lock, then encoded
//! and written, all on the runtime's blocking pool: neither the JS thread nor the worker that
//! relays patches waits for it.

use std::collections::hash_map::RandomState;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::clock::{now_ms, Hlc};
use crate::core::message::RawJson;
use crate::core::replica::{Replica, Tap};
use crate::doc::{Map, Value};
use crate::error::{Error, Result};

/// How long after a change the host saves: one save covers the changes of that window.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// The pause between attempts while saving fails (a full disk, a removed directory).
const RETRY: Duration = Duration::from_secs(1);
/// The highest version a file may hold: JavaScript numbers are exact up to 2^53 - 1.
const MAX_VERSION: u64 = (1 << 53) - 1;
/// The suffix of a save's temporary file, `.<file name>.<random>.memsync-tmp`.
const TEMP_SUFFIX: &str = ".memsync-tmp";
/// The mode of a file that a save creates: the object may hold secrets.
const NEW_FILE_MODE: u32 = 0o600;

/// The file of `options.file`: where it is, and whether a symbolic link there may be followed.
#[derive(Debug, Clone)]
pub struct FileTarget {
  /// `options.file.path`, absolute.
  pub path: PathBuf,
  /// `options.file.followSymlinks`: a link at `path` leads to the file, instead of being refused.
  pub follow_symlinks: bool,
}

impl FileTarget {
  /// The file to read or replace: `path`, or where the symbolic link at `path` leads when links
  /// are followed. A link is refused otherwise: planted where the file should be, it would lead
  /// the object's saves, and its secrets, to another file.
  fn resolve(&self) -> io::Result<PathBuf> {
    match fs::symlink_metadata(&self.path) {
      Ok(meta) if meta.file_type().is_symlink() => {
        if self.follow_symlinks {
          fs::canonicalize(&self.path)
        } else {
          Err(self.refused_link())
        }
      }
      _ => Ok(self.path.clone()),
    }
  }

  fn refused_link(&self) -> io::Error {
    io::Error::new(
      io::ErrorKind::InvalidInput,
      format!(
        "{} is a symbolic link, which memsync does not follow unless options.file.followSymlinks is true",
        self.path.display()
      ),
    )
  }
}

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
  /// Whether the file is still the one this was read from.
  pub fn is_current(&self, file: &FileTarget) -> bool {
    file
      .resolve()
      .and_then(fs::symlink_metadata)
      .is_ok_and(|meta| Identity::of(&meta) == self.identity)
  }
}

#[derive(Deserialize)]
struct FileIn {
  data: Map,
  #[serde(default)]
  version: u64,
}

#[derive(Serialize)]
struct FileOut<'a> {
  data: &'a Value,
  version: u64,
  timestamp: u64,
}

/// Reads the file: `Ok(None)` when there is none. A file that cannot be read, is not JSON, is not
/// `{ data: {..}, version }`, nests deeper than a document may or holds a version JavaScript
/// cannot count to is an error, and is left as it is.
pub fn load(file: &FileTarget) -> Result<Option<Stored>> {
  let failed = |detail: String| {
    Error::Storage(format!(
      "Cannot load {}: {detail}; the file was left untouched",
      file.path.display()
    ))
  };
  let path = match file.resolve() {
    Ok(path) => path,
    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
    Err(err) => return Err(failed(err.to_string())),
  };
  // O_NOFOLLOW: a link planted between the check above and this open is refused too.
  let opened = OpenOptions::new()
    .read(true)
    .custom_flags(libc::O_NOFOLLOW)
    .open(&path);
  let mut handle = match opened {
    Ok(handle) => handle,
    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
    Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
      return Err(failed(file.refused_link().to_string()))
    }
    Err(err) => return Err(failed(err.to_string())),
  };
  let meta = handle.metadata().map_err(|err| failed(err.to_string()))?;
  if !meta.is_file() {
    return Err(failed("it is not a regular file".into()));
  }
  let mut text = Vec::with_capacity(meta.len() as usize);
  handle
    .read_to_end(&mut text)
    .map_err(|err| failed(err.to_string()))?;
  let stored: FileIn = serde_json::from_slice(&text).map_err(|err| {
    failed(match err.classify() {
      serde_json::error::Category::Data => {
        format!("it does not hold memsync's {{ data: {{..}}, version, timestamp }} ({err})")
      }
      // serde_json stops at 128 levels, before the check below could say why.
      _ if err.to_string().contains("recursion limit exceeded") => too_deep(),
      _ => format!("it is not valid JSON ({err})"),
    })
  })?;
  if stored.version > MAX_VERSION {
    return Err(failed(format!(
      "its version {} is above {MAX_VERSION} (2^53 - 1), the highest a JavaScript number counts exactly",
      stored.version
    )));
  }
  let data = Value::Object(stored.data);
  // The file's own `{ data: .. }` level is not the document's.
  if crate::patch::depth(&data) > crate::patch::MAX_DEPTH {
    return Err(failed(too_deep()));
  }
  Ok(Some(Stored {
    data,
    version: stored.version,
    identity: Identity::of(&meta),
  }))
}

fn too_deep() -> String {
  format!(
    "its data nests deeper than the {} levels a document may nest",
    crate::patch::MAX_DEPTH
  )
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

/// Replaces the file with `contents`, atomically and durably (see the module doc). The new file
/// keeps the mode of the one it replaces, or is 0600.
pub fn save(file: &FileTarget, contents: &[u8]) -> io::Result<()> {
  let path = file.resolve()?;
  let name = path.file_name().ok_or_else(|| {
    io::Error::new(
      io::ErrorKind::InvalidInput,
      format!("{} does not name a file", path.display()),
    )
  })?;
  let dir = parent_dir(&path);
  let mode = fs::symlink_metadata(&path).map_or(NEW_FILE_MODE, |meta| meta.mode() & 0o7777);
  let created = match create_temp(dir, name, mode) {
    // memsync 0.5 created the missing directories (its file library did). They get mkdir -p's
    // mode, 0777 less the umask: the umask decides.
    Err(err) if err.kind() == io::ErrorKind::NotFound && !dir.exists() => {
      fs::create_dir_all(dir).and_then(|()| create_temp(dir, name, mode))
    }
    other => other,
  };
  let (temp, mut handle) = created?;
  let written = write_synced(&mut handle, mode, contents).and_then(|()| fs::rename(&temp, &path));
  if written.is_err() {
    // Best effort: a leftover is removed when the next host starts saving.
    let _ = fs::remove_file(&temp);
  }
  written?;
  // The rename is durable only once the directory entry is.
  File::open(dir)?.sync_all()
}

fn parent_dir(path: &Path) -> &Path {
  match path.parent() {
    Some(dir) if !dir.as_os_str().is_empty() => dir,
    _ => Path::new("."),
  }
}

/// Creates a new temporary file beside the target, `.<name>.<random>.memsync-tmp`, with `mode`:
/// never an existing file, nor through a link, whoever planted it.
fn create_temp(dir: &Path, name: &std::ffi::OsStr, mode: u32) -> io::Result<(PathBuf, File)> {
  let random = RandomState::new();
  let mut attempt = 0u64;
  loop {
    let mut hasher = random.build_hasher();
    hasher.write_u64(attempt);
    let mut temp_name = OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{:016x}{TEMP_SUFFIX}", hasher.finish()));
    let temp = dir.join(temp_name);
    let created = OpenOptions::new()
      .write(true)
      .create_new(true)
      .custom_flags(libc::O_NOFOLLOW)
      .mode(mode)
      .open(&temp);
    match created {
      Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
      other => return other.map(|handle| (temp, handle)),
    }
  }
}

fn write_synced(handle: &mut File, mode: u32, contents: &[u8]) -> io::Result<()> {
  // The umask may have narrowed the mode at creation; only ever to less than `mode`.
  handle.set_permissions(fs::Permissions::from_mode(mode))?;
  handle.write_all(contents)?;
  handle.sync_all()
}

/// Removes the temporary files that saves of this file left behind (a host killed mid-save).
/// Only a new host calls it, before its first save: no other save is in flight then.
pub fn remove_stale_temps(file: &FileTarget) {
  let Ok(path) = file.resolve() else { return };
  let Some(name) = path.file_name() else { return };
  let mut prefix = b".".to_vec();
  prefix.extend_from_slice(name.as_bytes());
  prefix.push(b'.');
  let Ok(entries) = fs::read_dir(parent_dir(&path)) else {
    return;
  };
  for entry in entries.flatten() {
    let entry_name = entry.file_name();
    let bytes = entry_name.as_bytes();
    let ours = bytes.starts_with(&prefix) && bytes.ends_with(TEMP_SUFFIX.as_bytes());
    if ours && entry.file_type().is_ok_and(|kind| !kind.is_dir()) {
      let _ = fs::remove_file(entry.path());
    }
  }
}

/// A `flush()` waiting for a save that started after it asked; answered with the outcome.
pub type Flush = oneshot::Sender<std::result::Result<(), String>>;

/// The host's task that keeps the file up to date.
pub struct Saver {
  replica: Arc<Replica>,
  file: FileTarget,
  /// The version the file holds as far as this host knows; `None`: unknown, save at once.
  saved: Option<u64>,
  changed: Arc<Notify>,
  flushes: mpsc::UnboundedReceiver<Flush>,
  /// Whether the last save failed: a failing disk is reported once, not at every attempt.
  failing: bool,
}

/// Wakes the saver after each patch the host orders; it then saves within its debounce.
struct Changed(Arc<Notify>);

impl Tap for Changed {
  fn ordered(&mut self, _: u64, _: Hlc, _: &RawJson) -> bool {
    self.0.notify_one();
    true
  }
}

impl Saver {
  /// A saver of `replica` to `file`, which holds version `saved` (if known). It hears of every
  /// patch the replica orders from now on, and takes `flush()` requests from `flushes`.
  pub fn new(
    replica: Arc<Replica>,
    file: FileTarget,
    saved: Option<u64>,
    flushes: mpsc::UnboundedReceiver<Flush>,
  ) -> Saver {
    let changed = Arc::new(Notify::new());
    replica.tap(Box::new(Changed(changed.clone())));
    Saver {
      replica,
      file,
      saved,
      changed,
      flushes,
      failing: false,
    }
  }

  /// Saves until `shutdown` turns true, then saves a last time if the file is behind. Ends only
  /// after that last write, so the caller may then hand the host role over.
  pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
    let file = self.file.clone();
    let _ = tokio::task::spawn_blocking(move || remove_stale_temps(&file)).await;
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
      // A host replaced while it was stopped must not write its older object over the new
      // host's saves; flushes then resolve as the role's end (the new host saves).
      if !self.replica.holds_lease() {
        return;
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
    if (!waiting.is_empty() || self.is_behind()) && self.replica.holds_lease() {
      let outcome = self.save().await;
      for flush in waiting {
        let _ = flush.send(outcome.clone());
      }
    }
  }

  /// One save of the ordered document; the only write in flight, since the loop awaits it.
  async fn save(&mut self) -> std::result::Result<(), String> {
    let replica = self.replica.clone();
    let file = self.file.clone();
    // The copy of the document, too, is made off the runtime's worker, which relays patches.
    let outcome = tokio::task::spawn_blocking(move || {
      let (data, version) = replica.ordered_snapshot()?;
      let contents = encode(&data, version, now_ms()).map_err(|err| err.to_string())?;
      save(&file, &contents).map_err(|err| err.to_string())?;
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
          self.file.path.display()
        );
        if !self.failing {
          self.replica.report_error(&Error::Storage(message.clone()));
        }
        self.failing = true;
        Err(message)
      }
    }
  }
}

#[cfg(test)]
pub(crate) mod tests {
  use std::os::unix::fs::PermissionsExt;

  use crate::doc::json;

  use super::*;

  fn at(path: &Path) -> FileTarget {
    FileTarget {
      path: path.to_owned(),
      follow_symlinks: false,
    }
  }

  fn saved(path: &Path, data: &Value, version: u64) {
    save(&at(path), &encode(data, version, 1).unwrap()).unwrap();
  }

  /// The names of the files in `dir`, sorted (the rendezvous tests use it too).
  pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
      .unwrap()
      .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
      .collect();
    names.sort();
    names
  }

  #[test]
  fn a_saved_file_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    let data = json!({ "n": 1, "list": ["a", { "b": null }] });
    saved(&path, &data, 7);
    let stored = load(&at(&path)).unwrap().unwrap();
    assert_eq!(stored.data, data);
    assert_eq!(stored.version, 7);
    let text: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(text, json!({ "data": data, "version": 7, "timestamp": 1 }));
  }

  #[test]
  fn a_missing_file_is_none() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load(&at(&dir.path().join("none.json"))).unwrap().is_none());
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
    let stored = load(&at(&path)).unwrap().unwrap();
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
      let err = load(&at(&path)).unwrap_err();
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
    let err = load(&at(dir.path())).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
  }

  #[test]
  fn a_save_replaces_the_file_keeps_its_mode_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    saved(&path, &json!({ "v": 1 }), 1);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    saved(&path, &json!({ "v": 2 }), 2);
    assert_eq!(load(&at(&path)).unwrap().unwrap().data, json!({ "v": 2 }));
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let names: Vec<_> = fs::read_dir(dir.path())
      .unwrap()
      .map(|entry| entry.unwrap().file_name())
      .collect();
    assert_eq!(names, ["jobs.json"]);
  }

  #[test]
  fn stale_temporary_files_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    saved(&path, &json!({ "ok": true }), 3);
    for stale in [
      ".jobs.json.memsync-tmp",
      ".jobs.json.00ff00ff00ff00ff.memsync-tmp",
    ] {
      fs::write(dir.path().join(stale), "torn garbage").unwrap();
    }
    fs::write(dir.path().join(".other.json.1.memsync-tmp"), "not ours").unwrap();
    fs::create_dir(dir.path().join(".jobs.json.dir.memsync-tmp")).unwrap();
    remove_stale_temps(&at(&path));
    assert_eq!(
      names_in(dir.path()),
      [
        ".jobs.json.dir.memsync-tmp",
        ".other.json.1.memsync-tmp",
        "jobs.json"
      ]
    );
    assert_eq!(
      load(&at(&path)).unwrap().unwrap().data,
      json!({ "ok": true })
    );
  }

  #[test]
  fn a_link_planted_at_the_old_temporary_name_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    let path = dir.path().join("jobs.json");
    std::os::unix::fs::symlink(&victim, dir.path().join(".jobs.json.memsync-tmp")).unwrap();
    saved(&path, &json!({ "secret": 1 }), 1);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(
      load(&at(&path)).unwrap().unwrap().data,
      json!({ "secret": 1 })
    );
  }

  #[test]
  fn a_new_file_is_private_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    saved(&path, &json!({}), 1);
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
  }

  #[test]
  fn a_link_at_the_file_is_refused_unless_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.json");
    saved(&real, &json!({ "v": 1 }), 1);
    let link = dir.path().join("jobs.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = load(&at(&link)).unwrap_err();
    assert_eq!(err.code(), "ERR_STORAGE");
    assert!(err.to_string().contains("is a symbolic link, which memsync does not follow unless options.file.followSymlinks is true"), "{err}");
    let err = save(&at(&link), b"{}").unwrap_err();
    assert!(
      err.to_string().contains("options.file.followSymlinks"),
      "{err}"
    );
    assert_eq!(load(&at(&real)).unwrap().unwrap().data, json!({ "v": 1 }));

    let followed = FileTarget {
      path: link.clone(),
      follow_symlinks: true,
    };
    assert_eq!(load(&followed).unwrap().unwrap().data, json!({ "v": 1 }));
    save(&followed, &encode(&json!({ "v": 2 }), 2, 1).unwrap()).unwrap();
    assert!(fs::symlink_metadata(&link)
      .unwrap()
      .file_type()
      .is_symlink());
    assert_eq!(load(&at(&real)).unwrap().unwrap().data, json!({ "v": 2 }));
  }

  #[test]
  fn a_version_javascript_cannot_count_to_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    fs::write(&path, format!(r#"{{"data":{{}},"version":{MAX_VERSION}}}"#)).unwrap();
    assert_eq!(load(&at(&path)).unwrap().unwrap().version, MAX_VERSION);
    for version in [MAX_VERSION + 1, u64::MAX] {
      fs::write(&path, format!(r#"{{"data":{{}},"version":{version}}}"#)).unwrap();
      let err = load(&at(&path)).unwrap_err();
      assert_eq!(err.code(), "ERR_STORAGE");
      assert!(
        err
          .to_string()
          .contains("above 9007199254740991 (2^53 - 1)"),
        "{err}"
      );
    }
  }

  #[test]
  fn data_nested_deeper_than_a_document_may_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    let nested = |levels: usize| {
      format!(
        r#"{{"data":{}{}}}"#,
        "{\"a\":".repeat(levels - 1) + "{}",
        "}".repeat(levels - 1)
      )
    };
    fs::write(&path, nested(crate::patch::MAX_DEPTH)).unwrap();
    assert!(load(&at(&path)).is_ok());
    for levels in [crate::patch::MAX_DEPTH + 1, 121, 130, 1000] {
      fs::write(&path, nested(levels)).unwrap();
      let err = load(&at(&path)).unwrap_err();
      assert_eq!(err.code(), "ERR_STORAGE");
      assert!(
        err.to_string().contains("nests deeper than the 100 levels"),
        "{levels}: {err}"
      );
    }
  }

  #[test]
  fn a_save_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new").join("deeper").join("jobs.json");
    save(&at(&path), b"{}").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"{}");
    assert_eq!(names_in(&dir.path().join("new/deeper")), ["jobs.json"]);
  }

  #[test]
  fn a_save_under_a_file_fails_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("plain"), b"x").unwrap();
    let err = save(&at(&dir.path().join("plain").join("jobs.json")), b"{}").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
    assert_eq!(fs::read(dir.path().join("plain")).unwrap(), b"x");
  }

  #[test]
  fn a_rewritten_file_is_no_longer_current() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.json");
    saved(&path, &json!({}), 1);
    let stored = load(&at(&path)).unwrap().unwrap();
    assert!(stored.is_current(&at(&path)));
    saved(&path, &json!({}), 2);
    assert!(!stored.is_current(&at(&path)));
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
      let saver = Saver::new(replica.clone(), at(path), Some(0), flushes);
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
    let stored = load(&at(&path)).unwrap().unwrap();
    assert_eq!((stored.data, stored.version), (json!({ "n": 1 }), 1));
    for _ in 0..3 {
      host.replica.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    }
    host.stop.send(true).unwrap();
    host.task.await.unwrap();
    let stored = load(&at(&path)).unwrap().unwrap();
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
      events.matches(r#""error",2,"ERR_STORAGE""#).count(),
      1,
      "{events}"
    );
    host.stop.send(true).unwrap();
    host.task.await.unwrap();
  }
}
