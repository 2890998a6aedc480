//! Issue 13, point 4: health you can see. `memcache::status::status` (what `mcadmin status`
//! runs) called in-process and through the real `mcadmin`, against real memcached servers with
//! one stopped: the figures of the servers that answer come from real traffic (a hit ratio of
//! exactly 3/4), the stopped one is down, "since" times survive from one run to the next (and
//! come from `watch` too), a real C program following the domain is listed with its pid, and a
//! silent or trickling server holds the command no longer than its timeout.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use memcache::address::ServerAddr;
use memcache::client::Client;
use memcache::hash::Distribution;
use memcache::propagate::Watcher;
use memcache::registry::{DomainName, Namespace};
use memcache::state_dir::StateDir;
use memcache::status::{status, DomainStatus};
use support::{
    compile_capi, run_bounded, spawn_c_with, temp_dir, FakeServer, Memcached, ShmPrefix,
};

/// Every wait on a server in the in-process calls.
const TIMEOUT: Duration = Duration::from_secs(2);
/// mcadmin's own timeout (`propagate::NET_TIMEOUT`).
const MCADMIN_TIMEOUT: Duration = Duration::from_secs(2);
/// A run of mcadmin that takes longer than this is killed and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);

fn domain() -> DomainName {
    DomainName::parse("web").unwrap()
}

fn addr(m: &Memcached) -> ServerAddr {
    ServerAddr::parse(&m.addr()).unwrap()
}

/// A simulated host: a namespace and a state directory of its own.
struct Host {
    shm: ShmPrefix,
    state: std::path::PathBuf,
}

impl Host {
    fn new(label: &str) -> Host {
        Host {
            shm: ShmPrefix::new(label),
            state: temp_dir(label),
        }
    }

    fn ns(&self) -> Namespace {
        Namespace::with_prefix(&self.shm.prefix).unwrap()
    }

    fn state_dir(&self) -> StateDir {
        StateDir::new(&self.state)
    }

    fn set(&self, servers: &[ServerAddr]) {
        self.ns()
            .open_writer(&domain(), true)
            .unwrap()
            .update(|l| {
                l.servers = servers.to_vec();
                Ok(())
            })
            .unwrap();
    }

    fn status(&self) -> DomainStatus {
        status(&self.ns(), &domain(), Some(&self.state_dir()), TIMEOUT).unwrap()
    }

    fn mcadmin(&self, args: &[&str]) -> Output {
        let mut cmd = self.shm.mcadmin_kept(&self.state, args);
        run_bounded(&mut cmd, b"", RUN_LIMIT)
    }
}

/// Two keys stored on `m`, read three times, and one miss: a hit ratio of exactly 0.75.
fn traffic(m: &Memcached) {
    let mut c = Client::new(vec![addr(m)], Distribution::Crc32Modulo).unwrap();
    c.set(b"a", b"1", 0, 0).unwrap();
    c.set(b"b", b"2", 0, 0).unwrap();
    for key in [&b"a"[..], b"b", b"a"] {
        assert!(c.get(key).unwrap().is_some());
    }
    assert!(c.get(b"nope").unwrap().is_none());
}

#[test]
fn three_servers_one_stopped_then_back() {
    let (s1, s2, mut s3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let host = Host::new("status_lib");
    host.set(&[addr(&s1), addr(&s2), addr(&s3)]);
    traffic(&s1);
    Client::new(vec![addr(&s2)], Distribution::Crc32Modulo)
        .unwrap()
        .set(b"c", b"3", 0, 0)
        .unwrap();
    s3.kill();

    let seen = host.status();
    assert_eq!(seen.list.servers.len(), 3);
    assert!(!seen.all_up());
    let h1 = seen.servers[0].health.as_ref().expect("s1 answers");
    assert_eq!(h1.version, s1.stats()["version"]);
    assert!(h1.uptime.is_some() && h1.rtt < TIMEOUT, "{h1:?}");
    assert_eq!((h1.items, h1.evictions), (Some(2), Some(0)));
    assert_eq!((h1.get_hits, h1.get_misses), (Some(3), Some(1)));
    assert_eq!(h1.hit_ratio(), Some(0.75));
    let h2 = seen.servers[1].health.as_ref().expect("s2 answers");
    assert_eq!((h2.items, h2.hit_ratio()), (Some(1), None), "no get on s2");
    let why = seen.servers[2].health.as_ref().expect_err("s3 is stopped");
    assert!(why.contains("refused"), "{why}");
    assert!(seen.since_problem.is_none(), "{:?}", seen.since_problem);
    let since: Vec<u64> = seen.servers.iter().map(|s| s.since.unwrap()).collect();

    // "Since" is the first time each state was seen, not the time of this run.
    thread::sleep(Duration::from_millis(1100));
    let again = host.status();
    let since_again: Vec<Option<u64>> = again.servers.iter().map(|s| s.since).collect();
    assert_eq!(
        since_again,
        since.iter().map(|&t| Some(t)).collect::<Vec<_>>()
    );

    s3.restart();
    let back = host.status();
    assert!(back.all_up(), "{:?}", back.servers[2]);
    assert_eq!(
        back.servers[0].since,
        Some(since[0]),
        "s1 has been up all along"
    );
    assert!(
        back.servers[2].since.unwrap() > since[2],
        "s3 is up since now"
    );
}

#[test]
fn mcadmin_status_table_and_json() {
    let (s1, s2, mut s3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let host = Host::new("status_cli");
    host.set(&[addr(&s1), addr(&s2), addr(&s3)]);
    traffic(&s1);
    s3.kill();

    let out = host.mcadmin(&["--domain", "web", "status"]);
    let (table, log) = (text(&out.stdout), text(&out.stderr));
    println!("{table}{log}");
    assert_eq!(out.status.code(), Some(1), "a server is down: {log}");
    assert_eq!(log, "mcadmin: 1 of 3 servers of web down\n");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("domain web  version "), "{table}");
    assert!(
        lines[0].ends_with("  distribution ketama-md5  replicas 1"),
        "{table}"
    );
    let cells = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        cells(lines[1]),
        [
            "SERVER",
            "STATE",
            "SINCE (UTC)",
            "RTT",
            "VERSION",
            "UPTIME",
            "ITEMS",
            "HIT RATIO",
            "EVICTIONS"
        ]
    );
    let row1 = cells(lines[2]);
    assert_eq!(row1[0], s1.addr());
    assert_eq!(row1[1], "up");
    assert_eq!(row1[4], s1.stats()["version"]);
    assert_eq!(&row1[6..], ["2", "75.0%", "0"], "{table}");
    let row2 = cells(lines[3]);
    assert_eq!(
        (row2[1].as_str(), &row2[6..]),
        ("up", &["0".to_owned(), "-".into(), "0".into()][..])
    );
    let row3 = cells(lines[4]);
    assert_eq!(row3[..2], [s3.addr(), "down".to_owned()]);
    assert!(row3[3].contains("refused"), "{table}");
    for row in [&row1, &row2, &row3] {
        assert_eq!(
            row[2].len(),
            "2026-12-06 00:01:02".len(),
            "a since time: {table}"
        );
    }
    // The columns line up.
    let at = |line: &str, word: &str| line.find(word).unwrap();
    assert_eq!(at(lines[2], "up"), at(lines[1], "STATE"));
    assert_eq!(at(lines[4], "down"), at(lines[1], "STATE"));

    let out = host.mcadmin(&["--domain", "web", "status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value =
        serde_json::from_str(&text(&out.stdout)).expect("one JSON object");
    assert_eq!(json["domain"], "web");
    assert_eq!(json["distribution"], "ketama-md5");
    assert_eq!(json["replicas"], 1);
    assert!(json["version"].as_u64().unwrap() > 0);
    let servers = json["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    let j1 = &servers[0];
    assert_eq!(j1["server"], s1.addr());
    assert_eq!(j1["up"], true);
    assert_eq!(j1["hit_ratio"].as_f64(), Some(0.75));
    assert_eq!(
        (j1["get_hits"].as_u64(), j1["get_misses"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        (j1["items"].as_u64(), j1["evictions"].as_u64()),
        (Some(2), Some(0))
    );
    assert!(j1["uptime"].is_u64() && j1["rtt_ms"].is_f64(), "{j1}");
    assert_eq!(servers[1]["hit_ratio"], serde_json::Value::Null);
    assert_eq!(servers[2]["up"], false);
    assert!(servers[2]["error"].as_str().unwrap().contains("refused"));
    assert!(json["processes"].is_array(), "{json}");
    assert!(json["processes_unreadable"].is_u64(), "{json}");

    // The same since times from one run to the next, in both forms.
    let since_json: Vec<&str> = servers
        .iter()
        .map(|s| s["since_utc"].as_str().unwrap())
        .collect();
    let since_table: Vec<String> = [&row1, &row2, &row3].iter().map(|r| r[2].clone()).collect();
    assert_eq!(since_json, since_table);
    assert_eq!(
        servers[0]["since"].as_u64().unwrap() % 60,
        since_table[0][17..].parse::<u64>().unwrap()
    );

    // Every server up: status 0; no domain: 3.
    host.mcadmin(&["--domain", "web", "delete", &s3.addr()]);
    let out = host.mcadmin(&["--domain", "web", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = host.mcadmin(&["--domain", "none", "status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("domain none does not exist"));
}

#[test]
fn watch_notes_since_when_for_status() {
    let s1 = Memcached::start();
    let dead = support::DeadPort::new();
    let host = Host::new("status_watch");
    let down = ServerAddr::parse(&format!("127.0.0.1:{}", dead.port())).unwrap();
    host.set(&[addr(&s1), down.clone()]);

    let mut watcher = Watcher::new(host.ns(), Some(vec![domain()]), None).unwrap();
    watcher.set_timeout(TIMEOUT);
    watcher.set_health_dir(host.state_dir());
    watcher.round(&mut || false);
    let kept = std::fs::read_to_string(host.state.join("web.health")).unwrap();
    let line = |server: &str| {
        kept.lines()
            .find(|l| l.ends_with(&format!(" {server}")))
            .unwrap_or_else(|| panic!("no line for {server}: {kept}"))
            .to_owned()
    };
    assert!(line(&s1.addr()).starts_with("up "), "{kept}");
    assert!(line(&down.to_string()).starts_with("down "), "{kept}");

    thread::sleep(Duration::from_millis(1100));
    let seen = host.status();
    let line = |server: &str| {
        kept.lines()
            .find(|l| l.ends_with(server))
            .unwrap()
            .to_owned()
    };
    for s in &seen.servers {
        let since: u64 = line(&s.server.to_string())
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(s.since, Some(since), "status shows what watch noted first");
    }
}

/// A C program that follows the domain (`capi-tests/domain_loop.c`) is listed with its pid
/// while it runs, and no more once it has ended.
#[test]
fn an_attached_program_is_listed_with_its_pid() {
    let s1 = Memcached::start();
    let host = Host::new("status_attached");
    host.set(&[addr(&s1)]);
    let dir = temp_dir("status-attached-loop");
    let status_file = dir.join("status");
    let env = [
        host.shm.env(),
        ("LOOP_NAME", "st".to_string()),
        ("LOOP_HANDLE", "new2".to_string()),
        ("LOOP_DOMAIN", "web".to_string()),
        ("LOOP_STATUS", status_file.display().to_string()),
        ("LOOP_STOP", dir.join("stop").display().to_string()),
        ("LOOP_SECONDS", "30".to_string()),
        ("LOOP_PACE_US", "10000".to_string()),
    ];
    let mut program = spawn_c_with(
        &[],
        &compile_capi("domain_loop", &[]),
        &env,
        Duration::from_secs(60),
    );
    support::wait_for_file(&status_file, &mut program, Duration::from_secs(20)).unwrap();
    let pid = program.pid();

    let seen = host.status();
    let processes = seen.processes.as_ref().unwrap();
    let listed: Vec<(u32, &str, bool)> = processes
        .attached
        .iter()
        .map(|a| (a.pid, a.program.as_str(), a.stale))
        .collect();
    assert_eq!(listed, [(pid, "domain_loop", false)]);
    let out = host.mcadmin(&["--domain", "web", "status"]);
    let table = text(&out.stdout);
    assert!(table.contains("\n1 process attached"), "{table}");
    assert!(
        table.contains(&format!("\n{pid:<7}  domain_loop\n")),
        "{table}"
    );
    let json = host.mcadmin(&["--domain", "web", "status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["processes"][0]["pid"], pid);
    assert_eq!(json["processes"][0]["program"], "domain_loop");

    std::fs::write(dir.join("stop"), "").unwrap();
    program.wait().assert_success();
    let after = host.status();
    assert!(after.processes.unwrap().attached.is_empty());
}

/// Accepts every connection and never answers.
fn silent(stream: TcpStream, _log: Arc<Mutex<Vec<String>>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = BufReader::new(stream).read_to_end(&mut Vec::new());
}

/// Answers the first command line with a reply that never ends: "VERSION " and then one digit
/// every 100 ms, each byte early enough for any per-read timeout.
fn trickling(stream: TcpStream, _log: Arc<Mutex<Vec<String>>>) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut line = String::new();
    if BufReader::new(stream).read_line(&mut line).is_err() || out.write_all(b"VERSION ").is_err() {
        return;
    }
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(30) && out.write_all(b"1").is_ok() {
        thread::sleep(Duration::from_millis(100));
    }
}

/// A listening socket that never accepts (a real one, the kernel completes the connects), a
/// fake server that accepts and stays silent, one that trickles: each is down, and status
/// takes about its timeout (bound 2x) instead of waiting for them.
#[test]
fn a_silent_or_trickling_server_holds_status_no_longer_than_its_timeout() {
    let s1 = Memcached::start();
    let backlog = TcpListener::bind("127.0.0.1:0").unwrap();
    let quiet = FakeServer::<Vec<String>>::start(silent);
    let slow = FakeServer::<Vec<String>>::start(trickling);
    let host = Host::new("status_slow");
    let fake = |port: u16| ServerAddr::parse(&format!("127.0.0.1:{port}")).unwrap();
    host.set(&[
        addr(&s1),
        fake(backlog.local_addr().unwrap().port()),
        fake(quiet.port),
        fake(slow.port),
    ]);

    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let seen = status(&host.ns(), &domain(), Some(&host.state_dir()), timeout).unwrap();
    let took = started.elapsed();
    println!("status with three unanswering servers (timeout {timeout:?}): {took:?}");
    assert!(took < 2 * timeout, "took {took:?}");
    assert!(seen.servers[0].is_up());
    for s in &seen.servers[1..] {
        let why = s.health.as_ref().expect_err("no answer");
        assert!(
            why.contains("timed out") || why.contains("no complete answer within 1s"),
            "{why}"
        );
    }

    let started = Instant::now();
    let out = host.mcadmin(&["--domain", "web", "status"]);
    let took = started.elapsed();
    println!("mcadmin status (timeout {MCADMIN_TIMEOUT:?}): {took:?}");
    assert_eq!(out.status.code(), Some(1));
    assert!(took < 2 * MCADMIN_TIMEOUT, "took {took:?}");
    assert!(text(&out.stderr).contains("3 of 4 servers of web down"));
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
