//! An object's log in Redis: its keys, and the script that orders a batch of patches into it.
//!
//! Every key of an object carries one hash tag, `{ms:<stem>}` (the stem is the object's name as a
//! file name: no `{` or `}` to cut the tag short), so that an object lives in one Cluster slot and
//! the script may touch all its keys. The script (`order.lua`) is sent once and then called by its
//! digest; redis-rs loads it again when a server answers `NOSCRIPT` (a restart, a failover to a
//! replica that never saw it).

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script};

use crate::name::file_stem;

/// The wire protocol of the entries; bridges of another protocol are refused by the script.
pub const LOG_PROTOCOL: u32 = 1;

/// The keys of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
  /// The stream of ordered patches; entry `0-<version>` holds patch `version`.
  pub log: String,
  /// The highest sequence number ordered, per origin.
  pub origins: String,
  /// The version reached and the protocol the object is written with.
  pub head: String,
  /// The document at version 0, as the first bridge found it: every machine starts from it.
  pub base: String,
  /// The newest snapshot: its version, chunk count, chain and time.
  pub snapshot: String,
  /// The snapshots made, newest first, as `<version>:<ms>`: how far the log may be trimmed.
  pub snapshots: String,
  /// Held by the bridge writing a snapshot (`SET NX PX`).
  pub lease: String,
  /// The ids of the machines that announced themselves (a set; see [`Keys::machine`]).
  pub machines: String,
  /// Every machine's events of `mem.events`, capped (a stream).
  pub events: String,
  tag: String,
}

impl Keys {
  /// The keys of the object `name`.
  pub fn of(name: &str) -> Keys {
    let tag = format!("{{ms:{}}}", file_stem(name));
    Keys {
      log: format!("{tag}:log"),
      origins: format!("{tag}:origins"),
      head: format!("{tag}:head"),
      base: format!("{tag}:base"),
      snapshot: format!("{tag}:snapshot"),
      snapshots: format!("{tag}:snapshots"),
      lease: format!("{tag}:lease"),
      machines: format!("{tag}:machines"),
      events: format!("{tag}:events"),
      tag,
    }
  }

  /// The presence of machine `id`: what runs there, until it expires.
  pub fn machine(&self, id: u64) -> String {
    format!("{}:machine:{id:x}", self.tag)
  }

  /// The calls and replies for machine `id` (a capped stream).
  pub fn inbox(&self, id: u64) -> String {
    format!("{}:inbox:{id:x}", self.tag)
  }

  /// Chunk `index` of the snapshot at `version`.
  pub fn chunk(&self, version: u64, index: usize) -> String {
    format!("{}:snapshot:{version}:{index}", self.tag)
  }

  /// The Cluster slot of every key of the object: that of the text inside the hash tag.
  pub fn slot(&self) -> u16 {
    hash_slot(&self.tag[1..self.tag.len() - 1])
  }
}

/// Redis Cluster's slot of a hash tag's text: CRC16 (XMODEM) modulo 16384, as in the Cluster
/// specification (redis-rs has it only behind its `cluster` feature, which this does not need).
pub fn hash_slot(text: &str) -> u16 {
  let crc = text.bytes().fold(0u16, |crc, byte| {
    (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| {
      if crc & 0x8000 != 0 {
        (crc << 1) ^ 0x1021
      } else {
        crc << 1
      }
    })
  });
  crc % 16384
}

/// A patch a bridge proposes: its origin's identity and sequence number, and its encoded entry.
#[derive(Debug, Clone, Copy)]
pub struct Proposal<'a> {
  pub origin: u64,
  pub seq: u64,
  /// Placed after the origin's last entry even when `seq` does not follow it.
  pub skips_gap: bool,
  pub payload: &'a [u8],
}

/// Where the script put a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
  /// In the log at this version.
  Ordered(u64),
  /// Its (origin, seq) was in the log already.
  Duplicate,
  /// Its seq does not follow the origin's last one in the log, `last`: the caller resubmits
  /// from `last + 1`.
  Gap { last: u64 },
}

/// The script's answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordered {
  /// Where each proposal went, in the batch's order.
  pub placed: Vec<Placed>,
  /// The version the log reached.
  pub head: u64,
}

/// An entry of the log, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
  pub version: u64,
  pub origin: u64,
  pub seq: u64,
  /// The chain up to this entry: see [`chain_after`].
  pub chain: String,
  pub payload: Vec<u8>,
}

/// The chain of the entry of `origin` and `seq` that follows an entry with chain `previous`
/// (`""` before the first): what the script computes, so that two replicas with one chain at a
/// version hold the same entries up to it.
pub fn chain_after(previous: &str, origin: u64, seq: u64) -> String {
  sha1_smol::Sha1::from(format!("{previous} {origin} {seq}")).hexdigest()
}

/// The ordering script, ready to be called on any connection.
pub struct Orderer {
  script: Script,
}

impl Default for Orderer {
  fn default() -> Self {
    Orderer {
      script: Script::new(include_str!("order.lua")),
    }
  }
}

impl Orderer {
  /// Orders `batch` (possibly empty) into the log of `keys`, in one call; answers in the batch's
  /// order.
  pub async fn order<C: ConnectionLike>(
    &self,
    connection: &mut C,
    keys: &Keys,
    batch: &[Proposal<'_>],
  ) -> RedisResult<Ordered> {
    let mut invocation = self.script.prepare_invoke();
    invocation
      .key(&keys.log)
      .key(&keys.origins)
      .key(&keys.head)
      .arg(LOG_PROTOCOL);
    for proposal in batch {
      invocation
        .arg(proposal.origin.to_string())
        .arg(proposal.seq)
        .arg(u8::from(proposal.skips_gap))
        .arg(proposal.payload);
    }
    let mut answers: Vec<i64> = invocation.invoke_async(connection).await?;
    let head = answers.pop().unwrap_or(0).unsigned_abs();
    let placed = answers
      .into_iter()
      .map(|answer| match answer {
        0 => Placed::Duplicate,
        version if version > 0 => Placed::Ordered(version as u64),
        last => Placed::Gap {
          last: last.unsigned_abs(),
        },
      })
      .collect();
    Ok(Ordered { placed, head })
  }
}

/// Up to `count` entries after `version`, in order.
pub async fn read_after<C: ConnectionLike>(
  connection: &mut C,
  keys: &Keys,
  version: u64,
  count: usize,
) -> RedisResult<Vec<Entry>> {
  let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
    .arg(&keys.log)
    .arg(format!("0-{}", version + 1))
    .arg("+")
    .arg("COUNT")
    .arg(count)
    .query_async(connection)
    .await?;
  reply.ids.into_iter().map(entry_of).collect()
}

/// Up to `count` entries after `version`, waiting up to `block_ms` for the first one (`XREAD
/// BLOCK`: the connection does nothing else meanwhile); none when the time ran out.
pub async fn wait_after<C: ConnectionLike>(
  connection: &mut C,
  keys: &Keys,
  version: u64,
  count: usize,
  block_ms: u64,
) -> RedisResult<Vec<Entry>> {
  let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREAD")
    .arg("COUNT")
    .arg(count)
    .arg("BLOCK")
    .arg(block_ms)
    .arg("STREAMS")
    .arg(&keys.log)
    .arg(format!("0-{version}"))
    .query_async(connection)
    .await?;
  reply
    .into_iter()
    .flat_map(|reply| reply.keys)
    .flat_map(|key| key.ids)
    .map(entry_of)
    .collect()
}

/// What Redis holds of an object, as `memsync status --transport` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
  /// Whether any bridge ever started the object here.
  pub exists: bool,
  /// The version the log has reached.
  pub version: u64,
  /// The entries the log holds (fewer than `version` once snapshots let it be trimmed).
  pub log_entries: u64,
  /// The newest snapshot's version.
  pub snapshot_version: Option<u64>,
}

/// What Redis holds of the object of `keys`.
pub async fn status<C: ConnectionLike>(connection: &mut C, keys: &Keys) -> RedisResult<Status> {
  let (exists, version, log_entries, snapshot_version): (bool, Option<u64>, u64, Option<u64>) =
    redis::pipe()
      .exists(&keys.base)
      .hget(&keys.head, "version")
      .cmd("XLEN")
      .arg(&keys.log)
      .hget(&keys.snapshot, "version")
      .query_async(connection)
      .await?;
  Ok(Status {
    exists,
    version: version.unwrap_or(0),
    log_entries,
    snapshot_version,
  })
}

/// The version the log has reached (0: none yet).
pub async fn head<C: ConnectionLike>(connection: &mut C, keys: &Keys) -> RedisResult<u64> {
  let version: Option<u64> = redis::cmd("HGET")
    .arg(&keys.head)
    .arg("version")
    .query_async(connection)
    .await?;
  Ok(version.unwrap_or(0))
}

/// The entry at `version`, if the log holds it.
pub async fn entry_at<C: ConnectionLike>(
  connection: &mut C,
  keys: &Keys,
  version: u64,
) -> RedisResult<Option<Entry>> {
  let id = format!("0-{version}");
  let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
    .arg(&keys.log)
    .arg(&id)
    .arg(&id)
    .query_async(connection)
    .await?;
  reply.ids.into_iter().next().map(entry_of).transpose()
}

/// Refuses an object whose keys hold what memsync did not write there (never overwritten), or
/// that bridges of another protocol write.
pub async fn check_keys<C: ConnectionLike>(connection: &mut C, keys: &Keys) -> Result<(), String> {
  for (key, kind) in [
    (&keys.log, "stream"),
    (&keys.origins, "hash"),
    (&keys.head, "hash"),
    (&keys.base, "string"),
    (&keys.snapshot, "hash"),
    (&keys.snapshots, "list"),
    (&keys.machines, "set"),
    (&keys.events, "stream"),
  ] {
    let found: String = redis::cmd("TYPE")
      .arg(key)
      .query_async(connection)
      .await
      .map_err(|err| err.to_string())?;
    if found != "none" && found != kind {
      return Err(format!(
        "the key '{key}' holds a {found}, not the {kind} memsync keeps there: another program uses \
         this object's keys; memsync leaves them alone"
      ));
    }
  }
  let protocol: Option<u32> = redis::cmd("HGET")
    .arg(&keys.head)
    .arg("protocol")
    .query_async(connection)
    .await
    .map_err(|err| err.to_string())?;
  match protocol {
    Some(protocol) if protocol != LOG_PROTOCOL => Err(format!(
      "the object is written with log protocol {protocol}, this memsync speaks {LOG_PROTOCOL}: \
       upgrade the processes of every machine together"
    )),
    _ => Ok(()),
  }
}

fn entry_of(entry: redis::streams::StreamId) -> RedisResult<Entry> {
  let version = entry
    .id
    .strip_prefix("0-")
    .and_then(|version| version.parse().ok());
  let origin = entry
    .get::<String>("o")
    .and_then(|origin| origin.parse().ok());
  match (
    version,
    origin,
    entry.get("s"),
    entry.get("c"),
    entry.get("p"),
  ) {
    (Some(version), Some(origin), Some(seq), Some(chain), Some(payload)) => Ok(Entry {
      version,
      origin,
      seq,
      chain,
      payload,
    }),
    _ => Err(redis::RedisError::from((
      redis::ErrorKind::UnexpectedReturnType,
      "not a memsync log entry",
      entry.id,
    ))),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn slots_are_redis_clusters() {
    // The specification's check value of CRC16, and slots CLUSTER KEYSLOT gives.
    assert_eq!(hash_slot("123456789"), 0x31c3);
    assert_eq!(hash_slot("foo"), 12182);
    assert_eq!(hash_slot("bar"), 5061);
    assert_eq!(Keys::of("foo").slot(), hash_slot("ms:foo"));
  }
}
