//! mclient(1) end to end: the built binary against real memcached servers, checking stdout
//! byte for byte, exit statuses and one-line errors.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use memcache::client::{Client, ServerSpec};
use memcache::exit_code::Exit;
use memcache::hash::Distribution;
use memcache::registry::{DomainName, Namespace, ServerEntry};
use support::{fake, DeadPort, FakeServer, Memcached};

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
fn expect(out: &Output, status: Exit) {
    assert_eq!(
        code(out),
        i32::from(status.code()),
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
    expect(&out, Exit::Ok);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let out = mclient(&["--servers", &servers, "get", "bin"], b"");
    expect(&out, Exit::Ok);
    assert_eq!(out.stdout, value);
    assert!(out.stderr.is_empty());

    // Empty stdin stores an empty value; a value argument is taken as is, even with a dash.
    expect(
        &mclient(&["--servers", &servers, "set", "empty"], b""),
        Exit::Ok,
    );
    let out = mclient(&["--servers", &servers, "get", "empty"], b"");
    expect(&out, Exit::Ok);
    assert!(out.stdout.is_empty());
    expect(
        &mclient(&["--servers", &servers, "set", "dash", "-v x"], b"ignored"),
        Exit::Ok,
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
    expect(&out, Exit::Ok);
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
    expect(&mclient(&["--servers", s, "set", "k", "v"], b""), Exit::Ok);
    let hit = mclient(&["--servers", s, "get", "k"], b"");
    expect(&hit, Exit::Ok);
    assert_eq!(hit.stdout, b"v");
    let miss = mclient(&["--servers", s, "get", "nope"], b"");
    expect(&miss, Exit::Miss);
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
        expect(&out, Exit::Miss);
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
        expect(&out, Exit::Ok);
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{args:?}");
    }
    assert_eq!(mclient(&["--servers", s, "get", "k"], b"").stdout, b"<w>");
    expect(&mclient(&["--servers", s, "delete", "k"], b""), Exit::Ok);
    expect(&mclient(&["--servers", s, "get", "k"], b""), Exit::Miss);

    // Errors: status 3 (a usage error 2), one line naming the problem, nothing on stdout.
    let dead_port = DeadPort::new();
    let dead = format!("127.0.0.1:{}", dead_port.port());
    let out = mclient(&["--servers", &dead, "get", "k"], b"");
    expect(&out, Exit::Failed);
    assert!(out.stdout.is_empty());
    let err = one_error_line(&out);
    assert!(err.contains(&dead), "{err}");
    let out = mclient(&["--servers", s, "get", "bad\x01key"], b"");
    expect(&out, Exit::Usage);
    assert!(one_error_line(&out).contains("invalid key"));
    let long = "k".repeat(251);
    expect(
        &mclient(&["--servers", s, "set", &long, "v"], b""),
        Exit::Usage,
    );
    let out = mclient(&["--servers", "host:0", "get", "k"], b"");
    expect(&out, Exit::Failed);
    assert!(one_error_line(&out).contains("host:0"));
    expect(
        &mclient(&["--servers", s, "set", "text", "abc"], b""),
        Exit::Ok,
    );
    let out = mclient(&["--servers", s, "incr", "text"], b"");
    expect(&out, Exit::Failed);
    assert!(one_error_line(&out).contains("non-numeric"));

    // Bad usage is status 2, as in mcadmin; --help and --version are 0 on stdout.
    expect(&mclient(&[], b""), Exit::Usage);
    expect(&mclient(&["--servers", s, "frobnicate"], b""), Exit::Usage);
    expect(
        &mclient(&["--servers", s, "incr", "k", "minus"], b""),
        Exit::Usage,
    );
    expect(
        &mclient(&["--servers", s, "--domain", "x", "get", "k"], b""),
        Exit::Usage,
    );
    expect(
        &mclient(&["--servers", s, "--timeout-ms", "0", "get", "k"], b""),
        Exit::Usage,
    );
    let help = mclient(&["--help"], b"");
    expect(&help, Exit::Ok);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: mclient"), "{text}");
    assert!(
        text.contains("--servers") && text.contains("incr"),
        "{text}"
    );
    expect(&mclient(&["get", "--help"], b""), Exit::Ok);
    let version = mclient(&["--version"], b"");
    expect(&version, Exit::Ok);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("mclient "));
}

#[test]
fn incr_decr_print_the_new_value() {
    let mc = Memcached::start();
    let s = mc.addr();
    expect(
        &mclient(&["--servers", &s, "set", "n", "10"], b""),
        Exit::Ok,
    );
    let out = mclient(&["--servers", &s, "incr", "n", "5"], b"");
    expect(&out, Exit::Ok);
    assert_eq!(out.stdout, b"15\n");
    let out = mclient(&["--servers", &s, "incr", "n"], b"");
    assert_eq!(out.stdout, b"16\n");
    let out = mclient(&["--servers", &s, "decr", "n", "100"], b"");
    expect(&out, Exit::Ok);
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
        expect(&mclient(&["--servers", s, "set", k, v], b""), Exit::Ok);
    }
    // Spread over both servers, as the library's crc32-modulo places them.
    assert!(a.stat("curr_items") > 0 && b.stat("curr_items") > 0);
    let out = mclient(&["--servers", s, "get", "one", "two", "three", "four"], b"");
    expect(&out, Exit::Ok);
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
    expect(&out, Exit::Miss);
    assert_eq!(out.stdout, b"four 0 4\n4444\none 0 1\n1\ntwo 0 2\n22\n");
    assert!(out.stderr.is_empty());
    let out = mclient(&["--servers", s, "get", "--print-keys", "three"], b"");
    assert_eq!(out.stdout, b"three 0 3\n333\n");
}

/// A stand-in for memcached that records each command line and answers a get of any keys with
/// each key as its own value: it shows how many requests a command makes.
fn echo_keys(stream: TcpStream, log: Arc<Mutex<Vec<String>>>) {
    let Some((mut reader, mut out)) = fake::halves(stream) else {
        return;
    };
    for _ in 0..64 {
        let Some(command) = fake::read_line(&mut reader) else {
            return;
        };
        log.lock().unwrap().push(command.clone());
        let mut reply = String::new();
        match command.split_whitespace().collect::<Vec<_>>()[..] {
            ["get", ref keys @ ..] => {
                for key in keys {
                    reply += &format!("VALUE {key} 0 {}\r\n{key}\r\n", key.len());
                }
                reply += "END\r\n";
            }
            _ => reply += "ERROR\r\n",
        }
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// `get` and `exists` of several keys send one request per server, holding every key the
/// server has, not one request per key; the values still come out in the order asked.
#[test]
fn several_keys_are_one_request_per_server() {
    let a = FakeServer::<Vec<String>>::start(echo_keys);
    let b = FakeServer::<Vec<String>>::start(echo_keys);
    let servers = format!("127.0.0.1:{},127.0.0.1:{}", a.port, b.port);
    let keys: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    for command in ["get", "exists"] {
        a.log.lock().unwrap().clear();
        b.log.lock().unwrap().clear();
        let mut args = vec!["--servers", servers.as_str(), command];
        args.extend(keys.iter().map(String::as_str));
        let out = mclient(&args, b"");
        expect(&out, Exit::Ok);
        let shown = if command == "get" {
            keys.concat()
        } else {
            String::new()
        };
        assert_eq!(String::from_utf8_lossy(&out.stdout), shown);
        let (sent_a, sent_b) = (a.log.lock().unwrap().clone(), b.log.lock().unwrap().clone());
        assert!(
            sent_a.len() == 1 && sent_b.len() == 1,
            "{command}: one request per server, got {sent_a:?} and {sent_b:?}"
        );
        let mut asked: Vec<&str> = [&sent_a[0], &sent_b[0]]
            .iter()
            .flat_map(|line| line.split_whitespace().skip(1))
            .collect();
        asked.sort_unstable();
        let mut expected: Vec<&str> = keys.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(asked, expected, "{command}: every key asked once");
    }
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
            expect(&mclient(&args, b""), Exit::Ok);
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
    expect(&out, Exit::Ok);
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
    expect(&out, Exit::Ok);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("{}\tmaxbytes\t67108864\n", a.addr())),
        "{text}"
    );

    let out = mclient(&["--servers", &servers, "version"], b"");
    expect(&out, Exit::Ok);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with(&format!("{}\t1.", a.addr())), "{text}");
    assert!(lines[1].starts_with(&format!("{}\t1.", b.addr())), "{text}");

    expect(
        &mclient(&["--servers", &servers, "set", "f", "1"], b""),
        Exit::Ok,
    );
    let out = mclient(&["--servers", &servers, "flush"], b"");
    expect(&out, Exit::Ok);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    expect(
        &mclient(&["--servers", &servers, "get", "f"], b""),
        Exit::Miss,
    );

    // A dead server among live ones: the live ones answer, the dead one is one stderr line.
    let dead_port = DeadPort::new();
    let dead = format!("127.0.0.1:{}", dead_port.port());
    let with_dead = format!("{},{dead}", a.addr());
    let out = mclient(&["--servers", &with_dead, "version"], b"");
    expect(&out, Exit::Failed);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("{}\t", a.addr())));
    assert!(one_error_line(&out).contains(&dead));
}

#[test]
fn a_stalled_server_is_an_error_within_the_timeout() {
    let mc = Memcached::start();
    let s = mc.addr();
    expect(&mclient(&["--servers", &s, "set", "k", "v"], b""), Exit::Ok);
    mc.stop_and_wait();
    let started = Instant::now();
    let out = mclient(&["--servers", &s, "--timeout-ms", "200", "get", "k"], b"");
    let took = started.elapsed();
    mc.cont();
    expect(&out, Exit::Failed);
    one_error_line(&out);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn server_list_from_the_environment() {
    let mc = Memcached::start();
    let s = mc.addr();
    let out = mclient_env(&["set", "env", "yes"], b"", &[("MEMCACHE_SERVERS", &s)]);
    expect(&out, Exit::Ok);
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
    expect(&out, Exit::Ok);
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
                tls: false,
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
        expect(&out, Exit::Ok);
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
        expect(&out, Exit::Ok);
        assert_eq!(out.stdout, b"dv");
    }
    // MEMCACHE_DOMAIN names it too.
    let env2 = [
        ("MEMCACHE_SHM_PREFIX", domain.prefix.as_str()),
        ("MEMCACHE_DOMAIN", "web"),
    ];
    let out = mclient_env(&["get", "d3"], b"", &env2);
    expect(&out, Exit::Ok);
    assert_eq!(out.stdout, b"dv");
    // --distribution does not apply to a domain.
    expect(
        &mclient_env(&["--distribution", "crc32-modulo", "get", "d3"], b"", &env2),
        Exit::Usage,
    );

    // A domain that does not exist, and an illegal name: one-line errors.
    let out = mclient_env(&["--domain", "nosuch", "get", "k"], b"", &env);
    expect(&out, Exit::Failed);
    assert!(one_error_line(&out).contains("nosuch"));
    let out = mclient_env(&["get", "k"], b"", &env);
    expect(&out, Exit::Failed);
    assert!(one_error_line(&out).contains("default"));
    let out = mclient_env(&["--domain", "../etc", "get", "k"], b"", &env);
    expect(&out, Exit::Failed);
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
                Exit::Ok,
            );
            let mut copies = placement.copies_for(key.as_bytes());
            copies.sort_unstable();
            assert_eq!(holders(&list, &key, b"two"), copies, "{key}");
            // Without -r the value goes to the primary only.
            let key1 = format!("r1:{flag}:{i}");
            let one = ["--servers", &joined, "--distribution", flag];
            expect(
                &mclient(&[&one[..], &["set", &key1, "one"]].concat(), b""),
                Exit::Ok,
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
    expect(&out, Exit::Miss);
    one_error_line(&out);

    // One server down: every key is still read, one at a time and several at once.
    b.kill();
    let keys: Vec<String> = (0..12).map(|i| format!("r2:crc32-modulo:{i}")).collect();
    for key in &keys {
        let out = mclient(&["--servers", &joined, "-r", "2", "get", key], b"");
        expect(&out, Exit::Ok);
        assert_eq!(out.stdout, b"two");
    }
    let mut args = vec!["--servers", joined.as_str(), "-r", "2", "get"];
    args.extend(keys.iter().map(String::as_str));
    let out = mclient(&args, b"");
    expect(&out, Exit::Ok);
    assert_eq!(out.stdout, b"two".repeat(keys.len()));
    b.restart();

    // Out of range: a usage error.
    for bad in ["0", "17", "x"] {
        let out = mclient(&["--servers", &joined, "-r", bad, "get", "k"], b"");
        expect(&out, Exit::Usage);
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
            Exit::Ok,
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
            Exit::Ok,
        );
        assert_eq!(holders(&list, &key1, b"dv").len(), 1, "{key1}");
    }
}

// ---- For scripts: formats a script can split, the commands of libmemcached-tools, bench ----

/// Splits `KEY FLAGS BYTES[ CAS]\n<bytes>\n` records: (key, header numbers, value).
fn split_records(mut out: &[u8]) -> Vec<(String, Vec<u64>, Vec<u8>)> {
    let mut records = Vec::new();
    while !out.is_empty() {
        let end = out.iter().position(|&b| b == b'\n').expect("a header line");
        let header = String::from_utf8(out[..end].to_vec()).expect("a text header");
        let mut fields = header.split(' ');
        let key = fields.next().unwrap().to_string();
        let numbers: Vec<u64> = fields.map(|f| f.parse().expect("a number")).collect();
        let len = numbers[1] as usize;
        let value = out[end + 1..end + 1 + len].to_vec();
        assert_eq!(
            out[end + 1 + len],
            b'\n',
            "a newline after the value of {key}"
        );
        records.push((key, numbers, value));
        out = &out[end + 2 + len..];
    }
    records
}

#[test]
fn several_values_split_whatever_their_bytes() {
    let a = Memcached::start();
    let b = Memcached::start();
    let servers = format!("{},{}", a.addr(), b.addr());
    let s = servers.as_str();
    // Values that would fool a line-based reader: newlines, a fake header, NULs, invalid UTF-8.
    let values: [(&str, &[u8], &str); 4] = [
        ("nl", b"one\ntwo\n", "7"),
        ("fake", b"\nother 0 3\nabc", "0"),
        ("nul", b"\0\0\xff\xfe", "4294967295"),
        ("empty", b"", "1"),
    ];
    for (key, value, flags) in values {
        expect(
            &mclient(&["--servers", s, "--flags", flags, "set", key], value),
            Exit::Ok,
        );
    }
    let out = mclient(
        &[
            "--servers",
            s,
            "get",
            "--print-keys",
            "nl",
            "gone",
            "fake",
            "nul",
            "empty",
        ],
        b"",
    );
    expect(&out, Exit::Miss);
    let records = split_records(&out.stdout);
    let expected: Vec<(String, Vec<u64>, Vec<u8>)> = values
        .iter()
        .map(|(k, v, f)| {
            (
                k.to_string(),
                vec![f.parse().unwrap(), v.len() as u64],
                v.to_vec(),
            )
        })
        .collect();
    assert_eq!(records, expected);

    // JSON Lines: one object per key asked, in order; UTF-8 values as strings, others base64.
    let out = mclient(&["--servers", s, "get", "--json", "nl", "gone", "nul"], b"");
    expect(&out, Exit::Miss);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"key\":\"nl\",\"found\":true,\"flags\":7,\"bytes\":8,\"value\":\"one\\ntwo\\n\"}\n\
         {\"key\":\"gone\",\"found\":false}\n\
         {\"key\":\"nul\",\"found\":true,\"flags\":4294967295,\"bytes\":4,\"value_base64\":\"AAD//g==\"}\n"
    );
    let out = mclient(&["--servers", s, "--json", "get", "empty"], b"");
    expect(&out, Exit::Ok);
    assert_eq!(
        out.stdout,
        b"{\"key\":\"empty\",\"found\":true,\"flags\":1,\"bytes\":0,\"value\":\"\"}\n"
    );
}

#[test]
fn exists_delete_and_touch_take_several_keys() {
    let mc = Memcached::start();
    let s = mc.addr();
    for k in ["x", "y", "z"] {
        expect(&mclient(&["--servers", &s, "set", k, "v"], b""), Exit::Ok);
    }
    let out = mclient(&["--servers", &s, "exists", "x", "y"], b"");
    expect(&out, Exit::Ok);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let out = mclient(&["--servers", &s, "exists", "x", "nope", "y"], b"");
    expect(&out, Exit::Miss);
    assert_eq!(stderr(&out), "mclient: nope: not found\n");
    let out = mclient(&["--servers", &s, "--json", "exists", "x", "nope"], b"");
    assert_eq!(
        out.stdout,
        b"{\"key\":\"x\",\"exists\":true}\n{\"key\":\"nope\",\"exists\":false}\n"
    );

    // touch: every key that exists gets the expiry; a missing one is a note and status 1.
    let out = mclient(
        &[
            "--servers",
            &s,
            "--exptime",
            "1000",
            "touch",
            "x",
            "gone",
            "y",
        ],
        b"",
    );
    expect(&out, Exit::Miss);
    assert_eq!(stderr(&out), "mclient: gone: not found\n");
    let out = mclient(&["--servers", &s, "--json", "touch", "x", "gone"], b"");
    assert_eq!(
        out.stdout,
        b"{\"key\":\"x\",\"touched\":true}\n{\"key\":\"gone\",\"touched\":false}\n"
    );

    // delete: all the keys that exist are deleted even when one is missing.
    let out = mclient(&["--servers", &s, "delete", "x", "gone", "y"], b"");
    expect(&out, Exit::Miss);
    assert_eq!(stderr(&out), "mclient: gone: not found\n");
    expect(&mclient(&["--servers", &s, "exists", "x"], b""), Exit::Miss);
    expect(&mclient(&["--servers", &s, "exists", "y"], b""), Exit::Miss);
    let out = mclient(&["--servers", &s, "--json", "delete", "z"], b"");
    expect(&out, Exit::Ok);
    assert_eq!(out.stdout, b"{\"key\":\"z\",\"deleted\":true}\n");

    // A bad key among several is a usage error before anything is changed.
    expect(&mclient(&["--servers", &s, "set", "w", "v"], b""), Exit::Ok);
    let out = mclient(&["--servers", &s, "delete", "w", "bad\x01key"], b"");
    expect(&out, Exit::Usage);
    expect(&mclient(&["--servers", &s, "exists", "w"], b""), Exit::Ok);
}

#[test]
fn gets_and_cas() {
    let mc = Memcached::start();
    let s = mc.addr();
    expect(
        &mclient(&["--servers", &s, "--flags", "3", "set", "c", "v1"], b""),
        Exit::Ok,
    );
    let out = mclient(&["--servers", &s, "gets", "c", "none"], b"");
    expect(&out, Exit::Miss);
    let records = split_records(&out.stdout);
    assert_eq!(records.len(), 1);
    let (key, numbers, value) = &records[0];
    assert_eq!((key.as_str(), value.as_slice()), ("c", &b"v1"[..]));
    assert_eq!(numbers.len(), 3, "KEY FLAGS BYTES CAS");
    assert_eq!(&numbers[..2], &[3, 2]);
    let unique = numbers[2].to_string();

    // The cas of a value that changed since is refused (status 1, "exists"); the current one
    // stores, with the value from standard input.
    expect(
        &mclient(&["--servers", &s, "set", "c", "v2"], b""),
        Exit::Ok,
    );
    let out = mclient(&["--servers", &s, "cas", "c", &unique, "v3"], b"");
    expect(&out, Exit::Miss);
    assert!(one_error_line(&out).contains("exists"));
    let out = mclient(&["--servers", &s, "--json", "gets", "c"], b"");
    let text = String::from_utf8(out.stdout).unwrap();
    let current = text
        .trim_end()
        .rsplit_once("\"cas\":")
        .map(|(_, n)| n.trim_end_matches('}').to_string())
        .expect("a cas field");
    assert!(
        text.starts_with("{\"key\":\"c\",\"found\":true,\"flags\":0,\"bytes\":2,\"value\":\"v2\""),
        "{text}"
    );
    assert_ne!(current, unique);
    let out = mclient(&["--servers", &s, "--json", "cas", "c", &current], b"v3");
    expect(&out, Exit::Ok);
    assert_eq!(out.stdout, b"{\"key\":\"c\",\"stored\":true}\n");
    assert_eq!(mclient(&["--servers", &s, "get", "c"], b"").stdout, b"v3");
    let out = mclient(
        &["--servers", &s, "--json", "cas", "missing", "1", "x"],
        b"",
    );
    expect(&out, Exit::Miss);
    assert_eq!(
        out.stdout,
        b"{\"key\":\"missing\",\"stored\":false,\"reason\":\"not_found\"}\n"
    );
    expect(
        &mclient(&["--servers", &s, "cas", "c", "notanumber", "x"], b""),
        Exit::Usage,
    );
}

#[test]
fn ping_tells_which_servers_answer() {
    let a = Memcached::start();
    let b = Memcached::start();
    let both = format!("{},{}", a.addr(), b.addr());
    let out = mclient(&["--servers", &both, "ping"], b"");
    expect(&out, Exit::Ok);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (fields, mc) in lines.iter().zip([&a, &b]) {
        assert_eq!(fields.len(), 3, "{text}");
        assert_eq!(fields[0], mc.addr());
        assert!(fields[1].starts_with("1."), "{text}");
        let ms: f64 = fields[2].parse().expect("milliseconds");
        assert!(ms >= 0.0, "{text}");
    }

    let dead_port = DeadPort::new();
    let dead = format!("127.0.0.1:{}", dead_port.port());
    let with_dead = format!("{},{dead}", a.addr());
    let out = mclient(&["--servers", &with_dead, "--json", "ping"], b"");
    expect(&out, Exit::Failed);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let prefix = format!("{{\"server\":\"{}\",\"version\":\"1.", a.addr());
    assert!(
        text.starts_with(&prefix) && text.lines().count() == 1,
        "{text}"
    );
    assert!(text.contains(",\"ms\":"), "{text}");
    assert!(one_error_line(&out).contains(&dead));
}

#[test]
fn json_on_every_command_that_prints() {
    let mc = Memcached::start();
    let s = mc.addr();
    let run = |args: &[&str]| {
        let mut all = vec!["--servers", s.as_str(), "--json"];
        all.extend_from_slice(args);
        let out = mclient(&all, b"");
        expect(&out, Exit::Ok);
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        run(&["set", "n", "41"]),
        "{\"key\":\"n\",\"stored\":true}\n"
    );
    assert_eq!(run(&["incr", "n"]), "{\"key\":\"n\",\"value\":42}\n");
    assert_eq!(run(&["decr", "n", "2"]), "{\"key\":\"n\",\"value\":40}\n");
    let out = mclient(&["--servers", &s, "--json", "add", "n", "x"], b"");
    expect(&out, Exit::Miss);
    assert_eq!(
        out.stdout,
        b"{\"key\":\"n\",\"stored\":false,\"reason\":\"not_stored\"}\n"
    );
    let version = run(&["version"]);
    assert!(
        version.starts_with(&format!("{{\"server\":\"{s}\",\"version\":\"1.")),
        "{version}"
    );
    let stats = run(&["stats"]);
    let pid = format!("\"pid\":\"{}\"", mc.pid());
    assert!(
        stats.starts_with(&format!("{{\"server\":\"{s}\",\"stats\":{{")) && stats.contains(&pid),
        "{stats}"
    );
    assert_eq!(stats.lines().count(), 1);
    assert_eq!(
        run(&["flush"]),
        format!("{{\"server\":\"{s}\",\"flushed\":true}}\n")
    );
}

/// The numbers of a bench JSON line: `"name":value` pairs whose value is a number.
fn json_number(line: &str, name: &str) -> f64 {
    let at = line
        .find(&format!("\"{name}\":"))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    let rest = &line[at + name.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{name} in {line}"))
}

#[test]
fn bench_reports_rates_and_percentiles_per_operation() {
    let a = Memcached::start();
    let b = Memcached::start();
    let both = format!("{},{}", a.addr(), b.addr());
    let out = mclient(
        &[
            "--servers",
            &both,
            "bench",
            "--duration",
            "1",
            "--threads",
            "2",
            "--keys",
            "200",
            "--mix",
            "get=8,set=1,delete=1",
        ],
        b"",
    );
    expect(&out, Exit::Ok);
    // Standard error is not a terminal here: no progress line.
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].starts_with(
        "mclient bench: 2 threads, 200 keys, 100-byte values, mix get=8,set=1,delete=1, "
    ));
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "op", "ops", "ops/s", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "misses",
            "errors"
        ]
    );
    let mut sum = 0;
    for (line, op) in lines[2..].iter().zip(["get", "set", "delete", "total"]) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 10, "{line}");
        assert_eq!(f[0], op);
        let ops: u64 = f[1].parse().unwrap();
        let p: Vec<f64> = f[3..8].iter().map(|v| v.parse().unwrap()).collect();
        assert!(ops > 0, "{line}");
        assert!(
            p.windows(2).all(|w| w[0] <= w[1]),
            "percentiles in order: {line}"
        );
        assert_eq!(f[9], "0", "no errors: {line}");
        if op == "total" {
            assert_eq!(ops, sum, "the operations add up: {text}");
        } else {
            sum += ops;
        }
    }
    // Both servers carried the load.
    assert!(a.stat("cmd_get") > 0 && b.stat("cmd_get") > 0);
}

#[test]
fn bench_json_counts_add_up_to_the_operations_asked() {
    let mc = Memcached::start();
    let s = mc.addr();
    let out = mclient(
        &[
            "--servers",
            &s,
            "--json",
            "bench",
            "--ops",
            "900",
            "--threads",
            "3",
            "--keys",
            "50",
            "--mix",
            "get=1,set=1,touch=1",
            "--value-size",
            "10",
        ],
        b"",
    );
    expect(&out, Exit::Ok);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let mut sum = 0.0;
    for (line, op) in lines.iter().zip(["get", "set", "touch", "total"]) {
        assert!(
            line.starts_with(&format!("{{\"op\":\"{op}\",\"ops\":")),
            "{line}"
        );
        for field in [
            "ops_per_sec",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us",
            "misses",
        ] {
            assert!(json_number(line, field) >= 0.0, "{line}");
        }
        assert_eq!(json_number(line, "errors"), 0.0, "{line}");
        if op != "total" {
            sum += json_number(line, "ops");
        }
    }
    assert_eq!(sum, 900.0, "{text}");
    assert_eq!(json_number(lines[3], "ops"), 900.0);
    assert_eq!(json_number(lines[3], "threads"), 3.0);
    // Every key was stored before measuring: gets hit.
    assert_eq!(json_number(lines[0], "misses"), 0.0, "{text}");

    // Failing operations are counted, reported on stderr and make the status 3.
    let dead_port = DeadPort::new();
    let dead = format!("127.0.0.1:{}", dead_port.port());
    let out = mclient(&["--servers", &dead, "--json", "bench", "--ops", "20"], b"");
    expect(&out, Exit::Failed);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let total = text.lines().last().unwrap();
    assert_eq!(json_number(total, "errors"), 20.0, "{text}");
    assert!(one_error_line(&out).contains("20 operations failed"));
    // Bad arguments are usage errors.
    for bad in [
        &["--mix", "get=0"][..],
        &["--duration", "0"],
        &["--keys", "0"],
        &["--key-prefix", "a b"],
    ] {
        let mut args = vec!["--servers", s.as_str(), "bench", "--ops", "1"];
        args.extend_from_slice(bad);
        expect(&mclient(&args, b""), Exit::Usage);
    }
}

/// On a terminal (a pseudo-terminal from script(1)), bench rewrites a progress line on standard
/// error and clears it at the end; the report still goes to standard output alone.
#[test]
fn bench_shows_progress_only_on_a_terminal() {
    let mc = Memcached::start();
    let dir = support::temp_dir("bench-tty");
    let report = dir.join("report");
    let out = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg("\"$MCLIENT\" --servers \"$SERVERS\" bench --duration 0.3 --keys 10 >\"$REPORT\"")
        .arg("/dev/null")
        .env("MCLIENT", env!("CARGO_BIN_EXE_mclient"))
        .env("SERVERS", mc.addr())
        .env("REPORT", &report)
        .stdin(Stdio::null())
        .output()
        .expect("script(1), from util-linux");
    assert!(out.status.success(), "{out:?}");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(
        tty.starts_with("\r\x1b[Kbench: ") && tty.contains(" ops/s") && tty.ends_with("\r\x1b[K"),
        "{tty:?}"
    );
    let report = std::fs::read_to_string(&report).expect("the report");
    assert!(
        report.starts_with("mclient bench: 1 thread, 10 keys"),
        "{report}"
    );
    assert!(!report.contains('\r'), "{report:?}");
}

/// `load` (issue 16): "KEY VALUE" lines and `get --print-keys` records stored with bulk calls,
/// more keys than one batch, and what was not stored named.
#[test]
fn load_lines_and_records() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let servers = format!("{},{}", a.addr(), b.addr());
    let mut lines = Vec::new();
    for i in 0..2500 {
        lines.extend_from_slice(format!("line-{i} value {i} with spaces\n").as_bytes());
    }
    let out = mclient(&["--servers", &servers, "load"], &lines);
    expect(&out, Exit::Ok);
    assert!(
        stderr(&out).contains("2500 stored, 0 not stored, 0 failed"),
        "{}",
        stderr(&out)
    );
    let got = mclient(&["--servers", &servers, "get", "line-0", "line-2499"], b"");
    assert_eq!(got.stdout, b"value 0 with spacesvalue 2499 with spaces");

    // A dump of some keys (binary values, flags) loads back byte-exact as other keys.
    let value = b"two\nlines\0\r\n".to_vec();
    expect(
        &mclient(
            &["--servers", &servers, "--flags", "9", "set", "orig"],
            &value,
        ),
        Exit::Ok,
    );
    let dump = mclient(
        &[
            "--servers",
            &servers,
            "get",
            "--print-keys",
            "orig",
            "line-7",
        ],
        b"",
    );
    expect(&dump, Exit::Ok);
    let renamed = String::from_utf8_lossy(&dump.stdout)
        .replace("orig 9 ", "copy 9 ")
        .replace("line-7 0 ", "copy7 0 ");
    let out = mclient(
        &["--servers", &servers, "load", "--records"],
        renamed.as_bytes(),
    );
    expect(&out, Exit::Ok);
    let back = mclient(&["--servers", &servers, "get", "--print-keys", "copy"], b"");
    let mut expected = b"copy 9 12\n".to_vec();
    expected.extend_from_slice(&value);
    expected.push(b'\n');
    assert_eq!(back.stdout, expected);

    // --add: the keys that exist are named, the status says some were not stored.
    let out = mclient(
        &["--servers", &servers, "load", "--add"],
        b"line-1 x\nfresh y\n",
    );
    expect(&out, Exit::Miss);
    assert!(
        stderr(&out).contains("line-1: not stored"),
        "{}",
        stderr(&out)
    );
    let got = mclient(&["--servers", &servers, "get", "fresh", "line-1"], b"");
    assert_eq!(got.stdout, b"yvalue 1 with spaces");

    // Bad input stops before anything of its batch is sent.
    let out = mclient(&["--servers", &servers, "load"], b"good 1\nno-value-here\n");
    expect(&out, Exit::Usage);
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
    let out = mclient(
        &["--servers", &servers, "load", "--records"],
        b"k 0 10\nshort\n",
    );
    expect(&out, Exit::Usage);
    let got = mclient(&["--servers", &servers, "get", "good"], b"");
    expect(&got, Exit::Miss);
}
