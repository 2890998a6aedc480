//! Runs the C programs of `capi-tests/` against the installed library (`make test` installs it
//! and sets `LIBMEMCACHE_PREFIX`). Each test starts its own memcached servers, so the tests are
//! independent and run in parallel. Every program must exit with status 0 and leave stdout
//! empty (spec D10: the library never writes to stdout, and the programs print only to stderr).

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::*;

/// Environment naming the servers the way the C programs read it: MC_HOST, MC_PORT, MC_PORT2...
fn server_env(servers: &[&Memcached]) -> Vec<(&'static str, String)> {
    const NAMES: [&str; 3] = ["MC_PORT", "MC_PORT2", "MC_PORT3"];
    let mut env = vec![("MC_HOST", "127.0.0.1".to_string())];
    for (name, mc) in NAMES.iter().zip(servers) {
        env.push((name, mc.port().to_string()));
    }
    env
}

/// Compiles and runs one program; it must succeed and print nothing on stdout.
fn run_program(name: &str, extra_flags: &[&str], env: &[(&str, String)]) -> COutput {
    let bin = compile_capi(name, extra_flags);
    let out = run_c(&bin, env);
    out.assert_success().assert_stdout_empty();
    out
}

#[test]
fn layout() {
    run_program("layout", &[], &[]);
}

/// The header in strict ISO mode: the u_int*_t aliases, fd_set, the TAILQ macros and every
/// declaration must compile without GNU extensions (spec §2.1).
#[test]
fn layout_strict_iso() {
    run_program("layout", &["-std=c99", "-pedantic"], &[]);
}

/// Reports read like 1.4's: the C function's name, the errno of a failed connect, read or
/// write, and a refused key not called a protocol error (issue 11).
#[test]
fn report_fidelity() {
    let mc = Memcached::start();
    let shm = ShmPrefix::new("fidelity");
    let mut env = server_env(&[&mc]);
    env.push(shm.env());
    run_program("report_fidelity", &["-lpthread"], &env);
}

#[test]
fn symbols() {
    run_program("symbols", &[], &[]);
}

#[test]
fn strings() {
    run_program("strings", &[], &[]);
}

#[test]
fn version_hash() {
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    run_program("version_hash", &[], &server_env(&[&a, &b, &c]));
}

#[test]
fn store_fetch() {
    let mc = Memcached::start();
    run_program("store_fetch", &[], &server_env(&[&mc]));
}

/// mc_bulk() (issue 16): a result per item, over three servers.
#[test]
fn bulk() {
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    run_program("bulk", &["-lpthread"], &server_env(&[&a, &b, &c]));
}

#[test]
fn request() {
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    run_program("request", &[], &server_env(&[&a, &b, &c]));
}

#[test]
fn servers() {
    let tcp = Memcached::start();
    let dir = temp_dir("servers");
    let unix = Memcached::start_unix(&dir.join("mc.sock"));
    let mut env = server_env(&[&tcp]);
    env.push(("MC_SOCK", unix.socket_path().to_string_lossy().into_owned()));
    run_program("servers", &[], &env);
}

/// The error pipeline; then the default handler's lines on stderr (spec §6.3, D10). All
/// problems are collected, so a failing program does not hide a wrong line format.
#[test]
fn errors() {
    let mc = Memcached::start();
    let bin = compile_capi("errors", &[]);
    let out = run_c(&bin, &server_env(&[&mc]));
    let lines: Vec<&str> = out.stderr.lines().collect();
    let count = |level: &str, matches: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .filter(|l| default_handler_line(l, level).is_some_and(matches))
            .count()
    };
    let mut problems = Vec::new();
    if !out.status.success() {
        problems.push(format!("the program failed: {}", out.status));
    }
    if !out.stdout.is_empty() {
        problems.push(format!("stdout is not empty (D10): {:?}", out.stdout));
    }
    let expected: [(&str, &str, bool); 5] = [
        // (level, text, whole tail after "] " must equal text)
        ("NOTICE", "unable to store value", false),
        (
            "WARN",
            ": internal memcache(3) test message: per-error message specific to this line of code",
            false,
        ),
        (
            "ERROR",
            "errors_probe():4242: unable to store value: Broken pipe: probe-msg",
            true,
        ),
        (
            "FATAL",
            "errors_probe():4243: internal memcache(3) test message",
            true,
        ),
        (
            "INFO",
            "errors_probe():4244: connection re-established with server: info-msg",
            true,
        ),
    ];
    for (level, text, exact) in expected {
        let n = count(level, &|tail| {
            if exact {
                tail == text
            } else {
                tail.contains(text)
            }
        });
        if n != 1 {
            problems.push(format!(
                "expected one [{level}@...] line with {text:?}, found {n}"
            ));
        }
    }
    if out.stderr.contains("filtered-msg") {
        problems.push("a report of a filtered level was printed".to_string());
    }
    assert!(
        problems.is_empty(),
        "{}\n--- stderr ---\n{}",
        problems.join("\n"),
        out.stderr
    );
}

/// If `line` is `[LEVEL@SEC.USEC] rest`, returns `rest`.
fn default_handler_line<'a>(line: &'a str, level: &str) -> Option<&'a str> {
    let rest = line
        .strip_prefix('[')?
        .strip_prefix(level)?
        .strip_prefix('@')?;
    let (stamp, tail) = rest.split_once("] ")?;
    let (sec, usec) = stamp.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(sec) && digits(usec)).then_some(tail)
}

/// Counters of the server that must see no command from the invalid-key program.
const QUIET_COUNTERS: [&str; 13] = [
    "cmd_get",
    "cmd_set",
    "cmd_touch",
    "cmd_flush",
    "get_hits",
    "get_misses",
    "delete_hits",
    "delete_misses",
    "incr_hits",
    "incr_misses",
    "decr_hits",
    "decr_misses",
    "curr_items",
];

fn quiet_counters(stats: &HashMap<String, String>) -> Vec<(String, String)> {
    QUIET_COUNTERS
        .iter()
        .map(|&name| {
            (
                name.to_string(),
                stats.get(name).cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn bytes_read(stats: &HashMap<String, String>) -> u64 {
    stats["bytes_read"].parse().expect("bytes_read is a number")
}

/// Invalid keys never reach the server (D2): the quiet server's counters are unchanged and it
/// read no byte other than our own `stats` requests.
#[test]
fn keys() {
    let (quiet, busy) = (Memcached::start(), Memcached::start());
    let s0 = quiet.stats();
    let s1 = quiet.stats();
    // What one `stats` request itself adds to bytes_read.
    let per_stats = bytes_read(&s1) - bytes_read(&s0);
    let out = run_program("keys", &[], &server_env(&[&quiet, &busy]));
    let s2 = quiet.stats();
    assert_eq!(
        quiet_counters(&s1),
        quiet_counters(&s2),
        "the server saw commands for invalid keys\n--- stderr ---\n{}",
        out.stderr
    );
    assert_eq!(
        bytes_read(&s2) - bytes_read(&s1),
        per_stats,
        "the server received bytes from the invalid-key program"
    );
}

/// A TCP server that accepts connections, reads once (up to 64 KiB, 100 ms) and closes them:
/// unread data makes the kernel send a reset.
struct DroppingServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl DroppingServer {
    fn start() -> DroppingServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind dropping server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local_addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
                        let mut buf = [0u8; 65536];
                        let _ = stream.read(&mut buf);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        DroppingServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DroppingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits for the program's handshake file; on failure shows the program's output.
fn await_file(proc: &mut Option<CProcess>, dir: &Path, name: &str) {
    let p = proc.as_mut().expect("program running");
    if let Err(e) = wait_for_file(&dir.join(name), p, Duration::from_secs(40)) {
        let out = proc.take().expect("program running").wait();
        panic!(
            "{e} ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status, out.stdout, out.stderr
        );
    }
}

#[test]
fn faults() {
    let mut first = Memcached::start();
    let second = Memcached::start();
    let dropping = DroppingServer::start();
    let dead = DeadPort::new();
    let sync = temp_dir("faults-sync");
    let mut env = server_env(&[&first, &second]);
    env.push(("MC_PID", first.pid().to_string()));
    env.push(("MC_PID2", second.pid().to_string()));
    env.push(("MC_DEAD_PORT", dead.port().to_string()));
    env.push(("MC_RESET_PORT", dropping.port.to_string()));
    env.push(("MC_SYNC_DIR", sync.to_string_lossy().into_owned()));
    let bin = compile_capi("faults", &[]);
    let mut proc = Some(spawn_c(&bin, &env));

    await_file(&mut proc, &sync, "ready1");
    first.kill();
    std::fs::write(sync.join("go1"), b"").expect("create go1");
    await_file(&mut proc, &sync, "ready2");
    first.restart();
    std::fs::write(sync.join("go2"), b"").expect("create go2");

    let out = proc.take().expect("program running").wait();
    out.assert_success().assert_stdout_empty();
}

// The fake server for `protocol.c` (see the script there) records every command that arrives
// on a connection after it sent an unexpected reply: the library must close such a connection
// (spec D1).

/// Serves one connection of the fake server until the client closes it.
fn fake_connection(stream: TcpStream, reused: Arc<Mutex<Vec<String>>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    let mut errored = false;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_string();
        if errored {
            reused.lock().unwrap().push(command.clone());
        }
        let words: Vec<&str> = command.split(' ').collect();
        let (reply, unexpected, close): (String, bool, bool) = match words.as_slice() {
            ["get", keys @ ..] => {
                let mut reply = String::new();
                let (mut unexpected, mut close) = (false, false);
                for key in keys {
                    match *key {
                        "good" => reply.push_str("VALUE good 7 2\r\nok\r\n"),
                        "alien" => {
                            reply.push_str("VALUE notrequested 0 1\r\nx\r\n");
                            unexpected = true;
                        }
                        "garbage" => {
                            reply.push_str("HELLO THERE\r\n");
                            unexpected = true;
                        }
                        "short" => {
                            reply.push_str("VALUE short 0 10\r\nabc");
                            close = true;
                        }
                        // An END nobody asked for after the reply's own, in the same write.
                        "strayend" => unexpected = true,
                        _ => {}
                    }
                }
                if !close {
                    reply.push_str("END\r\n");
                }
                if keys.contains(&"strayend") {
                    reply.push_str("END\r\n");
                }
                (reply, unexpected, close)
            }
            [cmd, key, _flags, _exp, bytes] if ["set", "add", "replace"].contains(cmd) => {
                let n: usize = bytes.parse().unwrap_or(0);
                let mut data = vec![0u8; n + 2];
                if reader.read_exact(&mut data).is_err() {
                    return;
                }
                match *key {
                    "weird" => ("GARBAGE\r\n".into(), true, false),
                    "servererr" => (
                        "SERVER_ERROR out of memory storing object\r\n".into(),
                        false,
                        false,
                    ),
                    // A reply and bytes nobody asked for, in the same write: a client that
                    // reuses the connection reads this END as the answer to its next get.
                    "stray" => ("STORED\r\nEND\r\n".into(), true, false),
                    // The same bytes sent a moment after the reply, once the client has read it:
                    // only a look at the socket before reuse sees them.
                    "straylate" => {
                        if writer.write_all(b"STORED\r\n").is_err() {
                            return;
                        }
                        thread::sleep(Duration::from_millis(50));
                        ("END\r\n".into(), true, false)
                    }
                    _ => ("STORED\r\n".into(), false, false),
                }
            }
            ["incr" | "decr", key, _] => match *key {
                // A well-formed reply: reusing the connection afterwards is harmless, so it is
                // not counted as unexpected here (the report is still required).
                "text" => (
                    "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n".into(),
                    false,
                    false,
                ),
                "num" => ("42\r\n".into(), false, false),
                "huge" => ("18446744073709551615\r\n".into(), false, false),
                _ => ("NOT_FOUND\r\n".into(), false, false),
            },
            ["delete", "weird", ..] => ("WHAT\r\n".into(), true, false),
            ["delete", ..] => ("DELETED\r\n".into(), false, false),
            ["flush_all", ..] => ("NOPE\r\n".into(), true, false),
            ["stats"] => (
                [
                    "STAT pid 4242",
                    "STAT uptime 10",
                    "STAT time 1700000000",
                    "STAT version 9.9.9",
                    "STAT libevent 2.1.12-stable",
                    "STAT rusage_user 1:500000",
                    "STAT rusage_system 2.000250",
                    "STAT curr_items 3",
                    "STAT brand_new_stat some words here",
                    "STAT limit_maxbytes 5000000000",
                    "STAT another_new_one 7",
                    "END",
                    "",
                ]
                .join("\r\n"),
                false,
                false,
            ),
            _ => ("ERROR\r\n".into(), true, false),
        };
        if writer.write_all(reply.as_bytes()).is_err() || close {
            return;
        }
        errored |= unexpected;
    }
}

#[test]
fn protocol() {
    let fake = FakeServer::start(fake_connection);
    let mut env = vec![("MC_HOST", "127.0.0.1".to_string())];
    env.push(("MC_FAKE_PORT", fake.port.to_string()));
    run_program("protocol", &[], &env);
    let reused = fake.log.lock().unwrap().clone();
    assert!(
        reused.is_empty(),
        "commands sent on a connection after an unexpected reply (spec D1): {reused:?}"
    );
}

#[test]
fn threads() {
    let mc = Memcached::start();
    run_program("threads", &["-lpthread"], &server_env(&[&mc]));
}

#[test]
fn nonreturning_handler() {
    let mc = Memcached::start();
    run_program("nonreturn", &[], &server_env(&[&mc]));
}

/// A few programs under valgrind: no invalid access, no definite leak (spec D11).
#[test]
fn valgrind() {
    let suppressions = capi_dir().join("valgrind.supp");
    let supp_arg = format!("--suppressions={}", suppressions.display());
    let mut wrapper = vec![
        "valgrind",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
        "--child-silent-after-fork=yes",
        "--num-callers=30",
    ];
    if suppressions.exists() {
        wrapper.push(&supp_arg);
    }
    // (program, memcached servers, extra server: "unix" socket or "fake" protocol server)
    let programs: [(&str, usize, &str); 7] = [
        ("store_fetch", 1, ""),
        ("request", 3, ""),
        ("errors", 1, ""),
        ("keys", 2, ""),
        ("servers", 1, "unix"),
        ("protocol", 0, "fake"),
        ("strings", 0, ""),
    ];
    let handles: Vec<_> = programs
        .iter()
        .map(|&(name, nservers, extra)| {
            let wrapper: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
            let handle = thread::spawn(move || {
                let servers: Vec<Memcached> = (0..nservers).map(|_| Memcached::start()).collect();
                let refs: Vec<&Memcached> = servers.iter().collect();
                let mut env = server_env(&refs);
                let dir = temp_dir(&format!("valgrind-{name}"));
                let sock = (extra == "unix").then(|| Memcached::start_unix(&dir.join("mc.sock")));
                if let Some(sock) = &sock {
                    env.push(("MC_SOCK", sock.socket_path().to_string_lossy().into_owned()));
                }
                let fake = (extra == "fake").then(|| FakeServer::start(fake_connection));
                if let Some(fake) = &fake {
                    env.push(("MC_FAKE_PORT", fake.port.to_string()));
                }
                let bin = compile_capi(name, &[]);
                let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
                spawn_c_with(&wrapper, &bin, &env, Duration::from_secs(180)).wait()
            });
            (name, handle)
        })
        .collect();
    let mut failures = Vec::new();
    for (name, handle) in handles {
        let Ok(out) = handle.join() else {
            failures.push(format!(
                "{name}: the runner panicked (build or server start; see above)"
            ));
            continue;
        };
        if !out.status.success() || !out.stdout.is_empty() {
            failures.push(format!(
                "{name} under valgrind: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                out.status, out.stdout, out.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The installed files of spec §1.2, with SONAME libmemcache.so.0.
#[test]
fn installed_files() {
    let prefix = prefix();
    for file in [
        "lib/libmemcache.so.0.4.0",
        "lib/libmemcache.so.0",
        "lib/libmemcache.so",
        "lib/libmemcache.a",
        "lib/pkgconfig/libmemcache.pc",
        "include/memcache.h",
        "include/memcache/buffer.h",
        "include/memcache/_buffer.h",
    ] {
        assert!(
            prefix.join(file).exists(),
            "{file} is not installed under {}",
            prefix.display()
        );
    }
    for link in ["lib/libmemcache.so.0", "lib/libmemcache.so"] {
        let target = std::fs::canonicalize(prefix.join(link)).expect("resolve symlink");
        assert_eq!(
            target.file_name().and_then(|n| n.to_str()),
            Some("libmemcache.so.0.4.0"),
            "{link} does not lead to libmemcache.so.0.4.0"
        );
    }
    let out = Command::new("readelf")
        .arg("-d")
        .arg(prefix.join("lib/libmemcache.so.0.4.0"))
        .output()
        .expect("run readelf");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(
        dynamic.contains("Library soname: [libmemcache.so.0]"),
        "SONAME is not libmemcache.so.0:\n{dynamic}"
    );
}

/// The optional-build API the original never shipped must not be declared (spec §1.3).
#[test]
fn header_omits_removed_api() {
    let header =
        std::fs::read_to_string(prefix().join("include/memcache.h")).expect("read memcache.h");
    let code = strip_c_comments(&header);
    let identifiers: Vec<&str> = code
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    for removed in [
        "mc_listen",
        "mc_alisten",
        "mc_refresh",
        "mc_arefresh",
        "mcm_listen",
        "mcm_alisten",
        "mcm_refresh",
        "mcm_arefresh",
        "cmd_refresh",
        "refresh_hits",
        "refresh_misses",
    ] {
        assert!(
            !identifiers.contains(&removed),
            "memcache.h declares {removed}"
        );
    }
}

fn strip_c_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = match rest[start + 2..].find("*/") {
            Some(end) => &rest[start + 2 + end + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Linking statically against libmemcache.a works too (spec §1.2).
#[test]
fn static_link() {
    let prefix = prefix();
    let dir = temp_dir("static");
    let bin = dir.join("strings-static");
    let output = Command::new("cc")
        .args(["-std=gnu99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&bin)
        .arg(capi_dir().join("strings.c"))
        .arg(format!("-I{}", prefix.join("include").display()))
        .arg(prefix.join("lib/libmemcache.a"))
        .args(["-lpthread", "-ldl", "-lm"])
        .output()
        .expect("run cc");
    assert!(
        output.status.success(),
        "static link failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = Command::new(&bin)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run static binary");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "statically linked program failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
