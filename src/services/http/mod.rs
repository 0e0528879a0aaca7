//! The HTTP view of the object, served by its host (`options.server`):
//!
//! - `GET /`, and `GET /<name>` when a browser asks for HTML: a page that shows the live object
//!   as a tree, its version, host and clients (`page.html`: no build step, nothing from a CDN);
//! - `GET /<name>`: the object, as JSON indented by two spaces (memsync 0.5's answer);
//! - `GET /<name>/<dotted.path>`: the value at that path, 404 when there is none;
//! - `GET /<name>/status`: who hosts the object and how far it is;
//! - `GET /<name>/events`: Server-Sent Events, one `data:` line `{ version, timestamp, patch }`
//!   per patch as the host orders it.
//!
//! Everything else is 404 (405 for another method); a request from outside or from another user
//! is 403 (see [`access`]), and one without the view's token where it needs one is 401 (see
//! [`token`]). It runs on the addon's tokio runtime and
//! reads the replica under its lock only to copy a value out, so it keeps answering while the
//! host's JS thread is busy.
//!
//! Built on hyper 1 (HTTP/1.1 only): four GET routes need no router or middleware.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{
  HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST,
  REFERRER_POLICY, SET_COOKIE, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Interval;

use crate::clock::Hlc;
use crate::core::events::Received;
use crate::core::message::RawJson;
use crate::core::replica::{Replica, Tap};
use crate::error::Error;

mod access;
mod token;

pub use token::TokenRule;

/// How long a new host keeps trying a port that is still taken (a killed host's listening socket
/// may close a moment after its lock is freed) before it reports the failure and retries slowly.
const BIND_GRACE: Duration = Duration::from_millis(500);
/// The pause between two attempts to bind.
const BIND_RETRY: Duration = Duration::from_millis(10);
/// The pause between attempts once the failure is reported.
const SLOW_BIND_RETRY: Duration = Duration::from_secs(1);
/// Records an event stream may fall behind before it is closed.
const STREAM_CAPACITY: usize = 4096;
/// A comment line on an idle event stream, so that clients and proxies do not time it out.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a stopping host lets its connections finish their responses.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// The most bytes of queued records one chunk of an event stream carries.
const MAX_CHUNK: usize = 64 * 1024;

/// Where the view listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
  /// A host name or IP address (default `127.0.0.1`).
  pub host: String,
  /// The TCP port.
  pub port: u16,
}

impl fmt::Display for Address {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if self.host.contains(':') {
      write!(f, "[{}]:{}", self.host, self.port)
    } else {
      write!(f, "{}:{}", self.host, self.port)
    }
  }
}

/// The view an instance serves while it is host (`options.server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
  /// Where it listens.
  pub address: Address,
  /// Which requests need its token.
  pub token: TokenRule,
}

/// Binds `address`, retrying for [`BIND_GRACE`] while the port is taken.
pub async fn bind(address: &Address) -> io::Result<TcpListener> {
  let deadline = Instant::now() + BIND_GRACE;
  loop {
    match TcpListener::bind((address.host.as_str(), address.port)).await {
      Err(err) if err.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
        tokio::time::sleep(BIND_RETRY).await
      }
      bound => return bound,
    }
  }
}

/// Serves the view on `listener` (or, when binding failed, reports it and keeps trying) until
/// `shutdown` turns true; returns once the port is closed and every connection has ended.
/// `view_file` (`<stem>.view.json` in the rendezvous directory) gets the view's URL and token.
pub async fn run(
  replica: Arc<Replica>,
  view: View,
  listener: io::Result<TcpListener>,
  view_file: PathBuf,
  mut shutdown: watch::Receiver<bool>,
) {
  let address = view.address.clone();
  let listener = match listener {
    Ok(listener) => listener,
    Err(err) => {
      replica.report_error(&Error::Http(format!(
        "memsync '{}' cannot serve HTTP on {address}: {err}; retrying every {} s",
        replica.name(),
        SLOW_BIND_RETRY.as_secs()
      )));
      loop {
        tokio::select! {
          _ = tokio::time::sleep(SLOW_BIND_RETRY) => {}
          _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Ok(listener) = TcpListener::bind((address.host.as_str(), address.port)).await {
          break listener;
        }
      }
    }
  };
  let token = match token::establish(&view_file, &url_of(&replica, &address), &view.token) {
    Ok(token) => Some(Arc::<str>::from(token)),
    Err(err) => {
      // Without a token, the requests that need one are refused: the view fails closed.
      replica.report_error(&Error::Http(format!(
        "memsync '{}' cannot write the HTTP view's token to {}: {err}",
        replica.name(),
        view_file.display()
      )));
      None
    }
  };
  let rules = Arc::new(Rules {
    token,
    always: matches!(view.token, TokenRule::Always(_)),
    own_uid: crate::user::current_uid().ok(),
  });
  let mut connections = JoinSet::new();
  let stopping = shutdown.clone();
  loop {
    let accepted = tokio::select! {
      accepted = listener.accept() => accepted,
      Some(_) = connections.join_next(), if !connections.is_empty() => continue,
      _ = shutdown.wait_for(|stop| *stop) => break,
    };
    match accepted {
      Ok((stream, client)) => {
        let gate = Arc::new(Gate::new(&stream, client, rules.clone()));
        connections.spawn(serve_connection(
          replica.clone(),
          stream,
          gate,
          stopping.clone(),
        ));
      }
      // Out of file descriptors and the like: pause rather than spin.
      Err(_) => tokio::time::sleep(BIND_RETRY).await,
    }
  }
  // The port is free for the next host at once; the connections close on their own shutdown.
  drop(listener);
  while connections.join_next().await.is_some() {}
  // The next host writes its own; until then `memsync url` says that nobody serves the view.
  let _ = std::fs::remove_file(&view_file);
}

/// What a name's path segment escapes: all but RFC 3986's unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
  .remove(b'-')
  .remove(b'.')
  .remove(b'_')
  .remove(b'~');

/// The view's address as a browser opens it: a wildcard address is reached on loopback.
fn url_of(replica: &Replica, address: &Address) -> String {
  let host = match address.host.as_str() {
    "0.0.0.0" | "" => "127.0.0.1",
    "::" => "::1",
    host => host,
  };
  let reachable = Address {
    host: host.to_owned(),
    port: address.port,
  };
  let name = utf8_percent_encode(replica.name(), PATH_SEGMENT);
  format!("http://{reachable}/{name}")
}

/// What every connection of one view is checked against.
struct Rules {
  /// `None` when it could not be kept: requests that need it are refused.
  token: Option<Arc<str>>,
  /// Whether every request needs the token (`server.token`).
  always: bool,
  own_uid: Option<u32>,
}

/// What one connection may read, decided when it is accepted.
struct Gate {
  rules: Arc<Rules>,
  /// The view's port, which a request's `Host` must name when it names one.
  port: u16,
  /// Whether the view is bound to a loopback address, where the checks of [`access`] apply.
  loopback: bool,
  /// The uid of the connection's client, when the kernel tells it.
  client_uid: Option<u32>,
}

/// Why a request is refused, or what its response must add.
enum Admission {
  Admitted,
  /// Admitted with `?token=`: the response sets the cookie.
  SetCookie(HeaderValue),
  Refused(StatusCode, String),
}

impl Gate {
  fn new(stream: &TcpStream, client: SocketAddr, rules: Arc<Rules>) -> Gate {
    let Ok(server) = stream.local_addr() else {
      return Gate {
        rules,
        port: 0,
        loopback: true,
        client_uid: None,
      };
    };
    let loopback = server.ip().is_loopback() || server.ip().to_canonical().is_loopback();
    Gate {
      rules,
      port: server.port(),
      loopback,
      client_uid: loopback
        .then(|| access::client_uid(server, client))
        .flatten(),
    }
  }

  fn admit(&self, request: &Request<Incoming>, name: &str) -> Admission {
    if self.loopback {
      if let Some(host) = request.headers().get(HOST) {
        let host = host.to_str().unwrap_or("(not text)");
        if !access::is_loopback_host(host, self.port) {
          return Admission::Refused(StatusCode::FORBIDDEN, format!(
            "This view answers requests to localhost, 127.0.0.1 or [::1] (or another loopback address) at port {} only, not to Host '{host}' (a page that rebinds its DNS name to this machine is refused)",
            self.port
          ));
        }
      }
    }
    let own_user =
      self.loopback && self.client_uid.is_some() && self.client_uid == self.rules.own_uid;
    let needs_token = self.rules.always || (self.loopback && !own_user);
    if !needs_token {
      return Admission::Admitted;
    }
    let cookie = token::cookie_name(self.port);
    let presented =
      self.rules.token.as_deref().and_then(|token| {
        token::presented(token, request.headers(), request.uri().query(), &cookie)
      });
    match (presented, &self.rules.token) {
      (Some(token::Presented::Held), _) => Admission::Admitted,
      (Some(token::Presented::InQuery), Some(token)) => {
        let set = format!("{cookie}={token}; HttpOnly; SameSite=Strict; Path=/");
        HeaderValue::from_str(&set).map_or(Admission::Admitted, Admission::SetCookie)
      }
      _ => match (self.client_uid, self.rules.own_uid) {
        (Some(uid), Some(own)) if uid != own && !self.rules.always => Admission::Refused(
          StatusCode::FORBIDDEN,
          format!("This view serves its own user only; the connection belongs to uid {uid} (a user given the view's token may present it)"),
        ),
        _ => Admission::Refused(
          StatusCode::UNAUTHORIZED,
          format!("This view needs its token: `memsync url {name}` prints a URL that carries it, or send it as Authorization: Bearer <token>"),
        ),
      },
    }
  }
}

async fn serve_connection(
  replica: Arc<Replica>,
  stream: TcpStream,
  gate: Arc<Gate>,
  mut shutdown: watch::Receiver<bool>,
) {
  // Event records are small writes that must not wait for Nagle's algorithm.
  let _ = stream.set_nodelay(true);
  let service = service_fn(move |request: Request<Incoming>| {
    let replica = replica.clone();
    let admission = gate.admit(&request, replica.name());
    async move {
      Ok::<_, Infallible>(match admission {
        Admission::Admitted => respond(replica, request).await,
        Admission::SetCookie(cookie) => {
          let mut response = respond(replica, request).await;
          response.headers_mut().insert(SET_COOKIE, cookie);
          response
        }
        Admission::Refused(status, why) => {
          let mut response = error(status, &why);
          if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
              WWW_AUTHENTICATE,
              HeaderValue::from_static("Bearer realm=\"memsync\""),
            );
          }
          response
        }
      })
    }
  });
  let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
  tokio::pin!(connection);
  tokio::select! {
    _ = connection.as_mut() => return,
    _ = shutdown.wait_for(|stop| *stop) => {}
  }
  connection.as_mut().graceful_shutdown();
  let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
}

/// What a request path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
  /// The page that shows the object live.
  Page,
  /// The value at a dotted path (`""`: the whole object).
  Value(String),
  Status,
  Events,
  NotFound,
}

/// Routes `path` (the URI path, percent-encoded) for the object `name`.
fn route(name: &str, path: &str) -> Route {
  let Some(path) = path.strip_prefix('/') else {
    return Route::NotFound;
  };
  if path.is_empty() {
    return Route::Page;
  }
  let (first, rest) = match path.split_once('/') {
    Some((first, rest)) => (first, rest),
    None => (path, ""),
  };
  fn decode(part: &str) -> Option<std::borrow::Cow<'_, str>> {
    percent_decode_str(part).decode_utf8().ok()
  }
  if decode(first).as_deref() != Some(name) {
    return Route::NotFound;
  }
  match rest {
    "status" => Route::Status,
    "events" => Route::Events,
    _ => match decode(rest) {
      Some(dotted) => Route::Value(dotted.into_owned()),
      None => Route::NotFound,
    },
  }
}

type ResponseBody = Either<Full<Bytes>, EventStream>;

async fn respond(replica: Arc<Replica>, request: Request<Incoming>) -> Response<ResponseBody> {
  if request.method() != Method::GET {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "Only GET is served");
    response
      .headers_mut()
      .insert(ALLOW, HeaderValue::from_static("GET"));
    return response;
  }
  let wants_html = request
    .headers()
    .get(ACCEPT)
    .and_then(|accept| accept.to_str().ok())
    .is_some_and(|accept| accept.contains("text/html"));
  match route(replica.name(), request.uri().path()) {
    Route::Value(path) if path.is_empty() && wants_html => page(replica.name()),
    Route::Page => page(replica.name()),
    // Copying and encoding a whole document is long: it runs on the blocking pool, not on the
    // worker that relays patches.
    Route::Value(path) => tokio::task::spawn_blocking(move || match replica.read(&path) {
      Some(value) => json(StatusCode::OK, &value),
      None => error(
        StatusCode::NOT_FOUND,
        &format!("'{}' has no value at '{path}'", replica.name()),
      ),
    })
    .await
    .unwrap_or_else(|err| error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())),
    Route::Status => {
      let (role, version, clients) = replica.status();
      json(
        StatusCode::OK,
        &Status {
          name: replica.name(),
          role: role.name(),
          host_pid: std::process::id(),
          version,
          clients,
        },
      )
    }
    Route::Events => match subscribe(&replica, STREAM_CAPACITY) {
      Some(records) => {
        let mut response = Response::new(Either::Right(EventStream::new(records)));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
      }
      None => error(
        StatusCode::SERVICE_UNAVAILABLE,
        "This process is no longer the host; retry to reach the new one",
      ),
    },
    Route::NotFound => error(StatusCode::NOT_FOUND, "Not found"),
  }
}

/// The page, for the object `name`.
fn page(name: &str) -> Response<ResponseBody> {
  let escaped = name
    .replace('&', "&amp;")
    .replace('<', "&lt;")
    .replace('>', "&gt;")
    .replace('"', "&quot;")
    .replace('\'', "&#39;");
  let html = include_str!("page.html").replace("{{NAME}}", &escaped);
  let mut response = Response::new(Either::Left(Full::new(Bytes::from(html))));
  let headers = response.headers_mut();
  headers.insert(
    CONTENT_TYPE,
    HeaderValue::from_static("text/html; charset=utf-8"),
  );
  // Its own inline script and style, requests to this view only; a `?token=` in its address
  // never leaves in a Referer.
  headers.insert(
    CONTENT_SECURITY_POLICY,
    HeaderValue::from_static(
      "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
  );
  headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
  headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
  response
}

/// `GET /<name>/status`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
  name: &'a str,
  role: &'static str,
  host_pid: u32,
  version: u64,
  clients: usize,
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
  match serde_json::to_vec_pretty(value) {
    Ok(body) => {
      let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
      *response.status_mut() = status;
      response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
      response
    }
    Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
  }
}

fn error(status: StatusCode, message: &str) -> Response<ResponseBody> {
  let body = serde_json::json!({ "error": message }).to_string();
  let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
  *response.status_mut() = status;
  response
    .headers_mut()
    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
  response
}

/// The records `{ version, timestamp, patch }` (JSON) of the patches the host orders from now
/// on, until it stops being host; `None` when it is not host. The stream ends when it falls
/// `capacity` records behind: a reader that falls behind is cut off rather than let the host's
/// memory grow.
fn subscribe(replica: &Replica, capacity: usize) -> Option<mpsc::Receiver<Arc<str>>> {
  let (sender, receiver) = mpsc::channel(capacity);
  replica
    .tap_if_host(Box::new(Records(sender)))
    .then_some(receiver)
}

struct Records(mpsc::Sender<Arc<str>>);

impl Tap for Records {
  fn ordered(&mut self, version: u64, hlc: Hlc, update: &RawJson) -> bool {
    // Only a record that cannot be rendered is skipped; the stream goes on.
    let Some(record) = Received::record(version, hlc, update) else {
      return true;
    };
    let record: Arc<str> = record.get().into();
    self.0.try_send(record).is_ok()
  }
}

/// The body of `GET /<name>/events`: the records the host orders, as SSE events; it ends when
/// the host stops being host or the reader falls too far behind.
struct EventStream {
  records: mpsc::Receiver<Arc<str>>,
  heartbeat: Interval,
  /// Sent first: how long an `EventSource` waits before reconnecting (to the next host).
  preamble: Option<Bytes>,
}

impl EventStream {
  fn new(records: mpsc::Receiver<Arc<str>>) -> EventStream {
    let start = tokio::time::Instant::now() + HEARTBEAT;
    EventStream {
      records,
      heartbeat: tokio::time::interval_at(start, HEARTBEAT),
      preamble: Some(Bytes::from_static(b"retry: 500\n\n")),
    }
  }
}

fn push_event(chunk: &mut BytesMut, record: &str) {
  chunk.put_slice(b"data: ");
  chunk.put_slice(record.as_bytes());
  chunk.put_slice(b"\n\n");
}

impl Body for EventStream {
  type Data = Bytes;
  type Error = Infallible;

  fn poll_frame(
    mut self: Pin<&mut Self>,
    cx: &mut Context<'_>,
  ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
    let stream = &mut *self;
    if let Some(preamble) = stream.preamble.take() {
      return Poll::Ready(Some(Ok(Frame::data(preamble))));
    }
    match stream.records.poll_recv(cx) {
      Poll::Ready(Some(record)) => {
        // Whatever else is queued goes in the same chunk: one write for a burst.
        let mut chunk = BytesMut::new();
        push_event(&mut chunk, &record);
        while chunk.len() < MAX_CHUNK {
          match stream.records.try_recv() {
            Ok(record) => push_event(&mut chunk, &record),
            Err(_) => break,
          }
        }
        return Poll::Ready(Some(Ok(Frame::data(chunk.freeze()))));
      }
      Poll::Ready(None) => return Poll::Ready(None),
      Poll::Pending => {}
    }
    match stream.heartbeat.poll_tick(cx) {
      Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b":\n\n"))))),
      Poll::Pending => Poll::Pending,
    }
  }
}

#[cfg(test)]
mod tests {
  use crate::doc::json;

  use super::*;

  #[test]
  fn an_event_stream_that_falls_behind_is_dropped() {
    let host = Replica::new("a", json!({ "n": 0 }), 1).unwrap();
    assert!(subscribe(&host, 2).is_none(), "only a host streams");
    host.become_host();
    let mut slow = subscribe(&host, 2).unwrap();
    for _ in 0..3 {
      host.patch(r#"{"$inc":{"n":1}}"#).unwrap();
    }
    let first = slow.try_recv().unwrap();
    assert!(first.starts_with(r#"{"version":1,"timestamp":"#), "{first}");
    assert!(first.ends_with(r#","patch":{"$inc":{"n":1}}}"#), "{first}");
    assert!(slow.try_recv().is_ok());
    assert_eq!(
      slow.try_recv(),
      Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
    );
  }

  #[test]
  fn routes() {
    let cases = [
      ("/jobs", Route::Value(String::new())),
      ("/jobs/", Route::Value(String::new())),
      ("/jobs/a.b.0", Route::Value("a.b.0".into())),
      ("/jobs/status", Route::Status),
      ("/jobs/events", Route::Events),
      ("/jobs/status.code", Route::Value("status.code".into())),
      (
        "/jobs/with%20space.%C3%A9",
        Route::Value("with space.é".into()),
      ),
      ("/j%6Fbs/a", Route::Value("a".into())),
      ("/jobs/%FF", Route::NotFound),
      ("/other", Route::NotFound),
      ("/other/status", Route::NotFound),
      ("/", Route::Page),
      ("", Route::NotFound),
      ("/jobsx", Route::NotFound),
    ];
    for (path, expected) in cases {
      assert_eq!(route("jobs", path), expected, "{path}");
    }
  }

  #[test]
  fn addresses_display_as_socket_addresses() {
    let v4 = Address {
      host: "127.0.0.1".into(),
      port: 80,
    };
    let v6 = Address {
      host: "::1".into(),
      port: 8080,
    };
    assert_eq!(v4.to_string(), "127.0.0.1:80");
    assert_eq!(v6.to_string(), "[::1]:8080");
  }
}
