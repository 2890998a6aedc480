//! Domain names: the part of a segment's name that users choose, so it is checked before it gets
//! anywhere near `shm_open`.

use std::fmt;
use std::str::FromStr;

/// Longest domain name (and segment prefix) in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The name `mc_new_private()` uses for a per-handle list; it never names a segment.
pub const PRIVATE_DOMAIN: &str = "private";

/// Why a domain name (or a `MEMCACHE_SHM_PREFIX`) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    /// The length in bytes.
    TooLong(usize),
    /// The first byte outside `[A-Za-z0-9_.-]` and its 0-based position.
    BadByte {
        byte: u8,
        at: usize,
    },
    /// `"private"` means a per-handle list and cannot name a shared domain.
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => {
                f.write_str("empty name (1 to 64 bytes of A-Z a-z 0-9 _ . - needed)")
            }
            NameError::TooLong(len) => write!(f, "name is {len} bytes long, the maximum is 64"),
            NameError::BadByte { byte, at } => write!(
                f,
                "byte {:?} at position {at} is not allowed (only A-Z a-z 0-9 _ . -)",
                char::from(*byte)
            ),
            NameError::Reserved => {
                f.write_str("\"private\" is reserved for per-handle lists (mc_new_private)")
            }
        }
    }
}

impl std::error::Error for NameError {}

/// Checks the syntax shared by domain names and segment prefixes: 1..=64 bytes of `[A-Za-z0-9_.-]`.
pub(crate) fn check_token(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(s.len()));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-';
    match s.bytes().position(|b| !allowed(b)) {
        Some(at) => Err(NameError::BadByte {
            byte: s.as_bytes()[at],
            at,
        }),
        None => Ok(()),
    }
}

/// A validated name of a shared domain: 1..=64 bytes of `[A-Za-z0-9_.-]`, not `"private"`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(name: &str) -> Result<DomainName, NameError> {
        check_token(name)?;
        if name == PRIVATE_DOMAIN {
            return Err(NameError::Reserved);
        }
        Ok(DomainName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DomainName::parse(s)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(DomainName::parse(""), Err(NameError::Empty));
        assert_eq!(DomainName::parse("a").unwrap().as_str(), "a");
        let max = "d".repeat(64);
        assert_eq!(DomainName::parse(&max).unwrap().as_str(), max);
        assert_eq!(
            DomainName::parse(&"d".repeat(65)),
            Err(NameError::TooLong(65))
        );
    }

    #[test]
    fn every_allowed_byte() {
        let all = "ABCXYZabcxyz0189_.-";
        assert_eq!(DomainName::parse(all).unwrap().to_string(), all);
        assert!("my-app.v2_eu".parse::<DomainName>().is_ok());
        // Names that look like paths are just bytes after the prefix; they stay inside /dev/shm.
        assert!(DomainName::parse("..").is_ok());
    }

    #[test]
    fn bad_bytes() {
        for (name, at) in [
            ("a/b", 1),
            ("/etc", 0),
            ("a b", 1),
            ("tab\t", 3),
            ("nul\0", 3),
            ("caf\u{e9}", 3),
            ("x:y", 1),
            ("a*", 1),
        ] {
            match DomainName::parse(name) {
                Err(NameError::BadByte { at: got, .. }) => assert_eq!(got, at, "{name:?}"),
                other => panic!("{name:?} gave {other:?}"),
            }
        }
        let msg = DomainName::parse("a/b").unwrap_err().to_string();
        assert!(msg.contains("'/'") && msg.contains("position 1"), "{msg}");
    }

    #[test]
    fn private_is_reserved() {
        assert_eq!(DomainName::parse("private"), Err(NameError::Reserved));
        assert!(DomainName::parse("private2").is_ok());
        assert!(DomainName::parse("Private").is_ok());
        assert!(NameError::Reserved.to_string().contains("mc_new_private"));
        // The syntax check alone (used for prefixes) does not reserve it.
        assert_eq!(check_token("private"), Ok(()));
    }
}
