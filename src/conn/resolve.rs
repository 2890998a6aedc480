//! Resolution of a server's host and port, as split by `address::split_host_port` (the one
//! parser of address texts) or stored by a C program in `struct memcache_server`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::address::parse_port;

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
    let port = match parse_port(port.as_bytes()) {
        Some(p) if p != 0 => p,
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

    #[test]
    fn resolution() {
        assert_eq!(resolve("127.0.0.1", "0"), Err(ResolveError::BadPort));
        assert_eq!(resolve("127.0.0.1", "x"), Err(ResolveError::BadPort));
        assert_eq!(resolve("127.0.0.1", "70000"), Err(ResolveError::BadPort));
        assert_eq!(resolve("127.0.0.1", "+80"), Err(ResolveError::BadPort));
        assert!(matches!(resolve("127.0.0.1", "11211"), Ok(Endpoint::Tcp(a)) if a.len() == 1));
        assert!(matches!(resolve("::1", "11211"), Ok(Endpoint::Tcp(_))));
        assert_eq!(resolve("/run/x", "0"), Ok(Endpoint::Unix("/run/x".into())));
        assert!(matches!(
            resolve("no-such-host.invalid", "11211"),
            Err(ResolveError::NotFound(_))
        ));
    }
}
