//! The napi layer: the native half of the JS `MemSync` class (`lib/memsync.js`). Each function
//! converts its arguments, calls the core and converts back; the only `Error -> napi::Error`
//! mapping of the crate lives here.
//!
//! The replica crosses into JS as an `External` passed to plain functions, not as a `#[napi]`
//! class: measured here, a class method call costs 0.5 to 0.7 µs in napi-rs 3 against 0.2 µs for
//! a function taking an External, and `patch()` is the hot path; the calls made per patch
//! (`patch`, `flush`, `drain`) skip napi-rs's glue altogether (`direct`). Values cross as JSON text:
//! `JSON.stringify` plus `serde_json::from_str` is several times cheaper than napi's
//! per-property object conversion.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{spawn, Env, External, Function, FunctionRef, PromiseRaw};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{JsString, Status};
use napi_derive::napi;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::core::events::Kind;
use crate::core::message::{PeerInfo, RawJson, RemoteError};
use crate::core::replica::{Replica, DEFAULT_MAX_PENDING};
use crate::error::{Code, Error};
use crate::node::js_poll::JsPoll;
use crate::services::http::{Address, TokenRule, View};
use crate::services::persist::FileTarget;
use crate::services::Services;
use crate::transport::local::connection::Budget;
use crate::transport::local::inbox::InboxSlot;
use crate::transport::local::lease::DEFAULT_HOST_TIMEOUT;
use crate::transport::local::peer;
use crate::transport::local::probe;
use crate::transport::local::rendezvous::{self, Rendezvous};
use crate::transport::redis::address::Target;
use crate::transport::redis::bridge::{Durability, Shared};
use crate::transport::redis::connect;
use crate::transport::redis::log::{self, Keys};
use crate::transport::redis::machines;
use crate::transport::redis::snapshot::Compaction;

/// The `code` of a JS error, e.g. `ERR_TYPE_MISMATCH`.
pub(super) struct ErrorCode(&'static str);

impl AsRef<str> for ErrorCode {
  fn as_ref(&self) -> &str {
    self.0
  }
}

type Result<T> = napi::Result<T, ErrorCode>;

/// The one conversion of the crate's errors into JS errors: `code` and message.
pub(super) fn into_js_error(err: Error) -> napi::Error<ErrorCode> {
  napi::Error::new(ErrorCode(err.code()), err.to_string())
}

/// Node-API refusing a call is the caller's fault only for a bad argument.
fn from_napi_error(err: napi::Error) -> napi::Error<ErrorCode> {
  into_js_error(match err.status {
    Status::InvalidArg => Error::InvalidArg(err.reason.clone()),
    _ => Error::Internal(err.reason.clone()),
  })
}

/// Wakes the JS facade to drain the events that arrived from the network. Not weak: while it
/// exists, a started instance keeps Node's event loop alive as a listening server does;
/// `setRef(false)` unrefs it.
type Waker = ThreadsafeFunction<(), (), (), Status, false>;

/// One `MemSync` instance's native state.
pub struct Instance {
  replica: Arc<Replica>,
  dir: Option<PathBuf>,
  services: Arc<Services>,
  link: Mutex<Link>,
  /// Where the client task offers its socket to this thread's event loop.
  inboxes: Arc<InboxSlot>,
  /// The client socket this thread's event loop polls (see `inbox`). Touched on the JS thread
  /// only.
  js_poll: RefCell<Option<JsPoll>>,
  /// The facade's drain (`start`'s `onWake`), which a poll calls after reading; JS thread only.
  on_wake: RefCell<Option<FunctionRef<(), ()>>>,
}

/// What a started instance holds.
struct Link {
  waker: Option<Arc<Mutex<Waker>>>,
  referenced: bool,
  peer: Option<(watch::Sender<bool>, JoinHandle<()>)>,
  /// What the connections buffer while the instance is host.
  budget: Option<Arc<Budget>>,
}

/// What an instance does while it is host, besides ordering patches.
#[napi(object)]
pub struct HostServices {
  /// Saves the object to this file (`options.file.path`, absolute).
  pub file: Option<String>,
  /// Whether a symbolic link at `file` leads to the file (`options.file.followSymlinks`); else
  /// it is refused.
  pub follow_symlinks: Option<bool>,
  /// Serves the HTTP view on this address (`options.server.host`, default 127.0.0.1)...
  pub host: Option<String>,
  /// ...and port (`options.server.port`).
  pub port: Option<u32>,
  /// Whether every request needs the view's token (`options.server.token` true or a string);
  /// else only requests whose user cannot be told need it.
  pub token_always: Option<bool>,
  /// The token itself, when `options.server.token` is a string; else one is generated.
  pub token: Option<String>,
}

/// Creates the replica of `name`, seeded with the JSON text `dataJson` (an object). `dir` is the
/// rendezvous directory (default: per-user runtime directory).
#[napi]
pub fn create_instance(
  name: String,
  data_json: String,
  dir: Option<String>,
  services: Option<HostServices>,
) -> Result<External<Instance>> {
  let data = serde_json::from_str(&data_json).map_err(|err| {
    into_js_error(Error::BadValue(format!(
      "The data is not valid JSON: {err}"
    )))
  })?;
  let replica = Replica::new(&name, data, new_origin()).map_err(into_js_error)?;
  let services = match services {
    Some(services) => host_services(services)?,
    None => Services::default(),
  };
  Ok(External::new(Instance {
    replica: Arc::new(replica),
    dir: dir.map(PathBuf::from),
    services: Arc::new(services),
    link: Mutex::new(Link {
      waker: None,
      referenced: true,
      peer: None,
      budget: None,
    }),
    inboxes: Arc::default(),
    js_poll: RefCell::new(None),
    on_wake: RefCell::new(None),
  }))
}

fn host_services(options: HostServices) -> Result<Services> {
  let http = match options.port {
    Some(port) => {
      let port = u16::try_from(port).map_err(|_| {
        into_js_error(Error::InvalidArg(format!(
          "server.port must be a TCP port, not {port}"
        )))
      })?;
      Some(View {
        address: Address {
          host: options.host.unwrap_or_else(|| "127.0.0.1".to_owned()),
          port,
        },
        token: if options.token_always == Some(true) {
          TokenRule::Always(options.token)
        } else {
          TokenRule::WhereUserUnknown
        },
      })
    }
    None => None,
  };
  let file = options.file.map(|path| FileTarget {
    path: PathBuf::from(path),
    follow_symlinks: options.follow_symlinks.unwrap_or(false),
  });
  Ok(Services::new(file, http))
}

/// A random-enough id for this instance's patches: unique across the processes and instances
/// that may ever share a name.
fn new_origin() -> u64 {
  static COUNTER: AtomicU64 = AtomicU64::new(0);
  let mut hasher = RandomState::new().build_hasher();
  hasher.write_u32(std::process::id());
  hasher.write_u64(crate::clock::now_ms());
  hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
  hasher.finish()
}

/// Applies the update given as JSON text. Returns the events queued for JS as a JSON array, the
/// last one for this patch. Throws with the engine's `code` and leaves the document untouched on
/// error. Exported by `direct`, as are `flush` and `drain`.
pub(super) fn patch(instance: &Instance, update_json: &str) -> Result<String> {
  instance.replica.patch(update_json).map_err(into_js_error)
}

/// Sends what `patch()` queued for other processes; JS calls it once per turn of its event loop,
/// so a loop of patches costs one write. `false` when a host's patches among them do not yet
/// survive it (`replicated`).
pub(super) fn flush(instance: &Instance) -> bool {
  instance.replica.flush()
}

/// Resolves with `true` once one of this host's clients has every frame queued to it so far, or
/// none can; with `false` after `hostTimeout` (null: the default) if every client stopped
/// reading: a stopped peer is tolerated that long elsewhere too.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn replicated<'env>(
  env: &'env Env,
  instance: &External<Instance>,
  host_timeout_ms: Option<f64>,
) -> Result<PromiseRaw<'env, bool>> {
  let replica = instance.replica.clone();
  let patience =
    host_timeout_ms.map_or(DEFAULT_HOST_TIMEOUT, |ms| Duration::from_millis(ms as u64));
  env
    .spawn_future(async move {
      let in_time = tokio::time::timeout(patience, replica.replicated()).await;
      Ok(in_time.is_ok())
    })
    .map_err(from_napi_error)
}

/// Whether JS listens to `receivedPatches` or `change`, which need every received patch's update.
#[napi]
pub fn set_wants_received(instance: &External<Instance>, wanted: bool) {
  instance.replica.set_wants_received(wanted);
}

/// The events that arrived from the network, as a JSON array. Also where the JS thread takes
/// up polling a new client socket, lets go of one that ended, and claims back one that the tokio
/// task read while this thread was busy.
pub(super) fn drain(env: &Env, instance: &Instance) -> String {
  poll_inbox(env, instance);
  instance.replica.drain()
}

/// The document of the snapshot event with null `data` in the last drain, as a string, once (a
/// joined host's, handed on as it arrived instead of inside the drain's text).
#[napi(ts_return_type = "string | null")]
pub fn take_snapshot<'env>(
  env: &'env Env,
  instance: &External<Instance>,
) -> napi::Result<Option<JsString<'env>>> {
  instance
    .replica
    .take_snapshot()
    .map(|text| env.create_string(text.get()))
    .transpose()
}

/// The queued events and, last, the digest of the document they lead to, or with `whole` the
/// document: what the check of `data` against direct writes compares it with.
#[napi]
pub fn drain_for_check(instance: &External<Instance>, whole: bool) -> String {
  instance.replica.drain_for_check(whole)
}

fn poll_inbox(env: &Env, instance: &Instance) {
  let mut js_poll = instance.js_poll.borrow_mut();
  if let Some(inbox) = instance.inboxes.take() {
    // The tokio task keeps reading if the poll cannot start.
    let on_wake = instance.on_wake.borrow();
    let drain = on_wake
      .as_ref()
      .and_then(|on_wake| on_wake.borrow_back(env).ok());
    *js_poll = drain
      .and_then(|drain| drain.create_ref().ok())
      .and_then(|drain| JsPoll::start(env, inbox, instance.replica.clone(), drain).ok());
  }
  let Some(poll) = js_poll.as_ref() else {
    return;
  };
  if poll.inbox().has_ended() {
    *js_poll = None;
  } else if !poll.inbox().polled_by_js() {
    poll.inbox().claim_for_js();
  }
}

/// How an instance takes part in its network (memsync 0.5's options, checked by JS).
#[napi(object)]
pub struct StartOptions {
  /// Never become host (`clientOnly`).
  pub client_only: bool,
  /// Never join as a client (`serverOnly`).
  pub server_only: bool,
  /// What a host's connections may buffer together, in bytes (`network.maxBuffer`).
  pub max_buffer: Option<f64>,
  /// How long a silent host is waited for before it is replaced, in ms (`hostTimeout`; default
  /// 5000).
  pub host_timeout: Option<f64>,
  /// Whether JS shows diagnostic lines (`NODE_DEBUG=memsync`); while it does not, the instance
  /// does not even format them.
  pub debug: bool,
  /// The shared log across machines (`options.transport`, a Redis URL checked by
  /// `transportTarget`); none: this machine's processes only.
  pub transport: Option<String>,
  /// When a patch through `transport` resolves: `'primary'` (default) or `'replicated'`.
  pub durability: Option<String>,
}

/// Joins the network of the instance's name in the background; the outcome arrives as an event.
/// `onWake` is called (without arguments) when events are waiting to be drained.
#[napi(
  ts_args_type = "instance: ExternalObject<Instance>, onWake: () => void, options: StartOptions"
)]
pub fn start(
  env: Env,
  instance: &External<Instance>,
  on_wake: Function<(), ()>,
  options: StartOptions,
) -> Result<()> {
  let StartOptions {
    client_only,
    server_only,
    max_buffer,
    host_timeout,
    debug,
    transport,
    durability,
  } = options;
  let log = shared(transport.as_deref(), durability.as_deref())
    .map_err(|why| into_js_error(Error::InvalidArg(why)))?;
  let mut link = instance.link.lock();
  if link.peer.is_some() {
    return Ok(());
  }
  *instance.on_wake.borrow_mut() = Some(on_wake.create_ref().map_err(from_napi_error)?);
  let mut waker: Waker = on_wake
    .build_threadsafe_function()
    .callee_handled::<false>()
    .build()
    .map_err(from_napi_error)?;
  if !link.referenced {
    set_waker_ref(&mut waker, &env, false)?;
  }
  let waker = Arc::new(Mutex::new(waker));
  let wake = waker.clone();
  // NonBlocking: the caller is a tokio worker, which must never wait on the JS thread.
  instance.replica.set_waker(Some(Box::new(move || {
    wake
      .lock()
      .call((), ThreadsafeFunctionCallMode::NonBlocking);
  })));
  link.waker = Some(waker);
  let rendezvous =
    Rendezvous::new(instance.dir.clone(), instance.replica.name()).map_err(|err| {
      into_js_error(Error::Rendezvous(format!(
        "memsync '{}': {err}",
        instance.replica.name()
      )))
    })?;
  instance.replica.set_debug(debug);
  instance.replica.exchange().starting();
  let (stop, stopped) = watch::channel(false);
  let replica = instance.replica.clone();
  let services = instance.services.clone();
  let failed = instance.replica.clone();
  let budget = Budget::new(max_buffer.map_or(peer::DEFAULT_MAX_BUFFER, |bytes| bytes as usize));
  link.budget = Some(budget.clone());
  let options = peer::Options {
    client_only,
    server_only,
    budget,
    host_timeout: host_timeout.map_or(DEFAULT_HOST_TIMEOUT, |ms| Duration::from_millis(ms as u64)),
    inboxes: instance.inboxes.clone(),
    log,
  };
  let task = spawn(async move {
    peer::run(
      replica,
      rendezvous,
      options,
      services,
      stopped,
      move |failure| failed.report_failure(failure.code.as_str(), &failure.message),
    )
    .await
  });
  link.peer = Some((stop, task));
  Ok(())
}

/// Leaves the network and resolves once every task of the instance has ended. A host hands its
/// role over first. Releasing the waker afterwards means a stopped instance never keeps the
/// process alive.
#[napi(ts_return_type = "Promise<void>")]
pub fn stop<'env>(env: &'env Env, instance: &External<Instance>) -> Result<PromiseRaw<'env, ()>> {
  let peer = instance.link.lock().peer.take();
  let replica = instance.replica.clone();
  env
    .spawn_future(async move {
      if let Some((stop, task)) = peer {
        let _ = stop.send(true);
        let _ = task.await;
      }
      replica.set_waker(None);
      Ok(())
    })
    .map_err(from_napi_error)
}

/// Whether a host of this instance's name accepts connections (memsync 0.5's `hasPeers()` for an
/// instance that is not connected).
#[napi(ts_return_type = "Promise<boolean>")]
pub fn probe<'env>(
  env: &'env Env,
  instance: &External<Instance>,
) -> Result<PromiseRaw<'env, bool>> {
  let rendezvous = Rendezvous::new(instance.dir.clone(), instance.replica.name());
  env
    .spawn_future(async move {
      Ok(match rendezvous {
        Ok(rendezvous) => rendezvous.connect().await.is_ok(),
        Err(_) => false,
      })
    })
    .map_err(from_napi_error)
}

/// Releases the waker of a stopped instance (the JS side calls it once `stop()` resolved).
#[napi]
pub fn release(instance: &External<Instance>) {
  instance.link.lock().waker = None;
  instance.js_poll.borrow_mut().take();
  instance.on_wake.borrow_mut().take();
}

/// How many of this process's patches may wait to be ordered (`network.maxPending`; none: the
/// default, 100,000); past it `patch` throws `ERR_PENDING_LIMIT` and applies nothing.
#[napi]
pub fn set_max_pending(instance: &External<Instance>, limit: Option<f64>) {
  let limit = limit.map_or(DEFAULT_MAX_PENDING, |limit| limit as usize);
  instance.replica.set_max_pending(limit);
}

/// Like `ref()`/`unref()` on `net.Server`: whether a started instance keeps the process alive.
#[napi]
pub fn set_ref(env: Env, instance: &External<Instance>, referenced: bool) -> Result<()> {
  let mut link = instance.link.lock();
  link.referenced = referenced;
  match link.waker.as_ref() {
    Some(waker) => set_waker_ref(&mut waker.lock(), &env, referenced),
    None => Ok(()),
  }
}

/// Sets what the instance offers and is, as the JSON of `{ methods, roles, maxWriters }` (the
/// dotted paths of its RPC functions, `peer.roles`, `network.maxWriters`); announced when it
/// connects.
#[napi]
pub fn set_peer(instance: &External<Instance>, peer_json: String) -> Result<()> {
  let peer: PeerInfo = serde_json::from_str(&peer_json)
    .map_err(|err| into_js_error(Error::BadValue(format!("Bad peer options: {err}"))))?;
  instance.replica.exchange().configure(peer);
  Ok(())
}

/// Calls RPC `method` in another process under JS's id `id`, with `argsJson` (a JSON array). The
/// outcome arrives as a `["reply", id, error, result?]` event.
#[napi]
pub fn call(
  instance: &External<Instance>,
  id: i64,
  method: String,
  args_json: String,
) -> Result<()> {
  let args = raw_json(args_json, "The RPC arguments")?;
  let effects = instance.replica.exchange().call(id as u64, method, args);
  instance.replica.apply(effects, true);
  Ok(())
}

/// Answers the call handed to JS as `["call", id, ...]`: `resultJson` (absent for `undefined`),
/// or `errorJson`, the JSON of `{ code?, message }`.
#[napi]
pub fn reply(
  instance: &External<Instance>,
  id: i64,
  result_json: Option<String>,
  error_json: Option<String>,
) -> Result<()> {
  let result = result_json
    .map(|text| raw_json(text, "The RPC result"))
    .transpose()?;
  let error = match error_json {
    Some(text) => Some(
      serde_json::from_str::<RemoteError>(&text)
        .map_err(|err| into_js_error(Error::BadValue(format!("Bad RPC error: {err}"))))?,
    ),
    None => None,
  };
  let effects = instance.replica.exchange().reply(id as u64, result, error);
  instance.replica.apply(effects, true);
  Ok(())
}

/// Sends `event` with `argsJson` (a JSON array) to every other process. Queued like a patch:
/// JS flushes at the end of its event loop's turn, so a loop of emits is one write.
#[napi]
pub fn emit(instance: &External<Instance>, event: String, args_json: String) -> Result<()> {
  let args = raw_json(args_json, "The event arguments")?;
  let effects = instance.replica.exchange().emit(event, args);
  instance.replica.apply(effects, false);
  Ok(())
}

/// Asks for the cross-process lock `key` under JS's id `id`; a `["g", id]` event says it is held.
/// Offline, the request waits and is sent to the next host.
#[napi]
pub fn lock(instance: &External<Instance>, id: i64, key: String) {
  let since = instance.replica.stamp();
  let effects =
    instance
      .replica
      .exchange()
      .lock(id as u64, key, since, instance.replica.time().now_ms());
  instance.replica.apply(effects, true);
}

/// Releases the lock of request `id`, or cancels the request.
#[napi]
pub fn unlock(instance: &External<Instance>, id: i64) {
  let effects = instance
    .replica
    .exchange()
    .unlock(id as u64, instance.replica.time().now_ms());
  instance.replica.apply(effects, true);
}

fn raw_json(text: String, what: &str) -> Result<RawJson> {
  RawJson::parse(text)
    .map_err(|err| into_js_error(Error::BadValue(format!("{what}: not JSON: {err}"))))
}

/// The instance's status: role, version, connected clients (a host's own, a client's host's),
/// its roles and the peers it knows (`{ pid, host, roles, methods }`), as JSON text.
#[napi]
pub fn status(instance: &External<Instance>) -> String {
  let (role, version, clients) = instance.replica.status();
  let exchange = instance.replica.exchange();
  let (peers, roles) = (exchange.peers_json(), exchange.roles_json());
  // A client reports its host's count, as memsync 0.5 did.
  let connections = exchange.host_clients().unwrap_or(clients as u64);
  drop(exchange);
  let buffered = instance
    .link
    .lock()
    .budget
    .as_ref()
    .map_or(0, |budget| budget.used());
  format!(
    r#"{{"role":"{}","version":{version},"connections":{connections},"buffered":{buffered},"roles":{roles},"peers":{peers}}}"#,
    role.name()
  )
}

/// Pings the host (client) or every client (host) under `id`; returns the pids pinged as a JSON
/// array. Each answer arrives as a `["pong", id, pid]` event.
#[napi]
pub fn ping(instance: &External<Instance>, id: i64) -> String {
  let (pids, effects) = instance.replica.exchange().ping(id as u64);
  instance.replica.apply(effects, true);
  pids
}

// Node-API's own ref/unref of a threadsafe function is exactly net.Server's ref()/unref(); napi-rs
// deprecates these wrappers in favour of cloning, which cannot express a runtime toggle.
#[allow(deprecated)]
fn set_waker_ref(waker: &mut Waker, env: &Env, referenced: bool) -> Result<()> {
  let outcome = if referenced {
    waker.refer(env)
  } else {
    waker.unref(env)
  };
  outcome.map_err(from_napi_error)
}

/// One worker thread per process: the work per patch is a few microseconds, and on small
/// machines a second worker mostly adds thread wake-ups (work stealing) between the socket
/// tasks of one instance.
#[napi_derive::module_init]
fn init() {
  if let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
    .worker_threads(1)
    .enable_all()
    .build()
  {
    napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
  }
}

// An async function's rejection loses a custom error code on its way through napi-rs, so these
// resolve with an outcome instead, `{"ok":value}` or `{"code":"ERR_...","message":...}`, and the
// JS side throws (lib/errors.js `settle`).
fn outcome<T: serde::Serialize>(result: crate::Result<T>) -> String {
  match result {
    Ok(value) => serde_json::to_string(&serde_json::json!({ "ok": value }))
      .unwrap_or_else(|err| failed_outcome(&Error::Internal(err.to_string()))),
    Err(err) => failed_outcome(&err),
  }
}

fn failed_outcome(err: &Error) -> String {
  serde_json::json!({ "code": err.code(), "message": err.to_string() }).to_string()
}

/// Saves the object to its file now if this instance is host, and resolves once it is written
/// (elsewhere the host saves): `flush()` in JS. Resolves with an outcome (see `outcome`).
#[napi(ts_return_type = "Promise<string>")]
pub fn save<'env>(
  env: &'env Env,
  instance: &External<Instance>,
) -> Result<PromiseRaw<'env, String>> {
  let services = instance.services.clone();
  env
    .spawn_future(async move {
      let saved = services.flush().await;
      Ok(outcome(saved.map_err(Error::Storage)))
    })
    .map_err(from_napi_error)
}

/// The rendezvous directory used when none is given.
#[napi]
pub fn default_dir() -> Result<String> {
  rendezvous::default_dir()
    .map(|dir| dir.to_string_lossy().into_owned())
    .map_err(|err| into_js_error(Error::Rendezvous(err.to_string())))
}

fn check_name(name: &str) -> Result<()> {
  crate::name::check(name).map_err(|message| into_js_error(Error::InvalidName(message)))
}

/// Where the host of `name` in `dir` keeps its HTTP view's URL and token (`memsync url`).
/// Throws `ERR_INVALID_NAME` for a name `MemSync` refuses.
#[napi]
pub fn view_path(dir: String, name: String) -> Result<String> {
  check_name(&name)?;
  let path = rendezvous::view_path(Path::new(&dir), &crate::name::file_stem(&name));
  Ok(path.to_string_lossy().into_owned())
}

/// Whether a host of `name` accepts connections in `dir` (the CLI's check that a name is live).
/// Throws `ERR_INVALID_NAME` for a name `MemSync` refuses.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn is_live<'env>(env: &'env Env, dir: String, name: String) -> Result<PromiseRaw<'env, bool>> {
  check_name(&name)?;
  env
    .spawn_future(async move { Ok(probe::is_live(Path::new(&dir), &name).await) })
    .map_err(from_napi_error)
}

/// The names in `dir` whose host accepts connections, `[{ name, file }]` (`name` null when the
/// file name cannot be read back); resolves with an outcome (see `outcome`).
#[napi(ts_return_type = "Promise<string>")]
pub fn live_names<'env>(env: &'env Env, dir: String) -> Result<PromiseRaw<'env, String>> {
  env
    .spawn_future(async move {
      let live = probe::live(Path::new(&dir)).await;
      Ok(outcome(live.map_err(|err| {
        Error::Rendezvous(format!("cannot list {dir}: {err}"))
      })))
    })
    .map_err(from_napi_error)
}

/// The value at the dotted `path` of the instance's object (`""`: all of it) as JSON text, or
/// nothing: read by the engine's rules, the one reader of dotted paths for the CLI.
#[napi]
pub fn read(instance: &External<Instance>, path: String) -> Option<String> {
  instance.replica.read(&path).map(|value| value.to_string())
}

/// Every `error.code` the native side produces; `MemErrors` lists these and those of JS.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
  Code::all().map(Code::as_str).collect()
}

/// The message of `ERR_RPC_NOT_FOUND` for `method`, which JS throws too when a call routed to it
/// finds no function.
#[napi]
pub fn rpc_not_found_message(method: String) -> String {
  Error::RpcNotFound { method }.to_string()
}

/// The tag of each event kind, by name (`{ own: "o", ... }`): how `lib/memsync.js` decodes the
/// events without a copy of the table (`src/events.rs`).
#[napi(ts_return_type = "Record<string, string>")]
pub fn event_tags() -> HashMap<&'static str, &'static str> {
  Kind::ALL
    .iter()
    .map(|kind| (kind.name(), kind.tag()))
    .collect()
}

/// What values and updates may be: JS checks them before they cross, with the engine's numbers.
#[napi(object)]
pub struct Limits {
  /// How many levels a document may nest (MongoDB's 100).
  pub max_depth: u32,
  /// How many levels an update may nest: a value at `maxDepth` under its operator and field.
  pub max_update_depth: u32,
  /// The most UTF-8 bytes of JSON an update may take.
  pub max_update_bytes: u32,
  /// Bytes of `mem.events` events from other processes queued for a JS thread that does not
  /// take them, past which further ones are dropped (`ERR_EVENTS_DROPPED`).
  pub max_bus_backlog: u32,
  /// Bytes of changes from other processes queued for a JS thread that does not take them, past
  /// which they give way to one snapshot and their records are lost (`ERR_CHANGES_DROPPED`).
  pub max_event_backlog: u32,
}

/// The limits JS checks (see `Limits`).
#[napi]
pub fn limits() -> Limits {
  Limits {
    max_depth: crate::patch::MAX_DEPTH as u32,
    max_update_depth: crate::patch::MAX_UPDATE_DEPTH as u32,
    max_update_bytes: crate::transport::local::codec::MAX_UPDATE_BYTES as u32,
    max_bus_backlog: crate::core::events::MAX_BUS_BACKLOG as u32,
    max_event_backlog: crate::core::events::MAX_EVENT_BACKLOG as u32,
  }
}

/// Asks the host of `name` for `{ hostPid, version, clients }` without joining; resolves with an
/// outcome (see `outcome`).
#[napi(ts_return_type = "Promise<string>")]
pub fn query_host<'env>(
  env: &'env Env,
  dir: Option<String>,
  name: String,
) -> Result<PromiseRaw<'env, String>> {
  env
    .spawn_future(async move {
      let answer = match Rendezvous::new(dir.map(PathBuf::from), &name) {
        Ok(rendezvous) => probe::query(&rendezvous).await,
        Err(err) => Err(err),
      };
      Ok(outcome(answer.map_err(|err| {
        Error::Rendezvous(format!("memsync '{name}': {err}"))
      })))
    })
    .map_err(from_napi_error)
}

/// What the Redis of `url` holds of the object `name` (`memsync status --transport`), without
/// joining it; resolves with an outcome (see `outcome`).
#[napi(ts_return_type = "Promise<string>")]
pub fn transport_status<'env>(
  env: &'env Env,
  url: String,
  name: String,
) -> Result<PromiseRaw<'env, String>> {
  let target = Target::parse(&url).map_err(|why| into_js_error(Error::InvalidArg(why)))?;
  env
    .spawn_future(async move {
      let status = async {
        let keys = Keys::of(&name);
        let (mut connection, _) = connect::primary(&target, &keys).await?;
        let failed = |err: redis::RedisError| format!("{}: {err}", target.redacted());
        let log = log::status(&mut connection, &keys).await.map_err(failed)?;
        let machines = machines::listed(&mut connection, &keys)
          .await
          .map_err(failed)?;
        let mut status = serde_json::to_value(log).map_err(|err| err.to_string())?;
        status["machines"] = serde_json::to_value(machines).map_err(|err| err.to_string())?;
        Ok::<_, String>(status)
      };
      Ok(outcome(status.await.map_err(Error::Transport)))
    })
    .map_err(from_napi_error)
}

/// Where the instance shares its object beyond this machine, from the two options.
fn shared(
  transport: Option<&str>,
  durability: Option<&str>,
) -> std::result::Result<Option<Shared>, String> {
  let durability = durability.map(Durability::parse).transpose()?;
  match (transport, durability) {
    (Some(url), durability) => Ok(Some(Shared {
      target: Target::parse(url)?,
      durability: durability.unwrap_or_default(),
      compaction: Compaction::default(),
    })),
    (None, Some(Durability::Replicated)) => {
      Err("durability 'replicated' needs a transport: a Redis URL in options.transport".into())
    }
    (None, _) => Ok(None),
  }
}

/// `options.transport` as it may be shown (its password replaced by `***`); throws
/// `ERR_INVALID_ARG` saying what is wrong with it.
#[napi]
pub fn transport_target(url: String) -> Result<String> {
  Target::parse(&url)
    .map(|target| target.redacted())
    .map_err(|why| into_js_error(Error::InvalidArg(why)))
}
