//! Server lists shared between processes: one POSIX shared-memory segment per named domain
//! (`/dev/shm/memcache.<domain>`), changed by `mcadmin` through a [`Writer`] and followed by every
//! library handle through a [`Reader`].
//!
//! A handle's hot path is [`Reader::version`], one atomic load; only when the version moves does
//! it [`Reader::read`] a fresh, validated copy. A [`Follower`] wraps a reader with the rest of
//! what a handle needs: about once a second it also checks that the segment's name still refers
//! to the mapped object, so a segment removed or replaced (re-created, or another file moved
//! over it) is noticed and the new one followed. The layout and the publish protocol that keeps
//! readers from ever seeing a torn list (even when a writer is SIGKILLed mid-write) are described
//! in [`layout`] (public, as the reference of the format). The segment is treated as untrusted input: an object planted by another user,
//! a truncated file or a garbage header is an error, never a crash.
//!
//! This module and `ffi` are the only ones with `unsafe` code; here it is confined to
//! `segment.rs` (system calls, the mapping, the volatile copies) and a layout test.

mod codec;
mod follower;
mod keeper;
pub mod layout;
mod list;
mod name;
mod reader;
mod segment;
mod version;
mod writer;

#[cfg(test)]
mod tests;

use std::ffi::{CString, OsStr};
use std::fmt;
use std::io;
use std::sync::Arc;

pub use follower::{Follower, Notice, Update, CHECK_INTERVAL};
pub use keeper::Keeper;
pub use layout::MAX_SERVERS;
pub use list::{check_entry, DomainList, ServerEntry, MAX_HOST_LEN, MAX_REPLICAS};
pub use name::{DomainName, NameError, MAX_NAME_LEN, PRIVATE_DOMAIN};
pub use reader::{PathState, Reader};
pub use version::{
    civil_date, dated_part, day_base, epoch_of, next_version, next_version_now,
    superseding_version, EPOCH_SPAN, MAX_VERSION, UPDATES_PER_DAY,
};
pub use writer::{Writer, SEGMENT_MODE};

/// Everything that can go wrong with a domain segment.
#[derive(Debug)]
pub enum RegistryError {
    BadName(NameError),
    /// The domain has no segment (or one that was never initialised).
    NotFound,
    Io(io::Error),
    /// Refused for safety: not a regular file, writable by group/others, or a foreign owner.
    Insecure(String),
    /// The segment does not hold a valid list of this layout.
    Corrupt(String),
    /// More than [`MAX_SERVERS`] servers.
    TooManyServers,
    /// A list that must not be published (bad entry, duplicate server, bad replica count).
    BadEntry(String),
    /// [`Writer::install`] was offered a version that is not newer than the published one.
    NotNewer {
        local: u64,
        offered: u64,
    },
    /// The namespace's [`Keeper`] could not store the durable copy; the segment was not changed.
    NotKept(String),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::BadName(e) => write!(f, "invalid domain name: {e}"),
            RegistryError::NotFound => {
                f.write_str("no such domain: its shared-memory segment does not exist")
            }
            RegistryError::Io(e) => write!(f, "shared memory: {e}"),
            RegistryError::Insecure(why) => write!(f, "refusing insecure segment: {why}"),
            RegistryError::Corrupt(why) => write!(f, "corrupt segment: {why}"),
            RegistryError::TooManyServers => {
                write!(f, "too many servers: a domain holds at most {MAX_SERVERS}")
            }
            RegistryError::BadEntry(why) => write!(f, "invalid server list: {why}"),
            RegistryError::NotNewer { local, offered } => write!(
                f,
                "version {offered} is not newer than the local version {local}; nothing installed"
            ),
            RegistryError::NotKept(why) => {
                write!(f, "cannot keep the durable copy: {why}; nothing changed")
            }
        }
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegistryError::BadName(e) => Some(e),
            RegistryError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NameError> for RegistryError {
    fn from(e: NameError) -> Self {
        RegistryError::BadName(e)
    }
}

/// The rule for files another local user could have planted (segments, and the state
/// directory's files): `regular` (a regular file), not writable by group or others, owned by root
/// or by our effective uid. The message names `what`.
pub fn check_planted(regular: bool, mode: u32, uid: u32, what: &str) -> Result<(), String> {
    if !regular {
        return Err(format!("{what} is not a regular file"));
    }
    let mode = mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{what} is writable by group or others (mode {mode:04o}); only its owner may write it"
        ));
    }
    let me = segment::euid();
    if uid != 0 && uid != me {
        return Err(format!(
            "{what} is owned by uid {uid}, which is neither root nor uid {me}"
        ));
    }
    Ok(())
}

/// An I/O error that names the segment and the failed call.
pub(crate) fn io_error(segment: &str, call: &str, e: io::Error) -> RegistryError {
    RegistryError::Io(io::Error::new(e.kind(), format!("{segment}: {call}: {e}")))
}

/// The C string of a segment name; names are built from validated tokens, so they hold no NUL.
pub(crate) fn c_name(segment: &str) -> CString {
    CString::new(segment).expect("segment names are built from validated tokens")
}

/// Where domain segments live: `/<prefix>.<domain>`. The prefix is `memcache` unless the
/// environment variable `MEMCACHE_SHM_PREFIX` says otherwise (tests use it to simulate separate
/// hosts). Code that must not depend on the environment (tests running in parallel threads)
/// passes a `Namespace` explicitly.
///
/// A namespace may have a [`Keeper`] ([`with_keeper`](Namespace::with_keeper)): then every list
/// its writers publish is kept durably first, and destroying a domain forgets its copy first.
#[derive(Clone, Debug)]
pub struct Namespace {
    prefix: String,
    keeper: Option<Arc<dyn Keeper>>,
}

impl PartialEq for Namespace {
    /// The same prefix and the same keeper (or none).
    fn eq(&self, other: &Namespace) -> bool {
        self.prefix == other.prefix
            && match (&self.keeper, &other.keeper) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for Namespace {}

impl Default for Namespace {
    fn default() -> Self {
        Namespace {
            prefix: Namespace::DEFAULT_PREFIX.to_owned(),
            keeper: None,
        }
    }
}

impl Namespace {
    pub const DEFAULT_PREFIX: &'static str = "memcache";
    pub const ENV_VAR: &'static str = "MEMCACHE_SHM_PREFIX";

    /// A namespace with this prefix: 1..=64 bytes of `[A-Za-z0-9_.-]`.
    pub fn with_prefix(prefix: &str) -> Result<Namespace, NameError> {
        name::check_token(prefix)?;
        Ok(Namespace {
            prefix: prefix.to_owned(),
            keeper: None,
        })
    }

    /// This namespace with `keeper` keeping a durable copy of every list its writers publish.
    pub fn with_keeper(self, keeper: Arc<dyn Keeper>) -> Namespace {
        Namespace {
            keeper: Some(keeper),
            ..self
        }
    }

    /// This namespace without a keeper: writes that need no durable copy (restoring from it).
    pub fn without_keeper(&self) -> Namespace {
        Namespace {
            prefix: self.prefix.clone(),
            keeper: None,
        }
    }

    pub fn keeper(&self) -> Option<&Arc<dyn Keeper>> {
        self.keeper.as_ref()
    }

    /// The writer's hook: the keeper with the domain it keeps.
    fn kept(&self, domain: &DomainName) -> Option<writer::Kept> {
        self.keeper.as_ref().map(|keeper| writer::Kept {
            keeper: Arc::clone(keeper),
            domain: domain.clone(),
        })
    }

    /// The namespace `MEMCACHE_SHM_PREFIX` selects (unset or empty: the default). An invalid
    /// value is an error rather than a silent fallback onto the real domains.
    pub fn from_env() -> Result<Namespace, RegistryError> {
        Namespace::from_env_value(std::env::var_os(Namespace::ENV_VAR).as_deref())
    }

    fn from_env_value(value: Option<&OsStr>) -> Result<Namespace, RegistryError> {
        let value = match value {
            None => return Ok(Namespace::default()),
            Some(v) if v.is_empty() => return Ok(Namespace::default()),
            Some(v) => v,
        };
        let invalid = |why: String| {
            RegistryError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}={value:?} is invalid: {why}", Namespace::ENV_VAR),
            ))
        };
        let text = value
            .to_str()
            .ok_or_else(|| invalid("not UTF-8".to_owned()))?;
        Namespace::with_prefix(text).map_err(|e| invalid(e.to_string()))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `"/" + prefix + "." + domain`.
    pub fn segment_name(&self, domain: &DomainName) -> String {
        format!("/{}.{}", self.prefix, domain)
    }

    /// Where Linux shows the segment of `domain`: `/dev/shm/<prefix>.<domain>` (also the path
    /// in `/proc/PID/maps` of a process that has it mapped).
    pub fn segment_path(&self, domain: &DomainName) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("{SHM_DIR}{}", self.segment_name(domain)))
    }

    /// [`Reader::open`] in this namespace.
    pub fn open_reader(&self, domain: &DomainName) -> Result<Option<Reader>, RegistryError> {
        Reader::open_segment(self.segment_name(domain))
    }

    /// [`Writer::open`] in this namespace.
    pub fn open_writer(&self, domain: &DomainName, create: bool) -> Result<Writer, RegistryError> {
        Writer::open_segment(self.segment_name(domain), create, None, self.kept(domain))
            .map(|(w, _)| w)
    }

    /// [`Writer::create_with`] in this namespace.
    pub fn create_with(
        &self,
        domain: &DomainName,
        list: &DomainList,
    ) -> Result<(Writer, bool), RegistryError> {
        Writer::create_segment_with(self.segment_name(domain), list, self.kept(domain))
    }

    /// [`destroy`] in this namespace.
    pub fn destroy(&self, domain: &DomainName) -> Result<(), RegistryError> {
        let segment = self.segment_name(domain);
        // The durable copy goes first: a crash in between must not bring the domain back at
        // the next restore after the operator destroyed it.
        if let Some(keeper) = &self.keeper {
            keeper.forget(domain).map_err(RegistryError::NotKept)?;
        }
        // Attached handles notice the tombstone on their next operation and look for the
        // segment afresh (a re-created domain is a new object). A segment we cannot open as a
        // writer (corrupt, insecure) is unlinked all the same.
        if let Ok(writer) = self.open_writer(domain, false) {
            writer.mark_destroyed()?;
        }
        match segment::shm_unlink(&c_name(&segment)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RegistryError::NotFound),
            Err(e) => Err(io_error(&segment, "shm_unlink", e)),
        }
    }

    /// [`list_domains`] in this namespace.
    pub fn list_domains(&self) -> Result<Vec<DomainName>, RegistryError> {
        let lead = format!("{}.", self.prefix);
        let entries = std::fs::read_dir(SHM_DIR).map_err(|e| io_error(SHM_DIR, "read_dir", e))?;
        let mut domains = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(SHM_DIR, "read_dir", e))?;
            let file_name = entry.file_name();
            let domain = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(lead.as_str()))
                .and_then(|rest| DomainName::parse(rest).ok());
            domains.extend(domain);
        }
        domains.sort();
        Ok(domains)
    }
}

/// Where Linux shows POSIX shared-memory objects.
const SHM_DIR: &str = "/dev/shm";

/// The shared-memory object name of a domain: `"/" + prefix + "." + domain`, the prefix being
/// `MEMCACHE_SHM_PREFIX` if set, else `memcache`; by default `/memcache.<domain>`, which Linux
/// shows as `/dev/shm/memcache.<domain>`. (An invalid `MEMCACHE_SHM_PREFIX` makes every
/// operation fail; this name, used in messages, then shows the default prefix.)
pub fn segment_name(domain: &DomainName) -> String {
    Namespace::from_env()
        .unwrap_or_default()
        .segment_name(domain)
}

/// Removes a domain's segment (`shm_unlink`), marking it first so that every [`Follower`] of it
/// notices on its next operation (one that has it mapped keeps its copy of the list). `NotFound` if there is none.
pub fn destroy(domain: &DomainName) -> Result<(), RegistryError> {
    Namespace::from_env()?.destroy(domain)
}

/// The domains that have a segment, sorted: `/dev/shm` entries named `<prefix>.<domain>` with a
/// valid domain name. (A prefix that itself ends in `.<something>` would also see its
/// domains here as `<something>.<domain>`; the default prefix has no such neighbour.)
pub fn list_domains() -> Result<Vec<DomainName>, RegistryError> {
    Namespace::from_env()?.list_domains()
}
