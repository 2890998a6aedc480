//! Issue 14: `dns:` sources against a real dnsmasq on a loopback port: A, AAAA and SRV answers,
//! the TTL followed, and the faults (silence, an error answer, SERVFAIL) each reported once with
//! the installed list kept. SERVFAIL alone comes from a fake: dnsmasq without upstream answers
//! REFUSED or nothing, never SERVFAIL.

mod support;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use memcache::registry::{DomainList, Namespace};
use support::sources::{list_of, wait_until, Dnsmasq, Watching};
use support::{temp_dir, ShmPrefix};

const LIMIT: Duration = Duration::from_secs(20);

/// "HOST:PORT weight" of each server.
fn shown(list: &DomainList) -> Vec<String> {
    list.servers
        .iter()
        .map(|s| format!("{s} {}", s.weight))
        .collect()
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_aaaa_and_srv_answers_make_lists() {
    let dns = Dnsmasq::start(
        &words(&[
            "--local=/test/",
            "--host-record=cache.test,127.0.0.6",
            "--host-record=cache.test,127.0.0.5",
            "--host-record=v6.test,::5",
            "--srv-host=_memcache._tcp.cache.test,b.test,11312,0,1",
            "--srv-host=_memcache._tcp.cache.test,a.test,11311,0,3",
            "--srv-host=_memcache._tcp.cache.test,backup.test,11313,10,1",
            "--host-record=a.test,127.0.0.11",
            "--host-record=b.test,127.0.0.12",
            "--srv-host=_memcache._tcp.lost.test,a.test,11311,0,1",
            "--srv-host=_memcache._tcp.lost.test,nowhere.test,11312,0,1",
        ]),
        60,
    );
    let shm = ShmPrefix::new("dns_kinds");
    let ns = Namespace::with_prefix(&shm.prefix).unwrap();
    let state = temp_dir("dns_kinds");
    let pull = |domain: &str, url: &str, extra: &[&str]| {
        let mut args = vec!["--domain", domain, "pull", "--from", url];
        args.extend_from_slice(extra);
        shm.mcadmin_kept(&state, &args).output().unwrap()
    };
    let ok = |domain: &str, url: &str| {
        let out = pull(domain, url, &[]);
        assert!(out.status.success(), "{url}: {out:?}");
        shown(&list_of(&ns, domain).unwrap())
    };
    // Sorted, whatever order the server gives.
    assert_eq!(
        ok("a", &dns.url("cache.test", "")),
        ["127.0.0.5:11211 1", "127.0.0.6:11211 1"]
    );
    assert_eq!(
        ok("a", &dns.url("cache.test", "?type=A&port=11300")),
        ["127.0.0.5:11300 1", "127.0.0.6:11300 1"]
    );
    assert_eq!(
        ok("six", &dns.url("v6.test", "?type=AAAA")),
        ["[::5]:11211 1"]
    );
    // SRV: ports and weights from the records of the lowest priority; the backup is left out.
    // Each target is installed as its address from the same server: the programs would ask
    // the system's resolver, which does not know these names.
    assert_eq!(
        ok("srv", &dns.url("_memcache._tcp.cache.test", "?type=SRV")),
        ["127.0.0.11:11311 3", "127.0.0.12:11312 1"]
    );
    // A target with no address fails the look: the list stays.
    let out = pull(
        "srv",
        &dns.url("_memcache._tcp.lost.test", "?type=SRV"),
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SRV target nowhere.test has no address"),
        "{out:?}"
    );
    assert_eq!(
        shown(&list_of(&ns, "srv").unwrap()),
        ["127.0.0.11:11311 3", "127.0.0.12:11312 1"]
    );
    // No such name: an empty list, refused unless allowed.
    let out = pull("a", &dns.url("gone.test", ""), &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-empty"));
    assert_eq!(list_of(&ns, "a").unwrap().servers.len(), 2);
    let out = pull("a", &dns.url("gone.test", ""), &["--allow-empty"]);
    assert!(out.status.success(), "{out:?}");
    assert!(list_of(&ns, "a").unwrap().servers.is_empty());

    // dns:NAME asks the servers of the resolver configuration.
    let conf = state.join("resolv.conf");
    std::fs::write(
        &conf,
        format!("nameserver 127.0.0.1\n# port {}\n", dns.port),
    )
    .unwrap();
    let out = shm
        .mcadmin_kept(
            &state,
            &["--domain", "sys", "pull", "--from", "dns:cache.test"],
        )
        .env("MEMCACHE_RESOLV_CONF", &conf)
        .output()
        .unwrap();
    // Port 53 of 127.0.0.1 is not our dnsmasq: the failure names the server asked.
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:53"),
        "{out:?}"
    );
}

#[test]
fn watch_follows_the_ttl_and_keeps_the_list_through_faults() {
    let one = words(&["--host-record=cache.lan,127.0.0.5"]);
    let two = words(&[
        "--host-record=cache.lan,127.0.0.5",
        "--host-record=cache.lan,127.0.0.7",
    ]);
    let mut dns = Dnsmasq::start(&one, 1);
    let shm = ShmPrefix::new("dns_watch");
    let ns = Namespace::with_prefix(&shm.prefix).unwrap();
    let state = temp_dir("dns_watch");
    let url = dns.url("cache.lan", "");
    let mut watch =
        Watching::spawn(shm.mcadmin_kept(&state, &["watch", "--domain", "web", "--from", &url]));
    let has = |n: usize| list_of(&ns, "web").is_some_and(|l| l.servers.len() == n);
    assert!(wait_until(LIMIT, || has(1)), "{}", watch.log());

    // A changed record is installed within its TTL (1 s) of the change.
    dns.restart_with(&two);
    let changed = Instant::now();
    assert!(wait_until(LIMIT, || has(2)), "{}", watch.log());
    let took = changed.elapsed();
    eprintln!("DNS change to installed list: {took:?} (TTL 1 s)");
    assert!(took < Duration::from_secs(3), "{took:?}\n{}", watch.log());
    let version = list_of(&ns, "web").unwrap().version;

    // Silence (SIGSTOP) for several timeouts: reported once, the list stays; back: once.
    dns.signal(libc::SIGSTOP);
    assert!(
        watch.wait_line("no answer within", LIMIT),
        "{}",
        watch.log()
    );
    thread::sleep(Duration::from_secs(7));
    dns.signal(libc::SIGCONT);
    assert!(watch.wait_line("answering again", LIMIT), "{}", watch.log());
    assert_eq!(watch.count("no answer within"), 1, "{}", watch.log());
    assert_eq!(list_of(&ns, "web").unwrap().version, version);

    // An error answer (REFUSED: the record is gone and dnsmasq has no upstream): the same.
    dns.restart_with(&words(&["--host-record=other.lan,127.0.0.9"]));
    assert!(watch.wait_line("REFUSED", LIMIT), "{}", watch.log());
    thread::sleep(Duration::from_secs(4));
    dns.restart_with(&two);
    assert!(
        wait_until(LIMIT, || watch.count("answering again") == 2),
        "{}",
        watch.log()
    );
    assert_eq!(watch.count("REFUSED"), 1, "{}", watch.log());
    assert_eq!(list_of(&ns, "web").unwrap().version, version);
    assert!(watch.stop().is_some_and(|s| s.success()), "{}", watch.log());
    assert_eq!(watch.count("installed from"), 1, "{}", watch.log());
}

/// A name server that answers every query with SERVFAIL, counting them.
fn servfail_server() -> (u16, Arc<AtomicBool>, thread::JoinHandle<usize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let halt = Arc::clone(&stop);
    let served = thread::spawn(move || {
        let (mut buf, mut n) = ([0u8; 512], 0);
        let until = Instant::now() + Duration::from_secs(60);
        while !halt.load(Ordering::Relaxed) && Instant::now() < until {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if len < 12 {
                continue;
            }
            let mut reply = buf[..len].to_vec();
            reply[2] |= 0x80; // QR: a response
            reply[3] = (reply[3] & 0xf0) | 2; // RCODE 2: SERVFAIL
            let _ = socket.send_to(&reply, from);
            n += 1;
        }
        n
    });
    (port, stop, served)
}

#[test]
fn servfail_keeps_the_list_and_is_reported_once() {
    let (port, stop, served) = servfail_server();
    let shm = ShmPrefix::new("dns_servfail");
    let ns = Namespace::with_prefix(&shm.prefix).unwrap();
    let state = temp_dir("dns_servfail");
    let ok = shm
        .mcadmin_kept(&state, &["--domain", "web", "set", "127.0.0.1:11211"])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let before = list_of(&ns, "web").unwrap();
    let url = format!("dns://127.0.0.1:{port}/cache.lan");
    let out = shm
        .mcadmin_kept(&state, &["--domain", "web", "pull", "--from", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SERVFAIL"),
        "{out:?}"
    );

    let mut watch =
        Watching::spawn(shm.mcadmin_kept(&state, &["watch", "--domain", "web", "--from", &url]));
    // Retried after 1 s, 2 s, 4 s: four answers at least, one report.
    assert!(watch.wait_line("SERVFAIL", LIMIT), "{}", watch.log());
    thread::sleep(Duration::from_millis(3500));
    assert!(watch.stop().is_some_and(|s| s.success()), "{}", watch.log());
    stop.store(true, Ordering::Relaxed);
    let asked = served.join().unwrap();
    assert!(asked >= 3, "asked {asked} times\n{}", watch.log());
    assert_eq!(watch.count("SERVFAIL"), 1, "{}", watch.log());
    assert_eq!(list_of(&ns, "web").unwrap(), before);
}
