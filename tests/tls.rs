//! Issue 17: TLS and text-protocol authentication against a real memcached (`-Z` with
//! certificates the test makes with openssl, `-Y` with a user file), from C (capi-tests/tls.c
//! on the installed library) and from mclient; and every fault ends in a clear error with one
//! report, within the timeout, never a hang.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use memcache::conn::{resolve, Conn, TlsClient, TlsOptions};
use memcache::protocol::{Event, Reply};
use support::certs::{Ca, Issued};
use support::{compile_capi, run_c, temp_dir, COutput, Memcached, Secure, ShmPrefix};

/// The names a good server certificate carries: the tests connect to 127.0.0.1.
const LOCAL_NAMES: &str = "DNS:localhost,IP:127.0.0.1";

/// A CA, a server certificate from it, and memcached -Z with that certificate.
struct TlsServer {
    dir: PathBuf,
    ca: Ca,
    server: Memcached,
}

impl TlsServer {
    fn start(label: &str, sans: &str, days: i32) -> TlsServer {
        TlsServer::start_with(label, sans, days, Vec::new())
    }

    fn start_with(label: &str, sans: &str, days: i32, extra: Vec<String>) -> TlsServer {
        let dir = temp_dir(label);
        let ca = Ca::new(&dir, "testca");
        let Issued { cert, key } = ca.issue("server", sans, days, false);
        let server = Memcached::start_secure(Secure {
            tls: Some((cert, key)),
            extra,
            ..Secure::default()
        });
        TlsServer { dir, ca, server }
    }

    fn url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.server.port())
    }
}

fn tls_program() -> PathBuf {
    compile_capi("tls", &["-lpthread"])
}

/// Runs capi-tests/tls.c with `env`, and checks that it ended well within its timeouts.
fn run(env: &[(&str, String)]) -> COutput {
    let started = Instant::now();
    let out = run_c(&tls_program(), env);
    let took = started.elapsed();
    // 1 s timeouts: a fault that hung would take far longer (or the harness's 60 s).
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}: {}",
        out.stderr
    );
    out
}

fn path(p: &Path) -> String {
    p.to_str().expect("a UTF-8 path").to_owned()
}

/// The program's result line for `who` ("" for the first, "child ").
fn result_line<'a>(out: &'a COutput, who: &str) -> &'a str {
    out.stderr
        .lines()
        .find(|l| l.starts_with(&format!("{who}set=")))
        .unwrap_or_else(|| panic!("no {who:?} result line in {}", out.stderr))
}

fn assert_stored_and_read(out: &COutput, who: &str) {
    out.assert_success();
    let line = result_line(out, who);
    assert!(
        line.starts_with(&format!("{who}set=0 get=value-")),
        "{line}\n{}",
        out.stderr
    );
}

/// A report line up to where it quotes an earlier report: a summary ("no server could be
/// reached", "no live server") repeats the failure it sums up after one of these markers, so that
/// mc_last_error() says why; the quote is not a report of its own.
fn own_words(line: &str) -> &str {
    ["(last failure: ", "; it failed: "]
        .iter()
        .filter_map(|marker| line.find(marker))
        .min()
        .map_or(line, |at| &line[..at])
}

/// The operation failed, and the report that says why appeared exactly once.
fn assert_failed_once(out: &COutput, why: &str) {
    out.assert_success();
    let line = result_line(out, "");
    assert!(
        !line.starts_with("set=0 "),
        "stored despite the fault: {}",
        out.stderr
    );
    assert!(line.ends_with("get=(null)"), "{}", out.stderr);
    let reports = out
        .stderr
        .lines()
        .filter(|l| own_words(l).contains(why))
        .count();
    assert_eq!(
        reports, 1,
        "{why:?} reported {reports} times:\n{}",
        out.stderr
    );
}

#[test]
fn c_sets_and_gets_over_tls_with_the_ca_file() {
    let t = TlsServer::start("tls-ok", LOCAL_NAMES, 2);
    let out = run(&[("MC_SERVER", t.url()), ("MC_TLS_CA", path(&t.ca.cert))]);
    assert_stored_and_read(&out, "");
    // The same server named without tls://, TLS switched on for the whole handle.
    let out = run(&[
        ("MC_SERVER", t.server.addr()),
        ("MC_TLS_ALL", "1".into()),
        ("MC_TLS_CA", path(&t.ca.cert)),
    ]);
    assert_stored_and_read(&out, "");
}

/// Threads sharing one handle send on its TLS connection while another waits for replies
/// (issue 16's pipelining): the records a waiting reader collects are decrypted in order, and
/// every thread reads its own writes.
#[test]
fn threads_share_one_tls_connection() {
    let t = TlsServer::start("tls-threads", LOCAL_NAMES, 2);
    let out = run(&[
        ("MC_SERVER", t.url()),
        ("MC_TLS_CA", path(&t.ca.cert)),
        ("MC_THREADS", "8".into()),
    ]);
    assert_stored_and_read(&out, "");
    assert!(
        out.stderr.contains("threads ok=1600 bad=0"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unknown_ca_is_refused_and_insecure_is_explicit_and_reported() {
    let t = TlsServer::start("tls-unknown-ca", LOCAL_NAMES, 2);
    let other = Ca::new(&t.dir, "otherca");
    let out = run(&[("MC_SERVER", t.url()), ("MC_TLS_CA", path(&other.cert))]);
    assert_failed_once(&out, "UnknownIssuer");

    let out = run(&[
        ("MC_SERVER", t.url()),
        ("MC_TLS_CA", path(&other.cert)),
        ("MC_TLS_INSECURE", "1".into()),
    ]);
    assert_stored_and_read(&out, "");
    assert_eq!(
        out.stderr.matches("TLS certificate checks are off").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let t = TlsServer::start("tls-expired", LOCAL_NAMES, -1);
    let out = run(&[("MC_SERVER", t.url()), ("MC_TLS_CA", path(&t.ca.cert))]);
    assert_failed_once(&out, "Expired");
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    // Valid, from the trusted CA, but for another host than 127.0.0.1.
    let t = TlsServer::start("tls-name", "DNS:cache.example.com", 2);
    let out = run(&[("MC_SERVER", t.url()), ("MC_TLS_CA", path(&t.ca.cert))]);
    assert_failed_once(&out, "certificate not valid for name \"127.0.0.1\"");
}

#[test]
fn tls_to_a_plaintext_server_fails_within_the_timeout() {
    let plain = Memcached::start();
    let dir = temp_dir("tls-to-plain");
    let ca = Ca::new(&dir, "testca");
    let out = run(&[
        ("MC_SERVER", format!("tls://{}", plain.addr())),
        ("MC_TLS_CA", path(&ca.cert)),
    ]);
    // memcached waits for a line the ClientHello never ends, or answers ERROR: either way the
    // connect fails with a TLS message, once.
    assert_failed_once(&out, "does the server speak TLS on this port?");
}

/// What a plaintext connection closed or reset before any reply byte is reported with.
const MAY_REQUIRE_TLS: &str = "before any reply: it may require TLS (write it tls://HOST:PORT)";

#[test]
fn plaintext_to_a_tls_server_fails_and_says_so() {
    let t = TlsServer::start("plain-to-tls", LOCAL_NAMES, 2);
    let out = run(&[("MC_SERVER", t.server.addr())]);
    out.assert_success();
    let line = result_line(&out, "");
    assert!(line.ends_with("get=(null)"), "{}", out.stderr);
    assert!(!line.starts_with("set=0 "), "{}", out.stderr);
    // memcached -Z resets (or closes) a connection that speaks plaintext: the report says
    // why it may have, once (the get's identical report is a repeat the handler holds back).
    assert_eq!(
        out.stderr.matches(MAY_REQUIRE_TLS).count(),
        1,
        "{}",
        out.stderr
    );
    let get = mclient(&[
        "--servers",
        &t.server.addr(),
        "--timeout-ms",
        "1000",
        "get",
        "k",
    ]);
    assert!(!get.status.success(), "{get:?}");
    assert!(
        String::from_utf8_lossy(&get.stderr).contains(MAY_REQUIRE_TLS),
        "{get:?}"
    );
}

/// A stand-in that stores the first value and closes the connection at the next command: a
/// server that dies after it has answered, which a real one does not do on demand.
fn answer_once_then_close(stream: std::net::TcpStream, _log: support::fake::Log) {
    let Some((mut commands, mut replies)) = support::fake::halves(stream) else {
        return;
    };
    let Some(line) = support::fake::read_line(&mut commands) else {
        return;
    };
    let words: Vec<&str> = line.split(' ').collect();
    let Some(bytes) = support::fake::storage_bytes(&words) else {
        return;
    };
    if support::fake::skip_data(&mut commands, bytes).is_none() {
        return;
    }
    let _ = std::io::Write::write_all(&mut replies, b"STORED\r\n");
    let _ = support::fake::read_line(&mut commands);
}

/// A connection that has had replies and is then closed is an ordinary failure: no word of
/// TLS in its report.
#[test]
fn a_close_after_replies_does_not_mention_tls() {
    let fake: support::FakeServer<Vec<String>> = support::FakeServer::start(answer_once_then_close);
    let out = run(&[("MC_SERVER", format!("127.0.0.1:{}", fake.port))]);
    out.assert_success();
    let line = result_line(&out, "");
    assert_eq!(line, "set=0 get=(null)", "{}", out.stderr);
    assert!(
        out.stderr.contains("server unexpectedly closed connection"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("TLS"), "{}", out.stderr);
}

#[test]
fn a_server_that_drops_the_connection_mid_handshake() {
    // The one fault a real memcached does not make on demand: a listener that reads the
    // ClientHello and closes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dropper = std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut hello = [0u8; 64];
            let _ = s.read(&mut hello);
        }
    });
    let dir = temp_dir("tls-drop");
    let ca = Ca::new(&dir, "testca");
    let out = run(&[
        ("MC_SERVER", format!("tls://127.0.0.1:{port}")),
        ("MC_TLS_CA", path(&ca.cert)),
    ]);
    // Closed or reset, depending on what the kernel makes of the unread ClientHello.
    assert_failed_once(&out, "TLS handshake: ");
    drop(std::net::TcpStream::connect(("127.0.0.1", port)));
    drop(std::net::TcpStream::connect(("127.0.0.1", port)));
    let _ = dropper.join();
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let dir = temp_dir("tls-mutual");
    let ca = Ca::new(&dir, "testca");
    let Issued { cert, key } = ca.issue("server", LOCAL_NAMES, 2, false);
    let client = ca.issue("client", "DNS:client", 2, true);
    let server = Memcached::start_secure(Secure {
        tls: Some((cert, key)),
        extra: vec![
            "ssl_verify_mode=2".into(),
            format!("ssl_ca_cert={}", path(&ca.cert)),
        ],
        ..Secure::default()
    });
    let url = format!("tls://{}", server.addr());
    let out = run(&[("MC_SERVER", url.clone()), ("MC_TLS_CA", path(&ca.cert))]);
    out.assert_success();
    assert!(
        result_line(&out, "").ends_with("get=(null)"),
        "served without a client certificate: {}",
        out.stderr
    );
    let out = run(&[
        ("MC_SERVER", url),
        ("MC_TLS_CA", path(&ca.cert)),
        ("MC_TLS_CERT", path(&client.cert)),
        ("MC_TLS_KEY", path(&client.key)),
    ]);
    assert_stored_and_read(&out, "");
}

#[test]
fn a_forked_child_makes_its_own_tls_connection() {
    let t = TlsServer::start("tls-fork", LOCAL_NAMES, 2);
    let before = t.server.stat("total_connections");
    let out = run(&[
        ("MC_SERVER", t.url()),
        ("MC_TLS_CA", path(&t.ca.cert)),
        ("MC_FORK", "1".into()),
    ]);
    assert_stored_and_read(&out, "");
    assert_stored_and_read(&out, "child ");
    assert_stored_and_read(&out, "after child ");
    // The parent's connection, the child's own: the child never wrote on the parent's session
    // (which would have broken it for the parent, whose last get still works).
    let made = t.server.stat("total_connections") - before;
    // The harness's stats connection counts too.
    assert_eq!(made, 3, "{}", out.stderr);
}

fn mclient(args: &[&str]) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_mclient"));
    support::run_bounded(Command::new(bin).args(args), b"", Duration::from_secs(30))
}

#[test]
fn mclient_over_tls() {
    let t = TlsServer::start("mclient-tls", LOCAL_NAMES, 2);
    let url = t.url();
    let ca = path(&t.ca.cert);
    let set = mclient(&["--servers", &url, "--tls-ca", &ca, "set", "k", "over-tls"]);
    assert!(set.status.success(), "{set:?}");
    let get = mclient(&["--servers", &url, "--tls-ca", &ca, "get", "k"]);
    assert!(get.status.success(), "{get:?}");
    assert_eq!(get.stdout, b"over-tls");
    // Without the CA, the system's roots do not know the test's CA: a clear failure.
    let refused = mclient(&["--servers", &url, "--timeout-ms", "1000", "get", "k"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("UnknownIssuer") || why.contains("no system CA"),
        "{why}"
    );
}

/// memcached -Y with one user, and a file the client reads its credentials from.
fn auth_server(dir: &Path) -> Memcached {
    let users = dir.join("users");
    std::fs::write(&users, "app:s3cret\n").unwrap();
    Memcached::start_secure(Secure {
        auth_file: Some(users),
        ..Secure::default()
    })
}

fn credentials_file(dir: &Path, name: &str, text: &str, mode: u32) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    path(&file)
}

#[test]
fn authentication_with_the_right_and_a_wrong_password() {
    let dir = temp_dir("auth");
    let server = auth_server(&dir);
    let out = run(&[
        ("MC_SERVER", server.addr()),
        ("MC_AUTH_USER", "app".into()),
        ("MC_AUTH_PASS", "s3cret".into()),
    ]);
    assert_stored_and_read(&out, "");
    let out = run(&[
        ("MC_SERVER", server.addr()),
        ("MC_AUTH_USER", "app".into()),
        ("MC_AUTH_PASS", "wrong".into()),
    ]);
    assert_failed_once(&out, "authentication as \"app\" refused");
    assert!(
        !out.stderr.contains("wrong"),
        "the password shown: {}",
        out.stderr
    );

    let good = credentials_file(&dir, "good", "app:s3cret\n", 0o600);
    let out = run(&[("MC_SERVER", server.addr()), ("MC_AUTH_FILE", good.clone())]);
    assert_stored_and_read(&out, "");
    let set = mclient(&[
        "--servers",
        &server.addr(),
        "--auth-file",
        &good,
        "set",
        "a",
        "1",
    ]);
    assert!(set.status.success(), "{set:?}");
    let bad = mclient(&["--servers", &server.addr(), "get", "a"]);
    assert!(!bad.status.success(), "served without a login: {bad:?}");
}

#[test]
fn a_credentials_file_others_can_read_is_refused() {
    let dir = temp_dir("auth-file");
    let server = auth_server(&dir);
    let open = credentials_file(&dir, "open", "app:s3cret\n", 0o644);
    let out = run_c(
        &tls_program(),
        &[("MC_SERVER", server.addr()), ("MC_AUTH_FILE", open.clone())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("lets others read"), "{}", out.stderr);
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
    let refused = mclient(&[
        "--servers",
        &server.addr(),
        "--auth-file",
        &open,
        "get",
        "a",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("chmod 600"),
        "{refused:?}"
    );
}

/// A domain lists a TLS server as tls://HOST:PORT: a C program following the domain, mclient
/// and mcadmin status all speak TLS to it, with the CA each is given.
#[test]
fn a_domain_with_a_tls_server() {
    let t = TlsServer::start("tls-domain", LOCAL_NAMES, 2);
    let shm = ShmPrefix::new("tlsdomain");
    let state = temp_dir("tls-domain-state");
    let add = shm
        .mcadmin_kept(&state, &["--domain", "sec", "add", &t.url()])
        .output()
        .unwrap();
    assert!(add.status.success(), "{add:?}");
    let list = shm
        .mcadmin_kept(&state, &["--domain", "sec", "list"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&list.stdout).contains(&t.url()),
        "{list:?}"
    );

    let out = run(&[
        shm.env(),
        ("MEMCACHE_DOMAIN", "sec".into()),
        ("MC_TLS_CA", path(&t.ca.cert)),
    ]);
    assert_stored_and_read(&out, "");

    let ca = path(&t.ca.cert);
    let get = support::run_bounded(
        Command::new(env!("CARGO_BIN_EXE_mclient"))
            .args(["--domain", "sec", "--tls-ca", &ca, "set", "d", "via-domain"])
            .env(shm.env().0, shm.env().1),
        b"",
        Duration::from_secs(30),
    );
    assert!(get.status.success(), "{get:?}");

    let status = |extra: &[&str]| {
        let mut args = vec!["--domain", "sec", "--timeout-ms", "1000"];
        args.extend_from_slice(extra);
        args.push("status");
        support::run_bounded(
            &mut shm.mcadmin_kept(&state, &args),
            b"",
            Duration::from_secs(30),
        )
    };
    let up = status(&["--tls-ca", &ca]);
    assert!(up.status.success(), "{up:?}");
    // Without the CA the server cannot be trusted: down, and the table says why.
    let down = status(&[]);
    assert_eq!(down.status.code(), Some(1), "{down:?}");
}

// ---------------------------------------------------------------------------------------------
// A domain's TLS and login settings (mcadmin config): programs that only call mc_new2()

/// memcached -Z -Y: TLS with a certificate of the test's CA, and the login app:s3cret.
fn tls_auth_server(label: &str) -> (TlsServer, String) {
    let dir = temp_dir(label);
    let ca = Ca::new(&dir, "testca");
    let Issued { cert, key } = ca.issue("server", LOCAL_NAMES, 2, false);
    let users = dir.join("users");
    std::fs::write(&users, "app:s3cret\n").unwrap();
    let server = Memcached::start_secure(Secure {
        tls: Some((cert, key)),
        auth_file: Some(users),
        ..Secure::default()
    });
    let good = credentials_file(&dir, "app.auth", "app:s3cret\n", 0o600);
    (TlsServer { dir, ca, server }, good)
}

/// capi-tests/domain_config.c run for `rounds` rounds on domain `domain`, stepped by the test.
struct Stepped {
    steps: PathBuf,
    proc: support::CProcess,
}

impl Stepped {
    fn start(shm: &ShmPrefix, state: &Path, domain: &str, rounds: u32) -> Stepped {
        Stepped::start_with(shm, state, domain, rounds, &[])
    }

    /// As [`Stepped::start`], with more environment for the program.
    fn start_with(
        shm: &ShmPrefix,
        state: &Path,
        domain: &str,
        rounds: u32,
        extra: &[(&str, String)],
    ) -> Stepped {
        let steps = temp_dir(&format!("steps-{domain}"));
        let mut env = vec![
            shm.env(),
            ("MEMCACHE_STATE_DIR", path(state)),
            ("MEMCACHE_DOMAIN", domain.into()),
            ("MC_STEPS", path(&steps)),
            ("MC_ROUNDS", rounds.to_string()),
        ];
        env.extend(extra.iter().cloned());
        let proc = support::spawn_c(&compile_capi("domain_config", &[]), &env);
        Stepped { steps, proc }
    }

    /// Lets round `n` run (round 1 runs at once) and returns its line.
    fn round(&mut self, n: u32) -> String {
        if n > 1 {
            std::fs::write(self.steps.join(format!("go-{n}")), "").unwrap();
        }
        let done = self.steps.join(format!("done-{n}"));
        if let Err(why) = support::wait_for_file(&done, &mut self.proc, Duration::from_secs(30)) {
            panic!("round {n}: {why}");
        }
        // Created, then written: read until the line is whole (bounded).
        for _ in 0..500 {
            let line = std::fs::read_to_string(&done).unwrap_or_default();
            if line.ends_with('\n') {
                return line.trim_end().to_owned();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("round {n}: {} stays incomplete", done.display());
    }
}

fn mcadmin_ok(shm: &ShmPrefix, state: &Path, args: &[&str]) -> std::process::Output {
    let out = support::run_bounded(
        &mut shm.mcadmin_kept(state, args),
        b"",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "mcadmin {args:?}: {out:?}");
    out
}

/// [`tls_auth_server`] as the one server of `domain`, written plain HOST:PORT (TLS is to come
/// from the domain's settings), in a namespace and state directory of the test's own.
fn domain_of_tls_auth_server(label: &str, domain: &str) -> (TlsServer, String, ShmPrefix, PathBuf) {
    let (t, auth) = tls_auth_server(label);
    let shm = ShmPrefix::new(&label.replace('-', ""));
    let state = temp_dir(&format!("{label}-state"));
    mcadmin_ok(&shm, &state, &["--domain", domain, "add", &t.server.addr()]);
    (t, auth, shm, state)
}

/// `mcadmin config --tls --tls-ca CA --auth-file AUTH` of `domain`, which must succeed.
fn config_tls_and_login(
    shm: &ShmPrefix,
    state: &Path,
    domain: &str,
    ca: &str,
    auth: &str,
) -> std::process::Output {
    let args = [
        "--domain",
        domain,
        "config",
        "--tls",
        "--tls-ca",
        ca,
        "--auth-file",
        auth,
    ];
    mcadmin_ok(shm, state, &args)
}

/// The issue's scenario: a C program that only calls mc_new2() follows the domain's settings
/// as mcadmin changes them while it runs; settings it cannot trust are reported once and not
/// used (it keeps what it had), and mcadmin refuses a credentials file others can read.
#[test]
fn mcadmin_config_gives_a_domain_tls_and_a_login() {
    let (t, auth, shm, state) = domain_of_tls_auth_server("cfg-domain", "cfg");
    let ca = path(&t.ca.cert);
    let mut program = Stepped::start(&shm, &state, "cfg", 5);

    let line = program.round(1);
    assert!(line.ends_with("get=(null)"), "plaintext served: {line}");

    let out = config_tls_and_login(&shm, &state, "cfg", &ca, &auth);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("tls on\n") && shown.contains(&format!("tls-ca {ca}\n")),
        "{shown}"
    );
    assert!(shown.contains(&format!("auth-file {auth}\n")), "{shown}");
    let kept = std::fs::read_to_string(state.join("cfg.security")).unwrap();
    assert!(!kept.contains("s3cret"), "{kept}");
    assert_eq!(program.round(2), "round 2 set=0 get=value-2");

    let status = mcadmin_ok(&shm, &state, &["--domain", "cfg", "status"]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.contains(&format!("tls on  tls-ca {ca}  auth-file {auth}")),
        "{table}"
    );

    // A credentials file others can read: mcadmin refuses it and changes nothing; programs that
    // find it so at the next version refuse it too, once, and keep their login.
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = support::run_bounded(
        &mut shm.mcadmin_kept(&state, &["--domain", "cfg", "config", "--auth-file", &auth]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("lets others read"),
        "{refused:?}"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("cfg.security")).unwrap(),
        kept
    );
    mcadmin_ok(
        &shm,
        &state,
        &["--domain", "cfg", "config", "--replicas", "1"],
    );
    assert_eq!(program.round(3), "round 3 set=0 get=value-3");

    // A settings file others could have written: refused once, not used (it asks for no TLS).
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    let planted = state.join("cfg.security");
    std::fs::write(&planted, "domain cfg\ntls off\n").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    mcadmin_ok(
        &shm,
        &state,
        &["--domain", "cfg", "config", "--replicas", "1"],
    );
    assert_eq!(program.round(4), "round 4 set=0 get=value-4");

    // Settings removed: the program speaks plaintext again, which the server refuses.
    std::fs::remove_file(&planted).unwrap();
    mcadmin_ok(&shm, &state, &["--domain", "cfg", "config", "--no-tls"]);
    let line = program.round(5);
    assert!(line.ends_with("get=(null)"), "{line}");

    let out = program.proc.wait();
    out.assert_success();
    for why in ["lets others read", "writable by group or others"] {
        let n = out.stderr.matches(why).count();
        assert_eq!(n, 1, "{why:?} reported {n} times:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
}

/// mc_tls_resumption(mc, 0) on a domain handle says how to reconnect, not what to connect with:
/// the domain's TLS and login stay in force, also when mcadmin changes them while it runs.
#[test]
fn turning_resumption_off_keeps_the_domains_tls_and_login() {
    let (t, auth, shm, state) = domain_of_tls_auth_server("cfg-resume", "resume");
    let ca = path(&t.ca.cert);
    config_tls_and_login(&shm, &state, "resume", &ca, &auth);
    let off = [("MC_TLS_RESUMPTION", "0".to_owned())];
    let mut program = Stepped::start_with(&shm, &state, "resume", 2, &off);
    assert_eq!(program.round(1), "round 1 set=0 get=value-1");

    // Another credentials file (same login): the program takes the domain's new settings.
    let again = credentials_file(&t.dir, "again.auth", "app:s3cret\n", 0o600);
    config_tls_and_login(&shm, &state, "resume", &ca, &again);
    assert_eq!(program.round(2), "round 2 set=0 get=value-2");
    let out = program.proc.wait();
    out.assert_success();
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
}

/// Session resumption at the connection: a reconnect with the same settings resumes the
/// session the server gave, `mc_tls_resumption(mc, 0)`'s settings make a full handshake each
/// time, and a child after fork starts with no session of its parent's.
#[test]
fn reconnects_resume_the_session_unless_told_not_to_and_a_child_starts_afresh() {
    let t = TlsServer::start("resume-conn", "IP:127.0.0.1", 30);
    let client = TlsClient::new(&TlsOptions {
        ca_file: Some(t.ca.cert.clone()),
        ..TlsOptions::default()
    })
    .unwrap();
    let endpoint = resolve("127.0.0.1", &t.server.port().to_string()).unwrap();
    // A connect, its handshake, and one command: the server's ticket comes before the reply.
    let handshake = |client: &TlsClient| {
        let mut conn = Conn::connect(&endpoint, Duration::from_secs(5)).unwrap();
        conn.start_tls(client, "127.0.0.1").unwrap();
        conn.send(b"version\r\n").unwrap();
        let event = conn.next_event().unwrap();
        assert!(
            matches!(event, Event::Reply(Reply::Version(_))),
            "{event:?}"
        );
        conn.tls_resumed().expect("a TLS connection")
    };
    assert!(!handshake(&client), "the first connect is a full handshake");
    assert!(handshake(&client), "a reconnect resumes");
    assert!(handshake(&client), "and so does the next");

    let off = client.without_resumption();
    assert!(!handshake(&off));
    assert!(!handshake(&off), "without resumption every connect is full");

    let child = client.after_fork();
    assert!(
        !handshake(&child),
        "a child presents no ticket of its parent's"
    );
    assert!(handshake(&child), "then resumes its own");
}

/// The settings live in the state directory: after a reboot empties /dev/shm, `mcadmin restore`
/// brings the domain back and its programs speak TLS and log in as before; mclient follows the
/// same settings; `destroy` forgets them.
#[test]
fn a_domain_restored_after_a_reboot_keeps_its_tls_and_login() {
    let (t, auth, shm, state) = domain_of_tls_auth_server("cfg-restore", "web");
    let ca = path(&t.ca.cert);
    config_tls_and_login(&shm, &state, "web", &ca, &auth);
    shm.remove_all();
    mcadmin_ok(&shm, &state, &["restore"]);
    let mut program = Stepped::start(&shm, &state, "web", 1);
    assert_eq!(program.round(1), "round 1 set=0 get=value-1");
    program.proc.wait().assert_success();

    let get = support::run_bounded(
        Command::new(env!("CARGO_BIN_EXE_mclient"))
            .args(["--domain", "web", "get", "cfg-key"])
            .env(shm.env().0, shm.env().1)
            .env("MEMCACHE_STATE_DIR", &state),
        b"",
        Duration::from_secs(30),
    );
    assert!(get.status.success(), "{get:?}");
    assert_eq!(get.stdout, b"value-1");

    mcadmin_ok(&shm, &state, &["--domain", "web", "destroy"]);
    assert!(!state.join("web.security").exists());
    // mcadmin keeps no insecure setting in a domain.
    let insecure = support::run_bounded(
        &mut shm.mcadmin_kept(&state, &["--domain", "web", "config", "--tls-insecure"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(insecure.status.code(), Some(2), "{insecure:?}");
}
