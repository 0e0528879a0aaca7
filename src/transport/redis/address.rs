//! Where an object's Redis lives: the `transport` option's URL, read into a [`Target`].
//!
//! - `redis://[user[:password]@]host[:port][/db]`: one server;
//! - `rediss://[user[:password]@]host[:port][/db][?ca=<file>&cert=<file>&key=<file>]`: one server
//!   over TLS, trusting the CA certificates of `ca` (PEM) instead of the system's, and presenting
//!   the client certificate `cert` with its key `key` when the server asks for one;
//! - `redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master[/db]`: the primary that
//!   the sentinels name `master`;
//! - `redis+cluster://[user[:password]@]host[:port][,host[:port]...]`: a Cluster, found from any of
//!   its nodes.
//!
//! redis-rs reads only the single-server form, and no URL crate takes a list of hosts, hence this
//! small reader. Whatever is shown to a user (an error, `getStatus()`) is [`Target::redacted`]:
//! the URL without its password.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// The port of a Redis server when the URL names none.
pub const DEFAULT_PORT: u16 = 6379;
/// The port of a sentinel when the URL names none.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// One host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
  pub host: String,
  pub port: u16,
}

/// The credentials of `AUTH`, when the URL has them.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Auth {
  pub user: Option<String>,
  pub password: Option<String>,
}

impl fmt::Debug for Auth {
  /// Never the password: a `Debug` print may end up in a log.
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("Auth")
      .field("user", &self.user)
      .field("password", &self.password.as_ref().map(|_| "***"))
      .finish()
  }
}

/// The files of a TLS connection (`rediss://...?ca=&cert=&key=`). Paths rather than PEM text: a
/// URL is shown in errors and `memsync status`, and a file is read again at each connection, so a
/// renewed certificate is taken without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
  /// The CA certificates (PEM) that the server's certificate must chain to; none: the system's.
  pub ca: Option<PathBuf>,
  /// The client certificate (PEM) and its private key, for a server that checks clients.
  pub identity: Option<(PathBuf, PathBuf)>,
}

/// What a `transport` URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
  /// One server, over TLS when `tls` is some (`rediss://`).
  Single {
    node: Node,
    tls: Option<Tls>,
    auth: Auth,
    db: u32,
  },
  /// The primary the sentinels know as `master`.
  Sentinel {
    sentinels: Vec<Node>,
    master: String,
    auth: Auth,
    db: u32,
  },
  /// A Redis Cluster, reached through any of `nodes`.
  Cluster { nodes: Vec<Node>, auth: Auth },
}

impl Target {
  /// Reads a `transport` URL; the error says what is wrong, showing the URL without its password.
  pub fn parse(url: &str) -> Result<Target, String> {
    let fail = |why: &str| format!("transport {}: {why}", redact(url));
    let (scheme, rest) = url
      .split_once("://")
      .ok_or_else(|| fail("not a URL (redis://host:port)"))?;
    let (auth, rest) = match rest.rsplit_once('@') {
      Some((credentials, rest)) => (read_auth(credentials).map_err(|why| fail(&why))?, rest),
      None => (Auth::default(), rest),
    };
    // The query follows the path; it holds file paths, hence split off before the path.
    let (rest, query) = match rest.split_once('?') {
      Some((rest, query)) => (rest, Some(query)),
      None => (rest, None),
    };
    if query.is_some() && scheme != "rediss" {
      return Err(fail(
        "only rediss:// takes parameters (?ca=&cert=&key=, files of its TLS)",
      ));
    }
    let (hosts, path) = match rest.split_once('/') {
      Some((hosts, path)) => (hosts, Some(path)),
      None => (rest, None),
    };
    let path: Vec<&str> = path
      .map(|path| path.split('/').filter(|part| !part.is_empty()).collect())
      .unwrap_or_default();
    match scheme {
      "redis" | "rediss" => {
        let node = read_node(hosts, DEFAULT_PORT).map_err(|why| fail(&why))?;
        let db = match path.as_slice() {
          [] => 0,
          [db] => read_db(db).map_err(|why| fail(&why))?,
          _ => return Err(fail("the path is a database number or nothing")),
        };
        let tls = match scheme {
          "rediss" => Some(read_tls(query.unwrap_or_default()).map_err(|why| fail(&why))?),
          _ => None,
        };
        Ok(Target::Single {
          node,
          tls,
          auth,
          db,
        })
      }
      "redis+sentinel" => {
        let sentinels = read_nodes(hosts, DEFAULT_SENTINEL_PORT).map_err(|why| fail(&why))?;
        let (master, db) = match path.as_slice() {
          [master] => (*master, 0),
          [master, db] => (*master, read_db(db).map_err(|why| fail(&why))?),
          _ => return Err(fail("name the master: redis+sentinel://host:port/master")),
        };
        Ok(Target::Sentinel {
          sentinels,
          master: decode(master).map_err(|why| fail(&why))?,
          auth,
          db,
        })
      }
      "redis+cluster" => {
        if !path.is_empty() {
          return Err(fail("a Cluster has no database number or path"));
        }
        let nodes = read_nodes(hosts, DEFAULT_PORT).map_err(|why| fail(&why))?;
        Ok(Target::Cluster { nodes, auth })
      }
      other => Err(fail(&format!(
        "unknown scheme '{other}' (redis, rediss, redis+sentinel or redis+cluster)"
      ))),
    }
  }

  /// The URL as a user may see it: the password replaced by `***`.
  pub fn redacted(&self) -> String {
    let (scheme, nodes, auth, path) = match self {
      Target::Single {
        node,
        tls,
        auth,
        db,
      } => (
        if tls.is_some() { "rediss" } else { "redis" },
        std::slice::from_ref(node),
        auth,
        (*db != 0).then(|| db.to_string()),
      ),
      Target::Sentinel {
        sentinels,
        master,
        auth,
        db,
      } => (
        "redis+sentinel",
        sentinels.as_slice(),
        auth,
        Some(match db {
          0 => master.clone(),
          db => format!("{master}/{db}"),
        }),
      ),
      Target::Cluster { nodes, auth } => ("redis+cluster", nodes.as_slice(), auth, None),
    };
    let credentials = match (&auth.user, &auth.password) {
      (Some(user), Some(_)) => format!("{user}:***@"),
      (Some(user), None) => format!("{user}@"),
      (None, Some(_)) => ":***@".to_owned(),
      (None, None) => String::new(),
    };
    let hosts: Vec<String> = nodes
      .iter()
      .map(|node| match node.host.contains(':') {
        true => format!("[{}]:{}", node.host, node.port),
        false => format!("{}:{}", node.host, node.port),
      })
      .collect();
    let path = path.map(|path| format!("/{path}")).unwrap_or_default();
    let query = match self {
      Target::Single { tls: Some(tls), .. } => tls.query(),
      _ => String::new(),
    };
    format!("{scheme}://{credentials}{}{path}{query}", hosts.join(","))
  }
}

/// What a file path keeps encoded in a query: what would end the value or the query, and `@`,
/// which would read as the end of the credentials.
const QUERY_VALUE: &AsciiSet = &CONTROLS
  .add(b' ')
  .add(b'%')
  .add(b'&')
  .add(b'#')
  .add(b'=')
  .add(b'@');

impl Tls {
  /// The URL's query that reads back into these files: `?ca=...&cert=...&key=...`, or nothing.
  fn query(&self) -> String {
    let mut parameters = Vec::new();
    let mut add = |name: &str, path: &PathBuf| {
      let value = utf8_percent_encode(&path.to_string_lossy(), QUERY_VALUE).to_string();
      parameters.push(format!("{name}={value}"));
    };
    if let Some(ca) = &self.ca {
      add("ca", ca);
    }
    if let Some((cert, key)) = &self.identity {
      add("cert", cert);
      add("key", key);
    }
    match parameters.is_empty() {
      true => String::new(),
      false => format!("?{}", parameters.join("&")),
    }
  }
}

/// The parameters of `rediss://...?ca=&cert=&key=`.
fn read_tls(query: &str) -> Result<Tls, String> {
  let (mut ca, mut cert, mut key) = (None, None, None);
  for parameter in query.split('&').filter(|parameter| !parameter.is_empty()) {
    let (name, value) = parameter
      .split_once('=')
      .ok_or_else(|| format!("the parameter '{parameter}' has no value (name=value)"))?;
    let slot = match name {
      "ca" => &mut ca,
      "cert" => &mut cert,
      "key" => &mut key,
      other => {
        return Err(format!(
          "unknown parameter '{other}' (ca, cert and key: files of the TLS connection)"
        ))
      }
    };
    let value = decode(value)?;
    if value.is_empty() {
      return Err(format!("the parameter '{name}' names no file"));
    }
    if slot.replace(PathBuf::from(value)).is_some() {
      return Err(format!("the parameter '{name}' is given twice"));
    }
  }
  let identity = match (cert, key) {
    (Some(cert), Some(key)) => Some((cert, key)),
    (None, None) => None,
    _ => return Err("a client certificate needs both cert and key".into()),
  };
  Ok(Tls { ca, identity })
}

/// `url` with whatever stands between `://` and the last `@` reduced to its user name.
fn redact(url: &str) -> String {
  let Some((scheme, rest)) = url.split_once("://") else {
    return url.to_owned();
  };
  match rest.rsplit_once('@') {
    Some((credentials, rest)) => {
      let user = credentials
        .split_once(':')
        .map_or(credentials, |(user, _)| user);
      let hidden = if credentials.contains(':') {
        ":***"
      } else {
        ""
      };
      format!("{scheme}://{user}{hidden}@{rest}")
    }
    None => url.to_owned(),
  }
}

fn read_auth(credentials: &str) -> Result<Auth, String> {
  let (user, password) = match credentials.split_once(':') {
    Some((user, password)) => (user, Some(password)),
    None => (credentials, None),
  };
  Ok(Auth {
    user: (!user.is_empty()).then(|| decode(user)).transpose()?,
    password: password.map(decode).transpose()?,
  })
}

fn read_nodes(hosts: &str, default_port: u16) -> Result<Vec<Node>, String> {
  hosts
    .split(',')
    .map(|host| read_node(host, default_port))
    .collect()
}

fn read_node(text: &str, default_port: u16) -> Result<Node, String> {
  // `[::1]:6379`: an IPv6 address is bracketed, since it holds colons itself.
  let (host, port) = match text.strip_prefix('[') {
    Some(rest) => {
      let (host, after) = rest
        .split_once(']')
        .ok_or_else(|| format!("'{text}' opens a bracket it does not close"))?;
      (host, after.strip_prefix(':'))
    }
    None => match text.rsplit_once(':') {
      Some((host, port)) => (host, Some(port)),
      None => (text, None),
    },
  };
  if host.is_empty() {
    return Err(format!("'{text}' names no host"));
  }
  let port = match port {
    None => default_port,
    Some(port) => port
      .parse::<u16>()
      .ok()
      .filter(|port| *port != 0)
      .ok_or_else(|| format!("'{port}' is not a port (1 to 65535)"))?,
  };
  Ok(Node {
    host: host.to_owned(),
    port,
  })
}

fn read_db(text: &str) -> Result<u32, String> {
  text
    .parse()
    .map_err(|_| format!("'{text}' is not a database number"))
}

fn decode(text: &str) -> Result<String, String> {
  percent_decode_str(text)
    .decode_utf8()
    .map(|text| text.into_owned())
    .map_err(|_| format!("'{text}' is not UTF-8 once percent-decoded"))
}

#[cfg(test)]
mod tests {
  use super::*;

  fn node(host: &str, port: u16) -> Node {
    Node {
      host: host.to_owned(),
      port,
    }
  }

  #[test]
  fn single_servers_with_and_without_credentials_port_and_database() {
    assert_eq!(
      Target::parse("redis://localhost").unwrap(),
      Target::Single {
        node: node("localhost", 6379),
        tls: None,
        auth: Auth::default(),
        db: 0
      }
    );
    let target = Target::parse("rediss://app:p%40ss@cache.internal:6380/2").unwrap();
    assert_eq!(
      target,
      Target::Single {
        node: node("cache.internal", 6380),
        tls: Some(Tls::default()),
        auth: Auth {
          user: Some("app".into()),
          password: Some("p@ss".into())
        },
        db: 2
      }
    );
    assert_eq!(target.redacted(), "rediss://app:***@cache.internal:6380/2");
    let ipv6 = Target::parse("redis://:secret@[::1]:7000").unwrap();
    assert_eq!(ipv6.redacted(), "redis://:***@[::1]:7000");
  }

  #[test]
  fn tls_files_come_from_the_query_and_show_in_the_redacted_url() {
    let url = "rediss://:pw@h:6380/1?ca=/etc/ca.pem&cert=/my%20certs/c.pem&key=/k%26%40.pem";
    let target = Target::parse(url).unwrap();
    assert_eq!(
      target,
      Target::Single {
        node: node("h", 6380),
        tls: Some(Tls {
          ca: Some("/etc/ca.pem".into()),
          identity: Some(("/my certs/c.pem".into(), "/k&@.pem".into())),
        }),
        auth: Auth {
          user: None,
          password: Some("pw".into())
        },
        db: 1
      }
    );
    assert_eq!(
      target.redacted(),
      "rediss://:***@h:6380/1?ca=/etc/ca.pem&cert=/my%20certs/c.pem&key=/k%26%40.pem"
    );
    let reread = target.redacted().replace("***", "pw");
    assert_eq!(Target::parse(&reread).unwrap(), target);
    let no_path = Target::parse("rediss://h?ca=/ca.pem").unwrap();
    assert_eq!(no_path.redacted(), "rediss://h:6379?ca=/ca.pem");
  }

  #[test]
  fn sentinels_name_their_master_and_clusters_list_nodes() {
    let sentinel = Target::parse("redis+sentinel://s1:26380,s2,s3:26381/mymaster/1").unwrap();
    assert_eq!(
      sentinel,
      Target::Sentinel {
        sentinels: vec![node("s1", 26380), node("s2", 26379), node("s3", 26381)],
        master: "mymaster".into(),
        auth: Auth::default(),
        db: 1
      }
    );
    assert_eq!(
      sentinel.redacted(),
      "redis+sentinel://s1:26380,s2:26379,s3:26381/mymaster/1"
    );
    let cluster = Target::parse("redis+cluster://u:pw@a:7000,b:7001").unwrap();
    assert_eq!(
      cluster,
      Target::Cluster {
        nodes: vec![node("a", 7000), node("b", 7001)],
        auth: Auth {
          user: Some("u".into()),
          password: Some("pw".into())
        }
      }
    );
    assert_eq!(cluster.redacted(), "redis+cluster://u:***@a:7000,b:7001");
  }

  #[test]
  fn errors_say_what_is_wrong_and_never_show_the_password() {
    let cases = [
      ("localhost:6379", "not a URL"),
      ("memcached://:hunter2@h", "unknown scheme 'memcached'"),
      ("redis://:hunter2@h:0", "'0' is not a port"),
      ("redis://:hunter2@h:http", "'http' is not a port"),
      ("redis://:hunter2@:6379", "names no host"),
      ("redis://:hunter2@h/x", "'x' is not a database number"),
      ("redis+sentinel://:hunter2@s1,s2", "name the master"),
      ("redis+cluster://:hunter2@a/0", "no database number"),
      ("redis://:hunter2@[::1:6379", "does not close"),
      (
        "redis://:hunter2@h?ca=/ca.pem",
        "only rediss:// takes parameters",
      ),
      (
        "rediss://:hunter2@h?cafile=/ca.pem",
        "unknown parameter 'cafile'",
      ),
      ("rediss://:hunter2@h?ca", "has no value"),
      ("rediss://:hunter2@h?ca=", "names no file"),
      ("rediss://:hunter2@h?ca=/a&ca=/b", "given twice"),
      ("rediss://:hunter2@h?cert=/c.pem", "needs both cert and key"),
    ];
    for (url, why) in cases {
      let err = Target::parse(url).unwrap_err();
      assert!(err.contains(why), "{url}: {err}");
      assert!(!err.contains("hunter2"), "{url}: {err}");
    }
    let auth = Auth {
      user: None,
      password: Some("hunter2".into()),
    };
    assert!(!format!("{auth:?}").contains("hunter2"));
  }
}
