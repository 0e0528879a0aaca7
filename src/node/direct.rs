//! The calls JS makes for every patch and every batch of events (`patch`, `flush`, `drain`), as
//! plain Node-API callbacks instead of `#[napi]` functions.
//!
//! napi-rs 3 wraps every `#[napi]` function that takes arguments in its native-borrow
//! bookkeeping (a scope, a barrier and a deferred release per call), and reads a string argument
//! through a zeroed buffer. Measured here, `flush` cost 220 ns a call that way, and in the
//! clustered HTTP service's `perf` profile that glue and the string reads were 2.6% of all CPU,
//! about a tenth of what memsync adds per request. These callbacks convert and call as
//! `binding`'s functions do, no more; `src/node/native-header.d.ts` types them.

use std::ffi::{c_void, CStr};
use std::mem::MaybeUninit;
use std::ptr;

use napi::bindgen_prelude::{Env, External, Object};
use napi::{sys, JsError, JsValue};
use napi_derive::napi;

use super::binding::{self, ErrorCode, Instance};
use crate::error::Error;

/// Adds the callbacks to the module's exports.
#[napi(module_exports)]
fn register_direct_calls(exports: Object, env: Env) -> napi::Result<()> {
  let calls: [(&CStr, sys::napi_callback); 3] = [
    (c"patch", Some(patch)),
    (c"flush", Some(flush)),
    (c"drain", Some(drain)),
  ];
  for (name, callback) in calls {
    let mut function = ptr::null_mut();
    // SAFETY: called by napi-rs on the JS thread while the module loads, with its environment;
    // `exports` and `function` are live values of it.
    let exported = unsafe {
      sys::napi_create_function(
        env.raw(),
        name.as_ptr(),
        name.count_bytes() as isize,
        callback,
        ptr::null_mut(),
        &mut function,
      ) == sys::Status::napi_ok
        && sys::napi_set_named_property(env.raw(), exports.raw(), name.as_ptr(), function)
          == sys::Status::napi_ok
    };
    if !exported {
      return Err(napi::Error::from_reason(format!(
        "cannot export the native function {name:?}"
      )));
    }
  }
  Ok(())
}

/// `patch(instance, updateJson)`: `binding::patch`.
unsafe extern "C" fn patch(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  // SAFETY: Node calls this on the JS thread with its environment and this call's info.
  unsafe {
    call(
      env,
      info,
      "patch(instance, updateJson)",
      |instance, [update]| {
        let events = with_string(
          env,
          update,
          "patch(instance, updateJson): updateJson",
          |update| binding::patch(instance, update).map_err(Thrown),
        )?;
        string(env, &events).ok_or_else(|| cannot("return the events of a patch"))
      },
    )
  }
}

/// `flush(instance)`: `binding::flush`.
unsafe extern "C" fn flush(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  // SAFETY: as in `patch`.
  unsafe {
    call(env, info, "flush(instance)", |instance, []| {
      let replicated = binding::flush(instance);
      let mut value = ptr::null_mut();
      let made = sys::napi_get_boolean(env, replicated, &mut value);
      if made == sys::Status::napi_ok {
        Ok(value)
      } else {
        Err(cannot("return whether a flush replicated"))
      }
    })
  }
}

/// `drain(instance)`: `binding::drain`.
unsafe extern "C" fn drain(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  // SAFETY: as in `patch`.
  unsafe {
    call(env, info, "drain(instance)", |instance, []| {
      let events = binding::drain(&Env::from_raw(env), instance);
      string(env, &events).ok_or_else(|| cannot("return the drained events"))
    })
  }
}

/// Reads the instance and `N` more arguments, runs `body` and returns what it returns (null for
/// `undefined`), or throws its error as `binding`'s functions do.
///
/// # Safety
/// On the JS thread, inside a Node-API callback of `env` whose info is `info`.
unsafe fn call<const N: usize>(
  env: sys::napi_env,
  info: sys::napi_callback_info,
  signature: &str,
  body: impl FnOnce(&Instance, [sys::napi_value; N]) -> Result<sys::napi_value, Thrown>,
) -> sys::napi_value {
  let outcome = unsafe { arguments::<N>(env, info, signature) }
    .and_then(|(instance, rest)| body(instance, rest));
  match outcome {
    Ok(value) => value,
    Err(Thrown(error)) => {
      // SAFETY: on the JS thread of `env`, with no exception pending (nothing threw yet).
      unsafe { JsError::from(error).throw_into(env) };
      ptr::null_mut()
    }
  }
}

/// An error on its way to JS.
struct Thrown(napi::Error<ErrorCode>);

impl From<napi::Error<ErrorCode>> for Thrown {
  fn from(error: napi::Error<ErrorCode>) -> Thrown {
    Thrown(error)
  }
}

fn cannot(what: &str) -> Thrown {
  Thrown(binding::into_js_error(Error::Internal(format!(
    "Node-API could not {what}"
  ))))
}

fn invalid(signature: &str, what: &str) -> Thrown {
  Thrown(binding::into_js_error(Error::InvalidArg(format!(
    "{signature}: {what}"
  ))))
}

/// The instance (the first argument) and the `N` after it.
///
/// # Safety
/// As for [`call`].
unsafe fn arguments<'a, const N: usize>(
  env: sys::napi_env,
  info: sys::napi_callback_info,
  signature: &str,
) -> Result<(&'a Instance, [sys::napi_value; N]), Thrown> {
  // The instance and at most two more arguments.
  let mut argv = [ptr::null_mut(); 3];
  let mut argc = argv.len();
  let status = unsafe {
    sys::napi_get_cb_info(
      env,
      info,
      &mut argc,
      argv.as_mut_ptr(),
      ptr::null_mut(),
      ptr::null_mut(),
    )
  };
  if status != sys::Status::napi_ok {
    return Err(cannot("read the arguments"));
  }
  if argc < N + 1 {
    return Err(invalid(signature, "missing arguments"));
  }
  let mut data: *mut c_void = ptr::null_mut();
  // SAFETY: `argv[0]` is a live value of this call. napi-rs checks that the external's pointer
  // is an `External<Instance>` it made (`create_instance`) before it is read.
  let instance = unsafe {
    if sys::napi_get_value_external(env, argv[0], &mut data) != sys::Status::napi_ok {
      None
    } else {
      External::<Instance>::inner_from_raw(data)
    }
  };
  let instance =
    instance.ok_or_else(|| invalid(signature, "instance is not a MemSync instance"))?;
  let mut rest = [ptr::null_mut(); N];
  rest.copy_from_slice(&argv[1..=N]);
  Ok((instance, rest))
}

/// Bytes of a string argument read on the stack: an update almost always fits, and is then read
/// in one pass, without the pass that measures it and without an allocation.
const STACK_STRING_BYTES: usize = 512;

/// Calls `body` with the string argument `what` as UTF-8 (Node replaces lone surrogates).
///
/// # Safety
/// As for [`call`], with `value` a value of this call.
unsafe fn with_string<R>(
  env: sys::napi_env,
  value: sys::napi_value,
  what: &str,
  body: impl FnOnce(&str) -> Result<R, Thrown>,
) -> Result<R, Thrown> {
  let mut buffer = [MaybeUninit::<u8>::uninit(); STACK_STRING_BYTES];
  // SAFETY: the buffer holds `buffer.len()` bytes.
  let (status, written) =
    unsafe { copy_utf8(env, value, buffer.as_mut_ptr().cast(), buffer.len()) };
  // Node writes whole characters only (at most 4 bytes each): with room for one more left, the
  // string ended.
  if status == sys::Status::napi_ok && written + 4 < buffer.len() {
    // SAFETY: Node initialized the first `written` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), written) };
    let text = std::str::from_utf8(bytes).map_err(|_| cannot("read a string argument as UTF-8"))?;
    return body(text);
  }
  let text = unsafe { read_string(env, value, what) }?;
  body(&text)
}

/// The string argument `what` as UTF-8 (Node replaces lone surrogates).
///
/// # Safety
/// As for [`call`], with `value` a value of this call.
unsafe fn read_string(
  env: sys::napi_env,
  value: sys::napi_value,
  what: &str,
) -> Result<String, Thrown> {
  // SAFETY: a null buffer asks for the length alone.
  let (status, length) = unsafe { copy_utf8(env, value, ptr::null_mut(), 0) };
  if status == sys::Status::napi_string_expected {
    return Err(Thrown(binding::into_js_error(Error::InvalidArg(format!(
      "{what} must be a string"
    )))));
  }
  if status != sys::Status::napi_ok {
    return Err(cannot("read a string argument"));
  }
  let mut bytes = Vec::<u8>::with_capacity(length + 1);
  // SAFETY: the buffer holds `length` bytes and the terminating NUL Node writes after them.
  let (status, written) = unsafe { copy_utf8(env, value, bytes.as_mut_ptr().cast(), length + 1) };
  if status != sys::Status::napi_ok || written != length {
    return Err(cannot("read a string argument"));
  }
  // SAFETY: Node wrote `written` bytes.
  unsafe { bytes.set_len(written) };
  String::from_utf8(bytes).map_err(|_| cannot("read a string argument as UTF-8"))
}

/// Node's UTF-8 copy of the string `value` into the `capacity` bytes at `buffer`: at most
/// `capacity - 1` bytes of whole characters, then a NUL. With a null buffer, the length alone.
/// The status, and the bytes written (or the length).
///
/// # Safety
/// As for [`call`], with `value` a value of this call and `buffer` null or valid for `capacity`
/// bytes.
unsafe fn copy_utf8(
  env: sys::napi_env,
  value: sys::napi_value,
  buffer: *mut std::ffi::c_char,
  capacity: usize,
) -> (sys::napi_status, usize) {
  let mut written = 0;
  // SAFETY: as the caller promises.
  let status =
    unsafe { sys::napi_get_value_string_utf8(env, value, buffer, capacity, &mut written) };
  (status, written)
}

/// A JS string of `text`; `None` when Node-API refuses (then an exception may be pending).
///
/// # Safety
/// As for [`call`].
unsafe fn string(env: sys::napi_env, text: &str) -> Option<sys::napi_value> {
  let mut value = ptr::null_mut();
  // SAFETY: `text` is valid UTF-8 of the given length.
  let status = unsafe {
    sys::napi_create_string_utf8(env, text.as_ptr().cast(), text.len() as isize, &mut value)
  };
  (status == sys::Status::napi_ok).then_some(value)
}
