//! Following a domain: what a handle does before each operation so that its server list stays
//! the domain's, whatever happens to the segment. Shared by every front end that follows a
//! domain (the C library's handles today), so the rules live in one place:
//!
//! - a list published in the mapped segment is taken up on the next operation (one atomic load
//!   tells);
//! - at most once per [`CHECK_INTERVAL`], the segment's name is compared (device and inode) with
//!   the object mapped. A name that now refers to another object (`rm` and a new `mcadmin set`,
//!   `mcadmin destroy` and `create`, a file renamed over it) is opened and its list followed,
//!   even if its version number is not greater: a new segment counts its versions afresh. A
//!   name that refers to nothing keeps the last list and is looked for again every interval;
//! - `mcadmin destroy` marks the segment before unlinking it, which the atomic load sees, so a
//!   destroyed segment is noticed on the next operation, not after the interval;
//! - each of these events is told once ([`Notice`]); a list or segment that cannot be used is
//!   told once and the last good list kept.
//!
//! The per-operation cost is one atomic load, one read of the coarse monotonic clock (from the
//! vDSO, no system call) and two compares; the name check (an open, an fstat and a close) runs
//! only when the deadline has passed.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use super::reader::PathState;
use super::segment::coarse_now_ns;
use super::{DomainList, DomainName, Namespace, Reader, RegistryError};

/// How often a follower compares the segment's name with the object it maps, and how often it
/// looks for a segment that does not exist. A little under a second, so that a replacement is
/// noticed within a second even though the coarse clock lags the precise one by up to a tick
/// (at most 10 ms).
pub const CHECK_INTERVAL: Duration = Duration::from_millis(990);

const CHECK_INTERVAL_NS: u64 = CHECK_INTERVAL.as_nanos() as u64;

/// A domain followed by one handle: the mapping of its segment (if there is one), the version
/// the handle shows, and when to look at the segment's name next. Not shared: the handle owns
/// it (under its own lock) and calls [`Follower::poll`] before every operation.
pub struct Follower {
    domain: DomainName,
    /// `None`: the namespace `MEMCACHE_SHM_PREFIX` selects, read at each open.
    namespace: Option<Namespace>,
    reader: Option<Reader>,
    /// The version whose list the handle shows; 0 before any, and after a switch until the new
    /// segment's list is read.
    applied: u64,
    /// A version whose list was refused: not read again until the version moves on.
    refused: u64,
    /// Coarse-clock time (ns) of the next name check, or of the next look for a missing segment.
    next_check: u64,
    /// Whether a segment was ever followed: finding a segment after that is a switch, and told.
    followed: bool,
    /// The last failure to open the segment that was told, so that a segment that keeps failing
    /// the same way at every look is told once.
    last_failure: Option<String>,
}

/// What a handle should do after [`Follower::poll`]: use a new list, tell something, or both.
#[derive(Debug)]
pub struct Update {
    /// The list the handle should show from now on.
    pub list: Option<DomainList>,
    /// An event to tell the user once (through the C library's error handler, for instance).
    pub notice: Option<Notice>,
}

/// An event of a followed domain, told once.
#[derive(Debug)]
pub enum Notice {
    /// The segment's name refers to a new object (re-created, or another file moved over it),
    /// whose list ([`Update::list`]) the handle follows from now on.
    Switched {
        domain: DomainName,
        segment: String,
        version: u64,
    },
    /// The segment was removed (or destroyed) and nothing has its name: the handle keeps its
    /// last list (`kept`, 0 if it never had one) and the follower looks for a new segment every
    /// [`CHECK_INTERVAL`].
    Removed {
        domain: DomainName,
        segment: String,
        kept: u64,
    },
    /// A list that cannot be used was published: the handle keeps its last good list.
    Refused {
        domain: DomainName,
        error: RegistryError,
    },
    /// The segment cannot be opened (refused as insecure or corrupt, an invalid
    /// `MEMCACHE_SHM_PREFIX`, ...): the handle keeps its last list, if any.
    Unusable {
        domain: DomainName,
        error: RegistryError,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Switched {
                domain,
                segment,
                version,
            } => write!(
                f,
                "domain {domain}: {segment} is a new segment (re-created, or another moved over \
                 it); now following its list, version {version}"
            ),
            Notice::Removed {
                domain,
                segment,
                kept,
            } => write!(
                f,
                "domain {domain}: {segment} was removed; keeping the last list (version {kept}) \
                 until the domain is created again"
            ),
            Notice::Refused { domain, error } => {
                write!(f, "domain {domain}: {error}; keeping the last good list")
            }
            Notice::Unusable { domain, error } => write!(f, "domain {domain}: {error}"),
        }
    }
}

impl Follower {
    /// Follows `domain` in the namespace `MEMCACHE_SHM_PREFIX` selects (read at each open, as
    /// [`Reader::open`] does). Nothing is opened until the first [`Follower::poll`].
    pub fn new(domain: DomainName) -> Follower {
        Follower::with_namespace(domain, None)
    }

    /// Follows `domain` in `namespace`.
    pub fn in_namespace(namespace: Namespace, domain: DomainName) -> Follower {
        Follower::with_namespace(domain, Some(namespace))
    }

    fn with_namespace(domain: DomainName, namespace: Option<Namespace>) -> Follower {
        Follower {
            domain,
            namespace,
            reader: None,
            applied: 0,
            refused: 0,
            next_check: 0,
            followed: false,
            last_failure: None,
        }
    }

    pub fn domain(&self) -> &DomainName {
        &self.domain
    }

    /// The version whose list the handle shows (0 before any).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Whether a segment is mapped now (false before the first poll, while the segment does
    /// not exist, and after it was removed).
    pub fn is_attached(&self) -> bool {
        self.reader.is_some()
    }

    /// The check before an operation. `None` in the common case (nothing changed, deadline not
    /// reached), which costs one atomic load and one read of the coarse clock.
    #[inline]
    pub fn poll(&mut self) -> Option<Update> {
        self.poll_at(coarse_now_ns())
    }

    /// [`Follower::poll`] at the coarse-clock time `now` (ns); tests drive time with it.
    #[inline]
    pub(crate) fn poll_at(&mut self, now: u64) -> Option<Update> {
        let current = match &self.reader {
            Some(reader) => {
                let version = reader.version();
                version == self.applied || version == self.refused
            }
            None => true,
        };
        if current && now < self.next_check {
            return None;
        }
        self.poll_slow(now)
    }

    #[cold]
    #[inline(never)]
    fn poll_slow(&mut self, now: u64) -> Option<Update> {
        let Some(reader) = &self.reader else {
            if now < self.next_check {
                return None;
            }
            self.next_check = now.saturating_add(CHECK_INTERVAL_NS);
            return self.probe();
        };
        let destroyed = reader.is_destroyed();
        if destroyed || now >= self.next_check {
            self.next_check = now.saturating_add(CHECK_INTERVAL_NS);
            match reader.path_state() {
                PathState::Replaced => return self.replaced(),
                PathState::Gone => return Some(self.removed()),
                // Marked by destroy, not unlinked yet: it is gone all the same.
                PathState::Same | PathState::Unknown if destroyed => return Some(self.removed()),
                PathState::Same | PathState::Unknown => {}
            }
        }
        let version = reader.version();
        if version == self.applied || version == self.refused {
            return None;
        }
        Some(self.read_list(version))
    }

    fn open(&self) -> Result<Option<Reader>, RegistryError> {
        match &self.namespace {
            Some(namespace) => namespace.open_reader(&self.domain),
            None => Reader::open(&self.domain),
        }
    }

    /// Looks for a segment while there is none mapped.
    fn probe(&mut self) -> Option<Update> {
        match self.open() {
            Ok(Some(reader)) => Some(self.follow(reader)),
            Ok(None) => None,
            Err(error) => self.failure(error),
        }
    }

    /// The name refers to another object than the one mapped.
    fn replaced(&mut self) -> Option<Update> {
        match self.open() {
            Ok(Some(reader)) => Some(self.follow(reader)),
            // Being created (nothing published yet) or being destroyed: the mapped segment stays
            // until the next check tells more.
            Ok(None) => None,
            Err(error) => {
                // What has the name cannot be used, and what is mapped is no longer the domain's:
                // keep the list, look again every interval.
                self.reader = None;
                self.failure(error)
            }
        }
    }

    /// Starts following a newly opened segment.
    fn follow(&mut self, reader: Reader) -> Update {
        let announce = self.followed;
        self.followed = true;
        self.last_failure = None;
        // A new segment counts its versions afresh: whatever it holds is new to this handle,
        // even a version number it applied from the old segment, or a smaller one.
        self.applied = 0;
        self.refused = 0;
        let version = reader.version();
        let segment = reader.segment_name().to_owned();
        self.reader = Some(reader);
        let mut update = self.read_list(version);
        if announce && update.list.is_some() {
            update.notice = Some(Notice::Switched {
                domain: self.domain.clone(),
                segment,
                version: self.applied,
            });
        }
        update
    }

    /// Reads the mapped segment's list, published as `version`.
    fn read_list(&mut self, version: u64) -> Update {
        let Some(reader) = &self.reader else {
            return Update {
                list: None,
                notice: None,
            };
        };
        match reader.read() {
            Ok(list) => {
                self.applied = list.version;
                Update {
                    list: Some(list),
                    notice: None,
                }
            }
            // Destroyed since the caller looked.
            Err(RegistryError::NotFound) if reader.is_destroyed() => self.removed(),
            Err(error) => {
                self.refused = version;
                Update {
                    list: None,
                    notice: Some(Notice::Refused {
                        domain: self.domain.clone(),
                        error,
                    }),
                }
            }
        }
    }

    /// The mapped segment is gone: drop it, keep the list, look for a new one at the deadline.
    fn removed(&mut self) -> Update {
        let segment = self
            .reader
            .take()
            .map(|reader| reader.segment_name().to_owned())
            .unwrap_or_default();
        self.refused = 0;
        Update {
            list: None,
            notice: Some(Notice::Removed {
                domain: self.domain.clone(),
                segment,
                kept: self.applied,
            }),
        }
    }

    /// A failure to open the segment, told unless it is the one told last.
    fn failure(&mut self, error: RegistryError) -> Option<Update> {
        let text = error.to_string();
        if self.last_failure.as_deref() == Some(text.as_str()) {
            return None;
        }
        self.last_failure = Some(text);
        Some(Update {
            list: None,
            notice: Some(Notice::Unusable {
                domain: self.domain.clone(),
                error,
            }),
        })
    }
}

impl fmt::Debug for Follower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Follower")
            .field("domain", &self.domain)
            .field("reader", &self.reader)
            .field("applied", &self.applied)
            .field("refused", &self.refused)
            .finish()
    }
}
