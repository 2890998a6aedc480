//! Helpers of the source tests (issue 14): a running `mcadmin watch` whose report lines can be
//! read while it runs, and bounded waiting.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The list of `domain` in `ns`, if it has a segment.
pub fn list_of(
    ns: &memcache::registry::Namespace,
    domain: &str,
) -> Option<memcache::registry::DomainList> {
    ns.open_reader(&memcache::registry::DomainName::parse(domain).unwrap())
        .unwrap()
        .map(|r| r.read().unwrap())
}

/// Waits until `ready` holds, looking every 10 ms; false after `limit`.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A running `mcadmin watch` (or any command whose stderr lines a test reads as they come),
/// killed when dropped.
pub struct Watching {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Watching {
    /// `mcadmin watch --domain DOMAIN --from URL` in `shm`'s namespace, keeping its lists in
    /// the state directory `state`.
    pub fn domain_from(
        shm: &super::ShmPrefix,
        state: &std::path::Path,
        domain: &str,
        url: &str,
    ) -> Watching {
        Watching::spawn(shm.mcadmin_kept(state, &["watch", "--domain", domain, "--from", url]))
    }

    /// Starts `cmd` with stderr read line by line in the background.
    pub fn spawn(mut cmd: Command) -> Watching {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let err = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&lines);
        let reader = thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                into.lock().unwrap().push(line);
            }
        });
        Watching {
            child: Some(child),
            lines,
            reader: Some(reader),
        }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The lines so far that contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits up to `limit` for a line containing `needle`.
    pub fn wait_line(&self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.count(needle) > 0)
    }

    /// Every line so far, one string (for assertion messages).
    pub fn log(&self) -> String {
        self.lines().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, then waits (up to 10 s, then SIGKILL) for the exit and the last lines.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(5));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A real dnsmasq answering from the records a test gives (`--host-record=NAME,IP`,
/// `--srv-host=...` words), on a free loopback port, nothing else: no upstream, no /etc/hosts;
/// other names are REFUSED, or NXDOMAIN under a `--local=/test/` given. Killed when dropped.
pub struct Dnsmasq {
    child: Option<Child>,
    pub port: u16,
    ttl: u32,
}

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

impl Dnsmasq {
    /// Starts dnsmasq with `records`, answering with TTL `ttl` seconds.
    pub fn start(records: &[String], ttl: u32) -> Dnsmasq {
        let mut last = String::new();
        for _ in 0..10 {
            let port = super::free_port();
            match Dnsmasq::spawn(port, records, ttl) {
                Ok(child) => {
                    return Dnsmasq {
                        child: Some(child),
                        port,
                        ttl,
                    }
                }
                Err(e) => last = e,
            }
        }
        panic!("cannot start dnsmasq: {last}");
    }

    fn spawn(port: u16, records: &[String], ttl: u32) -> Result<Child, String> {
        let mut cmd = Command::new(DNSMASQ);
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            "--group=root",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--local-ttl={ttl}"))
        .args(records)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("spawn {DNSMASQ}: {e}"))?;
        // Ready when it answers on the port (its own answer: nobody else can bind it now).
        let ready = wait_until(Duration::from_secs(5), || {
            matches!(child.try_wait(), Ok(Some(_))) || dns_answers(port)
        });
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
                Err(format!("dnsmasq on port {port} exited: {status}: {err}"))
            }
            _ if ready => Ok(child),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("dnsmasq on port {port} not answering after 5 s"))
            }
        }
    }

    /// Replaces the records: dnsmasq reads them only at start, so it restarts on the same port.
    pub fn restart_with(&mut self, records: &[String]) {
        self.kill();
        let mut last = String::new();
        for _ in 0..50 {
            match Dnsmasq::spawn(self.port, records, self.ttl) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) => last = e,
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("cannot restart dnsmasq on port {}: {last}", self.port);
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `dns://127.0.0.1:PORT/NAME` with `query` (e.g. "?type=SRV").
    pub fn url(&self, name: &str, query: &str) -> String {
        format!("dns://127.0.0.1:{}/{name}{query}", self.port)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // SAFETY: as in signal(); a stopped process dies of SIGKILL anyway.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
        }
        self.kill();
    }
}

/// Whether something answers a DNS query for `test.` on UDP `port` of 127.0.0.1.
pub fn dns_answers(port: u16) -> bool {
    let Ok(socket) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    // id 0x4d43, RD, one question: "test." SOA IN.
    let query = [
        0x4d, 0x43, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, b't', b'e', b's', b't', 0, 0, 6, 0, 1,
    ];
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    if socket.send_to(&query, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(socket.recv(&mut buf), Ok(n) if n >= 2 && buf[..2] == [0x4d, 0x43])
}

/// A real etcd (Debian's etcd-server) on free loopback ports with its own data directory,
/// killed when dropped. `etcdctl` (etcd-client) writes what tests put in it.
pub struct Etcd {
    child: Option<Child>,
    pub port: u16,
    peer: u16,
    data: std::path::PathBuf,
}

impl Etcd {
    pub fn start(data: &std::path::Path) -> Etcd {
        let mut last = String::new();
        for _ in 0..5 {
            let (port, peer) = (super::free_port(), super::free_port());
            let mut etcd = Etcd {
                child: None,
                port,
                peer,
                data: data.to_path_buf(),
            };
            match etcd.spawn() {
                Ok(()) => return etcd,
                Err(e) => last = e,
            }
        }
        panic!("cannot start etcd: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let client = format!("http://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(&self.data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("t={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn etcd: {e}"))?;
        self.child = Some(child);
        let ready = wait_until(Duration::from_secs(20), || {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            exited || self.ctl(&["put", "/ready", "1"]).is_ok()
        });
        if !ready || self.ctl(&["get", "/ready"]).is_err() {
            self.kill();
            return Err(format!("etcd on port {} did not start", self.port));
        }
        Ok(())
    }

    /// `etcdctl ARGS` against this etcd: its stdout, or why it failed.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=127.0.0.1:{}", self.port))
            .args(["--dial-timeout=1s", "--command-timeout=3s"])
            .args(args)
            .stdin(Stdio::null());
        let out = super::run_bounded(&mut cmd, b"", Duration::from_secs(10));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `etcdctl put KEY VALUE`, which must succeed.
    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]).expect("etcdctl put");
    }

    pub fn url(&self, key: &str) -> String {
        format!("etcd://127.0.0.1:{}/{key}", self.port)
    }

    /// The store's current revision, as etcd reports it with any read.
    pub fn revision(&self) -> i64 {
        let out = self
            .ctl(&["get", "/ready", "-w", "json"])
            .expect("etcdctl get");
        let reply: serde_json::Value = serde_json::from_str(&out).expect("etcdctl's JSON");
        reply["header"]["revision"].as_i64().expect("a revision")
    }

    /// Compacts the store up to its current revision: a watch from any earlier revision is
    /// refused by etcd from then on. Returns that revision.
    pub fn compact_all(&self) -> i64 {
        let revision = self.revision();
        self.ctl(&["compact", &revision.to_string(), "--physical"])
            .expect("etcdctl compact");
        revision
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
    }

    /// Kills etcd and starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        let mut last = String::new();
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            thread::sleep(Duration::from_millis(200));
        }
        panic!("cannot restart etcd: {last}");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // SAFETY: as in signal().
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
        }
        self.kill();
    }
}
