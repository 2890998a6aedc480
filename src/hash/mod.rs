#![forbid(unsafe_code)]
//! Key hashing and server selection.
//!
//! Two placement families are implemented (see `shared/spec/distribution.md`):
//!
//! * [`selector::Distribution::Crc32Modulo`]: the libmemcache 1.4 rule, `(crc32 >> 16) & 0x7fff`
//!   taken modulo the number of configured servers, dead servers skipped by linear probing;
//! * [`selector::Distribution::KetamaMd5`]: libmemcached's `KETAMA_WEIGHTED` continuum
//!   ([`ketama::Ring`]), with dead servers skipped at lookup time so that keys of live servers
//!   never move.
//!
//! Everything here is pure, allocation-free on the lookup path, and built once per server list.

pub mod crc32;
pub mod ketama;
pub mod md5;
pub mod oaat;
pub mod selector;

pub use crc32::{crc32, libmemcache_hash};
pub use ketama::{Ring, RingServer};
pub use md5::md5_hash;
pub use oaat::one_at_a_time;
pub use selector::{Distribution, Selector};
