//! The read-only view every library handle keeps of its domain.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use super::layout::SEGMENT_SIZE;
use super::list::DomainList;
use super::segment::{check_trusted, fstat, shm_open, HeaderState, Mapping, DESTROYED_WORD};
use super::{io_error, DomainName, Namespace, RegistryError};

/// A read-only mapping of a domain segment. Holds no file descriptor (a C host program's fd
/// table is left as it was); `Send + Sync`, all methods take `&self`.
pub struct Reader {
    map: Mapping,
    segment: String,
    c_segment: CString,
    dev: libc::dev_t,
    ino: libc::ino_t,
}

impl Reader {
    /// Opens the domain's segment read-only. `Ok(None)` when it does not exist, or exists but
    /// nothing was ever published in it (a creator is still initialising it). Refuses with
    /// `Insecure` a segment that is not a regular file, is writable by group or others, or is
    /// owned by neither root nor our effective uid; with `Corrupt` one that is too small or whose
    /// header does not match this layout.
    pub fn open(domain: &DomainName) -> Result<Option<Reader>, RegistryError> {
        Namespace::from_env()?.open_reader(domain)
    }

    pub(crate) fn open_segment(segment: String) -> Result<Option<Reader>, RegistryError> {
        let c_segment = super::c_name(&segment);
        let fd = match shm_open(&c_segment, libc::O_RDONLY, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&segment, "shm_open", e)),
        };
        let st = fstat(fd.as_fd()).map_err(|e| io_error(&segment, "fstat", e))?;
        check_trusted(&st, &segment)?;
        if st.st_size == 0 {
            return Ok(None); // created, not yet sized: see HeaderState::Uninitialised
        }
        check_size(&segment, st.st_size)?;
        let map = Mapping::map(fd.as_fd(), false).map_err(|e| io_error(&segment, "mmap", e))?;
        drop(fd);
        match map.check_header(&segment)? {
            HeaderState::Uninitialised => Ok(None),
            // Marked by `destroy`, which unlinks it next: already gone.
            HeaderState::Ready if map.published().load(Ordering::Acquire) == DESTROYED_WORD => {
                Ok(None)
            }
            HeaderState::Ready => Ok(Some(Reader {
                map,
                segment,
                c_segment,
                dev: st.st_dev,
                ino: st.st_ino,
            })),
        }
    }

    /// The published version: one Acquire load from shared memory, no system call. A handle
    /// compares it with the version it last copied before every operation.
    #[inline]
    pub fn version(&self) -> u64 {
        self.map.published().load(Ordering::Acquire) >> 1
    }

    /// A consistent copy of the published list, fully validated. Never a torn list: a copy that
    /// raced with a writer is retried (boundedly; a segment that never holds still is reported
    /// as changing too fast).
    pub fn read(&self) -> Result<DomainList, RegistryError> {
        // The header is checked again, not only at open: it could have been damaged in place.
        // This runs only when the version changed, never on an operation's fast path.
        match self.map.check_header(&self.segment)? {
            super::segment::HeaderState::Ready => self.map.read_list(&self.segment),
            super::segment::HeaderState::Uninitialised => Err(RegistryError::NotFound),
        }
    }

    /// Whether `destroy` has marked the segment (it unlinks it right after): its list is gone.
    pub fn is_destroyed(&self) -> bool {
        self.map.published().load(Ordering::Acquire) == DESTROYED_WORD
    }

    /// Whether the segment's name now refers to another object (destroyed and re-created,
    /// removed and created anew, or another file renamed over it) or to none (destroyed or
    /// removed): then the caller should open it again. Costs an open, an fstat and a close, so
    /// [`super::Follower`] asks at most about once a second. Other errors (out of descriptors,
    /// ...) answer `false`: the current mapping stays valid and usable.
    pub fn is_stale(&self) -> bool {
        matches!(self.path_state(), PathState::Replaced | PathState::Gone)
    }

    /// What the segment's name refers to now, compared by device and inode with the object
    /// this reader maps. One `shm_open`, `fstat` and `close`.
    pub fn path_state(&self) -> PathState {
        match shm_open(&self.c_segment, libc::O_RDONLY, 0) {
            Ok(fd) => match fstat(fd.as_fd()) {
                Ok(st) if st.st_dev != self.dev || st.st_ino != self.ino => PathState::Replaced,
                Ok(_) => PathState::Same,
                Err(_) => PathState::Unknown,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => PathState::Gone,
            Err(_) => PathState::Unknown,
        }
    }

    /// The shared-memory object name, e.g. `/memcache.default`, for messages.
    pub fn segment_name(&self) -> &str {
        &self.segment
    }
}

/// What a segment's name refers to, compared with the object a [`Reader`] maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathState {
    /// The same object.
    Same,
    /// Another object: the segment was re-created, or a file was renamed over it.
    Replaced,
    /// Nothing: the segment was removed.
    Gone,
    /// Could not be told (the open or fstat failed for another reason, e.g. no descriptors).
    Unknown,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("segment", &self.segment)
            .field("version", &self.version())
            .finish()
    }
}

/// A segment smaller than the layout is corrupt: mapping it whole would turn reads past its end
/// into SIGBUS. A larger one is mapped up to `SEGMENT_SIZE`; its header decides.
pub(crate) fn check_size(segment: &str, size: libc::off_t) -> Result<(), RegistryError> {
    if size < 0 || (size as u64) < SEGMENT_SIZE as u64 {
        return Err(RegistryError::Corrupt(format!(
            "{segment} is truncated: {size} bytes, a layout-{} segment has {SEGMENT_SIZE}",
            super::layout::LAYOUT_VERSION
        )));
    }
    Ok(())
}
