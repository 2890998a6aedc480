//! Sources of a domain's list: the systems a site already trusts for membership (a file kept by
//! configuration management, etcd, DNS), followed by `mcadmin watch --from URL` and read once by
//! `mcadmin pull --from URL`.
//!
//! A [`Source`] only says what list it holds now and when that changes; it never touches a
//! segment. Whatever it offers goes through the one set of install rules in [`install`]
//! (install only when different, as a new local version; empty refused unless allowed; the
//! segment's checks), and [`follow`] runs several sources at once, one domain each, reporting a
//! failing source once and once more when it recovers.
//!
//! The file source lives here ([`FileSource`]); the network sources whose client crates must not
//! reach the shared library (etcd, DNS) live in mcadmin's own module tree and implement the same
//! trait.
#![forbid(unsafe_code)]

mod file;
mod follow;
mod install;
mod pulled;

pub use file::FileSource;
pub use follow::{follow, Following, SourceEvent};
pub use install::{install, Installed, Refused, Rules};
pub use pulled::Pulled;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::address::ServerAddr;
use crate::domain_file::DomainFile;

/// How long a source may wait between two looks at its stop flag: a stopped watch never waits
/// on a source longer than this (plus the exchange under way, bounded by its own deadline).
pub const STOP_CHECK: Duration = Duration::from_millis(100);

/// What a source holds: a whole domain file (settings and servers), or servers alone (DNS),
/// which keep the settings the domain has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    File(DomainFile),
    Servers(Vec<ServerAddr>),
}

impl Offer {
    pub fn servers(&self) -> &[ServerAddr] {
        match self {
            Offer::File(file) => &file.servers,
            Offer::Servers(servers) => servers,
        }
    }
}

/// What a source found: the list, and where the source versions what it holds (etcd's
/// `mod_revision`), the revision it was read at. The revision installed with a list is what
/// `publish --to` later compares with ([`Pulled`]), so that it never overwrites a change this host
/// has not seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub offer: Offer,
    pub revision: Option<i64>,
}

impl From<Offer> for Found {
    /// A list from a source with no revisions (a file, DNS).
    fn from(offer: Offer) -> Found {
        Found {
            offer,
            revision: None,
        }
    }
}

/// What a publish may overwrite at the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// Only the revision this host last pulled or published there.
    Pulled(i64),
    /// Nothing: this host never took a list from there, so the key must not exist yet.
    Absent,
    /// Whatever is there now (`--force`): still never a change made while writing.
    Current,
}

/// What a publish wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// One line saying where, for the operator.
    pub said: String,
    /// The revision the source gave the written list, where it versions what it holds.
    pub revision: Option<i64>,
}

/// Why a source has no list to offer right now (it cannot be reached, it answers with an error,
/// or what it holds is not a list): one line, naming the source's part at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError(pub String);

impl SourceError {
    pub fn new(message: impl Into<String>) -> SourceError {
        SourceError(message.into())
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceError {}

/// Where a domain's list comes from.
pub trait Source: Send {
    /// The source as the operator named it, for messages.
    fn url(&self) -> String;

    /// One look at the list the source holds now, every wait bounded by the source's deadline.
    fn fetch(&mut self) -> Result<Found, SourceError>;

    /// Follows the source until `stop` is set: hands `sink` the list it holds first, then again
    /// whenever it may have changed, and every failure (the caller reports a failing source
    /// once). Looks at `stop` at least every [`STOP_CHECK`] while idle.
    fn follow(&mut self, stop: &AtomicBool, sink: &mut dyn FnMut(Result<Found, SourceError>));

    /// Writes `file` to the source, where it can be written, overwriting only what `base`
    /// allows: a source shared between hosts refuses, with the reason, when it holds a change
    /// this host has not pulled.
    fn publish(&mut self, file: &DomainFile, base: Base) -> Result<Published, SourceError> {
        let _ = (file, base);
        Err(SourceError::new(format!(
            "{} cannot be written: publish to a source that holds a domain file",
            self.url()
        )))
    }
}

/// Sleeps for `wait`, waking at least every [`STOP_CHECK`] to look at `stop`: what a source
/// does between two looks. False when stopped.
pub fn pause(wait: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + wait;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
    !stop.load(Ordering::Relaxed)
}
