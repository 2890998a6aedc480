//! Issue 13, point 2: domains survive what empties /dev/shm. Through the real `mcadmin`: every
//! change is kept in the state directory (atomically, mode 0644, the directory created 0755),
//! `restore` recreates removed segments (idempotent; a newer segment is kept, with a report; a
//! bad file is reported with its line and fails the command after the others are restored),
//! a state directory that cannot be written fails the command and changes nothing, and
//! `export`/`import` move a domain as a domain file (export -> import -> export is identical).
//! Each test has its own shared-memory namespace and its own state directory under target/.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use memcache::exit_code::Exit;
use memcache::registry::{DomainList, DomainName, Namespace};
use support::{temp_dir, ShmPrefix};

/// A simulated host: a namespace and a state directory of its own.
struct Host {
    shm: ShmPrefix,
    state: PathBuf,
}

impl Host {
    fn new(label: &str) -> Host {
        Host {
            shm: ShmPrefix::new(label),
            // Not created: the first change must create it.
            state: temp_dir(label).join("state/domains"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.shm.mcadmin_kept(&self.state, args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run mcadmin")
    }

    /// Runs mcadmin, which must exit with `code`; returns stdout and stderr.
    fn expect(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "mcadmin {args:?}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
        );
        (stdout, stderr)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.expect(args, 0).0
    }

    fn ns(&self) -> Namespace {
        Namespace::with_prefix(&self.shm.prefix).unwrap()
    }

    fn list(&self, domain: &str) -> Option<DomainList> {
        let reader = self.ns().open_reader(&name(domain)).unwrap()?;
        Some(reader.read().unwrap())
    }

    fn file(&self, domain: &str) -> PathBuf {
        self.state.join(format!("{domain}.domain"))
    }

    /// Removes every segment, as a reboot does.
    fn reboot(&self) {
        self.shm.remove_all();
        assert!(self.list("web").is_none());
    }
}

/// mcadmin's status for a command that could not be carried out.
const FAILED: i32 = Exit::Failed as i32;

fn name(domain: &str) -> DomainName {
    DomainName::parse(domain).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn restore_recreates_the_domains_after_a_reboot() {
    let host = Host::new("dur_restore");
    host.ok(&["--domain", "web", "add", "127.0.0.1:11211", "--weight", "3"]);
    host.ok(&["--domain", "web", "add", "[::1]:11212"]);
    host.ok(&["--domain", "web", "config", "--replicas", "2"]);
    host.ok(&[
        "--domain",
        "api",
        "set",
        "127.0.0.1:11213=4",
        "/run/mc.sock",
    ]);
    host.ok(&["--domain", "empty", "create"]);
    let before: Vec<DomainList> = ["web", "api", "empty"]
        .iter()
        .map(|d| host.list(d).unwrap())
        .collect();

    // The state directory was created 0755, each file 0644, holding the list as exported.
    assert_eq!(mode(&host.state), 0o755);
    for d in ["web", "api", "empty"] {
        assert_eq!(mode(&host.file(d)), 0o644, "{d}");
        let kept = fs::read_to_string(host.file(d)).unwrap();
        assert_eq!(kept, host.ok(&["--domain", d, "export"]), "{d}");
    }
    let names: Vec<String> = fs::read_dir(&host.state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "no temporary file is left: {names:?}");

    host.reboot();
    let (_, log) = host.expect(&["restore"], 0);
    assert!(log.contains("web: created"), "{log}");
    assert!(log.contains("restored 3 of 3 domains"), "{log}");
    let after: Vec<DomainList> = ["web", "api", "empty"]
        .iter()
        .map(|d| host.list(d).unwrap())
        .collect();
    assert_eq!(
        after, before,
        "versions, settings, servers and weights come back"
    );

    // Idempotent.
    let (_, log) = host.expect(&["restore"], 0);
    assert!(log.contains("web: up to date"), "{log}");

    // A segment newer than its file (changed by a writer without a keeper) is kept, reported.
    let newer = host
        .ns()
        .open_writer(&name("api"), false)
        .unwrap()
        .update(|l| {
            l.servers.pop();
            Ok(())
        })
        .unwrap();
    let (_, log) = host.expect(&["--domain", "api", "restore"], 0);
    assert!(
        log.contains(&format!("api: kept the segment's version {newer}")),
        "{log}"
    );
    assert_eq!(host.list("api").unwrap().version, newer);
    assert!(log.contains("restored 1 of 1 domain "), "only api: {log}");

    // A segment older than its file (a crash between the two writes) gets the file's list.
    host.reboot();
    let old = before[0].version - 1;
    let mut stale = before[0].clone();
    stale.version = old;
    stale.servers.truncate(1);
    host.ns().create_with(&name("web"), &stale).unwrap();
    let (_, log) = host.expect(&["--domain", "web", "restore"], 0);
    assert!(
        log.contains(&format!(
            "installed version {} over version {old}",
            before[0].version
        )),
        "{log}"
    );
    assert_eq!(host.list("web").unwrap(), before[0]);

    // A damaged or planted file is reported with its line; the others are restored anyway.
    host.reboot();
    fs::write(
        host.file("api"),
        "domain api\nversion 5\nserver 127.0.0.1:1 weigth=2\n",
    )
    .unwrap();
    fs::set_permissions(host.file("api"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(host.file("empty"), fs::read(host.file("web")).unwrap()).unwrap();
    let (_, log) = host.expect(&["restore"], FAILED);
    assert!(
        log.contains("api.domain: line 3: unknown server field"),
        "{log}"
    );
    assert!(
        log.contains("empty.domain: the file is for domain web, not empty"),
        "{log}"
    );
    assert!(
        log.contains("restored 1 of 3 domains") && log.contains("2 failed"),
        "{log}"
    );
    assert_eq!(host.list("web").unwrap(), before[0]);
    assert!(host.list("api").is_none() && host.list("empty").is_none());
    fs::set_permissions(host.file("web"), fs::Permissions::from_mode(0o666)).unwrap();
    let (_, log) = host.expect(&["--domain", "web", "restore"], FAILED);
    assert!(log.contains("writable by group or others"), "{log}");

    // destroy forgets the kept copy: restore does not bring the domain back.
    fs::set_permissions(host.file("web"), fs::Permissions::from_mode(0o644)).unwrap();
    host.ok(&["--domain", "web", "destroy"]);
    assert!(!host.file("web").exists());
    let (_, log) = host.expect(&["--domain", "web", "restore"], FAILED);
    assert!(log.contains("nothing kept for this domain"), "{log}");
}

#[test]
fn a_state_dir_that_cannot_be_written_fails_the_command_and_changes_nothing() {
    let host = Host::new("dur_fail");
    host.ok(&["--domain", "web", "set", "127.0.0.1:11211"]);
    let before = host.list("web").unwrap();

    // A path under a regular file cannot be created, not even by root.
    let blocker = temp_dir("dur_fail_blocker").join("file");
    fs::write(&blocker, b"").unwrap();
    let broken = blocker.join("domains");
    let run = |args: &[&str]| {
        host.command(args)
            .env("MEMCACHE_STATE_DIR", &broken)
            .output()
            .unwrap()
    };
    for args in [
        &["--domain", "web", "add", "127.0.0.1:11212"][..],
        &["--domain", "web", "set", "127.0.0.1:11213"],
        &["--domain", "web", "config", "--replicas", "2"],
        &["--domain", "web", "destroy"],
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(FAILED), "{args:?}: {err}");
        assert!(
            err.contains("cannot keep the durable copy") && err.contains("nothing changed"),
            "{args:?}: {err}"
        );
        assert_eq!(
            host.list("web").unwrap(),
            before,
            "{args:?} changed the segment"
        );
    }
    // A new domain is not created either, by add or create: no segment is left behind, not
    // even an empty one.
    for args in [
        &["--domain", "api", "add", "127.0.0.1:11212"][..],
        &["--domain", "api", "create"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(FAILED), "{args:?}");
        assert!(host.list("api").is_none());
        assert!(
            !host.shm.segment("api").exists(),
            "{args:?} left {:?}",
            host.shm.entries()
        );
    }

    // A relative path is refused before anything is done.
    let out = host
        .command(&["--domain", "web", "add", "127.0.0.1:11214"])
        .env("MEMCACHE_STATE_DIR", "relative/dir")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(FAILED));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an absolute path"));
    assert_eq!(host.list("web").unwrap(), before);

    // A namespace of its own has no default state directory: restore says so.
    let out = host
        .command(&["restore"])
        .env_remove("MEMCACHE_STATE_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(FAILED));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no state directory"));
}

#[test]
fn export_and_import_move_a_domain() {
    let (a, b) = (Host::new("dur_exp_a"), Host::new("dur_exp_b"));
    a.ok(&[
        "--domain",
        "web",
        "set",
        "127.0.0.1:11211=3",
        "[::1]:11212",
        "/run/mc.sock=2",
    ]);
    a.ok(&[
        "--domain",
        "web",
        "config",
        "--distribution",
        "crc32-modulo",
        "--replicas",
        "2",
    ]);
    let exported = a.ok(&["--domain", "web", "export"]);
    let version = a.list("web").unwrap().version;
    assert_eq!(
        exported,
        format!(
            "domain web\nversion {version}\ndistribution crc32-modulo\nreplicas 2\n\
             server 127.0.0.1:11211 weight=3\nserver [::1]:11212\nserver /run/mc.sock weight=2\n"
        )
    );
    let file = temp_dir("dur_exp").join("web.domain");
    fs::write(&file, &exported).unwrap();
    let path = file.to_str().unwrap();

    // export -> import -> export: identical, and the import changed nothing.
    let (_, log) = a.expect(&["--domain", "web", "import", path], 0);
    assert!(log.contains("already has the list"), "{log}");
    assert_eq!(a.ok(&["--domain", "web", "export"]), exported);

    // Into another host, from stdin: the same list under a version of its own.
    let mut child = b
        .command(&["--domain", "web", "import", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exported.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on_b = b.list("web").unwrap();
    let on_a = a.list("web").unwrap();
    assert_eq!(
        (on_b.distribution, on_b.replicas, &on_b.servers),
        (on_a.distribution, on_a.replicas, &on_a.servers)
    );
    let again = b.ok(&["--domain", "web", "export"]);
    fs::write(&file, &again).unwrap();
    b.expect(&["--domain", "web", "import", path], 0);
    assert_eq!(
        b.ok(&["--domain", "web", "export"]),
        again,
        "b's round trip"
    );
    assert_eq!(
        fs::read_to_string(b.file("web")).unwrap(),
        again,
        "kept durably"
    );

    // An edited file (a hand-written one: comments, no version) replaces the list.
    fs::write(
        &file,
        "# web, as config management has it\ndomain web\nserver 127.0.0.1:11215 weight=5\n",
    )
    .unwrap();
    let (_, log) = b.expect(&["--domain", "web", "import", path], 0);
    assert!(log.contains("imported"), "{log}");
    let list = b.list("web").unwrap();
    assert!(list.version > on_b.version);
    assert_eq!(
        list.replicas, 1,
        "settings the file leaves out are the defaults"
    );
    assert_eq!(
        (
            list.servers[0].port,
            list.servers[0].weight,
            list.servers.len()
        ),
        (11215, 5, 1)
    );

    // Refused, naming the problem: another domain, a bad line, a missing file.
    let (_, err) = b.expect(&["--domain", "api", "import", path], FAILED);
    assert!(err.contains("the file is for domain web, not api"), "{err}");
    assert!(b.list("api").is_none());
    fs::write(&file, "domain web\nreplicas 2\nreplica 3\n").unwrap();
    let (_, err) = b.expect(&["--domain", "web", "import", path], FAILED);
    assert!(err.contains("line 3: unknown keyword \"replica\""), "{err}");
    assert_eq!(b.list("web").unwrap(), list);
    let (_, err) = b.expect(
        &["--domain", "web", "import", "/nonexistent/web.domain"],
        FAILED,
    );
    assert!(err.contains("/nonexistent/web.domain"), "{err}");
}
