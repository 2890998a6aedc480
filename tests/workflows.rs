//! The propagation workflows (`memcache::propagate::{publish, pull, adopt, Watcher}`) called
//! in-process, as mcadmin calls them, against real memcached servers: no child process. Each test
//! simulates its hosts as shared-memory namespaces of its own (removed when the test ends) and
//! passes them explicitly, so tests running in parallel threads never share a segment.

mod support;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use memcache::address::ServerAddr;
use memcache::hash::Distribution;
use memcache::propagate::{
    self, adopt, publish, pull, Adopted, PublishError, PullError, Record, TellError, WatchError,
    WatchEvent, Watcher,
};
use memcache::registry::{DomainList, DomainName, Namespace};
use support::{DeadPort, Memcached, ShmPrefix};

/// Every wait on a server in these tests.
const TIMEOUT: Duration = Duration::from_secs(2);

fn domain() -> DomainName {
    DomainName::parse("web").unwrap()
}

/// A simulated host: a namespace of its own, its segments removed when dropped.
struct Host {
    shm: ShmPrefix,
}

impl Host {
    fn new(label: &str) -> Host {
        Host {
            shm: ShmPrefix::new(label),
        }
    }

    fn ns(&self) -> Namespace {
        Namespace::with_prefix(&self.shm.prefix).unwrap()
    }

    /// Sets the host's list of the test domain to `servers` (creating it), returning its version.
    fn set(&self, servers: &[&Memcached]) -> u64 {
        let list: Vec<ServerAddr> = servers.iter().map(|m| addr(m)).collect();
        self.ns()
            .open_writer(&domain(), true)
            .unwrap()
            .update(|l| {
                l.servers = list;
                Ok(())
            })
            .unwrap()
    }

    fn list(&self) -> Option<DomainList> {
        let reader = self.ns().open_reader(&domain()).unwrap()?;
        Some(reader.read().unwrap())
    }
}

fn addr(m: &Memcached) -> ServerAddr {
    ServerAddr::parse(&m.addr()).unwrap()
}

#[test]
fn publish_then_pull_round_trip() {
    let (s1, s2) = (Memcached::start(), Memcached::start());
    let (a, b) = (Host::new("wf_rt_a"), Host::new("wf_rt_b"));
    let version = a.set(&[&s1, &s2]);

    let published = publish(&a.ns(), &domain(), &[], TIMEOUT).unwrap();
    assert_eq!(published.previous, None, "a first publish finds no record");
    assert_eq!(published.record.list.version, version);
    assert_eq!(published.failed(), 0, "{:?}", published.told);
    let told: Vec<&ServerAddr> = published.told.iter().map(|t| &t.server).collect();
    assert_eq!(told, [&addr(&s1), &addr(&s2)]);

    // Host b has no segment: the pull creates it with a's list and version.
    let pulled = pull(&b.ns(), &domain(), &addr(&s2), TIMEOUT).unwrap();
    assert_eq!(pulled.adopted, Adopted::Created);
    assert_eq!(b.list().unwrap(), a.list().unwrap());

    // Pulled again: nothing to do.
    let again = pull(&b.ns(), &domain(), &addr(&s1), TIMEOUT).unwrap();
    assert_eq!(again.adopted, Adopted::UpToDate);

    // A change on a, published (the servers now know the earlier version), reaches b.
    let newer = a.set(&[&s1]);
    let published = publish(&a.ns(), &domain(), &[], TIMEOUT).unwrap();
    assert_eq!(published.previous, Some(version));
    assert_eq!(published.record.retired, [addr(&s2)], "s2 was removed");
    assert_eq!(published.told.len(), 2, "the retired server is told too");
    assert_eq!(published.failed(), 0);
    let pulled = pull(&b.ns(), &domain(), &addr(&s2), TIMEOUT).unwrap();
    assert_eq!(pulled.adopted, Adopted::Installed { was: version });
    assert_eq!(b.list().unwrap().version, newer);
    assert_eq!(b.list().unwrap().servers, [addr(&s1)]);

    // b may not publish its (now older than a's next) list over a newer record.
    a.set(&[&s1, &s2]);
    publish(&a.ns(), &domain(), &[], TIMEOUT).unwrap();
    match publish(&b.ns(), &domain(), &[], TIMEOUT) {
        Err(PublishError::Refused(why)) => assert!(why.contains("newer"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn adopt_installs_only_what_is_newer() {
    let s1 = Memcached::start();
    let host = Host::new("wf_adopt");
    let offered = |version: u64, servers: Vec<ServerAddr>| Record {
        domain: domain(),
        list: DomainList {
            version,
            distribution: Distribution::KetamaMd5,
            replicas: 1,
            servers,
        },
        retired: Vec::new(),
    };
    let v1 = memcache::registry::next_version_now(0);
    let first = offered(v1, vec![addr(&s1)]);
    assert_eq!(
        adopt(&host.ns(), &domain(), &first).unwrap(),
        Adopted::Created
    );
    assert_eq!(
        adopt(&host.ns(), &domain(), &first).unwrap(),
        Adopted::UpToDate
    );

    let other = offered(v1, vec![ServerAddr::new("127.0.0.1", 1)]);
    assert_eq!(
        adopt(&host.ns(), &domain(), &other).unwrap(),
        Adopted::Conflict
    );
    assert_eq!(
        host.list().unwrap().servers,
        [addr(&s1)],
        "a conflict changes nothing"
    );

    let v2 = memcache::registry::next_version_now(v1);
    let second = offered(v2, vec![addr(&s1), ServerAddr::new("127.0.0.1", 2)]);
    assert_eq!(
        adopt(&host.ns(), &domain(), &second).unwrap(),
        Adopted::Installed { was: v1 }
    );
    assert_eq!(host.list().unwrap(), second.list);
    assert_eq!(
        adopt(&host.ns(), &domain(), &first).unwrap(),
        Adopted::Older { local: v2 }
    );
    assert_eq!(host.list().unwrap(), second.list);
}

#[test]
fn watch_installs_a_changed_list_and_stops_on_request() {
    let (s1, s2) = (Memcached::start(), Memcached::start());
    let (a, b) = (Host::new("wf_watch_a"), Host::new("wf_watch_b"));
    a.set(&[&s1]);
    publish(&a.ns(), &domain(), &[], TIMEOUT).unwrap();

    // A seed without domains is refused before anything starts.
    assert!(matches!(
        Watcher::new(b.ns(), None, Some(addr(&s1))),
        Err(WatchError::SeedNeedsDomains)
    ));

    // One round, with a seed: b has no segment yet and gets it from s1.
    let mut watcher = Watcher::new(b.ns(), Some(vec![domain()]), Some(addr(&s1))).unwrap();
    watcher.set_timeout(TIMEOUT);
    let events = watcher.round(&mut || false);
    match events.as_slice() {
        [WatchEvent::Installed {
            source, was: None, ..
        }] => assert_eq!(source, &addr(&s1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.list().unwrap(), a.list().unwrap());
    assert!(watcher.round(&mut || false).is_empty(), "nothing new");

    // Running in a thread: a change published on a is installed, then the flag stops it.
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut events = Vec::new();
            let rounds = watcher.run(
                Duration::from_millis(100),
                || stop.load(Ordering::Relaxed),
                |e| events.push(e.clone()),
            );
            (rounds, events)
        })
    };
    let newer = a.set(&[&s1, &s2]);
    publish(&a.ns(), &domain(), &[], TIMEOUT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.list().unwrap().version != newer {
        assert!(Instant::now() < deadline, "the change never reached b");
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let asked = Instant::now();
    let (rounds, events) = runner.join().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "stop took too long"
    );
    assert!(rounds >= 1);
    assert!(
        events.iter().any(|e| matches!(
            e,
            WatchEvent::Installed { was: Some(_), list, .. } if list.version == newer
        )),
        "{events:?}"
    );
    assert_eq!(b.list().unwrap(), a.list().unwrap());

    // A bounded run: the stop callback ends it after its third question.
    let mut watcher = Watcher::new(b.ns(), Some(vec![domain()]), None).unwrap();
    let asked = Cell::new(0);
    let rounds = watcher.run(
        Duration::from_millis(1),
        || {
            asked.set(asked.get() + 1);
            asked.get() > 3
        },
        |e| panic!("nothing to report: {e:?}"),
    );
    assert!((1..=3).contains(&rounds), "{rounds}");
}

#[test]
fn watch_reports_a_problem_once() {
    let dead = DeadPort::new();
    let host = Host::new("wf_watch_dead");
    let server = ServerAddr::new("127.0.0.1", dead.port());
    host.ns()
        .open_writer(&domain(), true)
        .unwrap()
        .update(|l| {
            l.servers = vec![server.clone()];
            Ok(())
        })
        .unwrap();
    let mut watcher = Watcher::new(host.ns(), None, None).unwrap();
    watcher.set_timeout(Duration::from_millis(500));
    match watcher.round(&mut || false).as_slice() {
        [WatchEvent::Problem { domain: d, message }] => {
            assert_eq!(d.as_ref(), Some(&domain()));
            assert!(message.contains(&server.to_string()), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        watcher.round(&mut || false).is_empty(),
        "a persisting problem is reported once"
    );
}

#[test]
fn errors_are_typed() {
    let s1 = Memcached::start();
    let dead = DeadPort::new();
    let host = Host::new("wf_errors");

    // No domain here yet.
    assert!(matches!(
        publish(&host.ns(), &domain(), &[], TIMEOUT),
        Err(PublishError::NoDomain(d)) if d == domain()
    ));
    // The server holds no record.
    assert!(matches!(
        pull(&host.ns(), &domain(), &addr(&s1), TIMEOUT),
        Err(PullError::NoRecord { server }) if server == addr(&s1)
    ));
    // Nobody listens.
    let nobody = ServerAddr::new("127.0.0.1", dead.port());
    assert!(matches!(
        pull(&host.ns(), &domain(), &nobody, TIMEOUT),
        Err(PullError::Connect { .. })
    ));
    // An address that names no server is refused before any I/O.
    let bad = ServerAddr::new("a,b", 1);
    assert!(matches!(
        pull(&host.ns(), &domain(), &bad, TIMEOUT),
        Err(PullError::BadServer(_))
    ));
    assert!(matches!(
        publish(&host.ns(), &domain(), &[bad], TIMEOUT),
        Err(PublishError::BadServer(_))
    ));
    assert!(host.list().is_none(), "no error created a segment");

    // A server that is down fails on its own; the others are updated.
    host.set(&[&s1]);
    let published = publish(
        &host.ns(),
        &domain(),
        std::slice::from_ref(&nobody),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(published.failed(), 1);
    let down = published.told.iter().find(|t| t.server == nobody).unwrap();
    assert!(matches!(down.result, Err(TellError::Unreachable(_))));
    let up = published
        .told
        .iter()
        .find(|t| t.server == addr(&s1))
        .unwrap();
    assert!(up.result.is_ok());
    assert_eq!(
        propagate::NET_TIMEOUT,
        Duration::from_secs(2),
        "mcadmin's documented bound"
    );
}
