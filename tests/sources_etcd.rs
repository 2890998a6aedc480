//! Issue 14: `etcd://` sources against a real etcd on loopback ports: publish and pull, a watch
//! that installs a change as it happens (no polling), and the faults (etcd restarted mid-watch,
//! etcd stopped with SIGSTOP for longer than the timeout, a value that is no list): each
//! reported once, the installed list kept, and the watch recovering by itself; and compacted
//! revisions, which end with the last list.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use memcache::registry::Namespace;
use support::sources::{list_of, wait_until, Etcd, Watching};
use support::{temp_dir, ShmPrefix};

const LIMIT: Duration = Duration::from_secs(30);

fn ports(ns: &Namespace, domain: &str) -> Vec<u16> {
    list_of(ns, domain).map_or_else(Vec::new, |l| l.servers.iter().map(|s| s.port).collect())
}

#[test]
fn publish_then_pull_through_etcd() {
    let dir = temp_dir("etcd_pub");
    let etcd = Etcd::start(&dir.join("etcd"));
    let (a, b) = (ShmPrefix::new("etcd_pub_a"), ShmPrefix::new("etcd_pub_b"));
    let url = etcd.url("memcache/web");
    let run = |host: &ShmPrefix, state: &str, args: &[&str]| {
        let out = host.mcadmin_kept(&dir.join(state), args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Nothing there yet: a failure, not an empty list.
    let out = b
        .mcadmin_kept(&dir.join("b"), &["--domain", "web", "pull", "--from", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no list at key"),
        "{out:?}"
    );

    run(
        &a,
        "a",
        &["--domain", "web", "set", "127.0.0.1:11", "127.0.0.1:12=4"],
    );
    let said = run(&a, "a", &["--domain", "web", "publish", "--to", &url]);
    assert!(said.contains("at revision"), "{said}");
    let stored = etcd
        .ctl(&["get", "/memcache/web", "--print-value-only"])
        .unwrap();
    assert!(stored.contains("server 127.0.0.1:12 weight=4"), "{stored}");
    run(&b, "b", &["--domain", "web", "pull", "--from", &url]);
    let nb = Namespace::with_prefix(&b.prefix).unwrap();
    let na = Namespace::with_prefix(&a.prefix).unwrap();
    assert_eq!(ports(&nb, "web"), [11, 12]);
    assert_eq!(
        list_of(&nb, "web").unwrap().servers,
        list_of(&na, "web").unwrap().servers
    );
    let said = run(&b, "b", &["--domain", "web", "pull", "--from", &url]);
    assert!(said.contains("already has the list"), "{said}");
}

/// `publish --to etcd://` overwrites only the revision this host last pulled, watched or
/// published: an administrator who pulled before a colleague published is refused, however
/// long ago the pull was, and a host that never pulled may only create the key.
#[test]
fn publish_overwrites_only_what_this_host_has_seen() {
    let dir = temp_dir("etcd_cas");
    let etcd = Etcd::start(&dir.join("etcd"));
    let (a, b, c, d) = (
        ShmPrefix::new("etcd_cas_a"),
        ShmPrefix::new("etcd_cas_b"),
        ShmPrefix::new("etcd_cas_c"),
        ShmPrefix::new("etcd_cas_d"),
    );
    let url = etcd.url("memcache/shop");
    let mcadmin = |host: &ShmPrefix, state: &str, args: &[&str]| {
        let mut all = vec!["--domain", "shop"];
        all.extend_from_slice(args);
        let out = host.mcadmin_kept(&dir.join(state), &all).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), said)
    };
    let stored = || {
        etcd.ctl(&["get", "/memcache/shop", "--print-value-only"])
            .unwrap()
    };
    let ok = |(code, said): (Option<i32>, String)| {
        assert_eq!(code, Some(0), "{said}");
        said
    };
    let refused = |(code, said): (Option<i32>, String), why: &str| {
        assert_eq!(code, Some(3), "{said}");
        assert!(
            said.contains(why) && said.contains("nothing written"),
            "{said}"
        );
    };

    // a creates the key; b pulls it and publishes a change on top: both allowed.
    ok(mcadmin(&a, "a", &["set", "127.0.0.1:31"]));
    ok(mcadmin(&a, "a", &["publish", "--to", &url]));
    ok(mcadmin(&b, "b", &["pull", "--from", &url]));
    ok(mcadmin(&b, "b", &["add", "127.0.0.1:32"]));
    ok(mcadmin(&b, "b", &["publish", "--to", &url]));
    assert!(stored().contains("127.0.0.1:32"), "{}", stored());

    // a publishes again without having seen b's change: refused, b's list stays.
    ok(mcadmin(&a, "a", &["add", "127.0.0.1:33"]));
    refused(
        mcadmin(&a, "a", &["publish", "--to", &url]),
        "changed since",
    );
    assert!(
        stored().contains("127.0.0.1:32") && !stored().contains("127.0.0.1:33"),
        "{}",
        stored()
    );
    // Once a has pulled (and so taken b's list), its next change goes through.
    ok(mcadmin(&a, "a", &["pull", "--from", &url]));
    ok(mcadmin(&a, "a", &["add", "127.0.0.1:34"]));
    ok(mcadmin(&a, "a", &["publish", "--to", &url]));
    let now = stored();
    assert!(
        now.contains("127.0.0.1:32") && now.contains("127.0.0.1:34"),
        "{now}"
    );

    // c never pulled: it may not overwrite an existing key, except with --force.
    ok(mcadmin(&c, "c", &["set", "127.0.0.1:35"]));
    refused(
        mcadmin(&c, "c", &["publish", "--to", &url]),
        "has not pulled",
    );
    assert_eq!(stored(), now);
    ok(mcadmin(&c, "c", &["publish", "--to", &url, "--force"]));
    assert!(stored().contains("127.0.0.1:35"), "{}", stored());
    // ... after which c is the one that has seen the key last.
    ok(mcadmin(&c, "c", &["add", "127.0.0.1:36"]));
    ok(mcadmin(&c, "c", &["publish", "--to", &url]));

    // A host following the key with watch records each revision it installs, so it may
    // publish over the latest one.
    let nd = Namespace::with_prefix(&d.prefix).unwrap();
    let mut watch = Watching::domain_from(&d, &dir.join("d"), "shop", &url);
    assert!(
        wait_until(LIMIT, || ports(&nd, "shop") == [35, 36]),
        "{}",
        watch.log()
    );
    ok(mcadmin(&a, "a", &["pull", "--from", &url]));
    ok(mcadmin(&a, "a", &["delete", "127.0.0.1:35"]));
    ok(mcadmin(&a, "a", &["publish", "--to", &url]));
    assert!(
        wait_until(LIMIT, || ports(&nd, "shop") == [36]),
        "{}",
        watch.log()
    );
    watch.stop();
    ok(mcadmin(&d, "d", &["add", "127.0.0.1:37"]));
    ok(mcadmin(&d, "d", &["publish", "--to", &url]));
    assert!(stored().contains("127.0.0.1:37"), "{}", stored());
}

#[test]
fn watch_installs_changes_and_survives_restart_and_stop() {
    let dir = temp_dir("etcd_watch");
    let mut etcd = Etcd::start(&dir.join("etcd"));
    let shm = ShmPrefix::new("etcd_watch");
    let ns = Namespace::with_prefix(&shm.prefix).unwrap();
    etcd.put("/memcache/web", "server 127.0.0.1:21\n");
    let mut watch =
        Watching::domain_from(&shm, &dir.join("state"), "web", &etcd.url("memcache/web"));
    assert!(
        wait_until(LIMIT, || ports(&ns, "web") == [21]),
        "{}",
        watch.log()
    );

    // A change is installed as etcd's watch delivers it.
    let mut slowest = Duration::ZERO;
    for port in 22..25u16 {
        let put = Instant::now();
        etcd.put("/memcache/web", &format!("server 127.0.0.1:{port}\n"));
        assert!(
            wait_until(LIMIT, || ports(&ns, "web") == [port]),
            "{}",
            watch.log()
        );
        slowest = slowest.max(put.elapsed());
    }
    // etcdctl's own start is in the figure: a bound that shows a watch, not polling.
    eprintln!("etcd put to installed list (etcdctl start included): at most {slowest:?}");
    assert!(slowest < Duration::from_secs(3), "{slowest:?}");

    // A value that is no list, or an empty one: refused, the list stays.
    etcd.put("/memcache/web", "server nonsense:0\n");
    etcd.put("/memcache/web", "# emptied by mistake\n");
    assert!(watch.wait_line("empty list", LIMIT), "{}", watch.log());
    assert!(watch.wait_line("nonsense", LIMIT), "{}", watch.log());
    assert_eq!(ports(&ns, "web"), [24]);
    etcd.put("/memcache/web", "server 127.0.0.1:25\n");
    assert!(
        wait_until(LIMIT, || ports(&ns, "web") == [25]),
        "{}",
        watch.log()
    );

    // Restarted mid-watch: one report, one recovery, and what changed meanwhile is installed.
    let (failed, back) = (
        watch.count("keeping the installed list"),
        watch.count("answering again"),
    );
    etcd.kill();
    assert!(
        wait_until(LIMIT, || watch.count("keeping the installed list")
            == failed + 1),
        "{}",
        watch.log()
    );
    thread::sleep(Duration::from_secs(2));
    etcd.restart();
    etcd.put("/memcache/web", "server 127.0.0.1:26\n");
    assert!(
        wait_until(LIMIT, || ports(&ns, "web") == [26]),
        "{}",
        watch.log()
    );
    assert_eq!(watch.count("answering again"), back + 1, "{}", watch.log());
    assert_eq!(
        watch.count("keeping the installed list"),
        failed + 1,
        "{}",
        watch.log()
    );

    // Stopped (SIGSTOP) longer than the timeout: the liveness check notices, once.
    etcd.signal(libc::SIGSTOP);
    assert!(
        wait_until(LIMIT, || watch.count("keeping the installed list")
            == failed + 2),
        "{}",
        watch.log()
    );
    thread::sleep(Duration::from_secs(4));
    etcd.signal(libc::SIGCONT);
    assert!(
        wait_until(LIMIT, || watch.count("answering again") == back + 2),
        "{}",
        watch.log()
    );
    assert_eq!(
        watch.count("keeping the installed list"),
        failed + 2,
        "{}",
        watch.log()
    );
    etcd.put("/memcache/web", "server 127.0.0.1:27\n");
    assert!(
        wait_until(LIMIT, || ports(&ns, "web") == [27]),
        "{}",
        watch.log()
    );
    assert!(watch.stop().is_some_and(|s| s.success()), "{}", watch.log());
    assert!(!ports(&ns, "web").is_empty());
}

/// The ports the watch installed, in the order of its log lines.
fn installed_ports(watch: &Watching) -> Vec<u16> {
    watch
        .lines()
        .iter()
        .filter(|l| l.contains("web: installed from") || l.contains("web: created from"))
        .filter_map(|l| l.rsplit_once("127.0.0.1:"))
        .map(|(_, port)| {
            let digits: String = port.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().expect("a port")
        })
        .collect()
}

#[test]
fn compacted_revisions_end_with_the_last_list() {
    let dir = temp_dir("etcd_compact");
    let mut etcd = Etcd::start(&dir.join("etcd"));
    let shm = ShmPrefix::new("etcd_compact");
    let ns = Namespace::with_prefix(&shm.prefix).unwrap();
    etcd.put("/memcache/web", "server 127.0.0.1:31\n");
    let mut watch =
        Watching::domain_from(&shm, &dir.join("state"), "web", &etcd.url("memcache/web"));
    assert!(
        wait_until(LIMIT, || ports(&ns, "web") == [31]),
        "{}",
        watch.log()
    );
    let mcadmin = watch.pid() as libc::pid_t;
    let pause = |sig| {
        // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
        assert_eq!(unsafe { libc::kill(mcadmin, sig) }, 0);
    };

    // 1. The watch stopped while several lists pass and the history is compacted behind them.
    pause(libc::SIGSTOP);
    for port in 32..36 {
        etcd.put("/memcache/web", &format!("server 127.0.0.1:{port}\n"));
    }
    let compacted = etcd.compact_all();
    pause(libc::SIGCONT);
    assert!(
        wait_until(LIMIT, || ports(&ns, "web") == [35]),
        "compacted at {compacted}\n{}",
        watch.log()
    );

    // 2. The same while etcd restarts: the watch's revision is gone from the store when it
    // comes back, so it must read the key again, never resume from what it had.
    pause(libc::SIGSTOP);
    etcd.restart();
    for port in 36..40 {
        etcd.put("/memcache/web", &format!("server 127.0.0.1:{port}\n"));
    }
    let compacted = etcd.compact_all();
    pause(libc::SIGCONT);
    assert!(
        wait_until(LIMIT, || ports(&ns, "web") == [39]),
        "compacted at {compacted}\n{}",
        watch.log()
    );

    // Settled on the last list; every install newer than the one before (never an older or
    // an empty list), and nothing refused.
    thread::sleep(Duration::from_secs(1));
    assert_eq!(ports(&ns, "web"), [39], "{}", watch.log());
    let seen = installed_ports(&watch);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "{seen:?}\n{}",
        watch.log()
    );
    assert_eq!(seen.first(), Some(&31), "{}", watch.log());
    assert_eq!(seen.last(), Some(&39), "{}", watch.log());
    assert_eq!(watch.count("empty list"), 0, "{}", watch.log());
    assert!(watch.stop().is_some_and(|s| s.success()), "{}", watch.log());
}

/// A loopback relay to etcd that can hold back the next watch request (until released), so
/// that the revision the watch asks to start from is compacted before etcd sees the request:
/// the real etcd then cancels the watch as it does for any compacted start revision. Bounded:
/// it relays for [`RELAY_LIFE`] at most.
struct WatchHolder {
    port: u16,
    /// 0: pass watches through; 1: hold the next one; 2: one is held; 3: release it.
    state: Arc<AtomicU8>,
}

const RELAY_LIFE: Duration = Duration::from_secs(60);

impl WatchHolder {
    fn start(etcd_port: u16) -> WatchHolder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(AtomicU8::new(0));
        let shared = state.clone();
        thread::spawn(move || {
            let end = Instant::now() + RELAY_LIFE;
            while Instant::now() < end {
                match listener.accept() {
                    Ok((client, _)) => {
                        let state = shared.clone();
                        thread::spawn(move || relay(client, etcd_port, &state));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        WatchHolder { port, state }
    }
}

/// One connection: the request's first bytes decide whether it is a watch to hold; then bytes
/// both ways until either side closes.
fn relay(mut client: TcpStream, etcd_port: u16, state: &AtomicU8) {
    client.set_nonblocking(false).unwrap();
    let mut head = [0u8; 64];
    let Ok(n) = client.read(&mut head) else {
        return;
    };
    let is_watch = head[..n].starts_with(b"POST /v3/watch ");
    if is_watch && state.compare_exchange(1, 2, SeqCst, SeqCst).is_ok() {
        let until = Instant::now() + LIMIT;
        while state.load(SeqCst) != 3 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        state.store(0, SeqCst);
    }
    let Ok(mut etcd) = TcpStream::connect(("127.0.0.1", etcd_port)) else {
        return;
    };
    if etcd.write_all(&head[..n]).is_err() {
        return;
    }
    let (Ok(mut from_client), Ok(mut to_client)) = (client.try_clone(), etcd.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut etcd);
        let _ = etcd.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut to_client, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.join();
}

#[test]
fn a_watch_from_a_compacted_revision_starts_over_with_the_last_list() {
    let dir = temp_dir("etcd_compacted_start");
    let etcd = Etcd::start(&dir.join("etcd"));
    let holder = WatchHolder::start(etcd.port);
    let shm = ShmPrefix::new("etcd_compacted_start");
    let ns = Namespace::with_prefix(&shm.prefix).unwrap();
    etcd.put("/memcache/web", "server 127.0.0.1:41\n");
    holder.state.store(1, SeqCst);
    let url = format!("etcd://127.0.0.1:{}/memcache/web", holder.port);
    let mut watch = Watching::domain_from(&shm, &dir.join("state"), "web", &url);
    // The list read, and the watch from the next revision held back.
    assert!(
        wait_until(LIMIT, || ports(&ns, "web") == [41]
            && holder.state.load(SeqCst) == 2),
        "{}",
        watch.log()
    );
    for port in 42..45 {
        etcd.put("/memcache/web", &format!("server 127.0.0.1:{port}\n"));
    }
    let compacted = etcd.compact_all();
    holder.state.store(3, SeqCst);
    // etcd cancels the watch (its start revision is compacted): the watch reads the key again
    // and installs the last list, not an older one, not none.
    assert!(
        wait_until(LIMIT, || ports(&ns, "web") == [44]),
        "compacted at {compacted}\n{}",
        watch.log()
    );
    // The install is reported right after it is made: wait for the line, then check them all.
    wait_until(LIMIT, || installed_ports(&watch).last() == Some(&44));
    assert_eq!(installed_ports(&watch), [41, 44], "{}", watch.log());
    // The operator is told why the key was read again, once.
    assert_eq!(watch.count("was compacted"), 1, "{}", watch.log());
    // And it follows from there.
    etcd.put("/memcache/web", "server 127.0.0.1:45\n");
    assert!(
        wait_until(LIMIT, || ports(&ns, "web") == [45]),
        "{}",
        watch.log()
    );
    assert_eq!(watch.count("empty list"), 0, "{}", watch.log());
    assert!(watch.stop().is_some_and(|s| s.success()), "{}", watch.log());
}
