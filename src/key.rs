//! Key validation: the one check every key passes before a server is chosen or a byte is sent.
#![forbid(unsafe_code)]

/// Longest key memcached accepts (`MAX_KEY_LEN` in memcache.h).
pub const MAX_KEY_LEN: usize = 250;

/// Keys starting with this are reserved for the server-list records that `mcadmin publish`
/// stores (`__memcache_domain__:<domain>`, see [`crate::propagate`]): ordinary operations refuse
/// them, so an application cannot overwrite or read a record by accident.
pub const RESERVED_PREFIX: &[u8] = b"__memcache_domain__:";

/// Why a key was refused; the message is what the error handler reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    Empty,
    TooLong,
    /// Whitespace or a control byte at this 0-based position: it would split or end the command.
    BadByte(usize),
    /// Starts with [`RESERVED_PREFIX`]: only the server-list propagation may use such a key.
    Reserved,
}

impl KeyError {
    /// Why, without saying that it is about a key: for a report whose description already
    /// says "invalid key", as the C API's does.
    pub fn reason(self) -> &'static str {
        match self {
            KeyError::Empty => "empty",
            KeyError::TooLong => "longer than 250 bytes",
            KeyError::BadByte(_) => "contains whitespace or a control byte",
            KeyError::Reserved => {
                "keys starting with __memcache_domain__: are reserved for mcadmin"
            }
        }
    }

    /// "invalid key: REASON", what the Rust front ends report.
    pub fn message(self) -> String {
        format!("invalid key: {}", self.reason())
    }
}

/// A key is 1..=250 bytes with no byte in 0x00..=0x20 or 0x7F (bytes 0x80..=0xFF are fine), and
/// does not start with [`RESERVED_PREFIX`].
pub fn check(key: &[u8]) -> Result<(), KeyError> {
    check_admin(key)?;
    if key.starts_with(RESERVED_PREFIX) {
        return Err(KeyError::Reserved);
    }
    Ok(())
}

/// [`check`] without the reservation: the check of the record keys that only
/// [`crate::propagate`] uses.
pub fn check_admin(key: &[u8]) -> Result<(), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    if !has_bad_byte(key) {
        return Ok(());
    }
    match key.iter().position(|&b| is_bad(b)) {
        Some(at) => Err(KeyError::BadByte(at)),
        None => Ok(()),
    }
}

fn is_bad(b: u8) -> bool {
    b <= 0x20 || b == 0x7f
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `word` (eight bytes, little-endian) that is a space or a
/// control byte (at or below 0x20): such a byte makes its subtraction borrow, and bytes with
/// the high bit set are masked out by `!word`. Exact as an "is there any" test, and the lowest
/// flag is exact too (a false flag can only follow a true one), so it also finds the first.
pub(crate) fn space_or_control(word: u64) -> u64 {
    word.wrapping_sub(ONES * 0x21) & !word & HIGHS
}

/// Whether any byte is whitespace, a control byte or DEL, eight bytes at a time (every key of
/// every operation passes here).
fn has_bad_byte(key: &[u8]) -> bool {
    let bad = |word: u64| {
        let del = word ^ (ONES * 0x7f);
        let is_del = del.wrapping_sub(ONES) & !del & HIGHS;
        space_or_control(word) | is_del != 0
    };
    let word_at = |at: usize| u64::from_le_bytes(key[at..at + 8].try_into().expect("8 bytes"));
    if key.len() < 8 {
        // Padded with an allowed byte to one word.
        let mut word = [b'a'; 8];
        word[..key.len()].copy_from_slice(key);
        return bad(u64::from_le_bytes(word));
    }
    let mut at = 0;
    while at + 8 < key.len() {
        if bad(word_at(at)) {
            return true;
        }
        at += 8;
    }
    // The last eight bytes, overlapping bytes already checked rather than going byte by byte.
    bad(word_at(key.len() - 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_printable_and_high_bytes() {
        assert_eq!(check(b"foo"), Ok(()));
        assert_eq!(check(b"\x80\xff!~"), Ok(()));
        assert_eq!(check(&[b'k'; 250]), Ok(()));
    }

    #[test]
    fn the_word_test_agrees_with_the_byte_rule_for_every_byte_at_every_position() {
        for len in 1..=20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut key = vec![b'k'; len];
                    key[at] = b;
                    assert_eq!(
                        has_bad_byte(&key),
                        is_bad(b),
                        "byte {b:#x} at {at} of {len}"
                    );
                }
            }
        }
        assert!(!has_bad_byte(&[
            0x80, 0xff, 0xa0, 0x21, 0x7e, 0xfe, 0x81, 0x90, 0xff
        ]));
    }

    #[test]
    fn refuses_what_would_break_the_command_line() {
        assert_eq!(check(b""), Err(KeyError::Empty));
        assert_eq!(check(&[b'k'; 251]), Err(KeyError::TooLong));
        assert_eq!(check(b"a b"), Err(KeyError::BadByte(1)));
        assert_eq!(check(b"ab\r\nset x"), Err(KeyError::BadByte(2)));
        assert_eq!(check(b"\0"), Err(KeyError::BadByte(0)));
        assert_eq!(check(b"ab\x7f"), Err(KeyError::BadByte(2)));
        assert_eq!(check(b"tab\t"), Err(KeyError::BadByte(3)));
    }

    #[test]
    fn the_record_prefix_is_reserved() {
        for key in [
            &b"__memcache_domain__:"[..],
            b"__memcache_domain__:default",
            b"__memcache_domain__:a.b-c_d",
        ] {
            assert_eq!(check(key), Err(KeyError::Reserved), "{key:?}");
            assert_eq!(check_admin(key), Ok(()), "{key:?}");
        }
        // Only the exact prefix, at the start.
        for key in [
            &b"__memcache_domain__"[..],
            b"__memcache_domain_:x",
            b"__MEMCACHE_DOMAIN__:x",
            b"x__memcache_domain__:x",
        ] {
            assert_eq!(check(key), Ok(()), "{key:?}");
        }
        // The syntax check comes first and applies to admin keys too.
        assert_eq!(
            check(b"__memcache_domain__:a b"),
            Err(KeyError::BadByte(21))
        );
        assert_eq!(
            check_admin(b"__memcache_domain__:a b"),
            Err(KeyError::BadByte(21))
        );
        assert_eq!(check_admin(b""), Err(KeyError::Empty));
        assert!(KeyError::Reserved.message().contains("reserved"));
        for e in [
            KeyError::Empty,
            KeyError::TooLong,
            KeyError::BadByte(0),
            KeyError::Reserved,
        ] {
            let reason = e.reason();
            assert!(
                !reason.contains("invalid key") && !reason.is_empty(),
                "{e:?}"
            );
            assert_eq!(e.message(), format!("invalid key: {reason}"));
        }
    }
}
