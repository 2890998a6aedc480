//! The status line of `capi-tests/domain_loop.c`, a C program that keeps operating on a shared
//! domain: what tests/domains.rs checks after list changes and what the sources' latency test
//! (tests/sources_latency.rs) times.

use std::collections::HashMap;

/// What a looping process last wrote to its status file.
#[derive(Clone, Debug)]
pub struct LoopStatus {
    pub ops: u64,
    pub fails: u64,
    pub last_fail: i64,
    pub consistent: bool,
    pub servers: Vec<String>,
}

impl LoopStatus {
    pub fn parse(line: &str) -> Option<LoopStatus> {
        let line = line.strip_suffix('\n')?;
        let mut fields = HashMap::new();
        for word in line.split(' ') {
            let (k, v) = word.split_once('=')?;
            fields.insert(k, v);
        }
        Some(LoopStatus {
            ops: fields.get("ops")?.parse().ok()?,
            fails: fields.get("fails")?.parse().ok()?,
            last_fail: fields.get("last_fail")?.parse().ok()?,
            consistent: *fields.get("consistent")? == "1",
            servers: fields
                .get("servers")?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}
