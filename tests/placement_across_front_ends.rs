//! One cache, one placement, whatever the front end (issue 13, point 5; issue 15, point 5): with
//! three real memcached servers, keys written through each front end (the C API, mclient, the
//! Ruby gem, the PHP Composer package and the PostgreSQL extension) are read through every
//! other, and each key sits on the one server the placement rule names, as each server asked on
//! its own says:
//! - an explicit list with no distribution given: 1.4's crc32-modulo everywhere, so a 1.4
//!   program adding the same servers finds the same keys;
//! - the same list with ketama-md5 chosen in each front end, by the same name;
//! - a shared domain (a private `MEMCACHE_SHM_PREFIX` and `MEMCACHE_STATE_DIR`) imported with
//!   `distribution ketama-md5`, which every front end follows.
//!
//! Each front end is driven in batches through a small driver: `capi-tests/domain_driver.c`,
//! `tests/placement/driver.rb` and `driver.php`, psql for PostgreSQL (a throwaway server from
//! `bindings/postgresql/serve.sh`), and mclient itself.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use memcache::client::{Client, ServerSpec};
use memcache::hash::Distribution;
use support::{compile_capi, temp_dir, Memcached, ShmPrefix};

/// Keys each front end writes per setup.
const KEYS: usize = 20;
/// Bound on one driver run (a batch of 100 operations takes well under a second).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on building the extension and starting PostgreSQL (a few seconds normally).
const PG_START_TIMEOUT: Duration = Duration::from_secs(180);
const DOMAIN: &str = "placed";

/// How the front ends are told where the servers are.
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// The three servers, with this distribution named explicitly, or none (the default).
    List(Option<Distribution>),
    /// The shared domain `DOMAIN`, holding the three servers.
    Domain,
}

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Setup::List(None) => "list",
            Setup::List(Some(Distribution::Crc32Modulo)) => "list-crc32",
            Setup::List(Some(Distribution::KetamaMd5)) => "list-ketama",
            Setup::Domain => "domain",
        }
    }

    /// Where the rule says keys go.
    fn distribution(self) -> Distribution {
        match self {
            Setup::List(d) => d.unwrap_or(Distribution::Crc32Modulo),
            // What the domain file names.
            Setup::Domain => Distribution::KetamaMd5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum FrontEnd {
    C,
    Mclient,
    Ruby,
    Php,
    Postgres,
}

const FRONT_ENDS: [FrontEnd; 5] = [
    FrontEnd::C,
    FrontEnd::Mclient,
    FrontEnd::Ruby,
    FrontEnd::Php,
    FrontEnd::Postgres,
];

/// Runs `cmd` with `input` on standard input, killed and failed after `RUN_TIMEOUT`.
fn run(mut cmd: Command, input: String) -> Output {
    support::run_bounded(&mut cmd, input.as_bytes(), RUN_TIMEOUT)
}

#[track_caller]
fn success(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("text output")
}

/// `KEY VALUE` lines as a map.
fn pairs(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(h: &str) -> String {
    let bytes: Vec<u8> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect();
    String::from_utf8(bytes).expect("UTF-8 value")
}

/// `LD_LIBRARY_PATH` with the installed library first.
fn library_path() -> OsString {
    let mut path = OsString::from(support::prefix().join("lib"));
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        path.push(":");
        path.push(old);
    }
    path
}

/// A PostgreSQL with the extension, from `serve.sh`; stopped when dropped (its standard input
/// closes, and the script stops the server and removes its files).
struct Postgres {
    child: Child,
    stdin: Option<ChildStdin>,
    env: Vec<(String, String)>,
    psql: PathBuf,
}

impl Postgres {
    fn start(shm: &ShmPrefix) -> Postgres {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/postgresql/serve.sh");
        let mut child = Command::new("bash")
            .arg(&script)
            .env("LIBMEMCACHE_PREFIX", support::prefix())
            .env("PGMC_SHM_PREFIX", &shm.prefix)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", script.display()));
        let stdin = child.stdin.take();
        let stderr = support::read_in_background(child.stderr.take().expect("piped stderr"));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + PG_START_TIMEOUT;
        let mut seen = Vec::new();
        let ready = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("ready ") => break line,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "serve.sh did not get PostgreSQL ready:\n{}\n--- stderr ---\n{}",
                        seen.join("\n"),
                        String::from_utf8_lossy(&stderr.join().unwrap_or_default())
                    );
                }
            }
        };
        let mut env = Vec::new();
        let mut psql = PathBuf::from("psql");
        for field in ready.split_whitespace().skip(1) {
            let (name, value) = field.split_once('=').expect("NAME=VALUE");
            if name == "PSQL" {
                psql = PathBuf::from(value);
            } else {
                env.push((name.to_string(), value.to_string()));
            }
        }
        env.push(("PGDATABASE".into(), "postgres".into()));
        let pg = Postgres {
            child,
            stdin,
            env,
            psql,
        };
        success(
            pg.psql("CREATE EXTENSION pgmemcache_rs;\n".into()),
            "CREATE EXTENSION",
        );
        pg
    }

    /// `psql` with `sql` on standard input, unaligned tuples only, stopping at the first error.
    fn psql(&self, sql: String) -> Output {
        let mut cmd = Command::new(&self.psql);
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        run(cmd, sql)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the front ends need: the servers, the namespace of the domain, PostgreSQL and the
/// C driver.
struct World {
    servers: Vec<String>,
    shm: ShmPrefix,
    pg: Postgres,
    c_driver: PathBuf,
}

impl World {
    fn list(&self) -> String {
        self.servers.join(",")
    }

    fn write(&self, fe: FrontEnd, setup: Setup, items: &[(String, String)]) {
        let what = format!("{fe:?} writing ({})", setup.label());
        match fe {
            FrontEnd::C => {
                let script: String = items
                    .iter()
                    .map(|(k, v)| format!("set {k} {}\n", hex(v)))
                    .collect();
                let out = self.c(setup, &script, &what);
                let bad: Vec<&str> = out.lines().filter(|l| *l != "rc 0").collect();
                assert!(bad.is_empty(), "{what}: {bad:?}");
            }
            FrontEnd::Mclient => {
                for (k, v) in items {
                    let mut cmd = self.mclient(setup);
                    cmd.args(["set", k, v]);
                    success(run(cmd, String::new()), &what);
                }
            }
            FrontEnd::Ruby | FrontEnd::Php => {
                let script: String = items
                    .iter()
                    .map(|(k, v)| format!("set {k} {v}\n"))
                    .collect();
                success(run(self.binding(fe, setup), script), &what);
            }
            FrontEnd::Postgres => {
                let mut sql = self.pg_setup(setup);
                for (k, v) in items {
                    sql.push_str(&format!("SELECT memcache_set('{k}', '{v}');\n"));
                }
                let out = success(self.pg.psql(sql), &what);
                assert!(
                    out.lines().all(|l| l == "t") && out.lines().count() == items.len(),
                    "{what}: {out}"
                );
            }
        }
    }

    /// The keys found, with their values.
    fn read(&self, fe: FrontEnd, setup: Setup, keys: &[String]) -> BTreeMap<String, String> {
        let what = format!("{fe:?} reading ({})", setup.label());
        match fe {
            FrontEnd::C => {
                let script: String = keys.iter().map(|k| format!("get {k}\n")).collect();
                let out = self.c(setup, &script, &what);
                let answers: Vec<&str> = out.lines().collect();
                assert_eq!(answers.len(), keys.len(), "{what}: {out}");
                keys.iter()
                    .zip(answers)
                    .filter_map(|(k, a)| Some((k.clone(), unhex(a.strip_prefix("val ")?))))
                    .collect()
            }
            FrontEnd::Mclient => {
                let mut cmd = self.mclient(setup);
                cmd.args(["get", "--print-keys"]).args(keys);
                // Status 1 (a miss) still lists what was found.
                let out = run(cmd, String::new());
                assert!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "{what}: {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                records(&out.stdout)
            }
            FrontEnd::Ruby | FrontEnd::Php => {
                let script: String = keys.iter().map(|k| format!("get {k}\n")).collect();
                pairs(&success(run(self.binding(fe, setup), script), &what))
            }
            FrontEnd::Postgres => {
                let mut sql = self.pg_setup(setup);
                let values: Vec<String> = keys.iter().map(|k| format!("('{k}')")).collect();
                sql.push_str(&format!(
                    "SELECT k || ' ' || v FROM (VALUES {}) AS t(k), \
                     LATERAL memcache_get_text(k) AS v WHERE v IS NOT NULL;\n",
                    values.join(",")
                ));
                pairs(&success(self.pg.psql(sql), &what))
            }
        }
    }

    /// The C API through `domain_driver`: a private handle with the servers added (and the
    /// distribution chosen, if any), or a handle on the domain; then `script`. The replies to
    /// the set-up lines are checked and left out.
    fn c(&self, setup: Setup, script: &str, what: &str) -> String {
        let mut head = String::new();
        match setup {
            Setup::List(d) => {
                head.push_str("private\n");
                if let Some(d) = d {
                    head.push_str(&format!("dist {}\n", d.name()));
                }
                for s in &self.servers {
                    head.push_str(&format!("add {s}\n"));
                }
            }
            Setup::Domain => head.push_str(&format!("new2 {DOMAIN}\n")),
        }
        let mut cmd = Command::new(&self.c_driver);
        cmd.env("LD_LIBRARY_PATH", library_path())
            .env("MEMCACHE_SHM_PREFIX", &self.shm.prefix);
        let input = format!("{head}{script}quit\n");
        let out = success(run(cmd, input), what);
        let head_lines = head.lines().count();
        let replies: Vec<&str> = out.lines().collect();
        assert!(
            replies.len() >= head_lines
                && replies[..head_lines]
                    .iter()
                    .all(|r| *r == "ok" || *r == "rc 0"),
            "{what}: set-up failed: {out}"
        );
        replies[head_lines..].join("\n")
    }

    fn mclient(&self, setup: Setup) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mclient"));
        cmd.env_remove("MEMCACHE_SERVERS")
            .env_remove("MEMCACHE_DOMAIN")
            .env("MEMCACHE_SHM_PREFIX", &self.shm.prefix);
        match setup {
            Setup::List(d) => {
                cmd.args(["--servers", &self.list()]);
                if let Some(d) = d {
                    cmd.args(["--distribution", d.name()]);
                }
            }
            Setup::Domain => {
                cmd.args(["--domain", DOMAIN]);
            }
        }
        cmd
    }

    fn binding(&self, fe: FrontEnd, setup: Setup) -> Command {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = if fe == FrontEnd::Ruby {
            let mut cmd = Command::new("ruby");
            cmd.arg("-I")
                .arg(dir.join("bindings/ruby/lib"))
                .arg(dir.join("tests/placement/driver.rb"));
            cmd
        } else {
            let mut cmd = Command::new("php");
            cmd.args(["-d", "ffi.enable=1"])
                .arg(dir.join("tests/placement/driver.php"));
            cmd
        };
        cmd.env("LD_LIBRARY_PATH", library_path())
            .env("MEMCACHE_SHM_PREFIX", &self.shm.prefix);
        match setup {
            Setup::List(d) => {
                cmd.args(["list", &self.list()]);
                if let Some(d) = d {
                    cmd.arg(d.name());
                }
            }
            Setup::Domain => {
                cmd.args(["domain", DOMAIN]);
            }
        }
        cmd
    }

    /// The settings of one psql session. The server's backends follow the namespace of
    /// `serve.sh`'s PGMC_SHM_PREFIX, the test's own.
    fn pg_setup(&self, setup: Setup) -> String {
        match setup {
            Setup::List(d) => {
                let mut sql = format!("SET memcache.servers = '{}';\n", self.list());
                if let Some(d) = d {
                    sql.push_str(&format!("SET memcache.distribution = '{}';\n", d.name()));
                }
                sql
            }
            Setup::Domain => format!("SET memcache.domain = '{DOMAIN}';\n"),
        }
    }
}

/// `KEY FLAGS BYTES\n<value>\n` records of `mclient get --print-keys`.
fn records(mut out: &[u8]) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    while let Some(end) = out.iter().position(|&b| b == b'\n') {
        let header = String::from_utf8_lossy(&out[..end]).into_owned();
        let fields: Vec<&str> = header.split(' ').collect();
        let len: usize = fields[2].parse().expect("BYTES");
        let value = String::from_utf8_lossy(&out[end + 1..end + 1 + len]).into_owned();
        found.insert(fields[0].to_string(), value);
        out = &out[end + 2 + len..];
    }
    found
}

/// Which of the servers hold `key`, each asked on its own.
fn holders(servers: &[String], key: &str) -> Vec<usize> {
    (0..servers.len())
        .filter(|&i| {
            let spec = ServerSpec::parse(&servers[i]).expect("address");
            let mut one = Client::new(vec![spec], Distribution::Crc32Modulo).expect("client");
            one.get(key.as_bytes()).expect("get").is_some()
        })
        .collect()
}

fn require(program: &str, args: &[&str], packages: &str) {
    let ok = Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{program} is needed: run tools/install-deps (Debian packages {packages})"
    );
}

#[test]
fn every_front_end_finds_the_keys_of_every_other() {
    support::prefix();
    require("ruby", &["-e", "require 'ffi'"], "ruby ruby-ffi");
    require(
        "php",
        &[
            "-d",
            "ffi.enable=1",
            "-r",
            "exit(extension_loaded('FFI') ? 0 : 1);",
        ],
        "php-cli",
    );
    let memcached = [Memcached::start(), Memcached::start(), Memcached::start()];
    let servers: Vec<String> = memcached.iter().map(Memcached::addr).collect();
    let shm = ShmPrefix::new("placement");
    let state = temp_dir("placement-state");
    let mut file = format!("domain {DOMAIN}\ndistribution ketama-md5\n");
    for s in &servers {
        file.push_str(&format!("server {s}\n"));
    }
    let import = shm.mcadmin_kept(&state, &["--domain", DOMAIN, "import", "-"]);
    success(run(import, file), "mcadmin import");
    let listed = success(
        run(shm.mcadmin(&["--domain", DOMAIN, "list"]), String::new()),
        "mcadmin list",
    );
    assert!(
        listed.contains("ketama-md5"),
        "the domain's distribution: {listed}"
    );
    assert!(
        state.join(format!("{DOMAIN}.domain")).is_file(),
        "mcadmin kept the domain in the test's own state directory"
    );
    let world = World {
        pg: Postgres::start(&shm),
        c_driver: compile_capi("domain_driver", &[]),
        servers,
        shm,
    };

    let mut problems = Vec::new();
    for setup in [
        Setup::List(None),
        Setup::List(Some(Distribution::KetamaMd5)),
        Setup::Domain,
    ] {
        let specs: Vec<ServerSpec> = world
            .servers
            .iter()
            .map(|s| ServerSpec::parse(s).expect("address"))
            .collect();
        let rule = Client::new(specs, setup.distribution()).expect("client");
        let mut written: Vec<(FrontEnd, Vec<(String, String)>)> = Vec::new();
        for fe in FRONT_ENDS {
            let items: Vec<(String, String)> = (0..KEYS)
                .map(|i| {
                    let key = format!("{}:{fe:?}:{i}", setup.label());
                    (key, format!("from-{fe:?}-{i}"))
                })
                .collect();
            world.write(fe, setup, &items);
            // Each key on exactly the server the rule names, where a 1.4 program (for a
            // list) or any other libmemcache client looks for it.
            let misplaced: Vec<String> = items
                .iter()
                .filter_map(|(k, _)| {
                    let owner = rule.server_for(k.as_bytes()).expect("a live server");
                    let held = holders(&world.servers, k);
                    (held != [owner]).then(|| format!("{k} on {held:?}, not [{owner}]"))
                })
                .collect();
            if !misplaced.is_empty() {
                problems.push(format!(
                    "{} {fe:?} placed {} of {KEYS} keys elsewhere than {}: {}",
                    setup.label(),
                    misplaced.len(),
                    setup.distribution(),
                    misplaced.join("; ")
                ));
            }
            written.push((fe, items));
        }
        let all_keys: Vec<String> = written
            .iter()
            .flat_map(|(_, items)| items.iter().map(|(k, _)| k.clone()))
            .collect();
        for reader in FRONT_ENDS {
            let found = world.read(reader, setup, &all_keys);
            for (writer, items) in &written {
                let hits = items
                    .iter()
                    .filter(|(k, v)| found.get(k) == Some(v))
                    .count();
                if hits != items.len() {
                    problems.push(format!(
                        "{}: {reader:?} found {hits} of {} keys written by {writer:?}",
                        setup.label(),
                        items.len()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
