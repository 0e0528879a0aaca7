//! Snapshots of an object's log: the document, the ordering rules' state and the chain at a
//! version, in chunks of at most 1 MiB under the object's hash tag. A joining machine starts
//! from the newest one and reads the log after it; once a snapshot is older than the window kept,
//! the log before it is trimmed (`snapshot.lua`). The pointer only moves forward, so two bridges
//! that snapshot at once cannot move it back.

use redis::aio::ConnectionLike;
use redis::Script;
use serde::{Deserialize, Serialize};

use crate::core::locks::KeyState;
use crate::core::order::Progress;
use crate::doc::Value;
use crate::transport::redis::log::Keys;

/// The most bytes in one chunk.
pub const CHUNK_BYTES: usize = 1 << 20;

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
  /// The log's chain at `progress.version`: the next entry must follow on from it.
  pub chain: String,
  pub progress: Progress,
  pub data: Value,
  /// The lock table at that version (absent from a snapshot of a log without locks).
  #[serde(default, skip_serializing_if = "Vec::is_empty")]
  pub locks: Vec<KeyState>,
}

/// How often snapshots are made and how much log is kept behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
  /// A snapshot once the log has this many entries after the newest one...
  pub every_entries: u64,
  /// ...or once the newest one is this old and the log has grown since.
  pub every_ms: u64,
  /// Entries kept before the newest snapshot.
  pub keep_entries: u64,
  /// The log is kept back to a snapshot at least this old.
  pub keep_ms: u64,
}

impl Default for Compaction {
  fn default() -> Self {
    Compaction {
      every_entries: 10_000,
      every_ms: 60_000,
      keep_entries: 10_000,
      keep_ms: 60_000,
    }
  }
}

/// The newest snapshot's version, if there is one.
pub async fn newest_version<C: ConnectionLike>(
  connection: &mut C,
  keys: &Keys,
) -> redis::RedisResult<Option<u64>> {
  redis::cmd("HGET")
    .arg(&keys.snapshot)
    .arg("version")
    .query_async(connection)
    .await
}

/// The newest snapshot, or none; an `Err` says why it cannot be used (a chunk that expired
/// under a newer snapshot reads as a retry: the caller asks again).
pub async fn read<C: ConnectionLike>(
  connection: &mut C,
  keys: &Keys,
) -> Result<Option<Snapshot>, String> {
  for _ in 0..3 {
    let pointer: Option<(u64, usize)> = redis::cmd("HMGET")
      .arg(&keys.snapshot)
      .arg("version")
      .arg("chunks")
      .query_async::<(Option<u64>, Option<usize>)>(connection)
      .await
      .map_err(|err| err.to_string())
      .map(|(version, chunks)| version.zip(chunks))?;
    let Some((version, chunks)) = pointer else {
      return Ok(None);
    };
    let mut text = Vec::new();
    let mut complete = true;
    for index in 0..chunks {
      let chunk: Option<Vec<u8>> = redis::cmd("GET")
        .arg(keys.chunk(version, index))
        .query_async(connection)
        .await
        .map_err(|err| err.to_string())?;
      match chunk {
        Some(chunk) => text.extend_from_slice(&chunk),
        None => {
          complete = false;
          break;
        }
      }
    }
    if !complete {
      continue;
    }
    let snapshot: Snapshot = serde_json::from_slice(&text)
      .map_err(|err| format!("the object's snapshot at version {version} does not parse: {err}"))?;
    if snapshot.progress.version != version {
      return Err(format!(
        "the object's snapshot at version {version} holds version {}",
        snapshot.progress.version
      ));
    }
    return Ok(Some(snapshot));
  }
  Err("the object's snapshot kept changing while it was read".to_owned())
}

/// Writes `snapshot` and makes it the newest one unless a newer one is; trims the log it makes
/// redundant. Returns whether it became the newest.
pub async fn write<C: ConnectionLike>(
  connection: &mut C,
  keys: &Keys,
  snapshot: &Snapshot,
  compaction: &Compaction,
) -> Result<bool, String> {
  let text = serde_json::to_vec(snapshot).map_err(|err| err.to_string())?;
  let version = snapshot.progress.version;
  let chunks: Vec<&[u8]> = text.chunks(CHUNK_BYTES).collect();
  for (index, chunk) in chunks.iter().enumerate() {
    let () = redis::cmd("SET")
      .arg(keys.chunk(version, index))
      .arg(*chunk)
      .query_async(connection)
      .await
      .map_err(|err| err.to_string())?;
  }
  let (replaced, old_chunks): (i64, usize) = Script::new(include_str!("snapshot.lua"))
    .key(&keys.snapshot)
    .key(&keys.log)
    .key(&keys.snapshots)
    .arg(version)
    .arg(chunks.len())
    .arg(&snapshot.chain)
    .arg(compaction.keep_entries)
    .arg(compaction.keep_ms)
    .invoke_async(connection)
    .await
    .map_err(|err| err.to_string())?;
  // The chunks nobody points to: ours when a newer snapshot won, else the replaced one's, which
  // a joiner may still be reading.
  let (stale, count, after_ms) = match u64::try_from(replaced) {
    Err(_) => (version, chunks.len(), 0),
    Ok(old) => (old, old_chunks, compaction.keep_ms.max(1)),
  };
  for index in 0..count {
    let () = redis::cmd("PEXPIRE")
      .arg(keys.chunk(stale, index))
      .arg(after_ms.max(1))
      .query_async::<i64>(connection)
      .await
      .map(|_| ())
      .map_err(|err| err.to_string())?;
  }
  Ok(replaced >= 0)
}
