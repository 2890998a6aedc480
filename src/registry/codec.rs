//! Between stored slots and [`DomainList`]s. Decoding treats the copy as hostile input: every
//! field is checked, and a count is clamped before it is used for anything.
#![forbid(unsafe_code)]

use super::layout::{
    distribution_code, distribution_from_code, RawEntry, SlotHead, FLAG_TLS, HOST_SIZE, MAX_SERVERS,
};
use super::list::{check_entry, DomainList, ServerEntry, MAX_REPLICAS};
use super::RegistryError;

/// The stored form of a valid entry (the host zero-padded, so it is NUL-terminated).
pub fn encode_entry(server: &ServerEntry) -> RawEntry {
    let mut host = [0u8; HOST_SIZE];
    let bytes = server.host.as_bytes();
    let len = bytes.len().min(HOST_SIZE - 1);
    host[..len].copy_from_slice(&bytes[..len]);
    RawEntry {
        host,
        port: server.port,
        reserved: if server.tls { FLAG_TLS } else { 0 },
        weight: server.weight,
    }
}

/// The stored head of a valid list.
pub fn encode_head(list: &DomainList) -> SlotHead {
    SlotHead {
        version: list.version,
        count: list.servers.len() as u32,
        distribution: distribution_code(list.distribution),
        replicas: list.replicas,
        reserved: 0,
    }
}

/// Decodes and validates a stable copy of slot `slot`, published as `version`. `entries` holds
/// the first `min(head.count, MAX_SERVERS)` stored entries. Messages name the segment, the slot
/// and the field.
pub fn decode_slot(
    segment: &str,
    version: u64,
    slot: usize,
    head: &SlotHead,
    entries: &[RawEntry],
) -> Result<DomainList, RegistryError> {
    let corrupt = |what: String| RegistryError::Corrupt(format!("{segment}: slot {slot}: {what}"));
    if head.version != version {
        return Err(corrupt(format!(
            "holds version {} but version {version} is published",
            head.version
        )));
    }
    if version == 0 {
        return Err(corrupt("version 0 is published".to_owned()));
    }
    let count = head.count as usize;
    if count > MAX_SERVERS {
        return Err(corrupt(format!(
            "server count {count} exceeds the maximum of {MAX_SERVERS}"
        )));
    }
    if entries.len() != count {
        // The caller copies exactly `count` entries; anything else is a bug on our side, but it
        // is still reported rather than trusted.
        return Err(corrupt(format!(
            "{} entries copied for a count of {count}",
            entries.len()
        )));
    }
    let distribution = distribution_from_code(head.distribution)
        .ok_or_else(|| corrupt(format!("unknown distribution code {}", head.distribution)))?;
    if head.replicas == 0 || head.replicas > MAX_REPLICAS {
        return Err(corrupt(format!(
            "replica count {} is outside 1..={MAX_REPLICAS}",
            head.replicas
        )));
    }
    let mut servers = Vec::with_capacity(count);
    for (i, raw) in entries.iter().enumerate() {
        let server =
            decode_entry(raw).map_err(|why| corrupt(format!("server {}: {why}", i + 1)))?;
        servers.push(server);
    }
    let list = DomainList {
        version,
        distribution,
        replicas: head.replicas,
        servers,
    };
    // Duplicates are the one list-level rule left; the entries were checked one by one above.
    list.validate().map_err(|e| match e {
        RegistryError::BadEntry(why) => corrupt(why),
        other => corrupt(other.to_string()),
    })?;
    Ok(list)
}

fn decode_entry(raw: &RawEntry) -> Result<ServerEntry, String> {
    let len = raw
        .host
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| format!("host is not NUL-terminated within {HOST_SIZE} bytes"))?;
    let host = std::str::from_utf8(&raw.host[..len])
        .map_err(|_| "host is not valid UTF-8".to_owned())?
        .to_owned();
    if raw.reserved & !FLAG_TLS != 0 {
        return Err(format!("unknown flags {:#x}", raw.reserved & !FLAG_TLS));
    }
    let entry = ServerEntry {
        host,
        port: raw.port,
        weight: raw.weight,
        tls: raw.reserved & FLAG_TLS != 0,
    };
    check_entry(&entry)?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Distribution;

    fn sample() -> DomainList {
        DomainList {
            version: 7,
            distribution: Distribution::Crc32Modulo,
            replicas: 2,
            servers: vec![
                ServerEntry {
                    host: "mc1".into(),
                    port: 11211,
                    weight: 3,
                    tls: true,
                },
                ServerEntry {
                    host: "/run/mc.sock".into(),
                    port: 0,
                    weight: 1,
                    tls: false,
                },
            ],
        }
    }

    fn encode(list: &DomainList) -> (SlotHead, Vec<RawEntry>) {
        (
            encode_head(list),
            list.servers.iter().map(encode_entry).collect(),
        )
    }

    fn decode_err(head: &SlotHead, entries: &[RawEntry]) -> String {
        decode_slot("/x", 7, 1, head, entries)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn round_trip() {
        let list = sample();
        let (head, entries) = encode(&list);
        assert_eq!(decode_slot("/x", 7, 0, &head, &entries).unwrap(), list);
        let longest = ServerEntry {
            host: "h".repeat(255),
            port: 1,
            weight: 1,
            tls: false,
        };
        let raw = encode_entry(&longest);
        assert_eq!(raw.host[255], 0);
        assert_eq!(decode_entry(&raw).unwrap(), longest);
    }

    #[test]
    fn hostile_fields() {
        let (head, entries) = encode(&sample());

        let msg = decode_slot("/x", 8, 1, &head, &entries)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/x: slot 1: holds version 7 but version 8"),
            "{msg}"
        );

        let mut h = head;
        h.distribution = 7;
        assert!(decode_err(&h, &entries).contains("unknown distribution code 7"));

        let mut h = head;
        h.replicas = 0;
        assert!(decode_err(&h, &entries).contains("replica count 0"));

        let mut h = head;
        h.count = 100_000;
        assert!(decode_err(&h, &entries).contains("count 100000 exceeds"));

        let mut e = entries.clone();
        e[1].host = [b'x'; HOST_SIZE];
        assert!(decode_err(&head, &e).contains("server 2: host is not NUL-terminated"));

        let mut e = entries.clone();
        e[0].port = 0;
        assert!(decode_err(&head, &e).contains("server 1: host mc1 has port 0"));

        let mut e = entries.clone();
        e[0].host[1] = 0xff;
        assert!(decode_err(&head, &e).contains("UTF-8"));

        let mut e = entries.clone();
        e[0].host[0] = 0;
        assert!(decode_err(&head, &e).contains("empty host"));

        let mut e = entries.clone();
        e[1] = e[0];
        assert!(decode_err(&head, &e).contains("listed twice"));

        // The TLS flag is stored in the entry's flags; a flag this layout does not know is
        // refused, not ignored.
        assert_eq!(entries[0].reserved, FLAG_TLS);
        let mut e = entries.clone();
        e[0].reserved = FLAG_TLS | 4;
        assert!(decode_err(&head, &e).contains("server 1: unknown flags 0x4"));

        let mut e = entries.clone();
        e[0].weight = 0;
        assert!(decode_err(&head, &e).contains("weight 0"));
    }
}
