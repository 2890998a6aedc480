//! The byte layout of a domain segment (`/dev/shm/memcache.<domain>`), layout version 1.
//!
//! ```text
//! offset  size    field                     (all integers native-endian: a segment never leaves its host)
//! ------  ------  ------------------------------------------------------------------------------
//! Header, 64 bytes, written once when the segment is created and never changed afterwards,
//! except `published`.
//!      0       8  magic           0x4D43_444F_4D41_494E ("MCDOMAIN" read as a big-endian u64)
//!      8       4  layout_version  1
//!     12       4  header_size     64
//!     16       4  slot_size       67608
//!     20       4  max_servers     256
//!     24       8  published       AtomicU64: version << 1 | slot index (0 or 1); 0 = not yet initialised
//!     32      32  reserved        zero
//! Slot 0 at 64, slot 1 at 64 + 67608 = 67672; each slot (67608 bytes):
//!      0       8  version         the version this slot holds
//!      8       4  count           servers in use, 0..=256
//!     12       4  distribution    0 = crc32-modulo, 1 = ketama-md5
//!     16       4  replicas        1..=256 (reserved for later; 1 = no replication)
//!     20       4  reserved        zero
//!     24  256*264 entries         count used, the rest ignored
//! Entry (264 bytes):
//!      0     256  host            NUL-terminated, 1..=255 bytes before the NUL
//!    256       2  port            1..=65535, or 0 for a unix socket path (host starting with '/')
//!    258       2  flags           bit 0: TLS (the server is spoken to over TLS); other bits zero
//!    260       4  weight          >= 1
//! Total: 64 + 2 * 67608 = 135280 bytes.
//! ```
//!
//! Protocol. Writers hold `flock(LOCK_EX)` on the segment (the kernel drops it when a writer
//! dies). A writer fills the slot that `published` does not name, then stores the new
//! `published` word with Release ordering: that single store is the commit point, so whatever
//! instant a writer is killed at, `published` names a slot that was completely written. A reader
//! loads `published` (Acquire), copies the named slot with volatile reads, issues an Acquire fence
//! and loads `published` again; if the word changed, a writer may have been reusing the slot
//! while it was copied and the copy is thrown away and retried. Versions only grow, so an
//! unchanged word means an unchanged slot (no ABA). Only after a stable copy is everything in it
//! validated, because the segment is untrusted input: the owner checks keep other users out, but
//! not bugs, older layouts or a hand-edited file.
//!
//! Every field is an integer or a byte array, so any bit pattern (including a torn one) is a
//! valid value of these types; that is what makes copying a slot that is being written harmless.

use std::sync::atomic::AtomicU64;

use crate::hash::Distribution;

/// "MCDOMAIN" read as a big-endian u64; stored native-endian, so a segment from a host of the
/// other byte order is refused as a bad magic.
pub const MAGIC: u64 = 0x4D43_444F_4D41_494E;
/// Bumped whenever anything in this file changes meaning or place.
pub const LAYOUT_VERSION: u32 = 1;
/// Servers a domain can hold.
pub const MAX_SERVERS: usize = 256;
/// An entry's flag: the server is spoken to over TLS. In what layout 1 called a reserved zero
/// field, so older readers see it as 0 and would speak plaintext to the server, which refuses
/// them: nothing is sent in clear that the server takes.
pub const FLAG_TLS: u16 = 1;

/// Bytes reserved for a host, its terminating NUL included.
pub const HOST_SIZE: usize = 256;

/// The segment header. `published` is the only field that changes after creation.
#[repr(C)]
pub struct Header {
    pub magic: u64,
    pub layout_version: u32,
    pub header_size: u32,
    pub slot_size: u32,
    pub max_servers: u32,
    pub published: AtomicU64,
    pub reserved: [u64; 4],
}

/// The fixed part of a slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SlotHead {
    pub version: u64,
    pub count: u32,
    pub distribution: u32,
    pub replicas: u32,
    pub reserved: u32,
}

/// One server as stored. 8-aligned (its size is a multiple of 8 and the entry array starts at
/// slot offset 24) so that it can be copied a u64 word at a time.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct RawEntry {
    pub host: [u8; HOST_SIZE],
    pub port: u16,
    pub reserved: u16,
    pub weight: u32,
}

/// One of the two list buffers.
#[repr(C)]
pub struct Slot {
    pub head: SlotHead,
    pub entries: [RawEntry; MAX_SERVERS],
}

pub const HEADER_SIZE: usize = std::mem::size_of::<Header>();
pub const SLOT_SIZE: usize = std::mem::size_of::<Slot>();
pub const ENTRY_SIZE: usize = std::mem::size_of::<RawEntry>();
/// Where slot `i` starts: `HEADER_SIZE + i * SLOT_SIZE`.
pub const SLOT_OFFSETS: [usize; 2] = [HEADER_SIZE, HEADER_SIZE + SLOT_SIZE];
/// The whole segment.
pub const SEGMENT_SIZE: usize = HEADER_SIZE + 2 * SLOT_SIZE;

// Byte offsets of the fields, as documented above; the tests check them against the structs, and
// the hostile-segment tests use them to plant bad values.
pub const OFF_MAGIC: usize = 0;
pub const OFF_LAYOUT_VERSION: usize = 8;
pub const OFF_HEADER_SIZE: usize = 12;
pub const OFF_SLOT_SIZE: usize = 16;
pub const OFF_MAX_SERVERS: usize = 20;
pub const OFF_PUBLISHED: usize = 24;
pub const OFF_SLOT_VERSION: usize = 0;
pub const OFF_SLOT_COUNT: usize = 8;
pub const OFF_SLOT_DISTRIBUTION: usize = 12;
pub const OFF_SLOT_REPLICAS: usize = 16;
pub const OFF_SLOT_ENTRIES: usize = 24;
pub const OFF_ENTRY_HOST: usize = 0;
pub const OFF_ENTRY_PORT: usize = 256;
pub const OFF_ENTRY_WEIGHT: usize = 260;

const _: () = assert!(HEADER_SIZE == 64);
const _: () = assert!(ENTRY_SIZE == 264);
const _: () = assert!(SLOT_SIZE == 24 + MAX_SERVERS * ENTRY_SIZE);
const _: () = assert!(
    SLOT_SIZE % 8 == 0,
    "slot 1 and its u64 version stay aligned"
);
const _: () = assert!(std::mem::align_of::<RawEntry>() == 8 && ENTRY_SIZE % 8 == 0);
/// u64 words in an entry, for the word-wise volatile copy.
pub const ENTRY_WORDS: usize = ENTRY_SIZE / 8;
const _: () = assert!(SEGMENT_SIZE == 135_280);

/// The stored code of a distribution.
pub fn distribution_code(d: Distribution) -> u32 {
    match d {
        Distribution::Crc32Modulo => 0,
        Distribution::KetamaMd5 => 1,
    }
}

/// The distribution a stored code means, if any.
pub fn distribution_from_code(code: u32) -> Option<Distribution> {
    match code {
        0 => Some(Distribution::Crc32Modulo),
        1 => Some(Distribution::KetamaMd5),
        _ => None,
    }
}

/// The published word for `version` in slot `slot`.
pub fn published_word(version: u64, slot: usize) -> u64 {
    debug_assert!(slot < 2 && version <= u64::MAX >> 1);
    version << 1 | slot as u64
}

/// Splits a published word into (version, slot index).
pub fn split_published(word: u64) -> (u64, usize) {
    (word >> 1, (word & 1) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;
    use std::ptr::addr_of;

    #[test]
    fn documented_offsets_match_the_structs() {
        let header = MaybeUninit::<Header>::uninit();
        let h = header.as_ptr();
        let slot = MaybeUninit::<Slot>::uninit();
        let s = slot.as_ptr();
        let entry = MaybeUninit::<RawEntry>::uninit();
        let e = entry.as_ptr();
        let off = |field: *const u8, base: *const u8| field as usize - base as usize;
        // SAFETY: addr_of! only computes field addresses inside the MaybeUninit buffers above; no
        // uninitialised memory is read and no reference is created.
        let offsets = unsafe {
            [
                (off(addr_of!((*h).magic).cast(), h.cast()), OFF_MAGIC),
                (
                    off(addr_of!((*h).layout_version).cast(), h.cast()),
                    OFF_LAYOUT_VERSION,
                ),
                (
                    off(addr_of!((*h).header_size).cast(), h.cast()),
                    OFF_HEADER_SIZE,
                ),
                (
                    off(addr_of!((*h).slot_size).cast(), h.cast()),
                    OFF_SLOT_SIZE,
                ),
                (
                    off(addr_of!((*h).max_servers).cast(), h.cast()),
                    OFF_MAX_SERVERS,
                ),
                (
                    off(addr_of!((*h).published).cast(), h.cast()),
                    OFF_PUBLISHED,
                ),
                (
                    off(addr_of!((*s).head.version).cast(), s.cast()),
                    OFF_SLOT_VERSION,
                ),
                (
                    off(addr_of!((*s).head.count).cast(), s.cast()),
                    OFF_SLOT_COUNT,
                ),
                (
                    off(addr_of!((*s).head.distribution).cast(), s.cast()),
                    OFF_SLOT_DISTRIBUTION,
                ),
                (
                    off(addr_of!((*s).head.replicas).cast(), s.cast()),
                    OFF_SLOT_REPLICAS,
                ),
                (
                    off(addr_of!((*s).entries).cast(), s.cast()),
                    OFF_SLOT_ENTRIES,
                ),
                (off(addr_of!((*e).host).cast(), e.cast()), OFF_ENTRY_HOST),
                (off(addr_of!((*e).port).cast(), e.cast()), OFF_ENTRY_PORT),
                (
                    off(addr_of!((*e).weight).cast(), e.cast()),
                    OFF_ENTRY_WEIGHT,
                ),
            ]
        };
        for (i, (actual, documented)) in offsets.into_iter().enumerate() {
            assert_eq!(actual, documented, "field #{i}");
        }
        assert_eq!(SLOT_OFFSETS, [64, 67_672]);
        assert_eq!(std::mem::align_of::<Slot>(), 8);
    }

    #[test]
    fn codes_and_words() {
        for d in [Distribution::Crc32Modulo, Distribution::KetamaMd5] {
            assert_eq!(distribution_from_code(distribution_code(d)), Some(d));
        }
        assert_eq!(distribution_from_code(7), None);
        let v = 20_241_121 * 10_000_000 + 42;
        assert_eq!(split_published(published_word(v, 1)), (v, 1));
        assert_eq!(split_published(published_word(v, 0)), (v, 0));
        assert_eq!(&MAGIC.to_be_bytes(), b"MCDOMAIN");
    }
}
