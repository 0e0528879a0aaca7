//! Where the processes sharing a name meet, and which of them is host.
//!
//! Each name has two files in a private directory: `<stem>.lock` and `<stem>.sock`, where the stem
//! is the name made a safe file name (`name::file_stem`). The process that holds an exclusive lock
//! on `<stem>.lock` is the host and listens on `<stem>.sock`; the
//! others connect to it. The lock is a `flock`, held for the host's whole life, and the kernel
//! drops it when the process dies, even by `kill -9`, so a crashed host never blocks the election
//! of the next one.
//!
//! A host that is stopped (`SIGSTOP`) keeps its lock. Its clients then take over under the next
//! *epoch*: epoch 0 is locked on `<stem>.lock`, epoch N on `<stem>~N.lock` (`~` never occurs in a
//! stem otherwise, so no name's files meet another's), and the current epoch is the highest whose
//! lock file exists. Every epoch's host listens on the same `<stem>.sock`, which the CLI and
//! `hasPeers(path)` find. `lease` explains why an old epoch's host never orders once a new one may.
//!
//! No file of a name outlives its processes for long. A host that stops removes its socket, and
//! then every file of the name if no process holds any of its locks ([`HostLock::release`]); the
//! files of a host killed by a signal are removed by the next start of any name in the directory
//! ([`Rendezvous::sweep`]). A lock file is unlinked only by a process holding its lock, and whoever
//! locks one checks afterwards that the path still names the file it locked (else it was unlinked
//! meanwhile, and it opens the path again): two processes never hold two files of one epoch.
//! Removing every epoch at once starts the name again at epoch 0, which is safe only because:
//! - the files are removed only while this process holds every one of them (no host of any epoch
//!   lives, stopped or not), after checking that no next epoch appeared;
//! - an election creates only epoch 0's file, and gives its lock back if a later epoch exists once
//!   it holds it; a later epoch's file is created only by [`Rendezvous::take_over`], which gives it
//!   up if the epoch it replaces was removed meanwhile. So a host elected on a stale view of the
//!   epochs never runs beside one that no file fences.
//!
//! The directory must be private (owned by us, mode 0700): anyone who can write to it could plant
//! a socket and impersonate the host.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::tokio::Stream as _;
use interprocess::local_socket::traits::StreamCommon as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};

use crate::user::current_uid;

/// Permission bits that let users other than the owner in.
const GROUP_OTHER_BITS: u32 = 0o077;
/// The extension of the socket a host listens on, `<stem>.sock`.
const SOCKET_EXTENSION: &str = ".sock";
/// The extension that replaces the socket's for the HTTP view's file, `<stem>.view.json`.
const VIEW_EXTENSION: &str = "view.json";

/// The directory used when none is given: `$XDG_RUNTIME_DIR/memsync` when `XDG_RUNTIME_DIR`
/// names a directory (per user, private, cleared at logout), else `<temp dir>/memsync-<uid>`.
pub fn default_dir() -> io::Result<PathBuf> {
  match std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| Path::new(dir).is_dir()) {
    Some(dir) => Ok(PathBuf::from(dir).join("memsync")),
    None => Ok(std::env::temp_dir().join(format!("memsync-{}", current_uid()?))),
  }
}

/// Refuses `dir` unless it is a real directory (not a symlink) owned by `uid` with no group or
/// other permissions.
fn check_private_dir(dir: &Path, uid: u32) -> io::Result<fs::Metadata> {
  let meta = fs::symlink_metadata(dir)?;
  if !meta.is_dir() {
    return Err(io::Error::new(
      io::ErrorKind::NotADirectory,
      format!(
        "memsync directory {} is not a directory (symlinks are not followed)",
        dir.display()
      ),
    ));
  }
  if meta.uid() != uid {
    return Err(io::Error::new(
      io::ErrorKind::PermissionDenied,
      format!(
        "memsync directory {} belongs to uid {}, not to this process's uid {uid}; another user \
         could plant a socket in it: remove it, or pass another `dir`",
        dir.display(),
        meta.uid()
      ),
    ));
  }
  let mode = meta.mode() & 0o777;
  if mode & GROUP_OTHER_BITS != 0 {
    return Err(io::Error::new(
      io::ErrorKind::PermissionDenied,
      format!(
        "memsync directory {} has mode {mode:03o}; it must be private so that no other user \
         can plant a socket in it: run `chmod 700 {}`",
        dir.display(),
        dir.display()
      ),
    ));
  }
  Ok(meta)
}

/// Removes `path`, treating "already gone" as success.
fn remove_if_exists(path: &Path) -> io::Result<()> {
  match fs::remove_file(path) {
    Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
    _ => Ok(()),
  }
}

/// Whether anything is at `path` (a symlink counts, whatever it points to).
fn exists(path: &Path) -> io::Result<bool> {
  match fs::symlink_metadata(path) {
    Ok(_) => Ok(true),
    Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
    Err(err) => Err(err),
  }
}

/// Whether `path` is a regular file with nothing in it, as every lock file memsync makes is.
fn is_empty_file(path: &Path) -> io::Result<bool> {
  match fs::symlink_metadata(path) {
    Ok(meta) => Ok(meta.is_file() && meta.len() == 0),
    Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
    Err(err) => Err(err),
  }
}

/// The stem and epoch of lock file `file_name`: `<stem>.lock` is epoch 0, `<stem>~<n>.lock` epoch
/// n (n written as `epoch_lock_path` writes it). A hashed stem contains `~` too, followed by 32 hex
/// digits, which never read as an epoch: they overflow a `u64`.
fn parse_lock_name(file_name: &str) -> Option<(&str, u64)> {
  let base = file_name.strip_suffix(".lock")?;
  let numbered = base.rsplit_once('~').and_then(|(stem, digits)| {
    let epoch = digits.parse::<u64>().ok()?;
    (epoch > 0 && epoch.to_string() == digits).then_some((stem, epoch))
  });
  Some(numbered.unwrap_or((base, 0)))
}

/// What trying a lock file gave.
enum Attempt {
  /// Locked, and the path names the locked file.
  Locked(File),
  /// Another open file holds the lock.
  Busy,
  /// No file at the path (only when not creating it).
  Missing,
}

/// Locks the file at `path` without waiting, creating it (empty, mode 0600) if `create`.
///
/// A lock file is unlinked only by a process that holds its lock. So once we hold it, the path
/// still names it unless it was unlinked between our open and our lock; then the lock is worth
/// nothing (the next process creates a new file there) and the path is opened again.
fn try_lock_path(path: &Path, create: bool) -> io::Result<Attempt> {
  loop {
    let opened = OpenOptions::new()
      .read(true)
      .write(true)
      .create(create)
      .truncate(false)
      .mode(0o600)
      .open(path);
    let file = match opened {
      Ok(file) => file,
      Err(err) if err.kind() == io::ErrorKind::NotFound && !create => return Ok(Attempt::Missing),
      Err(err) => return Err(err),
    };
    if let Some(attempt) = lock_opened(path, file)? {
      return Ok(attempt);
    }
  }
}

/// Locks `file`, opened at `path`, without waiting. `None`: locked, but the path no longer names
/// it (it was unlinked after it was opened), so the lock is worth nothing.
fn lock_opened(path: &Path, file: File) -> io::Result<Option<Attempt>> {
  match file.try_lock() {
    Ok(()) => {}
    Err(TryLockError::WouldBlock) => return Ok(Some(Attempt::Busy)),
    Err(TryLockError::Error(err)) => return Err(err),
  }
  let held = file.metadata()?;
  match fs::symlink_metadata(path) {
    Ok(meta) if (meta.dev(), meta.ino()) == (held.dev(), held.ino()) => {
      Ok(Some(Attempt::Locked(file)))
    }
    Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
    _ => Ok(None),
  }
}

/// The meeting point of the processes that share one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
  dir: PathBuf,
  /// The name as a file name (`name::file_stem`).
  stem: String,
  /// This process's effective uid, which owns the directory and every process met there.
  uid: u32,
  /// The directory's device and inode when it was checked first: a directory moved aside and
  /// replaced later (by a user who can write its parent) is another one.
  identity: (u64, u64),
}

impl Rendezvous {
  /// The rendezvous of `name` in `dir` (default: [`default_dir`]). Creates the directory with mode
  /// 0700 if needed, and refuses one that another user owns or could write to.
  pub fn new(dir: Option<PathBuf>, name: &str) -> io::Result<Rendezvous> {
    crate::name::check(name)
      .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;
    let dir = match dir {
      Some(dir) => dir,
      None => default_dir()?,
    };
    // `recursive` makes an existing directory a success; it is checked just below either way,
    // which also catches one planted between our creation attempt and now.
    DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    let uid = current_uid()?;
    let meta = check_private_dir(&dir, uid)?;
    Ok(Rendezvous {
      dir,
      stem: crate::name::file_stem(name),
      uid,
      identity: (meta.dev(), meta.ino()),
    })
  }

  /// Checks the directory again before it is used (every election, every connect after a
  /// failover): still private, still ours, still the one checked first.
  fn recheck(&self) -> io::Result<()> {
    let meta = check_private_dir(&self.dir, self.uid)?;
    if (meta.dev(), meta.ino()) != self.identity {
      return Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
          "memsync directory {} was replaced since this instance started (another device or \
           inode); it is not joined",
          self.dir.display()
        ),
      ));
    }
    Ok(())
  }

  /// The private directory holding the rendezvous files.
  pub fn dir(&self) -> &Path {
    &self.dir
  }

  /// `<dir>/<stem>.lock`, locked by the host.
  pub fn lock_path(&self) -> PathBuf {
    self.dir.join(format!("{}.lock", self.stem))
  }

  /// `<dir>/<stem>.sock`, where the host listens.
  pub fn socket_path(&self) -> PathBuf {
    self.dir.join(socket_file(&self.stem))
  }

  /// The lock file of `epoch`: `<dir>/<stem>.lock` for epoch 0, else `<dir>/<stem>~<epoch>.lock`.
  pub fn epoch_lock_path(&self, epoch: u64) -> PathBuf {
    match epoch {
      0 => self.lock_path(),
      _ => self.dir.join(format!("{}~{epoch}.lock", self.stem)),
    }
  }

  /// The epochs whose lock file exists, highest first.
  fn epochs(&self) -> io::Result<Vec<u64>> {
    let mut epochs = Vec::new();
    for entry in fs::read_dir(&self.dir)? {
      let name = entry?.file_name();
      if let Some((stem, epoch)) = name.to_str().and_then(parse_lock_name) {
        if stem == self.stem {
          epochs.push(epoch);
        }
      }
    }
    epochs.sort_unstable_by(|a, b| b.cmp(a));
    Ok(epochs)
  }

  /// The highest epoch whose lock file exists (0 when none does).
  pub fn current_epoch(&self) -> io::Result<u64> {
    Ok(self.epochs()?.first().copied().unwrap_or(0))
  }

  /// Tries to become host of the current epoch without waiting: `Ok(None)` when another holder
  /// has its lock.
  ///
  /// `flock` locks belong to the open file: two calls in one process conflict just as two
  /// processes would, so in-process instances elect a host the same way.
  pub fn try_become_host(&self) -> io::Result<Option<HostLock>> {
    self.recheck()?;
    loop {
      if let Some(elected) = self.try_become_host_of(self.current_epoch()?)? {
        return Ok(elected);
      }
    }
  }

  /// [`Rendezvous::try_become_host`] at `epoch`, which was the current one when read. `None`: it
  /// is not any more, try again.
  fn try_become_host_of(&self, epoch: u64) -> io::Result<Option<Option<HostLock>>> {
    // Only epoch 0's file is created here: a later epoch's file that was removed since the read
    // must not come back, beside a new epoch 0 that nothing would fence.
    let lock = match try_lock_path(&self.epoch_lock_path(epoch), epoch == 0)? {
      Attempt::Locked(lock) => lock,
      Attempt::Busy => return Ok(Some(None)),
      Attempt::Missing => return Ok(None),
    };
    // A later epoch created since the read fences this one: elect within it instead.
    if self.current_epoch()? == epoch {
      return Ok(Some(Some(self.host_lock(epoch, lock))));
    }
    // An epoch 0 file that this process may have just created goes again (we hold its lock), so
    // that the epochs left stay a run up to the current one, which `remove_files` relies on.
    if epoch == 0 {
      remove_if_exists(&self.epoch_lock_path(0))?;
    }
    Ok(None)
  }

  /// Tries to replace the host of `epoch`, silent for `hostTimeout`, by becoming host of the next
  /// epoch. `Ok(None)`: another process did first, or the epoch moved on already. The silent
  /// host's socket file is removed at once, so that nobody joins it meanwhile.
  pub fn take_over(&self, epoch: u64) -> io::Result<Option<HostLock>> {
    self.recheck()?;
    if self.current_epoch()? != epoch {
      return Ok(None);
    }
    let next = self.epoch_lock_path(epoch + 1);
    let Attempt::Locked(lock) = try_lock_path(&next, true)? else {
      return Ok(None);
    };
    // The replaced epoch's file was removed since the read above, so its host was gone and the
    // name may have started again at epoch 0, whose host this epoch would not fence. Unlinked
    // while we hold it, like any lock file.
    if !exists(&self.epoch_lock_path(epoch))? {
      remove_if_exists(&next)?;
      return Ok(None);
    }
    remove_if_exists(&self.socket_path())?;
    Ok(Some(self.host_lock(epoch + 1, lock)))
  }

  fn host_lock(&self, epoch: u64, lock: File) -> HostLock {
    HostLock {
      rendezvous: self.clone(),
      epoch,
      socket: None,
      lock: Some(lock),
    }
  }

  /// Removes every file of this name if no process holds any of its locks; `held` is the epoch
  /// whose lock this process holds already, and `epochs` those whose file exists, highest first.
  /// `Ok(false)`: some process holds one, or the epochs changed meanwhile, and nothing was
  /// removed.
  fn remove_files(&self, epochs: &[u64], held: Option<u64>) -> io::Result<bool> {
    let mut locks = Vec::with_capacity(epochs.len());
    // Highest first: the current epoch's lock is the one most likely held, and tried first.
    for &epoch in epochs {
      let path = self.epoch_lock_path(epoch);
      // Only a file memsync made: empty. Another program's lock file with data in it stays.
      if !is_empty_file(&path)? {
        return Ok(false);
      }
      if Some(epoch) == held {
        continue;
      }
      match try_lock_path(&path, false)? {
        Attempt::Locked(lock) => locks.push(lock),
        Attempt::Busy | Attempt::Missing => return Ok(false),
      }
    }
    // The epochs left are a run up to the current one (`try_become_host`), and a take-over creates
    // only the epoch after the highest. If it did after our read, its host runs: leave everything.
    // If it does from now on, it finds the epoch it replaces gone and gives up (`take_over`).
    let highest = epochs.first().copied().unwrap_or(0);
    if exists(&self.epoch_lock_path(highest + 1))? {
      return Ok(false);
    }
    // The socket and the view's file go while we hold every lock: no host of these epochs can be
    // elected before the lock files are gone, so none bound this socket or wrote this view. A
    // take-over that began since the check above finds the highest epoch's lock held by us and
    // waits a lease (`lease_length`) before it binds: only a pause of this process longer than
    // that, between the check and here, could make this remove its socket.
    if fs::symlink_metadata(self.socket_path()).is_ok_and(|meta| meta.file_type().is_socket()) {
      remove_if_exists(&self.socket_path())?;
    }
    remove_if_exists(&self.socket_path().with_extension("view.json"))?;
    // Highest first, so that a concurrent election never sees epoch 0 alone while a later one is
    // still there to be taken over.
    for &epoch in epochs {
      remove_if_exists(&self.epoch_lock_path(epoch))?;
    }
    Ok(true)
  }

  /// Removes the files that processes of names in the directory left behind when they were
  /// killed: every name whose lock files nobody holds. Returns how many names were removed.
  /// Run once when an instance starts; names whose locks are held cost one `flock` each.
  pub fn sweep(&self) -> io::Result<usize> {
    self.recheck()?;
    let mut names: HashMap<String, Vec<u64>> = HashMap::new();
    for entry in fs::read_dir(&self.dir)? {
      let name = entry?.file_name();
      if let Some((stem, epoch)) = name.to_str().and_then(parse_lock_name) {
        if crate::name::is_stem(stem) {
          names.entry(stem.to_owned()).or_default().push(epoch);
        }
      }
    }
    let mut removed = 0;
    for (stem, mut epochs) in names {
      epochs.sort_unstable_by(|a, b| b.cmp(a));
      let rendezvous = Rendezvous {
        stem,
        ..self.clone()
      };
      if rendezvous.remove_files(&epochs, None)? {
        removed += 1;
      }
    }
    Ok(removed)
  }

  /// Connects to the host, once the directory is checked again, and only to a host of this user
  /// (`SO_PEERCRED`, or `getpeereid`): nothing is sent before. `NotFound` or `ConnectionRefused`
  /// mean no host is listening (yet, or any more: a host killed by a signal leaves its socket
  /// file behind).
  pub async fn connect(&self) -> io::Result<Stream> {
    self.recheck()?;
    let stream = Stream::connect(self.socket_path().to_fs_name::<GenericFilePath>()?).await?;
    check_peer(&stream, self.uid, "host")?;
    Ok(stream)
  }
}

/// The file name of the socket of `stem`.
pub fn socket_file(stem: &str) -> String {
  format!("{stem}{SOCKET_EXTENSION}")
}

/// `<dir>/<stem>.view.json`, where the host of `stem` keeps its HTTP view's URL and token.
pub fn view_path(dir: &Path, stem: &str) -> PathBuf {
  dir.join(socket_file(stem)).with_extension(VIEW_EXTENSION)
}

/// The stems of the sockets in `dir`: where hosts listen, or listened (a host killed by a signal
/// leaves its socket behind). None when `dir` does not exist.
pub fn socket_stems(dir: &Path) -> io::Result<Vec<String>> {
  let entries = match fs::read_dir(dir) {
    Ok(entries) => entries,
    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
    Err(err) => return Err(err),
  };
  let mut stems = Vec::new();
  for entry in entries {
    let file = entry?.file_name();
    if let Some(stem) = file
      .to_str()
      .and_then(|file| file.strip_suffix(SOCKET_EXTENSION))
    {
      stems.push(stem.to_owned());
    }
  }
  Ok(stems)
}

/// Whether anything accepts connections on the socket of `stem` in `dir`; nothing is sent.
pub async fn accepts(dir: &Path, stem: &str) -> bool {
  match dir.join(socket_file(stem)).to_fs_name::<GenericFilePath>() {
    Ok(name) => Stream::connect(name).await.is_ok(),
    Err(_) => false,
  }
}

/// Refuses a connection whose other end runs as another user than `uid`.
pub fn check_peer(stream: &Stream, uid: u32, role: &str) -> io::Result<()> {
  match stream.peer_creds()?.euid() {
    Some(peer) if peer == uid => Ok(()),
    peer => Err(io::Error::new(
      io::ErrorKind::PermissionDenied,
      format!(
        "the {role} at the other end of the socket runs as uid {}, not as this process's uid {uid}",
        peer.map_or_else(|| "unknown".to_owned(), |peer| peer.to_string())
      ),
    )),
  }
}

/// Proof of being host: holds the lock until dropped or released.
///
/// Dropping it removes the socket file, then the name's files if no other process holds any of
/// its locks, and then releases the lock; [`HostLock::release`] does the same and reports a
/// failure.
#[derive(Debug)]
pub struct HostLock {
  rendezvous: Rendezvous,
  /// The epoch whose lock this is.
  epoch: u64,
  /// The device and inode of the socket file this host bound: a host of a later epoch binds its
  /// own at the same path, which this one must never remove.
  socket: Option<(u64, u64)>,
  /// The locked file; `None` once released.
  lock: Option<File>,
}

impl HostLock {
  /// The uid every client must run as: the host's.
  pub fn uid(&self) -> u32 {
    self.rendezvous.uid
  }

  /// `<dir>/<stem>.view.json`: the HTTP view's URL and token, for `memsync url`.
  pub fn view_path(&self) -> PathBuf {
    self.rendezvous.socket_path().with_extension(VIEW_EXTENSION)
  }

  /// The epoch whose lock this is.
  pub fn epoch(&self) -> u64 {
    self.epoch
  }

  /// The next epoch's lock file: once it exists, this host is fenced (see `lease`).
  pub fn next_lock_path(&self) -> PathBuf {
    self.rendezvous.epoch_lock_path(self.epoch + 1)
  }

  /// Whether a process holds the previous epoch's lock: a host that may be stopped, whose lease
  /// a new host must wait out. A removed file had no holder (see `Rendezvous::remove_files`).
  pub fn previous_held(&self) -> io::Result<bool> {
    let Some(previous) = self.epoch.checked_sub(1) else {
      return Ok(false);
    };
    // A lock taken here is released when the file is dropped, at once.
    let attempt = try_lock_path(&self.rendezvous.epoch_lock_path(previous), false)?;
    Ok(matches!(attempt, Attempt::Busy))
  }

  /// Listens on the socket path, replacing a socket file a dead or replaced host left behind.
  /// Must run inside a tokio runtime.
  pub fn bind(&mut self) -> io::Result<Listener> {
    let socket_path = self.rendezvous.socket_path();
    // Safe to delete: only the lock holder binds here, and that is us, so any file at the path is
    // stale.
    remove_if_exists(&socket_path)?;
    let listener = ListenerOptions::new()
      .name(socket_path.as_path().to_fs_name::<GenericFilePath>()?)
      // interprocess would otherwise unlink the path when the listener is dropped, which may
      // happen after the lock is gone and a new host has bound its own socket there.
      .reclaim_name(false)
      .create_tokio()?;
    // Set after binding rather than with the listener's `mode` option, which fails on systems
    // that cannot fchmod a socket; the window is harmless since the directory is private.
    fs::set_permissions(&socket_path, Permissions::from_mode(0o600))?;
    let meta = fs::symlink_metadata(&socket_path)?;
    self.socket = Some((meta.dev(), meta.ino()));
    Ok(listener)
  }

  /// Stops being host: removes the socket file, then every file of the name unless another
  /// process holds one of its locks, then releases the lock.
  ///
  /// The order matters: once the lock is released a new host may bind a new socket at the same
  /// path, which we must not delete.
  pub fn release(mut self) -> io::Result<()> {
    // `Drop` then finds nothing to do.
    self.step_down()
  }

  fn step_down(&mut self) -> io::Result<()> {
    // Dropped (released) when this returns, after the removals.
    let Some(_lock) = self.lock.take() else {
      return Ok(());
    };
    self.remove_own_socket()?;
    let epochs = match self.rendezvous.epochs() {
      Ok(epochs) => epochs,
      // The directory itself was removed, and every file with it.
      Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
      Err(err) => return Err(err),
    };
    self.rendezvous.remove_files(&epochs, Some(self.epoch))?;
    Ok(())
  }

  /// Removes the socket file if it is the one this host bound: a host of a later epoch may have
  /// bound its own there.
  fn remove_own_socket(&mut self) -> io::Result<()> {
    let Some(bound) = self.socket.take() else {
      return Ok(());
    };
    let socket_path = self.rendezvous.socket_path();
    match fs::symlink_metadata(&socket_path) {
      Ok(meta) if (meta.dev(), meta.ino()) == bound => remove_if_exists(&socket_path),
      Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
      _ => Ok(()),
    }
  }
}

impl Drop for HostLock {
  fn drop(&mut self) {
    // Best effort: a socket file left behind is stale and the next host removes it in `bind`,
    // and files left behind are removed by the next start's `Rendezvous::sweep`.
    let _ = self.step_down();
  }
}

#[cfg(test)]
mod tests {
  use std::sync::atomic::{AtomicUsize, Ordering};

  use interprocess::local_socket::traits::tokio::Listener as _;
  use tokio::io::AsyncWriteExt;

  use super::*;
  use crate::core::message::Message;
  use crate::services::persist::tests::names_in;
  use crate::transport::local::codec::{self, PROTOCOL_VERSION};
  use crate::transport::local::connection::FrameReader;

  /// Writes `message` as one frame.
  async fn send(mut stream: &Stream, message: &Message) {
    let mut frame = Vec::new();
    codec::encode(message, &mut frame).unwrap();
    stream.write_all(&frame).await.unwrap();
  }

  /// A fresh directory under the system temp dir, removed on drop.
  struct TempDir(PathBuf);

  impl TempDir {
    fn new(test: &str) -> TempDir {
      static COUNT: AtomicUsize = AtomicUsize::new(0);
      let n = COUNT.fetch_add(1, Ordering::SeqCst);
      let path =
        std::env::temp_dir().join(format!("memsync-test-{}-{n}-{test}", std::process::id()));
      DirBuilder::new().mode(0o700).create(&path).unwrap();
      TempDir(path)
    }

    fn rendezvous(&self) -> Rendezvous {
      Rendezvous::new(Some(self.0.join("rv")), "doc").unwrap()
    }
  }

  impl Drop for TempDir {
    fn drop(&mut self) {
      let _ = fs::remove_dir_all(&self.0);
    }
  }

  #[tokio::test]
  async fn a_directory_replaced_after_start_is_refused_by_election_and_connect() {
    let temp = TempDir::new("replaced");
    let rendezvous = temp.rendezvous();
    assert!(rendezvous.try_become_host().unwrap().is_some());
    fs::rename(rendezvous.dir(), temp.0.join("aside")).unwrap();
    DirBuilder::new()
      .mode(0o700)
      .create(rendezvous.dir())
      .unwrap();
    for err in [
      rendezvous.try_become_host().unwrap_err(),
      rendezvous.connect().await.unwrap_err(),
    ] {
      assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
      assert!(
        err
          .to_string()
          .contains("was replaced since this instance started"),
        "{err}"
      );
    }
  }

  #[tokio::test]
  async fn a_directory_made_public_after_start_is_refused() {
    let temp = TempDir::new("public");
    let rendezvous = temp.rendezvous();
    fs::set_permissions(rendezvous.dir(), Permissions::from_mode(0o755)).unwrap();
    let err = rendezvous.connect().await.unwrap_err();
    assert!(
      err
        .to_string()
        .contains(&format!("run `chmod 700 {}`", rendezvous.dir().display())),
      "{err}"
    );
  }

  fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o777
  }

  #[test]
  fn the_dir_is_created_private() {
    let tmp = TempDir::new("created");
    let rendezvous = tmp.rendezvous();
    assert_eq!(rendezvous.dir(), tmp.0.join("rv"));
    assert_eq!(mode(rendezvous.dir()), 0o700);
    assert_eq!(rendezvous.lock_path(), tmp.0.join("rv/doc.lock"));
    assert_eq!(rendezvous.socket_path(), tmp.0.join("rv/doc.sock"));
    // An existing private directory is accepted.
    assert_eq!(tmp.rendezvous(), rendezvous);
  }

  #[tokio::test]
  async fn the_live_names_are_those_whose_socket_accepts() {
    let tmp = TempDir::new("live");
    assert_eq!(
      socket_stems(&tmp.0.join("missing")).unwrap(),
      Vec::<String>::new()
    );
    let mut lock = tmp.rendezvous().try_become_host().unwrap().unwrap();
    let _listener = lock.bind().unwrap();
    let dir = tmp.0.join("rv");
    // A socket file left by a killed host accepts nothing.
    fs::write(dir.join(socket_file("gone")), "").unwrap();
    let mut stems = socket_stems(&dir).unwrap();
    stems.sort();
    assert_eq!(stems, ["doc", "gone"]);
    assert!(accepts(&dir, "doc").await);
    assert!(!accepts(&dir, "gone").await);
    assert_eq!(view_path(&dir, "doc"), lock.view_path());
  }

  #[test]
  fn a_shared_dir_is_refused() {
    let tmp = TempDir::new("shared");
    let dir = tmp.0.join("rv");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
    let err = Rendezvous::new(Some(dir), "doc").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("mode 755"), "{err}");
  }

  #[test]
  fn a_symlink_or_file_is_refused() {
    let tmp = TempDir::new("symlink");
    let target = tmp.0.join("target");
    DirBuilder::new().mode(0o700).create(&target).unwrap();
    let link = tmp.0.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = Rendezvous::new(Some(link), "doc").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");

    let file = tmp.0.join("file");
    fs::write(&file, b"").unwrap();
    assert!(Rendezvous::new(Some(file), "doc").is_err());
  }

  #[test]
  fn every_name_is_one_file_in_the_dir() {
    let tmp = TempDir::new("names");
    assert_eq!(
      Rendezvous::new(Some(tmp.0.clone()), "").unwrap_err().kind(),
      io::ErrorKind::InvalidInput
    );
    for name in [
      ".",
      "..",
      "a/b",
      "/abs",
      "../up",
      "nul\0",
      "app:cache",
      "my object",
    ] {
      let rendezvous = Rendezvous::new(Some(tmp.0.clone()), name).unwrap();
      for path in [rendezvous.socket_path(), rendezvous.lock_path()] {
        assert_eq!(path.parent(), Some(tmp.0.as_path()), "{name:?}");
        assert!(
          !path.file_name().unwrap().to_string_lossy().starts_with('.'),
          "{name:?}"
        );
      }
    }
    let plain = Rendezvous::new(Some(tmp.0.clone()), "my-doc.v2").unwrap();
    assert_eq!(plain.socket_path(), tmp.0.join("my-doc.v2.sock"));
  }

  #[tokio::test]
  async fn a_long_name_binds() {
    let tmp = TempDir::new("long");
    let rendezvous = Rendezvous::new(Some(tmp.0.clone()), &"é".repeat(300)).unwrap();
    let mut host = rendezvous.try_become_host().unwrap().unwrap();
    let _listener = host.bind().unwrap();
    rendezvous.connect().await.unwrap();
  }

  #[test]
  fn the_default_dir_is_per_user() {
    let dir = default_dir().unwrap();
    let per_user = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir()) {
      Some(runtime) => PathBuf::from(runtime).join("memsync"),
      None => std::env::temp_dir().join(format!("memsync-{}", current_uid().unwrap())),
    };
    assert_eq!(dir, per_user);
  }

  #[test]
  fn the_uid_is_the_owner_of_files_we_create() {
    let tmp = TempDir::new("uid");
    assert_eq!(current_uid().unwrap(), fs::metadata(&tmp.0).unwrap().uid());
  }

  #[test]
  fn the_first_to_lock_is_host_until_it_lets_go() {
    let tmp = TempDir::new("election");
    let rendezvous = tmp.rendezvous();
    let first = rendezvous.try_become_host().unwrap();
    assert!(first.is_some());
    // A separate open in the same process conflicts like another process would.
    assert!(rendezvous.try_become_host().unwrap().is_none());
    assert!(tmp.rendezvous().try_become_host().unwrap().is_none());
    assert_eq!(mode(&rendezvous.lock_path()), 0o600);
    drop(first);
    let second = rendezvous.try_become_host().unwrap();
    assert!(second.is_some());
    assert!(rendezvous.try_become_host().unwrap().is_none());
  }

  #[test]
  fn names_are_elected_independently() {
    let tmp = TempDir::new("independent");
    let dir = tmp.0.join("rv");
    let a = Rendezvous::new(Some(dir.clone()), "a").unwrap();
    let b = Rendezvous::new(Some(dir), "b").unwrap();
    let _a_host = a.try_become_host().unwrap().unwrap();
    assert!(b.try_become_host().unwrap().is_some());
  }

  #[tokio::test]
  async fn a_client_and_the_host_exchange_messages() {
    let tmp = TempDir::new("exchange");
    let rendezvous = tmp.rendezvous();
    let mut host = rendezvous.try_become_host().unwrap().unwrap();
    let listener = host.bind().unwrap();
    assert_eq!(mode(&rendezvous.socket_path()), 0o600);

    let client = rendezvous.clone();
    let client = tokio::spawn(async move {
      let stream = client.connect().await.unwrap();
      let hello = Message::Hello {
        protocol: PROTOCOL_VERSION,
        pid: std::process::id(),
        origin: 1,
        version: 0,
        peer: Default::default(),
      };
      send(&stream, &hello).await;
      FrameReader::new(&stream).read_message().await.unwrap()
    });

    let stream = listener.accept().await.unwrap();
    let mut reader = FrameReader::new(&stream);
    let Some(Message::Hello { origin: 1, .. }) = reader.read_message().await.unwrap() else {
      panic!("expected the client's hello");
    };
    let refused = Message::Refused {
      reason: "test".into(),
      code: None,
    };
    send(&stream, &refused).await;
    assert_eq!(client.await.unwrap(), Some(refused));
    host.release().unwrap();
  }

  #[tokio::test]
  async fn a_stale_socket_file_does_not_prevent_bind() {
    let tmp = TempDir::new("stale");
    let rendezvous = tmp.rendezvous();
    fs::write(rendezvous.socket_path(), b"left behind").unwrap();
    // No one listens there: clients are refused, not hung.
    assert!(rendezvous.connect().await.is_err());
    let mut host = rendezvous.try_become_host().unwrap().unwrap();
    let listener = host.bind().unwrap();
    let accepted = tokio::spawn(async move { listener.accept().await.map(drop) });
    rendezvous.connect().await.unwrap();
    accepted.await.unwrap().unwrap();
  }

  #[tokio::test]
  async fn release_removes_the_socket_before_the_lock() {
    let tmp = TempDir::new("release");
    let rendezvous = tmp.rendezvous();
    let mut host = rendezvous.try_become_host().unwrap().unwrap();
    let listener = host.bind().unwrap();
    assert!(rendezvous.socket_path().exists());
    host.release().unwrap();
    assert!(!rendezvous.socket_path().exists());
    assert_eq!(
      names_in(rendezvous.dir()),
      Vec::<String>::new(),
      "the last host leaves nothing"
    );

    // The next host binds; dropping the old listener must not remove the new socket.
    let mut next = rendezvous.try_become_host().unwrap().unwrap();
    let _next_listener = next.bind().unwrap();
    drop(listener);
    assert!(rendezvous.socket_path().exists());
    drop(next);
    assert!(
      !rendezvous.socket_path().exists(),
      "dropping also removes it"
    );
  }

  #[tokio::test]
  async fn a_silent_host_is_replaced_under_the_next_epoch_which_everyone_then_uses() {
    let tmp = TempDir::new("epochs");
    let rendezvous = tmp.rendezvous();
    // Another name's files, and a name that only starts like this one, do not count.
    let _other = Rendezvous::new(Some(rendezvous.dir().to_owned()), "doc~7")
      .unwrap()
      .try_become_host()
      .unwrap();
    fs::write(rendezvous.dir().join("docs~9.lock"), b"").unwrap();
    let mut old = rendezvous.try_become_host().unwrap().unwrap();
    let old_listener = old.bind().unwrap();
    assert_eq!((old.epoch(), rendezvous.current_epoch().unwrap()), (0, 0));
    assert!(!old.previous_held().unwrap());

    let mut new = rendezvous.take_over(0).unwrap().unwrap();
    assert_eq!(new.epoch(), 1);
    assert_eq!(old.next_lock_path(), tmp.0.join("rv/doc~1.lock"));
    assert!(old.next_lock_path().exists(), "the old host is fenced");
    assert!(
      !rendezvous.socket_path().exists(),
      "nobody joins the silent host meanwhile"
    );
    assert!(
      new.previous_held().unwrap(),
      "its lease is to be waited out"
    );
    // Others lose the race, and elect within the new epoch.
    assert!(rendezvous.take_over(0).unwrap().is_none());
    assert_eq!(rendezvous.current_epoch().unwrap(), 1);
    assert!(rendezvous.try_become_host().unwrap().is_none());

    let _listener = new.bind().unwrap();
    // The old host resumes and steps down: the new host's socket stays.
    old.release().unwrap();
    drop(old_listener);
    assert!(rendezvous.socket_path().exists());
    assert!(!new.previous_held().unwrap());
    rendezvous.connect().await.unwrap();
    assert!(
      rendezvous.lock_path().exists(),
      "the old host left its file to the new one"
    );
    drop(new);
    // The last host of the name removed every epoch's file: the name starts again at epoch 0.
    assert_eq!(
      names_in(rendezvous.dir()),
      ["doc%7E7.lock", "docs~9.lock"],
      "another name's files stay"
    );
    assert_eq!(rendezvous.try_become_host().unwrap().unwrap().epoch(), 0);
  }

  #[test]
  fn a_lock_taken_on_a_file_unlinked_after_its_open_is_not_held() {
    let tmp = TempDir::new("unlinked");
    let rendezvous = tmp.rendezvous();
    let path = rendezvous.lock_path();
    let host = rendezvous.try_become_host().unwrap().unwrap();
    // A process opens the lock file, then the host leaves (removing it) and another is elected
    // on a new file at the same path.
    let opened = File::open(&path).unwrap();
    drop(host);
    let next = rendezvous.try_become_host().unwrap().unwrap();
    assert!(matches!(lock_opened(&path, opened), Ok(None)));
    assert!(rendezvous.try_become_host().unwrap().is_none());
    drop(next);
    // Opened, then unlinked with nothing at the path since.
    let opened = File::create(&path).unwrap();
    fs::remove_file(&path).unwrap();
    assert!(matches!(lock_opened(&path, opened), Ok(None)));
  }

  #[test]
  fn an_election_on_a_stale_epoch_gives_way_to_the_later_one_and_leaves_no_file() {
    let tmp = TempDir::new("stale-epoch");
    let rendezvous = tmp.rendezvous();
    let old = rendezvous.try_become_host().unwrap().unwrap();
    let _new = rendezvous.take_over(0).unwrap().unwrap();
    drop(old);
    // Epoch 0 was read as the current one before the take-over: its file is locked, given back
    // and removed; epoch 2's was removed since, and is not created again.
    assert!(rendezvous.try_become_host_of(0).unwrap().is_none());
    assert!(rendezvous.try_become_host_of(2).unwrap().is_none());
    assert_eq!(names_in(rendezvous.dir()), ["doc~1.lock"]);
    assert!(matches!(rendezvous.try_become_host_of(1), Ok(Some(None))));
  }

  #[test]
  fn a_name_without_files_is_not_taken_over_and_a_removed_previous_epoch_is_not_held() {
    let tmp = TempDir::new("takeover");
    let rendezvous = tmp.rendezvous();
    // Epoch 0's file was removed (its host gone): a take-over would run beside a new epoch 0.
    assert!(rendezvous.take_over(0).unwrap().is_none());
    assert_eq!(names_in(rendezvous.dir()), Vec::<String>::new());

    let old = rendezvous.try_become_host().unwrap().unwrap();
    let new = rendezvous.take_over(0).unwrap().unwrap();
    assert!(new.previous_held().unwrap());
    drop(old);
    fs::remove_file(rendezvous.lock_path()).unwrap();
    assert!(!new.previous_held().unwrap());
  }

  /// Leaves the files a host of `rendezvous` killed at `epoch` leaves: its lock files, its socket
  /// and its view's file.
  fn leave_files_of_a_killed_host(rendezvous: &Rendezvous, epoch: u64) {
    for epoch in 0..=epoch {
      fs::write(rendezvous.epoch_lock_path(epoch), b"").unwrap();
    }
    drop(std::os::unix::net::UnixListener::bind(rendezvous.socket_path()).unwrap());
    fs::write(rendezvous.socket_path().with_extension("view.json"), b"{}").unwrap();
  }

  #[test]
  fn a_sweep_removes_the_files_of_names_nobody_holds_and_nothing_else() {
    let tmp = TempDir::new("sweep");
    let dir = tmp.0.join("rv");
    let name = |name: &str| Rendezvous::new(Some(dir.clone()), name).unwrap();
    leave_files_of_a_killed_host(&name("dead"), 2);
    leave_files_of_a_killed_host(&name(&"x".repeat(100)), 0);
    let live = name("live");
    leave_files_of_a_killed_host(&live, 1);
    let _host = live.try_become_host().unwrap().unwrap();
    for (file, content) in [
      ("Cargo.lock", "[[package]]"),
      ("%61.lock", ""),
      ("notes.txt", ""),
    ] {
      fs::write(dir.join(file), content).unwrap();
    }
    assert_eq!(name("other").sweep().unwrap(), 2);
    assert_eq!(
      names_in(&dir),
      [
        "%61.lock",
        "Cargo.lock",
        "live.lock",
        "live.sock",
        "live.view.json",
        "live~1.lock",
        "notes.txt"
      ]
    );
  }

  #[test]
  fn hosts_and_sweeps_racing_on_one_name_never_hold_two_locks_at_once() {
    let tmp = TempDir::new("race");
    let rendezvous = tmp.rendezvous();
    let hosts = AtomicUsize::new(0);
    let elected = AtomicUsize::new(0);
    std::thread::scope(|scope| {
      for _ in 0..4 {
        scope.spawn(|| {
          for _ in 0..500 {
            if let Some(lock) = rendezvous.try_become_host().unwrap() {
              assert_eq!(hosts.fetch_add(1, Ordering::SeqCst), 0, "two hosts at once");
              elected.fetch_add(1, Ordering::SeqCst);
              std::thread::yield_now();
              hosts.fetch_sub(1, Ordering::SeqCst);
              // Removes the file while others may have it open.
              lock.release().unwrap();
            }
          }
        });
      }
      scope.spawn(|| {
        for _ in 0..500 {
          rendezvous.sweep().unwrap();
        }
      });
    });
    assert!(elected.load(Ordering::SeqCst) > 0);
    assert_eq!(names_in(rendezvous.dir()), Vec::<String>::new());
  }

  #[tokio::test]
  async fn connecting_without_a_host_fails() {
    let tmp = TempDir::new("nohost");
    let err = tmp.rendezvous().connect().await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
  }
}
