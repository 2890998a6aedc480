//! The state directory: the durable copy of every domain of this host, so that domains survive
//! what empties `/dev/shm` (a reboot, systemd's `RemoveIPC=`). One file per domain,
//! `<dir>/<domain>.domain`, in the domain file format (`crate::domain_file`) with its `domain`
//! and `version` lines; `mcadmin restore` recreates the segments from them ([`restore`]).
//!
//! The directory is `$MEMCACHE_STATE_DIR` (an absolute path), else [`DEFAULT_DIR`] for the
//! default shared-memory namespace. A namespace chosen with `MEMCACHE_SHM_PREFIX` has no default
//! directory: its lists are kept only when `MEMCACHE_STATE_DIR` names one (two namespaces must
//! not share a directory, and a test's namespace must never write to /var/lib).
//!
//! A [`StateDir`] is the registry's [`Keeper`]: a writer hands it each list before publishing
//! it, and it writes the file atomically (a temporary file in the same directory, fsync, rename,
//! fsync of the directory), mode 0644, creating the directory with mode 0755 if needed.
#![forbid(unsafe_code)]

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::domain_file::{self, DomainFile, MAX_FILE_LEN};
use crate::propagate::{adopt, Adopted, Record};
use crate::registry::{check_planted, DomainList, DomainName, Keeper, Namespace};

/// The environment variable that names the state directory.
pub const ENV_VAR: &str = "MEMCACHE_STATE_DIR";
/// The state directory of the default namespace when `MEMCACHE_STATE_DIR` is unset.
pub const DEFAULT_DIR: &str = "/var/lib/memcache/domains";
/// What a domain's file is called: `<domain>` followed by this.
pub const FILE_SUFFIX: &str = ".domain";
/// Mode of a domain file: like a segment, anyone may read the list, only its owner change it.
pub const FILE_MODE: u32 = 0o644;
/// Mode of a state directory this module creates.
pub const DIR_MODE: u32 = 0o755;

/// A directory that keeps one file per domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// The directory at `path` (created on the first write).
    pub fn new(path: impl Into<PathBuf>) -> StateDir {
        StateDir { path: path.into() }
    }

    /// The state directory of namespace `ns` (see the module documentation): `None` when the
    /// namespace has none. A relative or non-UTF-8-safe `MEMCACHE_STATE_DIR` is an error.
    pub fn from_env(ns: &Namespace) -> Result<Option<StateDir>, String> {
        match std::env::var_os(ENV_VAR) {
            Some(value) if !value.is_empty() => {
                let path = PathBuf::from(&value);
                if !path.is_absolute() {
                    return Err(format!("{ENV_VAR}={value:?} is not an absolute path"));
                }
                Ok(Some(StateDir::new(path)))
            }
            _ if ns.prefix() == Namespace::DEFAULT_PREFIX => Ok(Some(StateDir::new(DEFAULT_DIR))),
            _ => Ok(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<dir>/<domain>.domain`.
    pub fn file(&self, domain: &DomainName) -> PathBuf {
        self.path.join(format!("{domain}{FILE_SUFFIX}"))
    }

    /// Writes the file of `domain` with `list`, atomically and durably.
    pub fn save(&self, domain: &DomainName, list: &DomainList) -> io::Result<()> {
        let text = domain_file::format(&DomainFile::of(domain, list));
        self.write_file(&format!("{domain}{FILE_SUFFIX}"), text.as_bytes())
    }

    /// Replaces `<dir>/<name>` with `bytes` ([`write_atomically`]), mode [`FILE_MODE`]. `name`
    /// is a plain file name made from a validated domain name.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.create_dir()?;
        write_atomically(&self.path.join(name), bytes)
    }

    /// Removes the file of `domain` (none is fine), durably.
    pub fn remove(&self, domain: &DomainName) -> io::Result<()> {
        let file = self.file(domain);
        match fs::remove_file(&file) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(annotate(e, "remove", &file)),
        }
    }

    /// The domains that have a file here, sorted (none when the directory does not exist).
    /// Other names (temporary files, anything an operator left) are not domains and are skipped.
    pub fn domains(&self) -> io::Result<Vec<DomainName>> {
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(annotate(e, "read directory", &self.path)),
        };
        let mut domains = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| annotate(e, "read directory", &self.path))?;
            let name = entry.file_name();
            let domain = name
                .to_str()
                .and_then(|n| n.strip_suffix(FILE_SUFFIX))
                .and_then(|d| DomainName::parse(d).ok());
            domains.extend(domain);
        }
        domains.sort();
        Ok(domains)
    }

    /// The list kept for `domain` (`Ok(None)`: no file). The file is untrusted input: it must
    /// be a regular file nobody else could have written, at most [`MAX_FILE_LEN`] bytes (see
    /// [`read_file`](Self::read_file)), a valid domain file naming this domain and a version.
    pub fn load(&self, domain: &DomainName) -> Result<Option<DomainList>, String> {
        let name = format!("{domain}{FILE_SUFFIX}");
        let Some(bytes) = self.read_file(&name, MAX_FILE_LEN)? else {
            return Ok(None);
        };
        let shown = self.path.join(&name).display().to_string();
        let parsed = domain_file::parse(&bytes).map_err(|e| format!("{shown}: {e}"))?;
        parsed
            .check_domain(domain)
            .map_err(|e| format!("{shown}: {e}"))?;
        if parsed.domain.is_none() {
            return Err(format!(
                "{shown}: no domain line (a state file names its domain)"
            ));
        }
        let version = parsed
            .version
            .ok_or_else(|| format!("{shown}: no version line (a state file names its version)"))?;
        Ok(Some(parsed.list(version)))
    }

    /// The bytes of `<dir>/<name>` (`Ok(None)`: no such file), read as untrusted input: a
    /// regular file, not a symbolic link, nobody else could have written (see
    /// [`check_planted`]), read up to `max_len` bytes; a longer file is an error. The message
    /// of an error names the path.
    pub fn read_file(&self, name: &str, max_len: usize) -> Result<Option<Vec<u8>>, String> {
        let path = self.path.join(name);
        let shown = path.display().to_string();
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{shown}: {e}")),
        };
        let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
        check_planted(meta.is_file(), meta.mode(), meta.uid(), &shown)?;
        let mut bytes = Vec::new();
        Read::by_ref(&mut file)
            .take(max_len as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{shown}: {e}"))?;
        if bytes.len() > max_len {
            return Err(format!("{shown}: more than {max_len} bytes, the maximum"));
        }
        Ok(Some(bytes))
    }

    fn create_dir(&self) -> io::Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.path)
            .map_err(|e| annotate(e, "create directory", &self.path))
    }

    /// Makes a rename or removal in the directory durable.
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| annotate(e, "fsync directory", &self.path))
    }
}

impl Keeper for StateDir {
    fn keep(&self, domain: &DomainName, list: &DomainList) -> Result<(), String> {
        self.save(domain, list).map_err(|e| e.to_string())
    }

    fn forget(&self, domain: &DomainName) -> Result<(), String> {
        self.remove(domain).map_err(|e| e.to_string())
    }
}

/// Replaces `target` with a file holding `bytes`, atomically and durably: a temporary file in
/// the same directory, written and flushed, renamed over `target`, then the directory flushed.
/// Readers see the old file or the new one, never a part. The temporary file is dot-named, so a
/// listing of the domains never takes a half-written file for one; the pid keeps two processes
/// writing the same directory apart (writers of one domain take turns under its segment lock).
pub fn write_atomically(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, name) = match (target.parent(), target.file_name()) {
        (Some(dir), Some(name)) => (dir, name.to_string_lossy()),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", target.display()),
            ))
        }
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = write_synced(&temp, bytes)
        .and_then(|()| fs::rename(&temp, target).map_err(|e| annotate(e, "rename to", target)));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| annotate(e, "fsync directory", dir))
}

/// Creates `path` (it must not exist) with `bytes`, mode [`FILE_MODE`] whatever the umask, and
/// flushes it to stable storage.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| annotate(e, "create", path))?;
    let step = |what: &str, result: io::Result<()>| result.map_err(|e| annotate(e, what, path));
    step(
        "chmod",
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(FILE_MODE)),
    )?;
    step("write", file.write_all(bytes))?;
    step("fsync", file.sync_all())
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// restore

/// What restoring one domain came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restored {
    /// The domain had no segment: created with the kept list and version.
    Created { version: u64 },
    /// The segment held an older version (`was`): the kept one installed.
    Installed { was: u64, version: u64 },
    /// The segment holds the kept version already.
    UpToDate { version: u64 },
    /// The segment holds a newer version (`local`) than the file (`kept`): the segment is kept.
    KeptNewer { local: u64, kept: u64 },
    /// The segment holds the kept version with another list: nothing changed.
    Conflict { version: u64 },
}

impl Restored {
    /// Whether the domain is now at least as new as its durable copy, without a conflict.
    pub fn is_ok(&self) -> bool {
        !matches!(self, Restored::Conflict { .. })
    }
}

/// One domain of a restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    pub domain: DomainName,
    /// What was done, or why nothing could be (an unreadable or invalid file, a segment that
    /// could not be created).
    pub result: Result<Restored, String>,
}

/// Recreates the segments of `ns` from `state`: every domain with a file there, or only `only`.
/// Idempotent: a segment already at the kept version is left alone, one with a newer version is
/// kept (and reported), one with an older version gets the kept list. Writes no state file (the
/// files are the source). Each domain is reported; an error on one does not stop the others.
/// `Err` only when the directory cannot be listed.
pub fn restore(
    ns: &Namespace,
    state: &StateDir,
    only: Option<&DomainName>,
) -> Result<Vec<RestoreReport>, String> {
    let domains = match only {
        Some(domain) => vec![domain.clone()],
        None => state.domains().map_err(|e| e.to_string())?,
    };
    let ns = ns.without_keeper();
    Ok(domains
        .into_iter()
        .map(|domain| {
            let result = restore_one(&ns, state, &domain);
            RestoreReport { domain, result }
        })
        .collect())
}

fn restore_one(ns: &Namespace, state: &StateDir, domain: &DomainName) -> Result<Restored, String> {
    let list = state.load(domain)?.ok_or_else(|| {
        format!(
            "{} does not exist: nothing kept for this domain",
            state.file(domain).display()
        )
    })?;
    let version = list.version;
    let record = Record {
        domain: domain.clone(),
        list,
        retired: Vec::new(),
    };
    Ok(
        match adopt(ns, domain, &record).map_err(|e| e.to_string())? {
            Adopted::Created => Restored::Created { version },
            Adopted::Installed { was } => Restored::Installed { was, version },
            Adopted::UpToDate => Restored::UpToDate { version },
            Adopted::Older { local } => Restored::KeptNewer {
                local,
                kept: version,
            },
            Adopted::Conflict => Restored::Conflict { version },
        },
    )
}
