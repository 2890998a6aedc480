//! Server address forms (`host:port`, `[v6]:port`, bare IPv6, unix socket paths) and resolution.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

pub const DEFAULT_PORT: &str = "11211";

/// Splits a `mc_server_add4`-style address into host and port strings, the way spec [D3] says:
/// no port means 11211, `[v6]:port` drops the brackets, a bare IPv6 literal is all host, a path
/// (leading `/`) is a unix socket with port "0" and any trailing `:<digits>` ignored so that
/// `hostname + ":" + port` round-trips. An empty host means `localhost`.
pub fn split_host_port(spec: &[u8]) -> (&[u8], &[u8]) {
    const LOCALHOST: &[u8] = b"localhost";
    if spec.is_empty() {
        return (LOCALHOST, DEFAULT_PORT.as_bytes());
    }
    if spec[0] == b'/' {
        let path = match spec.iter().rposition(|&b| b == b':') {
            Some(colon)
                if colon + 1 < spec.len() && spec[colon + 1..].iter().all(u8::is_ascii_digit) =>
            {
                &spec[..colon]
            }
            _ => spec,
        };
        return (path, b"0");
    }
    if spec[0] == b'[' {
        if let Some(close) = spec.iter().position(|&b| b == b']') {
            let host = &spec[1..close];
            let port = match spec.get(close + 1) {
                Some(b':') if close + 2 < spec.len() => &spec[close + 2..],
                _ => DEFAULT_PORT.as_bytes(),
            };
            return (host, port);
        }
    }
    let colons = spec.iter().filter(|&&b| b == b':').count();
    if colons != 1 {
        return (spec, DEFAULT_PORT.as_bytes());
    }
    let colon = spec.iter().position(|&b| b == b':').unwrap_or(spec.len());
    let host = if colon == 0 {
        LOCALHOST
    } else {
        &spec[..colon]
    };
    let port = &spec[colon + 1..];
    (
        host,
        if port.is_empty() {
            DEFAULT_PORT.as_bytes()
        } else {
            port
        },
    )
}

/// Where a server can be reached, resolved once when it is added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(Vec<SocketAddr>),
    Unix(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    BadPort,
    NotFound(String),
}

impl ResolveError {
    pub fn message(&self) -> String {
        match self {
            ResolveError::BadPort => "port is not a number from 1 to 65535".to_string(),
            ResolveError::NotFound(why) => why.clone(),
        }
    }
}

/// Resolves a host and port as given to `mc_server_add*`. A host starting with `/` is a unix
/// socket path and is not looked up.
pub fn resolve(host: &str, port: &str) -> Result<Endpoint, ResolveError> {
    if host.starts_with('/') {
        return Ok(Endpoint::Unix(PathBuf::from(host)));
    }
    let port: u16 = match port.parse() {
        Ok(p) if p != 0 => p,
        _ => return Err(ResolveError::BadPort),
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| ResolveError::NotFound(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(ResolveError::NotFound("no addresses".into()));
    }
    Ok(Endpoint::Tcp(addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (String, String) {
        let (h, p) = split_host_port(s.as_bytes());
        (
            String::from_utf8(h.to_vec()).unwrap(),
            String::from_utf8(p.to_vec()).unwrap(),
        )
    }

    #[test]
    fn address_forms() {
        let cases = [
            ("", "localhost", "11211"),
            ("host", "host", "11211"),
            ("host:1234", "host", "1234"),
            ("host:", "host", "11211"),
            (":99", "localhost", "99"),
            ("[::1]:11300", "::1", "11300"),
            ("[::1]", "::1", "11211"),
            ("[fe80::1]:", "fe80::1", "11211"),
            ("::1", "::1", "11211"),
            ("2001:db8::7", "2001:db8::7", "11211"),
            ("/tmp/mc.sock", "/tmp/mc.sock", "0"),
            ("/tmp/mc.sock:0", "/tmp/mc.sock", "0"),
            ("/tmp/a:b", "/tmp/a:b", "0"),
        ];
        for (input, host, port) in cases {
            assert_eq!(
                split(input),
                (host.to_string(), port.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn resolution() {
        assert_eq!(resolve("127.0.0.1", "0"), Err(ResolveError::BadPort));
        assert_eq!(resolve("127.0.0.1", "x"), Err(ResolveError::BadPort));
        assert_eq!(resolve("127.0.0.1", "70000"), Err(ResolveError::BadPort));
        assert!(matches!(resolve("127.0.0.1", "11211"), Ok(Endpoint::Tcp(a)) if a.len() == 1));
        assert!(matches!(resolve("::1", "11211"), Ok(Endpoint::Tcp(_))));
        assert_eq!(resolve("/run/x", "0"), Ok(Endpoint::Unix("/run/x".into())));
        assert!(matches!(
            resolve("no-such-host.invalid", "11211"),
            Err(ResolveError::NotFound(_))
        ));
    }
}
