//! Issue 16: bulk writes with an answer per key, against real memcached servers, in memcached
//! 1.6's quiet meta mode and in pipelined text (what a server before 1.6 gets).

mod support;

use memcache::client::{Answer, BulkOp, Client, Dialect, ServerSpec, Write};
use memcache::hash::Distribution;
use memcache::protocol::StoreCmd;
use support::{DeadPort, Memcached};

fn client_for(servers: &[&Memcached], dialect: Dialect) -> Client {
    let specs = servers
        .iter()
        .map(|m| ServerSpec::parse(&m.addr()).unwrap())
        .collect();
    let mut c = Client::new(specs, Distribution::KetamaMd5).unwrap();
    c.set_bulk_dialect(dialect);
    c
}

fn writes<'a>(keys: &'a [String], value: &'a [u8], exptime: u64) -> Vec<Write<'a>> {
    keys.iter()
        .map(|k| Write {
            key: k.as_bytes(),
            value,
            flags: 7,
            exptime,
        })
        .collect()
}

fn answers(c: &mut Client, op: BulkOp, writes: &[Write<'_>]) -> Vec<Answer> {
    let done = c.bulk(op, writes).unwrap();
    assert!(done.first_error.is_none() && !done.no_server);
    done.answers
}

fn all(answer: Answer, n: usize) -> Vec<Answer> {
    vec![answer; n]
}

/// Every operation, every answer, over three servers, in both dialects; what the answers say
/// is checked against what a plain get then finds.
#[test]
fn every_operation_answers_per_key_in_both_dialects() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    for (dialect, tag) in [(Dialect::Auto, "meta"), (Dialect::Text, "text")] {
        let mut c = client_for(&servers.iter().collect::<Vec<_>>(), dialect);
        let keys: Vec<String> = (0..100).map(|i| format!("{tag}-key-{i}")).collect();
        let fresh: Vec<String> = (0..20).map(|i| format!("{tag}-fresh-{i}")).collect();
        let set = writes(&keys, b"first", 0);
        assert_eq!(
            answers(&mut c, BulkOp::Store(StoreCmd::Set), &set),
            all(Answer::Done, 100)
        );
        let got = c
            .get_multi(&keys.iter().map(|k| k.as_bytes()).collect::<Vec<_>>())
            .unwrap();
        assert!(got.iter().all(|i| i
            .as_ref()
            .is_some_and(|i| i.value == b"first" && i.flags == 7)));
        // Every server got its share.
        for m in &servers {
            let stats = m.stats();
            assert!(
                stats["cmd_set"].parse::<u64>().unwrap() > 0,
                "{tag}: {stats:?}"
            );
        }

        // add: refused where the key exists, done where it does not, in one call.
        let mut mixed = writes(&keys[..10], b"second", 0);
        mixed.extend(writes(&fresh[..10], b"second", 0));
        let mut expected = all(Answer::NotStored, 10);
        expected.extend(all(Answer::Done, 10));
        assert_eq!(
            answers(&mut c, BulkOp::Store(StoreCmd::Add), &mixed),
            expected
        );
        // replace: the other way round.
        let mut mixed = writes(&keys[..5], b"third", 0);
        mixed.extend(writes(&fresh[10..15], b"third", 0));
        let mut expected = all(Answer::Done, 5);
        expected.extend(all(Answer::NotStored, 5));
        assert_eq!(
            answers(&mut c, BulkOp::Store(StoreCmd::Replace), &mixed),
            expected
        );
        assert_eq!(c.get(keys[0].as_bytes()).unwrap().unwrap().value, b"third");
        assert_eq!(c.get(fresh[12].as_bytes()).unwrap(), None);
        // append and prepend.
        let tail = writes(&keys[..1], b"+", 0);
        assert_eq!(
            answers(&mut c, BulkOp::Store(StoreCmd::Append), &tail),
            [Answer::Done]
        );
        assert_eq!(
            answers(&mut c, BulkOp::Store(StoreCmd::Prepend), &tail),
            [Answer::Done]
        );
        assert_eq!(
            c.get(keys[0].as_bytes()).unwrap().unwrap().value,
            b"+third+"
        );

        // touch: done where the key is, not found where it is not.
        let mut mixed = writes(&keys[..3], b"", 3600);
        mixed.extend(writes(&fresh[15..18], b"", 3600));
        let mut expected = all(Answer::Done, 3);
        expected.extend(all(Answer::NotFound, 3));
        assert_eq!(answers(&mut c, BulkOp::Touch, &mixed), expected);

        // delete: half the keys twice.
        let half = writes(&keys[..50], b"", 0);
        assert_eq!(
            answers(&mut c, BulkOp::Delete, &half),
            all(Answer::Done, 50)
        );
        assert_eq!(
            answers(&mut c, BulkOp::Delete, &half),
            all(Answer::NotFound, 50)
        );
        let got = c
            .get_multi(&keys.iter().map(|k| k.as_bytes()).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(got.iter().filter(|i| i.is_none()).count(), 50, "{tag}");
        assert!(got[..50].iter().all(Option::is_none) && got[50..].iter().all(Option::is_some));
    }
}

/// A value larger than the server's item size is refused for that key alone, whichever
/// dialect, and the keys around it are stored; the connection stays in step.
#[test]
fn a_refused_value_is_named_by_its_key() {
    let server = Memcached::start();
    let big = vec![b'x'; 2 << 20];
    for (dialect, tag) in [(Dialect::Auto, "meta"), (Dialect::Text, "text")] {
        let mut c = client_for(&[&server], dialect);
        let keys: Vec<String> = (0..9).map(|i| format!("{tag}-{i}")).collect();
        let mut batch = writes(&keys, b"small", 0);
        batch[4].value = &big;
        let got = answers(&mut c, BulkOp::Store(StoreCmd::Set), &batch);
        for (i, answer) in got.iter().enumerate() {
            match (i, answer) {
                (4, Answer::Refused(why)) => assert!(why.contains("too large"), "{tag}: {why}"),
                (4, other) => panic!("{tag}: key 4: {other:?}"),
                (_, other) => assert_eq!(other, &Answer::Done, "{tag}: key {i}"),
            }
        }
        assert_eq!(c.get(keys[3].as_bytes()).unwrap().unwrap().value, b"small");
        assert_eq!(c.get(keys[4].as_bytes()).unwrap(), None);
    }
}

/// More keys than one window, and values that take several reads: all answered.
#[test]
fn many_windows_and_large_values() {
    let servers = [Memcached::start(), Memcached::start()];
    let mut c = client_for(&[&servers[0], &servers[1]], Dialect::Auto);
    let keys: Vec<String> = (0..3000).map(|i| format!("w{i}")).collect();
    let value = vec![b'v'; 700];
    let batch = writes(&keys, &value, 0);
    assert_eq!(
        answers(&mut c, BulkOp::Store(StoreCmd::Set), &batch),
        all(Answer::Done, 3000)
    );
    let large = vec![b'L'; 300 * 1024];
    let batch = writes(&keys[..8], &large, 0);
    assert_eq!(
        answers(&mut c, BulkOp::Store(StoreCmd::Set), &batch),
        all(Answer::Done, 8)
    );
    assert_eq!(c.get(b"w7").unwrap().unwrap().value, large);
    assert_eq!(c.get(b"w2999").unwrap().unwrap().value, value);
}

/// A server that cannot be reached: its keys go to the next server, as single writes do.
#[test]
fn a_dead_servers_keys_fail_over() {
    let live = Memcached::start();
    let dead = DeadPort::new();
    let specs = vec![
        ServerSpec::parse(&live.addr()).unwrap(),
        ServerSpec::parse(&format!("127.0.0.1:{}", dead.port())).unwrap(),
    ];
    let mut c = Client::new(specs, Distribution::KetamaMd5).unwrap();
    let keys: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
    let placed: Vec<Option<usize>> = keys.iter().map(|k| c.server_for(k.as_bytes())).collect();
    assert!(
        placed.contains(&Some(1)),
        "no key on the dead server: {placed:?}"
    );
    let done = c
        .bulk(BulkOp::Store(StoreCmd::Set), &writes(&keys, b"v", 0))
        .unwrap();
    assert_eq!(done.answers, all(Answer::Done, 40));
    let got = c
        .get_multi(&keys.iter().map(|k| k.as_bytes()).collect::<Vec<_>>())
        .unwrap();
    assert!(got.iter().all(Option::is_some));
    assert_eq!(live.stats()["curr_items"], "40");
}

/// With two copies, every key goes to two servers; a dead one is chosen around, so with two
/// live servers of three each live one holds every key.
#[test]
fn copies_go_to_two_live_servers_around_a_dead_one() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let dead = DeadPort::new();
    let specs = vec![
        ServerSpec::parse(&a.addr()).unwrap(),
        ServerSpec::parse(&format!("127.0.0.1:{}", dead.port())).unwrap(),
        ServerSpec::parse(&b.addr()).unwrap(),
    ];
    let mut c = Client::new(specs, Distribution::KetamaMd5).unwrap();
    c.set_replicas(2);
    let keys: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
    let done = c
        .bulk(BulkOp::Store(StoreCmd::Set), &writes(&keys, b"v", 0))
        .unwrap();
    assert_eq!(done.answers, all(Answer::Done, 40));
    assert_eq!(a.stats()["curr_items"], "40");
    assert_eq!(b.stats()["curr_items"], "40");
}

/// No server at all: every key fails, none is lost silently.
#[test]
fn no_server_fails_every_key() {
    let mut c = Client::new(Vec::new(), Distribution::KetamaMd5).unwrap();
    let keys: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
    let done = c.bulk(BulkOp::Delete, &writes(&keys, b"", 0)).unwrap();
    assert_eq!(done.answers, all(Answer::Failed, 3));
    assert!(done.no_server);
}

/// A server before memcached 1.6 (which a real 1.6 cannot play): it answers `ERROR` to the meta
/// commands and speaks the text protocol. Stores "STORED" except for keys starting "keep",
/// which it already holds (an add: "NOT_STORED"); deletes find keys starting "gone" missing.
fn text_only_server(stream: std::net::TcpStream, log: support::fake::Log) {
    use std::io::Write as _;
    use support::fake::{halves, is_storage, read_line, skip_data, storage_bytes};
    let Some((mut reader, mut out)) = halves(stream) else {
        return;
    };
    while let Some(line) = read_line(&mut reader) {
        log.lock().unwrap().push(line.clone());
        let words: Vec<&str> = line.split(' ').collect();
        let reply = match words[0] {
            cmd if is_storage(cmd) => {
                let Some(bytes) = storage_bytes(&words) else {
                    return;
                };
                if skip_data(&mut reader, bytes).is_none() {
                    return;
                }
                match (cmd, words[1].starts_with("keep")) {
                    ("add", true) => "NOT_STORED\r\n",
                    _ => "STORED\r\n",
                }
            }
            "delete" if words[1].starts_with("gone") => "NOT_FOUND\r\n",
            "delete" => "DELETED\r\n",
            _ => "ERROR\r\n",
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Where `mn` gets `ERROR`, bulk writes fall back to pipelined text: asked once per connection,
/// every key still answered, and no meta command is ever sent after the question.
#[test]
fn a_server_without_the_meta_protocol_gets_pipelined_text() {
    let fake = support::fake::FakeServer::<Vec<String>>::start(text_only_server);
    let spec = ServerSpec::parse(&format!("127.0.0.1:{}", fake.port)).unwrap();
    let mut c = Client::new(vec![spec], Distribution::KetamaMd5).unwrap();
    let keys: Vec<String> = (0..40)
        .map(|i| match i % 4 {
            0 => format!("keep-{i}"),
            1 => format!("gone-{i}"),
            _ => format!("new-{i}"),
        })
        .collect();
    let adds = writes(&keys, b"value", 0);
    let expected: Vec<Answer> = keys
        .iter()
        .map(|k| match k.starts_with("keep") {
            true => Answer::NotStored,
            false => Answer::Done,
        })
        .collect();
    assert_eq!(
        answers(&mut c, BulkOp::Store(StoreCmd::Add), &adds),
        expected
    );
    let expected: Vec<Answer> = keys
        .iter()
        .map(|k| match k.starts_with("gone") {
            true => Answer::NotFound,
            false => Answer::Done,
        })
        .collect();
    assert_eq!(answers(&mut c, BulkOp::Delete, &adds), expected);
    let log = fake.log.lock().unwrap().clone();
    let asked = log.iter().filter(|l| l.as_str() == "mn").count();
    assert_eq!(asked, 1, "asked once per connection: {log:?}");
    assert_eq!(log[0], "mn", "asked before the first window");
    let meta: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("ms ") || l.starts_with("md ") || l.starts_with("mn"))
        .skip(1)
        .collect();
    assert!(meta.is_empty(), "meta commands after ERROR: {meta:?}");
    assert_eq!(log.iter().filter(|l| l.starts_with("add ")).count(), 40);
    assert_eq!(log.iter().filter(|l| l.starts_with("delete ")).count(), 40);
}
