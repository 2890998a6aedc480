//! Shared server lists (domains) end to end, with real processes: long-running C programs that
//! follow a domain while `mcadmin` changes it, handles that meet missing, corrupt and hostile
//! segments, and the `mcadmin` and `mclient` command lines.
//!
//! Every test works in a shared-memory namespace of its own (`MEMCACHE_SHM_PREFIX`, passed to
//! every child) and removes its segments when it ends, even when it fails, so the tests run in
//! parallel and leave `/dev/shm` clean. Where a process must have seen something, the test waits
//! for the process to say so (a status file, a reply line), never for a fixed time, and every
//! wait is bounded.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use memcache::client::{Client, ServerSpec};
use memcache::exit_code::Exit;
use memcache::hash::Distribution;
use memcache::registry::layout::{
    ENTRY_SIZE, MAGIC, OFF_ENTRY_HOST, OFF_ENTRY_PORT, OFF_ENTRY_WEIGHT, OFF_LAYOUT_VERSION,
    OFF_MAGIC, OFF_PUBLISHED, OFF_SLOT_COUNT, OFF_SLOT_DISTRIBUTION, OFF_SLOT_ENTRIES,
    OFF_SLOT_REPLICAS, OFF_SLOT_VERSION, SEGMENT_SIZE, SLOT_OFFSETS, SLOT_SIZE,
};
use support::domain_loop::LoopStatus;
use support::{compile_capi, spawn_c_with, CProcess, Memcached, ShmPrefix};

/// The bound of every wait for another process.
const WAIT: Duration = Duration::from_secs(10);
/// How long a handle may take to find a segment that appeared (it probes once a second).
const PROBE_WAIT: Duration = Duration::from_secs(5);
/// Keys every looping process must write under a list before that list is checked.
const KEYS_PER_PHASE: u64 = 30;
/// Pause between two operations of a looping process.
const LOOP_PACE_US: &str = "5000";
/// Upper bound on a looping process's life, in case the test dies without stopping it.
const LOOP_SECONDS: &str = "45";
const SHM_DIR: &str = "/dev/shm";
const UID_NOBODY: u32 = 65534;

// ---------------------------------------------------------------------------------------------
// Namespaces, mcadmin, mclient

/// Runs `cmd` with `input` on stdin, killing it (and failing) after [`WAIT`].
fn run_bounded(cmd: &mut Command, input: &[u8]) -> Output {
    support::run_bounded(cmd, input, WAIT)
}

fn mcadmin(shm: &ShmPrefix, args: &[&str]) -> Output {
    run_bounded(&mut shm.mcadmin(args), b"")
}

fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {:?}", out.status))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit status of a run of `what`, showing both streams on failure.
#[track_caller]
fn expect_code(out: &Output, status: i32, what: &str) {
    assert_eq!(
        code(out),
        status,
        "{what}: wrong exit status\n--- stdout ---\n{}--- stderr ---\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Runs mcadmin, which must succeed; returns its stdout.
#[track_caller]
fn mcadmin_ok(shm: &ShmPrefix, args: &[&str]) -> String {
    let out = mcadmin(shm, args);
    expect_code(&out, 0, &format!("mcadmin {args:?}"));
    text(&out.stdout)
}

/// A runtime error of mcadmin: exit status 3 (`Exit::Failed`), nothing on stdout, and exactly one line on stderr,
/// `mcadmin: ...`, that contains every string of `names`.
#[track_caller]
fn expect_runtime_error(out: &Output, what: &str, names: &[&str]) {
    expect_code(out, Exit::Failed.into(), what);
    assert!(out.stdout.is_empty(), "{what}: wrote to stdout");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("mcadmin: ") && err.ends_with('\n') && err.lines().count() == 1,
        "{what}: the error is not one line `mcadmin: ...`: {err:?}"
    );
    for name in names {
        assert!(err.contains(name), "{what}: {err:?} does not name {name:?}");
    }
}

/// `mclient` in the test's namespace, with none of its server variables from our environment.
fn mclient(shm: &ShmPrefix, args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mclient"));
    cmd.args(args)
        .env_remove("MEMCACHE_SERVERS")
        .env_remove("MEMCACHE_DOMAIN")
        .env("MEMCACHE_SHM_PREFIX", &shm.prefix);
    run_bounded(&mut cmd, stdin)
}

// ---------------------------------------------------------------------------------------------
// memcached seen from outside

/// The values the server at `port` holds for `keys` (absent keys are left out), with raw
/// `get` requests on a fresh connection.
fn raw_get(port: u16, keys: &[String]) -> HashMap<String, Vec<u8>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to memcached");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut writer = stream.try_clone().expect("clone socket");
    let mut reader = BufReader::new(stream);
    let mut found = HashMap::new();
    for batch in keys.chunks(50) {
        writer
            .write_all(format!("get {}\r\n", batch.join(" ")).as_bytes())
            .expect("send get");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read reply line");
            if line == "END\r\n" {
                break;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(
                words.len() >= 4 && words[0] == "VALUE",
                "unexpected reply line {line:?}"
            );
            let len: usize = words[3].parse().expect("value length");
            let mut data = vec![0; len + 2];
            reader.read_exact(&mut data).expect("read value");
            data.truncate(len);
            found.insert(words[1].to_string(), data);
        }
    }
    found
}

/// Where `key` must live for a handle with `list` placed by `distribution`: the library's safe
/// client builds the same placement without any I/O.
fn placement(list: &[String], distribution: Distribution, key: &str) -> String {
    let specs = list
        .iter()
        .map(|s| ServerSpec::parse(s).expect("server spec"))
        .collect();
    let client = Client::new(specs, distribution).expect("client");
    let i = client
        .server_for(key.as_bytes())
        .expect("a server for the key");
    list[i].clone()
}

// ---------------------------------------------------------------------------------------------
// The C programs

/// Compiles `capi-tests/<name>.c` once per test binary.
fn program(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    built
        .entry(name.to_string())
        .or_insert_with(|| compile_capi(name, &[]))
        .clone()
}

/// `capi-tests/domain_driver.c`: one handle, one command per line, one reply line each.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// The MC_SERV_LIST reports a driver received since its last `reset`.
#[derive(Debug)]
struct Reports {
    serv_list: usize,
    msgs: String,
}

impl Driver {
    fn start(shm: &ShmPrefix, env: &[(&str, &str)]) -> Driver {
        Driver::spawn(&[], None, shm, env)
    }

    /// Runs the driver as `wrapper... domain_driver` (e.g. under valgrind).
    fn start_under(wrapper: &[&str], shm: &ShmPrefix, env: &[(&str, &str)]) -> Driver {
        Driver::spawn(wrapper, None, shm, env)
    }

    /// Runs the driver with this user and group id (the test must be root).
    fn start_as(uid: u32, shm: &ShmPrefix, env: &[(&str, &str)]) -> Driver {
        Driver::spawn(&[], Some(uid), shm, env)
    }

    fn spawn(wrapper: &[&str], uid: Option<u32>, shm: &ShmPrefix, env: &[(&str, &str)]) -> Driver {
        let mut lib_path = support::prefix().join("lib").into_os_string();
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
            lib_path.push(":");
            lib_path.push(old);
        }
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program("domain_driver"));
                cmd
            }
            None => Command::new(program("domain_driver")),
        };
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        let mut child = cmd
            .env("LD_LIBRARY_PATH", lib_path)
            .env_remove("MEMCACHE_DOMAIN")
            .env("MEMCACHE_SHM_PREFIX", &shm.prefix)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, replies) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Driver {
            child,
            stdin,
            replies,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        text(&self.stderr.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Sends one command and returns its reply line.
    #[track_caller]
    fn cmd(&mut self, line: &str) -> String {
        if let Err(e) = writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush()) {
            panic!(
                "domain_driver: cannot send {line:?}: {e}; status {:?}; stderr:\n{}",
                self.child.try_wait(),
                self.stderr()
            );
        }
        match self.replies.recv_timeout(WAIT) {
            Ok(reply) => reply,
            Err(e) => panic!(
                "domain_driver: no reply to {line:?} ({e}); status {:?}; stderr:\n{}",
                self.child.try_wait(),
                self.stderr()
            ),
        }
    }

    /// The handle's servers as the C API shows them; servers[], num_servers and server_list
    /// must agree.
    #[track_caller]
    fn servers(&mut self) -> Vec<String> {
        let reply = self.cmd("servers");
        let rest = reply
            .strip_prefix("n=")
            .unwrap_or_else(|| panic!("servers: {reply:?}"));
        let (n, rest) = rest.split_once(' ').expect("n=N ...");
        let n: usize = n.parse().expect("num_servers");
        assert!(
            rest.starts_with("consistent=1 "),
            "servers[], num_servers and server_list disagree: {reply:?}"
        );
        let list = rest
            .split_once("servers=")
            .map(|(_, s)| s)
            .unwrap_or_default();
        let servers: Vec<String> = list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        assert_eq!(servers.len(), n, "num_servers vs servers[]: {reply:?}");
        servers
    }

    #[track_caller]
    fn set(&mut self, key: &str, value: &[u8]) -> i32 {
        let reply = self.cmd(&format!("set {key} {}", hex(value)));
        reply
            .strip_prefix("rc ")
            .and_then(|rc| rc.parse().ok())
            .unwrap_or_else(|| panic!("set {key}: {reply:?}"))
    }

    #[track_caller]
    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        let reply = self.cmd(&format!("get {key}"));
        if reply == "null" {
            return None;
        }
        let value = reply
            .strip_prefix("val ")
            .unwrap_or_else(|| panic!("get {key}: {reply:?}"));
        Some(unhex(value))
    }

    #[track_caller]
    fn add(&mut self, server: &str) -> i32 {
        let reply = self.cmd(&format!("add {server}"));
        reply
            .strip_prefix("rc ")
            .and_then(|rc| rc.parse().ok())
            .unwrap_or_else(|| panic!("add {server}: {reply:?}"))
    }

    /// Reports since the last call (each call starts a new count).
    #[track_caller]
    fn take_reports(&mut self) -> Reports {
        let reply = self.cmd("reports");
        let field = |name: &str| -> String {
            reply
                .split(' ')
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("reports: {reply:?}"))
                .to_string()
        };
        let reports = Reports {
            serv_list: field("serv_list=").parse().expect("serv_list count"),
            msgs: reply
                .split_once(" msgs=")
                .map(|(_, m)| m.to_string())
                .unwrap_or_default(),
        };
        assert_eq!(self.cmd("reset"), "ok");
        reports
    }

    /// Ends the driver; it must exit 0 and have written nothing to stderr.
    #[track_caller]
    fn finish(mut self) {
        let _ = writeln!(self.stdin, "quit").and_then(|()| self.stdin.flush());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "domain_driver did not quit");
            thread::sleep(Duration::from_millis(5));
        };
        assert!(
            status.success(),
            "domain_driver: {status}; stderr:\n{}",
            self.stderr()
        );
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Issues operations on the driver's handle until one succeeds, which a handle without servers
/// cannot do; fails after [`PROBE_WAIT`]. Returns how long it took.
#[track_caller]
fn wait_until_usable(driver: &mut Driver, key: &str) -> Duration {
    let start = Instant::now();
    loop {
        if driver.set(key, b"usable") == 0 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < PROBE_WAIT,
            "the handle found no servers within {PROBE_WAIT:?}; reports: {:?}",
            driver.take_reports()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that the one new report names the problem, and that the failed list was not re-read
/// (and re-reported) by later operations.
#[track_caller]
fn expect_one_report(reports: &Reports, what: &str, needle: &str) {
    assert_eq!(
        reports.serv_list, 1,
        "{what}: expected exactly one MC_SERV_LIST report, got {reports:?}"
    );
    assert!(
        reports.msgs.contains(needle),
        "{what}: the report does not say {needle:?}: {reports:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Segments written by hand (layout version 1, see src/registry/layout.rs)

/// A domain segment opened with std::fs, to plant what mcadmin never writes.
struct SegmentFile {
    path: PathBuf,
}

impl SegmentFile {
    fn open(shm: &ShmPrefix, domain: &str) -> SegmentFile {
        let seg = SegmentFile {
            path: shm.segment(domain),
        };
        assert_eq!(
            fs::metadata(&seg.path).expect("segment exists").len(),
            SEGMENT_SIZE as u64
        );
        seg
    }

    fn write_at(&self, offset: usize, bytes: &[u8]) {
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.path.display()));
        file.write_all_at(bytes, offset as u64).expect("pwrite");
    }

    fn read_at(&self, offset: usize, len: usize) -> Vec<u8> {
        let file = fs::File::open(&self.path).expect("open segment");
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset as u64).expect("pread");
        buf
    }

    /// (version, slot index) of the published word.
    fn published(&self) -> (u64, usize) {
        let word = u64::from_ne_bytes(self.read_at(OFF_PUBLISHED, 8).try_into().unwrap());
        (word >> 1, (word & 1) as usize)
    }

    /// Stores `word` as the published word (the test's processes are idle meanwhile).
    fn publish_word(&self, version: u64, slot: usize) {
        self.write_at(OFF_PUBLISHED, &(version << 1 | slot as u64).to_ne_bytes());
    }

    /// Publishes `slot` the way a writer does: into the slot not published, its version field
    /// set to the published version + 1, then the published word. Returns the new version.
    fn publish_slot(&self, mut slot: Vec<u8>) -> u64 {
        assert_eq!(slot.len(), SLOT_SIZE);
        let (version, current) = self.published();
        let (next, spare) = (version + 1, current ^ 1);
        put(&mut slot, OFF_SLOT_VERSION, &next.to_ne_bytes());
        self.write_at(SLOT_OFFSETS[spare], &slot);
        self.publish_word(next, spare);
        next
    }
}

fn put(buf: &mut [u8], offset: usize, bytes: &[u8]) {
    buf[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// A well-formed slot (version filled in by `publish_slot`) holding `servers` as
/// (host, port, weight), ketama-md5, one replica.
fn slot_bytes(servers: &[(&[u8], u16, u32)]) -> Vec<u8> {
    let mut slot = vec![0u8; SLOT_SIZE];
    put(
        &mut slot,
        OFF_SLOT_COUNT,
        &(servers.len() as u32).to_ne_bytes(),
    );
    put(&mut slot, OFF_SLOT_DISTRIBUTION, &1u32.to_ne_bytes());
    put(&mut slot, OFF_SLOT_REPLICAS, &1u32.to_ne_bytes());
    for (i, (host, port, weight)) in servers.iter().enumerate() {
        let entry = OFF_SLOT_ENTRIES + i * ENTRY_SIZE;
        put(&mut slot, entry + OFF_ENTRY_HOST, host);
        put(&mut slot, entry + OFF_ENTRY_PORT, &port.to_ne_bytes());
        put(&mut slot, entry + OFF_ENTRY_WEIGHT, &weight.to_ne_bytes());
    }
    slot
}

/// The slot of a list of "127.0.0.1:PORT" memcached servers with weight 1.
fn slot_of(servers: &[&Memcached]) -> Vec<u8> {
    let entries: Vec<(&[u8], u16, u32)> = servers
        .iter()
        .map(|m| (&b"127.0.0.1"[..], m.port(), 1))
        .collect();
    slot_bytes(&entries)
}

// ---------------------------------------------------------------------------------------------
// Long-running clients (capi-tests/domain_loop.c)

/// How a looping process gets its handle.
enum LoopHandle<'a> {
    /// `mc_new2(domain)`.
    New2(&'a str),
    /// `mc_new()` with `MEMCACHE_DOMAIN=domain`.
    NewWithEnv(&'a str),
}

struct LoopProc {
    name: String,
    status_path: PathBuf,
    process: Option<CProcess>,
}

impl LoopProc {
    fn start(shm: &ShmPrefix, name: &str, handle: LoopHandle<'_>, dir: &Path) -> LoopProc {
        let status_path = dir.join(format!("{name}.status"));
        let mut env = vec![
            shm.env(),
            ("LOOP_NAME", name.to_string()),
            ("LOOP_STATUS", status_path.display().to_string()),
            ("LOOP_STOP", dir.join("stop").display().to_string()),
            ("LOOP_SECONDS", LOOP_SECONDS.to_string()),
            ("LOOP_PACE_US", LOOP_PACE_US.to_string()),
        ];
        match handle {
            LoopHandle::New2(domain) => {
                env.push(("LOOP_HANDLE", "new2".to_string()));
                env.push(("LOOP_DOMAIN", domain.to_string()));
                // So that a mc_new2() that wrongly used $MEMCACHE_DOMAIN would be caught.
                env.push(("MEMCACHE_DOMAIN", "not-this-one".to_string()));
            }
            LoopHandle::NewWithEnv(domain) => {
                env.push(("LOOP_HANDLE", "new".to_string()));
                env.push(("MEMCACHE_DOMAIN", domain.to_string()));
            }
        }
        let process = spawn_c_with(&[], &program("domain_loop"), &env, Duration::from_secs(60));
        LoopProc {
            name: name.to_string(),
            status_path,
            process: Some(process),
        }
    }

    fn status(&self) -> Option<LoopStatus> {
        LoopStatus::parse(&fs::read_to_string(&self.status_path).ok()?)
    }

    /// Fails (with the program's output) if the program has already ended.
    #[track_caller]
    fn assert_running(&mut self) {
        let process = self.process.as_mut().expect("running");
        if process.has_exited() {
            let out = self.process.take().expect("running").wait();
            panic!(
                "{} ended early: {:?}\n--- stderr ---\n{}",
                self.name, out.status, out.stderr
            );
        }
    }

    fn key(&self, i: u64) -> String {
        format!("{}-{i}", self.name)
    }
}

/// Everything the looping processes last reported, for failure messages.
fn describe_statuses(procs: &[LoopProc]) -> String {
    procs
        .iter()
        .map(|p| format!("{}: {:?}\n", p.name, p.status()))
        .collect()
}

/// The first key index each process must place with a list published just before this call: the
/// index after the operation that was in progress, so the operation surely started after the
/// change (its status was not written yet when we read the previous one).
fn first_index_after_change(procs: &mut [LoopProc]) -> Vec<u64> {
    procs
        .iter_mut()
        .map(|p| {
            p.assert_running();
            p.status().map_or(0, |s| s.ops + 1)
        })
        .collect()
}

/// Waits until every process has written [`KEYS_PER_PHASE`] keys from `first` on and shows
/// exactly `list`; returns the end (exclusive) of each process's range of keys to check. Fails if
/// an operation in the range failed or the C view of the list was inconsistent.
fn settle(procs: &mut [LoopProc], first: &[u64], list: &[String], label: &str) -> Vec<u64> {
    let deadline = Instant::now() + WAIT;
    let statuses = loop {
        let mut statuses = Vec::new();
        for (p, &from) in procs.iter_mut().zip(first) {
            p.assert_running();
            match p.status() {
                Some(s) if s.ops >= from + KEYS_PER_PHASE && s.servers == list => statuses.push(s),
                _ => break,
            }
        }
        if statuses.len() == procs.len() {
            break statuses;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: timed out after {WAIT:?} waiting for every process to write \
             {KEYS_PER_PHASE} keys from {first:?} on with the list {list:?}\n{}",
            describe_statuses(procs)
        );
        thread::sleep(Duration::from_millis(10));
    };
    for ((p, s), &from) in procs.iter().zip(&statuses).zip(first) {
        assert!(
            s.consistent,
            "{label}: {}: servers[], num_servers and server_list disagree: {s:?}",
            p.name
        );
        assert!(
            s.last_fail < from as i64,
            "{label}: {}: operation {} (after the change) failed: {s:?}",
            p.name,
            s.last_fail
        );
    }
    statuses.iter().map(|s| s.ops).collect()
}

/// Checks, by asking every memcached, that each key of `first[i]..end[i]` of every process is on
/// exactly one server: the one `list` under `distribution` places it on. Returns, per process,
/// how many of its keys each server holds.
fn check_keys(
    procs: &[LoopProc],
    first: &[u64],
    end: &[u64],
    instances: &[&Memcached],
    list: &[String],
    distribution: Distribution,
    label: &str,
) -> Vec<HashMap<String, usize>> {
    let keys: Vec<Vec<String>> = procs
        .iter()
        .zip(first.iter().zip(end))
        .map(|(p, (&from, &to))| (from..to).map(|i| p.key(i)).collect())
        .collect();
    let all: Vec<String> = keys.iter().flatten().cloned().collect();
    let held: Vec<(String, HashMap<String, Vec<u8>>)> = instances
        .iter()
        .map(|m| (m.addr(), raw_get(m.port(), &all)))
        .collect();
    let mut problems = Vec::new();
    let mut counts = Vec::new();
    for proc_keys in &keys {
        let mut per_server: HashMap<String, usize> = HashMap::new();
        for key in proc_keys {
            let holders: Vec<&String> = held
                .iter()
                .filter(|(_, values)| values.contains_key(key))
                .map(|(addr, _)| addr)
                .collect();
            let expected = placement(list, distribution, key);
            if holders != [&expected] {
                problems.push(format!(
                    "{key}: held by {holders:?}, expected only on {expected}"
                ));
                continue;
            }
            let value = &held.iter().find(|(a, _)| *a == expected).expect("holder").1[key];
            if *value != format!("value-{key}").into_bytes() {
                problems.push(format!("{key}: value {:?}", text(value)));
            }
            *per_server.entry(expected).or_default() += 1;
        }
        counts.push(per_server);
    }
    assert!(
        problems.is_empty(),
        "{label}: {} of {} keys misplaced (list {list:?}, {}):\n{}\n{}",
        problems.len(),
        all.len(),
        distribution.name(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        describe_statuses(procs)
    );
    counts
}

/// Several processes (two C programs with `mc_new2(domain)` and one with `mc_new()` and
/// `MEMCACHE_DOMAIN`) set and read back keys in a loop while mcadmin adds, deletes and replaces
/// servers and changes the distribution: from the first operation that starts after a change,
/// each key lands exactly where the new list puts it, nothing fails, the C view of the list
/// (servers[], num_servers, server_list) is the new list, and a server that stays keeps its
/// connections.
#[test]
fn live_list_changes_reach_every_process() {
    const DOMAIN: &str = "live";
    let shm = ShmPrefix::new("live");
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    let instances = [&a, &b, &c];
    let (aa, ba, ca) = (a.addr(), b.addr(), c.addr());
    let dir = support::temp_dir("domains-live");

    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "create"]);
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "add", &aa]);
    let mut procs = vec![
        LoopProc::start(&shm, "p1", LoopHandle::New2(DOMAIN), &dir),
        LoopProc::start(&shm, "p2", LoopHandle::New2(DOMAIN), &dir),
        LoopProc::start(&shm, "legacy", LoopHandle::NewWithEnv(DOMAIN), &dir),
    ];
    let ketama = Distribution::KetamaMd5;

    // The list they start with: every key from the first one on A.
    let list = vec![aa.clone()];
    let first = vec![0; procs.len()];
    let end = settle(&mut procs, &first, &list, "A");
    check_keys(&procs, &first, &end, &instances, &list, ketama, "A");

    // add B: keys spread over A and B as ketama places them.
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "add", &ba]);
    let first = first_index_after_change(&mut procs);
    let list = vec![aa.clone(), ba.clone()];
    let end = settle(&mut procs, &first, &list, "A,B");
    let counts = check_keys(&procs, &first, &end, &instances, &list, ketama, "A,B");
    let total_on = |server: &str| counts.iter().filter_map(|c| c.get(server)).sum::<usize>();
    assert!(
        total_on(&aa) > 0 && total_on(&ba) > 0,
        "A,B: keys not spread: {counts:?}"
    );
    // Processes that wrote nothing to B have no connection to keep there.
    let without_b = counts.iter().filter(|c| !c.contains_key(&ba)).count() as u64;

    // delete A: only B, over the connections the processes already have to B.
    let before = b.stat("total_connections");
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "delete", &aa]);
    let first = first_index_after_change(&mut procs);
    let list = vec![ba.clone()];
    let end = settle(&mut procs, &first, &list, "B");
    // The one new connection is this stats request's own.
    let new_connections = b.stat("total_connections") - before;
    assert_eq!(
        new_connections,
        1 + without_b,
        "B stayed in the list, yet the processes opened {} new connections to it",
        new_connections.saturating_sub(1)
    );
    check_keys(&procs, &first, &end, &instances, &list, ketama, "B");

    // set C: everything on C.
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "set", &ca]);
    let first = first_index_after_change(&mut procs);
    let list = vec![ca.clone()];
    let end = settle(&mut procs, &first, &list, "C");
    check_keys(&procs, &first, &end, &instances, &list, ketama, "C");

    // set A B C, then switch the domain to crc32-modulo: the placement follows too.
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "set", &aa, &ba, &ca]);
    let first = first_index_after_change(&mut procs);
    let list = vec![aa.clone(), ba.clone(), ca.clone()];
    let end = settle(&mut procs, &first, &list, "A,B,C");
    check_keys(&procs, &first, &end, &instances, &list, ketama, "A,B,C");

    let _ = mcadmin_ok(
        &shm,
        &[
            "--domain",
            DOMAIN,
            "config",
            "--distribution",
            "crc32-modulo",
        ],
    );
    let first = first_index_after_change(&mut procs);
    let end = settle(&mut procs, &first, &list, "A,B,C crc32-modulo");
    let crc = Distribution::Crc32Modulo;
    check_keys(&procs, &first, &end, &instances, &list, crc, "A,B,C crc32");

    // Operations that straddle a change may fail (a set before it, the get after); report them.
    for p in &procs {
        let s = p.status().expect("status");
        eprintln!("{}: {} operations, {} failed", p.name, s.ops, s.fails);
    }
    fs::write(dir.join("stop"), b"").expect("create the stop file");
    for p in &mut procs {
        let out = p.process.take().expect("running").wait();
        out.assert_success().assert_stdout_empty();
    }
}

// ---------------------------------------------------------------------------------------------
// Handles and segments that come and go

/// A handle of a domain that has no segment yet has no servers: operations fail with a
/// "no servers" report. It picks the list up once mcadmin creates the domain, within the probe
/// interval, whether it came from mc_new2() or from mc_new() with MEMCACHE_DOMAIN.
#[test]
fn a_handle_without_segment_picks_the_list_up_once_created() {
    const DOMAIN: &str = "late";
    let shm = ShmPrefix::new("late");
    let a = Memcached::start();
    let mut new2 = Driver::start(&shm, &[]);
    let mut legacy = Driver::start(&shm, &[("MEMCACHE_DOMAIN", DOMAIN)]);
    assert_eq!(new2.cmd(&format!("new2 {DOMAIN}")), "ok");
    assert_eq!(legacy.cmd("new"), "ok");
    for d in [&mut new2, &mut legacy] {
        assert_eq!(d.servers(), Vec::<String>::new());
        let _ = d.take_reports();
        assert_eq!(d.set("k", b"v"), -1, "set without servers");
        assert_eq!(d.get("k"), None, "get without servers");
        let reports = d.take_reports();
        assert!(
            reports.serv_list >= 2 && reports.msgs.contains("no servers"),
            "expected a \"no servers\" report per operation: {reports:?}"
        );
    }
    assert!(shm.entries().is_empty(), "a handle created a segment");

    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "create"]);
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "add", &a.addr()]);
    for (d, key) in [(&mut new2, "late-new2"), (&mut legacy, "late-legacy")] {
        let took = wait_until_usable(d, key);
        assert_eq!(d.servers(), [a.addr()], "after {took:?}");
        assert_eq!(d.get(key).as_deref(), Some(&b"usable"[..]));
        assert_eq!(
            raw_get(a.port(), &[key.to_string()])
                .get(key)
                .map(Vec::as_slice),
            Some(&b"usable"[..])
        );
    }
    new2.finish();
    legacy.finish();
}

/// A domain destroyed and created again under the same name: handles that had the old segment
/// mapped must move to the new one (mcadmin says handles keep their list only while the domain
/// is gone), at the latest after the probe interval.
#[test]
fn a_recreated_domain_is_followed() {
    const DOMAIN: &str = "again";
    let shm = ShmPrefix::new("again");
    let (a, b) = (Memcached::start(), Memcached::start());
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "set", &a.addr()]);
    let mut d = Driver::start(&shm, &[]);
    assert_eq!(d.cmd(&format!("new2 {DOMAIN}")), "ok");
    assert_eq!(d.servers(), [a.addr()]);

    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "destroy"]);
    assert_eq!(d.set("kept", b"1"), 0, "the last list stays usable");
    assert_eq!(d.servers(), [a.addr()]);

    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "set", &b.addr()]);
    let start = Instant::now();
    while d.servers() != [b.addr()] {
        assert!(
            start.elapsed() < PROBE_WAIT,
            "after destroy + set, the handle still uses {:?} (the new list is {:?}) after {:?}",
            d.servers(),
            [b.addr()],
            PROBE_WAIT
        );
        let _ = d.set("probe", b"1");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.set("moved", b"1"), 0);
    assert!(raw_get(b.port(), &["moved".to_string()]).contains_key("moved"));
    d.finish();
}

// ---------------------------------------------------------------------------------------------
// Hostile segments

/// Lists published in place that a reader must refuse: each is reported once through the error
/// handler, the handle keeps using its last good list, and a good list published afterwards is
/// taken up again.
#[test]
fn corrupt_lists_are_refused_and_the_last_good_list_kept() {
    const DOMAIN: &str = "corrupt";
    let shm = ShmPrefix::new("corrupt");
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "set", &a.addr()]);
    let seg = SegmentFile::open(&shm, DOMAIN);
    let mut d = Driver::start(&shm, &[]);
    assert_eq!(d.cmd(&format!("new2 {DOMAIN}")), "ok");
    assert_eq!(d.set("good", b"1"), 0);
    assert_eq!(d.servers(), [a.addr()]);
    let _ = d.take_reports();

    let host = &b"127.0.0.1"[..];
    let unterminated = [b'x'; 256];
    let mut huge_count = slot_of(&[&b]);
    put(&mut huge_count, OFF_SLOT_COUNT, &100_000u32.to_ne_bytes());
    let mut bad_distribution = slot_of(&[&b]);
    put(
        &mut bad_distribution,
        OFF_SLOT_DISTRIBUTION,
        &9u32.to_ne_bytes(),
    );
    let mut no_replicas = slot_of(&[&b]);
    put(&mut no_replicas, OFF_SLOT_REPLICAS, &0u32.to_ne_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("count 100000", huge_count, "count 100000 exceeds"),
        (
            "unterminated host",
            slot_bytes(&[(host, b.port(), 1), (&unterminated, 11211, 1)]),
            "server 2: host is not NUL-terminated",
        ),
        (
            "port 0",
            slot_bytes(&[(host, 0, 1)]),
            "host 127.0.0.1 has port 0",
        ),
        (
            "empty host",
            slot_bytes(&[(b"", b.port(), 1)]),
            "empty host",
        ),
        ("weight 0", slot_bytes(&[(host, b.port(), 0)]), "weight 0"),
        (
            "host not UTF-8",
            slot_bytes(&[(b"127.0.0.\xff", b.port(), 1)]),
            "UTF-8",
        ),
        (
            "server twice",
            slot_bytes(&[(host, b.port(), 1), (host, b.port(), 1)]),
            "listed twice",
        ),
        ("distribution 9", bad_distribution, "distribution code 9"),
        ("replicas 0", no_replicas, "replica count 0"),
    ];
    for (i, (what, slot, needle)) in cases.into_iter().enumerate() {
        let version = seg.publish_slot(slot);
        for op in 0..3 {
            let key = format!("c{i}-{op}");
            assert_eq!(d.set(&key, b"v"), 0, "{what}: operation {op} failed");
            assert!(
                raw_get(a.port(), std::slice::from_ref(&key)).contains_key(&key),
                "{what}: {key} did not go to the last good list"
            );
        }
        assert_eq!(d.servers(), [a.addr()], "{what}: list changed");
        expect_one_report(&d.take_reports(), what, needle);
        // mcadmin refuses to build on it too.
        let out = mcadmin(&shm, &["--domain", DOMAIN, "add", &c.addr()]);
        expect_runtime_error(&out, &format!("mcadmin add on {what}"), &[needle]);
        assert_eq!(seg.published().0, version, "{what}: mcadmin wrote anyway");
    }

    // A published word whose slot holds another version (what a torn publish would look like).
    let (version, slot) = seg.published();
    seg.publish_word(version + 1, slot);
    assert_eq!(d.set("torn", b"v"), 0);
    assert_eq!(d.servers(), [a.addr()]);
    expect_one_report(&d.take_reports(), "slot of another version", "is published");

    // A good list again: taken up at once; mcadmin works on it.
    let _ = seg.publish_slot(slot_of(&[&b]));
    assert_eq!(d.set("recovered", b"v"), 0);
    assert_eq!(d.servers(), [b.addr()]);
    assert!(raw_get(b.port(), &["recovered".to_string()]).contains_key("recovered"));
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "add", &c.addr()]);
    assert_eq!(d.set("after-mcadmin", b"v"), 0);
    assert_eq!(d.servers(), [b.addr(), c.addr()]);
    assert_eq!(d.take_reports().serv_list, 0);
    d.finish();
}

/// The header is written once; a segment whose magic goes bad afterwards is no longer a domain
/// segment, whatever its slots say: the handle keeps its last good list and reports it.
#[test]
fn a_header_that_goes_bad_is_refused() {
    const DOMAIN: &str = "magic";
    let shm = ShmPrefix::new("magic");
    let (a, b) = (Memcached::start(), Memcached::start());
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "set", &a.addr()]);
    let seg = SegmentFile::open(&shm, DOMAIN);
    let mut d = Driver::start(&shm, &[]);
    assert_eq!(d.cmd(&format!("new2 {DOMAIN}")), "ok");
    assert_eq!(d.servers(), [a.addr()]);
    let _ = d.take_reports();

    seg.write_at(OFF_MAGIC, &0x0BAD_0BAD_0BAD_0BADu64.to_ne_bytes());
    let _ = seg.publish_slot(slot_of(&[&b]));
    assert_eq!(d.set("k", b"v"), 0);
    assert_eq!(
        d.servers(),
        [a.addr()],
        "a list was taken from a segment with a bad magic"
    );
    expect_one_report(&d.take_reports(), "bad magic in place", "magic");
    d.finish();
}

/// A segment a handle must not use, planted under a domain's name.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    BadMagic,
    LayoutVersion,
    Truncated,
    WritableByOthers,
    ForeignOwner,
    Fifo,
}

impl Hostile {
    fn domain(self) -> String {
        format!("{self:?}")
    }

    /// What the library's report and mcadmin's message say about it.
    fn problem(self) -> &'static str {
        match self {
            Hostile::BadMagic => "bad magic",
            Hostile::LayoutVersion => "layout version 2",
            Hostile::Truncated => "truncated",
            Hostile::WritableByOthers => "writable by group or others",
            Hostile::ForeignOwner => "owned by uid 65534",
            Hostile::Fifo => "not a regular file",
        }
    }

    /// Plants it at `path`, where mcadmin made a good segment (except for the FIFO).
    fn plant(self, path: &Path) {
        match self {
            Hostile::BadMagic => write_u64(path, OFF_MAGIC, 0x0123_4567_89AB_CDEF),
            Hostile::LayoutVersion => write_u32(path, OFF_LAYOUT_VERSION, 2),
            Hostile::Truncated => OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(1000))
                .expect("truncate"),
            Hostile::WritableByOthers => set_mode(path, 0o666),
            Hostile::ForeignOwner => fchown(path, UID_NOBODY),
            Hostile::Fifo => {
                let out = run_bounded(Command::new("mkfifo").arg(path), b"");
                expect_code(&out, 0, "mkfifo");
            }
        }
    }

    /// Repairs it in place; false when that is not possible.
    fn repair(self, path: &Path) -> bool {
        match self {
            Hostile::BadMagic => write_u64(path, OFF_MAGIC, MAGIC),
            Hostile::LayoutVersion => write_u32(path, OFF_LAYOUT_VERSION, 1),
            Hostile::WritableByOthers => set_mode(path, 0o644),
            Hostile::ForeignOwner => fchown(path, 0),
            Hostile::Truncated | Hostile::Fifo => return false,
        }
        true
    }
}

/// Segments a fresh handle must not use: a bad magic, an unknown layout version, a truncated
/// object, one writable by others (mode 0666), one owned by another user (uid 65534), and a FIFO
/// under the segment's name. Each gives a handle with no servers and a report naming the
/// problem (nothing hangs or crashes), mcadmin refuses it with a one-line error, and once the
/// problem is repaired the handle picks the list up within the probe interval.
#[test]
fn hostile_segments_are_ignored_with_a_report() {
    let shm = ShmPrefix::new("hostile");
    let a = Memcached::start();
    let mut cases = vec![
        Hostile::BadMagic,
        Hostile::LayoutVersion,
        Hostile::Truncated,
        Hostile::WritableByOthers,
        Hostile::Fifo,
    ];
    if euid() == 0 {
        cases.push(Hostile::ForeignOwner);
    } else {
        eprintln!("not root: the foreign-owner case needs chown and is skipped");
    }
    let mut d = Driver::start(&shm, &[]);
    for hostile in cases {
        let (domain, problem) = (hostile.domain(), hostile.problem());
        let path = shm.segment(&domain);
        if !matches!(hostile, Hostile::Fifo) {
            let _ = mcadmin_ok(&shm, &["--domain", &domain, "set", &a.addr()]);
        }
        hostile.plant(&path);

        assert_eq!(d.cmd(&format!("new2 {domain}")), "ok", "{domain}");
        assert_eq!(d.servers(), Vec::<String>::new(), "{domain}: used anyway");
        assert_eq!(d.set("k", b"v"), -1, "{domain}: an operation worked");
        let reports = d.take_reports();
        assert!(
            reports.msgs.contains(problem),
            "{domain}: no report saying {problem:?}: {reports:?}"
        );
        let out = mcadmin(&shm, &["--domain", &domain, "list"]);
        expect_runtime_error(&out, &format!("mcadmin list of {domain}"), &[problem]);

        if hostile.repair(&path) {
            let took = wait_until_usable(&mut d, "k");
            assert_eq!(d.servers(), [a.addr()], "{domain}: repaired after {took:?}");
        }
    }
    d.finish();
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn write_u64(path: &Path, offset: usize, v: u64) {
    let f = OpenOptions::new().write(true).open(path).expect("open");
    f.write_all_at(&v.to_ne_bytes(), offset as u64)
        .expect("pwrite");
}

fn write_u32(path: &Path, offset: usize, v: u32) {
    let f = OpenOptions::new().write(true).open(path).expect("open");
    f.write_all_at(&v.to_ne_bytes(), offset as u64)
        .expect("pwrite");
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn fchown(path: &Path, uid: u32) {
    let f = fs::File::open(path).expect("open");
    std::os::unix::fs::fchown(&f, Some(uid), None).expect("fchown");
}

/// The owner rule seen from an unprivileged user (uid 65534): its handles follow a domain that
/// root made and one it made itself with mcadmin, and ignore, with a report, a segment owned by
/// yet another user (uid 65533), even though that segment is intact and world-readable.
#[test]
fn an_unprivileged_handle_trusts_only_root_and_itself() {
    if euid() != 0 {
        eprintln!("not root: cannot run processes as another user; skipped");
        return;
    }
    let shm = ShmPrefix::new("users");
    let (a, b) = (Memcached::start(), Memcached::start());
    let _ = mcadmin_ok(&shm, &["--domain", "byroot", "set", &a.addr()]);
    let _ = mcadmin_ok(&shm, &["--domain", "byother", "set", &a.addr()]);
    fchown(&shm.segment("byother"), UID_NOBODY - 1);
    let mut own = shm.mcadmin(&["--domain", "byself", "set", &b.addr()]);
    own.uid(UID_NOBODY).gid(UID_NOBODY);
    expect_code(&run_bounded(&mut own, b""), 0, "mcadmin set as uid 65534");
    let meta = fs::metadata(shm.segment("byself")).expect("segment");
    assert_eq!(
        (meta.uid(), meta.permissions().mode() & 0o7777),
        (UID_NOBODY, 0o644)
    );

    let mut d = Driver::start_as(UID_NOBODY, &shm, &[]);
    for (domain, server) in [("byroot", &a), ("byself", &b)] {
        assert_eq!(d.cmd(&format!("new2 {domain}")), "ok");
        assert_eq!(d.servers(), [server.addr()], "{domain}");
        assert_eq!(d.set(&format!("{domain}-key"), b"v"), 0, "{domain}");
    }
    let _ = d.take_reports();
    assert_eq!(d.cmd("new2 byother"), "ok");
    assert_eq!(d.servers(), Vec::<String>::new(), "byother used");
    assert_eq!(d.set("k", b"v"), -1);
    let reports = d.take_reports();
    assert!(
        reports
            .msgs
            .contains("owned by uid 65533, which is neither root nor uid 65534"),
        "{reports:?}"
    );
    d.finish();
}

/// Segments are world-readable (mode 0644) so that every user's programs can follow root's
/// domains; `mcadmin list`, `domains` and `config` only read, so an unprivileged user can run
/// them on root's domains too, while changes stay refused with a one-line error.
#[test]
fn mcadmin_shows_root_domains_to_other_users() {
    if euid() != 0 {
        eprintln!("not root: cannot run processes as another user; skipped");
        return;
    }
    let shm = ShmPrefix::new("readers");
    let a = Memcached::start();
    let _ = mcadmin_ok(&shm, &["--domain", "web", "set", &a.addr()]);
    let as_nobody = |args: &[&str]| {
        let mut cmd = shm.mcadmin(args);
        cmd.uid(UID_NOBODY).gid(UID_NOBODY);
        run_bounded(&mut cmd, b"")
    };
    let out = as_nobody(&["--domain", "web", "add", "127.0.0.1:1"]);
    expect_runtime_error(&out, "add by another user", &["Permission denied"]);
    let out = as_nobody(&["--domain", "web", "destroy"]);
    expect_runtime_error(&out, "destroy by another user", &["Permission denied"]);

    let out = as_nobody(&["--domain", "web", "list"]);
    expect_code(&out, 0, "list by another user");
    let listed = parse_list(&text(&out.stdout));
    assert_eq!(listed.servers, [(a.addr(), 1)]);
    let out = as_nobody(&["domains"]);
    expect_code(&out, 0, "domains by another user");
    assert!(
        text(&out.stdout).starts_with("web version "),
        "domains by another user: {:?}",
        text(&out.stdout)
    );
    let out = as_nobody(&["--domain", "web", "config"]);
    expect_code(&out, 0, "config (show) by another user");
    assert_eq!(text(&out.stdout), "distribution ketama-md5\nreplicas 1\n");
}

// ---------------------------------------------------------------------------------------------
// mc_new2 names, mc_new_private, explicit adds

/// mc_new2() refuses illegal names with a report; "private" and mc_new_private() give a
/// per-handle list that accepts explicit adds; mc_server_add4() on a shared-domain handle fails
/// with -6 and leaves the list alone; on an mc_new() handle attached to a domain the first
/// explicit add makes it private, after which mcadmin's changes no longer reach it.
#[test]
fn names_private_handles_and_explicit_adds() {
    let shm = ShmPrefix::new("api");
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    let mut d = Driver::start(&shm, &[("MEMCACHE_DOMAIN", "legacy")]);

    let too_long = "n".repeat(65);
    for (name, needle) in [
        ("bad name", "position 3"),
        ("", "empty name"),
        (too_long.as_str(), "65 bytes"),
        ("a/b", "'/'"),
        ("caf\u{e9}", "position 3"),
    ] {
        assert_eq!(d.cmd(&format!("new2 {name}")), "null", "mc_new2({name:?})");
        let reports = d.take_reports();
        assert!(
            reports.serv_list == 1 && reports.msgs.contains(needle),
            "mc_new2({name:?}): expected one report naming {needle:?}: {reports:?}"
        );
    }
    let longest = "n".repeat(64);
    assert_eq!(d.cmd(&format!("new2 {longest}")), "ok", "64-byte name");
    assert_eq!(d.servers(), Vec::<String>::new());

    // "private" and mc_new_private(): explicit adds, the 1.4 behaviour.
    for (how, server) in [("new2 private", &a), ("private", &b)] {
        assert_eq!(d.cmd(how), "ok", "{how}");
        assert_eq!(d.servers(), Vec::<String>::new(), "{how}");
        assert_eq!(d.add(&server.addr()), 0, "{how}: add");
        assert_eq!(d.servers(), [server.addr()], "{how}");
        let key = format!("{}-key", how.replace(' ', "-"));
        assert_eq!(d.set(&key, b"p"), 0, "{how}: set");
        assert_eq!(d.get(&key).as_deref(), Some(&b"p"[..]), "{how}: get");
        assert!(raw_get(server.port(), std::slice::from_ref(&key)).contains_key(&key));
    }
    assert!(shm.entries().is_empty(), "a private handle made a segment");

    // A shared domain's list belongs to mcadmin.
    let _ = mcadmin_ok(&shm, &["--domain", "shared", "set", &a.addr(), &c.addr()]);
    assert_eq!(d.cmd("new2 shared"), "ok");
    assert_eq!(d.servers(), [a.addr(), c.addr()]);
    let _ = d.take_reports();
    assert_eq!(
        d.add(&b.addr()),
        -6,
        "explicit add on a shared-domain handle"
    );
    assert_eq!(d.servers(), [a.addr(), c.addr()], "the list changed");
    let reports = d.take_reports();
    assert!(
        reports.serv_list == 1 && reports.msgs.contains("belongs to mcadmin"),
        "{reports:?}"
    );
    assert_eq!(d.set("shared-key", b"s"), 0);
    let home = placement(&[a.addr(), c.addr()], Distribution::KetamaMd5, "shared-key");
    let server = if home == a.addr() { &a } else { &c };
    assert!(raw_get(server.port(), &["shared-key".to_string()]).contains_key("shared-key"));

    // mc_new() follows $MEMCACHE_DOMAIN until the program adds a server itself.
    let _ = mcadmin_ok(&shm, &["--domain", "legacy", "set", &a.addr(), &c.addr()]);
    assert_eq!(d.cmd("new"), "ok");
    assert_eq!(d.servers(), [a.addr(), c.addr()]);
    assert_eq!(
        d.add(&b.addr()),
        0,
        "first explicit add on an mc_new() handle"
    );
    assert_eq!(d.servers(), [b.addr()], "the domain's servers must be gone");
    let _ = mcadmin_ok(&shm, &["--domain", "legacy", "set", &a.addr()]);
    for i in 0..3 {
        let key = format!("legacy-{i}");
        assert_eq!(d.set(&key, b"l"), 0);
        assert!(
            raw_get(b.port(), std::slice::from_ref(&key)).contains_key(&key),
            "{key} did not go to the explicitly added server"
        );
    }
    assert_eq!(d.servers(), [b.addr()], "a later mcadmin change reached it");
    assert_eq!(d.add(&c.addr()), 0, "more explicit adds");
    assert_eq!(d.servers(), [b.addr(), c.addr()]);

    // mc_new2(NULL) names the mc_new() domain.
    assert_eq!(d.cmd("new2null"), "ok");
    assert_eq!(d.servers(), [a.addr()]);
    d.finish();
}

/// The domain paths of the library under valgrind: attaching, list rebuilds that keep, add and
/// free servers, a refused list, a legacy handle turning private, refused names and mc_free()
/// of each kind of handle, with no invalid access and no definite leak.
#[test]
fn domain_handles_under_valgrind() {
    const DOMAIN: &str = "vg";
    let shm = ShmPrefix::new("valgrind");
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    let _ = mcadmin_ok(&shm, &["--domain", DOMAIN, "set", &a.addr()]);
    let valgrind = [
        "valgrind",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
        "--num-callers=30",
        "--quiet",
    ];
    let mut d = Driver::start_under(&valgrind, &shm, &[("MEMCACHE_DOMAIN", DOMAIN)]);
    assert_eq!(d.cmd(&format!("new2 {DOMAIN}")), "ok");
    let changes: [&[&str]; 4] = [
        &["add", &b.addr()],
        &["delete", &a.addr()],
        &["set", &c.addr(), &a.addr()],
        &["config", "--distribution", "crc32-modulo"],
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut args = vec!["--domain", DOMAIN];
        args.extend_from_slice(change);
        let _ = mcadmin_ok(&shm, &args);
        for k in 0..5 {
            let key = format!("vg-{i}-{k}");
            assert_eq!(d.set(&key, b"value"), 0, "{change:?}");
            assert_eq!(d.get(&key).as_deref(), Some(&b"value"[..]), "{change:?}");
        }
    }
    let seg = SegmentFile::open(&shm, DOMAIN);
    let mut bad = slot_of(&[&b]);
    put(&mut bad, OFF_SLOT_COUNT, &100_000u32.to_ne_bytes());
    let _ = seg.publish_slot(bad);
    assert_eq!(d.set("vg-refused", b"v"), 0);
    assert_eq!(d.servers(), [c.addr(), a.addr()]);
    assert_eq!(d.add(&b.addr()), -6);
    let _ = seg.publish_slot(slot_of(&[&b]));
    assert_eq!(d.set("vg-recovered", b"v"), 0);
    assert_eq!(d.servers(), [b.addr()]);

    assert_eq!(d.cmd("new"), "ok");
    assert_eq!(d.set("vg-legacy", b"v"), 0);
    assert_eq!(d.add(&a.addr()), 0);
    assert_eq!(d.set("vg-legacy", b"v"), 0);
    assert_eq!(d.cmd("new2 bad name"), "null");
    assert_eq!(d.cmd("new2 nosegment"), "ok");
    assert_eq!(d.set("vg-none", b"v"), -1);
    assert_eq!(d.cmd("private"), "ok");
    assert_eq!(d.add(&c.addr()), 0);
    assert_eq!(d.set("vg-private", b"v"), 0);
    d.finish();
}

// ---------------------------------------------------------------------------------------------
// mcadmin

/// Every mcadmin subcommand against a real namespace: output, exit statuses (0 success, 2 usage
/// error, 3 runtime error), one-line messages naming the problem, the segment's mode and owner,
/// date-derived increasing versions, `list --json`, and `$MEMCACHE_DOMAIN`.
#[test]
fn mcadmin_end_to_end() {
    let shm = ShmPrefix::new("admin");
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    let (aa, ba, ca) = (a.addr(), b.addr(), c.addr());
    let d = ["--domain", "web"];
    let with = |args: &[&str]| -> Vec<String> {
        d.iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let run = |args: &[&str]| {
        mcadmin(
            &shm,
            &with(args).iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let ok = |args: &[&str]| -> Output {
        let out = run(args);
        expect_code(&out, 0, &format!("mcadmin {args:?}"));
        let err = text(&out.stderr);
        assert!(
            err.is_empty() || (err.starts_with("mcadmin: ") && err.lines().count() == 1),
            "mcadmin {args:?}: stderr is not one line: {err:?}"
        );
        out
    };

    // --help and --version.
    for args in [&["--help"][..], &["add", "--help"], &["--version"]] {
        let out = mcadmin(&shm, args);
        expect_code(&out, 0, &format!("mcadmin {args:?}"));
        assert!(!out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    let help = text(&mcadmin(&shm, &["--help"]).stdout);
    for word in [
        "add", "delete", "set", "list", "create", "destroy", "domains", "config", "--domain",
    ] {
        assert!(help.contains(word), "--help does not mention {word}");
    }

    // create: mode 0644 whatever the umask, owned by us, the layout's size, an empty list.
    let mut create = shm.mcadmin(
        &with(&["create"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    // SAFETY: umask is async-signal-safe and touches only the child's own state.
    unsafe {
        create.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let out = run_bounded(&mut create, b"");
    expect_code(&out, 0, "create");
    assert_eq!(text(&out.stderr), "mcadmin: created web\n");
    let meta = fs::metadata(shm.segment("web")).expect("the segment exists");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644, "segment mode");
    assert_eq!(meta.uid(), euid(), "segment owner");
    assert_eq!(meta.len(), SEGMENT_SIZE as u64);
    let list0 = parse_list(&text(&ok(&["list"]).stdout));
    assert_eq!(list0.servers, Vec::<(String, u32)>::new());
    assert_eq!(list0.distribution, "ketama-md5");
    assert_eq!(list0.replicas, "1");
    expect_runtime_error(
        &run(&["create"]),
        "create twice",
        &["web", "already exists"],
    );

    // add, with weights; versions grow and are date-derived.
    let day_before = utc_day();
    let out = ok(&["add", &aa, "--weight", "3"]);
    assert!(out.stdout.is_empty(), "add wrote to stdout");
    let _ = ok(&["add", &ba]);
    let day_after = utc_day();
    let list1 = parse_list(&text(&ok(&["list"]).stdout));
    assert_eq!(list1.domain, "web");
    assert_eq!(list1.servers, [(aa.clone(), 3), (ba.clone(), 1)]);
    assert!(list1.version > list0.version, "{list1:?} after {list0:?}");
    let day = list1.version / 10_000_000;
    assert!(
        day == day_before || day == day_after,
        "version {} is not YYYYMMDD * 10^7 + n for {day_before}",
        list1.version
    );
    expect_runtime_error(&run(&["add", &aa]), "duplicate add", &[&aa]);

    // list --json: the same list.
    let json = Json::parse(text(&ok(&["list", "--json"]).stdout).trim())
        .unwrap_or_else(|e| panic!("list --json: {e}"));
    assert_eq!(json.get("domain"), Some(&Json::Str("web".into())));
    assert_eq!(
        json.get("version"),
        Some(&Json::Number(list1.version.to_string()))
    );
    assert_eq!(
        json.get("distribution"),
        Some(&Json::Str("ketama-md5".into()))
    );
    assert_eq!(json.get("replicas"), Some(&Json::Number("1".into())));
    let Some(Json::Array(servers)) = json.get("servers") else {
        panic!("list --json: no servers array: {json:?}");
    };
    let servers: Vec<(String, u32)> = servers
        .iter()
        .map(|s| {
            let (Some(Json::Str(host)), Some(Json::Number(port)), Some(Json::Number(weight))) =
                (s.get("host"), s.get("port"), s.get("weight"))
            else {
                panic!("list --json: bad server {s:?}");
            };
            (format!("{host}:{port}"), weight.parse().expect("weight"))
        })
        .collect();
    assert_eq!(servers, list1.servers);

    // delete.
    let _ = ok(&["delete", &ba]);
    assert_eq!(
        parse_list(&text(&ok(&["list"]).stdout)).servers,
        [(aa.clone(), 3)]
    );
    expect_runtime_error(&run(&["delete", &ba]), "delete of an absent server", &[&ba]);

    // set: the whole list, in order; a server already there keeps its weight, a new one gets 1
    // (issue 13: set used to reset every weight to 1), and SERVER=WEIGHT states one.
    let _ = ok(&["set", &ca, &aa]);
    let list2 = parse_list(&text(&ok(&["list"]).stdout));
    assert_eq!(list2.servers, [(ca.clone(), 1), (aa.clone(), 3)]);
    assert!(list2.version > list1.version);
    let _ = ok(&["set", &format!("{ca}=2"), &aa]);
    let weighted = parse_list(&text(&ok(&["list"]).stdout));
    assert_eq!(weighted.servers, [(ca.clone(), 2), (aa.clone(), 3)]);
    let _ = ok(&["set", &ca, &format!("{aa}=1")]);
    let list2 = parse_list(&text(&ok(&["list"]).stdout));
    assert_eq!(list2.servers, [(ca.clone(), 2), (aa.clone(), 1)]);
    let err = run(&["set", &format!("{ca}=0")]);
    expect_code(&err, Exit::Usage.into(), "set with weight 0");

    // config.
    let shown = text(&ok(&["config"]).stdout);
    assert_eq!(shown, "distribution ketama-md5\nreplicas 1\n");
    let _ = ok(&[
        "config",
        "--distribution",
        "crc32-modulo",
        "--replicas",
        "2",
    ]);
    let list3 = parse_list(&text(&ok(&["list"]).stdout));
    assert_eq!(
        (list3.distribution.as_str(), list3.replicas.as_str()),
        ("crc32-modulo", "2")
    );
    assert_eq!(list3.servers, list2.servers, "config changed the servers");
    let _ = ok(&["config", "--distribution", "ketama-md5"]);
    assert_eq!(
        text(&ok(&["config"]).stdout),
        "distribution ketama-md5\nreplicas 2\n"
    );

    // $MEMCACHE_DOMAIN, and "default" when nothing names a domain.
    let mut env_cmd = shm.mcadmin(&["set", &ba]);
    env_cmd.env("MEMCACHE_DOMAIN", "fromenv");
    expect_code(
        &run_bounded(&mut env_cmd, b""),
        0,
        "set with MEMCACHE_DOMAIN",
    );
    let _ = mcadmin_ok(&shm, &["create"]);

    // domains: every domain of the namespace, sorted.
    let listed = mcadmin_ok(&shm, &["domains"]);
    let names: Vec<&str> = listed
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(names, ["default", "fromenv", "web"], "domains: {listed:?}");
    let web_line = listed
        .lines()
        .find(|l| l.starts_with("web "))
        .expect("web listed");
    assert!(web_line.ends_with(" servers 2"), "{web_line:?}");
    let fromenv = parse_list(&mcadmin_ok(&shm, &["--domain", "fromenv", "list"]));
    assert_eq!(fromenv.servers, [(ba.clone(), 1)]);

    // destroy.
    let out = ok(&["destroy"]);
    assert_eq!(text(&out.stderr), "mcadmin: destroyed web\n");
    assert!(!shm.segment("web").exists());
    expect_runtime_error(&run(&["destroy"]), "destroy twice", &["no such domain"]);
    expect_runtime_error(&run(&["list"]), "list of a missing domain", &["web"]);
    expect_runtime_error(
        &run(&["delete", &aa]),
        "delete in a missing domain",
        &["web"],
    );
    expect_runtime_error(&run(&["config"]), "config of a missing domain", &["web"]);

    // Illegal domain names are runtime errors naming the name.
    let long = "x".repeat(65);
    for name in ["a/b", "bad name", "", long.as_str(), "private"] {
        let out = mcadmin(&shm, &["--domain", name, "create"]);
        expect_runtime_error(&out, &format!("domain {name:?}"), &[&format!("{name:?}")]);
    }

    // A segment owned by another user, or writable by others: refused, never changed.
    let _ = mcadmin_ok(&shm, &["--domain", "foreign", "set", &aa]);
    let path = shm.segment("foreign");
    set_mode(&path, 0o666);
    for args in [&["list"][..], &["add", &ba], &["set", &ba]] {
        let mut all = vec!["--domain", "foreign"];
        all.extend_from_slice(args);
        let out = mcadmin(&shm, &all);
        expect_runtime_error(&out, &format!("{args:?} on mode 0666"), &["writable"]);
    }
    set_mode(&path, 0o644);
    if euid() == 0 {
        fchown(&path, UID_NOBODY);
        for args in [&["list"][..], &["add", &ba], &["delete", &aa], &["create"]] {
            let mut all = vec!["--domain", "foreign"];
            all.extend_from_slice(args);
            let out = mcadmin(&shm, &all);
            expect_runtime_error(&out, &format!("{args:?} on uid 65534"), &["uid 65534"]);
        }
    } else {
        eprintln!("not root: the foreign-owner case needs chown and is skipped");
    }

    // Usage errors: status 2, the problem named on the first line, nothing on stdout.
    let bad_usage: [(&[&str], &str); 9] = [
        (&["bogus"], "bogus"),
        (&[], "Usage"),
        (&["add"], "<SERVER>"),
        (&["delete"], "<SERVER>"),
        (&["set"], "<SERVERS>"),
        (&["add", &aa, "--weight", "0"], "--weight"),
        (&["add", &aa, "--weight", "x"], "--weight"),
        (&["config", "--distribution", "modulo"], "--distribution"),
        (&["list", "--yaml"], "--yaml"),
    ];
    for (args, needle) in bad_usage {
        let out = mcadmin(&shm, args);
        expect_code(&out, Exit::Usage.into(), &format!("mcadmin {args:?}"));
        assert!(out.stdout.is_empty(), "{args:?}: wrote to stdout");
        // clap's message: "error: ..." naming the problem, then a usage hint.
        let err = text(&out.stderr);
        let problem = match err.find("Usage:") {
            Some(at) if !args.is_empty() => &err[..at],
            _ => err.as_str(),
        };
        assert!(
            problem.contains(needle),
            "mcadmin {args:?}: the message does not name {needle:?}: {err:?}"
        );
    }
    // A server that does not parse is refused and names the argument.
    let out = mcadmin(&shm, &["--domain", "fromenv", "add", "host:notaport"]);
    assert_ne!(code(&out), 0, "a bad HOST:PORT was accepted");
    assert!(
        text(&out.stderr).lines().count() == 1 && text(&out.stderr).contains("host:notaport"),
        "{:?}",
        text(&out.stderr)
    );
}

/// The text form of `mcadmin list`.
#[derive(Debug)]
struct ListedDomain {
    domain: String,
    version: u64,
    distribution: String,
    replicas: String,
    /// ("host:port", weight), in list order.
    servers: Vec<(String, u32)>,
}

fn parse_list(out: &str) -> ListedDomain {
    let mut listed = ListedDomain {
        domain: String::new(),
        version: 0,
        distribution: String::new(),
        replicas: String::new(),
        servers: Vec::new(),
    };
    for line in out.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["domain", name] => listed.domain = name.to_string(),
            ["version", v] => listed.version = v.parse().expect("version number"),
            ["distribution", d] => listed.distribution = d.to_string(),
            ["replicas", r] => listed.replicas = r.to_string(),
            ["server", s, "weight", w] => listed
                .servers
                .push((s.to_string(), w.parse().expect("weight"))),
            _ => panic!("unexpected line in mcadmin list: {line:?}"),
        }
    }
    assert!(listed.version > 0, "no version in {out:?}");
    listed
}

/// Today's UTC date as YYYYMMDD.
fn utc_day() -> u64 {
    let out = run_bounded(Command::new("date").args(["-u", "+%Y%m%d"]), b"");
    text(&out.stdout).trim().parse().expect("date output")
}

/// Just enough JSON to read `mcadmin list --json`.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// The number's text, so that a 15-digit version stays exact.
    Number(String),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            at: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.at != p.s.len() {
            return Err(format!("trailing bytes at {} in {text:?}", p.at));
        }
        Ok(v)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", char::from(b), self.at))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                self.at += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return Ok(Json::Object(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.expect(b':')?;
                    fields.push((key, self.value()?));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Json::Object(fields));
                        }
                        _ => return Err(format!("expected , or }} at byte {}", self.at)),
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(format!("expected , or ] at byte {}", self.at)),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.at += 1;
                }
                Ok(Json::Number(
                    String::from_utf8_lossy(&self.s[start..self.at]).into_owned(),
                ))
            }
            _ => {
                for (word, v) in [
                    ("true", Json::Bool(true)),
                    ("false", Json::Bool(false)),
                    ("null", Json::Null),
                ] {
                    if self.s[self.at..].starts_with(word.as_bytes()) {
                        self.at += word.len();
                        return Ok(v);
                    }
                }
                Err(format!("unexpected byte at {}", self.at))
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let b = self.peek().ok_or("unterminated string")?;
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or("unterminated escape")?;
                    self.at += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let digits = self
                                .s
                                .get(self.at..self.at + 4)
                                .and_then(|d| std::str::from_utf8(d).ok())
                                .and_then(|d| u32::from_str_radix(d, 16).ok())
                                .ok_or("bad \\u escape")?;
                            self.at += 4;
                            let c = char::from_u32(digits).ok_or("bad \\u code point")?;
                            out.extend_from_slice(c.to_string().as_bytes());
                        }
                        _ => return Err(format!("bad escape at byte {}", self.at)),
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// mclient

/// mclient with `--domain`: binary values through stdin and stdout byte-exact, keys placed
/// where the library's own handles of the domain find them (and the reverse), the list read
/// fresh by every run, and exit statuses 0 (hit, stored), 1 (miss, not stored), 3 (errors).
#[test]
fn mclient_with_a_domain() {
    let shm = ShmPrefix::new("mclient");
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    let _ = mcadmin_ok(&shm, &["--domain", "web", "set", &a.addr(), &b.addr()]);
    let mut value: Vec<u8> = (0..=255u8).collect();
    value.extend_from_slice(b"\r\nEND\r\n\0");
    value.extend((0..=255u8).rev());

    let out = mclient(&shm, &["--domain", "web", "set", "bin"], &value);
    expect_code(&out, 0, "mclient set from stdin");
    assert!(out.stdout.is_empty());
    let out = mclient(&shm, &["--domain", "web", "get", "bin"], b"");
    expect_code(&out, 0, "mclient get");
    assert!(
        out.stdout == value,
        "get returned {} bytes, not the value",
        out.stdout.len()
    );
    // On the server the domain's placement names.
    let home = placement(&[a.addr(), b.addr()], Distribution::KetamaMd5, "bin");
    let server = if home == a.addr() { &a } else { &b };
    assert_eq!(
        raw_get(server.port(), &["bin".to_string()]).get("bin"),
        Some(&value)
    );

    // A C handle of the same domain finds it, and mclient finds what the C handle stores.
    let mut d = Driver::start(&shm, &[]);
    assert_eq!(d.cmd("new2 web"), "ok");
    assert_eq!(d.get("bin"), Some(value.clone()));
    let other: Vec<u8> = value.iter().rev().copied().collect();
    for i in 0..10 {
        assert_eq!(d.set(&format!("from-c-{i}"), &other), 0);
        let out = mclient(
            &shm,
            &["--domain", "web", "get", &format!("from-c-{i}")],
            b"",
        );
        expect_code(&out, 0, "mclient get of a key the C handle set");
        assert!(out.stdout == other, "from-c-{i}: not the C handle's value");
    }
    d.finish();

    // Misses and refusals: 1.
    let out = mclient(&shm, &["--domain", "web", "get", "missing"], b"");
    expect_code(&out, 1, "get of a missing key");
    assert!(out.stdout.is_empty());
    let out = mclient(&shm, &["--domain", "web", "add", "bin", "x"], b"");
    expect_code(&out, 1, "add of an existing key");

    // Each run reads the current list.
    let _ = mcadmin_ok(&shm, &["--domain", "web", "set", &c.addr()]);
    let out = mclient(&shm, &["--domain", "web", "set", "moved"], b"to c");
    expect_code(&out, 0, "set after the list changed");
    assert_eq!(
        raw_get(c.port(), &["moved".to_string()])
            .get("moved")
            .map(Vec::as_slice),
        Some(&b"to c"[..])
    );

    // Errors: 3, one line naming the domain.
    let _ = mcadmin_ok(&shm, &["--domain", "empty", "create"]);
    for (args, needle) in [
        (&["--domain", "nosuch", "get", "k"][..], "nosuch"),
        (&["--domain", "bad/name", "get", "k"], "bad/name"),
        (&["--domain", "empty", "get", "k"], "empty"),
    ] {
        let out = mclient(&shm, args, b"");
        expect_code(&out, Exit::Failed.into(), &format!("mclient {args:?}"));
        let err = text(&out.stderr);
        assert!(
            err.starts_with("mclient: ") && err.lines().count() == 1 && err.contains(needle),
            "mclient {args:?}: {err:?}"
        );
    }
}

/// The clean-up every test relies on: dropping a namespace removes its segments, and
/// `mcadmin domains` sees only the domains of its own namespace.
#[test]
fn namespaces_are_cleaned_up() {
    let entries = {
        let shm = ShmPrefix::new("cleanup");
        let _ = mcadmin_ok(&shm, &["--domain", "one", "create"]);
        let _ = mcadmin_ok(&shm, &["--domain", "two", "create"]);
        let entries = shm.entries();
        assert_eq!(
            entries,
            [format!("{}.one", shm.prefix), format!("{}.two", shm.prefix)]
        );
        let listed = mcadmin_ok(&shm, &["domains"]);
        assert_eq!(listed.lines().count(), 2, "{listed:?}");
        (shm.prefix.clone(), entries)
    };
    for name in entries.1 {
        assert!(
            !Path::new(SHM_DIR).join(&name).exists(),
            "{name} left behind by {}",
            entries.0
        );
    }
}

// One handle, eight threads, a list that keeps changing (issue 12, fault 1)

/// How long the threads of `list_race.c` run while the list changes under them.
const RACE_SECONDS: u64 = 20;

/// Eight threads on one `mc_new2` handle loop over multi-key `mc_get`, `mc_stats`,
/// `mc_flush_all` and `mc_server_find` while `mcadmin set` switches the list between three
/// servers for the whole run. A call that walked the server array outside the handle's exclusion
/// used servers another thread's call had just freed: the process died with SIGSEGV. It must live
/// and return 0.
#[test]
fn threads_survive_list_changes() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let addrs: Vec<String> = servers.iter().map(Memcached::addr).collect();
    let shm = ShmPrefix::new("race");
    mcadmin_ok(&shm, &["--domain", "race", "set", &addrs[0], &addrs[1]]);
    let dir = support::temp_dir("list-race");
    let started = dir.join("started");
    let env = [
        shm.env(),
        ("RACE_DOMAIN", "race".to_string()),
        ("RACE_SECONDS", RACE_SECONDS.to_string()),
        ("RACE_STARTED", started.display().to_string()),
    ];
    let mut process = spawn_c_with(
        &[],
        &compile_capi("list_race", &["-lpthread"]),
        &env,
        Duration::from_secs(RACE_SECONDS + 60),
    );
    let deadline = Instant::now() + Duration::from_secs(RACE_SECONDS + 30);
    while !started.exists() && !process.has_exited() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    // Every list differs from the one before, so every change replaces servers.
    let lists: [&[&str]; 4] = [
        &[&addrs[1], &addrs[2]],
        &[&addrs[0]],
        &[&addrs[0], &addrs[1], &addrs[2]],
        &[&addrs[2]],
    ];
    let mut changes = 0usize;
    while !process.has_exited() && Instant::now() < deadline {
        let mut args = vec!["--domain", "race", "set"];
        args.extend_from_slice(lists[changes % lists.len()]);
        mcadmin_ok(&shm, &args);
        changes += 1;
        thread::sleep(Duration::from_millis(5));
    }
    let out = process.wait();
    out.assert_success().assert_stdout_empty();
    assert!(
        changes >= 100,
        "only {changes} list changes during the run: the race was not exercised"
    );
    eprintln!("{} list changes; {}", changes, out.stderr.trim());
}
