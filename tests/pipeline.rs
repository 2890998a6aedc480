//! Threads sharing one handle pipeline their calls on the server's one connection (issue 16,
//! point 1): `capi-tests/pipeline.c` against a real memcached that the harness stops, resumes
//! or kills while the program's 8 threads wait for their replies.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

const THREADS: usize = 8;
const VALUE_LEN: usize = 32;

fn env_for(mc: &Memcached, case: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MC_HOST", "127.0.0.1".to_string()),
        ("MC_PORT", mc.port().to_string()),
        ("MC_CASE", case.to_string()),
    ]
}

/// The bytes waiting unread in the server's end of its connections on `port` (the receive
/// queues of the established sockets whose local port it is, from /proc/net/tcp).
fn unread_by_server(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            // Established, or closed by the client with the bytes still unread (CLOSE_WAIT).
            let established = matches!(*f.get(3)?, "01" | "08");
            let rx = usize::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?;
            (local_port == port && established).then_some(rx)
        })
        .sum()
}

/// What the program's 8 waiting calls send: even threads a set of 32 bytes, odd ones a get.
fn queued_request_bytes() -> usize {
    (0..THREADS)
        .map(|t| {
            let key = format!("pipe:q:{t}");
            if t % 2 == 0 {
                format!("set {key} 0 0 {VALUE_LEN}\r\n").len() + VALUE_LEN + 2
            } else {
                format!("get {key}\r\n").len()
            }
        })
        .sum()
}

/// Runs a queue-like case: once the program has stored its values, the server is stopped;
/// the program's 8 threads call, and every request must reach the server's socket while the
/// server is stopped (none waits for another's reply: a serialised handle would have sent one
/// only). Then `after` acts on the server.
fn queued(case: &str, after: impl FnOnce(&mut Memcached)) -> COutput {
    let mut mc = Memcached::start();
    let sync = temp_dir(&format!("pipeline-{case}"));
    let mut env = env_for(&mc, case);
    env.push(("MC_SYNC_DIR", sync.to_string_lossy().into_owned()));
    let bin = compile_capi("pipeline", &["-lpthread"]);
    let mut proc = spawn_c_with(&[], &bin, &env, Duration::from_secs(60));
    wait_or_show(&mut proc, &sync.join("ready"));
    mc.stop_and_wait();
    std::fs::write(sync.join("stopped"), b"").expect("create stopped");
    let want = queued_request_bytes();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = unread_by_server(mc.port());
    while seen < want && Instant::now() < deadline && !proc.has_exited() {
        std::thread::sleep(Duration::from_millis(5));
        seen = unread_by_server(mc.port());
    }
    // In the stalls case the callers may already have given up (their timeout is 0.3 s): the
    // bytes stay in the socket all the same until it closes, which the program does at exit.
    assert_eq!(
        seen, want,
        "the 8 requests did not all reach the stopped server: {seen} of {want} bytes"
    );
    after(&mut mc);
    proc.wait()
}

fn wait_or_show(proc: &mut CProcess, file: &Path) {
    if let Err(e) = wait_for_file(file, proc, Duration::from_secs(40)) {
        panic!("{e}");
    }
}

/// 8 threads on one handle, each on its own keys, every answer checked; one connection.
#[test]
fn eight_threads_on_one_handle_get_their_own_answers_over_one_connection() {
    let mc = Memcached::start();
    let before = mc.stat("total_connections");
    let bin = compile_capi("pipeline", &["-lpthread"]);
    let mut env = env_for(&mc, "stress");
    env.push(("MC_ROUNDS", "1500".to_string()));
    let out = spawn_c_with(&[], &bin, &env, Duration::from_secs(120)).wait();
    out.assert_success().assert_stdout_empty();
    // This stats request is one connection; the program's 8 threads made one between them.
    let after = mc.stat("total_connections");
    assert_eq!(
        after - before,
        2,
        "the program opened {} connections",
        after - before - 1
    );
}

/// Pipelined calls alongside calls that need the connection alone (a multi-get, a bulk write,
/// stats): each of those waits for the pipelined replies, and every answer is right.
#[test]
fn calls_that_need_the_connection_alone_wait_for_pipelined_replies() {
    let mc = Memcached::start();
    let bin = compile_capi("pipeline", &["-lpthread"]);
    let mut env = env_for(&mc, "mixed");
    env.push(("MC_ROUNDS", "1000".to_string()));
    let out = spawn_c_with(&[], &bin, &env, Duration::from_secs(120)).wait();
    out.assert_success().assert_stdout_empty();
}

/// Requests of 8 waiting callers go out together, and each caller gets its own answer.
#[test]
fn waiting_callers_do_not_stop_others_from_sending() {
    let out = queued("queue", |mc| mc.cont());
    out.assert_success().assert_stdout_empty();
}

/// A server that dies while 8 callers wait: each gets an error and one report, none a value,
/// none waits for its timeout.
#[test]
fn a_server_that_dies_fails_every_waiting_caller() {
    let out = queued("dies", |mc| mc.kill());
    out.assert_success().assert_stdout_empty();
}

/// A server that stops answering: every waiting caller fails by its own deadline.
#[test]
fn waiting_callers_fail_by_their_own_deadline() {
    let out = queued("stalls", |_| {});
    out.assert_success().assert_stdout_empty();
}
