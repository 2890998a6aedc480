//! Redundancy, failover, fork safety and thread safety (issue 7), through the installed library
//! and real memcached servers: the C programs of `capi-tests/` named below, coordinated with the
//! harness through files in a sync directory where the harness must act (kill, restart) at a
//! given point. A fake server scripted here stands in only for faults a real memcached cannot
//! produce (a value cut short then a stall, garbage).
//!
//! Measurements (throughput of single gets with one and two copies, the worst latency against a
//! stopped server) are printed, never asserted: `cargo test --release --test resilience --
//! --nocapture` shows them.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::*;

/// Environment naming the servers the way the C programs read them: MC_HOST, MC_PORT,
/// MC_PORT2, MC_PORT3, and their pids as MC_PID, MC_PID2, MC_PID3.
fn server_env(servers: &[&Memcached]) -> Vec<(&'static str, String)> {
    const PORTS: [&str; 3] = ["MC_PORT", "MC_PORT2", "MC_PORT3"];
    const PIDS: [&str; 3] = ["MC_PID", "MC_PID2", "MC_PID3"];
    let mut env = vec![("MC_HOST", "127.0.0.1".to_string())];
    for ((port, pid), mc) in PORTS.iter().zip(PIDS).zip(servers) {
        env.push((port, mc.port().to_string()));
        env.push((pid, mc.pid().to_string()));
    }
    env
}

fn three_servers() -> [Memcached; 3] {
    [Memcached::start(), Memcached::start(), Memcached::start()]
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

/// The program's lines on stderr that carry a measurement or a timing (`prefix` ...).
fn print_lines(out: &COutput, prefix: &str) {
    for line in out.stderr.lines().filter(|l| l.starts_with(prefix)) {
        println!("{line}");
    }
}

// ---- 1. R = 2 over three servers: placement, disagreement, SIGKILL, restart ----

/// `replicas.c` with one distribution: the harness kills the second server when asked, then
/// restarts it on the same port.
fn replicas_with(dist: &str) {
    let [a, mut b, c] = three_servers();
    let sync = temp_dir(&format!("replicas-{dist}"));
    let mut env = server_env(&[&a, &b, &c]);
    env.push(("MC_DIST", dist.to_string()));
    env.push(("MC_SYNC_DIR", sync.to_string_lossy().into_owned()));
    let bin = compile_capi("replicas", &[]);
    let mut proc = Some(spawn_c(&bin, &env));
    await_file(&mut proc, &sync, "ready-kill");
    b.kill();
    std::fs::write(sync.join("go-kill"), b"").expect("create go-kill");
    await_file(&mut proc, &sync, "ready-restart");
    b.restart();
    std::fs::write(sync.join("go-restart"), b"").expect("create go-restart");
    let out = proc.take().expect("program running").wait();
    out.assert_success().assert_stdout_empty();
    print_lines(&out, "replicas");
}

#[test]
fn two_copies_crc32_modulo_survive_a_killed_server() {
    replicas_with("crc32");
}

#[test]
fn two_copies_ketama_survive_a_killed_server() {
    replicas_with("ketama");
}

/// `placement.c`, one case: see the program's comment.
fn placement_case(case: &str) {
    let servers = three_servers();
    let refs: Vec<&Memcached> = servers.iter().collect();
    let mut env = server_env(&refs);
    env.push(("MC_CASE", case.to_string()));
    let bin = compile_capi("placement", &[]);
    run_c(&bin, &env).assert_success().assert_stdout_empty();
}

/// A multi-key mc_get() over ketama-md5 with one copy must ask each key of the server that
/// holds it, as mc_aget2() does.
#[test]
fn ketama_mc_get_finds_every_stored_key() {
    placement_case("ketama-mc-get");
}

/// mc_distribution() chosen before the first mc_server_add() of an mc_new() handle must survive
/// the add, as mc_replicas() does.
#[test]
fn distribution_chosen_before_the_first_add_is_kept() {
    placement_case("early-distribution");
}

// ---- 2. A SIGSTOPped server: timeouts, failover, return ----

fn stopped_with(dist: &str) {
    let servers = three_servers();
    let refs: Vec<&Memcached> = servers.iter().collect();
    let mut env = server_env(&refs);
    env.push(("MC_DIST", dist.to_string()));
    let bin = compile_capi("stopped", &[]);
    let out = run_c(&bin, &env);
    // Whatever happened, the server must not stay stopped for the next test's sake (the drop of
    // `servers` continues and kills it anyway).
    out.assert_success().assert_stdout_empty();
    print_lines(&out, "stopped");
}

#[test]
fn a_stopped_server_times_out_and_fails_over_crc32_modulo() {
    stopped_with("crc32");
}

#[test]
fn a_stopped_server_times_out_and_fails_over_ketama() {
    stopped_with("ketama");
}

// ---- 3. A fake server: a value cut short then a stall, garbage ----

/// What the fake server saw that the library must never do.
#[derive(Default)]
struct FakeLog {
    /// Commands that arrived on a connection after a fault was sent on it.
    reused: Vec<String>,
    /// How many times `incr stall-incr` arrived (it must not be re-sent after its timeout).
    stall_incrs: usize,
}

// The fake server for `stalls.c` (the script is described there) is support::FakeServer
// running stalling_connection.

/// How long a stall lasts before the fake completes the reply: well past the 100 ms timeout.
const STALL: Duration = Duration::from_millis(400);

/// A complete, ordinary answer for `key`: the value "val-KEY".
fn plain_value(key: &str) -> String {
    let value = format!("val-{key}");
    format!("VALUE {key} 0 {}\r\n{value}\r\n", value.len())
}

/// What a client reusing the connection would read as the answer to its next command.
fn poison(fault: &str) -> String {
    format!("VALUE next-{fault} 0 5\r\nWRONG\r\nEND\r\n")
}

/// The reply to `get KEYS`: (bytes to send now, bytes to send after a stall if any). A fault
/// ends the reply at the faulty key.
fn get_reply(keys: &[&str]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut now = Vec::new();
    for (at, key) in keys.iter().enumerate() {
        let stall = |partial: &str, rest: &str| {
            let mut tail = rest.to_string();
            for later in &keys[at + 1..] {
                tail.push_str(&plain_value(later));
            }
            tail.push_str("END\r\n");
            tail.push_str(&poison(key));
            (partial.to_string(), Some(tail.into_bytes()))
        };
        let (part, late) = match *key {
            "stall-data" => stall("VALUE stall-data 0 10\r\nabc", "defghij\r\n"),
            "stall-line" => stall("VALUE stall-li", "ne 0 2\r\nok\r\n"),
            "stall-end" => stall("VALUE stall-end 0 2\r\nok\r\n", ""),
            "stall-multi" => stall("VALUE stall-multi 0 10\r\nabc", "defghij\r\n"),
            "bin-garbage" => ("\u{1}\u{7f}garbage\u{0}\r\n".to_string(), None),
            "bad-length" => ("VALUE bad-length 0 banana\r\n".to_string(), None),
            "neg-length" => ("VALUE neg-length 0 -1\r\n".to_string(), None),
            "huge-length" => (
                "VALUE huge-length 0 99999999999999999999\r\n".to_string(),
                None,
            ),
            "long-data" => ("VALUE long-data 0 2\r\nokXY\r\nEND\r\n".to_string(), None),
            "long-line" => (format!("{}\r\n", "A".repeat(5000)), None),
            _ => {
                now.extend_from_slice(plain_value(key).as_bytes());
                continue;
            }
        };
        now.extend_from_slice(part.as_bytes());
        if late.is_none() {
            // Garbage: the poison follows at once.
            now.extend_from_slice(poison(key).as_bytes());
        }
        return (now, late);
    }
    now.extend_from_slice(b"END\r\n");
    (now, None)
}

/// Serves one connection until the client closes it. After a fault every further command on
/// the connection is logged as a reuse.
fn stalling_connection(stream: TcpStream, log: Arc<Mutex<FakeLog>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    let mut faulted = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_string();
        if faulted {
            log.lock().unwrap().reused.push(command.clone());
        }
        let words: Vec<&str> = command.split(' ').collect();
        let (now, late): (Vec<u8>, Option<Vec<u8>>) = match words.as_slice() {
            ["get", keys @ ..] => get_reply(keys),
            [cmd, key, _flags, _exp, bytes]
                if ["set", "add", "replace", "append", "prepend"].contains(cmd) =>
            {
                let n: usize = bytes.parse().unwrap_or(0);
                let mut data = vec![0u8; n + 2];
                if reader.read_exact(&mut data).is_err() {
                    return;
                }
                if *key == "stall-set" {
                    (
                        b"STOR".to_vec(),
                        Some(format!("ED\r\n{}", poison(key)).into_bytes()),
                    )
                } else {
                    (b"STORED\r\n".to_vec(), None)
                }
            }
            ["incr" | "decr", "stall-incr", _] => {
                log.lock().unwrap().stall_incrs += 1;
                (
                    b"4".to_vec(),
                    Some(format!("2\r\n{}", poison("stall-incr")).into_bytes()),
                )
            }
            ["incr" | "decr", "incr-garbage", _] => {
                faulted = true;
                (
                    format!("banana\r\n{}", poison("incr-garbage")).into_bytes(),
                    None,
                )
            }
            ["incr" | "decr", ..] | ["delete", ..] => (b"NOT_FOUND\r\n".to_vec(), None),
            _ => (b"ERROR\r\n".to_vec(), None),
        };
        if now.windows(5).any(|w| w == b"WRONG") {
            faulted = true;
        }
        if writer.write_all(&now).is_err() {
            return;
        }
        if let Some(late) = late {
            faulted = true;
            thread::sleep(STALL);
            // The client has normally closed the connection by now; that is the point.
            let _ = writer.write_all(&late);
        }
    }
}

#[test]
fn stalls_and_garbage_fail_cleanly_and_the_next_get_reads_its_own_value() {
    let fake = FakeServer::start(stalling_connection);
    let env = vec![
        ("MC_HOST", "127.0.0.1".to_string()),
        ("MC_FAKE_PORT", fake.port.to_string()),
    ];
    let bin = compile_capi("stalls", &[]);
    let out = run_c(&bin, &env);
    out.assert_success().assert_stdout_empty();
    print_lines(&out, "stalls");
    let log = fake.log.lock().unwrap();
    assert!(
        log.reused.is_empty(),
        "commands sent on a connection after a stall or garbage: {:?}",
        log.reused
    );
    assert_eq!(log.stall_incrs, 1, "incr sent again after its timeout");
}

// ---- 4. Fork: 200 children and the parent on one inherited handle ----

fn forks_case(case: &str) {
    let servers = three_servers();
    let refs: Vec<&Memcached> = servers.iter().collect();
    let mut env = server_env(&refs);
    env.push(("MC_FORK_CASE", case.to_string()));
    let bin = compile_capi("forks", &["-lpthread"]);
    let out = spawn_c_with(&[], &bin, &env, Duration::from_secs(150)).wait();
    out.assert_success().assert_stdout_empty();
    print_lines(&out, "forks");
}

/// 200 children and the single-threaded parent use one inherited handle at the same time.
#[test]
fn forked_children_and_the_parent_share_one_handle_without_crossed_replies() {
    forks_case("single-threaded");
}

/// No thread is joined before fork(): children forked while other parent threads use the
/// handle, including while one is inside a call and another waits for the handle.
#[test]
fn forking_while_other_threads_use_the_handle_needs_no_ritual() {
    forks_case("threaded");
}

// ---- 5. Threads: 8 x 20,000 mixed operations, shared and per-thread handles ----

#[test]
fn eight_threads_of_mixed_operations_on_shared_and_own_handles() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let bin = compile_capi("threads8", &["-lpthread"]);
    let out = spawn_c_with(&[], &bin, &server_env(&[&a, &b]), Duration::from_secs(120)).wait();
    out.assert_success().assert_stdout_empty();
    print_lines(&out, "threads8");
}

// ---- 6. Measurements, printed (run with --nocapture to see them) ----

/// Throughput of single gets with one and two copies on the same servers, alternating.
#[test]
fn measure_single_get_throughput_with_one_and_two_copies() {
    let servers = three_servers();
    let refs: Vec<&Memcached> = servers.iter().collect();
    let bin = compile_capi("replica_bench", &[]);
    let out = run_c(&bin, &server_env(&refs));
    out.assert_success().assert_stdout_empty();
    print_lines(&out, "replica_bench");
}

// ---- A dead or stopped server does not flood stderr ----

/// The default handler prints a server's change of state once and rate-limits repeats (issue 13,
/// point 4): 200 sets on a refusing port print each distinct line once, a stopped server's
/// timeout and "no live server" once per time it goes down (see report_repeats.c).
#[test]
fn a_dead_server_is_reported_once_not_at_every_operation() {
    let server = Memcached::start();
    let dead = DeadPort::new();
    let mut env = server_env(&[&server]);
    env.push(("MC_DEAD_PORT", dead.port().to_string()));
    env.push(("MEMCACHE_REPORT_INTERVAL", "600".to_string()));
    let bin = compile_capi("report_repeats", &[]);
    let out = run_c(&bin, &env);
    server.cont();
    out.assert_success().assert_stdout_empty();
}
