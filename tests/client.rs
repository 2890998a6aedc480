//! The safe Rust client (`memcache::client`) against real memcached servers, plus a scripted
//! fake server for the faults a real memcached cannot produce (garbage, a value cut short).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use memcache::client::{Client, ClientError, Item, ServerSpec};
use memcache::command::{Failure, Stored};
use memcache::conn::Fail;
use memcache::hash::Distribution;
use memcache::protocol::{ProtoError, StoreCmd};
use support::{DeadPort, Memcached};

fn spec(addr: &str) -> ServerSpec {
    ServerSpec::parse(addr).unwrap_or_else(|e| panic!("{addr}: {e}"))
}

fn client_for(addrs: &[String]) -> Client {
    Client::new(
        addrs.iter().map(|a| spec(a)).collect(),
        Distribution::KetamaMd5,
    )
    .expect("client")
}

fn item(value: &[u8], flags: u32) -> Option<Item> {
    Some(Item {
        value: value.to_vec(),
        flags,
        cas: 0,
    })
}

#[test]
fn set_get_gets_and_cas() {
    let mc = Memcached::start();
    let mut c = client_for(&[mc.addr()]);
    assert_eq!(c.get(b"k").unwrap(), None);
    assert_eq!(c.set(b"k", b"v1", 42, 0).unwrap(), Stored::Stored);
    assert_eq!(c.get(b"k").unwrap(), item(b"v1", 42));

    let first = c.gets(b"k").unwrap().expect("hit");
    assert_eq!((first.value.as_slice(), first.flags), (&b"v1"[..], 42));
    assert_ne!(first.cas, 0);
    assert_eq!(
        c.store(StoreCmd::Cas(first.cas), b"k", b"v2", 7, 0)
            .unwrap(),
        Stored::Stored
    );
    // The unique changed with that store: the old one is refused.
    assert_eq!(
        c.store(StoreCmd::Cas(first.cas), b"k", b"v3", 7, 0)
            .unwrap(),
        Stored::Exists
    );
    let second = c.gets(b"k").unwrap().expect("hit");
    assert_eq!((second.value.as_slice(), second.flags), (&b"v2"[..], 7));
    assert_ne!(second.cas, first.cas);
    assert_eq!(
        c.store(StoreCmd::Cas(second.cas), b"gone", b"x", 0, 0)
            .unwrap(),
        Stored::NotFound
    );
}

#[test]
fn add_replace_append_prepend() {
    let mc = Memcached::start();
    let mut c = client_for(&[mc.addr()]);
    assert_eq!(
        c.store(StoreCmd::Replace, b"k", b"r", 0, 0).unwrap(),
        Stored::NotStored
    );
    assert_eq!(
        c.store(StoreCmd::Append, b"k", b"a", 0, 0).unwrap(),
        Stored::NotStored
    );
    assert_eq!(
        c.store(StoreCmd::Prepend, b"k", b"p", 0, 0).unwrap(),
        Stored::NotStored
    );
    assert_eq!(c.get(b"k").unwrap(), None);
    assert_eq!(
        c.store(StoreCmd::Add, b"k", b"mid", 3, 0).unwrap(),
        Stored::Stored
    );
    assert_eq!(
        c.store(StoreCmd::Add, b"k", b"again", 3, 0).unwrap(),
        Stored::NotStored
    );
    assert_eq!(
        c.store(StoreCmd::Append, b"k", b">>", 0, 0).unwrap(),
        Stored::Stored
    );
    assert_eq!(
        c.store(StoreCmd::Prepend, b"k", b"<<", 0, 0).unwrap(),
        Stored::Stored
    );
    // append/prepend keep the flags of the item.
    assert_eq!(c.get(b"k").unwrap(), item(b"<<mid>>", 3));
    assert_eq!(
        c.store(StoreCmd::Replace, b"k", b"new", 9, 0).unwrap(),
        Stored::Stored
    );
    assert_eq!(c.get(b"k").unwrap(), item(b"new", 9));
}

#[test]
fn delete_and_touch() {
    let mc = Memcached::start();
    let mut c = client_for(&[mc.addr()]);
    c.set(b"d", b"1", 0, 0).unwrap();
    assert!(c.delete(b"d").unwrap());
    assert!(!c.delete(b"d").unwrap());
    assert_eq!(c.get(b"d").unwrap(), None);

    assert!(!c.touch(b"t", 100).unwrap());
    c.set(b"t", b"1", 0, 0).unwrap();
    c.set(b"stays", b"1", 0, 0).unwrap();
    assert!(c.touch(b"t", 1).unwrap());
    // memcached's clock ticks once a second: after 2.5 s a 1 s expiry has certainly passed.
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(c.get(b"t").unwrap(), None);
    assert_eq!(c.get(b"stays").unwrap(), item(b"1", 0));
}

#[test]
fn incr_decr() {
    let mc = Memcached::start();
    let mut c = client_for(&[mc.addr()]);
    assert_eq!(c.incr(b"n", 1).unwrap(), None);
    assert_eq!(c.decr(b"n", 1).unwrap(), None);
    c.set(b"n", b"10", 0, 0).unwrap();
    assert_eq!(c.incr(b"n", 5).unwrap(), Some(15));
    assert_eq!(c.decr(b"n", 3).unwrap(), Some(12));
    // memcached stops decrements at 0 and wraps increments at 2^64.
    assert_eq!(c.decr(b"n", 100).unwrap(), Some(0));
    c.set(b"n", b"18446744073709551615", 0, 0).unwrap();
    assert_eq!(c.incr(b"n", 2).unwrap(), Some(1));

    let before = mc.stat("total_connections");
    c.set(b"text", b"abc", 0, 0).unwrap();
    match c.incr(b"text", 1) {
        Err(ClientError::Refused { server, message }) => {
            assert_eq!(server, mc.addr());
            assert!(message.contains("non-numeric"), "{message}");
        }
        other => panic!("incr of text: {other:?}"),
    }
    // A refusal and a miss keep the connection: only the stats probe itself connected.
    assert_eq!(c.get(b"text").unwrap(), item(b"abc", 0));
    assert_eq!(c.incr(b"missing", 1).unwrap(), None);
    assert_eq!(mc.stat("total_connections"), before + 1);
}

#[test]
fn binary_values_round_trip() {
    let mc = Memcached::start();
    let mut c = client_for(&[mc.addr()]);
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let values: [(&[u8], &[u8]); 6] = [
        (b"all", &all_bytes),
        (b"protocol", b"\r\nEND\r\nVALUE x 0 1\r\n\0"),
        (b"nul", b"\0"),
        (b"crlf", b"\r\n"),
        (b"empty", b""),
        (b"big", &big),
    ];
    for (key, value) in values {
        assert_eq!(c.set(key, value, 1, 0).unwrap(), Stored::Stored);
    }
    for (key, value) in values {
        assert_eq!(c.get(key).unwrap(), item(value, 1), "{key:?}");
    }
    let keys: Vec<&[u8]> = values.iter().map(|(k, _)| *k).collect();
    let got = c.get_multi(&keys).unwrap();
    for ((key, value), got) in values.iter().zip(got) {
        assert_eq!(got, item(value, 1), "{key:?}");
    }
    // Keys may use bytes 0x80..=0xFF.
    c.set(b"\xc3\xa9t\xe9\xff", b"accent", 0, 0).unwrap();
    assert_eq!(c.get(b"\xc3\xa9t\xe9\xff").unwrap(), item(b"accent", 0));
}

#[test]
fn multi_get_over_three_servers() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let addrs: Vec<String> = servers.iter().map(Memcached::addr).collect();
    let mut c = client_for(&addrs);
    let keys: Vec<String> = (0..90).map(|i| format!("multi:{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        if i % 3 != 0 {
            c.set(k.as_bytes(), format!("value {i}").as_bytes(), i as u32, 0)
                .unwrap();
        }
    }
    // Every server got some of the stored keys.
    for mc in &servers {
        assert!(mc.stat("curr_items") > 5, "{}: keys not spread", mc.addr());
    }
    // Request order differs from placement order; duplicates and misses included.
    let mut wanted: Vec<&[u8]> = keys.iter().rev().map(|k| k.as_bytes()).collect();
    wanted.push(b"multi:5");
    wanted.push(b"never-set");
    wanted.push(b"multi:5");
    let got = c.get_multi(&wanted).unwrap();
    assert_eq!(got.len(), wanted.len());
    for (k, got) in wanted.iter().zip(&got) {
        let name = std::str::from_utf8(k).unwrap();
        let i: Option<usize> = name.strip_prefix("multi:").and_then(|n| n.parse().ok());
        match i {
            Some(i) if i % 3 != 0 => {
                assert_eq!(
                    *got,
                    item(format!("value {i}").as_bytes(), i as u32),
                    "{name}"
                )
            }
            _ => assert_eq!(*got, None, "{name}"),
        }
    }
    // Every key was asked of the server that owns it (cmd_get counts keys, duplicates too).
    let before: Vec<u64> = servers.iter().map(|m| m.stat("cmd_get")).collect();
    c.get_multi(&wanted).unwrap();
    for (mc, before) in servers.iter().zip(before) {
        let gets = mc.stat("cmd_get") - before;
        let owned = wanted
            .iter()
            .filter(|k| addrs[c.server_for(k).unwrap()] == mc.addr())
            .count() as u64;
        assert_eq!(gets, owned, "{}", mc.addr());
    }
    assert!(c.get_multi(&[]).unwrap().is_empty());
}

#[test]
fn a_dead_server_is_skipped_and_retried_later() {
    let a = Memcached::start();
    let b = Memcached::start();
    let dead = DeadPort::new();
    let addrs = [a.addr(), format!("127.0.0.1:{}", dead.port()), b.addr()];
    let mut c = client_for(&addrs);
    c.set_retry_interval(Duration::from_millis(400));
    let keys: Vec<String> = (0..120).map(|i| format!("dead:{i}")).collect();
    let on_dead: Vec<&String> = keys
        .iter()
        .filter(|k| c.server_for(k.as_bytes()) == Some(1))
        .collect();
    assert!(!on_dead.is_empty(), "no key placed on the dead server");
    for k in &keys {
        assert_eq!(
            c.set(k.as_bytes(), k.as_bytes(), 0, 0).unwrap(),
            Stored::Stored
        );
    }
    // Marked dead now: nothing is placed there, and everything was stored on the others.
    for k in &keys {
        assert_ne!(c.server_for(k.as_bytes()), Some(1));
    }
    assert_eq!(
        a.stat("curr_items") + b.stat("curr_items"),
        keys.len() as u64
    );
    let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    for (k, got) in wanted.iter().zip(c.get_multi(&wanted).unwrap()) {
        assert_eq!(got, item(k, 0));
    }
    // The admin commands report the dead server and still serve the others.
    let versions = c.version();
    assert_eq!(versions.len(), 3);
    assert!(versions[0].1.is_ok() && versions[2].1.is_ok());
    match &versions[1] {
        (name, Err(ClientError::Connect { server, .. })) => {
            assert_eq!(name, &addrs[1]);
            assert_eq!(server, &addrs[1]);
        }
        other => panic!("dead server's version: {other:?}"),
    }

    // The server comes up; after the retry interval its keys go back to it.
    let port = dead.port();
    drop(dead);
    let revived = Memcached::start_on_port(port);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(c.server_for(on_dead[0].as_bytes()), Some(1));
    for k in &on_dead {
        c.set(k.as_bytes(), b"back", 0, 0).unwrap();
    }
    assert_eq!(revived.stat("curr_items"), on_dead.len() as u64);
    assert_eq!(c.get(on_dead[0].as_bytes()).unwrap(), item(b"back", 0));
}

#[test]
fn only_dead_servers() {
    let dead_port = DeadPort::new();
    let dead = format!("127.0.0.1:{}", dead_port.port());
    let mut c = client_for(std::slice::from_ref(&dead));
    match c.get(b"k") {
        Err(ClientError::Connect { server, message }) => {
            assert_eq!(server, dead);
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // Within the retry interval it is not even tried.
    let started = Instant::now();
    assert!(matches!(
        c.set(b"k", b"v", 0, 0),
        Err(ClientError::NoServer)
    ));
    assert!(started.elapsed() < Duration::from_millis(100));
    let stats = c.stats(None);
    assert!(matches!(stats[0].1, Err(ClientError::Connect { .. })));

    // A name that does not resolve is a connect failure too, reported with its server.
    let mut c = client_for(&["no-such-host.invalid:11211".to_string()]);
    match c.delete(b"k") {
        Err(e @ ClientError::Connect { .. }) => {
            assert!(e.to_string().starts_with("no-such-host.invalid:11211: "))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failure_is_returned_not_retried_and_the_next_call_reconnects() {
    // The server reads the incr and closes the connection without a reply: the call fails, and
    // the incr is not silently sent again (it might have been applied)...
    let fake = FakeServer::start(vec![
        Scripted {
            reply: CLOSE.to_vec(),
        },
        Scripted {
            reply: HEALTHY.to_vec(),
        },
    ]);
    let mut c = client_for(&[fake.addr.to_string()]);
    match c.incr(b"n", 1) {
        Err(ClientError::Server { server, .. }) => assert_eq!(server, fake.addr.to_string()),
        other => panic!("incr on a connection closed under it: {other:?}"),
    }
    // ...and the next call connects afresh.
    assert_eq!(c.get(b"k").unwrap(), item(b"ok", 5));
    let held = fake.finish();
    assert_eq!(held.len(), 2);
    assert_eq!(held[0].0, b"incr n 1\r\n");
    assert_eq!(held[1].0, b"get k\r\n", "the incr was sent again");

    // A connection the server closed while it was idle (a restart) is noticed before anything
    // is sent on it: the call goes out on a new connection, to the new server (which lost the
    // data), instead of failing.
    let mut mc = Memcached::start();
    let mut c = client_for(&[mc.addr()]);
    c.set(b"n", b"1", 0, 0).unwrap();
    mc.restart();
    assert_eq!(c.incr(b"n", 1).unwrap(), None);
    assert_eq!(c.set(b"n", b"5", 0, 0).unwrap(), Stored::Stored);
    assert_eq!(c.incr(b"n", 1).unwrap(), Some(6));
}

#[test]
fn a_stopped_server_times_out_within_the_timeout() {
    let mc = Memcached::start();
    let mut c = client_for(&[mc.addr()]);
    c.set(b"k", b"v", 0, 0).unwrap();
    c.set_timeout(Duration::from_millis(100));
    // A timeout takes the server out for the retry interval; here the next call may use it.
    c.set_retry_interval(Duration::ZERO);
    mc.stop_and_wait();
    let started = Instant::now();
    let result = c.get(b"k");
    let took = started.elapsed();
    mc.cont();
    assert_timed_out(&result, took);
    // The reply to the timed-out get may still arrive on the old connection; it was dropped, so
    // the next call reads its own reply.
    c.set(b"k2", b"v2", 0, 0).unwrap();
    assert_eq!(c.get(b"k").unwrap(), item(b"v", 0));
    assert_eq!(c.get(b"k2").unwrap(), item(b"v2", 0));
}

/// A server that timed out is skipped for the retry interval, as in the C API (D8), instead of
/// costing a full timeout on every call; its keys go to the next live server meanwhile.
#[test]
fn a_timeout_marks_the_server_down_for_the_retry_interval() {
    let (stopped, live) = (Memcached::start(), Memcached::start());
    let mut c = client_for(&[stopped.addr(), live.addr()]);
    c.set_timeout(Duration::from_millis(300));
    c.set_retry_interval(Duration::from_secs(60));
    // A key the stopped server holds: the one the client fails on once it is stopped.
    stopped.stop_and_wait();
    let mut timed_out = None;
    for i in 0..64 {
        let key = format!("down{i}");
        let started = Instant::now();
        if let Err(e) = c.set(key.as_bytes(), b"v", 0, 0) {
            assert_timed_out(&Err::<(), _>(e), started.elapsed());
            timed_out = Some(key);
            break;
        }
    }
    let key = timed_out.expect("no key of 64 went to the stopped server");
    // Within the retry interval the stopped server is not tried: the key's calls go to the
    // live server at once, every time.
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(
            c.set(key.as_bytes(), b"again", 0, 0).unwrap(),
            Stored::Stored
        );
        assert_eq!(c.get(key.as_bytes()).unwrap(), item(b"again", 0));
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "a call waited on the server that timed out: {:?}",
            started.elapsed()
        );
    }
    stopped.cont();
    let mut direct = client_for(&[live.addr()]);
    assert_eq!(
        direct.get(key.as_bytes()).unwrap(),
        item(b"again", 0),
        "the key went to the live server"
    );
}

#[test]
fn stats_version_flush_all() {
    let servers = [Memcached::start(), Memcached::start()];
    let addrs: Vec<String> = servers.iter().map(Memcached::addr).collect();
    let mut c = client_for(&addrs);
    let stats = c.stats(None);
    assert_eq!(stats.len(), 2);
    for ((name, result), mc) in stats.iter().zip(&servers) {
        assert_eq!(name, &mc.addr());
        let lines = result.as_ref().expect("stats");
        let pid = lines.iter().find(|(n, _)| n == "pid").expect("pid stat");
        assert_eq!(pid.1, mc.pid().to_string());
        assert!(lines.iter().any(|(n, _)| n == "curr_items"));
    }
    let settings = c.stats(Some(b"settings"));
    for (_, result) in &settings {
        let lines = result.as_ref().expect("stats settings");
        assert!(lines
            .iter()
            .any(|(n, v)| n == "maxbytes" && v == "67108864"));
    }
    for (name, version) in c.version() {
        let v = version.expect("version");
        assert!(
            v.chars().next().is_some_and(|ch| ch.is_ascii_digit()),
            "{name}: {v}"
        );
    }
    for i in 0..20 {
        c.set(format!("f{i}").as_bytes(), b"x", 0, 0).unwrap();
    }
    for (name, result) in c.flush_all() {
        assert!(result.is_ok(), "{name}: {result:?}");
    }
    for i in 0..20 {
        assert_eq!(c.get(format!("f{i}").as_bytes()).unwrap(), None);
    }
}

#[test]
fn unix_socket_server() {
    let dir = support::temp_dir("client-unix");
    let path = dir.join("mc.sock");
    let _mc = Memcached::start_unix(&path);
    let addr = path.to_str().unwrap().to_string();
    let mut c = client_for(std::slice::from_ref(&addr));
    assert_eq!(c.servers()[0].port, 0);
    assert_eq!(c.servers()[0].to_string(), addr);
    c.set(b"u", b"over unix", 0, 0).unwrap();
    assert_eq!(c.get(b"u").unwrap(), item(b"over unix", 0));
}

// ---- A scripted fake server, for faults a real memcached cannot produce. ----

/// What the fake server does with one accepted connection: read one request (up to the CRLF
/// ending its first line), write `reply`, then hold the connection open without a word. A
/// [`PAUSE`] in `reply` is not sent: the server waits 50 ms there instead; a reply ending in
/// [`CLOSE`] closes the connection after what comes before it.
struct Scripted {
    reply: Vec<u8>,
}

/// Splits a scripted reply into writes 50 ms apart.
const PAUSE: &[u8] = b"<pause>";
/// Ends a scripted reply by closing the connection.
const CLOSE: &[u8] = b"<close>";

struct FakeServer {
    addr: SocketAddr,
    thread: thread::JoinHandle<Vec<(Vec<u8>, TcpStream)>>,
}

impl FakeServer {
    /// Serves one connection per script entry, in order; gives up after 10 s without a client.
    fn start(script: Vec<Scripted>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            for step in script {
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            assert!(Instant::now() < deadline, "client never connected");
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(2).any(|w| w == b"\r\n") {
                    let n = stream.read(&mut buf).expect("read request");
                    assert!(n > 0, "client closed before sending a request");
                    request.extend_from_slice(&buf[..n]);
                }
                let (mut rest, close) = match step.reply.strip_suffix(CLOSE) {
                    Some(before) => (before, true),
                    None => (&step.reply[..], false),
                };
                while let Some(at) = rest.windows(PAUSE.len()).position(|w| w == PAUSE) {
                    stream.write_all(&rest[..at]).expect("write reply");
                    thread::sleep(Duration::from_millis(50));
                    rest = &rest[at + PAUSE.len()..];
                }
                stream.write_all(rest).expect("write reply");
                if close {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                }
                held.push((request, stream));
            }
            held
        });
        FakeServer { addr, thread }
    }

    /// The requests each connection carried (with the streams, still open until dropped).
    fn finish(self) -> Vec<(Vec<u8>, TcpStream)> {
        self.thread.join().expect("fake server thread")
    }
}

const HEALTHY: &[u8] = b"VALUE k 5 2\r\nok\r\nEND\r\n";

#[test]
fn garbage_reply_is_an_error_and_the_connection_is_replaced() {
    let long_line = vec![b'A'; 5000];
    let garbage: [(&[u8], ProtoError); 5] = [
        (b"HELLO THERE\r\n", ProtoError::UnknownReply),
        (b"\xff\xfe\x00garbage\r\n", ProtoError::UnknownReply),
        (b"VALUE k 0 banana\r\n", ProtoError::BadValueLine),
        (b"VALUE k 0 2\r\nokXY", ProtoError::DataNotCrlf),
        (&long_line, ProtoError::LineTooLong),
    ];
    for (reply, expected) in garbage {
        let fake = FakeServer::start(vec![
            Scripted {
                reply: reply.to_vec(),
            },
            Scripted {
                reply: HEALTHY.to_vec(),
            },
        ]);
        let mut c = client_for(&[fake.addr.to_string()]);
        match c.get(b"k") {
            Err(ClientError::Server {
                server,
                failure: Failure::Recv(Fail::Proto(e)),
            }) => {
                assert_eq!(server, fake.addr.to_string());
                assert_eq!(e, expected, "{:?}", String::from_utf8_lossy(reply));
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(reply)),
        }
        assert_eq!(c.get(b"k").unwrap(), item(b"ok", 5));
        let held = fake.finish();
        assert_eq!(held.len(), 2, "a second connection was opened");
        assert_eq!(held[1].0, b"get k\r\n");
    }
    // A VALUE for a key that was not asked is as bad as garbage.
    let fake = FakeServer::start(vec![
        Scripted {
            reply: b"VALUE other 0 1\r\nx\r\nEND\r\n".to_vec(),
        },
        Scripted {
            reply: HEALTHY.to_vec(),
        },
    ]);
    let mut c = client_for(&[fake.addr.to_string()]);
    assert!(matches!(
        c.get(b"k"),
        Err(ClientError::Server {
            failure: Failure::Unexpected(_),
            ..
        })
    ));
    assert_eq!(c.get(b"k").unwrap(), item(b"ok", 5));
    fake.finish();
}

/// Bytes nobody asked for never answer the next command, whether they come in the reply's write
/// or after the reply was read: the connection is closed and the next command gets a new one.
#[test]
fn stray_bytes_after_a_reply_close_the_connection() {
    for reply in [&b"STORED\r\nEND\r\n"[..], b"STORED\r\n<pause>END\r\n"] {
        let fake = FakeServer::start(vec![
            Scripted {
                reply: reply.to_vec(),
            },
            Scripted {
                reply: HEALTHY.to_vec(),
            },
        ]);
        let mut c = client_for(&[fake.addr.to_string()]);
        assert_eq!(c.set(b"k", b"v", 0, 0).unwrap(), Stored::Stored);
        thread::sleep(Duration::from_millis(200));
        assert_eq!(
            c.get(b"k").unwrap(),
            item(b"ok", 5),
            "{:?}",
            String::from_utf8_lossy(reply)
        );
        let held = fake.finish();
        assert_eq!(held.len(), 2, "a second connection was opened");
        assert_eq!(held[1].0, b"get k\r\n");
    }
}

#[test]
fn value_cut_short_then_stall_times_out_and_the_connection_is_replaced() {
    let fake = FakeServer::start(vec![
        Scripted {
            reply: b"VALUE k 0 10\r\nabc".to_vec(),
        },
        Scripted {
            reply: HEALTHY.to_vec(),
        },
    ]);
    let mut c = client_for(&[fake.addr.to_string()]);
    c.set_timeout(Duration::from_millis(100));
    // The timeout takes the server out for the retry interval; with none, the next call may
    // use it again, on a new connection.
    c.set_retry_interval(Duration::ZERO);
    let started = Instant::now();
    let result = c.get(b"k");
    let took = started.elapsed();
    assert_timed_out(&result, took);
    assert_eq!(c.get(b"k").unwrap(), item(b"ok", 5));
    assert_eq!(fake.finish().len(), 2);
}

#[test]
fn incr_is_never_resent_after_a_timeout() {
    let fake = FakeServer::start(vec![
        // No answer at all to the incr.
        Scripted { reply: Vec::new() },
        Scripted {
            reply: HEALTHY.to_vec(),
        },
    ]);
    let mut c = client_for(&[fake.addr.to_string()]);
    c.set_timeout(Duration::from_millis(100));
    // The timeout takes the server out for the retry interval; with none, the next call may
    // use it again, on a new connection.
    c.set_retry_interval(Duration::ZERO);
    assert!(matches!(
        c.incr(b"n", 1),
        Err(ClientError::Server {
            failure: Failure::Recv(Fail::Timeout),
            ..
        })
    ));
    assert_eq!(c.get(b"k").unwrap(), item(b"ok", 5));
    let mut held = fake.finish();
    assert_eq!(held[0].0, b"incr n 1\r\n");
    assert_eq!(held[1].0, b"get k\r\n");
    // Nothing more arrived on the first connection: the client closed it without a re-send.
    let (_, first) = &mut held[0];
    first
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = first.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn a_broken_server_in_a_multi_get_leaves_the_others_in_sync() {
    let real = Memcached::start();
    let fake = FakeServer::start(vec![Scripted {
        reply: b"SERVER_ERROR out of memory\r\n".to_vec(),
    }]);
    let addrs = [real.addr(), fake.addr.to_string()];
    let mut c = client_for(&addrs);
    let keys: Vec<String> = (0..40).map(|i| format!("mix:{i}")).collect();
    let on_real: Vec<&[u8]> = keys
        .iter()
        .map(|k| k.as_bytes())
        .filter(|k| c.server_for(k) == Some(0))
        .collect();
    let on_fake = keys
        .iter()
        .map(|k| k.as_bytes())
        .find(|k| c.server_for(k) == Some(1))
        .expect("a key on the fake server");
    for k in &on_real {
        c.set(k, k, 0, 0).unwrap();
    }
    let mut wanted = on_real.clone();
    wanted.push(on_fake);
    match c.get_multi(&wanted) {
        Err(ClientError::Server { server, .. }) => assert_eq!(server, addrs[1]),
        other => panic!("{other:?}"),
    }
    // The real server's reply was read in full: its connection answers the next get correctly.
    let before = real.stat("total_connections");
    for k in &on_real {
        assert_eq!(c.get(k).unwrap(), item(k, 0));
    }
    assert_eq!(real.stat("total_connections"), before + 1);
    fake.finish();
}

// ---- Copies on several servers (set_replicas) ----

/// One single-server client per server, to see what each server alone holds.
fn probes(addrs: &[String]) -> Vec<Client> {
    addrs
        .iter()
        .map(|a| {
            let mut c = Client::new(vec![spec(a)], Distribution::Crc32Modulo).expect("probe");
            c.set_retry_interval(Duration::ZERO);
            c
        })
        .collect()
}

/// The servers (indexes) that hold exactly `value` under `key`; `skip` is not asked. A probe
/// whose connection died with its server (killed, then restarted) gets a second try, on a fresh
/// connection.
fn holders(probes: &mut [Client], key: &[u8], value: &[u8], skip: Option<usize>) -> Vec<usize> {
    (0..probes.len())
        .filter(|&i| Some(i) != skip)
        .filter(|&i| {
            let got = probes[i].get(key).or_else(|_| probes[i].get(key));
            matches!(got, Ok(Some(it)) if it.value == value)
        })
        .collect()
}

fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v
}

fn replicas_survive_a_killed_server(dist: Distribution) {
    let [a, mut b, c] = [Memcached::start(), Memcached::start(), Memcached::start()];
    let addrs = vec![a.addr(), b.addr(), c.addr()];
    let mut probe = probes(&addrs);
    let mut client = Client::new(addrs.iter().map(|s| spec(s)).collect(), dist).unwrap();
    assert_eq!(client.replicas(), 1);
    client.set_replicas(2);
    assert_eq!(client.replicas(), 2);
    client.set_retry_interval(Duration::from_millis(300));
    let keys: Vec<String> = (0..150).map(|i| format!("rep:{dist}:{i}")).collect();
    let mut placed = Vec::new();
    for k in &keys {
        let k = k.as_bytes();
        assert_eq!(client.set(k, k, 3, 0).unwrap(), Stored::Stored);
        let copies = client.copies_for(k);
        assert_eq!(copies.len(), 2, "{k:?}");
        assert_ne!(copies[0], copies[1]);
        assert_eq!(Some(copies[0]), client.server_for(k));
        if dist == Distribution::Crc32Modulo {
            assert_eq!(copies[1], (copies[0] + 1) % 3);
        }
        assert_eq!(holders(&mut probe, k, k, None), sorted(copies.clone()));
        placed.push(copies);
    }
    for (i, mc) in [&a, &b, &c].iter().enumerate() {
        let held = placed.iter().filter(|p| p.contains(&i)).count();
        assert!(held > 50, "{}: {held} copies", mc.addr());
    }

    // Server 1 dies: every key is still read, alone and in one multi-get.
    b.kill();
    for k in &keys {
        assert_eq!(
            client.get(k.as_bytes()).unwrap(),
            item(k.as_bytes(), 3),
            "{k}"
        );
    }
    let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    let got = client.get_multi(&wanted).unwrap();
    for (k, got) in wanted.iter().zip(got) {
        assert_eq!(got, item(k, 3));
    }
    // New writes go to the two live servers.
    for i in 0..30 {
        let k = format!("rep-out:{dist}:{i}");
        client.set(k.as_bytes(), b"out", 0, 0).unwrap();
        assert_eq!(
            holders(&mut probe, k.as_bytes(), b"out", Some(1)),
            vec![0, 2]
        );
    }

    // Restarted (empty): after the retry interval writes reach it again, exactly for the keys
    // whose copy set includes it.
    b.restart();
    thread::sleep(Duration::from_millis(400));
    for (k, copies) in keys.iter().zip(&placed) {
        let k = k.as_bytes();
        client.set(k, b"again", 0, 0).unwrap();
        assert_eq!(client.copies_for(k), *copies);
        assert_eq!(
            holders(&mut probe, k, b"again", None),
            sorted(copies.clone())
        );
    }
    let on_restarted = placed.iter().filter(|p| p.contains(&1)).count() as u64;
    assert_eq!(b.stat("curr_items"), on_restarted);
}

#[test]
fn two_copies_crc32_modulo_survive_a_killed_server() {
    replicas_survive_a_killed_server(Distribution::Crc32Modulo);
}

#[test]
fn two_copies_ketama_survive_a_killed_server() {
    replicas_survive_a_killed_server(Distribution::KetamaMd5);
}

/// The rule of `set_replicas`: a write answers what the primary answered, the other copies
/// still get the command; a read tries the primary, then the copy.
#[test]
fn copies_that_disagree_answer_as_the_primary() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let addrs: Vec<String> = servers.iter().map(Memcached::addr).collect();
    let mut probe = probes(&addrs);
    let mut c = client_for(&addrs);
    c.set_replicas(2);
    let copies = |c: &Client, k: &str| {
        let v = c.copies_for(k.as_bytes());
        (v[0], v[1])
    };

    // add where only the copy has the key: the primary stores it.
    let (p, q) = copies(&c, "dis:add1");
    probe[q].set(b"dis:add1", b"old", 0, 0).unwrap();
    assert_eq!(
        c.store(StoreCmd::Add, b"dis:add1", b"new", 0, 0).unwrap(),
        Stored::Stored
    );
    assert_eq!(probe[p].get(b"dis:add1").unwrap(), item(b"new", 0));
    assert_eq!(probe[q].get(b"dis:add1").unwrap(), item(b"old", 0));
    assert_eq!(c.get(b"dis:add1").unwrap(), item(b"new", 0));

    // add where only the primary has it: not stored, though the copy stored it.
    let (p, q) = copies(&c, "dis:add2");
    probe[p].set(b"dis:add2", b"old", 0, 0).unwrap();
    assert_eq!(
        c.store(StoreCmd::Add, b"dis:add2", b"new", 0, 0).unwrap(),
        Stored::NotStored
    );
    assert_eq!(probe[q].get(b"dis:add2").unwrap(), item(b"new", 0));
    assert_eq!(c.get(b"dis:add2").unwrap(), item(b"old", 0));

    // incr on diverged counters: the primary's value; the copy counts on its own.
    let (_, q) = copies(&c, "dis:n");
    c.set(b"dis:n", b"10", 0, 0).unwrap();
    probe[q].set(b"dis:n", b"100", 0, 0).unwrap();
    assert_eq!(c.incr(b"dis:n", 5).unwrap(), Some(15));
    assert_eq!(c.decr(b"dis:n", 1).unwrap(), Some(14));
    assert_eq!(probe[q].get(b"dis:n").unwrap(), item(b"104", 0));

    // incr where only the copy has the counter: the primary's "not found".
    let (_, q) = copies(&c, "dis:n2");
    probe[q].set(b"dis:n2", b"7", 0, 0).unwrap();
    assert_eq!(c.incr(b"dis:n2", 1).unwrap(), None);
    assert_eq!(probe[q].get(b"dis:n2").unwrap(), item(b"8", 0));

    // delete and touch where only the copy has the key: the primary's "not found".
    let (_, q) = copies(&c, "dis:del");
    probe[q].set(b"dis:del", b"v", 0, 0).unwrap();
    assert!(!c.touch(b"dis:del", 100).unwrap());
    assert!(!c.delete(b"dis:del").unwrap());
    assert_eq!(probe[q].get(b"dis:del").unwrap(), None);

    // Reads: a key only the copy holds is found, alone and in a multi-get.
    let (_, q) = copies(&c, "dis:read");
    probe[q].set(b"dis:read", b"on-copy", 9, 0).unwrap();
    assert_eq!(c.get(b"dis:read").unwrap(), item(b"on-copy", 9));
    assert_eq!(
        c.gets(b"dis:read").unwrap().map(|it| it.value),
        Some(b"on-copy".to_vec())
    );
    let got = c
        .get_multi(&[b"dis:read", b"dis:nowhere", b"dis:add1"])
        .unwrap();
    assert_eq!(
        got,
        vec![item(b"on-copy", 9), None, item(b"new", 0)],
        "multi-get over copies"
    );
    // set_replicas(0) counts as 1.
    c.set_replicas(0);
    assert_eq!(c.replicas(), 1);
    assert_eq!(
        c.get(b"dis:read").unwrap(),
        None,
        "one copy: only the primary is asked"
    );
}

/// A get that failed with a read timeout, after the 100 ms timeout and well within a second.
fn assert_timed_out<T: std::fmt::Debug>(result: &Result<T, ClientError>, took: Duration) {
    assert!(
        matches!(
            result,
            Err(ClientError::Server {
                failure: Failure::Recv(Fail::Timeout),
                ..
            })
        ),
        "{result:?}"
    );
    assert!(took >= Duration::from_millis(90), "{took:?}");
    assert!(took < Duration::from_millis(1000), "{took:?}");
}
