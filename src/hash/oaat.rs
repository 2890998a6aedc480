//! Bob Jenkins' one-at-a-time hash as libhashkit computes it (libmemcached's default key hash).

/// One-at-a-time over the key bytes read as `signed char`: a byte `b >= 0x80` contributes
/// `0xFFFFFF80 | b`, as it does on x86-64 and arm64 Linux builds of libhashkit.
#[inline]
pub fn one_at_a_time(key: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &b in key {
        h = h.wrapping_add(b as i8 as i32 as u32);
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h.wrapping_add(h << 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_values() {
        assert_eq!(one_at_a_time(b"apple"), 2_297_466_611);
        assert_eq!(one_at_a_time(&[0xff, 0xfe, 0x80]), 1_422_681_282);
        assert_eq!(one_at_a_time(b""), 0);
    }
}
