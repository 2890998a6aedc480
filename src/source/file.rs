//! `file:///PATH`: a domain file (the export format, `crate::domain_file`) that configuration
//! management keeps, followed with inotify.
//!
//! The directory holding the file is watched rather than the file: configuration management
//! replaces a file by renaming a new one over it (a new inode, which a watch on the old one
//! would never see), and Kubernetes swaps a symlink to a new directory. Any change in the
//! directory makes the file be read again, which costs one small read; the install rules ignore
//! a list that did not change. A file being written in place is read when its writer closes it,
//! and a read that a write overtook is read again rather than reported.
#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

use super::{pause, Base, Found, Offer, Published, Source, SourceError, STOP_CHECK};
use crate::domain_file::{self, MAX_FILE_LEN};

/// How long a follower waits before trying again to watch a directory that cannot be watched
/// (it does not exist yet, say).
const RETRY: Duration = Duration::from_secs(1);

/// How long the directory must be quiet after a change before the file is read: a writer's
/// truncation becomes visible a moment before its event does, and writes made one after
/// another are read once.
const SETTLE: Duration = Duration::from_millis(50);

/// How long a file written in place may stay open and unwritten before it is read anyway, and
/// the longest a stream of changes delays a read.
const QUIET: Duration = Duration::from_secs(1);

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

    /// A watch on the file's directory for anything that may change what the path reads as.
    fn watch(&self) -> Result<Watch, SourceError> {
        let dir = self.dir();
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .map_err(|e| SourceError::new(format!("inotify: {e}")))?;
        // MODIFY is watched only to know that the file is being written in place (its
        // CLOSE_WRITE is the change); the other events are changes.
        let flags = WatchFlags::CLOSE_WRITE
            | WatchFlags::MODIFY
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
        Ok(Watch {
            fd,
            dir: dir.to_owned(),
            name: self.path.file_name().map(|n| n.to_owned()),
            written: None,
        })
    }
}

/// The inotify watch on a followed file's directory, and what its events said so far.
struct Watch {
    fd: OwnedFd,
    dir: PathBuf,
    /// The file's own name in `dir`, to tell its events from those of its neighbours.
    name: Option<OsString>,
    /// When the file was last created or modified in place while its writer had not closed
    /// it yet: what it holds now may be half of what is being written.
    written: Option<Instant>,
}

/// What the events read in one go said.
#[derive(Default)]
struct Events {
    /// Something changed what the path may read as.
    changed: bool,
    /// An event named the file itself.
    touched: bool,
    /// The watch ended: the directory went away or was moved.
    ended: bool,
}

impl Events {
    /// What `more` events said, on top of these.
    fn add(&mut self, more: Events) {
        self.changed |= more.changed;
        self.touched |= more.touched;
        self.ended |= more.ended;
    }
}

impl Watch {
    /// Reads every event queued now, without waiting. Events that arrive together are taken
    /// as one change.
    fn drain(&mut self) -> Result<Events, SourceError> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut seen = Events::default();
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        loop {
            let event = match reader.next() {
                Ok(event) => event,
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(seen),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(SourceError::new(format!("inotify: {e}"))),
            };
            let flags = event.events();
            if flags.intersects(
                ReadFlags::IGNORED
                    | ReadFlags::DELETE_SELF
                    | ReadFlags::MOVE_SELF
                    | ReadFlags::UNMOUNT,
            ) {
                seen.ended = true;
                return Ok(seen);
            }
            let name = event
                .file_name()
                .map(|name| OsStr::from_bytes(name.to_bytes()));
            let ours = name.is_some() && name == self.name.as_deref();
            seen.touched |= ours;
            if flags.contains(ReadFlags::MODIFY) {
                // Not a change yet: its writer's close is.
                if ours {
                    self.written = Some(Instant::now());
                }
                continue;
            }
            // Closed, or the name no longer leads to the file being written.
            if ours
                && flags.intersects(
                    ReadFlags::CLOSE_WRITE
                        | ReadFlags::MOVED_TO
                        | ReadFlags::MOVED_FROM
                        | ReadFlags::DELETE,
                )
            {
                self.written = None;
            }
            // A file just created is empty until its writer closes it (CLOSE_WRITE follows);
            // a symlink is complete at once.
            let created_file = flags.contains(ReadFlags::CREATE)
                && !name.is_some_and(|name| {
                    self.dir
                        .join(name)
                        .symlink_metadata()
                        .is_ok_and(|m| m.file_type().is_symlink())
                });
            if created_file && ours {
                self.written = Some(Instant::now());
            }
            seen.changed |= !created_file;
        }
    }

    /// Whether the file is being written in place: created or modified, not closed yet, and
    /// written to within [`QUIET`].
    fn writing(&self) -> bool {
        self.written.is_some_and(|at| at.elapsed() < QUIET)
    }

    /// Waits until events arrive and reads them, then until the directory has been quiet for
    /// [`SETTLE`] (at most [`QUIET`]), so that writes made one after another are read once,
    /// after the last. `Ok(None)` when `stop` was set. A write in place that stays quiet for
    /// [`QUIET`] without a close (a hard link made in place, a writer that keeps the file open)
    /// ends the wait as a change, so that the file is read.
    fn wait(&mut self, stop: &AtomicBool) -> Result<Option<Events>, SourceError> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            if self.readable(STOP_CHECK)? {
                break;
            }
            if self.written.is_some() && !self.writing() {
                self.written = None;
                return Ok(Some(Events {
                    changed: true,
                    ..Events::default()
                }));
            }
        }
        let mut seen = self.drain()?;
        let until = Instant::now() + QUIET;
        while !seen.ended && Instant::now() < until && self.readable(SETTLE)? {
            seen.add(self.drain()?);
        }
        Ok(Some(seen))
    }

    /// Whether events are queued, waiting at most `wait` for them.
    fn readable(&self, wait: Duration) -> Result<bool, SourceError> {
        let wait = Timespec::try_from(wait).expect("a wait of milliseconds is a valid timespec");
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, Some(&wait)) {
            Ok(ready) => Ok(ready > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(SourceError::new(format!("inotify: {e}"))),
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
            let mut watch = match self.watch() {
                Ok(watch) => watch,
                Err(e) => {
                    sink(Err(e));
                    if !pause(RETRY, stop) {
                        return;
                    }
                    continue;
                }
            };
            let mut due = true;
            loop {
                if due && !watch.writing() {
                    let found = self.fetch();
                    // A read that the file changed under (truncated and being written again,
                    // say) is not reported: the change's own events bring the next read.
                    let during = match watch.drain() {
                        Ok(events) => events,
                        Err(e) => {
                            sink(Err(e));
                            break;
                        }
                    };
                    if during.ended {
                        break;
                    }
                    if !during.touched {
                        sink(found);
                    }
                    due = during.changed;
                    continue;
                }
                match watch.wait(stop) {
                    Ok(Some(events)) if !events.ended => due |= events.changed,
                    Ok(_) => break,
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
