//! A domain's server list as ordinary Rust values, and the rules every list obeys whether it is
//! about to be written or has just been read from a segment someone else wrote.
#![forbid(unsafe_code)]

use super::layout::{HOST_SIZE, MAX_SERVERS};
use super::RegistryError;
use crate::address::ServerAddr;
use crate::hash::Distribution;

pub use crate::address::MAX_HOST_LEN;

/// The segment keeps a host NUL-terminated in `HOST_SIZE` bytes: any address host fits.
const _: () = assert!(HOST_SIZE == MAX_HOST_LEN + 1);

/// Largest replica count a list may carry (the field is reserved for later; 1 means none).
pub const MAX_REPLICAS: u32 = MAX_SERVERS as u32;

/// One server of a domain: the library's one address type.
pub type ServerEntry = ServerAddr;

/// Checks one server of a list on its own: a valid address ([`ServerAddr::check`]) with a weight
/// of at least 1 (a published list says what it means; 0 would only mean 1). The message names
/// the problem and the entry.
pub fn check_entry(server: &ServerAddr) -> Result<(), String> {
    server.check().map_err(|e| e.reason().to_owned())?;
    if server.weight == 0 {
        return Err(format!("{server} has weight 0 (the minimum is 1)"));
    }
    Ok(())
}

/// A domain's published list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainList {
    /// Date-derived and always increasing; assigned by [`super::Writer::update`].
    pub version: u64,
    pub distribution: Distribution,
    /// Reserved for replication; 1 means each key lives on one server.
    pub replicas: u32,
    pub servers: Vec<ServerEntry>,
}

impl DomainList {
    /// An empty list: what a new domain starts with.
    pub fn empty(version: u64) -> DomainList {
        DomainList {
            version,
            distribution: Distribution::KetamaMd5,
            replicas: 1,
            servers: Vec::new(),
        }
    }

    /// Checks everything a writer must not publish: too many servers, an invalid entry, a server
    /// listed twice, a replica count out of range.
    pub fn validate(&self) -> Result<(), RegistryError> {
        if self.servers.len() > MAX_SERVERS {
            return Err(RegistryError::TooManyServers);
        }
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return Err(RegistryError::BadEntry(format!(
                "replica count {} is outside 1..={MAX_REPLICAS}",
                self.replicas
            )));
        }
        for (i, server) in self.servers.iter().enumerate() {
            check_entry(server)
                .map_err(|why| RegistryError::BadEntry(format!("server {}: {why}", i + 1)))?;
        }
        if let Some(dup) = first_duplicate(&self.servers) {
            return Err(RegistryError::BadEntry(format!(
                "server {dup} is listed twice"
            )));
        }
        Ok(())
    }

    /// Replaces the servers with `given`, in that order. A server given with a weight gets it;
    /// one given without keeps the weight it has in the list, or gets 1 if it is new: replacing
    /// a list never loses weights nobody asked to change.
    pub fn replace_servers(&mut self, given: Vec<(ServerEntry, Option<u32>)>) {
        let servers = given
            .into_iter()
            .map(|(mut server, weight)| {
                server.weight = weight.unwrap_or_else(|| {
                    self.servers
                        .iter()
                        .find(|s| s.same_server(&server))
                        .map_or(crate::address::DEFAULT_WEIGHT, |s| s.weight)
                });
                server
            })
            .collect();
        self.servers = servers;
    }

    /// The position of a server in the list, if present.
    pub fn find(&self, host: &str, port: u16) -> Option<usize> {
        let probe = ServerAddr::new(host, port);
        self.servers.iter().position(|s| s.same_server(&probe))
    }
}

/// The first entry that repeats an earlier one. Lists are at most [`MAX_SERVERS`] long and this
/// runs once per list change, so the quadratic scan costs at most 32k cheap comparisons.
fn first_duplicate(servers: &[ServerEntry]) -> Option<&ServerEntry> {
    servers
        .iter()
        .enumerate()
        .find(|(i, s)| servers[..*i].iter().any(|earlier| earlier.same_server(s)))
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, port: u16) -> ServerEntry {
        ServerEntry {
            host: host.to_owned(),
            port,
            weight: 1,
            tls: false,
        }
    }

    #[test]
    fn entries() {
        assert_eq!(check_entry(&entry("mc1.example.com", 11211)), Ok(()));
        assert_eq!(check_entry(&entry("::1", 11211)), Ok(()));
        assert_eq!(check_entry(&entry("/run/mc.sock", 0)), Ok(()));
        assert_eq!(check_entry(&entry(&"h".repeat(255), 1)), Ok(()));

        let bad = [
            (entry("", 11211), "empty host"),
            (entry(&"h".repeat(256), 1), "256 bytes"),
            (entry("a b", 1), "whitespace"),
            (entry("a\0", 1), "control"),
            (entry("a\x7f", 1), "control"),
            (entry("mc1", 0), "port 0"),
            (entry("/run/mc.sock", 11211), "must have port 0"),
            (
                ServerEntry {
                    weight: 0,
                    ..entry("mc1", 1)
                },
                "weight 0",
            ),
        ];
        for (e, why) in bad {
            let msg = check_entry(&e).unwrap_err();
            assert!(msg.contains(why), "{e:?}: {msg}");
        }
    }

    #[test]
    fn display() {
        assert_eq!(entry("mc1", 11211).to_string(), "mc1:11211");
        assert_eq!(entry("::1", 11211).to_string(), "[::1]:11211");
        assert_eq!(entry("/run/mc.sock", 0).to_string(), "/run/mc.sock");
    }

    #[test]
    fn replacing_servers_keeps_their_weights() {
        let weighted = |host: &str, port, weight| ServerEntry {
            weight,
            ..entry(host, port)
        };
        let mut list = DomainList::empty(1);
        list.servers = vec![weighted("a", 1, 3), weighted("b", 2, 5)];
        list.replace_servers(vec![
            (entry("A", 1), None),
            (entry("c", 3), None),
            (entry("b", 2), Some(2)),
        ]);
        assert_eq!(
            list.servers,
            [
                weighted("A", 1, 3),
                weighted("c", 3, 1),
                weighted("b", 2, 2)
            ]
        );
    }

    #[test]
    fn lists() {
        let mut list = DomainList::empty(1);
        list.validate().unwrap();
        list.servers = vec![entry("a", 1), entry("b", 1), entry("a", 2)];
        assert!(list.validate().is_ok());
        assert_eq!(list.find("A", 2), Some(2));
        assert_eq!(list.find("a", 3), None);

        list.servers.push(entry("B", 1));
        let err = list.validate().unwrap_err();
        assert!(matches!(&err, RegistryError::BadEntry(m) if m.contains("B:1 is listed twice")));

        list.servers = vec![entry("/s", 0), entry("/S", 0)];
        assert!(list.validate().is_ok(), "socket paths are case-sensitive");

        list.servers = vec![entry("a", 1), entry("b", 0)];
        let err = list.validate().unwrap_err().to_string();
        assert!(err.contains("server 2") && err.contains("port 0"), "{err}");

        list.servers = (0..=MAX_SERVERS as u16)
            .map(|p| entry("h", p + 1))
            .collect();
        assert!(matches!(
            list.validate(),
            Err(RegistryError::TooManyServers)
        ));
        list.servers.pop();
        assert!(list.validate().is_ok());

        list.replicas = 0;
        assert!(matches!(list.validate(), Err(RegistryError::BadEntry(_))));
    }
}
