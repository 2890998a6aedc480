//! Server lists that travel between hosts through memcached (`mcadmin publish`, `pull`, `watch`),
//! the reserved record key, and `mcadmin clients`, end to end with real processes.
//!
//! A *host* is a shared-memory namespace of its own (`MEMCACHE_SHM_PREFIX`, passed to every
//! child process), so two hosts run side by side on this machine and see each other only through
//! the memcached servers. Every namespace is removed when its test ends, even when it fails.
//! Waits for another process are for what that process says or writes, each bounded.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memcache::exit_code::Exit;
use memcache::hash::{Distribution, RingServer, Selector};
use memcache::propagate::{Record, RECORD_FLAGS};
use memcache::registry::{DomainList, DomainName, Namespace};
use support::{compile_capi, run_c, spawn_c_with, CProcess, DeadPort, Memcached, ShmPrefix};

/// The bound of every wait for another process.
const WAIT: Duration = Duration::from_secs(15);
/// The domain every test uses (in namespaces of its own).
const DOMAIN: &str = "web";
const RECORD_KEY: &str = "__memcache_domain__:web";

// ---------------------------------------------------------------------------------------------
// Simulated hosts, mcadmin, watchers

/// One simulated host: a shared-memory namespace of its own, removed when dropped.
struct Host {
    shm: ShmPrefix,
}

impl Host {
    fn new(label: &str) -> Host {
        Host {
            shm: ShmPrefix::new(label),
        }
    }

    fn prefix(&self) -> &str {
        &self.shm.prefix
    }

    fn namespace(&self) -> Namespace {
        Namespace::with_prefix(self.prefix()).expect("a valid prefix")
    }

    /// The host's list of the test domain, None while it has no segment.
    fn list(&self) -> Option<DomainList> {
        let reader = self.namespace().open_reader(&domain()).expect("open")?;
        Some(reader.read().expect("a readable list"))
    }

    fn version(&self) -> u64 {
        self.list().map_or(0, |l| l.version)
    }

    fn segment(&self) -> PathBuf {
        self.shm.segment(DOMAIN)
    }
}

fn domain() -> DomainName {
    DomainName::parse(DOMAIN).unwrap()
}

fn mcadmin_command(host: &Host, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcadmin"));
    cmd.args(args)
        .env_remove("MEMCACHE_DOMAIN")
        .env("MEMCACHE_SHM_PREFIX", host.prefix());
    cmd
}

/// Runs a command to its end, killing it (and failing) after [`WAIT`].
fn run_bounded(cmd: &mut Command) -> Output {
    support::run_bounded(cmd, b"", WAIT)
}

fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    support::wait_bounded(child, what, WAIT)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What one mcadmin run did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn mcadmin(host: &Host, args: &[&str]) -> Run {
    let out = run_bounded(&mut mcadmin_command(host, args));
    Run {
        code: out.status.code().expect("mcadmin killed by a signal"),
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
    }
}

/// `mcadmin --domain web ARGS...`, which must exit with `code`.
#[track_caller]
fn admin(host: &Host, args: &[&str], code: i32) -> Run {
    let mut all = vec!["--domain", DOMAIN];
    all.extend_from_slice(args);
    let run = mcadmin(host, &all);
    assert_eq!(run.code, code, "mcadmin {all:?}: {run:?}");
    for line in run.stderr.lines() {
        assert!(
            line.starts_with("mcadmin: "),
            "mcadmin {all:?}: stray stderr line {line:?}"
        );
    }
    run
}

/// A runtime error: status 3, nothing on stdout, one stderr line naming every `needle`.
#[track_caller]
fn refused(host: &Host, args: &[&str], needles: &[&str]) -> String {
    let run = admin(host, args, Exit::Failed.into());
    assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {run:?}");
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "{args:?}: does not name {needle:?}: {run:?}"
        );
    }
    run.stderr
}

/// A long-running `mcadmin watch` whose stderr lines are collected as they come.
struct Agent {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(host: &Host, args: &[&str]) -> Agent {
        let mut child = mcadmin_command(host, args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mcadmin watch");
        let stderr = child.stderr.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Agent { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for a log line containing `needle` and returns it.
    #[track_caller]
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            let exited = self.child.try_wait().expect("try_wait");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "no watch line with {needle:?} within {timeout:?} (exit {exited:?}):\n{}",
                self.lines().join("\n")
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `signal` and waits for the agent to end; returns its status and log.
    fn stop(mut self, signal: libc::c_int) -> (ExitStatus, Vec<String>) {
        // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        let status = wait_bounded(&mut self.child, "mcadmin watch after a signal");
        // The log thread ends at EOF, right after the exit.
        let deadline = Instant::now() + WAIT;
        while Arc::strong_count(&self.lines) > 1 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        (status, self.lines())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// memcached seen from outside

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to memcached");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

/// Stores a raw value with a raw `set`, as a hostile or buggy writer would.
fn raw_set(port: u16, key: &str, flags: u32, value: &[u8]) {
    let mut s = connect(port);
    let mut req = format!("set {key} {flags} 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).expect("send set");
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).expect("reply");
    assert_eq!(reply, "STORED\r\n", "raw set of {key} on {port}");
}

/// The flags and value a server holds under `key`.
fn raw_get(port: u16, key: &str) -> Option<(u32, Vec<u8>)> {
    let mut s = connect(port);
    s.write_all(format!("get {key}\r\n").as_bytes())
        .expect("send get");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("reply");
    if line == "END\r\n" {
        return None;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(words.len() == 4 && words[0] == "VALUE", "{line:?}");
    let mut data = vec![0; words[3].parse::<usize>().expect("length") + 2];
    r.read_exact(&mut data).expect("value");
    data.truncate(data.len() - 2);
    Some((words[2].parse().expect("flags"), data))
}

/// The record a server holds, decoded and checked.
fn record_on(server: &Memcached) -> Record {
    let (flags, value) = raw_get(server.port(), RECORD_KEY).expect("the server holds a record");
    assert_eq!(flags, RECORD_FLAGS);
    Record::decode(&value, &domain()).expect("a valid record")
}

/// The text of a record, for forging one.
fn record_text(version: u64, servers: &[&Memcached]) -> String {
    let mut t = format!(
        "memcache-domain-record 1\ndomain {DOMAIN}\nversion {version}\n\
         distribution ketama-md5\nreplicas 1\n"
    );
    for s in servers {
        t.push_str(&format!("server 127.0.0.1 {} 1\n", s.port()));
    }
    t.push_str("end\n");
    t
}

fn ports(list: &DomainList) -> Vec<u16> {
    list.servers.iter().map(|s| s.port).collect()
}

/// The first version of the (UTC) day `days` days from today.
fn day_base_in(days: u64) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    memcache::registry::next_version(0, now.as_secs() + days * 86_400)
}

// ---------------------------------------------------------------------------------------------
// The reserved key

/// `mc_set`, `mc_aget2`, `mc_req_add` and every other key operation of the C API refuse the
/// record key like an invalid key (-9 / NULL / NULL, one report naming the reservation), and no
/// byte of it reaches the server; keys that only look similar work. mclient refuses it too.
#[test]
fn the_record_key_is_refused_by_ordinary_users() {
    let (quiet, busy) = (Memcached::start(), Memcached::start());
    let bin = compile_capi("reserved_key", &[]);
    let before = quiet.stats();
    let again = quiet.stats();
    let bytes_read = |s: &HashMap<String, String>| s["bytes_read"].parse::<u64>().unwrap();
    let per_stats = bytes_read(&again) - bytes_read(&before);
    let env = [
        ("MC_HOST", "127.0.0.1".to_string()),
        ("MC_PORT", quiet.port().to_string()),
        ("MC_PORT2", busy.port().to_string()),
    ];
    let out = run_c(&bin, &env);
    out.assert_success().assert_stdout_empty();
    let after = quiet.stats();
    for counter in [
        "cmd_get",
        "cmd_set",
        "cmd_touch",
        "delete_misses",
        "delete_hits",
        "incr_misses",
        "incr_hits",
        "curr_items",
    ] {
        assert_eq!(
            again.get(counter),
            after.get(counter),
            "{counter} moved: the quiet server saw a command\n{}",
            out.stderr
        );
    }
    assert_eq!(
        bytes_read(&after) - bytes_read(&again),
        per_stats,
        "the quiet server received bytes from the program"
    );
    // The program talked to the quiet server not even to connect.
    assert_eq!(again["total_connections"], {
        let n: u64 = after["total_connections"].parse().unwrap();
        (n - 1).to_string()
    });

    // mclient (the safe Rust client) refuses it as an invalid key, before any I/O.
    for args in [
        &["get", RECORD_KEY][..],
        &["set", RECORD_KEY, "evil"],
        &["delete", RECORD_KEY],
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mclient"));
        cmd.arg("--servers")
            .arg(quiet.addr())
            .args(args)
            .env_remove("MEMCACHE_DOMAIN")
            .env_remove("MEMCACHE_SERVERS");
        let out = run_bounded(&mut cmd);
        assert_eq!(
            out.status.code(),
            Some(Exit::Usage.into()),
            "mclient {args:?}"
        );
        assert!(
            text(&out.stderr).contains("reserved"),
            "mclient {args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(raw_get(quiet.port(), RECORD_KEY), None);
}

// ---------------------------------------------------------------------------------------------
// Publish, watch, and a program that follows

/// What `capi-tests/domain_loop.c` last wrote: operations done, failures, the handle's servers.
#[derive(Clone, Debug)]
struct LoopStatus {
    ops: u64,
    last_fail: i64,
    consistent: bool,
    servers: Vec<String>,
}

fn loop_status(path: &Path) -> Option<LoopStatus> {
    let line = fs::read_to_string(path).ok()?;
    let mut fields = HashMap::new();
    for word in line.strip_suffix('\n')?.split(' ') {
        let (k, v) = word.split_once('=')?;
        fields.insert(k.to_owned(), v.to_owned());
    }
    Some(LoopStatus {
        ops: fields.get("ops")?.parse().ok()?,
        last_fail: fields.get("last_fail")?.parse().ok()?,
        consistent: fields.get("consistent")? == "1",
        servers: fields
            .get("servers")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Polls the status file until `done` holds (every millisecond: the first status that shows
/// a change is timed with it). Fails if the program ends or `timeout` passes.
#[track_caller]
fn wait_status(
    path: &Path,
    program: &mut CProcess,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&LoopStatus) -> bool,
) -> (LoopStatus, Instant) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = loop_status(path);
        if let Some(s) = status.as_ref().filter(|s| done(s)) {
            return (s.clone(), Instant::now());
        }
        assert!(!program.has_exited(), "{what}: the client program ended");
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}; last status {status:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Where ketama puts `key` on 127.0.0.1 servers with these ports (weight 1).
fn placement(ports: &[u16], key: &str) -> u16 {
    let ring: Vec<RingServer<'_>> = ports
        .iter()
        .map(|&port| RingServer {
            host: "127.0.0.1",
            port,
            weight: 1,
        })
        .collect();
    let selector = Selector::new(Distribution::KetamaMd5, &ring);
    ports[selector
        .pick(selector.hash(key.as_bytes()), |_| true)
        .expect("a server")]
}

/// Host A changes the domain and publishes; host B's watcher (`--interval 1`, bootstrapped
/// from `--seed`) installs the new version within two intervals, and a long-running C program
/// on host B (`mc_new2`) puts its next keys where the new list places them, the new server
/// included. Prints the time from publish to the first operation on host B with the new list.
#[test]
fn a_published_change_reaches_a_running_program_on_another_host() {
    let (s1, s2) = (Memcached::start(), Memcached::start());
    let (host_a, host_b) = (Host::new("mainA"), Host::new("mainB"));
    let interval = Duration::from_secs(1);

    admin(&host_a, &["set", &s1.addr()], 0);
    let run = admin(&host_a, &["publish"], 0);
    assert!(
        run.stderr.contains("to 1 of 1 server (0 retired)"),
        "{run:?}"
    );
    let v1 = host_a.version();
    assert_eq!(record_on(&s1).list, host_a.list().unwrap());

    // Host B has nothing: the watcher creates the domain from the seed, at host A's version.
    let mut watcher = Agent::start(
        &host_b,
        &[
            "watch",
            "--interval",
            "1",
            "--domain",
            DOMAIN,
            "--seed",
            &s1.addr(),
        ],
    );
    watcher.wait_for("web: created from", 2 * interval + WAIT / 3);
    assert_eq!(host_b.list(), host_a.list(), "B bootstrapped A's list");

    // The client program on host B, on the list with S1.
    let dir = support::temp_dir("propagation-main");
    let status_path = dir.join("status");
    let env = [
        host_b.shm.env(),
        ("LOOP_NAME", "b".to_string()),
        ("LOOP_HANDLE", "new2".to_string()),
        ("LOOP_DOMAIN", DOMAIN.to_string()),
        ("LOOP_STATUS", status_path.display().to_string()),
        ("LOOP_STOP", dir.join("stop").display().to_string()),
        ("LOOP_SECONDS", "45".to_string()),
        ("LOOP_PACE_US", "2000".to_string()),
    ];
    let mut program = spawn_c_with(
        &[],
        &compile_capi("domain_loop", &[]),
        &env,
        Duration::from_secs(60),
    );
    let one = vec![s1.addr()];
    wait_status(&status_path, &mut program, WAIT, "list S1", |s| {
        s.ops >= 20 && s.servers == one
    });

    // Host A adds S2 and publishes.
    admin(&host_a, &["add", &s2.addr()], 0);
    let v2 = host_a.version();
    assert!(v2 > v1);
    let published = Instant::now();
    let run = admin(&host_a, &["publish"], 0);
    let publish_done = Instant::now();
    assert!(
        run.stderr.contains("to 2 of 2 servers (0 retired)"),
        "{run:?}"
    );
    let two = vec![s1.addr(), s2.addr()];
    // Polled together: when host B's segment shows the new version, and when the program
    // first reports an operation done with the new list.
    let mut installed_at = None;
    let (seen, first_use) = wait_status(
        &status_path,
        &mut program,
        2 * interval + WAIT,
        "list S1,S2",
        |s| {
            if installed_at.is_none() && host_b.version() == v2 {
                installed_at = Some(Instant::now());
            }
            s.servers == two
        },
    );
    assert_eq!(host_b.version(), v2, "host B runs A's version");
    let installed_at = installed_at.unwrap_or(first_use);
    assert!(
        installed_at - publish_done <= 2 * interval,
        "host B installed the new version {:?} after the publish, more than two intervals",
        installed_at - publish_done
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "publish on host A -> first operation on host B using the new list: {:.1} ms \
         (publish command {:.1} ms, then the watcher installed it after {:.1} ms, \
         and the program used it {:.1} ms later; watch --interval 1)",
        ms(first_use - published),
        ms(publish_done - published),
        ms(installed_at - publish_done),
        ms(first_use - installed_at)
    );

    // From the next operation on, every key lands where the new list puts it, S2 included.
    let first = seen.ops;
    let (end, _) = wait_status(&status_path, &mut program, WAIT, "40 more keys", |s| {
        s.ops >= first + 40
    });
    assert!(end.consistent, "the C view of the list: {end:?}");
    assert!(
        end.last_fail < first as i64,
        "an operation after the change failed: {end:?}"
    );
    let mut on_s2 = 0;
    for i in first..end.ops {
        let key = format!("b-{i}");
        let expected = placement(&[s1.port(), s2.port()], &key);
        let holders: Vec<u16> = [&s1, &s2]
            .iter()
            .map(|m| m.port())
            .filter(|&p| raw_get(p, &key).is_some())
            .collect();
        assert_eq!(holders, [expected], "{key}");
        on_s2 += usize::from(expected == s2.port());
    }
    assert!(on_s2 > 0, "no key went to the new server");

    fs::write(dir.join("stop"), b"").expect("stop file");
    program.wait().assert_success().assert_stdout_empty();
    let (status, log) = watcher.stop(libc::SIGTERM);
    assert!(status.success(), "watch: {status:?}\n{}", log.join("\n"));
    let installs: Vec<&String> = log.iter().filter(|l| l.contains("installed")).collect();
    assert_eq!(
        installs.len(),
        1,
        "one line per change:\n{}",
        log.join("\n")
    );
    assert!(
        installs[0].contains(&v2.to_string()) && installs[0].contains(&s2.addr()),
        "{}",
        installs[0]
    );
    assert_eq!(
        log.last().map(String::as_str),
        Some("mcadmin: watch: stopped by SIGTERM")
    );
    assert!(
        log.iter().all(|l| l.starts_with("mcadmin: watch: ")),
        "{log:?}"
    );
}

/// A publish also stores the record on the servers it removed from the list, so a host whose
/// list still names only those learns of the change; when every server was replaced, `--also`
/// names the old ones.
#[test]
fn removed_servers_are_told_too() {
    let (s1, s2, s3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let (host_a, host_c) = (Host::new("retA"), Host::new("retC"));

    admin(&host_a, &["set", &s1.addr(), &s2.addr()], 0);
    let run = admin(&host_a, &["publish"], 0);
    assert!(
        run.stderr.contains("no server holds an earlier record"),
        "{run:?}"
    );
    admin(&host_c, &["pull", &s1.addr()], 0);
    assert_eq!(ports(&host_c.list().unwrap()), [s1.port(), s2.port()]);

    // S1 leaves: the record goes to S2 and to S1, which it names as retired.
    admin(&host_a, &["delete", &s1.addr()], 0);
    let run = admin(&host_a, &["publish"], 0);
    assert!(
        run.stderr.contains("to 2 of 2 servers (1 retired)"),
        "{run:?}"
    );
    let on_s1 = record_on(&s1);
    assert_eq!(ports(&on_s1.list), [s2.port()]);
    assert_eq!(
        on_s1.retired.iter().map(|s| s.port).collect::<Vec<_>>(),
        [s1.port()]
    );
    assert_eq!(record_on(&s2), on_s1);
    // Host C asks the server it knows, which is no longer in the list.
    let run = admin(&host_c, &["pull", &s1.addr()], 0);
    assert!(run.stderr.contains("installed web"), "{run:?}");
    assert_eq!(host_c.list(), host_a.list());

    // Publishing the same version again tells the retired server again.
    raw_set(s1.port(), RECORD_KEY, RECORD_FLAGS, b"stale");
    let run = admin(&host_a, &["publish"], 0);
    assert!(
        run.stderr.contains("(1 retired)") && run.stderr.contains("replacing an invalid record"),
        "{run:?}"
    );
    assert_eq!(record_on(&s1), on_s1);

    // Every server replaced: no new server knows the old list, --also names it.
    admin(&host_a, &["set", &s3.addr()], 0);
    let run = admin(&host_a, &["publish", "--also", &s2.addr()], 0);
    assert!(
        run.stderr.contains("to 2 of 2 servers (1 retired)"),
        "{run:?}"
    );
    admin(&host_c, &["pull", &s2.addr()], 0);
    assert_eq!(ports(&host_c.list().unwrap()), [s3.port()]);
    assert_eq!(host_c.list(), host_a.list());
}

/// The same version with different lists on two hosts is a conflict: `pull` and `publish`
/// refuse it and change nothing. A newer version on a server makes `publish` refuse (pull it
/// first); an older one is ignored by `pull`.
#[test]
fn conflicting_records_change_nothing() {
    let (s1, s2) = (Memcached::start(), Memcached::start());
    let (host_a, host_b) = (Host::new("confA"), Host::new("confB"));
    admin(&host_a, &["set", &s1.addr()], 0);
    admin(&host_a, &["publish"], 0);
    let v = host_a.version();
    admin(&host_b, &["pull", &s1.addr()], 0);
    let before = host_b.list().unwrap();
    let run = admin(&host_b, &["pull", &s1.addr()], 0);
    assert_eq!(
        run.stderr,
        format!("mcadmin: web is up to date (version {v})\n")
    );

    // Someone else published the same version with another list.
    let forged = record_text(v, &[&s2]);
    raw_set(s1.port(), RECORD_KEY, RECORD_FLAGS, forged.as_bytes());
    refused(
        &host_b,
        &["pull", &s1.addr()],
        &["conflict", &s1.addr(), &v.to_string()],
    );
    assert_eq!(host_b.list().unwrap(), before, "a conflict changed host B");
    // watch says so once, however many rounds see it, and installs nothing.
    let mut watcher = Agent::start(&host_b, &["watch", "--interval", "0.2", "--domain", DOMAIN]);
    watcher.wait_for("conflict", WAIT);
    thread::sleep(Duration::from_millis(600));
    let (status, log) = watcher.stop(libc::SIGTERM);
    assert!(status.success(), "{log:#?}");
    assert_eq!(log.len(), 3, "{log:#?}");
    assert!(
        log[1].contains(&format!("web: conflict: {} holds version {v}", s1.addr())),
        "{log:#?}"
    );
    assert_eq!(host_b.list().unwrap(), before, "a conflict changed host B");
    refused(&host_a, &["publish"], &["conflict", &s1.addr()]);
    assert_eq!(
        raw_get(s1.port(), RECORD_KEY).unwrap().1,
        forged.as_bytes(),
        "a refused publish wrote"
    );

    // A newer version on the server: publishing would roll it back.
    let newer = record_text(v + 1, &[&s2]);
    raw_set(s1.port(), RECORD_KEY, RECORD_FLAGS, newer.as_bytes());
    refused(&host_a, &["publish"], &["newer", "pull"]);
    assert_eq!(raw_get(s1.port(), RECORD_KEY).unwrap().1, newer.as_bytes());
    let run = admin(&host_b, &["pull", &s1.addr()], 0);
    assert!(run.stderr.contains("installed"), "{run:?}");
    assert_eq!(host_b.version(), v + 1);
    assert_eq!(ports(&host_b.list().unwrap()), [s2.port()]);

    // An older one is ignored.
    raw_set(
        s1.port(),
        RECORD_KEY,
        RECORD_FLAGS,
        record_text(v, &[&s1]).as_bytes(),
    );
    let run = admin(&host_b, &["pull", &s1.addr()], 0);
    assert!(
        run.stderr.contains("ignored") && run.stderr.contains("is newer"),
        "{run:?}"
    );
    assert_eq!(host_b.version(), v + 1);
}

/// Records written raw to a server (garbage, truncated, NUL bytes, another domain, duplicate
/// servers, bad ports and hosts, absurd versions, oversized, foreign flags) are refused by
/// `pull` with a message naming the problem, and nothing changes: not the list of a host that
/// has the domain, not the absence of a segment on one that has not. `watch` logs the refusal
/// once and installs nothing.
#[test]
fn hostile_records_are_refused() {
    let s1 = Memcached::start();
    let (host_a, host_b, host_d) = (Host::new("hosA"), Host::new("hosB"), Host::new("hosD"));
    admin(&host_a, &["set", &s1.addr()], 0);
    admin(&host_a, &["publish"], 0);
    admin(&host_b, &["pull", &s1.addr()], 0);
    let before = host_b.list().unwrap();
    let v = before.version + 1;
    let good = record_text(v, &[&s1]);
    let future = day_base_in(3);
    let server_line = format!("server 127.0.0.1 {} 1\n", s1.port());
    let mut oversized = good.clone().into_bytes();
    oversized.resize(100 * 1024, b'x');

    let cases: Vec<(&str, Vec<u8>, u32, &str)> = vec![
        (
            "garbage",
            b"hello world".to_vec(),
            RECORD_FLAGS,
            "truncated",
        ),
        (
            "not a record",
            b"hello\n".to_vec(),
            RECORD_FLAGS,
            "not a domain record",
        ),
        (
            "truncated",
            good.trim_end_matches("end\n").as_bytes().to_vec(),
            RECORD_FLAGS,
            "truncated",
        ),
        (
            "NUL byte",
            good.replacen("127.0.0.1", "127.0.0.1\0", 1).into_bytes(),
            RECORD_FLAGS,
            "control byte 0x00",
        ),
        (
            "CRLF lines",
            good.replace('\n', "\r\n").into_bytes(),
            RECORD_FLAGS,
            "control byte 0x0d",
        ),
        (
            "another domain",
            good.replace("domain web", "domain api").into_bytes(),
            RECORD_FLAGS,
            "record of domain \"api\"",
        ),
        (
            "duplicate servers",
            good.replace(&server_line, &server_line.repeat(2))
                .into_bytes(),
            RECORD_FLAGS,
            "listed twice",
        ),
        (
            "port 0",
            good.replace(&server_line, "server 127.0.0.1 0 1\n")
                .into_bytes(),
            RECORD_FLAGS,
            "port 0",
        ),
        (
            "port 70000",
            good.replace(&server_line, "server 127.0.0.1 70000 1\n")
                .into_bytes(),
            RECORD_FLAGS,
            "invalid port",
        ),
        (
            "bad host",
            good.replace(&server_line, "server evil,host 11211 1\n")
                .into_bytes(),
            RECORD_FLAGS,
            "character no host name has",
        ),
        (
            "future version",
            good.replace(&v.to_string(), &future.to_string())
                .into_bytes(),
            RECORD_FLAGS,
            "ahead of this host's clock",
        ),
        (
            "small version",
            good.replace(&v.to_string(), "5").into_bytes(),
            RECORD_FLAGS,
            "not date-derived",
        ),
        (
            "replicas 0",
            good.replace("replicas 1", "replicas 0").into_bytes(),
            RECORD_FLAGS,
            "replica count 0",
        ),
        ("oversized", oversized, RECORD_FLAGS, "maximum is 98304"),
        ("foreign flags", good.clone().into_bytes(), 0, "flags 0"),
    ];
    for (label, value, flags, needle) in &cases {
        raw_set(s1.port(), RECORD_KEY, *flags, value);
        let msg = refused(&host_b, &["pull", &s1.addr()], &[needle, &s1.addr()]);
        assert!(msg.contains("nothing changed"), "{label}: {msg}");
        assert_eq!(host_b.list().unwrap(), before, "{label} changed host B");
        refused(&host_d, &["pull", &s1.addr()], &[needle]);
        assert!(!host_d.segment().exists(), "{label} created a segment");
    }
    // The good record itself is accepted: the refusals were about the differences.
    raw_set(s1.port(), RECORD_KEY, RECORD_FLAGS, good.as_bytes());
    let probe = Host::new("hosP");
    admin(&probe, &["pull", &s1.addr()], 0);
    assert_eq!(probe.version(), v);

    // watch: the refusal is logged once, however many rounds see it, and nothing is installed.
    raw_set(s1.port(), RECORD_KEY, RECORD_FLAGS, cases[3].1.as_slice());
    let mut watcher = Agent::start(&host_b, &["watch", "--interval", "0.2", "--domain", DOMAIN]);
    watcher.wait_for("holds an invalid record: control byte 0x00", WAIT);
    thread::sleep(Duration::from_millis(700));
    let (status, log) = watcher.stop(libc::SIGINT);
    assert!(status.success(), "{log:?}");
    let refusals = log.iter().filter(|l| l.contains("invalid record")).count();
    assert_eq!(refusals, 1, "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("installed")), "{log:#?}");
    assert_eq!(
        log.last().map(String::as_str),
        Some("mcadmin: watch: stopped by SIGINT")
    );
    assert_eq!(host_b.list().unwrap(), before);
}

/// A server that refuses connections and one that does not answer are reported, one line each,
/// and the others get the record; the exit status is 3.
#[test]
fn a_server_down_during_publish_is_reported_and_the_others_updated() {
    let (s1, s2, stopped) = (Memcached::start(), Memcached::start(), Memcached::start());
    let dead = DeadPort::new();
    let dead_addr = format!("127.0.0.1:{}", dead.port());
    let host_a = Host::new("downA");
    admin(
        &host_a,
        &["set", &s1.addr(), &dead_addr, &s2.addr(), &stopped.addr()],
        0,
    );
    stopped.stop_and_wait();
    let started = Instant::now();
    let run = admin(&host_a, &["publish"], Exit::Failed.into());
    stopped.cont();
    assert!(started.elapsed() < Duration::from_secs(10), "{run:?}");
    let failures: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("not updated"))
        .collect();
    assert_eq!(failures.len(), 2, "{run:?}");
    assert!(
        failures[0].contains(&dead_addr) && failures[0].contains("cannot connect"),
        "{run:?}"
    );
    assert!(
        failures[1].contains(&stopped.addr()) && failures[1].contains("timeout"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .lines()
            .last()
            .unwrap()
            .contains("to 2 of 4 servers")
            && run.stderr.contains("2 failed"),
        "{run:?}"
    );
    let list = host_a.list().unwrap();
    for server in [&s1, &s2] {
        assert_eq!(record_on(server).list, list);
    }
    assert_eq!(raw_get(stopped.port(), RECORD_KEY), None);
}

// ---------------------------------------------------------------------------------------------
// clients

/// A server that answers every line with ERROR, as one without `stats conns` does.
fn error_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut writer = stream.try_clone().expect("clone");
            for line in BufReader::new(stream).lines() {
                if line.is_err() || writer.write_all(b"ERROR\r\n").is_err() {
                    break;
                }
            }
        }
    });
    port
}

/// A connection open from this test, and the port it has on our side.
fn open_client(server: &Memcached) -> (TcpStream, u16) {
    let mut s = connect(server.port());
    s.write_all(b"version\r\n").expect("send version");
    let mut reply = [0u8; 64];
    let n = s.read(&mut reply).expect("version reply");
    assert!(reply[..n].starts_with(b"VERSION "));
    let port = s.local_addr().expect("local addr").port();
    (s, port)
}

/// `clients` lists the connections the test holds open (and not its own), grouped by client
/// address; a server without `stats conns` and a dead one are reported but do not fail it.
#[test]
fn clients_lists_known_connections() {
    let (s1, s2) = (Memcached::start(), Memcached::start());
    let dead = DeadPort::new();
    let (fake, dead_addr) = (
        format!("127.0.0.1:{}", error_server()),
        format!("127.0.0.1:{}", dead.port()),
    );
    let host = Host::new("clients");
    admin(
        &host,
        &["set", &s1.addr(), &fake, &s2.addr(), &dead_addr],
        0,
    );
    let held: Vec<(TcpStream, u16, String)> = [&s1, &s1, &s1, &s2, &s2]
        .iter()
        .map(|m| {
            let (s, port) = open_client(m);
            (s, port, m.addr())
        })
        .collect();
    let expected: BTreeSet<(String, u64)> = held
        .iter()
        .map(|(_, port, server)| (server.clone(), u64::from(*port)))
        .collect();

    // Connections closed just before (the harness's own) may linger an instant in the server.
    let deadline = Instant::now() + WAIT;
    let (json, run) = loop {
        let run = admin(&host, &["clients", "--json"], 0);
        let json = Json::parse(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run:?}"));
        let listed: BTreeSet<(String, u64)> = json["clients"]
            .items()
            .iter()
            .flat_map(|c| c["connections"].items().to_vec())
            .map(|c| (c["server"].str().to_owned(), c["port"].num()))
            .collect();
        if listed == expected || Instant::now() > deadline {
            assert_eq!(listed, expected, "{run:?}");
            break (json, run);
        }
        thread::sleep(Duration::from_millis(50));
    };
    let clients = json["clients"].items();
    assert_eq!(clients.len(), 1, "{run:?}");
    assert_eq!(clients[0]["client"].str(), "127.0.0.1");
    let servers: Vec<&str> = clients[0]["servers"]
        .items()
        .iter()
        .map(Json::str)
        .collect();
    assert_eq!(servers, [s1.addr(), s2.addr()]);
    let failed: Vec<(&str, &str)> = json["failed"]
        .items()
        .iter()
        .map(|f| (f["server"].str(), f["error"].str()))
        .collect();
    assert_eq!(failed.len(), 2, "{run:?}");
    assert!(
        failed[0].0 == fake && failed[0].1.contains("stats conns"),
        "{failed:?}"
    );
    assert!(
        failed[1].0 == dead_addr && failed[1].1.contains("cannot connect"),
        "{failed:?}"
    );
    assert_eq!(run.stderr.lines().count(), 2, "{run:?}");

    let plain = admin(&host, &["clients"], 0);
    assert_eq!(
        plain.stdout,
        format!(
            "127.0.0.1 connections 5 servers {},{}\n",
            s1.addr(),
            s2.addr()
        )
    );
    drop(held);

    // Nothing to ask at all is an error.
    admin(&host, &["set", &fake, &dead_addr], 0);
    let run = admin(&host, &["clients"], Exit::Failed.into());
    assert!(
        run.stderr.contains("no server of web could be asked"),
        "{run:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Command lines

/// Usage errors exit 2, runtime errors 3, each with one line; a watcher with nothing to follow
/// says so once and stops cleanly.
#[test]
fn command_line_errors_and_an_idle_watcher() {
    let s1 = Memcached::start();
    let host = Host::new("cli");
    let usage = |args: &[&str], needle: &str| {
        let run = mcadmin(&host, args);
        assert_eq!(run.code, i32::from(Exit::Usage), "{args:?}: {run:?}");
        assert!(run.stderr.contains(needle), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty());
    };
    usage(&["watch", "--seed", &s1.addr()], "--seed needs --domain");
    usage(
        &["watch", "--interval", "0", "--domain", DOMAIN],
        "--interval",
    );
    usage(
        &["watch", "--interval", "x", "--domain", DOMAIN],
        "--interval",
    );
    usage(&["--domain", "a", "--domain", "b", "publish"], "2 times");
    usage(&["pull"], "<SERVER>");
    usage(&["publish", "--also"], "--also");

    refused(&host, &["publish"], &["web", "does not exist"]);
    refused(&host, &["clients"], &["web", "does not exist"]);
    refused(
        &host,
        &["pull", &s1.addr()],
        &["holds no record of domain web"],
    );
    refused(&host, &["pull", "127.0.0.1:0"], &["127.0.0.1:0", "port 0"]);
    assert!(!host.segment().exists());
    let bad = mcadmin(&host, &["watch", "--domain", "bad name"]);
    assert_eq!(bad.code, i32::from(Exit::Failed), "{bad:?}");
    assert!(bad.stderr.contains("\"bad name\""), "{bad:?}");

    let mut watcher = Agent::start(&host, &["watch", "--interval", "0.1", "--domain", DOMAIN]);
    watcher.wait_for("web: no segment on this host yet", WAIT);
    thread::sleep(Duration::from_millis(400));
    let (status, log) = watcher.stop(libc::SIGTERM);
    assert!(status.success(), "{log:?}");
    assert_eq!(
        log,
        [
            "mcadmin: watch: following web every 0.1s",
            "mcadmin: watch: web: no segment on this host yet; waiting for one (or give --seed)",
            "mcadmin: watch: stopped by SIGTERM",
        ]
    );

    // With a seed that has no record yet: it waits (saying so once), then bootstraps as soon
    // as another host publishes.
    let seed = s1.addr();
    let mut watcher = Agent::start(
        &host,
        &[
            "watch",
            "--interval",
            "0.1",
            "--domain",
            DOMAIN,
            "--seed",
            &seed,
        ],
    );
    watcher.wait_for("no record from", WAIT);
    thread::sleep(Duration::from_millis(400));
    let other = Host::new("cliA");
    admin(&other, &["set", &s1.addr()], 0);
    admin(&other, &["publish"], 0);
    watcher.wait_for("web: created from", WAIT);
    let (status, log) = watcher.stop(libc::SIGTERM);
    assert!(status.success(), "{log:?}");
    assert_eq!(log.len(), 4, "{log:#?}");
    assert_eq!(
        log[1],
        format!(
            "mcadmin: watch: web: no segment on this host yet and no record from {seed}; waiting"
        )
    );
    assert_eq!(host.list(), other.list());
}

// ---------------------------------------------------------------------------------------------
// A little JSON, to read `clients --json`

#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(u64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut at = 0;
        let value = Json::value(text.as_bytes(), &mut at)?;
        if at != text.len() {
            return Err(format!("trailing text at {at}"));
        }
        Ok(value)
    }

    fn value(b: &[u8], at: &mut usize) -> Result<Json, String> {
        let rest = &b[*at..];
        let lit = |word: &str, v: Json, at: &mut usize| {
            *at += word.len();
            Ok(v)
        };
        match rest.first() {
            Some(b'n') if rest.starts_with(b"null") => lit("null", Json::Null, at),
            Some(b't') if rest.starts_with(b"true") => lit("true", Json::Bool(true), at),
            Some(b'f') if rest.starts_with(b"false") => lit("false", Json::Bool(false), at),
            Some(b'0'..=b'9') => {
                let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
                *at += n;
                let digits = std::str::from_utf8(&rest[..n]).unwrap();
                digits.parse().map(Json::Num).map_err(|e| e.to_string())
            }
            Some(b'"') => Json::string(b, at).map(Json::Str),
            Some(b'[') => {
                *at += 1;
                let mut items = Vec::new();
                while b.get(*at) != Some(&b']') {
                    if !items.is_empty() {
                        Json::expect(b, at, b',')?;
                    }
                    items.push(Json::value(b, at)?);
                }
                *at += 1;
                Ok(Json::Arr(items))
            }
            Some(b'{') => {
                *at += 1;
                let mut fields = Vec::new();
                while b.get(*at) != Some(&b'}') {
                    if !fields.is_empty() {
                        Json::expect(b, at, b',')?;
                    }
                    let key = Json::string(b, at)?;
                    Json::expect(b, at, b':')?;
                    fields.push((key, Json::value(b, at)?));
                }
                *at += 1;
                Ok(Json::Obj(fields))
            }
            other => Err(format!("unexpected {other:?} at {at}")),
        }
    }

    fn expect(b: &[u8], at: &mut usize, c: u8) -> Result<(), String> {
        if b.get(*at) != Some(&c) {
            return Err(format!("expected {:?} at {at}", c as char));
        }
        *at += 1;
        Ok(())
    }

    fn string(b: &[u8], at: &mut usize) -> Result<String, String> {
        Json::expect(b, at, b'"')?;
        let mut out = Vec::new();
        loop {
            match b.get(*at) {
                None => return Err("unterminated string".into()),
                Some(b'"') => break,
                Some(b'\\') => {
                    let c = *b.get(*at + 1).ok_or("bad escape")?;
                    match c {
                        b'"' | b'\\' | b'/' => out.push(c),
                        b'u' => {
                            let hex = std::str::from_utf8(&b[*at + 2..*at + 6]).unwrap();
                            let code = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            let ch = char::from_u32(code).ok_or("bad \\u")?;
                            out.extend_from_slice(ch.to_string().as_bytes());
                            *at += 4;
                        }
                        _ => return Err(format!("escape {:?}", c as char)),
                    }
                    *at += 2;
                }
                Some(&c) => {
                    out.push(c);
                    *at += 1;
                }
            }
        }
        *at += 1;
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    fn items(&self) -> &[Json] {
        match self {
            Json::Arr(items) => items,
            other => panic!("not an array: {other:?}"),
        }
    }

    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }

    fn num(&self) -> u64 {
        match self {
            Json::Num(n) => *n,
            other => panic!("not a number: {other:?}"),
        }
    }
}

impl std::ops::Index<&str> for Json {
    type Output = Json;
    fn index(&self, key: &str) -> &Json {
        match self {
            Json::Obj(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no {key:?} in {self:?}")),
            other => panic!("not an object: {other:?}"),
        }
    }
}
