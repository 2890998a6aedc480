//! `pull` and `adopt`: install a record's list in this host's segment when it is newer.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use super::{connect, fetch, NetError, Record, DEFAULT_MAX_AHEAD};
use crate::address::{AddressError, ServerAddr};
use crate::registry::{DomainName, Namespace, RegistryError};

/// What offering a record to the local segment came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adopted {
    /// The domain had no segment: created with the record's list and version.
    Created,
    /// Newer than the local list, whose version `was` this: installed.
    Installed { was: u64 },
    /// The local list is that version already.
    UpToDate,
    /// The local version (`local`) is newer: nothing done.
    Older { local: u64 },
    /// The same version with another list: nothing done.
    Conflict,
}

/// Installs `record`'s list in the segment of `name` in `ns` if it is newer (creating the domain
/// if it has none). The comparison is repeated if the local list changes between it and the
/// install, which `Writer::install` re-checks under the segment lock.
pub fn adopt(ns: &Namespace, name: &DomainName, record: &Record) -> Result<Adopted, RegistryError> {
    let offered = &record.list;
    for _ in 0..3 {
        let local = match ns.open_reader(name)? {
            Some(reader) => reader.read()?,
            None => match ns.create_with(name, offered)? {
                (_, true) => return Ok(Adopted::Created),
                (_, false) => continue, // created by someone else meanwhile: compare with it
            },
        };
        if offered.version < local.version {
            return Ok(Adopted::Older {
                local: local.version,
            });
        }
        if offered.version == local.version {
            return Ok(if record.same_list(&local) {
                Adopted::UpToDate
            } else {
                Adopted::Conflict
            });
        }
        match ns.open_writer(name, false)?.install(offered.clone()) {
            Ok(_) => return Ok(Adopted::Installed { was: local.version }),
            Err(RegistryError::NotNewer { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(RegistryError::Io(std::io::Error::other(format!(
        "the local list of {name} keeps changing; nothing installed"
    ))))
}

/// What a pull installed (or found no need to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// The record the server holds.
    pub record: Record,
    /// What became of it here: never [`Adopted::Conflict`], which is [`PullError::Conflict`].
    pub adopted: Adopted,
}

/// Why a pull changed nothing.
#[derive(Debug)]
pub enum PullError {
    /// The server given cannot name a server.
    BadServer(AddressError),
    /// The server could not be connected to.
    Connect { server: ServerAddr, error: NetError },
    /// The exchange failed, or the server holds something that is not a valid record.
    Fetch { server: ServerAddr, error: NetError },
    /// The server holds no record of the domain.
    NoRecord { server: ServerAddr },
    /// The server holds the local version with a different list.
    Conflict { server: ServerAddr, version: u64 },
    /// The local segment could not be read or written.
    Registry(RegistryError),
}

impl fmt::Display for PullError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullError::BadServer(e) => write!(f, "{e}"),
            PullError::Connect { server, error } => write!(f, "{server}: {error}"),
            PullError::Fetch { server, error } => write!(f, "{server}: {error}; nothing changed"),
            PullError::NoRecord { server } => write!(f, "{server} holds no record of the domain"),
            PullError::Conflict { server, version } => write!(
                f,
                "conflict: {server} holds version {version} with a different list than this \
                 host's; nothing changed"
            ),
            PullError::Registry(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PullError {}

/// Fetches the record of `name` from `server` and [`adopt`]s it in `ns`. Every wait on the server is
/// bounded by `timeout`; a record dated more than [`DEFAULT_MAX_AHEAD`] ahead is refused.
pub fn pull(
    ns: &Namespace,
    name: &DomainName,
    server: &ServerAddr,
    timeout: Duration,
) -> Result<Pulled, PullError> {
    pull_within(ns, name, server, timeout, DEFAULT_MAX_AHEAD)
}

/// [`pull`], refusing a record dated more than `max_ahead` after the local clock
/// ([`PullError::Fetch`] with [`NetError::Invalid`], whose error says how far ahead).
pub fn pull_within(
    ns: &Namespace,
    name: &DomainName,
    server: &ServerAddr,
    timeout: Duration,
    max_ahead: Duration,
) -> Result<Pulled, PullError> {
    server.check().map_err(PullError::BadServer)?;
    let mut slot = connect(server, timeout).map_err(|error| PullError::Connect {
        server: server.clone(),
        error,
    })?;
    let record = match slot.exchange(&mut Vec::new(), |conn, wbuf| {
        fetch(conn, wbuf, name, max_ahead)
    }) {
        Ok(Some(record)) => record,
        Ok(None) => {
            return Err(PullError::NoRecord {
                server: server.clone(),
            })
        }
        Err(error) => {
            return Err(PullError::Fetch {
                server: server.clone(),
                error,
            })
        }
    };
    match adopt(ns, name, &record).map_err(PullError::Registry)? {
        Adopted::Conflict => Err(PullError::Conflict {
            server: server.clone(),
            version: record.list.version,
        }),
        adopted => Ok(Pulled { record, adopted }),
    }
}
