//! Changing a domain's list (mcadmin). Writers take turns through `flock(LOCK_EX)` on the
//! segment; readers never wait for them.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::list::DomainList;
use super::reader::check_size;
use super::segment::{
    check_trusted, fchmod, fstat, ftruncate, shm_open, shm_unlink, ExclusiveLock, HeaderState,
    Mapping,
};
use super::version::{next_version_now, superseding_version, MAX_VERSION};
use super::{io_error, DomainName, Keeper, Namespace, RegistryError};
use crate::registry::layout::SEGMENT_SIZE;

/// Mode of a new segment: everyone may read the list, only its owner may change it.
pub const SEGMENT_MODE: libc::mode_t = 0o644;

/// A read-write mapping of a domain segment plus the descriptor its lock lives on.
pub struct Writer {
    map: Mapping,
    fd: OwnedFd,
    segment: String,
    kept: Option<Kept>,
}

/// The namespace's keeper, with the domain whose lists this writer hands it.
pub(crate) struct Kept {
    pub(crate) keeper: Arc<dyn Keeper>,
    pub(crate) domain: DomainName,
}

impl Kept {
    fn keep(&self, list: &DomainList) -> Result<(), RegistryError> {
        self.keeper
            .keep(&self.domain, list)
            .map_err(RegistryError::NotKept)
    }
}

/// Hands `list` to the keeper, if there is one; called under the lock, before the publish.
fn keep(kept: &Option<Kept>, list: &DomainList) -> Result<(), RegistryError> {
    kept.as_ref().map_or(Ok(()), |k| k.keep(list))
}

impl Writer {
    /// Opens the domain's segment read-write. When it is absent (or was created but never
    /// initialised, by a creator that died) and `create` is true, creates it with mode 0644
    /// (set with fchmod, whatever the umask), sizes it and publishes an empty list
    /// (ketama-md5, 1 replica) at a first date-derived version; when `create` is false that is
    /// `NotFound`. Refuses insecure or corrupt segments as [`super::Reader::open`] does.
    pub fn open(domain: &DomainName, create: bool) -> Result<Writer, RegistryError> {
        Namespace::from_env()?.open_writer(domain, create)
    }

    /// Opens the domain's segment, creating it if needed, like `open(domain, true)`; but a
    /// segment that this call initialises (absent, or created and never initialised by a
    /// creator that died) starts with `list` published at exactly `list.version` instead of an
    /// empty list. The bool is true in that case. An existing segment is not changed: offer it
    /// the list with [`Writer::install`]. This is how a host that has never had the domain
    /// adopts the version another host published.
    pub fn create_with(
        domain: &DomainName,
        list: &DomainList,
    ) -> Result<(Writer, bool), RegistryError> {
        Namespace::from_env()?.create_with(domain, list)
    }

    pub(crate) fn create_segment_with(
        segment: String,
        list: &DomainList,
        kept: Option<Kept>,
    ) -> Result<(Writer, bool), RegistryError> {
        // Checked before anything is created, so an unusable list leaves no segment behind.
        check_installable(list)?;
        Writer::open_segment(segment, true, Some(list), kept)
    }

    /// Opens (with `create`, creating) the segment. `initial` is the first list of a segment
    /// this call initialises (already checked by the caller); the bool says whether it did.
    /// With `kept`, the first list is kept durably before it is published, like every later one.
    pub(crate) fn open_segment(
        segment: String,
        create: bool,
        initial: Option<&DomainList>,
        kept: Option<Kept>,
    ) -> Result<(Writer, bool), RegistryError> {
        let c_segment = super::c_name(&segment);
        // An object removed between our open and our lock (its creator gave up on it, or a
        // destroy) is opened afresh: a change written to it would reach nobody.
        for _ in 0..3 {
            let (fd, created) = open_fd(&segment, &c_segment, create)?;
            let object = Object {
                segment: &segment,
                c_segment: &c_segment,
                fd: &fd,
                created,
            };
            if let Some((map, initialised)) = object.attach(create, initial, &kept)? {
                let writer = Writer {
                    map,
                    fd,
                    segment,
                    kept,
                };
                return Ok((writer, initialised));
            }
        }
        Err(io_error(
            &segment,
            "shm_open",
            io::Error::other("the segment keeps being removed as it is opened"),
        ))
    }

    /// Changes the list. Under the segment lock: copies the current list, sets its `version` to
    /// the one it will be published as (so `change` can see it; changes `change` makes to
    /// `version` are ignored), applies `change`, validates the result (entries, count, no server
    /// twice), hands it to the namespace's keeper if it has one, and publishes it. Returns the
    /// new version. If `change`, the validation or the keeper fails, nothing is published.
    pub fn update(
        &mut self,
        change: impl FnOnce(&mut DomainList) -> Result<(), RegistryError>,
    ) -> Result<u64, RegistryError> {
        let _lock = ExclusiveLock::acquire(self.fd.as_fd())
            .map_err(|e| io_error(&self.segment, "flock", e))?;
        let mut list = self.map.read_list(&self.segment)?;
        let version = next_version_now(list.version);
        if version > MAX_VERSION {
            return Err(RegistryError::Corrupt(format!(
                "{}: version {} leaves no room for a newer one",
                self.segment, list.version
            )));
        }
        list.version = version;
        change(&mut list)?;
        list.version = version;
        list.validate()?;
        keep(&self.kept, &list)?;
        self.map.publish(&list);
        Ok(version)
    }

    /// Republishes the current list under the version that supersedes both it and `floor`
    /// whatever their dates ([`superseding_version`]: today's first version in the next epoch).
    /// The way out after a version from a clock far ahead: every host takes the result as
    /// newer. Under the lock, kept like any change. Returns the list as published.
    pub fn supersede(
        &mut self,
        floor: u64,
        now_unix_secs: u64,
    ) -> Result<DomainList, RegistryError> {
        let _lock = ExclusiveLock::acquire(self.fd.as_fd())
            .map_err(|e| io_error(&self.segment, "flock", e))?;
        let mut list = self.map.read_list(&self.segment)?;
        list.version =
            superseding_version(list.version.max(floor), now_unix_secs).ok_or_else(|| {
                RegistryError::Corrupt(format!(
                    "{}: version {} leaves no epoch to supersede it",
                    self.segment,
                    list.version.max(floor)
                ))
            })?;
        list.validate()?;
        keep(&self.kept, &list)?;
        self.map.publish(&list);
        Ok(list)
    }

    /// Publishes `list` as it is, version included, if that version is newer than the published
    /// one: how a list another host published (see `crate::propagate`) is adopted with the
    /// version it has everywhere. Under the segment lock; validates the list first. Returns the
    /// version; [`RegistryError::NotNewer`] (nothing written) when the local version is the same
    /// or newer, so two hosts never publish different lists under one version through this.
    pub fn install(&mut self, list: DomainList) -> Result<u64, RegistryError> {
        check_installable(&list)?;
        let _lock = ExclusiveLock::acquire(self.fd.as_fd())
            .map_err(|e| io_error(&self.segment, "flock", e))?;
        let local = self.map.read_list(&self.segment)?.version;
        if list.version <= local {
            return Err(RegistryError::NotNewer {
                local,
                offered: list.version,
            });
        }
        keep(&self.kept, &list)?;
        self.map.publish(&list);
        Ok(list.version)
    }

    /// Marks the segment destroyed under the lock (see `Mapping::mark_destroyed`).
    pub(crate) fn mark_destroyed(&self) -> Result<(), RegistryError> {
        let _lock = ExclusiveLock::acquire(self.fd.as_fd())
            .map_err(|e| io_error(&self.segment, "flock", e))?;
        self.map.mark_destroyed();
        Ok(())
    }

    /// A consistent, validated copy of the published list (without taking the lock).
    pub fn read(&self) -> Result<DomainList, RegistryError> {
        self.map.read_list(&self.segment)
    }

    /// The shared-memory object name, e.g. `/memcache.default`, for messages.
    pub fn segment_name(&self) -> &str {
        &self.segment
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("segment", &self.segment)
            .finish()
    }
}

/// What a list given with its version must satisfy: a valid list, and a version that is neither
/// 0 nor 1 (see `create_segment_with`) nor beyond what the published word can carry.
fn check_installable(list: &DomainList) -> Result<(), RegistryError> {
    if list.version < 2 || list.version > MAX_VERSION {
        return Err(RegistryError::BadEntry(format!(
            "version {} is outside 2..={MAX_VERSION}",
            list.version
        )));
    }
    list.validate()
}

/// A shared-memory object just opened, and whether this process created it.
struct Object<'a> {
    segment: &'a str,
    c_segment: &'a CString,
    fd: &'a OwnedFd,
    created: bool,
}

impl Object<'_> {
    /// Maps the object for writing, under its lock, initialising it when it is new and `create`
    /// is set: the mapping and whether `initial` was published; None when the object was
    /// removed before we had the lock. When this fails on an object this process created, the
    /// object is removed, under the lock: a failed create (a keeper that cannot write, say)
    /// leaves no empty segment behind, and whoever opened it meanwhile finds it removed once
    /// it has the lock, and starts again.
    fn attach(
        &self,
        create: bool,
        initial: Option<&DomainList>,
        kept: &Option<Kept>,
    ) -> Result<Option<(Mapping, bool)>, RegistryError> {
        let give_up = |e: RegistryError| {
            if self.created {
                let _ = shm_unlink(self.c_segment);
            }
            e
        };
        let (segment, fd) = (self.segment, self.fd.as_fd());
        let st = fstat(fd).map_err(|e| give_up(io_error(segment, "fstat", e)))?;
        // Checked before waiting for the lock, so a planted file that its owner keeps locked
        // cannot make us wait; and again under the lock, in case it changed meanwhile.
        check_trusted(&st, segment).map_err(give_up)?;
        let lock =
            ExclusiveLock::acquire(fd).map_err(|e| give_up(io_error(segment, "flock", e)))?;
        let attached = self.locked(create, initial, kept).map_err(give_up);
        drop(lock);
        attached
    }

    /// [`attach`](Self::attach)'s work under the lock.
    fn locked(
        &self,
        create: bool,
        initial: Option<&DomainList>,
        kept: &Option<Kept>,
    ) -> Result<Option<(Mapping, bool)>, RegistryError> {
        let (segment, fd) = (self.segment, self.fd.as_fd());
        let st = fstat(fd).map_err(|e| io_error(segment, "fstat", e))?;
        check_trusted(&st, segment)?;
        if st.st_nlink == 0 {
            return Ok(None);
        }
        let mut initialised = false;
        if st.st_size == 0 {
            if !create {
                return Err(RegistryError::NotFound);
            }
            ftruncate(fd, SEGMENT_SIZE).map_err(|e| io_error(segment, "ftruncate", e))?;
        } else {
            check_size(segment, st.st_size)?;
        }
        let map = Mapping::map(fd, true).map_err(|e| io_error(segment, "mmap", e))?;
        match (map.check_header(segment)?, initial) {
            (HeaderState::Ready, _) => {}
            (HeaderState::Uninitialised, None) if create => {
                let version = next_version_now(0);
                keep(kept, &DomainList::empty(version))?;
                map.initialise(version);
            }
            (HeaderState::Uninitialised, Some(list)) if create => {
                // An empty list one version earlier, then `list` through the ordinary
                // publish: readers only ever see complete lists, and a reader that caught the
                // empty one sees the version move on.
                keep(kept, list)?;
                map.initialise(list.version - 1);
                map.publish(list);
                initialised = true;
            }
            (HeaderState::Uninitialised, _) => return Err(RegistryError::NotFound),
        }
        Ok(Some((map, initialised)))
    }
}

/// Opens (or, with `create`, exclusively creates) the object. Only the process that really
/// created it sets the mode, so an existing segment's mode is never changed behind its owner.
fn open_fd(
    segment: &str,
    c_segment: &CString,
    create: bool,
) -> Result<(OwnedFd, bool), RegistryError> {
    // Another process may destroy the segment between our failed exclusive create and our open;
    // then creating it is our job again.
    for _ in 0..3 {
        if create {
            match shm_open(
                c_segment,
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                SEGMENT_MODE,
            ) {
                Ok(fd) => {
                    if let Err(e) = fchmod(fd.as_fd(), SEGMENT_MODE) {
                        let _ = shm_unlink(c_segment);
                        return Err(io_error(segment, "fchmod", e));
                    }
                    return Ok((fd, true));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(segment, "shm_open", e)),
            }
        }
        match shm_open(c_segment, libc::O_RDWR, 0) {
            Ok(fd) => return Ok((fd, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(RegistryError::NotFound),
            Err(e) => return Err(io_error(segment, "shm_open", e)),
        }
    }
    Err(io_error(
        segment,
        "shm_open",
        io::Error::other("the segment keeps being created and destroyed"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object removed between its open and its lock (its creator gave up on it) is not
    /// written to: attach says so and the caller opens afresh.
    #[test]
    fn an_object_removed_before_the_lock_is_not_attached() {
        let segment = format!("/mctest-{}-removed", std::process::id());
        let c_segment = CString::new(segment.clone()).unwrap();
        let (fd, created) = open_fd(&segment, &c_segment, true).unwrap();
        assert!(created);
        shm_unlink(&c_segment).unwrap();
        let object = Object {
            segment: &segment,
            c_segment: &c_segment,
            fd: &fd,
            created: false,
        };
        assert!(matches!(object.attach(true, None, &None), Ok(None)));
    }
}
