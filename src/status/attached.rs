//! Which local processes are attached to a domain: those that have its segment mapped, as
//! `/proc/PID/maps` shows (every library handle that follows a domain keeps its segment mapped).
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use super::printable;

/// The longest program name kept (the kernel's `comm` is at most 15 bytes).
const MAX_PROGRAM_LEN: usize = 64;

/// A process that has the segment mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    pub pid: u32,
    /// `/proc/PID/comm`, control characters replaced (any process may set it to anything).
    pub program: String,
    /// It maps only a segment of this name that has since been removed (the domain was
    /// destroyed or re-created): it moves to the current one at its next operation.
    pub stale: bool,
}

/// The processes attached to a segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Processes {
    /// By pid.
    pub attached: Vec<Attached>,
    /// Processes whose mappings could not be read (another user's, without the privilege to
    /// look): they may be attached too.
    pub unreadable: usize,
}

/// How a process maps a segment, from one line of its maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mapped {
    Current,
    Removed,
}

/// Every process but this one that has `segment` (a path under /dev/shm) mapped. Processes
/// that end during the scan are skipped; `Err` only when /proc cannot be listed.
pub fn attached(segment: &Path) -> io::Result<Processes> {
    scan(Path::new("/proc"), segment.as_os_str().as_encoded_bytes())
}

fn scan(proc_root: &Path, segment: &[u8]) -> io::Result<Processes> {
    let own = std::process::id();
    let mut found = Processes::default();
    for entry in fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let dir = entry.path();
        let mapped = match File::open(dir.join("maps")).and_then(|f| mapping(f, segment)) {
            Ok(mapped) => mapped,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                found.unreadable += 1;
                continue;
            }
            // Gone meanwhile (or a kernel thread's odd answer): not attached.
            Err(_) => continue,
        };
        if let Some(mapped) = mapped {
            let comm = fs::read(dir.join("comm")).unwrap_or_default();
            let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
            found.attached.push(Attached {
                pid,
                program: printable(comm, MAX_PROGRAM_LEN),
                stale: mapped == Mapped::Removed,
            });
        }
    }
    found.attached.sort_by_key(|a| a.pid);
    Ok(found)
}

/// How the maps of one process map `segment`: `Current` if any mapping is of the segment that
/// has the name now, `Removed` if only of removed ones, `None` if of neither.
fn mapping(maps: impl io::Read, segment: &[u8]) -> io::Result<Option<Mapped>> {
    let mut reader = BufReader::new(maps);
    let mut line = Vec::new();
    let mut found = None;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(found);
        }
        match mapped_path(&line, segment) {
            Some(Mapped::Current) => return Ok(Some(Mapped::Current)),
            Some(Mapped::Removed) => found = Some(Mapped::Removed),
            None => {}
        }
    }
}

/// One maps line, `ADDRESS PERMS OFFSET DEV INODE   PATH`: whether PATH is `segment`, or
/// `segment (deleted)`.
fn mapped_path(line: &[u8], segment: &[u8]) -> Option<Mapped> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut rest = line;
    for _ in 0..5 {
        let start = rest.iter().position(|&b| b != b' ')?;
        let end = rest[start..].iter().position(|&b| b == b' ')? + start;
        rest = &rest[end..];
    }
    let path = &rest[rest.iter().position(|&b| b != b' ')?..];
    if path == segment {
        Some(Mapped::Current)
    } else if path.strip_prefix(segment) == Some(b" (deleted)") {
        Some(Mapped::Removed)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: &[u8] = b"/dev/shm/memcache.web";

    #[test]
    fn maps_lines() {
        let line = |path: &str| {
            format!(
                "7f2a1c000000-7f2a1c001000 r--s 00000000 00:1a 4242                       {path}\n"
            )
        };
        assert_eq!(
            mapped_path(line("/dev/shm/memcache.web").as_bytes(), SEGMENT),
            Some(Mapped::Current)
        );
        assert_eq!(
            mapped_path(line("/dev/shm/memcache.web (deleted)").as_bytes(), SEGMENT),
            Some(Mapped::Removed)
        );
        for other in [
            "/dev/shm/memcache.web2",
            "/dev/shm/memcache.we",
            "/usr/lib/libc.so.6",
            "",
        ] {
            assert_eq!(
                mapped_path(line(other).as_bytes(), SEGMENT),
                None,
                "{other:?}"
            );
        }
        assert_eq!(
            mapped_path(
                b"7f2a1c000000-7f2a1c001000 rw-p 00000000 00:00 0\n",
                SEGMENT
            ),
            None
        );
        assert_eq!(mapped_path(b"garbage", SEGMENT), None);
    }

    #[test]
    fn a_current_mapping_wins_over_a_removed_one() {
        let maps = "1-2 r--s 0 0:1 1 /dev/shm/memcache.web (deleted)\n\
                    3-4 r--s 0 0:1 2 /dev/shm/memcache.web\n";
        assert_eq!(
            mapping(maps.as_bytes(), SEGMENT).unwrap(),
            Some(Mapped::Current)
        );
        let maps = "1-2 r--s 0 0:1 1 /dev/shm/memcache.web (deleted)\n5-6 r-xp 0 0:1 9 /bin/x";
        assert_eq!(
            mapping(maps.as_bytes(), SEGMENT).unwrap(),
            Some(Mapped::Removed)
        );
        assert_eq!(mapping(&b"\xff\xfe /odd\n"[..], SEGMENT).unwrap(), None);
    }

    #[test]
    fn attached_processes_in_a_fake_proc() {
        let root = std::env::temp_dir().join(format!("attached-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (pid, comm, maps) in [
            (
                "10",
                "app\u{1b}[31m\n",
                "1-2 r--s 0 0:1 1 /dev/shm/memcache.web\n",
            ),
            ("11", "other\n", "1-2 r--s 0 0:1 1 /dev/shm/memcache.api\n"),
            (
                "9",
                "old\n",
                "1-2 r--s 0 0:1 1 /dev/shm/memcache.web (deleted)\n",
            ),
        ] {
            let dir = root.join(pid);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("comm"), comm).unwrap();
            fs::write(dir.join("maps"), maps).unwrap();
        }
        fs::create_dir_all(root.join("self")).unwrap();
        fs::create_dir_all(root.join("12")).unwrap(); // no maps: ended meanwhile
        let found = scan(&root, SEGMENT).unwrap();
        assert_eq!(
            found.attached,
            [
                Attached {
                    pid: 9,
                    program: "old".into(),
                    stale: true
                },
                Attached {
                    pid: 10,
                    program: "app?[31m".into(),
                    stale: false
                },
            ]
        );
        let _ = fs::remove_dir_all(&root);
    }
}
