//! Changing a domain's list (mcadmin). Writers take turns through `flock(LOCK_EX)` on the
//! segment; readers never wait for them.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use super::list::DomainList;
use super::reader::check_size;
use super::segment::{
    check_trusted, fchmod, fstat, ftruncate, shm_open, ExclusiveLock, HeaderState, Mapping,
};
use super::version::{next_version_now, MAX_VERSION};
use super::{io_error, DomainName, Namespace, RegistryError};
use crate::registry::layout::SEGMENT_SIZE;

/// Mode of a new segment: everyone may read the list, only its owner may change it.
pub const SEGMENT_MODE: libc::mode_t = 0o644;

/// A read-write mapping of a domain segment plus the descriptor its lock lives on.
pub struct Writer {
    map: Mapping,
    fd: OwnedFd,
    segment: String,
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

    pub(crate) fn open_segment(segment: String, create: bool) -> Result<Writer, RegistryError> {
        let c_segment = super::c_name(&segment);
        let fd = open_fd(&segment, &c_segment, create)?;
        let st = fstat(fd.as_fd()).map_err(|e| io_error(&segment, "fstat", e))?;
        // Checked before waiting for the lock, so a planted file that its owner keeps locked
        // cannot make us wait; and again under the lock, in case it changed meanwhile.
        check_trusted(&st, &segment)?;
        let map = {
            let _lock =
                ExclusiveLock::acquire(fd.as_fd()).map_err(|e| io_error(&segment, "flock", e))?;
            let st = fstat(fd.as_fd()).map_err(|e| io_error(&segment, "fstat", e))?;
            check_trusted(&st, &segment)?;
            if st.st_size == 0 {
                if !create {
                    return Err(RegistryError::NotFound);
                }
                ftruncate(fd.as_fd(), SEGMENT_SIZE)
                    .map_err(|e| io_error(&segment, "ftruncate", e))?;
            } else {
                check_size(&segment, st.st_size)?;
            }
            let map = Mapping::map(fd.as_fd(), true).map_err(|e| io_error(&segment, "mmap", e))?;
            match map.check_header(&segment)? {
                HeaderState::Ready => {}
                HeaderState::Uninitialised if create => map.initialise(next_version_now(0)),
                HeaderState::Uninitialised => return Err(RegistryError::NotFound),
            }
            map
        };
        Ok(Writer { map, fd, segment })
    }

    /// Changes the list. Under the segment lock: copies the current list, sets its `version` to
    /// the one it will be published as (so `change` can see it; changes `change` makes to
    /// `version` are ignored), applies `change`, validates the result (entries, count, no server
    /// twice) and publishes it. Returns the new version. If `change` or the validation fails,
    /// nothing is written.
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
        self.map.publish(&list);
        Ok(version)
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

/// Opens (or, with `create`, exclusively creates) the object. Only the process that really
/// created it sets the mode, so an existing segment's mode is never changed behind its owner.
fn open_fd(segment: &str, c_segment: &CString, create: bool) -> Result<OwnedFd, RegistryError> {
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
                    fchmod(fd.as_fd(), SEGMENT_MODE).map_err(|e| io_error(segment, "fchmod", e))?;
                    return Ok(fd);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(segment, "shm_open", e)),
            }
        }
        match shm_open(c_segment, libc::O_RDWR, 0) {
            Ok(fd) => return Ok(fd),
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
