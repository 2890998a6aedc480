//! Shared helpers of the integration tests: real `memcached` servers on loopback, and building
//! and running the C programs of `capi-tests/` against the installed library.
//!
//! The library is used the way a C user sees it: `make test` installs it under a prefix and
//! passes that prefix in `LIBMEMCACHE_PREFIX`; programs are compiled with the flags from the
//! installed `libmemcache.pc` and run with `LD_LIBRARY_PATH` pointing at the installed `lib/`.

#![allow(dead_code)]

pub mod certs;
pub mod domain_loop;
pub mod fake;
pub mod man;
pub mod secure_servers;
pub mod sources;

// Each test file uses a part of support.
#[allow(unused_imports)]
pub use fake::FakeServer;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const MEMCACHED: &str = "/usr/bin/memcached";
/// How long a fresh memcached may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at starting memcached on a fresh port (another test may grab the port first).
const START_ATTEMPTS: usize = 10;
/// Default limit for one C program; a hung program is killed and the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a memcached listens.
#[derive(Clone, Debug)]
enum Listen {
    Tcp(u16),
    Unix(PathBuf),
}

/// A real memcached child process, killed when dropped.
pub struct Memcached {
    child: Option<Child>,
    listen: Listen,
    /// What the server was started with beyond where it listens (TLS, authentication).
    secure: Secure,
}

/// memcached's TLS (`-Z`) and text-protocol authentication (`-Y`) for a test server.
#[derive(Clone, Debug, Default)]
pub struct Secure {
    /// Certificate chain and key: every listener speaks TLS except a plaintext one on a second
    /// port (`notls:`), which the harness uses for its own `stats`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// memcached's `user:password` file; the harness logs in with its first line.
    pub auth_file: Option<PathBuf>,
    /// Further memcached options (`-o ssl_...` for client certificates).
    pub extra: Vec<String>,
}

impl Memcached {
    /// Starts memcached on a free loopback TCP port.
    pub fn start() -> Memcached {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match Memcached::spawn(Listen::Tcp(port)) {
                Ok(mc) => return mc,
                Err(e) => last_error = e,
            }
        }
        panic!("cannot start memcached: {last_error}");
    }

    /// Starts memcached on loopback TCP `port` (e.g. one a test used as a dead server until
    /// now), retrying briefly in case the port is still being released.
    pub fn start_on_port(port: u16) -> Memcached {
        let mut last_error = String::new();
        for _ in 0..50 {
            match Memcached::spawn(Listen::Tcp(port)) {
                Ok(mc) => return mc,
                Err(e) => last_error = e,
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("cannot start memcached on port {port}: {last_error}");
    }

    /// Starts memcached on a free loopback TCP port with TLS or authentication (see [`Secure`]).
    pub fn start_secure(secure: Secure) -> Memcached {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Memcached::spawn_secure(Listen::Tcp(free_port()), secure.clone()) {
                Ok(mc) => return mc,
                Err(e) => last_error = e,
            }
        }
        panic!("cannot start memcached with {secure:?}: {last_error}");
    }

    /// Starts memcached listening only on the unix socket `path` (no TCP).
    pub fn start_unix(path: &Path) -> Memcached {
        let _ = std::fs::remove_file(path);
        Memcached::spawn(Listen::Unix(path.to_path_buf()))
            .unwrap_or_else(|e| panic!("cannot start memcached on {}: {e}", path.display()))
    }

    fn spawn(listen: Listen) -> Result<Memcached, String> {
        Memcached::spawn_secure(listen, Secure::default())
    }

    fn spawn_secure(listen: Listen, secure: Secure) -> Result<Memcached, String> {
        let mut cmd = Command::new(MEMCACHED);
        match &listen {
            Listen::Tcp(port) if secure.tls.is_some() => {
                let plain = port_for_stats(*port);
                cmd.arg("-l")
                    .arg(format!("127.0.0.1:{port},notls:127.0.0.1:{plain}"));
            }
            Listen::Tcp(port) => {
                cmd.args(["-l", "127.0.0.1", "-p"]).arg(port.to_string());
            }
            Listen::Unix(path) => {
                cmd.arg("-s").arg(path);
            }
        }
        if let Some((cert, key)) = &secure.tls {
            let mut options = format!(
                "ssl_chain_cert={},ssl_key={}",
                cert.display(),
                key.display()
            );
            for more in &secure.extra {
                options.push(',');
                options.push_str(more);
            }
            cmd.arg("-Z").arg("-o").arg(options);
        }
        if let Some(file) = &secure.auth_file {
            cmd.arg("-Y").arg(file);
        }
        cmd.args(["-U", "0", "-m", "64", "-t", "1"]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // memcached refuses to run as root unless told which user to stay.
            cmd.args(["-u", "root"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {MEMCACHED}: {e}"))?;
        let mut mc = Memcached {
            child: Some(child),
            listen,
            secure,
        };
        mc.wait_ready()?;
        Ok(mc)
    }

    /// Waits until our own process answers `stats` (checking the pid, so that a server started
    /// by another test on the same port is never mistaken for ours).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid = self.pid();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "memcached on {:?} exited at start: {status}",
                        self.listen
                    ));
                }
            }
            if let Ok(stats) = self.try_stats() {
                if stats.get("pid").map(String::as_str) == Some(&pid.to_string()) {
                    return Ok(());
                }
                // Someone else's server holds the port: give up on this port.
                self.kill();
                return Err(format!(
                    "port of {:?} taken by another memcached",
                    self.listen
                ));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "memcached on {:?} not ready after {START_TIMEOUT:?}",
                    self.listen
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The TCP port (panics for a unix-socket server).
    pub fn port(&self) -> u16 {
        match &self.listen {
            Listen::Tcp(port) => *port,
            Listen::Unix(path) => panic!("memcached on {} has no TCP port", path.display()),
        }
    }

    /// "127.0.0.1:PORT".
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// The unix socket path (panics for a TCP server).
    pub fn socket_path(&self) -> PathBuf {
        match &self.listen {
            Listen::Unix(path) => path.clone(),
            Listen::Tcp(_) => panic!("memcached is not on a unix socket"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("memcached is not running").id()
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// SIGKILL and reap. A no-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server stops answering but keeps its sockets.
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// `stop`, then waits until the kernel shows the process stopped (state `T` in
    /// /proc/PID/stat): SIGSTOP is delivered asynchronously, and a server that has not stopped
    /// yet may still answer one more request.
    pub fn stop_and_wait(&self) {
        self.stop();
        let stat = format!("/proc/{}/stat", self.pid());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&stat).unwrap_or_default();
            // The state follows the parenthesised command name, which may itself hold spaces.
            let state = text
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            if state == Some('T') {
                return;
            }
            assert!(Instant::now() < deadline, "memcached did not stop: {text}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGCONT after `stop`.
    pub fn cont(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kills the server (if running) and starts a fresh one on the same port or socket.
    pub fn restart(&mut self) {
        self.kill();
        let listen = self.listen.clone();
        let mut last_error = String::new();
        // The port was just released; retry briefly in case the bind races with the old exit.
        for _ in 0..50 {
            match Memcached::spawn_secure(listen.clone(), self.secure.clone()) {
                Ok(mut fresh) => {
                    self.child = fresh.child.take();
                    return;
                }
                Err(e) => last_error = e,
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("cannot restart memcached on {listen:?}: {last_error}");
    }

    fn try_stats(&self) -> std::io::Result<HashMap<String, String>> {
        let reply = match &self.listen {
            Listen::Tcp(port) => {
                let port = match self.secure.tls {
                    Some(_) => port_for_stats(*port),
                    None => *port,
                };
                let mut s = TcpStream::connect(("127.0.0.1", port))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                if let Some(file) = &self.secure.auth_file {
                    log_in(&mut s, file)?;
                }
                stats_exchange(&mut s)?
            }
            Listen::Unix(path) => {
                let mut s = UnixStream::connect(path)?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                stats_exchange(&mut s)?
            }
        };
        Ok(reply
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("STAT")).then_some(())?;
                Some((
                    words.next()?.to_string(),
                    words.collect::<Vec<_>>().join(" "),
                ))
            })
            .collect())
    }

    /// `stats` over a fresh raw connection: name -> value.
    pub fn stats(&self) -> HashMap<String, String> {
        self.try_stats().expect("raw stats request failed")
    }

    /// One numeric stat.
    pub fn stat(&self, name: &str) -> u64 {
        let stats = self.stats();
        let value = stats
            .get(name)
            .unwrap_or_else(|| panic!("memcached has no stat {name}"));
        value
            .parse()
            .unwrap_or_else(|_| panic!("stat {name} = {value:?} is not a number"))
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A stopped process still dies of SIGKILL; SIGCONT first anyway for tidiness.
            let _ = self.child.as_ref().map(|c| {
                // SAFETY: as in signal().
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGCONT) }
            });
        }
        self.kill();
        if let Listen::Unix(path) = &self.listen {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The plaintext port beside a TLS server's port (see [`Secure::tls`]): the next one, or the
/// one before at the top of the range. Taken by another process, the server does not start and
/// is started again on other ports.
fn port_for_stats(port: u16) -> u16 {
    port.checked_add(1).unwrap_or(port - 1)
}

/// memcached -Y's login with the first `user:password` line of `file`.
fn log_in<S: Read + Write>(s: &mut S, file: &Path) -> std::io::Result<()> {
    let text = std::fs::read_to_string(file)?;
    let value = text.lines().next().unwrap_or("").replacen(':', " ", 1);
    s.write_all(format!("set auth 0 0 {}\r\n{value}\r\n", value.len()).as_bytes())?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        if s.read(&mut byte)? == 0 {
            break;
        }
        reply.push(byte[0]);
    }
    if reply != b"STORED\r\n" {
        return Err(std::io::Error::other(format!(
            "login refused: {}",
            String::from_utf8_lossy(&reply)
        )));
    }
    Ok(())
}

fn stats_exchange<S: Read + Write>(s: &mut S) -> std::io::Result<String> {
    s.write_all(b"stats\r\n")?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.ends_with(b"END\r\n") {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "stats reply truncated",
            ));
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// A loopback port that was free a moment ago (bind to port 0, read it back, release it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A loopback port where nothing listens (for "dead server" tests), held for the life of the
/// value: the port is bound (without SO_REUSEADDR) but never listened on, so connecting is
/// refused and no server started by another test can take the port meanwhile.
pub struct DeadPort {
    fd: libc::c_int,
    port: u16,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        // SAFETY: plain socket calls on a descriptor we own; `addr` and `len` are valid for the
        // duration of each call.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0, "socket() failed");
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            addr.sin_port = 0;
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let rc = libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len);
            assert_eq!(rc, 0, "bind(127.0.0.1:0) failed");
            let rc = libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len);
            assert_eq!(rc, 0, "getsockname failed");
            DeadPort {
                fd,
                port: u16::from_be(addr.sin_port),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Default for DeadPort {
    fn default() -> Self {
        DeadPort::new()
    }
}

impl Drop for DeadPort {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// The installation prefix made by `make test`.
pub fn prefix() -> PathBuf {
    match std::env::var_os("LIBMEMCACHE_PREFIX") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "LIBMEMCACHE_PREFIX is not set: the C API tests need the installed library; \
             run `make test` (it installs into target/test-prefix and sets the variable)"
        ),
    }
}

/// The directory of the C test programs.
pub fn capi_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("capi-tests")
}

/// A fresh, empty directory under target/ for one test's files. Directories left by earlier
/// test processes that are no longer running are removed on first use.
pub fn temp_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    static CLEANUP: std::sync::Once = std::sync::Once::new();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi");
    CLEANUP.call_once(|| remove_stale_dirs(&root));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = root.join(format!("{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

/// Removes `root/<label>-<pid>-<n>` directories whose process is gone.
fn remove_stale_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut parts = name.rsplitn(3, '-');
        let (_n, pid) = (
            parts.next(),
            parts.next().and_then(|p| p.parse::<i32>().ok()),
        );
        let Some(pid) = pid else { continue };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = pid == std::process::id() as i32 || unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `pkg-config --cflags --libs libmemcache` against the installed prefix.
pub fn pkg_config_flags(extra: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(extra)
        .args(["--cflags", "--libs", "libmemcache"])
        .env("PKG_CONFIG_PATH", prefix().join("lib/pkgconfig"))
        .output()
        .expect("run pkg-config");
    assert!(
        out.status.success(),
        "pkg-config libmemcache failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("pkg-config output is UTF-8")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Compiles one C program with `-std=gnu99 -Wall -Wextra -Werror`, the installed library's
/// pkg-config flags and `extra_flags` (placed after the source, so `-lpthread` works and a later
/// `-std=` wins). Returns the executable's path; panics with the compiler output on failure.
pub fn compile_c(src: &Path, extra_flags: &[&str]) -> PathBuf {
    let stem = src
        .file_stem()
        .expect("source has a name")
        .to_string_lossy()
        .into_owned();
    let out = temp_dir(&format!("build-{stem}")).join(&stem);
    let output = Command::new("cc")
        .args([
            "-std=gnu99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-g",
            "-O1",
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .args(extra_flags)
        .args(pkg_config_flags(&[]))
        .output()
        .expect("run cc");
    assert!(
        output.status.success(),
        "compiling {} {:?} failed:\n{}{}",
        src.display(),
        extra_flags,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Compiles `capi-tests/<name>.c`.
pub fn compile_capi(name: &str, extra_flags: &[&str]) -> PathBuf {
    compile_c(&capi_dir().join(format!("{name}.c")), extra_flags)
}

/// What a finished C program left behind.
pub struct COutput {
    pub program: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl COutput {
    /// Panics (showing both streams) unless the program exited with status 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "{} failed: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.program,
            describe_status(self.status),
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless stdout is empty (spec D10: the library never writes to stdout, and the
    /// test programs print nothing there themselves).
    pub fn assert_stdout_empty(&self) -> &Self {
        assert!(
            self.stdout.is_empty(),
            "{} wrote to stdout (spec D10):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.program,
            self.stdout,
            self.stderr
        );
        self
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("{status}"),
    }
}

/// A running C program whose output is collected in the background.
pub struct CProcess {
    program: String,
    child: Child,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
    started: Instant,
    timeout: Duration,
}

impl CProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True when the program has already exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the program, killing it (and failing the test) after its timeout.
    pub fn wait(mut self) -> COutput {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if self.started.elapsed() > self.timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stdout = self.stdout.take().map(|h| h.join().unwrap_or_default());
                let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
                panic!(
                    "{} did not finish within {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.program,
                    self.timeout,
                    String::from_utf8_lossy(&stdout.unwrap_or_default()),
                    String::from_utf8_lossy(&stderr.unwrap_or_default())
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let stdout = self.stdout.take().map(|h| h.join().unwrap_or_default());
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
        COutput {
            program: self.program.clone(),
            status,
            stdout: String::from_utf8_lossy(&stdout.unwrap_or_default()).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.unwrap_or_default()).into_owned(),
        }
    }
}

impl Drop for CProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `wrapper... bin` (the wrapper may be empty, or e.g. valgrind and its options) with
/// `LD_LIBRARY_PATH=<prefix>/lib` and `env`, collecting stdout and stderr.
pub fn spawn_c_with(
    wrapper: &[&str],
    bin: &Path,
    env: &[(&str, String)],
    timeout: Duration,
) -> CProcess {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(bin);
            cmd
        }
        None => Command::new(bin),
    };
    let mut lib_path = OsString::from(prefix().join("lib"));
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        lib_path.push(":");
        lib_path.push(old);
    }
    cmd.env("LD_LIBRARY_PATH", lib_path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    CProcess {
        program: bin
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        child,
        stdout: Some(thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        })),
        stderr: Some(thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        })),
        started: Instant::now(),
        timeout,
    }
}

/// Starts a compiled C program (see `spawn_c_with`) with the default timeout.
pub fn spawn_c(bin: &Path, env: &[(&str, String)]) -> CProcess {
    spawn_c_with(&[], bin, env, RUN_TIMEOUT)
}

/// Runs a compiled C program to completion (killed and failed after `RUN_TIMEOUT`).
pub fn run_c(bin: &Path, env: &[(&str, String)]) -> COutput {
    spawn_c(bin, env).wait()
}

/// Runs `cmd` with `input` on its standard input, collecting both outputs; kills it and fails
/// the test if it has not ended within `limit`.
pub fn run_bounded(cmd: &mut Command, input: &[u8], limit: Duration) -> std::process::Output {
    match run_capped(cmd, input, limit) {
        (Some(out), _) => out,
        (None, _) => panic!("{cmd:?} did not finish within {limit:?}"),
    }
}

/// Runs `cmd` with `input` on its standard input, collecting both outputs; its output, or None
/// if it was killed at `limit`, and how long it ran (for the tests that bound a duration).
pub fn run_capped(
    cmd: &mut Command,
    input: &[u8],
    limit: Duration,
) -> (Option<std::process::Output>, Duration) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    // Separate threads: the program may write before it has read all of its input.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = read_in_background(child.stdout.take().expect("piped stdout"));
    let err = read_in_background(child.stderr.take().expect("piped stderr"));
    let status = wait_capped(&mut child, limit);
    let took = started.elapsed();
    let _ = writer.join();
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let output = status.map(|status| std::process::Output {
        status,
        stdout,
        stderr,
    });
    (output, took)
}

/// Waits for `child` to end; kills it and fails the test (naming `what`) after `limit`.
pub fn wait_bounded(child: &mut Child, what: &str, limit: Duration) -> ExitStatus {
    wait_capped(child, limit).unwrap_or_else(|| panic!("{what} did not finish within {limit:?}"))
}

/// Waits for `child` to end, at most `limit`: its status, or None after killing it.
pub fn wait_capped(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Reads a pipe to its end in a thread of its own.
pub fn read_in_background<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Waits until `path` exists. Fails (with the reason) if `proc` exits first or `timeout` passes;
/// the caller then collects the program's output with `CProcess::wait` to show it.
pub fn wait_for_file(path: &Path, proc: &mut CProcess, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if proc.has_exited() {
            return Err(format!("program exited before creating {}", path.display()));
        }
        if Instant::now() > deadline {
            return Err(format!("{} not created within {timeout:?}", path.display()));
        }
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// A shared-memory namespace of one test: `MEMCACHE_SHM_PREFIX=t<pid><test>`. Dropping it
/// removes every segment in it.
pub struct ShmPrefix {
    pub prefix: String,
}

impl ShmPrefix {
    pub fn new(test: &str) -> ShmPrefix {
        let shm = ShmPrefix {
            prefix: format!("t{}{test}", std::process::id()),
        };
        shm.remove_all();
        shm
    }

    /// `/dev/shm/<prefix>.<domain>`.
    pub fn segment(&self, domain: &str) -> PathBuf {
        Path::new("/dev/shm").join(format!("{}.{domain}", self.prefix))
    }

    /// `mcadmin` in this namespace, with no `MEMCACHE_DOMAIN` from the test's own environment.
    pub fn mcadmin(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcadmin"));
        cmd.args(args)
            .env_remove("MEMCACHE_DOMAIN")
            .env("MEMCACHE_SHM_PREFIX", &self.prefix);
        cmd
    }

    /// [`mcadmin`](Self::mcadmin) keeping its changes in the state directory `state`, with the
    /// default bound on records from the future and no standard input.
    pub fn mcadmin_kept(&self, state: &Path, args: &[&str]) -> Command {
        let mut cmd = self.mcadmin(args);
        cmd.env("MEMCACHE_STATE_DIR", state)
            .env_remove("MEMCACHE_MAX_AHEAD")
            .stdin(std::process::Stdio::null());
        cmd
    }

    pub fn env(&self) -> (&'static str, String) {
        ("MEMCACHE_SHM_PREFIX", self.prefix.clone())
    }

    pub fn remove_all(&self) {
        let lead = format!("{}.", self.prefix);
        let Ok(entries) = std::fs::read_dir("/dev/shm") else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&lead) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The names of `/dev/shm` entries in this namespace, sorted.
    pub fn entries(&self) -> Vec<String> {
        let lead = format!("{}.", self.prefix);
        let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
            .expect("read /dev/shm")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&lead))
            .collect();
        names.sort();
        names
    }
}

impl Drop for ShmPrefix {
    fn drop(&mut self) {
        self.remove_all();
    }
}
