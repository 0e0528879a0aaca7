//! The crate's one error type. Every variant has a stable string code (`ERR_...`) that reaches JS as
//! `error.code`; `binding.rs` is the only place that turns it into a `napi::Error`. [`Code`] lists
//! every code the native side produces, which JS's `MemErrors` must hold (`__test__/errors.test.mjs`).

use std::fmt;

use crate::patch::{ErrorKind, PatchError};

/// Declares [`Code`], its engine codes and the others from one table, so that no code can be
/// left out of the list JS checks `MemErrors` against.
macro_rules! codes {
  ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
    /// A stable error code, as JS sees it on `error.code`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Code {
      /// The patch engine's code for a rejected update (SEMANTICS §7).
      Engine(ErrorKind),
      $($(#[$doc])* $variant,)*
    }

    impl Code {
      /// The codes besides the engine's.
      const OTHERS: &'static [Code] = &[$(Code::$variant,)*];

      /// The code's text, e.g. `"ERR_PATH_CONFLICT"`.
      pub const fn as_str(self) -> &'static str {
        match self {
          Code::Engine(kind) => kind.code(),
          $(Code::$variant => $text,)*
        }
      }
    }
  };
}

codes! {
  /// The object's name is missing or cannot name a rendezvous file.
  InvalidName = "ERR_INVALID_NAME",
  /// An argument of the API has the wrong type or value.
  InvalidArg = "ERR_INVALID_ARG",
  /// The file of `options.file.path` cannot be read, parsed or written.
  Storage = "ERR_STORAGE",
  /// The rendezvous directory or socket cannot be used.
  Rendezvous = "ERR_RENDEZVOUS",
  /// A patch older than the last write of a path it overwrites.
  StaleWrite = "ERR_STALE_WRITE",
  /// The network already has as many writers as it allows.
  MaxWriters = "ERR_MAX_WRITERS",
  /// An RPC method that no process registered.
  RpcNotFound = "ERR_RPC_NOT_FOUND",
  /// An RPC call whose callee, or whose connection to a host, went away before it answered.
  RpcPeerLost = "ERR_RPC_PEER_LOST",
  /// The HTTP view of `options.server` cannot be served.
  Http = "ERR_HTTP",
  /// A failure of memsync itself or of Node-API, not of the caller.
  Internal = "ERR_INTERNAL",
  /// The shared log of `options.transport` (Redis) cannot be reached or used.
  Transport = "ERR_TRANSPORT",
  /// As many of this process's patches as `network.maxPending` allows wait to be ordered.
  PendingLimit = "ERR_PENDING_LIMIT",
}

impl Code {
  /// Every code the native side produces: what JS's `MemErrors` must list.
  pub fn all() -> impl Iterator<Item = Code> {
    let engine = ErrorKind::ALL.into_iter().map(Code::Engine);
    engine.chain(Code::OTHERS.iter().copied())
  }
}

/// Why an operation of the core failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
  /// The update document was rejected by the patch engine; nothing was applied.
  Patch(PatchError),
  /// The object's name is missing or cannot name a rendezvous file.
  InvalidName(String),
  /// An argument of the native API has the wrong type or value.
  InvalidArg(String),
  /// A value that JSON cannot carry, or text that is not JSON.
  BadValue(String),
  /// The file of `options.file.path` cannot be read, parsed or written.
  Storage(String),
  /// The rendezvous directory or the host's socket cannot be used.
  Rendezvous(String),
  /// A client's patch overwrites `path`, which a newer patch wrote already.
  StaleWrite {
    /// The path written by the newer patch.
    path: String,
  },
  /// A patch refused, not applied: `limit` own patches wait to be ordered already.
  PendingLimit {
    /// `network.maxPending`.
    limit: usize,
  },
  /// A writer refused: the network has `writers` of the `limit` it allows.
  MaxWriters {
    /// The writers connected.
    writers: usize,
    /// The smaller of the host's and the newcomer's `network.maxWriters`.
    limit: u32,
  },
  /// No process registered the RPC `method`.
  RpcNotFound {
    /// The dotted name called.
    method: String,
  },
  /// The process running an RPC call exited or disconnected before it answered.
  CalleeLost,
  /// An RPC call made while no host is reachable.
  NotConnected,
  /// The HTTP view cannot be served.
  Http(String),
  /// A failure of memsync itself or of Node-API.
  Internal(String),
  /// The shared log of `options.transport` cannot be reached or used.
  Transport(String),
}

/// The crate's result alias.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
  /// The code of this error.
  pub fn kind(&self) -> Code {
    match self {
      Error::Patch(err) => Code::Engine(err.kind),
      Error::InvalidName(_) => Code::InvalidName,
      Error::InvalidArg(_) => Code::InvalidArg,
      Error::BadValue(_) => Code::Engine(ErrorKind::BadValue),
      Error::Storage(_) => Code::Storage,
      Error::Rendezvous(_) => Code::Rendezvous,
      Error::StaleWrite { .. } => Code::StaleWrite,
      Error::MaxWriters { .. } => Code::MaxWriters,
      Error::PendingLimit { .. } => Code::PendingLimit,
      Error::RpcNotFound { .. } => Code::RpcNotFound,
      Error::CalleeLost | Error::NotConnected => Code::RpcPeerLost,
      Error::Http(_) => Code::Http,
      Error::Internal(_) => Code::Internal,
      Error::Transport(_) => Code::Transport,
    }
  }

  /// The `MemErrors` code JS sees on `error.code`.
  pub fn code(&self) -> &'static str {
    self.kind().as_str()
  }
}

impl fmt::Display for Error {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Error::Patch(err) => write!(f, "{err}"),
      Error::StaleWrite { path } => {
        write!(
          f,
          "Stale write: '{path}' was written by a newer patch than this one"
        )
      }
      Error::MaxWriters { writers, limit } => write!(
        f,
        "The network already has {writers} writers, the most it allows ({limit})"
      ),
      Error::RpcNotFound { method } => {
        write!(f, "The handler for \"{method}\" RPC call was not found")
      }
      Error::PendingLimit { limit } => write!(
        f,
        "{limit} patches of this process wait for the host to order them (network.maxPending): \
         this one was not applied; await earlier patches before making more"
      ),
      Error::CalleeLost => {
        f.write_str("The process running the RPC call exited or disconnected before it answered")
      }
      Error::NotConnected => f.write_str("Not connected to a host"),
      Error::InvalidName(message)
      | Error::InvalidArg(message)
      | Error::BadValue(message)
      | Error::Storage(message)
      | Error::Rendezvous(message)
      | Error::Http(message)
      | Error::Internal(message)
      | Error::Transport(message) => f.write_str(message),
    }
  }
}

impl std::error::Error for Error {}

impl From<PatchError> for Error {
  fn from(err: PatchError) -> Self {
    Error::Patch(err)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn every_code_is_listed_once() {
    let mut texts: Vec<&str> = Code::all().map(Code::as_str).collect();
    let count = texts.len();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), count);
    assert!(texts.iter().all(|text| text.starts_with("ERR_")));
  }
}
