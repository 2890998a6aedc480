//! The propagation workflows (`memcache::propagate::{publish, supersede, pull, adopt,
//! Watcher}`) called in-process, as mcadmin calls them, against real memcached servers: no child process. Each test
//! simulates its hosts as shared-memory namespaces of its own (removed when the test ends) and
//! passes them explicitly, so tests running in parallel threads never share a segment.

mod support;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memcache::address::ServerAddr;
use memcache::hash::Distribution;
use memcache::propagate::{
    self, adopt, publish, pull, pull_within, supersede, Adopted, NetError, PublishError, PullError,
    Record, Replace, TellError, WatchError, WatchEvent, Watcher,
};
use memcache::registry::{
    day_base, epoch_of, DomainList, DomainName, Namespace, EPOCH_SPAN, UPDATES_PER_DAY,
};
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

// ---------------------------------------------------------------------------------------------
// Issue 13, point 7: a record from the future. One dated further ahead of the local clock than
// the bound is refused (pull, watch: reported once per record, not per poll); after a future
// version got installed somewhere, the operator's `publish --force` (an epoch that supersedes)
// is accepted by every host, the one holding the future version included. The records from the
// future are written with the library's own `store`, as a host with a clock far ahead would.

const DAY: u64 = 86_400;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The first version of the day `days` from today.
fn dated_in(days: u64) -> u64 {
    day_base(now() + days * DAY)
}

/// Stores a record of `version` listing `servers` on `on`, unconditionally: what a host whose
/// clock was ahead published.
fn plant(on: &Memcached, version: u64, servers: &[&Memcached]) -> Record {
    let record = Record {
        domain: domain(),
        list: DomainList {
            servers: servers.iter().map(|m| addr(m)).collect(),
            ..DomainList::empty(version)
        },
        retired: Vec::new(),
    };
    let bytes = record.encode();
    let mut slot = propagate::connect(&addr(on), TIMEOUT).unwrap();
    let stored = slot
        .exchange(&mut Vec::new(), |conn, wbuf| {
            propagate::store(conn, wbuf, &domain(), &bytes, Replace::Anything)
        })
        .unwrap();
    assert!(stored);
    record
}

#[test]
fn a_host_that_installed_a_future_record_accepts_the_forced_fix() {
    let (s1, s2) = (Memcached::start(), Memcached::start());
    let (operator, follower) = (Host::new("fut_fix_op"), Host::new("fut_fix_fl"));
    let future = dated_in(10) + 7;

    // A host whose clock was ten days ahead published; the follower, whose bound was generous
    // (or whose clock was wrong too), installed it.
    let bad = plant(&s1, future, &[&s1]);
    plant(&s2, future, &[&s1]);
    let generous = Duration::from_secs(30 * DAY);
    let pulled = pull_within(&follower.ns(), &domain(), &addr(&s1), TIMEOUT, generous).unwrap();
    assert_eq!(pulled.adopted, Adopted::Created);
    assert_eq!(follower.list().unwrap(), bad.list);

    // The operator's host refuses that record (one day ahead at most, by default).
    match pull(&operator.ns(), &domain(), &addr(&s1), TIMEOUT) {
        Err(PullError::Fetch {
            error: NetError::Invalid(e),
            ..
        }) => {
            assert_eq!(e.ahead(), Some(future));
            assert!(e.message().contains("publish --force"), "{e}");
        }
        other => panic!("{other:?}"),
    }

    // The lockout: an ordinary fix replaces the refused record on the servers, but the follower,
    // holding the future version, takes today's version as older.
    let today = operator.set(&[&s1, &s2]);
    assert!(today < future);
    let published = publish(&operator.ns(), &domain(), &[], TIMEOUT).unwrap();
    assert_eq!(published.failed(), 0, "{:?}", published.told);
    assert!(published.told.iter().all(|t| t.replaced_invalid.is_some()));
    let locked = pull(&follower.ns(), &domain(), &addr(&s1), TIMEOUT).unwrap();
    assert_eq!(locked.adopted, Adopted::Older { local: future });
    assert_eq!(
        follower.list().unwrap().servers,
        bad.list.servers,
        "still the bad list"
    );

    // The way out: publish --force republishes the list in the next epoch, above every version.
    let forced = supersede(&operator.ns(), &domain(), &[], TIMEOUT).unwrap();
    assert_eq!(forced.failed(), 0, "{:?}", forced.told);
    let v = forced.record.list.version;
    assert_eq!(epoch_of(v), 1);
    assert_eq!(v, EPOCH_SPAN + dated_in(0));
    assert_eq!(operator.list().unwrap().version, v, "installed here first");
    let fixed = pull(&follower.ns(), &domain(), &addr(&s2), TIMEOUT).unwrap();
    assert_eq!(fixed.adopted, Adopted::Installed { was: future });
    assert_eq!(follower.list().unwrap(), operator.list().unwrap());

    // Life goes on in the new epoch: the next change is newer and dated by the clock.
    let next = operator.set(&[&s2]);
    assert_eq!(next, v + 1);
    publish(&operator.ns(), &domain(), &[], TIMEOUT).unwrap();
    let pulled = pull(&follower.ns(), &domain(), &addr(&s2), TIMEOUT).unwrap();
    assert_eq!(pulled.adopted, Adopted::Installed { was: v });
}

#[test]
fn a_host_whose_own_list_is_from_the_future_gets_out_with_force() {
    let s1 = Memcached::start();
    let host = Host::new("fut_own");
    // Its clock was three days ahead when the list was last changed, and is right now.
    let future = dated_in(3);
    let list = DomainList {
        servers: vec![addr(&s1)],
        ..DomainList::empty(future)
    };
    host.ns().create_with(&domain(), &list).unwrap();
    // Every change it makes stays in the future (versions never go back)...
    let changed = host.set(&[&s1]);
    assert_eq!(changed, future + 1);
    // ...and cannot be published: every other host would refuse it.
    match publish(&host.ns(), &domain(), &[], TIMEOUT) {
        Err(PublishError::Unpublishable(e)) => {
            assert!(e.message().contains("ahead of this host's clock"), "{e}");
            assert!(e.message().contains("publish --force"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let forced = supersede(&host.ns(), &domain(), &[], TIMEOUT).unwrap();
    assert_eq!(forced.failed(), 0);
    assert_eq!(forced.record.list.version, EPOCH_SPAN + dated_in(0));
    assert_eq!(forced.record.list.servers, [addr(&s1)]);
    let other = Host::new("fut_own_b");
    let pulled = pull(&other.ns(), &domain(), &addr(&s1), TIMEOUT).unwrap();
    assert_eq!(pulled.adopted, Adopted::Created);
    // A second supersession moves on an epoch again.
    let again = supersede(&host.ns(), &domain(), &[], TIMEOUT).unwrap();
    assert_eq!(epoch_of(again.record.list.version), 2);
}

#[test]
fn a_record_beyond_the_bound_is_refused_and_reported_once() {
    let (s1, s2) = (Memcached::start(), Memcached::start());
    let host = Host::new("fut_bound");
    let local = host.set(&[&s1, &s2]);
    let ahead = dated_in(3) + 1;
    plant(&s1, ahead, &[&s1]);
    plant(&s2, ahead, &[&s1]);

    // A bound is a choice: three days ahead is refused with one day, accepted with a week.
    let refused = pull_within(
        &host.ns(),
        &domain(),
        &addr(&s1),
        TIMEOUT,
        Duration::from_secs(DAY),
    );
    assert!(
        matches!(&refused, Err(PullError::Fetch { error: NetError::Invalid(e), .. })
                 if e.ahead() == Some(ahead)),
        "{refused:?}"
    );
    assert_eq!(host.list().unwrap().version, local, "nothing installed");

    // watch: one report for the record, however many servers hold it and rounds see it.
    let mut watcher = Watcher::new(host.ns(), None, None).unwrap();
    watcher.set_timeout(TIMEOUT);
    let mut reports = Vec::new();
    for _ in 0..4 {
        for event in watcher.round(&mut || false) {
            match event {
                WatchEvent::Problem { message, .. } => reports.push(message),
                other => panic!("nothing is installed: {other:?}"),
            }
        }
    }
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert!(
        reports[0].contains(&format!("version {ahead} is dated"))
            && reports[0].contains("ahead of this host's clock"),
        "{}",
        reports[0]
    );
    assert_eq!(host.list().unwrap().version, local);

    // Another record from the future is another report.
    let further = ahead + UPDATES_PER_DAY;
    plant(&s1, further, &[&s1]);
    plant(&s2, further, &[&s1]);
    let events = watcher.round(&mut || false);
    assert!(
        matches!(events.as_slice(), [WatchEvent::Problem { message, .. }]
                 if message.contains(&format!("version {further}"))),
        "{events:?}"
    );

    // A watcher with a wider bound installs it.
    let mut trusting = Watcher::new(host.ns(), None, None).unwrap();
    trusting.set_max_ahead(Duration::from_secs(7 * DAY));
    let events = trusting.round(&mut || false);
    assert!(
        matches!(events.as_slice(), [WatchEvent::Installed { was: Some(v), .. }] if *v == local),
        "{events:?}"
    );
    assert_eq!(host.list().unwrap().version, further);
}
