//! The napi layer: the native half of the JS `MemSync` class (`lib/memsync.js`). Each function
//! converts its arguments, calls the core and converts back; the only `Error -> napi::Error`
//! mapping of the crate lives here.
//!
//! The replica crosses into JS as an `External` passed to plain functions, not as a `#[napi]`
//! class: measured here, a class method call costs 0.5 to 0.7 µs in napi-rs 3 against 0.2 µs for
//! a function taking an External, and `patch()` is the hot path. Values cross as JSON text:
//! `JSON.stringify` plus `serde_json::from_str` is several times cheaper than napi's
//! per-property object conversion.

use napi::bindgen_prelude::{Env, External, Function};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;
use parking_lot::Mutex;

use crate::error::Error;
use crate::state::Replica;

/// The `code` of a JS error, e.g. `ERR_TYPE_MISMATCH`.
pub struct ErrorCode(&'static str);

impl AsRef<str> for ErrorCode {
  fn as_ref(&self) -> &str {
    self.0
  }
}

impl From<Status> for ErrorCode {
  fn from(status: Status) -> Self {
    ErrorCode(match status {
      Status::InvalidArg => "ERR_INVALID_ARG",
      _ => "ERR_INTERNAL",
    })
  }
}

type Result<T> = napi::Result<T, ErrorCode>;

fn into_js_error(err: Error) -> napi::Error<ErrorCode> {
  napi::Error::new(ErrorCode(err.code()), err.to_string())
}

fn from_napi_error(err: napi::Error) -> napi::Error<ErrorCode> {
  napi::Error::new(ErrorCode::from(err.status), err.reason.clone())
}

/// Delivers JSON batches from the Rust side to the JS facade. Not weak: while it exists, a started
/// instance keeps Node's event loop alive as a listening server does; `setRef(false)` unrefs it.
type EventSink = ThreadsafeFunction<String, (), String, Status, false>;

/// One `MemSync` instance's native state.
pub struct Instance {
  replica: Replica,
  link: Mutex<Link>,
}

/// What a started instance holds on the JS side.
struct Link {
  sink: Option<EventSink>,
  referenced: bool,
}

/// Creates the replica of `name`, seeded with the JSON text `dataJson` (an object).
#[napi]
pub fn create_instance(name: String, data_json: String) -> Result<External<Instance>> {
  let data = serde_json::from_str(&data_json).map_err(|err| {
    into_js_error(Error::BadValue(format!(
      "The data is not valid JSON: {err}"
    )))
  })?;
  let replica = Replica::new(&name, data).map_err(into_js_error)?;
  Ok(External::new(Instance {
    replica,
    link: Mutex::new(Link {
      sink: None,
      referenced: true,
    }),
  }))
}

/// Applies the update given as JSON text. Returns `[version, changes]` as JSON text, or null when
/// nothing changed. Throws with the engine's `code` and leaves the document untouched on error.
#[napi]
pub fn patch(instance: &External<Instance>, update_json: String) -> Result<Option<String>> {
  instance.replica.patch(&update_json).map_err(into_js_error)
}

/// Joins the network of the instance's name and returns the role, `'host'` or `'client'`.
/// `onEvents` receives batches of events (JSON text) that arrive from the Rust side.
#[napi(ts_args_type = "instance: ExternalObject<Instance>, onEvents: (batch: string) => void")]
pub fn start(
  env: Env,
  instance: &External<Instance>,
  on_events: Function<String, ()>,
) -> Result<String> {
  let mut sink: EventSink = on_events
    .build_threadsafe_function()
    .callee_handled::<false>()
    .build()
    .map_err(from_napi_error)?;
  let mut link = instance.link.lock();
  if !link.referenced {
    set_sink_ref(&mut sink, &env, false)?;
  }
  link.sink = Some(sink);
  Ok("host".to_owned())
}

/// Leaves the network. Dropping the event sink releases the threadsafe function, so a stopped
/// instance never keeps the process alive.
#[napi]
pub fn stop(instance: &External<Instance>) {
  instance.link.lock().sink = None;
}

/// Like `ref()`/`unref()` on `net.Server`: whether a started instance keeps the process alive.
#[napi]
pub fn set_ref(env: Env, instance: &External<Instance>, referenced: bool) -> Result<()> {
  let mut link = instance.link.lock();
  link.referenced = referenced;
  match link.sink.as_mut() {
    Some(sink) => set_sink_ref(sink, &env, referenced),
    None => Ok(()),
  }
}

/// The document and its version as JSON text `[version, data]`.
#[napi]
pub fn snapshot(instance: &External<Instance>) -> String {
  instance.replica.snapshot()
}

/// The number of patches applied so far.
#[napi]
pub fn version(instance: &External<Instance>) -> f64 {
  // A JS number holds every version this process can reach (2^53 patches).
  instance.replica.version() as f64
}

// Node-API's own ref/unref of a threadsafe function is exactly net.Server's ref()/unref(); napi-rs
// deprecates these wrappers in favour of cloning, which cannot express a runtime toggle.
#[allow(deprecated)]
fn set_sink_ref(sink: &mut EventSink, env: &Env, referenced: bool) -> Result<()> {
  let outcome = if referenced {
    sink.refer(env)
  } else {
    sink.unref(env)
  };
  outcome.map_err(from_napi_error)
}
