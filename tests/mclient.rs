//! mclient(1) end to end: the built binary against real memcached servers, checking stdout
//! byte for byte, exit statuses and one-line errors.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use memcache::client::{Client, ServerSpec};
use memcache::hash::Distribution;
use memcache::registry::{DomainName, Namespace, ServerEntry};
use support::{DeadPort, Memcached};

/// Runs mclient with `args`, `stdin` as standard input, and only the environment variables in
/// `env` among those it reads (so the caller's own settings cannot leak in).
fn mclient_env(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mclient"));
    cmd.args(args)
        .env_remove("MEMCACHE_SERVERS")
        .env_remove("MEMCACHE_DOMAIN")
        .env_remove("MEMCACHE_SHM_PREFIX")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn mclient");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    // A separate writer: mclient may write output before it has read all of its input.
    let writer = thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for mclient");
    writer.join().expect("stdin writer");
    out
}

fn mclient(args: &[&str], stdin: &[u8]) -> Output {
    mclient_env(args, stdin, &[])
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("mclient exited by a signal")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit status and, for errors and notes, that stderr is exactly one line
/// `mclient: ...`.
#[track_caller]
fn expect(out: &Output, status: i32) {
    assert_eq!(
        code(out),
        status,
        "stdout {:?}\nstderr {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

#[track_caller]
fn one_error_line(out: &Output) -> String {
    let err = stderr(out);
    assert!(err.starts_with("mclient: "), "{err:?}");
    assert!(
        err.ends_with('\n') && err.matches('\n').count() == 1,
        "{err:?}"
    );
    err
}

#[test]
fn binary_value_through_stdin_comes_back_byte_exact() {
    let mc = Memcached::start();
    let servers = mc.addr();
    let mut value: Vec<u8> = (0..=255u8).collect();
    value.extend((0..=255u8).rev());
    value.extend_from_slice(b"\r\nEND\r\n\0");
    let out = mclient(&["--servers", &servers, "set", "bin"], &value);
    expect(&out, 0);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let out = mclient(&["--servers", &servers, "get", "bin"], b"");
    expect(&out, 0);
    assert_eq!(out.stdout, value);
    assert!(out.stderr.is_empty());

    // Empty stdin stores an empty value; a value argument is taken as is, even with a dash.
    expect(&mclient(&["--servers", &servers, "set", "empty"], b""), 0);
    let out = mclient(&["--servers", &servers, "get", "empty"], b"");
    expect(&out, 0);
    assert!(out.stdout.is_empty());
    expect(
        &mclient(&["--servers", &servers, "set", "dash", "-v x"], b"ignored"),
        0,
    );
    assert_eq!(
        mclient(&["--servers", &servers, "get", "dash"], b"").stdout,
        b"-v x"
    );

    // A larger value than one read buffer, and --flags/--exptime accepted after the command.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let out = mclient(
        &[
            "set",
            "big",
            "--servers",
            &servers,
            "--flags",
            "7",
            "--exptime",
            "600",
        ],
        &big,
    );
    expect(&out, 0);
    let out = mclient(&["--servers", &servers, "get", "big"], b"");
    assert_eq!(out.stdout, big);
    let stored = Client::new(
        vec![ServerSpec::parse(&servers).unwrap()],
        Distribution::Crc32Modulo,
    )
    .unwrap()
    .get(b"big")
    .unwrap()
    .unwrap();
    assert_eq!(stored.flags, 7);
}

#[test]
fn exit_statuses() {
    let mc = Memcached::start();
    let servers = mc.addr();
    let s = servers.as_str();
    // Hit, miss.
    expect(&mclient(&["--servers", s, "set", "k", "v"], b""), 0);
    let hit = mclient(&["--servers", s, "get", "k"], b"");
    expect(&hit, 0);
    assert_eq!(hit.stdout, b"v");
    let miss = mclient(&["--servers", s, "get", "nope"], b"");
    expect(&miss, 1);
    assert!(miss.stdout.is_empty() && miss.stderr.is_empty());

    // Not stored / not found: status 1 with a one-line note.
    for args in [
        &["add", "k", "again"][..],
        &["replace", "missing", "x"],
        &["append", "missing", "x"],
        &["prepend", "missing", "x"],
        &["delete", "missing"],
        &["touch", "missing"],
        &["incr", "missing"],
        &["decr", "missing", "2"],
    ] {
        let mut all = vec!["--servers", s];
        all.extend_from_slice(args);
        let out = mclient(&all, b"");
        expect(&out, 1);
        assert!(out.stdout.is_empty(), "{args:?}");
        one_error_line(&out);
    }
    for args in [
        &["add", "fresh", "1"][..],
        &["replace", "k", "w"],
        &["append", "k", ">"],
        &["prepend", "k", "<"],
        &["touch", "k"],
    ] {
        let mut all = vec!["--servers", s];
        all.extend_from_slice(args);
        let out = mclient(&all, b"");
        expect(&out, 0);
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{args:?}");
    }
    assert_eq!(mclient(&["--servers", s, "get", "k"], b"").stdout, b"<w>");
    expect(&mclient(&["--servers", s, "delete", "k"], b""), 0);
    expect(&mclient(&["--servers", s, "get", "k"], b""), 1);

    // Errors: status 2, one line naming the problem, nothing on stdout.
    let dead_port = DeadPort::new();
    let dead = format!("127.0.0.1:{}", dead_port.port());
    let out = mclient(&["--servers", &dead, "get", "k"], b"");
    expect(&out, 2);
    assert!(out.stdout.is_empty());
    let err = one_error_line(&out);
    assert!(err.contains(&dead), "{err}");
    let out = mclient(&["--servers", s, "get", "bad\x01key"], b"");
    expect(&out, 2);
    assert!(one_error_line(&out).contains("invalid key"));
    let long = "k".repeat(251);
    expect(&mclient(&["--servers", s, "set", &long, "v"], b""), 2);
    let out = mclient(&["--servers", "host:0", "get", "k"], b"");
    expect(&out, 2);
    assert!(one_error_line(&out).contains("host:0"));
    expect(&mclient(&["--servers", s, "set", "text", "abc"], b""), 0);
    let out = mclient(&["--servers", s, "incr", "text"], b"");
    expect(&out, 2);
    assert!(one_error_line(&out).contains("non-numeric"));

    // Bad usage is clap's status 2; --help and --version are 0 on stdout.
    expect(&mclient(&[], b""), 2);
    expect(&mclient(&["--servers", s, "frobnicate"], b""), 2);
    expect(&mclient(&["--servers", s, "incr", "k", "minus"], b""), 2);
    expect(
        &mclient(&["--servers", s, "--domain", "x", "get", "k"], b""),
        2,
    );
    expect(
        &mclient(&["--servers", s, "--timeout-ms", "0", "get", "k"], b""),
        2,
    );
    let help = mclient(&["--help"], b"");
    expect(&help, 0);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: mclient"), "{text}");
    assert!(
        text.contains("--servers") && text.contains("incr"),
        "{text}"
    );
    expect(&mclient(&["get", "--help"], b""), 0);
    let version = mclient(&["--version"], b"");
    expect(&version, 0);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("mclient "));
}

#[test]
fn incr_decr_print_the_new_value() {
    let mc = Memcached::start();
    let s = mc.addr();
    expect(&mclient(&["--servers", &s, "set", "n", "10"], b""), 0);
    let out = mclient(&["--servers", &s, "incr", "n", "5"], b"");
    expect(&out, 0);
    assert_eq!(out.stdout, b"15\n");
    let out = mclient(&["--servers", &s, "incr", "n"], b"");
    assert_eq!(out.stdout, b"16\n");
    let out = mclient(&["--servers", &s, "decr", "n", "100"], b"");
    expect(&out, 0);
    assert_eq!(out.stdout, b"0\n");
    let out = mclient(&["--servers", &s, "incr", "n", "18446744073709551615"], b"");
    assert_eq!(out.stdout, b"18446744073709551615\n");
}

#[test]
fn several_keys_and_print_keys() {
    let a = Memcached::start();
    let b = Memcached::start();
    let servers = format!("{},{}", a.addr(), b.addr());
    let s = servers.as_str();
    for (k, v) in [
        ("one", "1"),
        ("two", "22"),
        ("three", "333"),
        ("four", "4444"),
    ] {
        expect(&mclient(&["--servers", s, "set", k, v], b""), 0);
    }
    // Spread over both servers, as the library's crc32-modulo places them.
    assert!(a.stat("curr_items") > 0 && b.stat("curr_items") > 0);
    let out = mclient(&["--servers", s, "get", "one", "two", "three", "four"], b"");
    expect(&out, 0);
    assert_eq!(out.stdout, b"1223334444");
    let out = mclient(
        &[
            "--servers",
            s,
            "get",
            "--print-keys",
            "four",
            "missing",
            "one",
            "two",
        ],
        b"",
    );
    expect(&out, 1);
    assert_eq!(out.stdout, b"four\t4\n4444one\t1\n1two\t2\n22");
    assert!(out.stderr.is_empty());
    let out = mclient(&["--servers", s, "get", "--print-keys", "three"], b"");
    assert_eq!(out.stdout, b"three\t3\n333");
}

#[test]
fn keys_go_where_the_library_puts_them() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let list: Vec<String> = servers.iter().map(Memcached::addr).collect();
    let joined = list.join(",");
    for (dist, name) in [
        (Distribution::Crc32Modulo, None),
        (Distribution::KetamaMd5, Some("ketama-md5")),
    ] {
        let client = Client::new(
            list.iter().map(|a| ServerSpec::parse(a).unwrap()).collect(),
            dist,
        )
        .unwrap();
        for i in 0..12 {
            let key = format!("placed:{dist}:{i}");
            let mut args = vec!["--servers", joined.as_str()];
            if let Some(name) = name {
                args.extend(["--distribution", name]);
            }
            args.extend(["set", key.as_str(), "x"]);
            expect(&mclient(&args, b""), 0);
            let owner = client.server_for(key.as_bytes()).unwrap();
            // Only the owner has it: ask each server directly.
            for (i, addr) in list.iter().enumerate() {
                let mut one = Client::new(vec![ServerSpec::parse(addr).unwrap()], dist).unwrap();
                let hit = one.get(key.as_bytes()).unwrap().is_some();
                assert_eq!(hit, i == owner, "{key} on {addr}");
            }
        }
    }
}

#[test]
fn stats_version_flush() {
    let a = Memcached::start();
    let b = Memcached::start();
    let servers = format!("{},{}", a.addr(), b.addr());
    let out = mclient(&["--servers", &servers, "stats"], b"");
    expect(&out, 0);
    let text = String::from_utf8(out.stdout).expect("stats are text");
    let mut pids = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 3, "{line:?}");
        assert!(fields[0] == a.addr() || fields[0] == b.addr(), "{line:?}");
        if fields[1] == "pid" {
            pids.push((fields[0].to_string(), fields[2].to_string()));
        }
    }
    assert_eq!(
        pids,
        vec![
            (a.addr(), a.pid().to_string()),
            (b.addr(), b.pid().to_string())
        ]
    );
    let out = mclient(&["--servers", &servers, "stats", "settings"], b"");
    expect(&out, 0);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("{}\tmaxbytes\t67108864\n", a.addr())),
        "{text}"
    );

    let out = mclient(&["--servers", &servers, "version"], b"");
    expect(&out, 0);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with(&format!("{}\t1.", a.addr())), "{text}");
    assert!(lines[1].starts_with(&format!("{}\t1.", b.addr())), "{text}");

    expect(&mclient(&["--servers", &servers, "set", "f", "1"], b""), 0);
    let out = mclient(&["--servers", &servers, "flush"], b"");
    expect(&out, 0);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    expect(&mclient(&["--servers", &servers, "get", "f"], b""), 1);

    // A dead server among live ones: the live ones answer, the dead one is one stderr line.
    let dead_port = DeadPort::new();
    let dead = format!("127.0.0.1:{}", dead_port.port());
    let with_dead = format!("{},{dead}", a.addr());
    let out = mclient(&["--servers", &with_dead, "version"], b"");
    expect(&out, 2);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("{}\t", a.addr())));
    assert!(one_error_line(&out).contains(&dead));
}

#[test]
fn a_stalled_server_is_an_error_within_the_timeout() {
    let mc = Memcached::start();
    let s = mc.addr();
    expect(&mclient(&["--servers", &s, "set", "k", "v"], b""), 0);
    mc.stop_and_wait();
    let started = Instant::now();
    let out = mclient(&["--servers", &s, "--timeout-ms", "200", "get", "k"], b"");
    let took = started.elapsed();
    mc.cont();
    expect(&out, 2);
    one_error_line(&out);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn server_list_from_the_environment() {
    let mc = Memcached::start();
    let s = mc.addr();
    let out = mclient_env(&["set", "env", "yes"], b"", &[("MEMCACHE_SERVERS", &s)]);
    expect(&out, 0);
    let out = mclient(&["--servers", &s, "get", "env"], b"");
    assert_eq!(out.stdout, b"yes");
    // --servers wins over the environment.
    let dead_port = DeadPort::new();
    let dead = format!("127.0.0.1:{}", dead_port.port());
    let out = mclient_env(
        &["--servers", &s, "get", "env"],
        b"",
        &[("MEMCACHE_SERVERS", &dead)],
    );
    expect(&out, 0);
}

/// A domain in a namespace of its own (MEMCACHE_SHM_PREFIX), removed when dropped.
struct TestDomain {
    namespace: Namespace,
    prefix: String,
    name: DomainName,
}

impl TestDomain {
    fn create(label: &str, servers: &[&Memcached]) -> TestDomain {
        let prefix = format!("mclient-test-{}-{label}", std::process::id());
        let namespace = Namespace::with_prefix(&prefix).expect("prefix");
        let name = DomainName::parse("web").expect("name");
        let mut writer = namespace.open_writer(&name, true).expect("create domain");
        let entries: Vec<ServerEntry> = servers
            .iter()
            .map(|mc| ServerEntry {
                host: "127.0.0.1".into(),
                port: mc.port(),
                weight: 1,
            })
            .collect();
        writer
            .update(|list| {
                list.servers = entries;
                Ok(())
            })
            .expect("publish list");
        TestDomain {
            namespace,
            prefix,
            name,
        }
    }
}

impl Drop for TestDomain {
    fn drop(&mut self) {
        let _ = self.namespace.destroy(&self.name);
    }
}

#[test]
fn server_list_from_a_domain() {
    let a = Memcached::start();
    let b = Memcached::start();
    let domain = TestDomain::create("dom", &[&a, &b]);
    let env = [("MEMCACHE_SHM_PREFIX", domain.prefix.as_str())];
    for i in 0..10 {
        let key = format!("d{i}");
        let out = mclient_env(&["--domain", "web", "set", &key, "dv"], b"", &env);
        expect(&out, 0);
    }
    // Placed on the domain's servers with the domain's distribution (ketama-md5 by default).
    assert_eq!(a.stat("curr_items") + b.stat("curr_items"), 10);
    let joined = format!("{},{}", a.addr(), b.addr());
    for i in 0..10 {
        let key = format!("d{i}");
        let out = mclient(
            &[
                "--servers",
                &joined,
                "--distribution",
                "ketama-md5",
                "get",
                &key,
            ],
            b"",
        );
        expect(&out, 0);
        assert_eq!(out.stdout, b"dv");
    }
    // MEMCACHE_DOMAIN names it too.
    let env2 = [
        ("MEMCACHE_SHM_PREFIX", domain.prefix.as_str()),
        ("MEMCACHE_DOMAIN", "web"),
    ];
    let out = mclient_env(&["get", "d3"], b"", &env2);
    expect(&out, 0);
    assert_eq!(out.stdout, b"dv");
    // --distribution does not apply to a domain.
    expect(
        &mclient_env(&["--distribution", "crc32-modulo", "get", "d3"], b"", &env2),
        2,
    );

    // A domain that does not exist, and an illegal name: one-line errors.
    let out = mclient_env(&["--domain", "nosuch", "get", "k"], b"", &env);
    expect(&out, 2);
    assert!(one_error_line(&out).contains("nosuch"));
    let out = mclient_env(&["get", "k"], b"", &env);
    expect(&out, 2);
    assert!(one_error_line(&out).contains("default"));
    let out = mclient_env(&["--domain", "../etc", "get", "k"], b"", &env);
    expect(&out, 2);
    one_error_line(&out);
}

// ---- Copies on several servers: -r N ----

/// Which of `servers` hold exactly `value` under `key` (asked one by one, directly).
fn holders(servers: &[&Memcached], key: &str, value: &[u8]) -> Vec<usize> {
    (0..servers.len())
        .filter(|&i| {
            let mut one = Client::new(
                vec![ServerSpec::parse(&servers[i].addr()).unwrap()],
                Distribution::Crc32Modulo,
            )
            .unwrap();
            matches!(one.get(key.as_bytes()), Ok(Some(it)) if it.value == value)
        })
        .collect()
}

#[test]
fn replicas_option_keeps_copies_and_reads_them_while_a_server_is_down() {
    let [a, mut b, c] = [Memcached::start(), Memcached::start(), Memcached::start()];
    let joined = format!("{},{},{}", a.addr(), b.addr(), c.addr());
    let list = [&a, &b, &c];
    for (dist, flag) in [
        (Distribution::Crc32Modulo, "crc32-modulo"),
        (Distribution::KetamaMd5, "ketama-md5"),
    ] {
        let mut placement = Client::new(
            list.iter()
                .map(|m| ServerSpec::parse(&m.addr()).unwrap())
                .collect(),
            dist,
        )
        .unwrap();
        placement.set_replicas(2);
        for i in 0..12 {
            let key = format!("r2:{flag}:{i}");
            let args = ["--servers", &joined, "--distribution", flag, "-r", "2"];
            expect(
                &mclient(&[&args[..], &["set", &key, "two"]].concat(), b""),
                0,
            );
            let mut copies = placement.copies_for(key.as_bytes());
            copies.sort_unstable();
            assert_eq!(holders(&list, &key, b"two"), copies, "{key}");
            // Without -r the value goes to the primary only.
            let key1 = format!("r1:{flag}:{i}");
            let one = ["--servers", &joined, "--distribution", flag];
            expect(
                &mclient(&[&one[..], &["set", &key1, "one"]].concat(), b""),
                0,
            );
            assert_eq!(holders(&list, &key1, b"one").len(), 1, "{key1}");
        }
    }
    // --replicas is the long form; the add rule: the primary's answer.
    let out = mclient(
        &[
            "--servers",
            &joined,
            "--replicas",
            "2",
            "add",
            "r2:crc32-modulo:0",
            "x",
        ],
        b"",
    );
    expect(&out, 1);
    one_error_line(&out);

    // One server down: every key is still read, one at a time and several at once.
    b.kill();
    let keys: Vec<String> = (0..12).map(|i| format!("r2:crc32-modulo:{i}")).collect();
    for key in &keys {
        let out = mclient(&["--servers", &joined, "-r", "2", "get", key], b"");
        expect(&out, 0);
        assert_eq!(out.stdout, b"two");
    }
    let mut args = vec!["--servers", joined.as_str(), "-r", "2", "get"];
    args.extend(keys.iter().map(String::as_str));
    let out = mclient(&args, b"");
    expect(&out, 0);
    assert_eq!(out.stdout, b"two".repeat(keys.len()));
    b.restart();

    // Out of range: a usage error.
    for bad in ["0", "17", "x"] {
        let out = mclient(&["--servers", &joined, "-r", bad, "get", "k"], b"");
        expect(&out, 2);
    }
}

#[test]
fn a_domain_brings_its_replica_count() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let list: Vec<&Memcached> = servers.iter().collect();
    let domain = TestDomain::create("replicas", &list);
    domain
        .namespace
        .open_writer(&domain.name, false)
        .expect("open domain")
        .update(|l| {
            l.replicas = 2;
            Ok(())
        })
        .expect("set replicas");
    let env = [("MEMCACHE_SHM_PREFIX", domain.prefix.as_str())];
    for i in 0..8 {
        let key = format!("dr{i}");
        expect(
            &mclient_env(&["--domain", "web", "set", &key, "dv"], b"", &env),
            0,
        );
        assert_eq!(holders(&list, &key, b"dv").len(), 2, "{key}");
        // -r overrides the domain's count.
        let key1 = format!("dr1-{i}");
        expect(
            &mclient_env(
                &["--domain", "web", "-r", "1", "set", &key1, "dv"],
                b"",
                &env,
            ),
            0,
        );
        assert_eq!(holders(&list, &key1, b"dv").len(), 1, "{key1}");
    }
}
