//! The domain file: a domain's list as plain text an operator reads, edits and keeps in
//! configuration management. `mcadmin export` writes it, `mcadmin import` reads it, and the state
//! directory (`crate::state_dir`) keeps one per domain in exactly this form.
//!
//! ```text
//! # web front ends (a comment: '#' first on the line; blank lines are ignored)
//! domain web                          optional; when given, must be the domain it is used for
//! version 202501150000003             optional; the version the list had when written
//! distribution ketama-md5             optional: ketama-md5 (default) or crc32-modulo
//! replicas 2                          optional: copies of each key, 1 (default) to 256
//! server 127.0.0.1:11211              one line per server, in list order:
//! server [::1]:11212 weight=3         HOST:PORT, [IPv6]:PORT or a socket path,
//! server /run/memcached.sock          then weight=N (1 to 4294967295, default 1)
//! ```
//!
//! UTF-8 text of at most [`MAX_FILE_LEN`] bytes, no control byte but tab and newline. Fields are
//! separated by spaces or tabs. Every setting line comes before the first server line and at
//! most once; an unknown keyword, a field too many or a number that is not canonical decimal is
//! an error naming its line. Servers are checked as every list is: valid addresses, none twice,
//! at most 256. [`format`] writes the canonical form (every setting, `weight=` only when not 1),
//! which [`parse`] reads back to the same values.
//!
//! [`import`] is the one workflow here: make a domain's list the file's.
#![forbid(unsafe_code)]

use std::fmt;

use crate::address::{ServerAddr, DEFAULT_WEIGHT};
use crate::hash::Distribution;
use crate::propagate::canonical_number;
use crate::registry::{
    check_entry, next_version_now, DomainList, DomainName, Namespace, RegistryError, MAX_REPLICAS,
    MAX_SERVERS, MAX_VERSION,
};

/// Largest domain file read: 256 servers of 255-byte hosts with weights and long comments fit.
pub const MAX_FILE_LEN: usize = 128 * 1024;

/// What a domain file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainFile {
    /// The `domain` line, if any.
    pub domain: Option<DomainName>,
    /// The `version` line, if any.
    pub version: Option<u64>,
    pub distribution: Distribution,
    pub replicas: u32,
    pub servers: Vec<ServerAddr>,
}

impl DomainFile {
    /// The file of `list` with its domain and version.
    pub fn of(domain: &DomainName, list: &DomainList) -> DomainFile {
        DomainFile {
            domain: Some(domain.clone()),
            version: Some(list.version),
            distribution: list.distribution,
            replicas: list.replicas,
            servers: list.servers.clone(),
        }
    }

    /// The list it describes, under `version`.
    pub fn list(&self, version: u64) -> DomainList {
        DomainList {
            version,
            distribution: self.distribution,
            replicas: self.replicas,
            servers: self.servers.clone(),
        }
    }

    /// Whether `list` has these settings and servers (weights and order included), whatever its
    /// version.
    pub fn same_list(&self, list: &DomainList) -> bool {
        self.distribution == list.distribution
            && self.replicas == list.replicas
            && self.servers == list.servers
    }

    /// Refuses a file that names another domain than `domain`.
    pub fn check_domain(&self, domain: &DomainName) -> Result<(), DomainFileError> {
        match &self.domain {
            Some(named) if named != domain => Err(DomainFileError::whole(format!(
                "the file is for domain {named}, not {domain}"
            ))),
            _ => Ok(()),
        }
    }
}

/// Why bytes are not a domain file: the line (from 1; 0 for the file as a whole) and what is
/// wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainFileError {
    pub line: usize,
    pub message: String,
}

impl DomainFileError {
    fn at(line: usize, message: impl Into<String>) -> DomainFileError {
        DomainFileError {
            line,
            message: message.into(),
        }
    }

    fn whole(message: impl Into<String>) -> DomainFileError {
        DomainFileError::at(0, message)
    }
}

impl fmt::Display for DomainFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => f.write_str(&self.message),
            n => write!(f, "line {n}: {}", self.message),
        }
    }
}

impl std::error::Error for DomainFileError {}

/// The canonical text of `file`: settings in the documented order, then one line per server.
pub fn format(file: &DomainFile) -> String {
    let mut out = String::new();
    if let Some(domain) = &file.domain {
        out.push_str(&format!("domain {domain}\n"));
    }
    if let Some(version) = file.version {
        out.push_str(&format!("version {version}\n"));
    }
    out.push_str(&format!(
        "distribution {}\nreplicas {}\n",
        file.distribution.name(),
        file.replicas
    ));
    for server in &file.servers {
        out.push_str(&format!("server {server}"));
        if server.weight != DEFAULT_WEIGHT {
            out.push_str(&format!(" weight={}", server.weight));
        }
        out.push('\n');
    }
    out
}

/// Reads a domain file (see the module documentation), strictly.
pub fn parse(bytes: &[u8]) -> Result<DomainFile, DomainFileError> {
    if bytes.len() > MAX_FILE_LEN {
        return Err(DomainFileError::whole(format!(
            "the file is {} bytes long, the maximum is {MAX_FILE_LEN}",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        DomainFileError::at(line, "not UTF-8 text")
    })?;
    let mut file = DomainFile {
        domain: None,
        version: None,
        distribution: Distribution::KetamaMd5,
        replicas: 1,
        servers: Vec::new(),
    };
    let mut seen: Vec<&str> = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let at = |message: String| DomainFileError::at(number, message);
        if let Some(c) = line.chars().find(|&c| c.is_control() && c != '\t') {
            return Err(at(format!("control character {:#04x}", c as u32)));
        }
        let fields: Vec<&str> = line.split([' ', '\t']).filter(|f| !f.is_empty()).collect();
        let (keyword, values) = match fields.split_first() {
            None => continue,
            Some((k, _)) if k.starts_with('#') => continue,
            Some((k, v)) => (*k, v),
        };
        if keyword == "server" {
            let server = server_line(values).map_err(at)?;
            if file.servers.len() == MAX_SERVERS {
                return Err(at(format!("more than {MAX_SERVERS} servers")));
            }
            if let Some(first) = file.servers.iter().position(|s| s.same_server(&server)) {
                return Err(at(format!(
                    "server {server} is listed twice (first as server {})",
                    first + 1
                )));
            }
            file.servers.push(server);
            continue;
        }
        if !["domain", "version", "distribution", "replicas"].contains(&keyword) {
            return Err(at(format!(
                "unknown keyword {:?} (domain, version, distribution, replicas or server)",
                short(keyword)
            )));
        }
        if !file.servers.is_empty() {
            return Err(at(format!("{keyword} after a server line")));
        }
        if seen.contains(&keyword) {
            return Err(at(format!("{keyword} is given twice")));
        }
        seen.push(keyword);
        let value = match values {
            [value] => *value,
            _ => return Err(at(format!("expected \"{keyword} VALUE\""))),
        };
        match keyword {
            "domain" => {
                let name = DomainName::parse(value)
                    .map_err(|e| at(format!("domain {:?}: {e}", short(value))))?;
                file.domain = Some(name);
            }
            "version" => {
                file.version = Some(
                    canonical_number(value, MAX_VERSION)
                        .filter(|&v| v >= 2)
                        .ok_or_else(|| {
                            at(format!(
                                "version {:?} is not a number from 2 to {MAX_VERSION}",
                                short(value)
                            ))
                        })?,
                );
            }
            "distribution" => {
                file.distribution = match value {
                    "ketama-md5" => Distribution::KetamaMd5,
                    "crc32-modulo" => Distribution::Crc32Modulo,
                    other => {
                        return Err(at(format!(
                            "unknown distribution {:?} (ketama-md5 or crc32-modulo)",
                            short(other)
                        )))
                    }
                };
            }
            _ => {
                file.replicas = canonical_number(value, MAX_REPLICAS.into())
                    .filter(|&r| r >= 1)
                    .ok_or_else(|| {
                        at(format!(
                            "replicas {:?} is not a number from 1 to {MAX_REPLICAS}",
                            short(value)
                        ))
                    })? as u32;
            }
        }
    }
    Ok(file)
}

/// The fields after `server`: an address, then at most `weight=N`.
fn server_line(values: &[&str]) -> Result<ServerAddr, String> {
    let (address, weight) = match values {
        [address] => (*address, DEFAULT_WEIGHT),
        [address, weight] => (*address, weight_field(weight)?),
        _ => return Err("expected \"server HOST:PORT [weight=N]\"".to_owned()),
    };
    let server = ServerAddr::parse_weighted(address, weight).map_err(|e| e.to_string())?;
    check_entry(&server)?;
    Ok(server)
}

/// `weight=N`, N from 1 to 4294967295.
fn weight_field(field: &str) -> Result<u32, String> {
    let digits = field
        .strip_prefix("weight=")
        .ok_or_else(|| format!("unknown server field {:?} (weight=N)", short(field)))?;
    canonical_number(digits, u32::MAX.into())
        .filter(|&w| w >= 1)
        .map(|w| w as u32)
        .ok_or_else(|| {
            format!(
                "weight {:?} is not a number from 1 to {}",
                short(digits),
                u32::MAX
            )
        })
}

/// What importing a domain file did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imported {
    /// The domain had no segment: created with the file's list.
    Created { version: u64 },
    /// The list differed: replaced, as a new version.
    Replaced { was: u64, version: u64 },
    /// The domain already has exactly this list: nothing written.
    Unchanged { version: u64 },
}

/// Makes the list of `domain` in `ns` the file's (settings and servers), as a change made on this
/// host: a new version, kept durably if `ns` has a keeper. The file's `version` line is not
/// adopted (it says when the list was exported; the import is a change of its own), and a file
/// whose list the domain already has changes nothing, so importing the same file again (from
/// configuration management) is a no-op. A file naming another domain is refused.
pub fn import(
    ns: &Namespace,
    domain: &DomainName,
    file: &DomainFile,
) -> Result<Imported, ImportError> {
    file.check_domain(domain).map_err(ImportError::File)?;
    let current = ns
        .open_reader(domain)?
        .map(|reader| reader.read())
        .transpose()?;
    let was = match current {
        Some(list) if file.same_list(&list) => {
            return Ok(Imported::Unchanged {
                version: list.version,
            })
        }
        Some(list) => list.version,
        None => {
            let list = file.list(next_version_now(0));
            list.validate()?;
            match ns.create_with(domain, &list)? {
                (_, true) => {
                    return Ok(Imported::Created {
                        version: list.version,
                    })
                }
                // Created by someone else meanwhile: replace what they made.
                (writer, false) => writer.read()?.version,
            }
        }
    };
    let version = ns.open_writer(domain, false)?.update(|list| {
        list.distribution = file.distribution;
        list.replicas = file.replicas;
        list.servers = file.servers.clone();
        Ok(())
    })?;
    Ok(Imported::Replaced { was, version })
}

/// Why an import changed nothing.
#[derive(Debug)]
pub enum ImportError {
    /// The file is for another domain.
    File(DomainFileError),
    /// The segment could not be read, created or written (or the durable copy not kept).
    Registry(RegistryError),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::File(e) => write!(f, "{e}"),
            ImportError::Registry(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<RegistryError> for ImportError {
    fn from(e: RegistryError) -> ImportError {
        ImportError::Registry(e)
    }
}

/// At most the first 40 characters of a field, so a hostile file cannot make messages long.
fn short(field: &str) -> &str {
    field
        .char_indices()
        .nth(40)
        .map_or(field, |(at, _)| &field[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "domain web\nversion 202501150000003\ndistribution crc32-modulo\n\
                          replicas 2\nserver 127.0.0.1:11211\nserver [::1]:11212 weight=3\n\
                          server /run/memcached.sock weight=2\n";

    fn parsed(text: &str) -> DomainFile {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[track_caller]
    fn refused(text: &str, line: usize, needle: &str) {
        let err = parse(text.as_bytes()).expect_err(text);
        assert_eq!(err.line, line, "{text:?}: {err}");
        assert!(err.message.contains(needle), "{text:?}: {err}");
    }

    #[test]
    fn the_sample_reads_and_writes_back_identically() {
        let file = parsed(SAMPLE);
        assert_eq!(file.domain.as_ref().map(DomainName::as_str), Some("web"));
        assert_eq!(file.version, Some(202_501_150_000_003));
        assert_eq!(file.distribution, Distribution::Crc32Modulo);
        assert_eq!(file.replicas, 2);
        let servers: Vec<(String, u16, u32)> = file
            .servers
            .iter()
            .map(|s| (s.host.clone(), s.port, s.weight))
            .collect();
        assert_eq!(
            servers,
            [
                ("127.0.0.1".to_owned(), 11211, 1),
                ("::1".to_owned(), 11212, 3),
                ("/run/memcached.sock".to_owned(), 0, 2),
            ]
        );
        assert_eq!(format(&file), SAMPLE);
        assert_eq!(parsed(&format(&file)), file);
    }

    #[test]
    fn settings_default_and_comments_are_ignored() {
        let file = parsed("# nothing but a comment\n\n   \n\t# indented comment\n");
        assert_eq!(file.domain, None);
        assert_eq!(file.version, None);
        assert_eq!(file.distribution, Distribution::KetamaMd5);
        assert_eq!(file.replicas, 1);
        assert!(file.servers.is_empty());
        // Hand-written: tabs, runs of spaces, no final newline, a default port.
        let file = parsed("server\t127.0.0.1   weight=2\nserver 127.0.0.1:11212");
        assert_eq!(
            file.servers[0],
            ServerAddr::parse_weighted("127.0.0.1:11211", 2).unwrap()
        );
        assert_eq!(file.servers[1].port, 11212);
        assert_eq!(
            format(&file),
            "distribution ketama-md5\nreplicas 1\nserver 127.0.0.1:11211 weight=2\n\
             server 127.0.0.1:11212\n"
        );
    }

    #[test]
    fn lists_round_trip() {
        let domain = DomainName::parse("web").unwrap();
        let mut list = DomainList::empty(202_501_150_000_000);
        list.replicas = 3;
        list.servers = (1..=MAX_SERVERS as u16)
            .map(|p| {
                ServerAddr::parse_weighted(&format!("127.0.0.{}:{p}", p % 7 + 1), u32::from(p))
                    .unwrap()
            })
            .collect();
        let file = DomainFile::of(&domain, &list);
        let text = format(&file);
        let back = parsed(&text);
        assert_eq!(back, file);
        assert!(back.same_list(&list));
        assert_eq!(back.list(list.version), list);
        assert_eq!(format(&back), text);
        assert!(text.len() <= MAX_FILE_LEN);
    }

    #[test]
    fn mistakes_name_their_line() {
        #[rustfmt::skip]
        let cases: &[(&str, usize, &str)] = &[
            ("domain web\nfoo bar\n", 2, "unknown keyword \"foo\""),
            ("Server 127.0.0.1:1\n", 1, "unknown keyword \"Server\""),
            ("domain web\ndomain web\n", 2, "domain is given twice"),
            ("server 127.0.0.1:1\nreplicas 2\n", 2, "replicas after a server line"),
            ("domain\n", 1, "expected \"domain VALUE\""),
            ("domain a b\n", 1, "expected \"domain VALUE\""),
            ("domain ../web\n", 1, "domain \"../web\""),
            ("version 1\n", 1, "not a number from 2"),
            ("version 0202501150000003\n", 1, "not a number"),
            ("version 99999999999999999999\n", 1, "not a number"),
            ("distribution modula\n", 1, "unknown distribution \"modula\""),
            ("replicas 0\n", 1, "replicas \"0\""),
            ("replicas 257\n", 1, "replicas \"257\""),
            ("replicas +2\n", 1, "replicas \"+2\""),
            ("\n\nserver\n", 3, "expected \"server HOST:PORT"),
            ("server 127.0.0.1:1 weight=2 x\n", 1, "expected \"server HOST:PORT"),
            ("server 127.0.0.1:1 weigth=2\n", 1, "unknown server field \"weigth=2\""),
            ("server 127.0.0.1:1 weight=0\n", 1, "weight \"0\""),
            ("server 127.0.0.1:1 weight=02\n", 1, "weight \"02\""),
            ("server 127.0.0.1:1 weight=4294967296\n", 1, "weight \"4294967296\""),
            ("server 127.0.0.1:99999\n", 1, "port"),
            ("server 127.0.0.1:0\n", 1, "port 0"),
            ("server a,b:1\n", 1, "character no host"),
            ("server 127.0.0.1:1\nserver 127.0.0.1:2\nserver 127.0.0.1:1 weight=4\n", 3,
             "127.0.0.1:1 is listed twice (first as server 1)"),
            ("domain web\r\n", 1, "control character 0x0d"),
            ("# ok\nserver 127.0.0.1:1\0\n", 2, "control character 0x00"),
        ];
        for (text, line, needle) in cases {
            refused(text, *line, needle);
        }
        let err = parse(b"domain web\nversion \xff\n").unwrap_err();
        assert_eq!((err.line, err.message.as_str()), (2, "not UTF-8 text"));
        assert_eq!(err.to_string(), "line 2: not UTF-8 text");
        let long = format!("{} x\n", "k".repeat(10_000));
        assert!(parse(long.as_bytes()).unwrap_err().to_string().len() < 120);
        let big = vec![b'#'; MAX_FILE_LEN + 1];
        assert_eq!(parse(&big).unwrap_err().line, 0);
        let too_many: String = (1..=MAX_SERVERS + 1)
            .map(|p| format!("server 127.0.0.1:{p}\n"))
            .collect();
        refused(&too_many, MAX_SERVERS + 1, "more than 256 servers");
    }

    #[test]
    fn a_file_for_another_domain_is_refused() {
        let file = parsed(SAMPLE);
        assert!(file
            .check_domain(&DomainName::parse("web").unwrap())
            .is_ok());
        let err = file
            .check_domain(&DomainName::parse("api").unwrap())
            .unwrap_err();
        assert_eq!(err.to_string(), "the file is for domain web, not api");
        let anonymous = parsed("server 127.0.0.1:1\n");
        assert!(anonymous
            .check_domain(&DomainName::parse("api").unwrap())
            .is_ok());
    }
}
