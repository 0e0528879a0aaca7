//! The view's token: a secret per object that opens the view where the requester's user cannot
//! be told (or is another user), and everywhere with `server: { token: true }` or a string.
//!
//! The host keeps it, with the view's URL, in `<stem>.view.json` of the private rendezvous
//! directory, where `memsync url <name>` reads it; a generated token is reused by the next host,
//! so a URL survives a failover. A request carries it as `Authorization: Bearer <token>`, or once
//! as `?token=<token>`, which sets an HttpOnly, SameSite=Strict cookie (as Jupyter does), so that
//! a browser can follow the page's own links and its event stream.

use std::io;
use std::path::Path;

use hyper::header::{AUTHORIZATION, COOKIE};
use hyper::HeaderMap;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

use crate::services::persist::{self, FileTarget};

/// Whether every request needs the token (`server.token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRule {
  /// Only a request whose user cannot be told, or is another: `server.token` unset or false.
  WhereUserUnknown,
  /// Every request; the token is generated per object (`true`), or this one (a string).
  Always(Option<String>),
}

/// `<stem>.view.json`.
#[derive(Serialize, Deserialize)]
struct ViewFile {
  url: String,
  token: String,
}

/// The token of the view described in `file`: the given one, else the one a previous host wrote
/// there, else a new one. Writes the file (0600, atomically) with `url`.
pub fn establish(file: &Path, url: &str, rule: &TokenRule) -> io::Result<String> {
  let target = FileTarget {
    path: file.to_owned(),
    follow_symlinks: false,
  };
  let previous = std::fs::read(file)
    .ok()
    .and_then(|bytes| serde_json::from_slice::<ViewFile>(&bytes).ok())
    .map(|view| view.token)
    .filter(|token| is_generated(token));
  let token = match (rule, previous) {
    (TokenRule::Always(Some(given)), _) => given.clone(),
    (_, Some(previous)) => previous,
    _ => generate()?,
  };
  let contents = serde_json::to_vec(&ViewFile {
    url: url.to_owned(),
    token: token.clone(),
  })
  .map_err(io::Error::other)?;
  persist::save(&target, &contents)?;
  Ok(token)
}

/// 32 random bytes from the operating system, as 64 hex digits.
fn generate() -> io::Result<String> {
  let mut bytes = [0u8; 32];
  getrandom::fill(&mut bytes).map_err(io::Error::other)?;
  Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn is_generated(token: &str) -> bool {
  token.len() == 64 && token.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// How a request presented the token, if it did.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
  /// In the `Authorization` header or the cookie.
  Held,
  /// As `?token=`: the response sets the cookie.
  InQuery,
}

/// Whether the request's headers or query carry `token`.
pub fn presented(
  token: &str,
  headers: &HeaderMap,
  query: Option<&str>,
  cookie: &str,
) -> Option<Presented> {
  let bearer = headers
    .get(AUTHORIZATION)
    .and_then(|value| value.to_str().ok())
    .and_then(|value| value.strip_prefix("Bearer "))
    .is_some_and(|given| same(given.trim(), token));
  let in_cookie = headers
    .get_all(COOKIE)
    .iter()
    .filter_map(|value| value.to_str().ok())
    .flat_map(|value| value.split(';'))
    .filter_map(|pair| pair.trim().split_once('='))
    .any(|(name, value)| name == cookie && same(value, token));
  if bearer || in_cookie {
    return Some(Presented::Held);
  }
  let in_query = query
    .into_iter()
    .flat_map(|query| query.split('&'))
    .filter_map(|pair| pair.split_once('='))
    .any(|(name, value)| {
      name == "token"
        && percent_decode_str(value)
          .decode_utf8()
          .is_ok_and(|value| same(&value, token))
    });
  in_query.then_some(Presented::InQuery)
}

/// Compares in a time that does not depend on where the texts differ, so that a guesser learns
/// nothing from how long a refusal takes.
fn same(given: &str, token: &str) -> bool {
  given.len() == token.len()
    && given
      .bytes()
      .zip(token.bytes())
      .fold(0u8, |diff, (a, b)| diff | (a ^ b))
      == 0
}

/// The cookie that holds the token of the view on `port`: cookies are per host, not per port.
pub fn cookie_name(port: u16) -> String {
  format!("memsync-token-{port}")
}

#[cfg(test)]
mod tests {
  use hyper::header::HeaderValue;

  use super::*;

  #[test]
  fn a_generated_token_is_kept_for_the_next_host_and_a_given_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doc.view.json");
    let first = establish(
      &file,
      "http://127.0.0.1:1/doc",
      &TokenRule::WhereUserUnknown,
    )
    .unwrap();
    assert!(is_generated(&first), "{first}");
    assert_eq!(
      establish(&file, "http://127.0.0.1:1/doc", &TokenRule::Always(None)).unwrap(),
      first
    );
    let given = TokenRule::Always(Some("open sesame".into()));
    assert_eq!(establish(&file, "u", &given).unwrap(), "open sesame");
    // A given token is not reused once the option is gone.
    let next = establish(&file, "u", &TokenRule::WhereUserUnknown).unwrap();
    assert!(is_generated(&next) && next != first);
    let text: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(text["url"], "u");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
  }

  #[test]
  fn the_token_is_read_from_the_header_the_cookie_or_the_query() {
    let token = "t0k3n";
    let cookie = cookie_name(8080);
    let with = |name, value: &str| {
      let mut headers = HeaderMap::new();
      headers.insert(name, HeaderValue::from_str(value).unwrap());
      headers
    };
    let none = HeaderMap::new();
    assert_eq!(
      presented(token, &with(AUTHORIZATION, "Bearer t0k3n"), None, &cookie),
      Some(Presented::Held)
    );
    assert_eq!(
      presented(token, &with(AUTHORIZATION, "Bearer wrong"), None, &cookie),
      None
    );
    assert_eq!(
      presented(token, &with(AUTHORIZATION, "Basic t0k3n"), None, &cookie),
      None
    );
    assert_eq!(
      presented(
        token,
        &with(COOKIE, "a=b; memsync-token-8080=t0k3n"),
        None,
        &cookie
      ),
      Some(Presented::Held)
    );
    assert_eq!(
      presented(
        token,
        &with(COOKIE, "memsync-token-8081=t0k3n"),
        None,
        &cookie
      ),
      None
    );
    assert_eq!(
      presented(token, &none, Some("x=1&token=t0k3n"), &cookie),
      Some(Presented::InQuery)
    );
    assert_eq!(presented(token, &none, Some("token=t0k3"), &cookie), None);
    assert_eq!(presented(token, &none, None, &cookie), None);
  }
}
