//! A domain's TLS and login settings on this host (`mcadmin config --tls --tls-ca ... --auth-file
//! ...`), so that a program that only calls `mc_new2("DOMAIN")` talks TLS and logs in with no
//! change to its code.
//!
//! Where they live, and why there. A segment is world-readable and has no room for paths (its
//! reserved fields are a few bytes), and a published record crosses hosts, while CA, certificate
//! and credentials paths are this host's. So the settings are a companion of the domain's file in
//! the state directory, `<state dir>/<domain>.security`: written by mcadmin atomically, mode
//! 0644, holding paths only, never a secret (the password stays in the credentials file it
//! names, which only its owner may read). It is read as untrusted input with the same checks as
//! every state file (a regular file, no symbolic link, owned by root or by the reader, writable
//! by nobody else). A library handle following the domain reads it when it first takes the
//! domain's list and again whenever the domain's version changes; `mcadmin config` bumps the
//! version after writing it, so running programs take a change on their next operation. Being in
//! the state directory, it survives a reboot with the domain's list (`mcadmin restore` recreates
//! the segment; the file is already there).
//!
//! ```text
//! # TLS and login of domain web on this host (mcadmin config): paths only, never a secret
//! domain web
//! tls on                              on: every server over TLS, not only tls://HOST:PORT ones
//! tls-ca /etc/memcache/ca.pem         the CAs to trust (default: the system's)
//! tls-cert /etc/memcache/client.pem   mutual TLS: the certificate chain ...
//! tls-key /etc/memcache/client.key    ... and its key (default: in the tls-cert file)
//! auth-file /etc/memcache/web.auth    user:password for memcached -Y
//! ```
//!
//! Every line but `domain` is optional and given at most once; a path is absolute and is the rest
//! of the line. An unknown keyword, a relative path or a control character is an error naming its
//! line.
#![forbid(unsafe_code)]

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::conn::{Credentials, Security, TlsOptions};
use crate::registry::{DomainName, Namespace};
use crate::state_dir::{write_atomically, StateDir};

/// What a domain's security file is called: `<domain>` followed by this.
pub const FILE_SUFFIX: &str = ".security";
/// Largest security file read: five paths of up to 4 KiB each and a comment.
pub const MAX_FILE_LEN: usize = 24 * 1024;

/// A domain's settings for every connection its followers make.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainSecurity {
    /// Every server over TLS, not only those written `tls://`.
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// `user:password` for memcached -Y; only its owner may read it.
    pub auth_file: Option<PathBuf>,
}

/// The file's keywords in the order [`format`](DomainSecurity::format) writes them.
const KEYWORDS: [&str; 6] = [
    "domain",
    "tls",
    "tls-ca",
    "tls-cert",
    "tls-key",
    "auth-file",
];

impl DomainSecurity {
    /// Whether it asks for nothing: no file is kept for such settings.
    pub fn is_empty(&self) -> bool {
        *self == DomainSecurity::default()
    }

    /// The TLS part as a handle's options (certificate checks always on: a domain never turns
    /// them off for every program of the host).
    pub fn tls_options(&self) -> TlsOptions {
        TlsOptions {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            insecure: false,
        }
    }

    /// The settings of a connection, the files they name read now: a CA or certificate that
    /// cannot be used, or a credentials file that is not the reader's alone, is an error naming
    /// the file. What this returns is what the settings mean; [`Loaded`] compares two of them.
    pub fn load(&self) -> Result<Loaded, String> {
        self.load_with(Credentials::from_file)
    }

    /// [`load`](Self::load) with the credentials file read by `credentials`: an administrator's
    /// tool reads a file its programs' user owns ([`Credentials::parse_file`]).
    pub fn load_with(
        &self,
        credentials: impl Fn(&Path) -> Result<Credentials, String>,
    ) -> Result<Loaded, String> {
        let mut security = Security::default();
        let options = self.tls_options();
        let mut files = Vec::new();
        if options != TlsOptions::default() {
            security.set_tls(options).map_err(|e| e.to_string())?;
            for path in [&self.ca_file, &self.cert_file, &self.key_file]
                .into_iter()
                .flatten()
            {
                files.push(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?);
            }
        }
        security.set_all_tls(self.tls);
        let credentials = match &self.auth_file {
            Some(path) => Some(credentials(path)?),
            None => None,
        };
        security.set_auth(credentials.clone());
        Ok(Loaded {
            settings: self.clone(),
            files,
            credentials,
            security,
        })
    }

    /// The paths given, each with its keyword, in the file's order.
    fn paths(&self) -> impl Iterator<Item = (&'static str, &PathBuf)> {
        [
            ("tls-ca", &self.ca_file),
            ("tls-cert", &self.cert_file),
            ("tls-key", &self.key_file),
            ("auth-file", &self.auth_file),
        ]
        .into_iter()
        .filter_map(|(keyword, path)| Some((keyword, path.as_ref()?)))
    }

    /// The canonical text of the file of `domain`.
    pub fn format(&self, domain: &DomainName) -> String {
        let mut out = format!(
            "# TLS and login of domain {domain} on this host (mcadmin config): paths only, \
             never a secret\ndomain {domain}\ntls {}\n",
            if self.tls { "on" } else { "off" }
        );
        for (keyword, path) in self.paths() {
            out.push_str(&format!("{keyword} {}\n", path.display()));
        }
        out
    }

    /// Reads the file of `domain` (see the module documentation), strictly.
    pub fn parse(bytes: &[u8], domain: &DomainName) -> Result<DomainSecurity, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
        let mut settings = DomainSecurity::default();
        let mut seen: Vec<&str> = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            let at = |message: String| format!("line {}: {message}", index + 1);
            if line.chars().any(char::is_control) {
                return Err(at("a control character".into()));
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, value) = line.split_once(' ').unwrap_or((line, ""));
            if !KEYWORDS.contains(&keyword) {
                return Err(at(format!(
                    "unknown keyword {keyword:?} ({})",
                    KEYWORDS.join(", ")
                )));
            }
            if seen.contains(&keyword) {
                return Err(at(format!("{keyword} is given twice")));
            }
            seen.push(keyword);
            match keyword {
                "domain" if value == domain.as_str() => {}
                "domain" => {
                    return Err(at(format!(
                        "the file is for domain {value:?}, not {domain}"
                    )))
                }
                "tls" => {
                    settings.tls = match value {
                        "on" => true,
                        "off" => false,
                        _ => return Err(at(format!("tls {value:?}: on or off"))),
                    }
                }
                _ => {
                    let path = PathBuf::from(value);
                    if !path.is_absolute() {
                        return Err(at(format!("{keyword} {value:?} is not an absolute path")));
                    }
                    *match keyword {
                        "tls-ca" => &mut settings.ca_file,
                        "tls-cert" => &mut settings.cert_file,
                        "tls-key" => &mut settings.key_file,
                        _ => &mut settings.auth_file,
                    } = Some(path);
                }
            }
        }
        if !seen.contains(&"domain") {
            return Err("no domain line (the file names its domain)".into());
        }
        if settings.key_file.is_some() && settings.cert_file.is_none() {
            return Err("tls-key without tls-cert".into());
        }
        Ok(settings)
    }
}

impl fmt::Display for DomainSecurity {
    /// One line: `tls on  tls-ca PATH  auth-file PATH` (only the settings given).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tls {}", if self.tls { "on" } else { "off" })?;
        for (keyword, path) in self.paths() {
            write!(f, "  {keyword} {}", path.display())?;
        }
        Ok(())
    }
}

/// Settings with the files they name as read: two of these are the same when neither the
/// settings nor the files' contents changed (a password rotated in place is a change).
pub struct Loaded {
    settings: DomainSecurity,
    files: Vec<Vec<u8>>,
    credentials: Option<Credentials>,
    security: Security,
}

impl Loaded {
    pub fn settings(&self) -> &DomainSecurity {
        &self.settings
    }

    /// The handle's settings these make.
    pub fn security(&self) -> &Security {
        &self.security
    }

    pub fn same_as(&self, other: &Loaded) -> bool {
        self.settings == other.settings
            && self.files == other.files
            && self.credentials == other.credentials
    }
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// `<dir>/<domain>.security`.
pub fn file_of(state: &StateDir, domain: &DomainName) -> PathBuf {
    state.path().join(format!("{domain}{FILE_SUFFIX}"))
}

/// The settings kept for `domain` in `state` (`Ok(None)`: none). The file is untrusted input
/// (see the module documentation); the message of an error names it.
pub fn read(state: &StateDir, domain: &DomainName) -> Result<Option<DomainSecurity>, String> {
    let name = format!("{domain}{FILE_SUFFIX}");
    let Some(bytes) = state.read_file(&name, MAX_FILE_LEN)? else {
        return Ok(None);
    };
    DomainSecurity::parse(&bytes, domain)
        .map(Some)
        .map_err(|e| format!("{}: {e}", file_of(state, domain).display()))
}

/// [`read`] in the state directory of the namespace `MEMCACHE_SHM_PREFIX` selects (a namespace
/// without one has no settings).
pub fn read_from_env(domain: &DomainName) -> Result<Option<DomainSecurity>, String> {
    let ns = Namespace::from_env().map_err(|e| e.to_string())?;
    match StateDir::from_env(&ns)? {
        Some(state) => read(&state, domain),
        None => Ok(None),
    }
}

/// Keeps `settings` for `domain` (atomically and durably), or removes the file when they ask
/// for nothing.
pub fn write(
    state: &StateDir,
    domain: &DomainName,
    settings: &DomainSecurity,
) -> std::io::Result<()> {
    let file = file_of(state, domain);
    if settings.is_empty() {
        return forget(state, domain);
    }
    std::fs::create_dir_all(state.path())?;
    write_atomically(&file, settings.format(domain).as_bytes())
}

/// Removes the settings of `domain` (none is fine).
pub fn forget(state: &StateDir, domain: &DomainName) -> std::io::Result<()> {
    match std::fs::remove_file(file_of(state, domain)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What an administrator may name as a domain's credentials file: a regular file that neither
/// group nor others can read or write, holding `user:password`. Its owner is not checked here:
/// the domain's programs read it as their own user, and each refuses a file it does not own.
pub fn check_credentials_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{shown}: mode {:o} lets others read or write it: refused (chmod 600; only the \
             domain's programs' user may read it)",
            meta.mode() & 0o777
        ));
    }
    Credentials::parse_file(path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> DomainName {
        DomainName::parse("web").unwrap()
    }

    #[test]
    fn format_reads_back() {
        let all = DomainSecurity {
            tls: true,
            ca_file: Some("/etc/ca.pem".into()),
            cert_file: Some("/etc/my client.pem".into()),
            key_file: Some("/etc/client.key".into()),
            auth_file: Some("/etc/web.auth".into()),
        };
        for settings in [all, DomainSecurity::default()] {
            let text = settings.format(&web());
            assert_eq!(
                DomainSecurity::parse(text.as_bytes(), &web()),
                Ok(settings),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_files_name_their_line() {
        let cases: [(&str, &str); 8] = [
            ("tls on\n", "no domain line"),
            ("domain web\ntls yes\n", "line 2: tls \"yes\""),
            ("domain web\ntls-ca ca.pem\n", "not an absolute path"),
            (
                "domain web\ntls on\ntls off\n",
                "line 3: tls is given twice",
            ),
            ("domain app\n", "not web"),
            ("domain web\nauth /x\n", "unknown keyword \"auth\""),
            ("domain web\ntls-key /k\n", "tls-key without tls-cert"),
            ("domain web\ntls-ca /a\rb\n", "line 2: a control character"),
        ];
        for (text, why) in cases {
            let e = DomainSecurity::parse(text.as_bytes(), &web()).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
