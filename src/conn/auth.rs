//! memcached's text-protocol authentication (`memcached -Y authfile`): before its first command a
//! connection sends `set <any key> 0 0 <len>` with `<user> <password>` as the value, and the
//! server answers STORED, or an error and no command is served.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Conn, Fail};
use crate::protocol::{Event, Reply};

/// Longest credentials file read: a user and a password, with room to spare.
const MAX_FILE: u64 = 4096;

/// A user and password. Debug and Display never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}, <password>)", self.user)
    }
}

impl Credentials {
    /// A user and password as the protocol carries them: neither may be empty or hold
    /// whitespace or a control byte (the value is `user password` on one line), the user no ':'
    /// either (memcached's file separates them with it).
    pub fn new(user: &str, password: &str) -> Result<Credentials, String> {
        let bad = |s: &str| s.bytes().any(|b| b <= b' ' || b == 0x7f);
        if user.is_empty() || bad(user) || user.contains(':') {
            return Err("the user name is empty or holds a space, ':' or a control byte".into());
        }
        if password.is_empty() || bad(password) {
            return Err("the password is empty or holds a space or a control byte".into());
        }
        Ok(Credentials {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Reads `user:password` from the first line of `path` (memcached's own authfile format),
    /// refusing a file that is not a regular file owned by the user running this, or that its
    /// group or others may read or write: the file stands in for a secret.
    pub fn from_file(path: &Path) -> Result<Credentials, String> {
        Credentials::read_checked(path, true)
    }

    /// The same reading without the owner and mode checks: for an administrator checking the
    /// file a domain names (its programs, which use it, check both).
    pub fn parse_file(path: &Path) -> Result<Credentials, String> {
        Credentials::read_checked(path, false)
    }

    fn read_checked(path: &Path, own: bool) -> Result<Credentials, String> {
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{shown}: not a regular file"));
        }
        let me = rustix::process::geteuid().as_raw();
        if own && meta.uid() != me {
            return Err(format!(
                "{shown}: owned by uid {}, not by this user (uid {me}): refused",
                meta.uid()
            ));
        }
        if own && meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{shown}: mode {:o} lets others read or write it: refused (chmod 600)",
                meta.mode() & 0o777
            ));
        }
        let mut text = String::new();
        file.take(MAX_FILE)
            .read_to_string(&mut text)
            .map_err(|e| format!("{shown}: {e}"))?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        let (user, password) = line
            .split_once(':')
            .ok_or_else(|| format!("{shown}: the first line is not user:password"))?;
        Credentials::new(user, password).map_err(|why| format!("{shown}: {why}"))
    }

    /// Authenticates a new connection (see the module's comment), within the operation's
    /// deadline. An answer other than STORED is the server's refusal, shown as it gave it.
    pub fn login(&self, conn: &mut Conn) -> Result<(), Fail> {
        let value = format!("{} {}", self.user, self.password);
        let line = format!("set auth 0 0 {}\r\n", value.len());
        conn.send_parts(&[line.as_bytes(), value.as_bytes(), b"\r\n"])?;
        let refused = |why: String| {
            Fail::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("authentication as {:?} refused: {why}", self.user),
            ))
        };
        match conn.next_event()? {
            Event::Reply(Reply::Stored) => Ok(()),
            Event::Reply(Reply::ClientError(m) | Reply::ServerError(m)) => {
                Err(refused(String::from_utf8_lossy(m).into_owned()))
            }
            Event::Reply(Reply::Error) => Err(refused(
                "ERROR (does the server take text-protocol authentication, -Y?)".into(),
            )),
            _ => Err(refused("an unexpected reply".into())),
        }
    }
}
