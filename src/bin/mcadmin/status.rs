//! `status`: memcache::status does the work; here are the table and the JSON object.
#![forbid(unsafe_code)]

use std::time::Duration;

use memcache::conn::Credentials;
use memcache::domain_security::{self, DomainSecurity};
use memcache::propagate;
use memcache::registry::{DomainName, Namespace, RegistryError};
use memcache::state_dir::StateDir;
use memcache::status::{utc_time, DomainStatus};

use super::{json_string, no_domain, plural, Failure, Runtime};

/// `status`: a table (or one JSON object) on stdout, notes on stderr; `Failure::Miss` when a
/// server is down.
pub(crate) fn status(
    ns: &Namespace,
    name: &DomainName,
    json: bool,
    timeout: Duration,
    own_security: bool,
) -> Result<(), Failure> {
    let state = StateDir::from_env(ns).map_err(Runtime)?;
    // This host's TLS and login settings of the domain: shown, and used to ask the servers
    // unless mcadmin was given its own. The administrator reads a credentials file its
    // programs' user owns.
    let settings = match &state {
        Some(state) => domain_security::read(state, name).map_err(Runtime)?,
        None => None,
    };
    if let (Some(settings), false) = (&settings, own_security) {
        let loaded = settings
            .load_with(Credentials::parse_file)
            .map_err(|e| Runtime(format!("domain {name}: {e}")))?;
        propagate::use_security(loaded.security().clone());
    }
    let seen = match memcache::status::status(ns, name, state.as_ref(), timeout) {
        Err(RegistryError::NotFound) => return Err(no_domain(name)),
        other => other?,
    };
    if let Some(why) = &seen.since_problem {
        eprintln!("mcadmin: note: {why}");
    }
    if let Err(why) = &seen.processes {
        eprintln!("mcadmin: note: attached processes unknown: {why}");
    }
    if json {
        println!("{}", status_json(&seen, settings.as_ref()));
    } else {
        print!("{}", status_table(&seen, settings.as_ref()));
    }
    let down = seen.servers.iter().filter(|s| !s.is_up()).count();
    if down > 0 {
        return Err(Failure::Miss(format!(
            "{down} of {} server{} of {name} down",
            seen.servers.len(),
            plural(seen.servers.len())
        )));
    }
    Ok(())
}

/// The settings as a JSON object (null: none).
fn security_json(settings: Option<&DomainSecurity>) -> String {
    let Some(s) = settings else {
        return "null".to_owned();
    };
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map_or("null".to_owned(), |p| json_string(&p.display().to_string()))
    };
    format!(
        "{{\"tls\":{},\"tls_ca\":{},\"tls_cert\":{},\"tls_key\":{},\"auth_file\":{}}}",
        s.tls,
        path(&s.ca_file),
        path(&s.cert_file),
        path(&s.key_file),
        path(&s.auth_file)
    )
}

fn status_json(seen: &DomainStatus, settings: Option<&DomainSecurity>) -> String {
    let number = |n: Option<u64>| n.map_or("null".to_owned(), |n| n.to_string());
    let servers: Vec<String> = seen
        .servers
        .iter()
        .map(|s| {
            let since = match s.since {
                Some(t) => format!("{t},\"since_utc\":{}", json_string(&utc_time(t))),
                None => "null,\"since_utc\":null".to_owned(),
            };
            let head = format!(
                "{{\"server\":{},\"up\":{},\"since\":{since}",
                json_string(&s.server.to_string()),
                s.is_up()
            );
            match &s.health {
                Ok(h) => format!(
                    "{head},\"rtt_ms\":{:.3},\"version\":{},\"uptime\":{},\"items\":{},\
                     \"get_hits\":{},\"get_misses\":{},\"hit_ratio\":{},\"evictions\":{}}}",
                    h.rtt.as_secs_f64() * 1000.0,
                    json_string(&h.version),
                    number(h.uptime),
                    number(h.items),
                    number(h.get_hits),
                    number(h.get_misses),
                    h.hit_ratio()
                        .map_or("null".to_owned(), |r| format!("{r:.4}")),
                    number(h.evictions)
                ),
                Err(why) => format!("{head},\"error\":{}}}", json_string(why)),
            }
        })
        .collect();
    let (processes, unreadable, error) = match &seen.processes {
        Ok(p) => {
            let each: Vec<String> = p
                .attached
                .iter()
                .map(|a| {
                    format!(
                        "{{\"pid\":{},\"program\":{},\"stale\":{}}}",
                        a.pid,
                        json_string(&a.program),
                        a.stale
                    )
                })
                .collect();
            (
                format!("[{}]", each.join(",")),
                p.unreadable.to_string(),
                "null".to_owned(),
            )
        }
        Err(why) => ("null".to_owned(), "null".to_owned(), json_string(why)),
    };
    let list = &seen.list;
    format!(
        "{{\"domain\":{},\"version\":{},\"distribution\":{},\"replicas\":{},\"servers\":[{}],\
         \"security\":{},\"processes\":{processes},\"processes_unreadable\":{unreadable},\
         \"processes_error\":{error}}}",
        json_string(seen.domain.as_str()),
        list.version,
        json_string(list.distribution.name()),
        list.replicas,
        servers.join(","),
        security_json(settings)
    )
}

/// The table: the domain on one line, a line per server (a down server's reason in place of
/// its figures), then the attached processes. Columns fit the widest value.
fn status_table(seen: &DomainStatus, settings: Option<&DomainSecurity>) -> String {
    let list = &seen.list;
    let mut out = format!(
        "domain {}  version {}  distribution {}  replicas {}\n",
        seen.domain,
        list.version,
        list.distribution.name(),
        list.replicas
    );
    if let Some(settings) = settings {
        out.push_str(&format!("{settings}\n"));
    }
    let figure = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    let mut rows = vec![[
        "SERVER",
        "STATE",
        "SINCE (UTC)",
        "RTT",
        "VERSION",
        "UPTIME",
        "ITEMS",
        "HIT RATIO",
        "EVICTIONS",
    ]
    .map(str::to_owned)
    .to_vec()];
    for s in &seen.servers {
        let mut row = vec![
            s.server.to_string(),
            if s.is_up() { "up" } else { "down" }.to_owned(),
            s.since.map_or("-".to_owned(), utc_time),
        ];
        match &s.health {
            Ok(h) => row.extend([
                rtt(h.rtt),
                h.version.clone(),
                h.uptime.map_or("-".to_owned(), duration),
                figure(h.items),
                h.hit_ratio()
                    .map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
                figure(h.evictions),
            ]),
            Err(why) => row.push(why.clone()),
        }
        rows.push(row);
    }
    // A down server's reason is the last cell of its row and takes what room it needs.
    let mut widths = [0; 9];
    for row in &rows {
        let sized = if row.len() == widths.len() {
            row.len()
        } else {
            row.len() - 1
        };
        for (w, cell) in widths.iter_mut().zip(&row[..sized]) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| match i + 1 == row.len() {
                true => cell.clone(),
                false => format!("{cell:<w$}", w = widths[i]),
            })
            .collect();
        out.push_str(&cells.join("  "));
        out.push('\n');
    }
    if let Ok(p) = &seen.processes {
        let n = p.attached.len();
        out.push_str(&format!(
            "{n} process{} attached",
            if n == 1 { "" } else { "es" }
        ));
        if p.unreadable > 0 {
            out.push_str(&format!(
                " ({} other process{} could not be looked at)",
                p.unreadable,
                if p.unreadable == 1 { "" } else { "es" }
            ));
        }
        out.push('\n');
        if n > 0 {
            out.push_str("PID      PROGRAM\n");
        }
        for a in &p.attached {
            let stale = if a.stale { "  (a removed segment)" } else { "" };
            out.push_str(&format!("{:<7}  {}{stale}\n", a.pid, a.program));
        }
    }
    out
}

/// A round trip: hundredths of a millisecond below 10 ms, whole milliseconds above.
fn rtt(t: Duration) -> String {
    let ms = t.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

/// An uptime in its two largest units: 45s, 3m12s, 5h03m, 12d04h.
fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}
