//! The libhashkit `md5` key hash (id 1), also the key hash of the ketama-md5 distribution.

use ::md5::{Digest, Md5};

/// The full MD5 digest of `data`.
#[inline]
pub fn md5_digest(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// The first 4 bytes of `MD5(key)` read as a little-endian `u32`.
#[inline]
pub fn md5_hash(key: &[u8]) -> u32 {
    let d = md5_digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_values() {
        assert_eq!(md5_hash(b"apple"), 3_195_025_439);
        assert_eq!(md5_hash(&[0xff, 0xfe, 0x80]), 3_673_073_221);
    }
}
