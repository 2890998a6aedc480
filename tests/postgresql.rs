//! The PostgreSQL extension (`bindings/postgresql`) against a real server: runs its test script,
//! which builds the extension with PGXS against the library installed by `make test`
//! (`LIBMEMCACHE_PREFIX`), starts a throwaway PostgreSQL (initdb as a non-root user) and two
//! memcached servers, and compares the output of its psql scripts with the expected files.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The whole script normally takes a few seconds; this only catches a hang.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the script may take to clean up after SIGTERM before it is killed.
const CLEANUP_GRACE: Duration = Duration::from_secs(20);

#[test]
fn sql_tests_against_a_real_server() {
    let prefix = support::prefix();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/postgresql/test.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .env("LIBMEMCACHE_PREFIX", &prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", script.display()));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let stdout = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let stderr = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });

    let started = Instant::now();
    let mut terminated_at = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        match terminated_at {
            None if started.elapsed() > SCRIPT_TIMEOUT => {
                // SIGTERM lets the script's trap stop the server and memcached it started.
                // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                terminated_at = Some(Instant::now());
            }
            Some(at) if at.elapsed() > CLEANUP_GRACE => {
                let _ = child.kill();
            }
            _ => {}
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = String::from_utf8_lossy(&stdout.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
    assert!(
        terminated_at.is_none(),
        "{} did not finish within {SCRIPT_TIMEOUT:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        script.display()
    );
    assert!(
        status.success(),
        "{} failed: {status}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        script.display()
    );
}
