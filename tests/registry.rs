//! Writers killed at random instants never leave readers with a torn list, and never leave the
//! segment locked.
//!
//! The writers are child processes: this test binary re-invoked with `--exact writer_child_entry`
//! and an environment variable that turns that otherwise empty test into a writer loop. Every
//! list a child publishes is derived from its version `V`: `V % 50 + 1` servers, all with host
//! `h<V>`, ports `1..=n` and weight `V % 1000 + 1`; so a reader can tell a torn copy (entries of
//! two versions, or a count that does not match) from a complete one.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memcache::registry::{
    destroy, segment_name, DomainList, DomainName, Reader, RegistryError, ServerEntry, Writer,
};

/// Set in a child: the domain to write.
const DOMAIN_ENV: &str = "MEMCACHE_REGISTRY_TEST_WRITER_DOMAIN";
/// Set in a child: `loop` (publish forever) or `hold` (publish once, then sit on the lock).
const MODE_ENV: &str = "MEMCACHE_REGISTRY_TEST_WRITER_MODE";
/// How long to wait for a child to show signs of life before failing.
const CHILD_START_TIMEOUT: Duration = Duration::from_secs(10);
const KILLS: usize = 200;

/// The list every version must carry.
fn fill(list: &mut DomainList) {
    let v = list.version;
    let n = (v % 50 + 1) as u16;
    list.servers = (1..=n)
        .map(|port| ServerEntry {
            host: format!("h{v}"),
            port,
            weight: (v % 1000 + 1) as u32,
            tls: false,
        })
        .collect();
}

/// Whether `list` is exactly what [`fill`] made for its version.
fn check(list: &DomainList) -> Result<(), String> {
    let mut expected = list.clone();
    fill(&mut expected);
    if *list == expected {
        Ok(())
    } else {
        Err(format!("torn list: {list:?}"))
    }
}

/// Not a test on its own: the entry point of the writer children (does nothing without
/// `MEMCACHE_REGISTRY_TEST_WRITER_DOMAIN`).
#[test]
fn writer_child_entry() {
    let Some(domain) = std::env::var_os(DOMAIN_ENV) else {
        return;
    };
    let domain = DomainName::parse(domain.to_str().unwrap()).unwrap();
    let parent = std::os::unix::process::parent_id();
    let orphaned = || std::os::unix::process::parent_id() != parent;
    let mut w = Writer::open(&domain, false).unwrap();
    match std::env::var(MODE_ENV).as_deref() {
        Ok("loop") => {
            for i in 0u64.. {
                w.update(|l| {
                    fill(l);
                    Ok(())
                })
                .unwrap();
                if i % 1024 == 0 && orphaned() {
                    break;
                }
            }
        }
        Ok("hold") => {
            w.update(|l| {
                fill(l);
                Ok(())
            })
            .unwrap();
            let _ = w.update(|_| {
                while !orphaned() {
                    thread::sleep(Duration::from_millis(50));
                }
                Err(RegistryError::NotFound)
            });
        }
        other => panic!("unknown writer mode {other:?}"),
    }
    std::process::exit(0);
}

/// A writer child, SIGKILLed and reaped when dropped (also when the test fails).
struct WriterChild(Child);

impl WriterChild {
    fn spawn(domain: &DomainName, mode: &str) -> WriterChild {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "writer_child_entry",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(DOMAIN_ENV, domain.as_str())
            .env(MODE_ENV, mode)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        WriterChild(child)
    }

    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for WriterChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Destroys the test's domain when dropped.
struct Cleanup(DomainName);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = destroy(&self.0);
    }
}

/// A fresh domain of this test process, with one list of the [`fill`] family published.
fn fresh_domain(name: &str) -> (DomainName, Cleanup) {
    let domain = DomainName::parse(&format!("{name}-{}", std::process::id())).unwrap();
    let _ = destroy(&domain);
    let mut w = Writer::open(&domain, true).unwrap();
    w.update(|l| {
        fill(l);
        Ok(())
    })
    .unwrap();
    (domain.clone(), Cleanup(domain))
}

/// Waits until the published version moves past `from`.
fn wait_for_new_version(reader: &Reader, from: u64, what: &str) {
    let deadline = Instant::now() + CHILD_START_TIMEOUT;
    while reader.version() == from {
        assert!(
            Instant::now() < deadline,
            "{what}: no new version published"
        );
        thread::sleep(Duration::from_micros(50));
    }
}

/// xorshift64*: enough randomness for kill delays.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng((nanos ^ u64::from(std::process::id()) << 32) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[derive(Default)]
struct ReaderStats {
    reads: AtomicU64,
    too_fast: AtomicU64,
    versions: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// Reads in a loop until `stop`, checking every list and that versions never go backwards.
fn read_until(reader: &Reader, stop: &AtomicBool, stats: &ReaderStats) {
    let mut last = 0;
    while !stop.load(Ordering::Relaxed) {
        let seen = reader.version();
        let result = reader.read();
        let failure = match result {
            Ok(list) if list.version < last || list.version < seen => Some(format!(
                "version went backwards: {} after {last} (word said {seen})",
                list.version
            )),
            Ok(list) => {
                if list.version != last {
                    stats.versions.fetch_add(1, Ordering::Relaxed);
                }
                last = list.version;
                check(&list).err()
            }
            Err(RegistryError::Corrupt(m)) if m.contains("changing too fast") => {
                stats.too_fast.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => Some(e.to_string()),
        };
        stats.reads.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = failure {
            stats.failures.lock().unwrap().push(f);
            return;
        }
    }
}

#[test]
fn killed_writers_never_tear_a_list() {
    let started = Instant::now();
    let (domain, _cleanup) = fresh_domain("torn");
    let shared = Arc::new(Reader::open(&domain).unwrap().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(ReaderStats::default());

    // Two threads share one reader (as threads share a handle), a third has its own.
    let readers: Vec<_> = (0..3)
        .map(|i| {
            let (shared, stop, stats, domain) =
                (shared.clone(), stop.clone(), stats.clone(), domain.clone());
            thread::spawn(move || {
                if i == 2 {
                    let own = Reader::open(&domain).unwrap().unwrap();
                    read_until(&own, &stop, &stats);
                } else {
                    read_until(&shared, &stop, &stats);
                }
            })
        })
        .collect();

    let mut rng = Rng::from_clock();
    for round in 0..KILLS {
        let before = shared.version();
        let child = WriterChild::spawn(&domain, "loop");
        // A child that gets the lock and publishes proves that the previous one, killed at
        // any instant (mostly while holding the lock), left it released.
        wait_for_new_version(&shared, before, &format!("round {round}"));
        thread::sleep(Duration::from_micros(rng.below(2000)));
        child.kill();
        // Whatever the child was doing, the published list is complete.
        let list = shared.read().unwrap();
        check(&list).unwrap();
        if !stats.failures.lock().unwrap().is_empty() {
            break;
        }
    }
    let kill_phase = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let failures = stats.failures.lock().unwrap();
    assert!(failures.is_empty(), "readers saw: {failures:?}");
    let (reads, versions) = (
        stats.reads.load(Ordering::Relaxed),
        stats.versions.load(Ordering::Relaxed),
    );
    eprintln!(
        "{KILLS} writers killed in {kill_phase:?}; readers made {reads} reads, saw {versions} \
         versions change, {} reads gave up as changing too fast",
        stats.too_fast.load(Ordering::Relaxed)
    );
    // The readers really ran alongside the writers (loose bounds: a loaded machine may starve
    // the reader threads for a while).
    assert!(reads >= KILLS as u64, "readers made only {reads} reads");
    assert!(versions >= 10, "readers saw only {versions} versions");
}

/// Tries to take the segment lock without waiting, as another writer would.
fn lock_is_free(domain: &DomainName) -> bool {
    let name = std::ffi::CString::new(segment_name(domain)).unwrap();
    // SAFETY: `name` is a valid NUL-terminated string; the result is checked before use.
    let fd = unsafe { libc::shm_open(name.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
    assert!(fd >= 0, "shm_open: {}", std::io::Error::last_os_error());
    // SAFETY: shm_open just returned this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain system call on an open descriptor; closing `fd` releases a lock we got.
    unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[test]
fn a_writer_killed_holding_the_lock_releases_it() {
    let (domain, _cleanup) = fresh_domain("held");
    let reader = Reader::open(&domain).unwrap().unwrap();
    let before = reader.version();
    let child = WriterChild::spawn(&domain, "hold");
    wait_for_new_version(&reader, before, "holding child");
    let deadline = Instant::now() + CHILD_START_TIMEOUT;
    while lock_is_free(&domain) {
        assert!(Instant::now() < deadline, "the child never took the lock");
        thread::sleep(Duration::from_millis(5));
    }
    // The child sits inside `update` with the lock held; a writer would wait now.
    child.kill();

    let (done, finished) = mpsc::channel();
    let d = domain.clone();
    thread::spawn(move || {
        let mut w = Writer::open(&d, false).unwrap();
        let v = w.update(|l| {
            fill(l);
            Ok(())
        });
        let _ = done.send(v);
    });
    let v = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("the next writer did not get the lock within 5 s")
        .unwrap();
    assert_eq!(reader.version(), v);
    check(&reader.read().unwrap()).unwrap();
    assert!(lock_is_free(&domain));
}

/// Costs of the reader's two calls; run with
/// `cargo test --release --test registry -- --ignored --nocapture measure`.
#[test]
#[ignore = "a measurement, not a test"]
fn measure_reader_costs() {
    let (domain, _cleanup) = fresh_domain("measure");
    let mut w = Writer::open(&domain, false).unwrap();
    w.update(|l| {
        l.servers = (1..=10)
            .map(|i| ServerEntry {
                host: format!("cache{i}.example.com"),
                port: 11211,
                weight: 1,
                tls: false,
            })
            .collect();
        Ok(())
    })
    .unwrap();
    let reader = Reader::open(&domain).unwrap().unwrap();

    const VERSION_CALLS: u32 = 10_000_000;
    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 0..VERSION_CALLS {
        sum = sum.wrapping_add(std::hint::black_box(&reader).version());
    }
    let per_version = t.elapsed().as_secs_f64() * 1e9 / f64::from(VERSION_CALLS);
    std::hint::black_box(sum);

    const READ_CALLS: u32 = 200_000;
    let t = Instant::now();
    for _ in 0..READ_CALLS {
        let list = std::hint::black_box(&reader).read().unwrap();
        assert_eq!(list.servers.len(), 10);
    }
    let per_read = t.elapsed().as_secs_f64() * 1e9 / f64::from(READ_CALLS);
    eprintln!(
        "Reader::version(): {:.2} ns/call over {VERSION_CALLS} calls; \
         Reader::read() of 10 servers: {:.0} ns/call over {READ_CALLS} calls",
        per_version, per_read
    );
}
