//! Segments end to end: round trips, hostile segments planted by hand, and the owner and mode
//! checks. Each test works in its own namespace (a unique prefix), so tests running in parallel
//! threads never see each other's segments and no environment variable is touched.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::layout::*;
use super::segment::{euid, fstat, shm_open};
use super::*;
use crate::hash::Distribution;

/// A namespace of its own for one test; removes every segment in it when dropped.
struct Scratch {
    ns: Namespace,
}

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("mctest-{}-{n}", std::process::id());
        Scratch {
            ns: Namespace::with_prefix(&prefix).unwrap(),
        }
    }

    fn domain(&self, name: &str) -> DomainName {
        DomainName::parse(name).unwrap()
    }

    fn c_segment(&self, domain: &DomainName) -> CString {
        CString::new(self.ns.segment_name(domain)).unwrap()
    }

    /// A segment with two servers published by a real writer (in slot 1: the empty list of
    /// creation is in slot 0).
    fn with_two_servers(&self, domain: &DomainName) -> u64 {
        let mut w = self.ns.open_writer(domain, true).unwrap();
        w.update(|list| {
            list.servers = vec![server("mc1", 11211), server("mc2", 11212)];
            Ok(())
        })
        .unwrap()
    }

    fn fd(&self, domain: &DomainName) -> OwnedFd {
        shm_open(&self.c_segment(domain), libc::O_RDWR, 0).unwrap()
    }

    /// Overwrites bytes of a segment in place, as a hostile or buggy writer would.
    fn poke(&self, domain: &DomainName, offset: usize, bytes: &[u8]) {
        let fd = self.fd(domain);
        // SAFETY: `bytes` is valid for reads of its length; the descriptor is open.
        let n = unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                offset as libc::off_t,
            )
        };
        assert_eq!(n, bytes.len() as isize);
    }

    fn peek_u64(&self, domain: &DomainName, offset: usize) -> u64 {
        let fd = self.fd(domain);
        let mut buf = [0u8; 8];
        // SAFETY: `buf` is valid for writes of 8 bytes; the descriptor is open.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                8,
                offset as libc::off_t,
            )
        };
        assert_eq!(n, 8);
        u64::from_ne_bytes(buf)
    }

    /// Offset of the slot the published word names.
    fn published_slot(&self, domain: &DomainName) -> usize {
        let (_, index) = split_published(self.peek_u64(domain, OFF_PUBLISHED));
        SLOT_OFFSETS[index]
    }

    fn set_len(&self, domain: &DomainName, len: usize) {
        let fd = self.fd(domain);
        // SAFETY: plain system call on an open descriptor.
        assert_eq!(
            unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) },
            0
        );
    }

    fn chmod(&self, domain: &DomainName, mode: libc::mode_t) {
        let fd = self.fd(domain);
        // SAFETY: plain system call on an open descriptor.
        assert_eq!(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }, 0);
    }

    fn shm_path(&self, domain: &DomainName) -> String {
        format!("/dev/shm{}", self.ns.segment_name(domain))
    }

    fn reader_err(&self, domain: &DomainName) -> RegistryError {
        match self.ns.open_reader(domain) {
            Ok(Some(r)) => r.read().unwrap_err(),
            Ok(None) => panic!("segment not found"),
            Err(e) => e,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for domain in self.ns.list_domains().unwrap_or_default() {
            let _ = self.ns.destroy(&domain);
            let _ = std::fs::remove_file(self.shm_path(&domain));
        }
    }
}

fn server(host: &str, port: u16) -> ServerEntry {
    ServerEntry {
        host: host.to_owned(),
        port,
        weight: 1,
        tls: false,
    }
}

fn assert_corrupt(err: RegistryError, needle: &str) {
    let msg = err.to_string();
    assert!(
        matches!(err, RegistryError::Corrupt(_)),
        "expected Corrupt, got {msg}"
    );
    assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
}

fn assert_insecure(err: RegistryError, needle: &str) {
    let msg = err.to_string();
    assert!(
        matches!(err, RegistryError::Insecure(_)),
        "expected Insecure, got {msg}"
    );
    assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
}

#[test]
fn namespaces_and_segment_names() {
    let d = DomainName::parse("myapp").unwrap();
    assert_eq!(Namespace::default().segment_name(&d), "/memcache.myapp");
    let ns = Namespace::with_prefix("hostB").unwrap();
    assert_eq!(ns.segment_name(&d), "/hostB.myapp");
    assert!(Namespace::with_prefix("a/b").is_err());
    assert!(Namespace::with_prefix("").is_err());

    let from = |v: Option<&str>| Namespace::from_env_value(v.map(OsStr::new));
    assert_eq!(from(None).unwrap(), Namespace::default());
    assert_eq!(from(Some("")).unwrap(), Namespace::default());
    assert_eq!(from(Some("t1")).unwrap().prefix(), "t1");
    let msg = from(Some("../x")).unwrap_err().to_string();
    assert!(
        msg.contains("MEMCACHE_SHM_PREFIX") && msg.contains("'/'"),
        "{msg}"
    );
    // The public wrapper reads the real environment, which the test harness does not set.
    if std::env::var_os(Namespace::ENV_VAR).is_none() {
        assert_eq!(segment_name(&d), "/memcache.myapp");
    }
}

#[test]
fn errors_have_one_line_messages() {
    let all = [
        RegistryError::BadName(NameError::Reserved),
        RegistryError::NotFound,
        RegistryError::Io(std::io::Error::other("boom")),
        RegistryError::Insecure("x".into()),
        RegistryError::Corrupt("x".into()),
        RegistryError::TooManyServers,
        RegistryError::BadEntry("x".into()),
        RegistryError::NotNewer {
            local: 2,
            offered: 1,
        },
    ];
    for e in all {
        let msg = e.to_string();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    }
    assert!(RegistryError::TooManyServers.to_string().contains("256"));
}

#[test]
fn reader_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Reader>();
    check::<Writer>();
}

#[test]
fn round_trip() {
    let s = Scratch::new();
    let d = s.domain("round-trip");
    assert!(s.ns.open_reader(&d).unwrap().is_none());
    assert!(matches!(
        s.ns.open_writer(&d, false),
        Err(RegistryError::NotFound)
    ));

    let mut w = s.ns.open_writer(&d, true).unwrap();
    let first = w.read().unwrap();
    assert_eq!(first.servers, vec![]);
    assert_eq!(first.distribution, Distribution::KetamaMd5);
    assert_eq!(first.replicas, 1);
    assert!(first.version >= 20_240_101 * UPDATES_PER_DAY);

    let st = fstat(std::os::fd::AsFd::as_fd(&s.fd(&d))).unwrap();
    assert_eq!(st.st_mode & 0o7777, 0o644);
    assert_eq!(st.st_size as usize, SEGMENT_SIZE);

    let r = s.ns.open_reader(&d).unwrap().unwrap();
    assert_eq!(r.version(), first.version);
    assert_eq!(r.read().unwrap(), first);
    assert_eq!(r.segment_name(), s.ns.segment_name(&d));

    let v1 = w
        .update(|list| {
            assert!(list.version > first.version, "change sees the new version");
            list.servers.push(server("mc1.example.com", 11211));
            list.servers.push(ServerEntry {
                host: "/run/memcached.sock".into(),
                port: 0,
                weight: 5,
                tls: false,
            });
            list.servers.push(server("::1", 11213));
            list.version = 1; // ignored
            Ok(())
        })
        .unwrap();
    assert!(v1 > first.version);
    assert_eq!(r.version(), v1);
    let got = r.read().unwrap();
    assert_eq!(got.version, v1);
    assert_eq!(got.servers.len(), 3);
    assert_eq!(got.servers[1].weight, 5);
    assert_eq!(got.servers[2].host, "::1");
    assert_eq!(w.read().unwrap(), got);

    // A change that fails, or produces an invalid list, writes nothing.
    let failed = w.update(|list| {
        list.servers.clear();
        Err(RegistryError::BadEntry("changed my mind".into()))
    });
    assert!(matches!(failed, Err(RegistryError::BadEntry(m)) if m == "changed my mind"));
    let dup = w.update(|list| {
        list.servers.push(server("MC1.example.com", 11211));
        Ok(())
    });
    assert!(matches!(dup, Err(RegistryError::BadEntry(m)) if m.contains("listed twice")));
    let too_many = w.update(|list| {
        list.servers = (1..=MAX_SERVERS as u16 + 1)
            .map(|p| server("h", p))
            .collect();
        Ok(())
    });
    assert!(matches!(too_many, Err(RegistryError::TooManyServers)));
    assert_eq!(r.version(), v1);
    assert_eq!(r.read().unwrap(), got);

    // Versions keep increasing; the full capacity and the other distribution round-trip.
    let mut last = v1;
    for round in 0..5u16 {
        let v = w
            .update(|list| {
                list.distribution = Distribution::Crc32Modulo;
                list.replicas = 2;
                list.servers = (1..=MAX_SERVERS as u16)
                    .map(|p| ServerEntry {
                        host: format!("host-{round}-{p}.{}", "x".repeat(200)),
                        port: p,
                        weight: u32::from(p),
                        tls: false,
                    })
                    .collect();
                Ok(())
            })
            .unwrap();
        assert!(v > last);
        last = v;
        let list = r.read().unwrap();
        assert_eq!(list.version, v);
        assert_eq!(list.servers.len(), MAX_SERVERS);
        assert_eq!(list.distribution, Distribution::Crc32Modulo);
        assert_eq!(list.replicas, 2);
        assert_eq!(list.servers[255].port, 256);
        assert!(list.servers[7]
            .host
            .starts_with(&format!("host-{round}-8.")));
    }

    // A second writer opening the existing segment continues the sequence.
    let mut w2 = s.ns.open_writer(&d, true).unwrap();
    let v = w2.update(|list| {
        list.servers.truncate(1);
        Ok(())
    });
    assert!(v.unwrap() > last);
    assert_eq!(r.read().unwrap().servers.len(), 1);
}

#[test]
fn destroy_list_and_staleness() {
    let s = Scratch::new();
    let (a, b) = (s.domain("alpha"), s.domain("beta.v2"));
    assert_eq!(s.ns.list_domains().unwrap(), vec![]);
    s.with_two_servers(&b);
    s.with_two_servers(&a);
    assert_eq!(s.ns.list_domains().unwrap(), vec![a.clone(), b.clone()]);

    let r = s.ns.open_reader(&a).unwrap().unwrap();
    assert!(!r.is_stale());
    let before = r.version();
    s.ns.destroy(&a).unwrap();
    assert!(matches!(s.ns.destroy(&a), Err(RegistryError::NotFound)));
    assert!(r.is_stale(), "destroyed");
    // Destroy leaves a tombstone in the old mapping: attached readers see the version move
    // (their one-load check) and are told the domain is gone.
    assert_ne!(r.version(), before);
    assert!(matches!(r.read(), Err(RegistryError::NotFound)));
    assert_eq!(s.ns.list_domains().unwrap(), vec![b.clone()]);

    let mut w = s.ns.open_writer(&a, true).unwrap();
    assert!(
        r.is_stale(),
        "re-created: another object under the same name"
    );
    let fresh = s.ns.open_reader(&a).unwrap().unwrap();
    assert!(!fresh.is_stale());
    assert_eq!(fresh.read().unwrap().servers, vec![]);
    w.update(|l| {
        l.servers.push(server("new", 1));
        Ok(())
    })
    .unwrap();
    assert!(!fresh.is_stale(), "updates do not make a reader stale");
    assert_eq!(fresh.read().unwrap().servers.len(), 1);
}

#[test]
fn concurrent_writers_take_turns() {
    let s = Scratch::new();
    let d = s.domain("turns");
    s.ns.open_writer(&d, true).unwrap();
    let per_thread = 60u16; // 4 * 60 fits in MAX_SERVERS
    std::thread::scope(|scope| {
        for t in 0..4u16 {
            let (ns, d) = (&s.ns, &d);
            scope.spawn(move || {
                let mut w = ns.open_writer(d, false).unwrap();
                let mut last = 0;
                for i in 0..per_thread {
                    let v = w
                        .update(|l| {
                            l.servers.push(server(&format!("t{t}"), i + 1));
                            Ok(())
                        })
                        .unwrap();
                    assert!(v > last);
                    last = v;
                }
            });
        }
    });
    let list = s.ns.open_reader(&d).unwrap().unwrap().read().unwrap();
    // Lost updates would show as fewer servers.
    assert_eq!(list.servers.len(), 4 * per_thread as usize);
}

/// A list as another host would have published it: exactly this version.
fn foreign_list(version: u64, servers: &[(&str, u16)]) -> DomainList {
    DomainList {
        version,
        distribution: Distribution::Crc32Modulo,
        replicas: 2,
        servers: servers.iter().map(|&(h, p)| server(h, p)).collect(),
    }
}

#[test]
fn install_publishes_exactly_the_given_version_if_newer() {
    let s = Scratch::new();
    let d = s.domain("install");
    let v1 = s.with_two_servers(&d);
    let mut w = s.ns.open_writer(&d, false).unwrap();
    let r = s.ns.open_reader(&d).unwrap().unwrap();

    let newer = foreign_list(v1 + 10, &[("mc3", 11213)]);
    assert_eq!(w.install(newer.clone()).unwrap(), v1 + 10);
    assert_eq!(r.version(), v1 + 10);
    assert_eq!(r.read().unwrap(), newer);

    // The same version again, an older one: refused, nothing written.
    for offered in [v1 + 10, v1 + 9, v1] {
        let err = w.install(foreign_list(offered, &[("x", 1)])).unwrap_err();
        assert!(
            matches!(err, RegistryError::NotNewer { local, offered: o } if local == v1 + 10 && o == offered),
            "{err}"
        );
        assert!(err.to_string().contains("not newer"), "{err}");
    }
    // Invalid lists and versions are refused before anything is looked at.
    let dup = foreign_list(v1 + 20, &[("a", 1), ("A", 1)]);
    assert!(matches!(w.install(dup), Err(RegistryError::BadEntry(m)) if m.contains("twice")));
    let huge = foreign_list(MAX_VERSION + 1, &[("a", 1)]);
    assert!(matches!(w.install(huge), Err(RegistryError::BadEntry(m)) if m.contains("version")));
    assert_eq!(r.read().unwrap(), newer);

    // Updates continue from the installed version.
    let v = w.update(|_| Ok(())).unwrap();
    assert!(v > v1 + 10);
}

#[test]
fn create_with_starts_a_new_segment_at_the_given_version() {
    let s = Scratch::new();
    let d = s.domain("adopted");
    // A version from long ago: a segment created the usual way would start later than it.
    let old = foreign_list(20_200_101 * UPDATES_PER_DAY + 7, &[("mc1", 11211)]);
    let (mut w, created) = s.ns.create_with(&d, &old).unwrap();
    assert!(created);
    let r = s.ns.open_reader(&d).unwrap().unwrap();
    assert_eq!(r.version(), old.version);
    assert_eq!(r.read().unwrap(), old);
    let st = fstat(std::os::fd::AsFd::as_fd(&s.fd(&d))).unwrap();
    assert_eq!(st.st_mode & 0o7777, 0o644);

    // An existing segment is left alone.
    let other = foreign_list(old.version + 5, &[("mc2", 11211)]);
    let (_, created) = s.ns.create_with(&d, &other).unwrap();
    assert!(!created);
    assert_eq!(r.read().unwrap(), old);
    assert!(w.update(|_| Ok(())).unwrap() > old.version);

    // A half-created segment (its creator died) is finished with the given list.
    let e = s.domain("half-adopted");
    drop(shm_open(&s.c_segment(&e), libc::O_RDWR | libc::O_CREAT, 0o644).unwrap());
    let (_, created) = s.ns.create_with(&e, &old).unwrap();
    assert!(created);
    assert_eq!(s.ns.open_reader(&e).unwrap().unwrap().read().unwrap(), old);

    // An unusable list creates nothing.
    let f = s.domain("never");
    for bad in [foreign_list(1, &[]), foreign_list(old.version, &[("", 1)])] {
        assert!(matches!(
            s.ns.create_with(&f, &bad),
            Err(RegistryError::BadEntry(_))
        ));
        assert!(s.ns.open_reader(&f).unwrap().is_none());
    }
}

#[test]
fn never_initialised_segments() {
    let s = Scratch::new();
    let d = s.domain("half-created");
    // A creator that died right after shm_open: an empty object.
    let fd = shm_open(&s.c_segment(&d), libc::O_RDWR | libc::O_CREAT, 0o644).unwrap();
    drop(fd);
    assert!(s.ns.open_reader(&d).unwrap().is_none());
    assert!(matches!(
        s.ns.open_writer(&d, false),
        Err(RegistryError::NotFound)
    ));
    // One that died after sizing it: zeros, nothing published.
    s.set_len(&d, SEGMENT_SIZE);
    assert!(s.ns.open_reader(&d).unwrap().is_none());
    assert!(matches!(
        s.ns.open_writer(&d, false),
        Err(RegistryError::NotFound)
    ));
    // `create` finishes the job.
    s.ns.open_writer(&d, true).unwrap();
    let r = s.ns.open_reader(&d).unwrap().unwrap();
    assert_eq!(r.read().unwrap().servers, vec![]);
}

#[test]
fn hostile_headers() {
    let s = Scratch::new();
    let cases: [(&str, usize, Vec<u8>, &str); 5] = [
        (
            "magic",
            OFF_MAGIC,
            0xdead_beef_u64.to_ne_bytes().to_vec(),
            "bad magic 0x00000000deadbeef",
        ),
        (
            "layout",
            OFF_LAYOUT_VERSION,
            2u32.to_ne_bytes().to_vec(),
            "layout version 2 is not supported",
        ),
        (
            "header-size",
            OFF_HEADER_SIZE,
            4096u32.to_ne_bytes().to_vec(),
            "header size is 4096, expected 64",
        ),
        (
            "slot-size",
            OFF_SLOT_SIZE,
            1u32.to_ne_bytes().to_vec(),
            "slot size is 1",
        ),
        (
            "capacity",
            OFF_MAX_SERVERS,
            100_000u32.to_ne_bytes().to_vec(),
            "server capacity is 100000",
        ),
    ];
    for (name, offset, bytes, needle) in cases {
        let d = s.domain(name);
        s.with_two_servers(&d);
        s.poke(&d, offset, &bytes);
        let segment = s.ns.segment_name(&d);
        assert_corrupt(s.reader_err(&d), needle);
        assert_corrupt(s.reader_err(&d), &segment);
        let w = s.ns.open_writer(&d, true);
        assert_corrupt(w.unwrap_err(), needle);
    }

    // Bad magic with nothing published is still garbage, not "being created".
    let d = s.domain("magic-unpublished");
    s.with_two_servers(&d);
    s.poke(&d, OFF_PUBLISHED, &0u64.to_ne_bytes());
    s.poke(&d, OFF_MAGIC, b"NOTMAGIC");
    assert_corrupt(s.reader_err(&d), "bad magic");
}

#[test]
fn truncated_segments() {
    let s = Scratch::new();
    for (name, len) in [
        ("tiny", 1),
        ("half-header", 16),
        ("header-only", HEADER_SIZE),
        ("one-slot", HEADER_SIZE + SLOT_SIZE),
        ("one-byte-short", SEGMENT_SIZE - 1),
    ] {
        let d = s.domain(name);
        s.with_two_servers(&d);
        s.set_len(&d, len);
        let needle = format!("truncated: {len} bytes");
        assert_corrupt(s.reader_err(&d), &needle);
        assert_corrupt(s.ns.open_writer(&d, true).unwrap_err(), &needle);
    }
    // Larger than the layout: mapped up to its size; the header decides.
    let d = s.domain("longer");
    s.with_two_servers(&d);
    s.set_len(&d, SEGMENT_SIZE + 4096);
    let r = s.ns.open_reader(&d).unwrap().unwrap();
    assert_eq!(r.read().unwrap().servers.len(), 2);
}

#[test]
fn hostile_slots() {
    let s = Scratch::new();
    let entry0 = OFF_SLOT_ENTRIES;
    let entry1 = OFF_SLOT_ENTRIES + ENTRY_SIZE;
    // Entry 2 rewritten as mc1:11211, the same server as entry 1.
    let mut duplicate_of_mc1 = vec![0u8; OFF_ENTRY_PORT + 2];
    duplicate_of_mc1[..3].copy_from_slice(b"mc1");
    duplicate_of_mc1[OFF_ENTRY_PORT..].copy_from_slice(&11211u16.to_ne_bytes());
    let cases: Vec<(&str, usize, Vec<u8>, &str)> = vec![
        (
            "huge-count",
            OFF_SLOT_COUNT,
            100_000u32.to_ne_bytes().to_vec(),
            "server count 100000 exceeds the maximum of 256",
        ),
        (
            "max-count",
            OFF_SLOT_COUNT,
            u32::MAX.to_ne_bytes().to_vec(),
            "server count 4294967295 exceeds",
        ),
        (
            "count-257",
            OFF_SLOT_COUNT,
            257u32.to_ne_bytes().to_vec(),
            "server count 257 exceeds",
        ),
        (
            "unterminated",
            entry1 + OFF_ENTRY_HOST,
            vec![b'x'; HOST_SIZE],
            "server 2: host is not NUL-terminated within 256 bytes",
        ),
        (
            "port0",
            entry0 + OFF_ENTRY_PORT,
            0u16.to_ne_bytes().to_vec(),
            "server 1: host mc1 has port 0",
        ),
        (
            "socket-with-port",
            entry0 + OFF_ENTRY_HOST,
            b"/tmp/mc.sock\0".to_vec(),
            "unix socket /tmp/mc.sock must have port 0",
        ),
        (
            "empty-host",
            entry0 + OFF_ENTRY_HOST,
            vec![0],
            "server 1: empty host",
        ),
        (
            "space-in-host",
            entry0 + OFF_ENTRY_HOST,
            b"mc 1\0".to_vec(),
            "whitespace or a control byte",
        ),
        (
            "weight0",
            entry1 + OFF_ENTRY_WEIGHT,
            0u32.to_ne_bytes().to_vec(),
            "weight 0",
        ),
        (
            "duplicate",
            entry1 + OFF_ENTRY_HOST,
            duplicate_of_mc1.clone(),
            "server mc1:11211 is listed twice",
        ),
        (
            "distribution7",
            OFF_SLOT_DISTRIBUTION,
            7u32.to_ne_bytes().to_vec(),
            "unknown distribution code 7",
        ),
        (
            "replicas0",
            OFF_SLOT_REPLICAS,
            0u32.to_ne_bytes().to_vec(),
            "replica count 0",
        ),
        (
            "slot-version",
            OFF_SLOT_VERSION,
            12345u64.to_ne_bytes().to_vec(),
            "holds version 12345 but version",
        ),
    ];
    for (name, offset, bytes, needle) in cases {
        let d = s.domain(name);
        let v = s.with_two_servers(&d);
        let slot = s.published_slot(&d);
        // The reader opens fine (the header is intact) and refuses the list.
        let r = s.ns.open_reader(&d).unwrap().unwrap();
        s.poke(&d, slot + offset, &bytes);
        let err = r.read().unwrap_err();
        assert_corrupt(err, needle);
        assert_corrupt(r.read().unwrap_err(), &s.ns.segment_name(&d));
        assert_eq!(r.version(), v);
        // A writer refuses to build on it, and writes nothing.
        let mut w = s.ns.open_writer(&d, false).unwrap();
        assert_corrupt(w.update(|_| Ok(())).unwrap_err(), needle);
        assert_eq!(r.version(), v);
    }
}

#[test]
fn published_word_pointing_at_the_wrong_slot() {
    let s = Scratch::new();
    let d = s.domain("wrong-slot");
    let v = s.with_two_servers(&d);
    let r = s.ns.open_reader(&d).unwrap().unwrap();
    let word = s.peek_u64(&d, OFF_PUBLISHED);
    let (_, index) = split_published(word);
    // The other slot holds the older, empty list of creation.
    s.poke(
        &d,
        OFF_PUBLISHED,
        &published_word(v, index ^ 1).to_ne_bytes(),
    );
    assert_corrupt(
        r.read().unwrap_err(),
        &format!("but version {v} is published"),
    );
    // A version newer than the slot's.
    s.poke(
        &d,
        OFF_PUBLISHED,
        &published_word(v + 5, index).to_ne_bytes(),
    );
    assert_corrupt(
        r.read().unwrap_err(),
        &format!("holds version {v} but version {}", v + 5),
    );
    assert_eq!(r.version(), v + 5);
    // Version 0 in a slot that says 0.
    s.poke(&d, OFF_PUBLISHED, &published_word(0, 1).to_ne_bytes());
    s.poke(&d, SLOT_OFFSETS[1] + OFF_SLOT_VERSION, &0u64.to_ne_bytes());
    assert_corrupt(r.read().unwrap_err(), "version 0 is published");
    // Putting the word back heals it (it is the only thing that was wrong).
    s.poke(&d, OFF_PUBLISHED, &word.to_ne_bytes());
    s.poke(&d, SLOT_OFFSETS[index] + OFF_SLOT_VERSION, &v.to_ne_bytes());
    assert_eq!(r.read().unwrap().servers.len(), 2);
}

#[test]
fn insecure_modes_are_refused() {
    let s = Scratch::new();
    for (name, mode, mode_text) in [
        ("world-writable", 0o666, "mode 0666"),
        ("group-writable", 0o620, "mode 0620"),
        ("others-write-only", 0o602, "mode 0602"),
    ] {
        let d = s.domain(name);
        s.with_two_servers(&d);
        s.chmod(&d, mode);
        assert_insecure(s.ns.open_reader(&d).unwrap_err(), mode_text);
        assert_insecure(
            s.ns.open_writer(&d, true).unwrap_err(),
            "writable by group or others",
        );
    }
    // Not writable by others: fine, even unreadable by them.
    let d = s.domain("private-to-owner");
    s.with_two_servers(&d);
    s.chmod(&d, 0o600);
    assert!(s.ns.open_reader(&d).unwrap().is_some());
}

#[test]
fn foreign_owners_are_refused() {
    let s = Scratch::new();
    let d = s.domain("foreign");
    s.with_two_servers(&d);
    if euid() != 0 {
        // Only root can give a file away; the check itself is the same either way.
        eprintln!("foreign_owners_are_refused: not root, owner change not tested");
        return;
    }
    // Root (uid 0) owns it now: accepted.
    assert!(s.ns.open_reader(&d).unwrap().is_some());
    let fd = s.fd(&d);
    // SAFETY: plain system call on an open descriptor.
    assert_eq!(unsafe { libc::fchown(fd.as_raw_fd(), 65534, 65534) }, 0);
    assert_insecure(
        s.ns.open_reader(&d).unwrap_err(),
        "owned by uid 65534, which is neither root nor uid 0",
    );
    assert_insecure(s.ns.open_writer(&d, true).unwrap_err(), "uid 65534");
}

#[test]
fn planted_non_files_are_refused_without_blocking() {
    let s = Scratch::new();
    // A FIFO would block a plain open(O_RDONLY) forever.
    let fifo = s.domain("fifo");
    let path = CString::new(s.shm_path(&fifo)).unwrap();
    // SAFETY: `path` is a valid NUL-terminated string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    assert_insecure(s.ns.open_reader(&fifo).unwrap_err(), "not a regular file");
    assert_insecure(
        s.ns.open_writer(&fifo, true).unwrap_err(),
        "not a regular file",
    );

    let dir = s.domain("dir");
    std::fs::create_dir(s.shm_path(&dir)).unwrap();
    let err = s.ns.open_reader(&dir).unwrap_err();
    assert!(
        matches!(err, RegistryError::Insecure(_) | RegistryError::Io(_)),
        "{err}"
    );
    std::fs::remove_dir(s.shm_path(&dir)).unwrap();

    // A symlink to someone else's segment is not followed.
    let target = s.domain("target");
    s.with_two_servers(&target);
    let link = s.domain("link");
    std::os::unix::fs::symlink(s.shm_path(&target), s.shm_path(&link)).unwrap();
    let err = s.ns.open_reader(&link).unwrap_err();
    assert!(matches!(err, RegistryError::Io(_)), "{err}");
    assert!(err.to_string().contains(&s.ns.segment_name(&link)), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Followers: a segment removed, replaced or destroyed under a handle (time driven by hand)

/// One check interval, in the nanoseconds of `Follower::poll_at`.
const TICK: u64 = CHECK_INTERVAL.as_nanos() as u64;
/// An arbitrary start on the coarse clock.
const T0: u64 = 1_000 * 1_000_000_000;

/// Creates `d` with one server, `host`, at `version`.
fn create(s: &Scratch, d: &DomainName, version: u64, host: &str) {
    let (_, created) =
        s.ns.create_with(d, &foreign_list(version, &[(host, 1)]))
            .unwrap();
    assert!(created);
}

fn hosts(update: &Update) -> Vec<String> {
    let list = update.list.as_ref().expect("a list to apply");
    list.servers.iter().map(|s| s.host.clone()).collect()
}

/// A follower attached to `d`, whose first poll took up the list on `host`.
fn follower_on(s: &Scratch, d: &DomainName, host: &str) -> Follower {
    let mut f = Follower::in_namespace(s.ns.clone(), d.clone());
    let first = f.poll_at(T0).expect("the first poll opens the segment");
    assert_eq!(hosts(&first), [host]);
    assert!(first.notice.is_none(), "attaching is not news: {first:?}");
    assert!(f.poll_at(T0 + 1).is_none(), "nothing changed");
    f
}

fn notice(update: Option<Update>) -> Notice {
    update
        .expect("an update")
        .notice
        .expect("a notice with the update")
}

#[test]
fn a_follower_takes_up_updates_at_once() {
    let s = Scratch::new();
    let d = s.domain("updates");
    create(&s, &d, 100, "a");
    let mut f = follower_on(&s, &d, "a");
    assert_eq!(f.applied(), 100);
    let mut w = s.ns.open_writer(&d, false).unwrap();
    let v2 = w
        .update(|l| {
            l.servers = vec![server("b", 1)];
            Ok(())
        })
        .unwrap();
    // Well before the deadline: the version moved, that is enough.
    let update = f.poll_at(T0 + 2).expect("the new version");
    assert_eq!(hosts(&update), ["b"]);
    assert!(update.notice.is_none());
    assert_eq!(f.applied(), v2);
    assert!(f.poll_at(T0 + 3).is_none());
    // At the deadline the name is checked: still the same object, nothing to do.
    assert!(f.poll_at(T0 + TICK).is_none());
    assert!(f.is_attached());
}

#[test]
fn a_follower_notices_a_removed_and_recreated_segment_at_the_deadline() {
    let s = Scratch::new();
    let d = s.domain("recreated");
    // The old segment is ahead of what the new one will start at.
    create(&s, &d, u64::MAX >> 2, "old");
    let mut f = follower_on(&s, &d, "old");
    std::fs::remove_file(s.shm_path(&d)).unwrap();
    create(&s, &d, 5, "new");
    assert!(
        f.poll_at(T0 + TICK - 1).is_none(),
        "the name is checked at most once per interval"
    );
    let update = f.poll_at(T0 + TICK).expect("the switch");
    assert_eq!(hosts(&update), ["new"], "a smaller version is followed too");
    let msg = notice(Some(update)).to_string();
    assert!(
        msg.contains(&s.ns.segment_name(&d)) && msg.contains("new segment"),
        "{msg}"
    );
    assert_eq!(f.applied(), 5);
    for i in 1..5 {
        assert!(f.poll_at(T0 + TICK + i * TICK).is_none(), "told once");
    }
}

#[test]
fn a_follower_notices_a_segment_moved_over_its_own() {
    let s = Scratch::new();
    let (d, e) = (s.domain("target"), s.domain("source"));
    create(&s, &e, 7, "moved");
    create(&s, &d, 9, "first");
    let mut f = follower_on(&s, &d, "first");
    let mut other = follower_on(&s, &e, "moved");
    std::fs::rename(s.shm_path(&e), s.shm_path(&d)).unwrap();
    let update = f.poll_at(T0 + TICK).expect("the switch");
    assert_eq!(hosts(&update), ["moved"]);
    assert!(matches!(
        update.notice,
        Some(Notice::Switched { version: 7, .. })
    ));
    // The follower of the moved segment's old name finds it gone.
    assert!(matches!(
        notice(other.poll_at(T0 + TICK)),
        Notice::Removed { kept: 7, .. }
    ));
    assert!(!other.is_attached());
}

#[test]
fn a_follower_keeps_the_last_list_of_a_removed_segment() {
    let s = Scratch::new();
    let d = s.domain("removed");
    create(&s, &d, 11, "kept");
    let mut f = follower_on(&s, &d, "kept");
    std::fs::remove_file(s.shm_path(&d)).unwrap();
    let removed = f.poll_at(T0 + TICK).expect("the removal");
    assert!(removed.list.is_none(), "the last list stays");
    let msg = notice(Some(removed)).to_string();
    assert!(
        msg.contains("was removed") && msg.contains("version 11"),
        "{msg}"
    );
    assert_eq!(f.applied(), 11);
    for i in 2..6 {
        assert!(f.poll_at(T0 + i * TICK).is_none(), "told once");
    }
    // Created again: found by the next look.
    create(&s, &d, 3, "back");
    assert!(f.poll_at(T0 + 6 * TICK - 1).is_none());
    let back = f.poll_at(T0 + 6 * TICK).expect("found again");
    assert_eq!(hosts(&back), ["back"]);
    assert!(matches!(
        back.notice,
        Some(Notice::Switched { version: 3, .. })
    ));
}

#[test]
fn a_follower_notices_destroy_at_once() {
    let s = Scratch::new();
    let d = s.domain("destroyed");
    create(&s, &d, 13, "a");
    let mut f = follower_on(&s, &d, "a");
    s.ns.destroy(&d).unwrap();
    // Long before the deadline: destroy marks the segment.
    assert!(matches!(
        notice(f.poll_at(T0 + 2)),
        Notice::Removed { kept: 13, .. }
    ));
    assert!(f.poll_at(T0 + 3).is_none());
    // Destroyed and re-created while the handle was idle: straight to the new segment.
    let e = s.domain("idle");
    create(&s, &e, 13, "b");
    let mut g = follower_on(&s, &e, "b");
    s.ns.destroy(&e).unwrap();
    create(&s, &e, 2, "c");
    let update = g.poll_at(T0 + 2).expect("the switch");
    assert_eq!(hosts(&update), ["c"]);
    assert!(matches!(
        update.notice,
        Some(Notice::Switched { version: 2, .. })
    ));
}

#[test]
fn a_follower_tells_an_unusable_replacement_once() {
    let s = Scratch::new();
    let d = s.domain("unusable");
    create(&s, &d, 17, "a");
    let mut f = follower_on(&s, &d, "a");
    std::fs::remove_file(s.shm_path(&d)).unwrap();
    create(&s, &d, 2, "b");
    s.chmod(&d, 0o666);
    let update = f.poll_at(T0 + TICK).expect("the refusal");
    assert!(update.list.is_none(), "an insecure segment is not followed");
    let msg = notice(Some(update)).to_string();
    assert!(msg.contains("writable by group or others"), "{msg}");
    for i in 2..5 {
        assert!(f.poll_at(T0 + i * TICK).is_none(), "told once");
    }
    s.chmod(&d, 0o644);
    let fixed = f.poll_at(T0 + 5 * TICK).expect("followed once repaired");
    assert_eq!(hosts(&fixed), ["b"]);
    assert!(matches!(fixed.notice, Some(Notice::Switched { .. })));
}
