//! Issue 13, point 7: a record from the future. A record dated further ahead of the local clock
//! than the bound is refused (pull, watch: reported once per record, not per poll); and after a
//! future version got installed somewhere, the operator's `publish --force` (an epoch that
//! supersedes) is accepted by every host, the one holding the future version included. Against
//! real memcached servers; the records from the future are written with the library's own
//! `store`, as a host with a clock far ahead would.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memcache::address::ServerAddr;
use memcache::propagate::{
    self, publish, pull, pull_within, supersede, Adopted, NetError, PublishError, PullError,
    Record, Replace, WatchEvent, Watcher,
};
use memcache::registry::{
    day_base, epoch_of, DomainList, DomainName, Namespace, EPOCH_SPAN, UPDATES_PER_DAY,
};
use support::{Memcached, ShmPrefix};

const TIMEOUT: Duration = Duration::from_secs(2);
const DAY: u64 = 86_400;

fn domain() -> DomainName {
    DomainName::parse("web").unwrap()
}

fn addr(m: &Memcached) -> ServerAddr {
    ServerAddr::parse(&m.addr()).unwrap()
}

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

    fn list(&self) -> DomainList {
        self.ns()
            .open_reader(&domain())
            .unwrap()
            .unwrap()
            .read()
            .unwrap()
    }
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
    assert_eq!(follower.list(), bad.list);

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
        follower.list().servers,
        bad.list.servers,
        "still the bad list"
    );

    // The way out: publish --force republishes the list in the next epoch, above every version.
    let forced = supersede(&operator.ns(), &domain(), &[], TIMEOUT).unwrap();
    assert_eq!(forced.failed(), 0, "{:?}", forced.told);
    let v = forced.record.list.version;
    assert_eq!(epoch_of(v), 1);
    assert_eq!(v, EPOCH_SPAN + dated_in(0));
    assert_eq!(operator.list().version, v, "installed here first");
    let fixed = pull(&follower.ns(), &domain(), &addr(&s2), TIMEOUT).unwrap();
    assert_eq!(fixed.adopted, Adopted::Installed { was: future });
    assert_eq!(follower.list(), operator.list());

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
    assert_eq!(host.list().version, local, "nothing installed");

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
    assert_eq!(host.list().version, local);

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
    assert_eq!(host.list().version, further);
}
