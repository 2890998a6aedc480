//! Five faults of issue 12, each proved against the installed library and the built binaries:
//!
//! - faults 2 and 3 through `mclient` (tests/capi.rs and tests/client.rs prove them for the C
//!   API and the Rust client): stray bytes after a reply never answer the next command of the
//!   same invocation, and a server that timed out is sent nothing more in it;
//! - fault 5, no operation deadline: a server that trickles its reply one byte every 150 ms must
//!   not hold any call (`mc_aget2`, a multi-key `mc_get`, `mc_set`, `mclient get`/`set`,
//!   `mcadmin pull`, a `mcadmin watch` asked to stop) beyond twice its timeout (the bounds below
//!   allow 2.5 times the timeout plus 0.5 s);
//! - fault 6, a length claim allocated up front: a `VALUE` line claiming 1 GiB, followed by a few
//!   bytes and silence, must not make the library allocate more than 64 MB, while a real 3 MiB
//!   value still arrives byte-exact;
//! - fault 7, hooks and re-entry: an error handler, a fetch callback and the `mcHashKey` and
//!   `mcServerFind` hooks that call the library on the same handle, or leave by `longjmp`, must
//!   leave the handle consistent and free for this thread and for others.
//!
//! The fake servers here only do what a real memcached cannot (trickle, claim without sending,
//! add stray bytes, never answer); they listen on loopback ports of their own and stop writing
//! once the client goes away or after a bounded time.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use memcache::exit_code::Exit;
use support::fake::*;
use support::*;

/// The pause between two bytes of a trickled reply.
const TRICKLE_EVERY: Duration = Duration::from_millis(150);
/// How long one connection of the trickling server goes on (the client normally leaves first).
const TRICKLE_FOR: Duration = Duration::from_secs(60);
/// What the trickling server claims for any value: far more than it will ever send.
const TRICKLE_CLAIM: usize = 1_000_000;
/// The bound of a spawned binary: it is killed (and the test fails) after this.
const HARD_CAP: Duration = Duration::from_secs(20);
/// mcadmin's default network timeout.
const MCADMIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The timeout given to mcadmin with --timeout-ms: its bound is below the default timeout.
const MCADMIN_SHORT_TIMEOUT_MS: u64 = 300;
/// The timeout given to mclient with --timeout-ms.
const MCLIENT_TIMEOUT_MS: u64 = 200;
/// The size of the claim of the big-claim server: 1 GiB.
const GIB_CLAIM: usize = 1 << 30;
/// The size of the honest big value: 3 MiB.
const BIG_VALUE: usize = 3 << 20;
/// How long the big-claim server keeps a connection open after its few bytes.
const CLAIM_HOLD: Duration = Duration::from_secs(2);

/// The bound the issue sets for a call with timeout `t` (twice it), with a margin for a loaded
/// machine: 2.5 t + 0.5 s.
fn lenient_bound(t: Duration) -> Duration {
    t * 5 / 2 + Duration::from_millis(500)
}

// ---------------------------------------------------------------------------------------------
// Fake servers

/// Writes `bytes` one at a time, each after [`TRICKLE_EVERY`]; false once the client is gone
/// or [`TRICKLE_FOR`] has passed since `since`.
fn trickle_bytes(stream: &mut TcpStream, bytes: &[u8], since: Instant) -> bool {
    for byte in bytes {
        thread::sleep(TRICKLE_EVERY);
        if since.elapsed() > TRICKLE_FOR || stream.write_all(&[*byte]).is_err() {
            return false;
        }
    }
    true
}

/// The trickling server: a get's VALUE line comes at once, then its data one byte every 150 ms
/// (for far longer than any timeout); a storage command's "STORED\r\n" and any other reply come
/// one byte every 150 ms.
fn trickling(stream: TcpStream, log: Log) {
    let since = Instant::now();
    let Some((mut reader, mut out)) = halves(stream) else {
        return;
    };
    // A connection carries at most a few commands before its client gives up on it.
    for _ in 0..64 {
        let Some(line) = read_line(&mut reader) else {
            return;
        };
        log.lock().unwrap().push(line.clone());
        let words: Vec<&str> = line.split_whitespace().collect();
        let command = words.first().copied().unwrap_or("");
        if command == "get" || command == "gets" {
            let key = words.get(1).copied().unwrap_or("k");
            let cas = if command == "gets" { " 1" } else { "" };
            let header = format!("VALUE {key} 0 {TRICKLE_CLAIM}{cas}\r\n");
            if out.write_all(header.as_bytes()).is_err() {
                return;
            }
            // Never completes: ends when the client leaves or TRICKLE_FOR has passed.
            let data = vec![b'x'; TRICKLE_CLAIM];
            trickle_bytes(&mut out, &data, since);
            return;
        }
        if is_storage(command) {
            let Some(bytes) = storage_bytes(&words) else {
                return;
            };
            if skip_data(&mut reader, bytes).is_none() {
                return;
            }
            if !trickle_bytes(&mut out, b"STORED\r\n", since) {
                return;
            }
            continue;
        }
        if !trickle_bytes(&mut out, b"ERROR\r\n", since) {
            return;
        }
    }
}

/// Byte `i` of the honest big value; capi-tests/bigclaim.c computes the same.
fn big_byte(i: usize) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i >> 12) & 0xff) as u8
}

/// The big-claim server, by the first key of a get: "claim..." -> a VALUE line claiming 1 GiB,
/// eight bytes, then silence for [`CLAIM_HOLD`] and the connection closed; "big..." -> every
/// requested key with a 3 MiB value, in full; anything else -> a miss. Storage commands are
/// answered STORED.
fn big_claims(stream: TcpStream, log: Log) {
    let Some((mut reader, mut out)) = halves(stream) else {
        return;
    };
    for _ in 0..256 {
        let Some(line) = read_line(&mut reader) else {
            return;
        };
        log.lock().unwrap().push(line.clone());
        let words: Vec<&str> = line.split_whitespace().collect();
        let command = words.first().copied().unwrap_or("");
        if command == "get" || command == "gets" {
            let keys = &words[1..];
            let first = keys.first().copied().unwrap_or("");
            if first.starts_with("claim") {
                let header = format!("VALUE {first} 0 {GIB_CLAIM}\r\nabcdefgh");
                let _ = out.write_all(header.as_bytes());
                thread::sleep(CLAIM_HOLD);
                return;
            }
            let mut reply = Vec::new();
            if first.starts_with("big") {
                let value: Vec<u8> = (0..BIG_VALUE).map(big_byte).collect();
                for key in keys {
                    reply.extend_from_slice(format!("VALUE {key} 0 {BIG_VALUE}\r\n").as_bytes());
                    reply.extend_from_slice(&value);
                    reply.extend_from_slice(b"\r\n");
                }
            }
            reply.extend_from_slice(b"END\r\n");
            // In pieces, as a real server's reply arrives.
            for chunk in reply.chunks(64 * 1024) {
                if out.write_all(chunk).is_err() {
                    return;
                }
            }
            continue;
        }
        if is_storage(command) {
            let Some(bytes) = storage_bytes(&words) else {
                return;
            };
            if skip_data(&mut reader, bytes).is_none() || out.write_all(b"STORED\r\n").is_err() {
                return;
            }
            continue;
        }
        if out.write_all(b"ERROR\r\n").is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running programs and binaries

/// Compiles and runs one program of capi-tests/ with `env`, killed after `cap`.
fn run_capi(name: &str, flags: &[&str], env: &[(&str, String)], cap: Duration) -> COutput {
    let bin = compile_capi(name, flags);
    spawn_c_with(&[], &bin, env, cap).wait()
}

#[track_caller]
fn assert_passed(out: &COutput) {
    out.assert_success().assert_stdout_empty();
}

/// Runs `cmd` with nothing on its standard input; its output, or None if it was killed at
/// [`HARD_CAP`], and how long it ran.
fn run_timed(cmd: &mut Command) -> (Option<Output>, Duration) {
    run_capped(cmd, b"", HARD_CAP)
}

fn show(out: &Option<Output>) -> String {
    match out {
        None => format!("killed after {HARD_CAP:?}"),
        Some(out) => format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// mclient with only the variables it reads that the test sets.
fn mclient(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mclient"));
    cmd.args(args)
        .env_remove("MEMCACHE_SERVERS")
        .env_remove("MEMCACHE_DOMAIN")
        .env_remove("MEMCACHE_SHM_PREFIX");
    cmd
}

/// Asserts that a binary ended by itself within `bound` with exit status 3 (a runtime error).
#[track_caller]
fn assert_bounded_error(what: &str, out: &Option<Output>, took: Duration, bound: Duration) {
    assert!(
        took < bound,
        "{what} took {took:?} against a trickling server (bound {bound:?}): {}",
        show(out)
    );
    let code = out.as_ref().and_then(|o| o.status.code());
    assert_eq!(
        code,
        Some(Exit::Failed.into()),
        "{what} against a trickling server: {}",
        show(out)
    );
}

// ---------------------------------------------------------------------------------------------
// Faults 2 and 3 through mclient: stray bytes, and a timeout that marks a server down

/// What the stray-bytes server records: each command line with the peer port of the connection
/// it came on.
type ConnLog = Arc<Mutex<Vec<(u16, String)>>>;

/// The value the stray-bytes server holds for every key.
const STRAY_VALUE: &str = "v";

/// A server that answers every command rightly and then sends `END\r\n` nobody asked for, in
/// the same write: a set gets `STORED\r\nEND\r\n`, a delete `DELETED\r\nEND\r\n`, a get or
/// gets of one key its value and two ENDs.
fn stray_ends(stream: TcpStream, log: ConnLog) {
    let peer = stream.peer_addr().map_or(0, |a| a.port());
    let Some((mut reader, mut out)) = halves(stream) else {
        return;
    };
    for _ in 0..64 {
        let Some(line) = read_line(&mut reader) else {
            return;
        };
        log.lock().unwrap().push((peer, line.clone()));
        let words: Vec<&str> = line.split_whitespace().collect();
        let command = words.first().copied().unwrap_or("");
        let reply = match command {
            "get" | "gets" => {
                let cas = if command == "gets" { " 7" } else { "" };
                let mut reply = String::new();
                for key in &words[1..] {
                    let len = STRAY_VALUE.len();
                    reply += &format!("VALUE {key} 0 {len}{cas}\r\n{STRAY_VALUE}\r\n");
                }
                reply + "END\r\n"
            }
            "delete" => "DELETED\r\n".to_string(),
            "touch" => "TOUCHED\r\n".to_string(),
            c if is_storage(c) => {
                let Some(bytes) = storage_bytes(&words) else {
                    return;
                };
                if skip_data(&mut reader, bytes).is_none() {
                    return;
                }
                "STORED\r\n".to_string()
            }
            _ => "ERROR\r\n".to_string(),
        };
        if out.write_all(format!("{reply}END\r\n").as_bytes()).is_err() {
            return;
        }
    }
}

/// Multi-key mclient commands that send one command per key (delete, touch, gets) against a
/// server that follows every reply with a stray `END`: every key gets its own answer, not the
/// stray bytes of the key before, and each command after the first goes out on a new connection
/// (the stray bytes closed the old one).
#[test]
fn stray_bytes_never_answer_the_next_command_of_mclient() {
    let fake = FakeServer::<Vec<(u16, String)>>::start(stray_ends);
    let server = format!("127.0.0.1:{}", fake.port);
    let keys = ["k1", "k2", "k3"];
    let records: String = keys
        .iter()
        .map(|k| format!("{k} 0 {} 7\n{STRAY_VALUE}\n", STRAY_VALUE.len()))
        .collect();
    let jsons = |field: &str| -> String {
        keys.iter()
            .map(|k| format!("{{\"key\":\"{k}\",\"{field}\":true}}\n"))
            .collect()
    };
    let cases = [
        (vec!["--json", "delete"], jsons("deleted")),
        (vec!["--json", "touch"], jsons("touched")),
        (vec!["gets"], records),
    ];
    let mut problems = Vec::new();
    for (command, expected) in cases {
        fake.log.lock().unwrap().clear();
        let mut args = vec!["--servers", server.as_str()];
        args.extend(command);
        args.extend(keys);
        let (out, _) = run_timed(&mut mclient(&args));
        let good = out.as_ref().is_some_and(|o| {
            o.status.code() == Some(Exit::Ok.into()) && o.stdout == expected.as_bytes()
        });
        if !good {
            problems.push(format!("mclient {args:?}: {}", show(&out)));
        }
        let log = fake.log.lock().unwrap().clone();
        let connections: std::collections::HashSet<u16> = log.iter().map(|(p, _)| *p).collect();
        if log.len() != keys.len() || connections.len() != keys.len() {
            problems.push(format!(
                "mclient {args:?}: one command per key, each on a connection of its own; the \
                 server got {log:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A server that reads commands and never answers one (it records them).
fn silent(stream: TcpStream, log: Log) {
    let Some((mut reader, _)) = halves(stream) else {
        return;
    };
    for _ in 0..256 {
        let Some(line) = read_line(&mut reader) else {
            return;
        };
        log.lock().unwrap().push(line);
    }
}

/// mclient with a silent server and a real one, one command per key (delete, touch) for 40
/// keys, about half of them placed on the silent server: the first of them times out, the
/// server is then down for the retry interval, and no other command is sent to it; its keys go
/// to the live server. (`gets` stops at its first failure, so it cannot show this.)
#[test]
fn a_timeout_marks_the_server_down_for_the_rest_of_an_mclient_command() {
    let live = Memcached::start();
    let keys: Vec<String> = (0..40).map(|i| format!("key{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let timeout = MCLIENT_TIMEOUT_MS.to_string();
    let mut problems = Vec::new();
    for command in ["delete", "touch"] {
        let fake = FakeServer::<Vec<String>>::start(silent);
        let servers = format!("127.0.0.1:{},{}", fake.port, live.addr());
        let mut args = vec!["--servers", &servers, "--timeout-ms", &timeout, command];
        args.extend(&keys);
        let (out, _) = run_timed(&mut mclient(&args));
        let code = out.as_ref().and_then(|o| o.status.code());
        if code != Some(Exit::Failed.into()) {
            problems.push(format!(
                "mclient {command}: not one timeout: {}",
                show(&out)
            ));
        }
        let sent = fake.log.lock().unwrap().clone();
        if sent.len() != 1 {
            problems.push(format!(
                "mclient {command}: the server that timed out was sent {} commands, not 1: \
                 {sent:?}",
                sent.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Fault 5: an operation deadline

/// mc_aget2, a multi-key mc_get with keys on a trickling server and on a real one, and a set
/// whose STORED trickles, each with a 200 ms server timeout: every call ends within 1 s.
#[test]
fn deadline_c_api() {
    let live = Memcached::start();
    let fake = FakeServer::<Vec<String>>::start(trickling);
    let env = vec![
        ("MC_HOST", "127.0.0.1".to_string()),
        ("MC_PORT", live.port().to_string()),
        ("MC_TRICKLE_PORT", fake.port.to_string()),
    ];
    let out = run_capi("deadline", &[], &env, RUN_TIMEOUT);
    assert_passed(&out);
}

/// `mclient --timeout-ms 200 get k` and `set k v` against the trickling server: an error (exit
/// status 3) within 2.5 times the timeout plus 0.5 s.
#[test]
fn deadline_mclient() {
    let fake = FakeServer::<Vec<String>>::start(trickling);
    let server = format!("127.0.0.1:{}", fake.port);
    let timeout = MCLIENT_TIMEOUT_MS.to_string();
    let bound = lenient_bound(Duration::from_millis(MCLIENT_TIMEOUT_MS));
    let base = [
        "--servers",
        server.as_str(),
        "--timeout-ms",
        timeout.as_str(),
    ];
    let mut problems = Vec::new();
    for op in [&["get", "k"][..], &["set", "k", "v"][..]] {
        let args: Vec<&str> = base.iter().chain(op).copied().collect();
        let (out, took) = run_timed(&mut mclient(&args));
        let code = out.as_ref().and_then(|o| o.status.code());
        if took >= bound || code != Some(Exit::Failed.into()) {
            problems.push(format!(
                "mclient {args:?}: {took:?} (bound {bound:?}), exit {code:?}: {}",
                show(&out)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `mcadmin pull` from a trickling server: an error within 2.5 times mcadmin's 2 s network
/// timeout plus 0.5 s, and nothing installed.
#[test]
fn deadline_mcadmin_pull() {
    let fake = FakeServer::<Vec<String>>::start(trickling);
    let server = format!("127.0.0.1:{}", fake.port);
    let shm = ShmPrefix::new("dlpull");
    let (out, took) = run_timed(&mut shm.mcadmin(&["--domain", "web", "pull", &server]));
    assert_bounded_error("mcadmin pull", &out, took, lenient_bound(MCADMIN_TIMEOUT));
    assert!(
        shm.entries().is_empty(),
        "a failed pull created {:?}",
        shm.entries()
    );
}

/// `mcadmin --timeout-ms 300` with `pull`, `publish` and `clients` against a trickling server:
/// each fails within 2.5 times that timeout plus 0.5 s, sooner than the default 2 s timeout
/// alone would let it.
#[test]
fn deadline_mcadmin_timeout_option() {
    let fake = FakeServer::<Vec<String>>::start(trickling);
    let server = format!("127.0.0.1:{}", fake.port);
    let shm = ShmPrefix::new("dltimeout");
    let added = run_timed(&mut shm.mcadmin(&["--domain", "web", "add", &server])).0;
    assert!(
        added.as_ref().is_some_and(|o| o.status.success()),
        "mcadmin add: {}",
        show(&added)
    );
    let timeout = Duration::from_millis(MCADMIN_SHORT_TIMEOUT_MS);
    let bound = lenient_bound(timeout);
    assert!(
        bound < MCADMIN_TIMEOUT,
        "the bound must show the option is used"
    );
    let ms = MCADMIN_SHORT_TIMEOUT_MS.to_string();
    for command in [&["pull", server.as_str()][..], &["publish"], &["clients"]] {
        let mut args = vec!["--domain", "web", "--timeout-ms", ms.as_str()];
        args.extend(command);
        let (out, took) = run_timed(&mut shm.mcadmin(&args));
        assert_bounded_error(&format!("mcadmin {args:?}"), &out, took, bound);
    }
}

/// `mcadmin watch` seeded from a trickling server and asked to stop with SIGTERM while its
/// exchange trickles: it ends its exchange within the deadline and exits.
#[test]
fn deadline_mcadmin_watch_stops() {
    let fake = FakeServer::<Vec<String>>::start(trickling);
    let server = format!("127.0.0.1:{}", fake.port);
    let shm = ShmPrefix::new("dlwatch");
    let mut child = shm
        .mcadmin(&[
            "--domain",
            "web",
            "watch",
            "--interval",
            "0.2",
            "--seed",
            &server,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcadmin watch");
    let err = read_in_background(child.stderr.take().expect("piped stderr"));
    // Wait until the watcher has asked the server (its exchange then trickles), at most 10 s.
    let asked = Instant::now();
    while fake.log.lock().unwrap().is_empty() && asked.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(10));
    }
    let got_request = !fake.log.lock().unwrap().is_empty();
    thread::sleep(Duration::from_millis(300));
    // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let stopping = Instant::now();
    let status = wait_capped(&mut child, HARD_CAP);
    let took = stopping.elapsed();
    let log = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    assert!(got_request, "watch never asked its seed: {log}");
    let bound = lenient_bound(MCADMIN_TIMEOUT);
    assert!(
        status.is_some() && took < bound,
        "mcadmin watch exited {took:?} after SIGTERM (bound {bound:?}; status {status:?}) while \
         its seed trickled:\n{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// Fault 6: a length claim is not allocated up front

/// A 1 GiB claim through mc_aget2 and a multi-key mc_get keeps the allocator's peak (and the
/// process's peak RSS) under 64 MB; a 3 MiB value still comes back byte-exact.
#[test]
fn big_claim_tracking_allocator() {
    let fake = FakeServer::<Vec<String>>::start(big_claims);
    let env = vec![
        ("MC_HOST", "127.0.0.1".to_string()),
        ("MC_FAKE_PORT", fake.port.to_string()),
        ("BIGCLAIM_ALLOC", "tracking".to_string()),
    ];
    assert_passed(&run_capi("bigclaim", &[], &env, RUN_TIMEOUT));
}

/// The same with the library's default allocator: what malloc holds, sampled while each call
/// waits, and the peak RSS stay under 64 MB.
#[test]
fn big_claim_default_allocator() {
    let fake = FakeServer::<Vec<String>>::start(big_claims);
    let env = vec![
        ("MC_HOST", "127.0.0.1".to_string()),
        ("MC_FAKE_PORT", fake.port.to_string()),
        ("BIGCLAIM_ALLOC", "libc".to_string()),
    ];
    assert_passed(&run_capi("bigclaim", &["-lpthread"], &env, RUN_TIMEOUT));
}

// ---------------------------------------------------------------------------------------------
// Fault 7: hooks and re-entry

/// Error handler, fetch callback, mcHashKey and mcServerFind hooks that call the library on the
/// same handle, and hooks, callbacks and a handler that longjmp out (a dead loopback port makes
/// the reports come in the middle of a multi-get): the outer calls' results are right,
/// and the handle then works from this thread and from another, on every server.
#[test]
fn reentry_and_longjmp_from_hooks() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let dead = DeadPort::new();
    let env = vec![
        ("MC_HOST", "127.0.0.1".to_string()),
        ("MC_PORT", a.port().to_string()),
        ("MC_PORT2", b.port().to_string()),
        ("MC_DEAD_PORT", dead.port().to_string()),
    ];
    let out = run_capi("reentry", &["-lpthread"], &env, RUN_TIMEOUT);
    assert_passed(&out);
}
