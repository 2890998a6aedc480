//! Standard reflected CRC-32 (polynomial 0xEDB88320, init and final XOR 0xFFFFFFFF; zlib's
//! `crc32()`), computed slice-by-8 with tables built at compile time, and the libmemcache 1.4
//! key hash derived from it.

const POLY: u32 = 0xEDB8_8320;

/// `TABLES[0]` is the classic byte-at-a-time table; `TABLES[k][b]` is the CRC contribution of byte
/// `b` followed by `k` zero bytes.
static TABLES: [[u32; 256]; 8] = build_tables();

const fn build_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

/// Feeds `data` into a raw (pre-inverted) CRC state.
#[inline]
fn update(mut crc: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ b as u32) & 0xff) as usize];
    }
    crc
}

/// The standard CRC-32 of `data` (zlib's `crc32(0, data, len)`); `crc32(b"") == 0`.
#[inline]
pub fn crc32(data: &[u8]) -> u32 {
    !update(0xFFFF_FFFF, data)
}

/// The libmemcache 1.4 key hash (spec §8.1 steps 2–4): `(crc32(key) >> 16) & 0x7fff`, with 0
/// mapped to 1. The "0 or 1 servers hash to 1" rule of step 1 is the caller's business
/// ([`crate::hash::Selector::hash`] applies it).
#[inline]
pub fn libmemcache_hash(key: &[u8]) -> u32 {
    let h = (crc32(key) >> 16) & 0x7fff;
    if h == 0 {
        1
    } else {
        h
    }
}

/// libhashkit's `crc` hash (id 2): the same 15 bits, but 0 stays 0.
#[inline]
pub fn hashkit_crc(key: &[u8]) -> u32 {
    (crc32(key) >> 16) & 0x7fff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time reference, independent of the tables.
    fn crc32_bitwise(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    /// Spec §8.1 test vectors: key, crc32, hash, hash % 3.
    const VECTORS: &[(&[u8], u32, u32, u32)] = &[
        (b"foo", 0x8c73_6521, 3187, 1),
        (b"bar", 0x76ff_8caa, 30463, 1),
        (b"key1", 0x2c5c_6450, 11356, 1),
        (b"hello world", 0x0d4a_1185, 3402, 0),
        (b"a", 0xe8b7_be43, 26807, 2),
        (b"", 0x0000_0000, 1, 1),
        (b"testing_key0", 0x0cab_8ad6, 3243, 0),
        (b"\xff\x80", 0x3f45_6cad, 16197, 0),
        (b"k1", 0x960e_a0a9, 5646, 0),
        (b"k2", 0x0f07_f113, 3847, 1),
        (b"k3", 0x7800_c185, 30720, 0),
        (b"n", 0x7808_a3d2, 30728, 2),
    ];

    #[test]
    fn spec_vectors() {
        assert_eq!(VECTORS.len(), 12);
        for &(key, c, h, m) in VECTORS {
            assert_eq!(crc32(key), c, "crc32 of {key:?}");
            assert_eq!(libmemcache_hash(key), h, "hash of {key:?}");
            assert_eq!(libmemcache_hash(key) % 3, m, "hash % 3 of {key:?}");
        }
    }

    #[test]
    fn check_value_and_slicing() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 3) as u8).collect();
        for len in 0..data.len() {
            for start in [0, 1, 3, 7] {
                if start <= len {
                    let s = &data[start..len];
                    assert_eq!(crc32(s), crc32_bitwise(s), "len {} start {start}", s.len());
                }
            }
        }
    }

    #[test]
    fn hashkit_crc_spot_values() {
        assert_eq!(hashkit_crc(b"apple"), 10542);
        assert_eq!(hashkit_crc(&[0xff, 0xfe, 0x80]), 9822);
    }
}
