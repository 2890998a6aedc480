//! `publish`: store a domain's list as its record on every server of the domain.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use super::{
    check_publishable, connect, fetch_raw, retired_servers, store, NetError, Record, RecordError,
    Replace,
};
use crate::address::{AddressError, ServerAddr};
use crate::engine::Slot;
use crate::registry::{DomainList, DomainName, Namespace, RegistryError};

/// What one server held under the record key before the publish.
enum Held {
    Nothing,
    /// A valid record and the `gets` unique value of its item.
    Record(Record, u64),
    /// Something that is not a valid record (replaced without a second thought): why, the
    /// unique value, and the version it claims if it reads as a record at all.
    Invalid(String, u64, Option<u64>),
}

/// One server the publish talks to: its connection and what it held, or why it could not be
/// asked.
struct Peer {
    server: ServerAddr,
    state: Result<(Slot, Held), NetError>,
}

/// Connects to `server` and reads what it holds for `name`.
fn visit(server: &ServerAddr, name: &DomainName, wbuf: &mut Vec<u8>, timeout: Duration) -> Peer {
    let state = connect(server, timeout).and_then(|mut slot| {
        let held = match slot.exchange(wbuf, |conn, wbuf| fetch_raw(conn, wbuf, name))? {
            None => Held::Nothing,
            Some(raw) => match raw.decode(name) {
                Ok(record) => Held::Record(record, raw.cas),
                Err(e) => Held::Invalid(
                    e.to_string(),
                    raw.cas,
                    Record::claimed_version(&raw.data, name),
                ),
            },
        };
        Ok((slot, held))
    });
    Peer {
        server: server.clone(),
        state,
    }
}

/// Visits each of `servers` not visited yet.
fn visit_all<'a>(
    peers: &mut Vec<Peer>,
    servers: impl IntoIterator<Item = &'a ServerAddr>,
    name: &DomainName,
    wbuf: &mut Vec<u8>,
    timeout: Duration,
) {
    for server in servers {
        if !peers.iter().any(|p| p.server.same_server(server)) {
            peers.push(visit(server, name, wbuf, timeout));
        }
    }
}

/// The newest record the servers hold, if `record`'s list may be published over all of them.
fn previous_record(list: &DomainList, peers: &[Peer]) -> Result<Option<Record>, PublishError> {
    let found: Vec<(String, &Record)> = peers
        .iter()
        .filter_map(|p| match &p.state {
            Ok((_, Held::Record(record, _))) => Some((p.server.to_string(), record)),
            _ => None,
        })
        .collect();
    check_publishable(list, &found)
        .map(|newest| newest.cloned())
        .map_err(PublishError::Refused)
}

/// Why one server was not updated; the others are updated all the same.
#[derive(Debug)]
pub enum TellError {
    /// It could not be connected to or asked what it holds.
    Unreachable(NetError),
    /// Its item changed between the read and the store (another publish?); nothing was
    /// overwritten.
    Changed,
    /// The store itself failed.
    Store(NetError),
}

impl fmt::Display for TellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TellError::Unreachable(e) | TellError::Store(e) => write!(f, "{e}"),
            TellError::Changed => f.write_str(
                "the record changed during the publish (another mcadmin?); nothing overwritten, \
                 publish again",
            ),
        }
    }
}

impl std::error::Error for TellError {}

/// One server a publish told, in the order they were asked: the list's servers, the `also`
/// servers, then the retired ones.
#[derive(Debug)]
pub struct Told {
    pub server: ServerAddr,
    /// Set when the server held something that was not a valid record (why): it was replaced.
    pub replaced_invalid: Option<String>,
    pub result: Result<(), TellError>,
}

/// What a publish did. Servers that failed are in [`Published::told`] with their error; the
/// publish as a whole succeeded only if [`Published::failed`] is 0.
#[derive(Debug)]
pub struct Published {
    /// The record stored: the local list and the servers it retired.
    pub record: Record,
    /// The version of the newest record the servers held before, if any. `None` means no
    /// server knew of an earlier publish, so servers removed since then were told only if
    /// given as `also`.
    pub previous: Option<u64>,
    pub told: Vec<Told>,
}

impl Published {
    /// How many servers could not be updated.
    pub fn failed(&self) -> usize {
        self.told.iter().filter(|t| t.result.is_err()).count()
    }
}

/// Why nothing was published.
#[derive(Debug)]
pub enum PublishError {
    /// The domain has no segment on this host.
    NoDomain(DomainName),
    /// The local segment could not be read.
    Registry(RegistryError),
    /// A server given to tell as well cannot name a server.
    BadServer(AddressError),
    /// A server holds a newer version, or the same version with another list: publishing would
    /// lose it. The message names the server and what to do.
    Refused(String),
    /// The local list cannot be written as a record.
    Unpublishable(RecordError),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::NoDomain(name) => write!(f, "domain {name} does not exist"),
            PublishError::Registry(e) => write!(f, "{e}"),
            PublishError::BadServer(e) => write!(f, "{e}"),
            PublishError::Refused(why) => f.write_str(why),
            PublishError::Unpublishable(e) => write!(f, "the list cannot be published: {e}"),
        }
    }
}

impl std::error::Error for PublishError {}

impl From<RegistryError> for PublishError {
    fn from(e: RegistryError) -> PublishError {
        PublishError::Registry(e)
    }
}

/// Publishes the list of `name` in `ns`: reads what every server of the domain (and every `also`
/// server) holds, refuses if one holds a newer or conflicting version, derives the servers
/// removed since the newest record found, and stores the new record on all of them, each with
/// `add` or `cas` so that a record written meanwhile by someone else is never overwritten
/// unseen. Every wait on a server is bounded by `timeout`.
pub fn publish(
    ns: &Namespace,
    name: &DomainName,
    also: &[ServerAddr],
    timeout: Duration,
) -> Result<Published, PublishError> {
    publish_as(ns, name, also, timeout, false)
}

/// `publish --force`: the way out when a version dated ahead of the clock (a host whose clock
/// was days or years ahead) holds the domain, locally or on the servers, and newer-wins refuses
/// every fix until the calendar catches up. Reads what the servers hold as [`publish`] does,
/// then republishes the local list under the version that supersedes the local one and every
/// version found, valid or refused ([`Writer::supersede`]: today's first version of the next
/// epoch; it is installed locally first, kept durably like any change), and stores it on every
/// server. Every host then takes it as newer, the ones that installed the future version
/// included. Hosts running a release without epochs refuse it: upgrade them first.
///
/// [`Writer::supersede`]: crate::registry::Writer::supersede
pub fn supersede(
    ns: &Namespace,
    name: &DomainName,
    also: &[ServerAddr],
    timeout: Duration,
) -> Result<Published, PublishError> {
    publish_as(ns, name, also, timeout, true)
}

/// The highest version any server claims, a refused record's included.
fn highest_claimed(peers: &[Peer]) -> u64 {
    peers
        .iter()
        .filter_map(|p| match &p.state {
            Ok((_, Held::Record(record, _))) => Some(record.list.version),
            Ok((_, Held::Invalid(_, _, claimed))) => *claimed,
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

fn publish_as(
    ns: &Namespace,
    name: &DomainName,
    also: &[ServerAddr],
    timeout: Duration,
    force: bool,
) -> Result<Published, PublishError> {
    for server in also {
        server.check().map_err(PublishError::BadServer)?;
    }
    let mut list =
        super::local_list(ns, name)?.ok_or_else(|| PublishError::NoDomain(name.clone()))?;
    let mut wbuf = Vec::new();
    let mut peers = Vec::new();
    visit_all(
        &mut peers,
        list.servers.iter().chain(also),
        name,
        &mut wbuf,
        timeout,
    );
    if force {
        list = ns
            .open_writer(name, false)?
            .supersede(highest_claimed(&peers), super::now_unix_secs())?;
    }
    let previous = previous_record(&list, &peers)?;
    let retired = retired_servers(&list, previous.as_ref(), also);
    // The removed servers are asked too: one of them may hold a newer version.
    visit_all(&mut peers, &retired, name, &mut wbuf, timeout);
    previous_record(&list, &peers)?;

    let record = Record {
        domain: name.clone(),
        list,
        retired,
    };
    record.check().map_err(PublishError::Unpublishable)?;
    let bytes = record.encode();
    let told = peers
        .into_iter()
        .map(|peer| {
            let (mut slot, held) = match peer.state {
                Ok(state) => state,
                Err(e) => {
                    return Told {
                        server: peer.server,
                        replaced_invalid: None,
                        result: Err(TellError::Unreachable(e)),
                    }
                }
            };
            let (replace, replaced_invalid) = match held {
                Held::Nothing => (Replace::Nothing, None),
                Held::Record(_, cas) => (Replace::Item(cas), None),
                Held::Invalid(why, cas, _) => (Replace::Item(cas), Some(why)),
            };
            let stored = slot.exchange(&mut wbuf, |conn, wbuf| {
                store(conn, wbuf, name, &bytes, replace)
            });
            let result = match stored {
                Ok(true) => Ok(()),
                Ok(false) => Err(TellError::Changed),
                Err(e) => Err(TellError::Store(e)),
            };
            Told {
                server: peer.server,
                replaced_invalid,
                result,
            }
        })
        .collect();
    Ok(Published {
        previous: previous.map(|r| r.list.version),
        record,
        told,
    })
}
