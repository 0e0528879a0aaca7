//! The JS thread's side of an [`Inbox`]: a libuv poll handle on the client socket, in the event
//! loop of the thread that started the instance (the main thread or a worker's).
//!
//! Node-API has no poll of a descriptor, and a second libuv linked into the addon could not touch
//! Node's loop, so the handful of libuv functions used here are Node's own, resolved when the
//! addon loads as the Node-API functions are.
//!
//! What a turn received reaches JS from the same callback: it calls the facade's drain itself
//! (`napi_make_callback`, which runs the microtasks after it as any libuv callback of Node's
//! does) instead of waking its own thread through the threadsafe function. That wake-up is an
//! eventfd write, one more turn of the event loop and a read, on the path of every patch a
//! client receives.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

use napi::bindgen_prelude::{Env, Function, FunctionRef, JsValue};
use napi::sys::{self, uv_loop_s};
use napi::CleanupEnvHook;

use crate::core::replica::Replica;
use crate::transport::local::inbox::Inbox;

/// libuv's `UV_POLL` handle type and poll events (uv.h).
const UV_POLL: c_int = 8;
const UV_READABLE: c_int = 1;
const UV_DISCONNECT: c_int = 4;

type PollCallback = unsafe extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
type CloseCallback = unsafe extern "C" fn(handle: *mut c_void);

extern "C" {
  fn uv_handle_size(kind: c_int) -> usize;
  fn uv_poll_init(event_loop: *mut uv_loop_s, handle: *mut c_void, fd: c_int) -> c_int;
  fn uv_poll_start(handle: *mut c_void, events: c_int, callback: PollCallback) -> c_int;
  fn uv_poll_stop(handle: *mut c_void) -> c_int;
  fn uv_close(handle: *mut c_void, callback: CloseCallback);
  fn uv_unref(handle: *mut c_void);
  fn uv_handle_set_data(handle: *mut c_void, data: *mut c_void);
  fn uv_handle_get_data(handle: *const c_void) -> *mut c_void;
}

/// The memory of a poll handle: libuv's size, in words so that it is aligned for the struct.
type HandleMemory = Box<[u64]>;

/// What a handle's `data` points to; freed with the handle once libuv has closed it.
struct PollData {
  inbox: Arc<Inbox>,
  replica: Arc<Replica>,
  /// Released when the handle is closed, while the environment still runs (see `Handle::close`).
  drain: RefCell<Option<JsDrain>>,
  _memory: HandleMemory,
}

/// The facade's drain, called from the poll callback.
struct JsDrain {
  env: sys::napi_env,
  function: FunctionRef<(), ()>,
  async_context: sys::napi_async_context,
}

impl JsDrain {
  fn new(env: &Env, function: FunctionRef<(), ()>) -> napi::Result<JsDrain> {
    let name = env.create_string("memsync")?;
    let mut async_context = std::ptr::null_mut();
    // SAFETY: called on the JS thread with a live string; the context is destroyed in `drop`.
    let status = unsafe {
      sys::napi_async_init(
        env.raw(),
        std::ptr::null_mut(),
        name.raw(),
        &mut async_context,
      )
    };
    if status != sys::Status::napi_ok {
      return Err(napi::Error::from_reason(
        "cannot create the poll's async context",
      ));
    }
    Ok(JsDrain {
      env: env.raw(),
      function,
      async_context,
    })
  }
}

impl Drop for JsDrain {
  fn drop(&mut self) {
    // SAFETY: dropped on the JS thread, while the environment runs (see `Handle::close`).
    unsafe { sys::napi_async_destroy(self.env, self.async_context) };
  }
}

impl PollData {
  /// Calls the facade's drain as a libuv callback of Node's calls into JS; when it cannot (the
  /// handle was closed, or Node-API refused), the threadsafe function wakes JS instead.
  fn drain_in_js(&self) {
    if !self.call_drain() {
      self.replica.nudge();
    }
  }

  /// Whether the drain was called. Nothing of the handle is touched after the call: JS may close
  /// it.
  fn call_drain(&self) -> bool {
    let drain = self.drain.borrow();
    let Some(js) = drain.as_ref() else {
      return false;
    };
    let (env, async_context) = (js.env, js.async_context);
    let mut scope = std::ptr::null_mut();
    // SAFETY: on the JS thread, outside any JS call: a scope for the handles made below.
    if unsafe { sys::napi_open_handle_scope(env, &mut scope) } != sys::Status::napi_ok {
      return false;
    }
    let function = js
      .function
      .borrow_back(&Env::from_raw(env))
      .map(|f: Function<(), ()>| f.value().value);
    drop(drain);
    let mut global = std::ptr::null_mut();
    // SAFETY: `env` is this thread's live environment, `scope` is open; a throw in the drain is
    // handed to Node as an uncaught exception, as the threadsafe function's call would.
    unsafe {
      let called = match function {
        Ok(function) if sys::napi_get_global(env, &mut global) == sys::Status::napi_ok => {
          let status = sys::napi_make_callback(
            env,
            async_context,
            global,
            function,
            0,
            std::ptr::null(),
            std::ptr::null_mut(),
          );
          if status == sys::Status::napi_pending_exception {
            let mut error = std::ptr::null_mut();
            if sys::napi_get_and_clear_last_exception(env, &mut error) == sys::Status::napi_ok {
              sys::napi_fatal_exception(env, error);
            }
          }
          true
        }
        _ => false,
      };
      sys::napi_close_handle_scope(env, scope);
      called
    }
  }
}

/// An open poll handle, closed once: by [`JsPoll`]'s drop, or by the environment's cleanup when
/// a worker thread ends first (libuv refuses to close a loop with open handles).
struct Handle(Cell<*mut c_void>);

impl Handle {
  /// Closes the handle and releases its JS function now: libuv frees the handle later, when an
  /// ending worker's environment may be gone.
  fn close(&self) {
    let handle = self.0.replace(std::ptr::null_mut());
    if !handle.is_null() {
      // SAFETY: an initialised handle of this loop's thread, closed once (the pointer is taken);
      // its data lives until `on_closed`.
      unsafe {
        let data = &*uv_handle_get_data(handle).cast::<PollData>();
        let released = data.drain.borrow_mut().take();
        drop(released);
        uv_close(handle, on_closed);
      }
    }
  }
}

/// The JS event loop polling an inbox's socket; stops polling when dropped.
pub struct JsPoll {
  inbox: Arc<Inbox>,
  handle: Rc<Handle>,
  env: Env,
  cleanup: Option<CleanupEnvHook<()>>,
}

impl JsPoll {
  /// Starts polling `inbox`'s socket in `env`'s event loop, without keeping the process alive;
  /// what a turn receives is handed to `drain` (the facade's), which empties `replica`'s events.
  pub fn start(
    env: &Env,
    inbox: Arc<Inbox>,
    replica: Arc<Replica>,
    drain: FunctionRef<(), ()>,
  ) -> napi::Result<JsPoll> {
    let drain = JsDrain::new(env, drain)?;
    let event_loop = env.get_uv_event_loop()?;
    // SAFETY: `uv_handle_size` only reads a table.
    let words = unsafe { uv_handle_size(UV_POLL) }.div_ceil(8);
    let mut memory: HandleMemory = vec![0u64; words].into_boxed_slice();
    let handle = memory.as_mut_ptr().cast::<c_void>();
    let fd = inbox.socket().as_raw_fd();
    // SAFETY: `handle` is memory of libuv's size for a poll handle, owned by `PollData` until
    // `on_closed`; the socket stays open as long as the inbox, which `PollData` holds.
    let status = unsafe { uv_poll_init(event_loop, handle, fd) };
    if status != 0 {
      return Err(napi::Error::from_reason(format!(
        "cannot poll the host socket (libuv error {status})"
      )));
    }
    let data = Box::new(PollData {
      inbox: inbox.clone(),
      replica,
      drain: RefCell::new(Some(drain)),
      _memory: memory,
    });
    // SAFETY: the handle is initialised; `on_closed` takes `data` back.
    unsafe {
      uv_handle_set_data(handle, Box::into_raw(data).cast());
      uv_unref(handle);
    }
    let handle = Rc::new(Handle(Cell::new(handle)));
    // SAFETY: the handle is initialised and open.
    if unsafe { uv_poll_start(handle.0.get(), UV_READABLE | UV_DISCONNECT, on_readable) } != 0 {
      handle.close();
      return Err(napi::Error::from_reason("cannot poll the host socket"));
    }
    let closer = handle.clone();
    let cleanup = match env.add_env_cleanup_hook((), move |()| closer.close()) {
      Ok(cleanup) => cleanup,
      Err(err) => {
        handle.close();
        return Err(err);
      }
    };
    inbox.claim_for_js();
    Ok(JsPoll {
      inbox,
      handle,
      env: *env,
      cleanup: Some(cleanup),
    })
  }

  /// The inbox polled.
  pub fn inbox(&self) -> &Arc<Inbox> {
    &self.inbox
  }
}

impl Drop for JsPoll {
  fn drop(&mut self) {
    if let Some(cleanup) = self.cleanup.take() {
      let _ = self.env.remove_env_cleanup_hook(cleanup);
    }
    self.handle.close();
  }
}

/// The socket is readable (or closed): the JS thread reads it, then drains what it brought. Once
/// the connection has ended the handle stops, since a closed socket stays readable.
unsafe extern "C" fn on_readable(handle: *mut c_void, _status: c_int, _events: c_int) {
  // SAFETY: `data` was set at start and lives until `on_closed`, which libuv calls in a later
  // turn than this callback, even if JS closes the handle during it.
  let data = unsafe { &*uv_handle_get_data(handle).cast::<PollData>() };
  let deliver = data.replica.claim_wake();
  let open = catch_unwind(AssertUnwindSafe(|| data.inbox.js_turn())).unwrap_or(false);
  if !open {
    // SAFETY: an open handle (callbacks stop once it is closing).
    unsafe { uv_poll_stop(handle) };
  }
  if deliver {
    data.drain_in_js();
  }
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
  // SAFETY: set at start from `Box::into_raw`, taken back once; frees the handle's memory last.
  let data = unsafe { Box::from_raw(uv_handle_get_data(handle).cast::<PollData>()) };
  drop(data);
}
