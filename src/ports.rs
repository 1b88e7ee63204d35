//! Who holds a TCP port (docs/drill-format.md, `services`): before a local
//! service starts, the port its `tcp`/`http` ready probe checks must be free,
//! or the drill would test somebody else's server. The holder is found the way
//! `ss -p` finds it: the listening socket's inode in `/proc/net/tcp{,6}`, then
//! the process with a `socket:[inode]` descriptor in `/proc/*/fd`.

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The `host:port` a `tcp` address or an `http(s)` URL points at.
pub fn address_of_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    Some(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    })
}

/// A process that holds a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its pid.
    pub pid: u32,
    /// Its command line.
    pub cmdline: String,
}

/// If something already accepts connections at `address` (`host:port` on
/// a loopback or unspecified address): the message to stop the run with,
/// naming the port and, where `/proc` tells, the process that holds it.
/// `None` if the port is free, the address is not this host's loopback, or
/// it does not resolve (the ready probe will say so).
pub fn taken(address: &str) -> Option<String> {
    // Only this host's addresses: a service listens here, and nothing is
    // sent anywhere else.
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .ok()?
        .filter(|a| a.ip().is_loopback() || a.ip().is_unspecified())
        .collect();
    let first = addrs.first()?;
    let port = first.port();
    let listening = listeners(port)
        .into_iter()
        .filter(|(ip, _)| addrs.iter().any(|a| overlaps(*ip, a.ip())))
        .map(|(_, inode)| inode)
        .collect::<Vec<_>>();
    let answers = || {
        addrs
            .iter()
            .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(500)).is_ok())
    };
    if listening.is_empty() && !answers() {
        return None;
    }
    let holders = holders(&listening);
    let who = if holders.is_empty() {
        "by a process firedrill cannot see (another user's, or in another namespace)".to_owned()
    } else {
        let names: Vec<String> = holders
            .iter()
            .map(|h| format!("pid {} ({})", h.pid, h.cmdline))
            .collect();
        format!("by {}", names.join(", "))
    };
    Some(format!("port {port} ({address}) is already taken {who}"))
}

/// Whether a socket listening on `listener` receives connections for `wanted`.
fn overlaps(listener: IpAddr, wanted: IpAddr) -> bool {
    listener.is_unspecified() || wanted.is_unspecified() || listener == wanted || {
        // An IPv4 address seen through an IPv6 socket (`::ffff:127.0.0.1`).
        match (listener, wanted) {
            (IpAddr::V6(v6), IpAddr::V4(v4)) => v6.to_ipv4_mapped() == Some(v4),
            _ => false,
        }
    }
}

/// The listening sockets on `port`: their local address and inode.
pub fn listeners(port: u16) -> Vec<(IpAddr, u64)> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            found.extend(parse_listeners(&text, port));
        }
    }
    found
}

/// Parses a `/proc/net/tcp` or `/proc/net/tcp6` table: the sockets in state
/// LISTEN (`0A`) on `port`.
pub fn parse_listeners(table: &str, port: u16) -> Vec<(IpAddr, u64)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (ip, local_port) = fields.get(1)?.split_once(':')?;
            if u16::from_str_radix(local_port, 16).ok()? != port || *fields.get(3)? != "0A" {
                return None;
            }
            let inode = fields.get(9)?.parse().ok()?;
            Some((parse_ip(ip)?, inode))
        })
        .collect()
}

/// The kernel prints addresses as 32-bit words in host byte order.
fn parse_ip(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// The processes that have one of these socket inodes open.
pub fn holders(inodes: &[u64]) -> Vec<Holder> {
    if inodes.is_empty() {
        return Vec::new();
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        });
        if holds {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            found.push(Holder {
                pid,
                cmdline: String::from_utf8_lossy(&cmdline)
                    .replace('\0', " ")
                    .trim()
                    .to_owned(),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_their_host_and_port() {
        assert_eq!(
            address_of_url("http://127.0.0.1:8080/healthz").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            address_of_url("http://localhost/").as_deref(),
            Some("localhost:80")
        );
        assert_eq!(
            address_of_url("https://[::1]/x").as_deref(),
            Some("[::1]:443")
        );
        assert_eq!(
            address_of_url("http://[::1]:9000").as_deref(),
            Some("[::1]:9000")
        );
        assert_eq!(address_of_url("ftp://x:1/"), None);
    }

    #[test]
    fn the_listen_table_is_read_in_host_byte_order() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 100 0 0 10 0
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
";
        let found = parse_listeners(table, 8080);
        if cfg!(target_endian = "little") {
            assert_eq!(found, vec![("127.0.0.1".parse().unwrap(), 4242)]);
        }
        assert_eq!(parse_listeners(table, 80).len(), 1);
        assert!(parse_listeners(table, 81).is_empty());
    }

    #[test]
    fn a_port_held_here_is_reported_with_its_holder() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let message = taken(&address).expect("a bound, listening port is taken");
        assert!(message.contains(&format!("{}", listener.local_addr().unwrap().port())));
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(listener);
        assert_eq!(taken(&address), None);
    }
}
