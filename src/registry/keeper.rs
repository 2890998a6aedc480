//! The durable copy of a domain's list. Segments live in `/dev/shm`, which a reboot empties (and
//! systemd's `RemoveIPC=` may too); a [`Keeper`] given to a [`super::Namespace`] receives every
//! list a writer of that namespace is about to publish, so the list can be recreated later
//! (`mcadmin restore`). The registry only calls it; what it writes, and where, is the keeper's
//! business (`crate::state_dir` keeps one file per domain).
#![forbid(unsafe_code)]

use std::fmt;

use super::{DomainList, DomainName};

/// Somewhere every published list is also kept.
///
/// A writer calls [`keep`](Keeper::keep) under the segment lock *before* it publishes the list,
/// and publishes nothing when it fails: a crash between the two leaves a durable copy one version
/// ahead of the segment, never a segment newer than its durable copy.
pub trait Keeper: Send + Sync + fmt::Debug {
    /// Stores `list` as the durable copy of `domain`, replacing the previous one, and returns
    /// once it is on stable storage. The message of an error says what failed, with the path.
    fn keep(&self, domain: &DomainName, list: &DomainList) -> Result<(), String>;

    /// Removes the durable copy of `domain`; having none is not an error.
    fn forget(&self, domain: &DomainName) -> Result<(), String>;
}
