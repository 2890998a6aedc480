//! A domain's segment removed or replaced under a running program (issue 12, fault 4): `rm` of
//! `/dev/shm/<prefix>.D` and a new `mcadmin set`, or `mv` of another domain's segment over it.
//! The handle (`capi-tests/domain_follow.c`, one `mc_new2` handle driven line by line) must
//! follow the new segment within a second, even though its version number is not greater than
//! the old one's, and report the switch once; a segment removed and not re-created must leave the
//! handle working on its last list, reported once, and be followed again when it comes back.
//!
//! Each test has a shared-memory namespace of its own (`MEMCACHE_SHM_PREFIX`) and real memcached
//! servers on loopback; the segments are changed with the real `mcadmin` and plain file
//! operations while the program waits for its next command, so no check of the handle can fall
//! between the removal and the re-creation. Every wait is bounded.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use memcache::registry::UPDATES_PER_DAY;
use support::{compile_capi, Memcached, ShmPrefix};

/// The bound of every wait for a reply or a process.
const WAIT: Duration = Duration::from_secs(10);
/// How long the test polls for a switch before it fails: three times the promise.
const SWITCH_WAIT: Duration = Duration::from_secs(3);
/// The promise: a handle compares the segment's name with what it maps at least once a second
/// (every 990 ms, on the coarse clock, whose tick is at most 10 ms).
const PROMISE: Duration = Duration::from_secs(1);
/// What the measurement adds to the promise: one turn of the polling loop (a 10 ms pause and
/// two commands over pipes), and the time a process can wait for a CPU on a loaded two-core
/// machine between the change and its next operation. Generous, yet far below the next check
/// (another second), so a handle that needed two checks would still fail.
const SLACK: Duration = Duration::from_millis(500);
/// Pause between two operations while polling.
const POLL_PACE: Duration = Duration::from_millis(10);
/// How long a test keeps operating after an event, to see that it is not reported again: past
/// two more checks.
const QUIET: Duration = Duration::from_millis(2200);
/// A loopback port nothing listens on, only ever written into lists, never used.
const UNUSED_SERVER: &str = "127.0.0.1:1";
/// Severities as the C handler sees them.
const LVL_NOTICE: u32 = 0x02;
const LVL_WARN: u32 = 0x04;

fn program() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    built
        .get_or_insert_with(|| compile_capi("domain_follow", &[]))
        .clone()
}

// ---------------------------------------------------------------------------------------------
// mcadmin

fn mcadmin(shm: &ShmPrefix, args: &[&str]) -> Output {
    let mut child = shm
        .mcadmin(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcadmin");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mcadmin {args:?} did not finish within {WAIT:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("mcadmin output")
}

#[track_caller]
fn mcadmin_ok(shm: &ShmPrefix, args: &[&str]) {
    let out = mcadmin(shm, args);
    assert!(
        out.status.success(),
        "mcadmin {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates `domain` holding `server`, then changes it twice more (a server added and removed),
/// so its version is two past what a segment created afresh starts at.
fn create_ahead(shm: &ShmPrefix, domain: &str, server: &str) {
    mcadmin_ok(shm, &["--domain", domain, "set", server]);
    mcadmin_ok(shm, &["--domain", domain, "add", UNUSED_SERVER]);
    mcadmin_ok(shm, &["--domain", domain, "delete", UNUSED_SERVER]);
}

/// Whether the server at `port` holds `key` (a raw `get` on a fresh connection).
fn holds(port: u16, key: &str) -> bool {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to memcached");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut writer = stream.try_clone().expect("clone socket");
    writer
        .write_all(format!("get {key}\r\n").as_bytes())
        .expect("send get");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("reply line");
    line.starts_with("VALUE ")
}

// ---------------------------------------------------------------------------------------------
// The C program

/// `capi-tests/domain_follow.c` with one handle.
struct Follow {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
    keys: u64,
}

/// The MCM_ERR_MC_SERV_LIST reports since the last look: (severity, message).
#[derive(Debug)]
struct Reports(Vec<(u32, String)>);

impl Follow {
    /// Starts the program in `shm`'s namespace with a handle on `domain`.
    fn start(shm: &ShmPrefix, domain: &str) -> Follow {
        let mut lib_path = support::prefix().join("lib").into_os_string();
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
            lib_path.push(":");
            lib_path.push(old);
        }
        let mut child = Command::new(program())
            .env("LD_LIBRARY_PATH", lib_path)
            .env_remove("MEMCACHE_DOMAIN")
            .env("MEMCACHE_SHM_PREFIX", &shm.prefix)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn domain_follow");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, replies) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut follow = Follow {
            child,
            stdin,
            replies,
            keys: 0,
        };
        assert_eq!(follow.cmd(&format!("new2 {domain}")), "ok");
        follow
    }

    #[track_caller]
    fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("domain_follow: cannot send {line:?}: {e}"));
        self.replies.recv_timeout(WAIT).unwrap_or_else(|e| {
            panic!(
                "domain_follow: no reply to {line:?} ({e}); status {:?}",
                self.child.try_wait()
            )
        })
    }

    /// mc_domain_version(): brings the handle up to date and returns its version.
    #[track_caller]
    fn version(&mut self) -> u64 {
        let reply = self.cmd("version");
        reply
            .strip_prefix("version ")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("version: {reply:?}"))
    }

    /// The handle's servers (no check for a newer list).
    #[track_caller]
    fn servers(&mut self) -> Vec<String> {
        let reply = self.cmd("servers");
        let list = reply
            .strip_prefix("servers ")
            .or_else(|| (reply == "servers").then_some(""))
            .unwrap_or_else(|| panic!("servers: {reply:?}"));
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// mc_set() of a fresh key; returns the key and mc_set's result.
    #[track_caller]
    fn set_fresh(&mut self, label: &str) -> (String, i32) {
        self.keys += 1;
        let key = format!("{label}-{}", self.keys);
        let reply = self.cmd(&format!("set {key} v"));
        let rc = reply
            .strip_prefix("rc ")
            .and_then(|rc| rc.parse().ok())
            .unwrap_or_else(|| panic!("set {key}: {reply:?}"));
        (key, rc)
    }

    /// The reports since the last call.
    #[track_caller]
    fn reports(&mut self) -> Reports {
        let reply = self.cmd("reports");
        let (head, msgs) = reply
            .split_once(" msgs=")
            .unwrap_or_else(|| panic!("reports: {reply:?}"));
        let count: usize = head
            .strip_prefix("count=")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("reports: {reply:?}"));
        let list: Vec<(u32, String)> = msgs
            .split(" | ")
            .filter(|m| !m.is_empty())
            .map(|m| {
                let (level, text) = m.split_once(' ').unwrap_or((m, ""));
                (level.parse().expect("severity"), text.to_string())
            })
            .collect();
        assert_eq!(list.len(), count, "reports: {reply:?}");
        Reports(list)
    }

    /// Operates until the handle's list is `[server]`: a write through the handle, then a look
    /// at its servers. Returns how long after `since` the first operation that saw the new list
    /// ended; fails after [`SWITCH_WAIT`].
    #[track_caller]
    fn wait_for_list(&mut self, since: Instant, server: &str, what: &str) -> Duration {
        loop {
            let _ = self.set_fresh("poll");
            if self.servers() == [server] {
                return since.elapsed();
            }
            assert!(
                since.elapsed() < SWITCH_WAIT,
                "{what}: after {SWITCH_WAIT:?} the handle still uses {:?}, not [{server}]; \
                 reports: {:?}",
                self.servers(),
                self.reports()
            );
            thread::sleep(POLL_PACE);
        }
    }

    /// Keeps operating for [`QUIET`]; every write must succeed and land on `server`.
    #[track_caller]
    fn keep_operating_on(&mut self, server: &Memcached, what: &str) {
        let start = Instant::now();
        while start.elapsed() < QUIET {
            let (key, rc) = self.set_fresh("quiet");
            assert_eq!(rc, 0, "{what}: a write failed");
            assert!(
                holds(server.port(), &key),
                "{what}: {key} is not on {}",
                server.addr()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    #[track_caller]
    fn finish(mut self) {
        let _ = writeln!(self.stdin, "quit").and_then(|()| self.stdin.flush());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "domain_follow did not quit");
            thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "domain_follow: {status}");
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Exactly one report, at `level`, naming the segment and saying `needle`.
#[track_caller]
fn expect_one(reports: &Reports, level: u32, segment: &str, needle: &str, what: &str) {
    assert_eq!(
        reports.0.len(),
        1,
        "{what}: expected exactly one MC_SERV_LIST report, got {reports:?}"
    );
    let (severity, msg) = &reports.0[0];
    assert_eq!(*severity, level, "{what}: severity of {msg:?}");
    assert!(
        msg.contains(segment) && msg.contains(needle),
        "{what}: the report does not name {segment:?} or say {needle:?}: {msg:?}"
    );
}

/// The handle follows `domain` on `a`, at a version ahead of a fresh segment's.
fn follow_on_a(shm: &ShmPrefix, domain: &str, a: &Memcached) -> (Follow, u64) {
    create_ahead(shm, domain, &a.addr());
    let mut d = Follow::start(shm, domain);
    let version = d.version();
    assert_ne!(version, 0);
    assert_eq!(d.servers(), [a.addr()]);
    let (key, rc) = d.set_fresh("before");
    assert_eq!(rc, 0);
    assert!(holds(a.port(), &key));
    let none = d.reports();
    assert!(none.0.is_empty(), "attaching reported {none:?}");
    (d, version)
}

/// After the switch to `b`: writes go to `b` (not `a`), the version is the new segment's, one
/// NOTICE said so, and nothing more is reported while the handle keeps working.
#[track_caller]
fn expect_switched(
    d: &mut Follow,
    shm: &ShmPrefix,
    domain: &str,
    (a, b): (&Memcached, &Memcached),
    old_version: u64,
    what: &str,
) {
    let new_version = d.version();
    // Versions are YYYYMMDD * 10^7 + n: only a test run across midnight (UTC) sees a new segment
    // start a day later, above the old one.
    if new_version / UPDATES_PER_DAY == old_version / UPDATES_PER_DAY {
        assert!(
            new_version < old_version,
            "{what}: the new segment's version {new_version} should be below the old \
             {old_version} (the point of the test: it is followed anyway)"
        );
    }
    let (key, rc) = d.set_fresh("after");
    assert_eq!(rc, 0, "{what}: write after the switch");
    assert!(
        holds(b.port(), &key),
        "{what}: {key} is not on the new server"
    );
    assert!(
        !holds(a.port(), &key),
        "{what}: {key} went to the old server"
    );
    let segment = format!("/{}.{domain}", shm.prefix);
    expect_one(&d.reports(), LVL_NOTICE, &segment, "new segment", what);
    d.keep_operating_on(b, what);
    let later = d.reports();
    assert!(later.0.is_empty(), "{what}: reported again: {later:?}");
}

// ---------------------------------------------------------------------------------------------
// The tests

/// (a) `rm` of the segment file, then `mcadmin set` with server B: a new segment object, whose
/// fresh version is below the one the handle applied.
#[test]
fn a_removed_and_recreated_segment_is_followed_within_a_second() {
    const DOMAIN: &str = "rm";
    let shm = ShmPrefix::new("followrm");
    let (a, b) = (Memcached::start(), Memcached::start());
    let (mut d, old_version) = follow_on_a(&shm, DOMAIN, &a);

    std::fs::remove_file(shm.segment(DOMAIN)).expect("rm the segment");
    mcadmin_ok(&shm, &["--domain", DOMAIN, "set", &b.addr()]);
    let changed = Instant::now();
    let took = d.wait_for_list(changed, &b.addr(), "rm + mcadmin set");
    assert!(
        took < PROMISE + SLACK,
        "the new segment was followed after {took:?}, more than {PROMISE:?} + {SLACK:?}"
    );
    eprintln!("rm + mcadmin set: followed after {took:?}");
    expect_switched(&mut d, &shm, DOMAIN, (&a, &b), old_version, "rm + set");
    d.finish();
}

/// (b) `mv` of another domain's segment over the followed one's path.
#[test]
fn a_segment_moved_over_is_followed_within_a_second() {
    const DOMAIN: &str = "target";
    const OTHER: &str = "source";
    let shm = ShmPrefix::new("followmv");
    let (a, b) = (Memcached::start(), Memcached::start());
    mcadmin_ok(&shm, &["--domain", OTHER, "set", &b.addr()]);
    let (mut d, old_version) = follow_on_a(&shm, DOMAIN, &a);

    std::fs::rename(shm.segment(OTHER), shm.segment(DOMAIN)).expect("mv over the segment");
    let changed = Instant::now();
    let took = d.wait_for_list(changed, &b.addr(), "mv over");
    assert!(
        took < PROMISE + SLACK,
        "the moved segment was followed after {took:?}, more than {PROMISE:?} + {SLACK:?}"
    );
    eprintln!("mv over: followed after {took:?}");
    expect_switched(&mut d, &shm, DOMAIN, (&a, &b), old_version, "mv");
    assert_eq!(shm.entries(), [format!("{}.{DOMAIN}", shm.prefix)]);
    d.finish();
}

/// (c) `rm` without re-creation: the handle keeps its list and reports the removal once; when
/// the domain is created again, the handle follows it within a second, reported once.
#[test]
fn a_removed_segment_keeps_the_last_list_until_it_comes_back() {
    const DOMAIN: &str = "gone";
    let shm = ShmPrefix::new("followgone");
    let (a, b) = (Memcached::start(), Memcached::start());
    let (mut d, old_version) = follow_on_a(&shm, DOMAIN, &a);
    let segment = format!("/{}.{DOMAIN}", shm.prefix);

    std::fs::remove_file(shm.segment(DOMAIN)).expect("rm the segment");
    let removed = Instant::now();
    let told = loop {
        let (key, rc) = d.set_fresh("kept");
        assert_eq!(rc, 0, "a write failed after the removal");
        assert!(
            holds(a.port(), &key),
            "{key} is not on the last list's server"
        );
        let reports = d.reports();
        if !reports.0.is_empty() {
            expect_one(&reports, LVL_WARN, &segment, "was removed", "rm");
            break removed.elapsed();
        }
        assert!(
            removed.elapsed() < SWITCH_WAIT,
            "no report of the removal within {SWITCH_WAIT:?}"
        );
        thread::sleep(POLL_PACE);
    };
    assert!(
        told < PROMISE + SLACK,
        "the removal was noticed after {told:?}, more than {PROMISE:?} + {SLACK:?}"
    );
    eprintln!("rm: noticed after {told:?}");
    assert_eq!(d.version(), old_version, "the last list stays");
    assert_eq!(d.servers(), [a.addr()]);
    d.keep_operating_on(&a, "removed");
    let later = d.reports();
    assert!(
        later.0.is_empty(),
        "the removal was reported again: {later:?}"
    );

    mcadmin_ok(&shm, &["--domain", DOMAIN, "set", &b.addr()]);
    let took = d.wait_for_list(Instant::now(), &b.addr(), "created again");
    assert!(
        took < PROMISE + SLACK,
        "the re-created segment was followed after {took:?}, more than {PROMISE:?} + {SLACK:?}"
    );
    expect_switched(&mut d, &shm, DOMAIN, (&a, &b), old_version, "created again");
    d.finish();
}
