//! Issue 14: `etcd://` sources against a real etcd on loopback ports: publish and pull, a watch
//! that installs a change as it happens (no polling), and the faults (etcd restarted mid-watch,
//! etcd stopped with SIGSTOP for longer than the timeout, a value that is no list): each
//! reported once, the installed list kept, and the watch recovering by itself.

mod support;

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

#[test]
fn watch_installs_changes_and_survives_restart_and_stop() {
    let dir = temp_dir("etcd_watch");
    let mut etcd = Etcd::start(&dir.join("etcd"));
    let shm = ShmPrefix::new("etcd_watch");
    let ns = Namespace::with_prefix(&shm.prefix).unwrap();
    etcd.put("/memcache/web", "server 127.0.0.1:21\n");
    let mut watch = Watching::spawn(shm.mcadmin_kept(
        &dir.join("state"),
        &[
            "watch",
            "--domain",
            "web",
            "--from",
            &etcd.url("memcache/web"),
        ],
    ));
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
