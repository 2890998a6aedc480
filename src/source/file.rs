//! `file:///PATH`: a domain file (the export format, `crate::domain_file`) that configuration
//! management keeps, followed with inotify.
//!
//! The directory holding the file is watched rather than the file: configuration management
//! replaces a file by renaming a new one over it (a new inode, which a watch on the old one
//! would never see), and Kubernetes swaps a symlink to a new directory. Any change in the
//! directory makes the file be read again, which costs one small read; the install rules ignore
//! a list that did not change. A file being written in place is read when its writer closes it.
#![forbid(unsafe_code)]

use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

use super::{pause, Base, Found, Offer, Published, Source, SourceError, STOP_CHECK};
use crate::domain_file::{self, MAX_FILE_LEN};

/// How long a follower waits before trying again to watch a directory that cannot be watched
/// (it does not exist yet, say).
const RETRY: Duration = Duration::from_secs(1);

/// A domain file on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// The source named by `file:///PATH` (or `file://localhost/PATH`): an absolute path, taken
    /// as it is written (no percent-decoding).
    pub fn from_url(url: &str) -> Result<FileSource, String> {
        let rest = url
            .strip_prefix("file://")
            .ok_or_else(|| format!("{url}: not a file:// URL"))?;
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err(format!(
                "{url}: a file URL names an absolute path on this host (file:///etc/memcache/web.domain)"
            ));
        }
        if path.ends_with('/') {
            return Err(format!("{url}: names a directory, not a file"));
        }
        Ok(FileSource::new(path))
    }

    pub fn new(path: impl Into<PathBuf>) -> FileSource {
        FileSource { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding the file.
    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("/"),
        }
    }

    /// An inotify descriptor watching the file's directory for anything that may change what
    /// the path reads as.
    fn watch_dir(&self) -> Result<OwnedFd, SourceError> {
        let dir = self.dir();
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .map_err(|e| SourceError::new(format!("inotify: {e}")))?;
        let flags = WatchFlags::CLOSE_WRITE
            | WatchFlags::MOVED_TO
            | WatchFlags::MOVED_FROM
            | WatchFlags::DELETE
            | WatchFlags::CREATE
            | WatchFlags::ATTRIB
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR;
        inotify::add_watch(&fd, dir, flags).map_err(|e| {
            SourceError::new(format!("cannot watch the directory {}: {e}", dir.display()))
        })?;
        Ok(fd)
    }
}

/// Waits until the watched directory `dir` reports a change (`Ok(true)`), the watch ended (the
/// directory went away: `Ok(false)`), or `stop` was set (`Ok(false)`). Events that arrive
/// together are taken as one change.
fn wait_change(fd: &OwnedFd, dir: &Path, stop: &AtomicBool) -> Result<bool, SourceError> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let tick = Timespec::try_from(STOP_CHECK).expect("100 ms is a valid timespec");
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&tick)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(SourceError::new(format!("inotify: {e}"))),
        }
        let mut changed = false;
        let mut reader = inotify::Reader::new(fd, &mut buf);
        loop {
            match reader.next() {
                Ok(event) => {
                    let flags = event.events();
                    if flags.intersects(
                        inotify::ReadFlags::IGNORED
                            | inotify::ReadFlags::DELETE_SELF
                            | inotify::ReadFlags::MOVE_SELF
                            | inotify::ReadFlags::UNMOUNT,
                    ) {
                        return Ok(false);
                    }
                    // A file just created is empty until its writer closes it (CLOSE_WRITE
                    // follows); a symlink is complete at once.
                    let created_file = flags.contains(inotify::ReadFlags::CREATE)
                        && !event.file_name().is_some_and(|name| {
                            dir.join(std::ffi::OsStr::from_bytes(name.to_bytes()))
                                .symlink_metadata()
                                .is_ok_and(|m| m.file_type().is_symlink())
                        });
                    changed |= !created_file;
                }
                Err(rustix::io::Errno::WOULDBLOCK) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(SourceError::new(format!("inotify: {e}"))),
            }
        }
        if changed {
            return Ok(true);
        }
    }
}

impl Source for FileSource {
    fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    fn fetch(&mut self) -> Result<Found, SourceError> {
        let shown = self.path.display();
        let mut bytes = Vec::new();
        std::fs::File::open(&self.path)
            .and_then(|f| f.take(MAX_FILE_LEN as u64 + 1).read_to_end(&mut bytes))
            .map_err(|e| SourceError::new(format!("{shown}: {e}")))?;
        let file =
            domain_file::parse(&bytes).map_err(|e| SourceError::new(format!("{shown}: {e}")))?;
        Ok(Offer::File(file).into())
    }

    fn follow(&mut self, stop: &AtomicBool, sink: &mut dyn FnMut(Result<Found, SourceError>)) {
        while !stop.load(Ordering::Relaxed) {
            // The watch first, then the read: a change between the two is seen twice, never
            // missed.
            let fd = match self.watch_dir() {
                Ok(fd) => fd,
                Err(e) => {
                    sink(Err(e));
                    if !pause(RETRY, stop) {
                        return;
                    }
                    continue;
                }
            };
            sink(self.fetch());
            loop {
                match wait_change(&fd, self.dir(), stop) {
                    Ok(true) => sink(self.fetch()),
                    Ok(false) => break,
                    Err(e) => {
                        sink(Err(e));
                        break;
                    }
                }
            }
        }
    }

    /// Writes the file atomically (a temporary file beside it, fsync, rename), so a follower
    /// never reads half of it. A file is this host's own, not shared like etcd: no revision
    /// to compare with, whatever the `base`.
    fn publish(
        &mut self,
        file: &domain_file::DomainFile,
        _: Base,
    ) -> Result<Published, SourceError> {
        let text = domain_file::format(file);
        crate::state_dir::write_atomically(&self.path, text.as_bytes())
            .map_err(|e| SourceError::new(e.to_string()))?;
        Ok(Published {
            said: format!("wrote {}", self.path.display()),
            revision: None,
        })
    }
}
