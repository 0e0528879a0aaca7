//! Connections to the primary a [`Target`] names. For Sentinel and Cluster, discovery is ours:
//! redis-rs's `SentinelClient` does not follow a failover on a live connection, and its Cluster
//! client routes every command, while all the keys of an object live in one slot
//! ([`Keys::slot`]): one connection to the primary of that slot does. The bridge asks the
//! sentinels, or the Cluster's nodes, again after any error (a `MOVED` reply included), and checks
//! with `ROLE` that the server it reached is a primary (a sentinel or a node may still name a
//! demoted one for a moment).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
  Client, ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo,
  TlsCertificates, Value,
};

use crate::transport::redis::address::{Auth, Node, Target, Tls};
use crate::transport::redis::log::Keys;

/// How long one connection attempt (to a sentinel or a server) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the primary of `target` that holds the object of `keys` (in a Cluster, the
/// primary of its slot) and the primary's address, or why there is none (the URL shown without
/// its password).
pub async fn primary(
  target: &Target,
  keys: &Keys,
) -> Result<(MultiplexedConnection, Node), String> {
  let fail = |why: String| format!("cannot reach {}: {why}", target.redacted());
  match target {
    Target::Single {
      node,
      tls,
      auth,
      db,
    } => open(node, auth, *db, tls.as_ref())
      .await
      .map(|connection| (connection, node.clone()))
      .map_err(fail),
    Target::Sentinel { .. } | Target::Cluster { .. } => {
      let mut reasons = Vec::new();
      for asked in askable(target) {
        match through(target, asked, keys).await {
          Ok(connection) => return Ok(connection),
          Err(why) => reasons.push(format!("{}:{}: {why}", asked.host, asked.port)),
        }
      }
      Err(fail(reasons.join("; ")))
    }
  }
}

/// The primary that the first sentinel or Cluster node that answers names now for the object of
/// `keys` (none for a single server): a bridge compares it with the server it writes to, which
/// may not know yet that it was replaced (a sentinel tells a deposed primary only when it next
/// looks at it, up to 10 s later; a partitioned Cluster node learns it when the partition heals).
pub async fn named_primary(target: &Target, keys: &Keys) -> Result<Option<Node>, String> {
  if let Target::Single { .. } = target {
    return Ok(None);
  }
  let mut reasons = Vec::new();
  for asked in askable(target) {
    match ask(target, asked, keys).await {
      Ok(node) => return Ok(Some(node)),
      Err(why) => reasons.push(format!("{}:{}: {why}", asked.host, asked.port)),
    }
  }
  Err(reasons.join("; "))
}

/// The servers that name the primary: the sentinels, or the Cluster's nodes the URL lists.
fn askable(target: &Target) -> &[Node] {
  match target {
    Target::Single { .. } => &[],
    Target::Sentinel { sentinels, .. } => sentinels,
    Target::Cluster { nodes, .. } => nodes,
  }
}

/// Who names the primary to a bridge, as a message says it.
pub fn namer(target: &Target) -> &'static str {
  match target {
    Target::Cluster { .. } => "the Cluster",
    _ => "the sentinels",
  }
}

/// The primary that `asked` (a sentinel, or a node of the Cluster) names for the object of
/// `keys`.
async fn ask(target: &Target, asked: &Node, keys: &Keys) -> Result<Node, String> {
  match target {
    Target::Sentinel { master, .. } => {
      // Sentinels take no database and, commonly, no password of the data nodes.
      let mut asking = open(asked, &Auth::default(), 0, None).await?;
      let (host, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(master)
        .query_async::<Option<(String, u16)>>(&mut asking)
        .await
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("it knows no master '{master}'"))?;
      Ok(Node { host, port })
    }
    Target::Cluster { auth, .. } => {
      let mut asking = open(asked, auth, 0, None).await?;
      slot_primary(&mut asking, asked, keys.slot()).await
    }
    // Nobody is asked for a single server: it is its own primary.
    Target::Single { node, .. } => Ok(node.clone()),
  }
}

/// The primary of `slot` in the Cluster's map as the node behind `connection` (at `asked`) sees
/// it (`CLUSTER SLOTS`: ranges of slots, each with its primary first).
async fn slot_primary(
  connection: &mut MultiplexedConnection,
  asked: &Node,
  slot: u16,
) -> Result<Node, String> {
  let ranges: Vec<Value> = redis::cmd("CLUSTER")
    .arg("SLOTS")
    .query_async(connection)
    .await
    .map_err(|err| err.to_string())?;
  for range in ranges {
    let Value::Array(parts) = range else { continue };
    let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(primary))) =
      (parts.first(), parts.get(1), parts.get(2))
    else {
      continue;
    };
    if !(*first..=*last).contains(&i64::from(slot)) {
      continue;
    }
    let (Some(Value::BulkString(host)), Some(Value::Int(port))) = (primary.first(), primary.get(1))
    else {
      return Err(format!(
        "its map of slots names slot {slot}'s primary oddly"
      ));
    };
    let port = u16::try_from(*port).map_err(|_| format!("it names port {port}"))?;
    // An empty host is the one this question went to; `?`, one the node does not know.
    let host = match String::from_utf8_lossy(host).into_owned() {
      host if host.is_empty() => asked.host.clone(),
      host if host == "?" => {
        return Err(format!(
          "it does not know the address of slot {slot}'s primary (port {port})"
        ))
      }
      host => host,
    };
    return Ok(Node { host, port });
  }
  Err(format!(
    "no node serves slot {slot} (the Cluster is not ready, or lost that slot)"
  ))
}

/// Asks `asked` for the primary, connects to it and checks its role.
async fn through(
  target: &Target,
  asked: &Node,
  keys: &Keys,
) -> Result<(MultiplexedConnection, Node), String> {
  let node = ask(target, asked, keys).await?;
  let (auth, db) = match target {
    Target::Sentinel { auth, db, .. } => (auth, *db),
    Target::Cluster { auth, .. } | Target::Single { auth, .. } => (auth, 0),
  };
  let mut connection = open(&node, auth, db, None)
    .await
    .map_err(|why| format!("it names {}:{}: {why}", node.host, node.port))?;
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

async fn open(
  node: &Node,
  auth: &Auth,
  db: u32,
  tls: Option<&Tls>,
) -> Result<MultiplexedConnection, String> {
  let mut redis = RedisConnectionInfo::default().set_db(i64::from(db));
  if let Some(user) = &auth.user {
    redis = redis.set_username(user);
  }
  if let Some(password) = &auth.password {
    redis = redis.set_password(password);
  }
  let address = match tls {
    None => ConnectionAddr::Tcp(node.host.clone(), node.port),
    Some(_) => ConnectionAddr::TcpTls {
      host: node.host.clone(),
      port: node.port,
      insecure: false,
      tls_params: None,
    },
  };
  let info = address
    .into_connection_info()
    .map_err(|err| err.to_string())?
    .set_redis_settings(redis);
  let client = match tls {
    None => Client::open(info),
    Some(tls) => Client::build_with_tls(info, certificates(tls)?),
  }
  .map_err(|err| err.to_string())?;
  tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
    .await
    .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))?
    .map_err(|err| {
      // rustls says what is wrong with a certificate ("invalid peer certificate: UnknownIssuer").
      let why = err.to_string();
      match tls {
        Some(Tls { ca: None, .. }) if why.contains("UnknownIssuer") => {
          format!("TLS: {why} (a private CA is trusted with ?ca=<file>)")
        }
        Some(Tls { identity: None, .. }) if why.contains("CertificateRequired") => format!(
          "TLS: {why} (the server checks clients: present a certificate with ?cert=<file>&key=<file>)"
        ),
        Some(_) if why.to_lowercase().contains("certificate") => format!("TLS: {why}"),
        _ => why,
      }
    })
}

/// The PEM files of `tls`, read now: a renewed certificate is taken at the next connection.
fn certificates(tls: &Tls) -> Result<TlsCertificates, String> {
  let read = |what: &str, path: &std::path::Path| {
    std::fs::read(path)
      .map_err(|err| format!("cannot read the {what} file {}: {err}", path.display()))
  };
  let root_cert = tls.ca.as_deref().map(|ca| read("CA", ca)).transpose()?;
  let client_tls = match &tls.identity {
    Some((cert, key)) => Some(ClientTlsConfig {
      client_cert: read("client certificate", cert)?,
      client_key: read("client key", key)?,
    }),
    None => None,
  };
  Ok(TlsCertificates {
    client_tls,
    root_cert,
  })
}
