//! The benchmark's smoke run: `bench/run.sh --smoke` runs every client on every workload with
//! tiny counts (and callgrind once per library), so `make bench` cannot rot unnoticed. Nothing
//! about speed is asserted; the run must finish and its table must hold every row.

mod support;

use std::path::Path;
use std::process::Command;

/// The cargo profile this test was built with: `target/<profile>/deps/<test>`.
fn profile() -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    match dir.file_name().and_then(|n| n.to_str()) {
        // The dev profile's directory is `debug`.
        Some("debug") | None => "dev".to_owned(),
        Some(name) => name.to_owned(),
    }
}

#[test]
fn smoke_run_reports_every_client_and_workload() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A report of this test's own: someone may run `make bench SMOKE=1` meanwhile.
    let out = root.join(format!("target/bench/smoke-test.{}.md", std::process::id()));
    let run = Command::new(root.join("bench/run.sh"))
        .arg("--smoke")
        .arg("--out")
        .arg(&out)
        .env("LIBMEMCACHE_PREFIX", support::prefix())
        // The harness built as this test was (`make test`: the suite profile), which reuses the
        // library this build made instead of building another.
        .env("BENCH_PROFILE", profile())
        .output()
        .expect("cannot run bench/run.sh");
    assert!(
        run.status.success(),
        "bench/run.sh --smoke failed ({}):\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let report = std::fs::read_to_string(&out).expect("the smoke run wrote no report");
    let _ = std::fs::remove_file(&out);

    let workloads = [
        "get hit",
        "get miss",
        "set",
        "set 10 KiB",
        "incr",
        "multi-get 100 keys, 1 server",
        "multi-get 100 keys, 4 servers",
    ];
    let clients = [
        "libmemcache C API",
        "libmemcache Rust core",
        "libmemcached",
        "raw-socket floor",
    ];
    let mut missing = Vec::new();
    for w in workloads {
        for c in clients {
            let row = format!("| {w} | {c} | ");
            if !report.contains(&row) {
                missing.push(row);
            }
        }
    }
    let domain_row = "| get hit | libmemcache C API, domain handle | ";
    if !report.contains(domain_row) {
        missing.push(domain_row.to_string());
    }
    // Issue 16: 8 threads on one shared handle, serialised, and libmemcached with 8 handles;
    // and the shared handle's resident memory over many pipelined operations (its target row).
    for w in ["get hit, 8 threads", "set, 8 threads"] {
        let mut rows: Vec<String> = [
            "libmemcache C API, 8 threads, one shared handle",
            "libmemcache C API, 8 threads, one handle serialised",
            "libmemcached, 8 threads, 8 handles",
        ]
        .iter()
        .map(|c| format!("| {w} | {c} | "))
        .collect();
        rows.push(format!("| {w}: RSS grows <= "));
        missing.extend(rows.into_iter().filter(|row| !report.contains(row)));
    }
    // Issue 17: the same C API over TLS against plain, and reconnects with and without
    // session resumption; the rows start with the workload (or target) and the client.
    let plain_and_tls = ["libmemcache C API", "libmemcache C API over TLS"];
    let reconnects = [
        plain_and_tls[0],
        plain_and_tls[1],
        "libmemcache C API over TLS, resumption off",
    ];
    let rows = [
        ("get hit, TLS vs plain", &plain_and_tls[..]),
        ("set, TLS vs plain", &plain_and_tls[..]),
        ("reconnect + get hit", &reconnects[..]),
        (
            "get hit: single-key TLS rate >= 0.9 x plain on loopback",
            &[][..],
        ),
        (
            "set: single-key TLS rate >= 0.9 x plain on loopback",
            &[][..],
        ),
    ];
    for (first, clients) in rows {
        let wanted: Vec<String> = match clients {
            [] => vec![format!("| {first} | ")],
            _ => clients
                .iter()
                .map(|c| format!("| {first} | {c} | "))
                .collect(),
        };
        missing.extend(wanted.into_iter().filter(|row| !report.contains(row)));
    }
    assert!(
        missing.is_empty(),
        "rows missing from the table: {missing:?}\n{report}"
    );
    // Callgrind counted a get over TLS beside the plain one.
    assert_counted(&report, "## TLS against plain", &[(2, "plain"), (3, "TLS")]);
    for section in [
        "## Targets",
        "## Instructions per operation",
        "## Where the instructions go",
    ] {
        assert!(report.contains(section), "no {section:?} in:\n{report}");
    }
    // Callgrind counted both libraries' gets: the C API and libmemcached columns are numbers.
    assert_counted(
        &report,
        "## Instructions per operation",
        &[(2, "C API"), (5, "libmemcached")],
    );
}

/// The get hit row of the table after `section` has an instruction count in each of `columns`.
fn assert_counted(report: &str, section: &str, columns: &[(usize, &str)]) {
    let table = report
        .split(section)
        .nth(1)
        .unwrap_or_else(|| panic!("no {section:?} in:\n{report}"));
    let row = table
        .lines()
        .find(|l| l.starts_with("| get hit | "))
        .unwrap_or_else(|| panic!("no get hit row under {section:?}:\n{report}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    for &(column, name) in columns {
        assert!(
            cells[column].parse::<f64>().is_ok_and(|n| n > 0.0),
            "no {name} instruction count in {row:?}"
        );
    }
}
