//! Connections to the primary a [`Target`] names. For Sentinel, discovery is ours rather than
//! redis-rs's `SentinelClient`, which does not follow a failover on a live connection: the bridge
//! asks the sentinels again after any error, and checks with `ROLE` that the server it reached
//! is a primary (a sentinel may still name a demoted one for a moment).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value};

use crate::transport::redis::address::{Auth, Node, Target};

/// How long one connection attempt (to a sentinel or a server) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the primary of `target` and the primary's address, or why there is none (the
/// URL shown without its password).
pub async fn primary(target: &Target) -> Result<(MultiplexedConnection, Node), String> {
  let fail = |why: String| format!("cannot reach {}: {why}", target.redacted());
  match target {
    Target::Single {
      node,
      tls: false,
      auth,
      db,
    } => open(node, auth, *db)
      .await
      .map(|connection| (connection, node.clone()))
      .map_err(fail),
    Target::Single { tls: true, .. } => Err(fail("TLS (rediss://) is not supported yet".into())),
    Target::Sentinel {
      sentinels,
      master,
      auth,
      db,
    } => {
      let mut reasons = Vec::new();
      for sentinel in sentinels {
        match through_sentinel(sentinel, master, auth, *db).await {
          Ok(connection) => return Ok(connection),
          Err(why) => reasons.push(format!("{}:{}: {why}", sentinel.host, sentinel.port)),
        }
      }
      Err(fail(reasons.join("; ")))
    }
    Target::Cluster { .. } => Err(fail("Cluster is not supported yet".into())),
  }
}

/// The primary the first sentinel that answers names now (none for a single server): a bridge
/// compares it with the server it writes to, which may not know yet that it was replaced (a
/// sentinel tells a deposed primary only when it next looks at it, up to 10 s later).
pub async fn named_primary(target: &Target) -> Result<Option<Node>, String> {
  let Target::Sentinel {
    sentinels, master, ..
  } = target
  else {
    return Ok(None);
  };
  let mut reasons = Vec::new();
  for sentinel in sentinels {
    match ask(sentinel, master).await {
      Ok(node) => return Ok(Some(node)),
      Err(why) => reasons.push(format!("{}:{}: {why}", sentinel.host, sentinel.port)),
    }
  }
  Err(reasons.join("; "))
}

/// The primary `sentinel` names for `master`.
async fn ask(sentinel: &Node, master: &str) -> Result<Node, String> {
  // Sentinels take no database and, commonly, no password of the data nodes.
  let mut asking = open(sentinel, &Auth::default(), 0).await?;
  let (host, port): (String, u16) = redis::cmd("SENTINEL")
    .arg("GET-MASTER-ADDR-BY-NAME")
    .arg(master)
    .query_async::<Option<(String, u16)>>(&mut asking)
    .await
    .map_err(|err| err.to_string())?
    .ok_or_else(|| format!("it knows no master '{master}'"))?;
  Ok(Node { host, port })
}

/// Asks `sentinel` for the primary of `master`, connects to it and checks its role.
async fn through_sentinel(
  sentinel: &Node,
  master: &str,
  auth: &Auth,
  db: u32,
) -> Result<(MultiplexedConnection, Node), String> {
  let node = ask(sentinel, master).await?;
  let mut connection = open(&node, auth, db).await?;
  if is_primary(&mut connection)
    .await
    .map_err(|err| err.to_string())?
  {
    Ok((connection, node))
  } else {
    Err(format!(
      "it names {}:{}, which is not a primary (a failover under way)",
      node.host, node.port
    ))
  }
}

/// Whether the server of `connection` is a primary (`ROLE`): a demoted one still answers reads.
pub async fn is_primary(connection: &mut MultiplexedConnection) -> redis::RedisResult<bool> {
  let role: Value = redis::cmd("ROLE").query_async(connection).await?;
  Ok(matches!(role, Value::Array(parts)
    if matches!(parts.first(), Some(Value::BulkString(role)) if role == b"master")))
}

async fn open(node: &Node, auth: &Auth, db: u32) -> Result<MultiplexedConnection, String> {
  let mut redis = RedisConnectionInfo::default().set_db(i64::from(db));
  if let Some(user) = &auth.user {
    redis = redis.set_username(user);
  }
  if let Some(password) = &auth.password {
    redis = redis.set_password(password);
  }
  let info = ConnectionAddr::Tcp(node.host.clone(), node.port)
    .into_connection_info()
    .map_err(|err| err.to_string())?
    .set_redis_settings(redis);
  let client = Client::open(info).map_err(|err| err.to_string())?;
  tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
    .await
    .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))?
    .map_err(|err| err.to_string())
}
