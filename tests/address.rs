//! One server-address type across the crate: the client's `ServerSpec`, the registry's
//! `ServerEntry` and the ring's input are all `address::ServerAddr`, with one set of rules.

use memcache::address::{ServerAddr, DEFAULT_PORT, DEFAULT_WEIGHT};
use memcache::client::{Client, ClientError, ServerSpec};
use memcache::hash::{Distribution, RingServer, Selector};
use memcache::registry::{check_entry, ServerEntry};

#[test]
fn every_part_names_a_server_the_same_way() {
    let parsed: ServerSpec = ServerSpec::parse("cache1").unwrap();
    let entry: ServerEntry = ServerAddr::new("cache1", DEFAULT_PORT);
    assert_eq!(parsed, entry);
    assert_eq!(parsed.weight, DEFAULT_WEIGHT);
    assert_eq!(entry.to_string(), "cache1:11211");
    assert_eq!(check_entry(&entry), Ok(()));
    let zero = ServerAddr { weight: 0, ..entry };
    assert!(check_entry(&zero).unwrap_err().contains("weight 0"));
}

#[test]
fn the_client_refuses_what_names_no_server() {
    for bad in [
        ServerAddr::new("h", 0),
        ServerAddr::new("/tmp/s", 5),
        ServerAddr::new("", 1),
        ServerAddr::new("a:b", 1),
    ] {
        match Client::new(vec![bad.clone()], Distribution::KetamaMd5) {
            Err(e @ ClientError::BadServer(_)) => {
                assert!(e.to_string().starts_with("bad server address "), "{e}")
            }
            Err(e) => panic!("{bad:?}: {e}"),
            Ok(_) => panic!("{bad:?} accepted"),
        }
    }
}

#[test]
fn the_ring_takes_the_list_as_it_is() {
    let list: Vec<ServerAddr> = ["127.0.0.1:11211", "127.0.0.2:11300", "/run/mc.sock"]
        .iter()
        .map(|s| ServerAddr::parse(s).unwrap())
        .collect();
    let ring: Vec<RingServer<'_>> = list.iter().map(RingServer::from).collect();
    let by_hand = Selector::new(Distribution::KetamaMd5, &ring);
    let direct = Selector::for_servers(Distribution::KetamaMd5, &list);
    for i in 0..1000u32 {
        let key = format!("key{i}");
        let h = by_hand.hash(key.as_bytes());
        assert_eq!(by_hand.pick(h, |_| true), direct.pick(h, |_| true), "{key}");
    }
}
