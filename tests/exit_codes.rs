//! mclient(1) and mcadmin(8) share one table of exit statuses (`memcache::exit_code`): the same
//! kind of problem gives the same status in both, both help texts and both man pages give the
//! table (issue 13, point 6).

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use memcache::exit_code::Exit;
use support::{DeadPort, Memcached, ShmPrefix};

fn run(bin: &str, shm: &ShmPrefix, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("MEMCACHE_SERVERS")
        .env_remove("MEMCACHE_DOMAIN")
        .env("MEMCACHE_SHM_PREFIX", &shm.prefix)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"))
}

fn mclient(shm: &ShmPrefix, args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_mclient"), shm, args)
}

fn mcadmin(shm: &ShmPrefix, args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_mcadmin"), shm, args)
}

#[track_caller]
fn status(out: &Output, expected: Exit, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(i32::from(expected)),
        "{what}: stdout {:?}, stderr {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_usage_error_is_the_same_status_in_both_tools() {
    let shm = ShmPrefix::new("exitusage");
    for args in [&["frobnicate"][..], &[], &["--no-such-option", "list"]] {
        status(
            &mcadmin(&shm, args),
            Exit::Usage,
            &format!("mcadmin {args:?}"),
        );
        status(
            &mclient(&shm, args),
            Exit::Usage,
            &format!("mclient {args:?}"),
        );
    }
    // A server address that does not parse, named to each tool.
    status(
        &mcadmin(&shm, &["--domain", "d", "add", "host:notaport"]),
        Exit::Usage,
        "mcadmin add host:notaport",
    );
    status(
        &mclient(&shm, &["--servers", "host:notaport", "get", "k"]),
        Exit::Usage,
        "mclient --servers host:notaport",
    );
    // A bad key to mclient, a bad weight to mcadmin: the command line is wrong.
    status(
        &mclient(&shm, &["--servers", "127.0.0.1:1", "get", "a b"]),
        Exit::Usage,
        "mclient get of a key with a space",
    );
    status(
        &mcadmin(
            &shm,
            &["--domain", "d", "add", "127.0.0.1:1", "--weight", "0"],
        ),
        Exit::Usage,
        "mcadmin add --weight 0",
    );
    assert!(shm.entries().is_empty(), "a usage error created a segment");
}

#[test]
fn failures_and_misses_are_the_same_statuses_in_both_tools() {
    let shm = ShmPrefix::new("exitfail");
    // A domain that does not exist: a failure for both.
    status(
        &mcadmin(&shm, &["--domain", "nosuch", "list"]),
        Exit::Failed,
        "mcadmin list of a missing domain",
    );
    status(
        &mclient(&shm, &["--domain", "nosuch", "get", "k"]),
        Exit::Failed,
        "mclient get through a missing domain",
    );
    // A server that refuses connections: a failure for both.
    let dead = DeadPort::new();
    let dead = format!("127.0.0.1:{}", dead.port());
    status(
        &mclient(&shm, &["--servers", &dead, "get", "k"]),
        Exit::Failed,
        "mclient get from a dead server",
    );
    status(
        &mcadmin(&shm, &["--domain", "d", "pull", &dead]),
        Exit::Failed,
        "mcadmin pull from a dead server",
    );
    // Success and a miss.
    let mc = Memcached::start();
    status(
        &mcadmin(&shm, &["--domain", "d", "add", &mc.addr()]),
        Exit::Ok,
        "mcadmin add",
    );
    status(
        &mclient(&shm, &["--domain", "d", "set", "k", "v"]),
        Exit::Ok,
        "mclient set",
    );
    status(
        &mclient(&shm, &["--domain", "d", "get", "nope"]),
        Exit::Miss,
        "mclient get of a missing key",
    );
}

#[test]
fn both_help_texts_and_man_pages_give_the_table() {
    let shm = ShmPrefix::new("exithelp");
    for (tool, out) in [
        ("mcadmin", mcadmin(&shm, &["--help"])),
        ("mclient", mclient(&shm, &["--help"])),
    ] {
        status(&out, Exit::Ok, &format!("{tool} --help"));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains(&Exit::summary()), "{tool} --help: {help}");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for page in ["man/mclient.1", "man/mcadmin.8"] {
        let text = std::fs::read_to_string(root.join(page)).expect(page);
        let section = text
            .split(".SH EXIT STATUS")
            .nth(1)
            .and_then(|rest| rest.split("\n.SH ").next())
            .unwrap_or_else(|| panic!("{page}: no EXIT STATUS section"));
        // Every status a tool can end with has its entry; mcadmin never ends with a miss.
        for exit in Exit::ALL {
            if page.ends_with(".8") && exit == Exit::Miss {
                continue;
            }
            let entry = format!(".TP\n.B {}\n", exit.code());
            assert!(section.contains(&entry), "{page}: no entry for {exit:?}");
        }
        assert!(section.contains("share one table"), "{page}");
        let usage = section
            .split(&format!(".B {}\n", Exit::Usage.code()))
            .nth(1)
            .unwrap_or_default();
        assert!(
            usage.starts_with("Usage error"),
            "{page}: 2 is not the usage error"
        );
    }
}
