//! The crate's one error type. Every variant has a stable string code (`ERR_...`) that reaches JS as
//! `error.code`; `binding.rs` is the only place that turns it into a `napi::Error`.

use std::fmt;

use crate::patch::PatchError;

/// Why an operation of the core failed.
#[derive(Debug)]
pub enum Error {
  /// The update document was rejected by the patch engine; nothing was applied.
  Patch(PatchError),
  /// The object's name is missing or cannot name a rendezvous file.
  InvalidName(String),
  /// A value that JSON cannot carry, or text that is not JSON.
  BadValue(String),
  /// The file of `options.file.path` cannot be read, parsed or written.
  Storage(String),
}

/// The crate's result alias.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
  /// The `MemErrors` code JS sees on `error.code`.
  pub fn code(&self) -> &'static str {
    match self {
      Error::Patch(err) => err.kind.code(),
      Error::InvalidName(_) => "ERR_INVALID_NAME",
      Error::BadValue(_) => "ERR_BAD_VALUE",
      Error::Storage(_) => "ERR_STORAGE",
    }
  }
}

impl fmt::Display for Error {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Error::Patch(err) => write!(f, "{err}"),
      Error::InvalidName(message) | Error::BadValue(message) | Error::Storage(message) => {
        f.write_str(message)
      }
    }
  }
}

impl std::error::Error for Error {}

impl From<PatchError> for Error {
  fn from(err: PatchError) -> Self {
    Error::Patch(err)
  }
}
