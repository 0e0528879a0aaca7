//! The JS thread's side of an [`Inbox`]: a libuv poll handle on the client socket, in the event
//! loop of the thread that started the instance (the main thread or a worker's).
//!
//! Node-API has no poll of a descriptor, and a second libuv linked into the addon could not touch
//! Node's loop, so the handful of libuv functions used here are Node's own, resolved when the
//! addon loads as the Node-API functions are.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

use napi::bindgen_prelude::Env;
use napi::sys::uv_loop_s;
use napi::CleanupEnvHook;

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
  _memory: HandleMemory,
}

/// An open poll handle, closed once: by [`JsPoll`]'s drop, or by the environment's cleanup when
/// a worker thread ends first (libuv refuses to close a loop with open handles).
struct Handle(Cell<*mut c_void>);

impl Handle {
  fn close(&self) {
    let handle = self.0.replace(std::ptr::null_mut());
    if !handle.is_null() {
      // SAFETY: an initialised handle of this loop's thread, closed once (the pointer is taken).
      unsafe { uv_close(handle, on_closed) };
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
  /// Starts polling `inbox`'s socket in `env`'s event loop, without keeping the process alive.
  pub fn start(env: &Env, inbox: Arc<Inbox>) -> napi::Result<JsPoll> {
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

/// The socket is readable (or closed): the JS thread reads it. Once the connection has ended the
/// handle stops, since a closed socket stays readable.
unsafe extern "C" fn on_readable(handle: *mut c_void, _status: c_int, _events: c_int) {
  // SAFETY: `data` was set at start and lives until `on_closed`.
  let data = unsafe { &*uv_handle_get_data(handle).cast::<PollData>() };
  let open = catch_unwind(AssertUnwindSafe(|| data.inbox.js_turn())).unwrap_or(false);
  if !open {
    // SAFETY: an open handle (callbacks stop once it is closing).
    unsafe { uv_poll_stop(handle) };
  }
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
  // SAFETY: set at start from `Box::into_raw`, taken back once; frees the handle's memory last.
  let data = unsafe { Box::from_raw(uv_handle_get_data(handle).cast::<PollData>()) };
  drop(data);
}
