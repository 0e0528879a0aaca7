//! Who may read the HTTP view, which holds the whole object.
//!
//! - A request must be addressed to this machine's loopback (`Host: localhost`, `127.0.0.1`,
//!   `[::1]` or another loopback address, at the view's port): a web page that rebinds its own
//!   DNS name to 127.0.0.1 sends its own name, and is refused (DNS rebinding).
//! - On Linux, a loopback connection must come from this process's user: the uid that owns the
//!   client's end of a TCP connection is listed in `/proc/net/tcp` (or `tcp6`), as identd reads
//!   it. Elsewhere, or when the connection is not listed, the uid is unknown and not checked.
//!
//! Both checks apply to a view bound to a loopback address (the default, 127.0.0.1); a view bound
//! to another address was exposed on purpose.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `host`, a `Host` header, names this machine's loopback at `port` (or at no port).
pub fn is_loopback_host(host: &str, port: u16) -> bool {
  let (name, given_port) = match host.rsplit_once(':') {
    // `[::1]` alone has colons but no port after its bracket.
    Some((name, given)) if !given.ends_with(']') => (name, Some(given)),
    _ => (host, None),
  };
  let port_matches = given_port.is_none_or(|given| given.parse() == Ok(port));
  let literal = name.strip_prefix('[').and_then(|v6| v6.strip_suffix(']'));
  let loopback = name.eq_ignore_ascii_case("localhost")
    || literal
      .unwrap_or(name)
      .parse::<IpAddr>()
      .is_ok_and(|ip| ip.is_loopback() && (literal.is_some() == ip.is_ipv6()));
  loopback && port_matches
}

/// The uid that owns the client's end of the loopback TCP connection from `client` to `server`,
/// when the kernel lists it (Linux).
pub fn client_uid(server: SocketAddr, client: SocketAddr) -> Option<u32> {
  let (server, client) = (unmapped(server), unmapped(client));
  let table = match client {
    SocketAddr::V4(_) => "/proc/net/tcp",
    SocketAddr::V6(_) => "/proc/net/tcp6",
  };
  let text = std::fs::read_to_string(table).ok()?;
  uid_in_table(&text, client, server)
}

/// An IPv4 peer of a dual-stack socket is listed in the IPv4 table.
fn unmapped(address: SocketAddr) -> SocketAddr {
  match address {
    SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
      Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
      None => address,
    },
    v4 => v4,
  }
}

/// In a `/proc/net/tcp` or `tcp6` table, the uid of the socket whose own address is `local` and
/// whose peer is `remote`.
fn uid_in_table(table: &str, local: SocketAddr, remote: SocketAddr) -> Option<u32> {
  table.lines().skip(1).find_map(|line| {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
    let (own, peer, uid) = (fields.get(1)?, fields.get(2)?, fields.get(7)?);
    (parse_address(own)? == local && parse_address(peer)? == remote).then(|| uid.parse().ok())?
  })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): each 32-bit word as the kernel
/// printed it from memory in this machine's byte order, the port as a number.
fn parse_address(text: &str) -> Option<SocketAddr> {
  let (ip, port) = text.split_once(':')?;
  let port = u16::from_str_radix(port, 16).ok()?;
  let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
  let ip = match ip.len() {
    8 => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
    32 => {
      let mut bytes = [0u8; 16];
      for (index, chunk) in bytes.chunks_mut(4).enumerate() {
        chunk.copy_from_slice(&word(ip.get(index * 8..index * 8 + 8)?)?);
      }
      IpAddr::V6(Ipv6Addr::from(bytes))
    }
    _ => return None,
  };
  Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn loopback_hosts_at_the_port() {
    for host in [
      "localhost:8080",
      "127.0.0.1:8080",
      "[::1]:8080",
      "LOCALHOST",
      "127.0.0.1",
      "[::1]",
      "127.0.0.2:8080",
    ] {
      assert!(is_loopback_host(host, 8080), "{host}");
    }
    for host in [
      "evil.example",
      "evil.example:8080",
      "127.0.0.1:8081",
      "10.0.0.1:8080",
      "localhost.evil.example:8080",
      "",
      "[::2]:8080",
      "127.0.0.1:x",
      "::1",
      "[127.0.0.1]:8080",
      "2130706433:8080",
    ] {
      assert!(!is_loopback_host(host, 8080), "{host}");
    }
  }

  // Lines as a little-endian Linux prints them.
  #[cfg(target_endian = "little")]
  #[test]
  fn the_uid_of_a_connection_is_read_from_the_table() {
    let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 65534        0 3 1 0000000000000000 20 4 30 10 -1
";
    let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let client: SocketAddr = "127.0.0.1:54321".parse().unwrap();
    assert_eq!(uid_in_table(v4, client, server), Some(65534));
    assert_eq!(uid_in_table(v4, server, client), Some(0));
    assert_eq!(
      uid_in_table(v4, "127.0.0.1:1".parse().unwrap(), server),
      None
    );

    let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:D431 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 4 1
";
    let server: SocketAddr = "[::1]:8080".parse().unwrap();
    let client: SocketAddr = "[::1]:54321".parse().unwrap();
    assert_eq!(uid_in_table(v6, client, server), Some(1000));
  }

  #[test]
  fn an_ipv4_peer_of_a_dual_stack_socket_is_unmapped() {
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:80".parse().unwrap();
    assert_eq!(unmapped(mapped), "127.0.0.1:80".parse().unwrap());
  }
}
