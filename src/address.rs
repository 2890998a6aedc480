//! One memcached server as every part of the library names it: the Rust client's list, a domain's
//! list in shared memory, a propagation record, mcadmin's command line and the ketama ring all
//! use [`ServerAddr`], and the defaults (port, weight) live here and nowhere else.
//!
//! The shared-memory segment stores the same three fields in its own fixed layout
//! (`registry::layout::RawEntry`); `registry::codec` converts between the two.
#![forbid(unsafe_code)]

use std::fmt;

/// memcached's port, used when an address names none. Ketama leaves it out of its point strings.
pub const DEFAULT_PORT: u16 = 11211;

/// The weight of a server given without one. A weight of 0 places keys as 1 would.
pub const DEFAULT_WEIGHT: u32 = 1;

/// The port of a unix socket path.
pub const UNIX_PORT: u16 = 0;

/// The host named by an empty address (as 1.4's `mc_server_add4("")` does).
pub const DEFAULT_HOST: &str = "localhost";

/// Longest host: no DNS name (253 bytes) or socket path (107) is longer, and a domain segment
/// keeps it NUL-terminated in 256 bytes.
pub const MAX_HOST_LEN: usize = 255;

/// One server: where it is, and its share of the keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    /// Host name, IP literal (IPv6 without brackets) or unix socket path (leading `/`).
    pub host: String,
    /// TCP port (1..=65535); [`UNIX_PORT`] (0) for a unix socket.
    pub port: u16,
    /// Relative weight for ketama placement; 0 counts as 1 there, and a domain list stores at
    /// least 1.
    pub weight: u32,
    /// Spoken to over TLS (written `tls://HOST:PORT`). Not part of the server's identity: the
    /// same host and port over TLS is the same server, holding the same keys.
    pub tls: bool,
}

/// What starts the address of a server spoken to over TLS.
pub const TLS_SCHEME: &str = "tls://";

/// Why a text or a [`ServerAddr`] does not name a server. `Display` is one line:
/// `bad server address "TEXT": REASON`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressError {
    address: String,
    reason: String,
    syntax: bool,
}

impl AddressError {
    /// The address as given (or as shown, for a built [`ServerAddr`]).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// What is wrong with it, naming the part at fault.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// True when the text could not be read as an address at all (a port that is not a number
    /// from 0 to 65535, an empty text); false when it reads as one that cannot name a server
    /// (port 0 included).
    pub fn is_syntax(&self) -> bool {
        self.syntax
    }
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug-quoted, so a control byte in the text cannot break the line.
        write!(f, "bad server address {:?}: {}", self.address, self.reason)
    }
}

impl std::error::Error for AddressError {}

impl ServerAddr {
    /// A server at `host` and `port` with the default weight; not checked (see [`check`](Self::check)).
    pub fn new(host: impl Into<String>, port: u16) -> ServerAddr {
        ServerAddr {
            host: host.into(),
            port,
            weight: DEFAULT_WEIGHT,
            tls: false,
        }
    }

    /// Parses `host:port`, `host` (port 11211), `[v6]:port`, a bare IPv6 literal or a unix
    /// socket path `/path` (an appended `:digits` is dropped, as 1.4 does), with weight 1, and
    /// checks the result; any of the network forms after `tls://` is a TLS server. Surrounding
    /// whitespace is ignored.
    pub fn parse(text: &str) -> Result<ServerAddr, AddressError> {
        ServerAddr::parse_weighted(text, DEFAULT_WEIGHT)
    }

    /// [`parse`](Self::parse) with `weight`.
    pub fn parse_weighted(text: &str, weight: u32) -> Result<ServerAddr, AddressError> {
        let text = text.trim();
        let syntax = |reason: &str| AddressError {
            address: text.to_owned(),
            reason: reason.to_owned(),
            syntax: true,
        };
        if text.is_empty() {
            return Err(syntax("empty address"));
        }
        let (tls, rest) = strip_tls(text);
        if tls && rest.is_empty() {
            return Err(syntax("no host after tls://"));
        }
        let (host, port) = split_host_port(rest.as_bytes());
        let port = if host.starts_with(b"/") {
            UNIX_PORT
        } else {
            match port {
                None => DEFAULT_PORT,
                Some(digits) => parse_port(digits)
                    .ok_or_else(|| syntax("port is not a number from 0 to 65535"))?,
            }
        };
        let addr = ServerAddr {
            // Cut from `text` at ASCII bytes: UTF-8, so nothing is replaced.
            host: String::from_utf8_lossy(host).into_owned(),
            port,
            weight,
            tls,
        };
        addr.check().map_err(|e| AddressError {
            address: text.to_owned(),
            ..e
        })?;
        Ok(addr)
    }

    /// `ADDRESS` or `ADDRESS=WEIGHT` (how mcadmin's `set` names servers): the address, with
    /// weight 1, and the weight when one is written (a decimal number from 1 to 4294967295).
    /// Only a final `=digits` is a weight, so a socket path that itself ends in `=digits` needs
    /// an explicit weight after it.
    pub fn parse_with_weight(text: &str) -> Result<(ServerAddr, Option<u32>), AddressError> {
        let text = text.trim();
        match text.rsplit_once('=') {
            Some((address, digits))
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let weight = digits
                    .parse::<u32>()
                    .ok()
                    .filter(|&w| w >= 1 && !digits.starts_with('0'))
                    .ok_or_else(|| AddressError {
                        address: text.to_owned(),
                        reason: format!("weight {digits} is not a number from 1 to {}", u32::MAX),
                        syntax: true,
                    })?;
                let addr = ServerAddr::parse_weighted(address, weight)?;
                Ok((addr, Some(weight)))
            }
            _ => Ok((ServerAddr::parse(text)?, None)),
        }
    }

    /// True for a unix socket path.
    pub fn is_unix(&self) -> bool {
        self.host.starts_with('/')
    }

    /// Refuses a host and port that cannot name a server (the fields are public, so whoever takes
    /// a built value checks it again). The weight is not looked at: 0 counts as 1 for placement,
    /// and a domain list has its own rule for it.
    pub fn check(&self) -> Result<(), AddressError> {
        let bad = |reason: String| AddressError {
            address: self.to_string(),
            reason,
            syntax: false,
        };
        let host = &self.host;
        if host.is_empty() {
            return Err(bad("empty host".to_owned()));
        }
        if host.len() > MAX_HOST_LEN {
            return Err(bad(format!(
                "host is {} bytes long, the maximum is {MAX_HOST_LEN}",
                host.len()
            )));
        }
        if let Some(at) = host.bytes().position(|b| b <= 0x20 || b == 0x7f) {
            return Err(bad(format!(
                "host {host:?} has whitespace or a control byte at position {at}"
            )));
        }
        if self.is_unix() {
            if self.tls {
                return Err(bad(format!("unix socket {host} cannot be TLS")));
            }
            if self.port != UNIX_PORT {
                return Err(bad(format!(
                    "unix socket {host} must have port 0, not {}",
                    self.port
                )));
            }
        } else if self.port == 0 {
            return Err(bad(format!("host {host} has port 0")));
        } else if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
            // Only an IPv6 literal may contain ':'; anything else is a mangled HOST:PORT.
            return Err(bad(format!(
                "host {host:?} has ':' but is not an IPv6 address"
            )));
        } else if host.contains(['[', ']', '/', ',']) {
            return Err(bad(format!(
                "host {host:?} has a character no host name has"
            )));
        }
        Ok(())
    }

    /// Whether two addresses name the same server: same port and same host, compared ASCII
    /// case-insensitively for DNS names and exactly for socket paths. Weights do not matter.
    pub fn same_server(&self, other: &ServerAddr) -> bool {
        self.port == other.port
            && if self.is_unix() {
                self.host == other.host
            } else {
                self.host.eq_ignore_ascii_case(&other.host)
            }
    }
}

/// Whether `text` names a TLS server (`tls://`, in any case), and the rest of it.
pub fn strip_tls(text: &str) -> (bool, &str) {
    match text.get(..TLS_SCHEME.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(TLS_SCHEME) => {
            (true, &text[TLS_SCHEME.len()..])
        }
        _ => (false, text),
    }
}

/// Splits an address text into its host and, when one is written, its port text: `[v6]:port`,
/// `[v6]`, a bare IPv6 literal (two colons or more), `host:port`, `host:` (no port), `:port` or
/// an empty text (localhost), or a socket path with an optional `:digits` suffix (returned
/// without it, and without a port: a socket has [`UNIX_PORT`]). Bytes, not text: the C API
/// splits what a program passed (`mc_server_add4`) with the same rules. The port text is not
/// checked here (see [`parse_port`]); the cuts fall on ASCII bytes, so the parts of UTF-8 text
/// are UTF-8.
pub fn split_host_port(text: &[u8]) -> (&[u8], Option<&[u8]>) {
    let all_digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    if text.is_empty() {
        return (DEFAULT_HOST.as_bytes(), None);
    }
    if text[0] == b'/' {
        return match text.iter().rposition(|&b| b == b':') {
            Some(colon) if all_digits(&text[colon + 1..]) => (&text[..colon], None),
            _ => (text, None),
        };
    }
    if text[0] == b'[' {
        if let Some(close) = text.iter().position(|&b| b == b']') {
            let host = &text[1..close];
            return match &text[close + 1..] {
                [] | [b':'] => (host, None),
                [b':', digits @ ..] => (host, Some(digits)),
                // Something after the bracket that is not a port: the whole text is refused
                // as a host.
                _ => (text, None),
            };
        }
    }
    let mut colons = text.iter().enumerate().filter(|&(_, &b)| b == b':');
    match (colons.next(), colons.next()) {
        (Some((colon, _)), None) => {
            let host = match &text[..colon] {
                [] => DEFAULT_HOST.as_bytes(),
                host => host,
            };
            let port = &text[colon + 1..];
            (host, (!port.is_empty()).then_some(port))
        }
        _ => (text, None),
    }
}

/// A port text: decimal digits only (no sign, no service name), 0..=65535.
/// [`ServerAddr::check`] refuses 0 for TCP.
pub fn parse_port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    u16::try_from(value).ok()
}

impl fmt::Display for ServerAddr {
    /// `host:port` (`[v6]:port` for a host with colons), or the bare socket path, after `tls://`
    /// for a TLS server; what it shows parses back to the same server.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tls {
            f.write_str(TLS_SCHEME)?;
        }
        if self.is_unix() {
            f.write_str(&self.host)
        } else if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for ServerAddr {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<ServerAddr, AddressError> {
        ServerAddr::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_weights() {
        let parsed = |t: &str| ServerAddr::parse_with_weight(t).unwrap();
        assert_eq!(
            parsed("127.0.0.1:11211"),
            (ServerAddr::new("127.0.0.1", 11211), None)
        );
        let (a, w) = parsed("127.0.0.1:11211=3");
        assert_eq!(
            (a.host.as_str(), a.port, a.weight, w),
            ("127.0.0.1", 11211, 3, Some(3))
        );
        let (a, w) = parsed("[::1]:11212=2");
        assert_eq!((a.host.as_str(), a.port, w), ("::1", 11212, Some(2)));
        let (a, w) = parsed("/run/mc=5.sock=7");
        assert_eq!((a.host.as_str(), a.port, w), ("/run/mc=5.sock", 0, Some(7)));
        for bad in [
            "127.0.0.1:1=0",
            "127.0.0.1:1=01",
            "127.0.0.1:1=4294967296",
            "=3",
        ] {
            let e = ServerAddr::parse_with_weight(bad).unwrap_err();
            assert!(e.is_syntax(), "{bad}: {e}");
        }
    }

    fn addr(s: &str) -> ServerAddr {
        ServerAddr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn forms() {
        let cases: [(&str, &str, u16, &str); 11] = [
            ("127.0.0.1:11300", "127.0.0.1", 11300, "127.0.0.1:11300"),
            ("cache1", "cache1", 11211, "cache1:11211"),
            ("cache1:", "cache1", 11211, "cache1:11211"),
            (" cache2:99 ", "cache2", 99, "cache2:99"),
            (":99", "localhost", 99, "localhost:99"),
            ("[::1]:11300", "::1", 11300, "[::1]:11300"),
            ("[::1]", "::1", 11211, "[::1]:11211"),
            ("[::1]:", "::1", 11211, "[::1]:11211"),
            ("2001:db8::7", "2001:db8::7", 11211, "[2001:db8::7]:11211"),
            ("/run/mc.sock", "/run/mc.sock", 0, "/run/mc.sock"),
            ("/run/mc.sock:0", "/run/mc.sock", 0, "/run/mc.sock"),
        ];
        for (input, host, port, shown) in cases {
            let a = addr(input);
            assert_eq!(
                (a.host.as_str(), a.port, a.weight),
                (host, port, DEFAULT_WEIGHT),
                "{input}"
            );
            assert_eq!(a.to_string(), shown, "{input}");
            // What Display shows parses back to the same server.
            assert_eq!(addr(shown), a, "{input}");
        }
        assert_eq!(ServerAddr::parse_weighted("h:1", 7).unwrap().weight, 7);
        assert_eq!(
            "h:2".parse::<ServerAddr>().unwrap(),
            ServerAddr::new("h", 2)
        );
    }

    #[test]
    fn tls_servers() {
        for (input, host, port, shown) in [
            ("tls://cache1:11300", "cache1", 11300, "tls://cache1:11300"),
            ("TLS://cache1", "cache1", 11211, "tls://cache1:11211"),
            ("tls://[::1]:99", "::1", 99, "tls://[::1]:99"),
        ] {
            let a = addr(input);
            assert_eq!(
                (a.host.as_str(), a.port, a.tls),
                (host, port, true),
                "{input}"
            );
            assert_eq!(a.to_string(), shown);
            assert_eq!(addr(shown), a);
            // The same server as without TLS: placement and duplicates see one server.
            assert!(a.same_server(&ServerAddr::new(host, port)));
        }
        assert!(!addr("cache1:1").tls);
        assert!(ServerAddr::parse("tls://").unwrap_err().is_syntax());
        let e = ServerAddr::parse("tls:///run/mc.sock").unwrap_err();
        assert!(e.reason().contains("cannot be TLS"), "{e}");
        let (a, w) = ServerAddr::parse_with_weight("tls://h:1=3").unwrap();
        assert_eq!((a.tls, a.weight, w), (true, 3, Some(3)));
    }

    /// The cuts the C API makes of what a program passes to `mc_server_add4`: the host and
    /// port strings it stores in `struct memcache_server`.
    #[test]
    fn split_forms() {
        let cases: [(&str, &str, Option<&str>); 16] = [
            ("", "localhost", None),
            ("host", "host", None),
            ("host:1234", "host", Some("1234")),
            ("host:", "host", None),
            ("host:x", "host", Some("x")),
            (":99", "localhost", Some("99")),
            ("[::1]:11300", "::1", Some("11300")),
            ("[::1]", "::1", None),
            ("[fe80::1]:", "fe80::1", None),
            ("[::1]x", "[::1]x", None),
            ("[::1", "[::1", None),
            ("::1", "::1", None),
            ("2001:db8::7", "2001:db8::7", None),
            ("/tmp/mc.sock", "/tmp/mc.sock", None),
            ("/tmp/mc.sock:0", "/tmp/mc.sock", None),
            ("/tmp/a:b", "/tmp/a:b", None),
        ];
        for (input, host, port) in cases {
            let (h, p) = split_host_port(input.as_bytes());
            assert_eq!(
                (h, p),
                (host.as_bytes(), port.map(str::as_bytes)),
                "{input}"
            );
        }
        assert_eq!(split_host_port(b"\xff:1"), (&b"\xff"[..], Some(&b"1"[..])));
    }

    #[test]
    fn ports() {
        for (text, port) in [
            ("0", Some(0)),
            ("11211", Some(11211)),
            ("65535", Some(65535)),
        ] {
            assert_eq!(parse_port(text.as_bytes()), port, "{text}");
        }
        for bad in ["", "65536", "+80", "-1", "1x", "000011211", "memcache"] {
            assert_eq!(parse_port(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn refused_texts() {
        let syntax = [
            "",
            "   ",
            "host:65536",
            "host:x",
            "host:+80",
            "host:-1",
            "[::1]:99999",
        ];
        let invalid = [
            "host:0",
            "a b:11211",
            "[::1:11211",
            "host\n:1",
            "a,b:1",
            "x:y:z",
            "[a]b]:1",
        ];
        for (inputs, is_syntax) in [(&syntax[..], true), (&invalid[..], false)] {
            for input in inputs {
                let e = ServerAddr::parse(input).unwrap_err();
                assert_eq!(e.is_syntax(), is_syntax, "{input:?}: {e}");
                let shown = e.to_string();
                assert!(!shown.contains('\n'), "{input:?}: {shown:?}");
                assert!(shown.starts_with("bad server address "), "{shown}");
            }
        }
    }

    #[test]
    fn refused_values() {
        let bad = [
            (ServerAddr::new("", 11211), "empty host"),
            (ServerAddr::new("h".repeat(256), 1), "256 bytes"),
            (ServerAddr::new("a b", 1), "whitespace"),
            (ServerAddr::new("a\0", 1), "control"),
            (ServerAddr::new("a\x7f", 1), "control"),
            (ServerAddr::new("mc1", 0), "port 0"),
            (ServerAddr::new("/run/mc.sock", 11211), "must have port 0"),
            (ServerAddr::new("a:b", 1), "not an IPv6"),
        ];
        for (a, why) in bad {
            let e = a.check().unwrap_err();
            assert!(e.reason().contains(why), "{a:?}: {e}");
            assert!(!e.is_syntax());
        }
        assert!(ServerAddr::new("h".repeat(255), 1).check().is_ok());
        let zero = ServerAddr {
            weight: 0,
            tls: false,
            ..ServerAddr::new("mc1", 1)
        };
        assert!(
            zero.check().is_ok(),
            "the weight is not the address's to refuse"
        );
    }

    #[test]
    fn same_server() {
        let a = ServerAddr::new("Cache", 1);
        assert!(a.same_server(&ServerAddr::parse_weighted("cache:1", 5).unwrap()));
        assert!(!a.same_server(&ServerAddr::new("cache", 2)));
        assert!(!ServerAddr::new("/s", 0).same_server(&ServerAddr::new("/S", 0)));
    }
}
