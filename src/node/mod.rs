//! The napi layer: converts, calls, converts back. `binding` holds the functions over an
//! `External` instance that `lib/memsync.js` builds the `MemSync` class on; `js_poll` is the
//! libuv poll handle through which the JS thread's event loop reads a client's inbox.

mod binding;
mod direct;
mod js_poll;
