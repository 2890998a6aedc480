//! The system side of a segment: `shm_open`, the owner and mode checks, the mapping, `flock`, and
//! the copy and publish steps of the protocol described in `layout.rs`. Nearly all of the
//! registry's `unsafe` code is here, each block with the reason it is sound.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::{self, addr_of, addr_of_mut, NonNull};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::codec::{decode_slot, encode_entry, encode_head};
use super::layout::{
    distribution_code, published_word, split_published, Header, RawEntry, Slot, SlotHead,
    ENTRY_WORDS, HEADER_SIZE, LAYOUT_VERSION, MAGIC, MAX_SERVERS, SEGMENT_SIZE, SLOT_OFFSETS,
    SLOT_SIZE,
};
use super::list::DomainList;
use super::RegistryError;
use crate::hash::Distribution;

/// Inconsistent copies in a row before a reader gives up. A writer needs a few microseconds per
/// update, so only a writer publishing in a tight loop (or a hostile one) gets near this.
const READ_ATTEMPTS: u32 = 1000;
/// Attempts that only spin before each retry also yields the CPU to a writer.
const SPIN_ATTEMPTS: u32 = 8;

/// The `published` word of a segment that `destroy` is about to unlink.
pub const DESTROYED_WORD: u64 = u64::MAX;

/// Opens a shared-memory object. `O_CLOEXEC` keeps it out of the host program's children;
/// `O_NONBLOCK` keeps a FIFO planted under the name from blocking the caller in `open`.
pub fn shm_open(name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call; shm_open
    // reads nothing else and returns a new descriptor or -1.
    let fd = unsafe {
        libc::shm_open(
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NONBLOCK,
            mode,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: shm_open just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn shm_unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::shm_unlink(name.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is writable memory of the size fstat fills; the descriptor is open (borrowed).
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat returned 0, so it filled the whole struct.
    Ok(unsafe { st.assume_init() })
}

/// The clock the followers of a domain read on every operation: `CLOCK_MONOTONIC_COARSE`, in
/// nanoseconds. It is served from the vDSO without a system call and without reading the
/// time-stamp counter (tens of instructions), and lags the precise clock by at most one tick
/// (1 to 10 ms), which a once-a-second deadline does not mind. `u64::MAX` if the clock cannot be
/// read (never on Linux since 2.6.32): every deadline has then passed, so checks happen on every
/// operation, slower but never late.
#[inline]
pub fn coarse_now_ns() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC_COARSE;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `ts` is writable memory for one timespec, which clock_gettime fills when it
    // returns 0; it reads nothing else.
    if unsafe { libc::clock_gettime(CLOCK, ts.as_mut_ptr()) } != 0 {
        return u64::MAX;
    }
    // SAFETY: clock_gettime returned 0, so it filled the whole struct.
    let ts = unsafe { ts.assume_init() };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

pub fn euid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: plain system call on an open descriptor; no memory is passed.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn ftruncate(fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain system call on an open descriptor; no memory is passed.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Refuses what another local user could have planted: anything but a regular file, a file that
/// group or others may write, or one owned by neither root nor us.
pub fn check_trusted(st: &libc::stat, segment: &str) -> Result<(), RegistryError> {
    super::check_planted(
        st.st_mode & libc::S_IFMT == libc::S_IFREG,
        st.st_mode,
        st.st_uid,
        segment,
    )
    .map_err(RegistryError::Insecure)
}

/// `flock(LOCK_EX)` held until dropped. The lock belongs to the open file description, so the
/// kernel releases it when the holder dies, however it dies.
pub struct ExclusiveLock<'a> {
    fd: BorrowedFd<'a>,
}

impl<'a> ExclusiveLock<'a> {
    pub fn acquire(fd: BorrowedFd<'a>) -> io::Result<ExclusiveLock<'a>> {
        loop {
            // SAFETY: plain system call on an open descriptor; no memory is passed.
            if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(ExclusiveLock { fd });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Drop for ExclusiveLock<'_> {
    fn drop(&mut self) {
        // SAFETY: plain system call on a descriptor that outlives this guard. An error cannot be
        // acted on here; closing the descriptor releases the lock anyway.
        unsafe { libc::flock(self.fd.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// What the header says about the segment's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderState {
    /// Nothing published yet: a creator is initialising it, or died doing so.
    Uninitialised,
    Ready,
}

/// A `SEGMENT_SIZE` mapping of a segment, unmapped on drop.
pub struct Mapping {
    base: NonNull<u8>,
    writable: bool,
}

// SAFETY: the mapping is plain shared memory, not tied to the thread that created it. Every
// access through `Mapping` is either an atomic operation on `published` or a volatile copy whose
// result is discarded unless `published` proves it stable; writes happen only through
// `initialise` and `publish`, which the `Writer` calls under `&mut self` and the segment lock.
unsafe impl Send for Mapping {}
// SAFETY: as for Send; shared references only read (atomically or by checked volatile copies).
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `SEGMENT_SIZE` bytes of `fd`. The caller has checked with fstat that the
    /// object is at least that large, so no access through the mapping can fall past its end
    /// (unless the owner, root or ourselves, truncates it later, which nothing in this crate does).
    pub fn map(fd: BorrowedFd<'_>, writable: bool) -> io::Result<Mapping> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping chosen by the kernel (no fixed address), of an open
        // descriptor; it aliases no Rust object.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                SEGMENT_SIZE,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Mapping { base, writable })
    }

    #[inline]
    fn header(&self) -> *mut Header {
        // The mapping is page-aligned and at least HEADER_SIZE long.
        self.base.as_ptr().cast::<Header>()
    }

    fn slot(&self, index: usize) -> *mut Slot {
        // SAFETY: both slot offsets lie inside the SEGMENT_SIZE mapping (see layout.rs), and
        // they are multiples of 8, so the Slot is aligned.
        unsafe {
            self.base
                .as_ptr()
                .add(SLOT_OFFSETS[index & 1])
                .cast::<Slot>()
        }
    }

    /// The published word, shared with every process that maps the segment.
    #[inline]
    pub fn published(&self) -> &AtomicU64 {
        // SAFETY: the field is 8-aligned inside the mapping, lives as long as `self`, and is only
        // ever accessed atomically by this crate; AtomicU64 has the layout of u64, so any bits
        // are a valid value. Loads through a PROT_READ mapping are plain loads on the 64-bit
        // targets this library is built for.
        unsafe { &*addr_of!((*self.header()).published) }
    }

    /// Checks the fixed header fields. The header is written once, before `published` is first
    /// stored with Release, so after our Acquire load of a non-zero word it is stable.
    pub fn check_header(&self, segment: &str) -> Result<HeaderState, RegistryError> {
        let word = self.published().load(Ordering::Acquire);
        let h = self.header();
        // SAFETY: the fields are in bounds and aligned; volatile because another process may be
        // writing them (a creator mid-initialisation), in which case `word` is 0 and the values
        // are only used to tell "being created" from "garbage".
        let (magic, layout, header_size, slot_size, max_servers) = unsafe {
            (
                ptr::read_volatile(addr_of!((*h).magic)),
                ptr::read_volatile(addr_of!((*h).layout_version)),
                ptr::read_volatile(addr_of!((*h).header_size)),
                ptr::read_volatile(addr_of!((*h).slot_size)),
                ptr::read_volatile(addr_of!((*h).max_servers)),
            )
        };
        if word == 0 && (magic == 0 || magic == MAGIC) {
            return Ok(HeaderState::Uninitialised);
        }
        let corrupt = |what: String| Err(RegistryError::Corrupt(format!("{segment}: {what}")));
        if magic != MAGIC {
            return corrupt(format!(
                "bad magic {magic:#018x} (expected {MAGIC:#018x}): not a memcache domain segment"
            ));
        }
        if layout != LAYOUT_VERSION {
            return corrupt(format!(
                "layout version {layout} is not supported (this library reads version {LAYOUT_VERSION})"
            ));
        }
        let expected = [
            ("header size", header_size, HEADER_SIZE),
            ("slot size", slot_size, SLOT_SIZE),
            ("server capacity", max_servers, MAX_SERVERS),
        ];
        for (what, found, want) in expected {
            if found as usize != want {
                return corrupt(format!("{what} is {found}, expected {want}"));
            }
        }
        Ok(HeaderState::Ready)
    }

    /// A consistent, validated copy of the published list (the seqlock read of layout.rs).
    pub fn read_list(&self, segment: &str) -> Result<DomainList, RegistryError> {
        let published = self.published();
        if published.load(Ordering::Acquire) == DESTROYED_WORD {
            return Err(RegistryError::NotFound);
        }
        let mut entries: Vec<RawEntry> = Vec::new();
        for attempt in 0..READ_ATTEMPTS {
            let word = published.load(Ordering::Acquire);
            let (version, index) = split_published(word);
            let head = self.copy_slot(index, &mut entries);
            // Keeps the copy's loads before the re-check below.
            fence(Ordering::Acquire);
            if published.load(Ordering::Relaxed) == word {
                return decode_slot(segment, version, index, &head, &entries);
            }
            if attempt < SPIN_ATTEMPTS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        Err(RegistryError::Corrupt(format!(
            "{segment}: segment is changing too fast ({READ_ATTEMPTS} inconsistent copies in a row)"
        )))
    }

    /// Copies slot `index`'s head and its first `min(count, MAX_SERVERS)` entries. The values may
    /// be torn if a writer is reusing the slot; the caller finds out and discards them.
    fn copy_slot(&self, index: usize, entries: &mut Vec<RawEntry>) -> SlotHead {
        let slot = self.slot(index);
        // SAFETY: the head is in bounds and aligned; volatile because another process may write
        // it concurrently; any bits are a valid SlotHead (integers only).
        let head = unsafe { ptr::read_volatile(addr_of!((*slot).head)) };
        let count = (head.count as usize).min(MAX_SERVERS);
        entries.clear();
        entries.reserve(count);
        // SAFETY: the entry array has MAX_SERVERS elements, so `entries_base + i` for i < count
        // <= MAX_SERVERS stays inside it; entries are 8-aligned and ENTRY_WORDS * 8 bytes long,
        // so both the source and the destination can be accessed as aligned u64 words; any bits
        // are a valid RawEntry (integers and bytes only), so the copy is initialised once every
        // word is written.
        unsafe {
            let entries_base = addr_of!((*slot).entries).cast::<RawEntry>();
            for i in 0..count {
                let src = entries_base.add(i).cast::<u64>();
                let mut copy = MaybeUninit::<RawEntry>::uninit();
                let dst = copy.as_mut_ptr().cast::<u64>();
                for w in 0..ENTRY_WORDS {
                    dst.add(w).write(ptr::read_volatile(src.add(w)));
                }
                entries.push(copy.assume_init());
            }
        }
        head
    }

    /// Writes the header and an empty list into slot 0 and publishes it. Called by a writer that
    /// holds the lock on a segment nobody has published yet.
    pub fn initialise(&self, version: u64) {
        assert!(self.writable, "initialise on a read-only mapping");
        let h = self.header();
        let head = SlotHead {
            version,
            count: 0,
            distribution: distribution_code(Distribution::KetamaMd5),
            replicas: 1,
            reserved: 0,
        };
        // SAFETY: a PROT_WRITE mapping of the whole segment; the fields are in bounds and
        // aligned; readers do not use them until the Release store below makes them visible,
        // and the segment lock keeps other writers away.
        unsafe {
            ptr::write_volatile(addr_of_mut!((*h).magic), MAGIC);
            ptr::write_volatile(addr_of_mut!((*h).layout_version), LAYOUT_VERSION);
            ptr::write_volatile(addr_of_mut!((*h).header_size), HEADER_SIZE as u32);
            ptr::write_volatile(addr_of_mut!((*h).slot_size), SLOT_SIZE as u32);
            ptr::write_volatile(addr_of_mut!((*h).max_servers), MAX_SERVERS as u32);
            ptr::write_volatile(addr_of_mut!((*h).reserved), [0; 4]);
            ptr::write_volatile(addr_of_mut!((*self.slot(0)).head), head);
        }
        self.published()
            .store(published_word(version, 0), Ordering::Release);
    }

    /// Marks the segment as destroyed (before it is unlinked): the word every attached reader
    /// loads changes, so handles notice on their next operation, with no extra cost, that they
    /// must look for the segment afresh. The caller holds the segment lock.
    pub fn mark_destroyed(&self) {
        assert!(self.writable, "mark_destroyed on a read-only mapping");
        self.published().store(DESTROYED_WORD, Ordering::Release);
    }

    /// Writes `list` (validated, version already assigned) into the slot `published` does not
    /// name, then publishes it with one Release store. The caller holds the segment lock.
    pub fn publish(&self, list: &DomainList) {
        assert!(self.writable, "publish on a read-only mapping");
        assert!(list.servers.len() <= MAX_SERVERS);
        let published = self.published();
        let (_, current) = split_published(published.load(Ordering::Acquire));
        let spare = current ^ 1;
        // A reader may still be copying the spare slot under the word it loaded before the
        // previous publish. This fence orders our writes to the slot after that publish (which
        // we just loaded), so if the reader sees any of them, its re-check sees the newer word.
        fence(Ordering::Release);
        let slot = self.slot(spare);
        // SAFETY: a PROT_WRITE mapping; the spare slot is in bounds and aligned, and at most
        // MAX_SERVERS entries are written. Concurrent readers of this slot only make volatile
        // copies that they discard (their published word has changed); the lock keeps other
        // writers away.
        unsafe {
            let entries_base = addr_of_mut!((*slot).entries).cast::<RawEntry>();
            for (i, server) in list.servers.iter().enumerate() {
                ptr::write_volatile(entries_base.add(i), encode_entry(server));
            }
            ptr::write_volatile(addr_of_mut!((*slot).head), encode_head(list));
        }
        // The commit point: from here on readers see the new slot, complete.
        published.store(published_word(list.version, spare), Ordering::Release);
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base` came from mmap with this length and is unmapped exactly once; no
        // reference into the mapping outlives `self` (they all borrow it).
        unsafe { libc::munmap(self.base.as_ptr().cast(), SEGMENT_SIZE) };
    }
}
