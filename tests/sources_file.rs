//! Issue 14: the install rules every source obeys, and the `file:///PATH` source followed with
//! inotify, through the library and through `mcadmin watch/pull/publish`.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use memcache::address::ServerAddr;
use memcache::domain_file::{self, DomainFile};
use memcache::hash::Distribution;
use memcache::registry::{DomainList, DomainName, Namespace};
use memcache::source::{
    self, FileSource, Following, Installed, Offer, Refused, Rules, Source, SourceEvent,
};
use support::sources::{list_of, wait_until, Watching};
use support::{temp_dir, ShmPrefix};

/// Any wait for something the watch does gives up (and fails) after this.
const LIMIT: Duration = Duration::from_secs(20);

fn name(n: &str) -> DomainName {
    DomainName::parse(n).unwrap()
}

fn servers(ports: &[u16]) -> Vec<ServerAddr> {
    ports
        .iter()
        .map(|p| ServerAddr::parse(&format!("127.0.0.1:{p}")).unwrap())
        .collect()
}

fn ports_of(list: &DomainList) -> Vec<u16> {
    list.servers.iter().map(|s| s.port).collect()
}

/// Replaces `path` as configuration management does: a new file renamed over it.
fn replace(path: &Path, text: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[test]
fn the_install_rules() {
    let shm = ShmPrefix::new("src_rules");
    let ns = Namespace::with_prefix(&shm.prefix).unwrap();
    let web = name("web");
    let none = Rules::default();
    let offer = Offer::Servers(servers(&[11, 12]));

    // A new domain is created; the same list again writes nothing, however often.
    let Ok(Installed::Created { list }) = source::install(&ns, &web, &offer, none) else {
        panic!("not created")
    };
    assert_eq!(ports_of(&list), [11, 12]);
    assert_eq!(list_of(&ns, "web").unwrap(), list);
    for _ in 0..3 {
        let again = source::install(&ns, &web, &offer, none).unwrap();
        assert_eq!(
            again,
            Installed::Unchanged {
                version: list.version
            }
        );
    }

    // Servers alone keep the domain's settings; a different list is a new local version.
    let mut w = ns.open_writer(&web, false).unwrap();
    w.update(|l| {
        l.distribution = Distribution::Crc32Modulo;
        l.replicas = 2;
        Ok(())
    })
    .unwrap();
    let before = list_of(&ns, "web").unwrap().version;
    let Ok(Installed::Replaced { was, list }) =
        source::install(&ns, &web, &Offer::Servers(servers(&[13])), none)
    else {
        panic!("not replaced")
    };
    assert_eq!(was, before);
    assert!(list.version > before);
    assert_eq!(
        (list.distribution, list.replicas),
        (Distribution::Crc32Modulo, 2)
    );
    assert_eq!(list_of(&ns, "web").unwrap(), list);

    // Empty: refused, the list stays; allowed on request.
    let empty = Offer::Servers(Vec::new());
    assert!(matches!(
        source::install(&ns, &web, &empty, none),
        Err(Refused::Empty)
    ));
    assert_eq!(list_of(&ns, "web").unwrap(), list);
    let allow = Rules { allow_empty: true };
    assert!(matches!(
        source::install(&ns, &web, &empty, allow),
        Ok(Installed::Replaced { .. })
    ));
    assert!(list_of(&ns, "web").unwrap().servers.is_empty());

    // A list failing the segment's checks is refused with its reason; nothing is created.
    let twice = Offer::Servers(servers(&[14, 14]));
    let err = source::install(&ns, &name("dup"), &twice, none).unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");
    assert!(list_of(&ns, "dup").is_none());

    // A file naming another domain is refused.
    let mut file = domain_file::parse(b"domain other\nserver 127.0.0.1:15\n").unwrap();
    let err = source::install(&ns, &web, &Offer::File(file.clone()), none).unwrap_err();
    assert!(err.to_string().contains("not web"), "{err}");
    file.domain = None;
    assert!(source::install(&ns, &web, &Offer::File(file), none).is_ok());
}

#[test]
fn a_followed_file_is_installed_on_change_and_its_failures_reported_once() {
    let follower = Follower::start("src_follow", 21);
    let (ns, path) = (follower.ns.clone(), follower.path.clone());
    let next = || follower.next();

    // Renamed over (a new inode), then written in place: each is installed.
    replace(&path, "server 127.0.0.1:22\n");
    assert_eq!(installed(next()), [22]);
    std::fs::write(&path, "server 127.0.0.1:23 weight=2\n").unwrap();
    assert_eq!(installed(next()), [23]);

    // Gone, then back broken: one report, the list stays.
    std::fs::remove_file(&path).unwrap();
    let SourceEvent::Problem { message, .. } = next() else {
        panic!("expected a problem")
    };
    assert!(message.contains("No such file"), "{message}");
    std::fs::write(&path, "server 127.0.0.1:24 weight=0\n").unwrap();
    std::fs::write(&path, "nonsense\n").unwrap();
    // Back and valid: one recovery line, then the install.
    replace(&path, "server 127.0.0.1:25\n");
    let SourceEvent::Recovered { .. } = next() else {
        panic!("expected the recovery after one report")
    };
    assert_eq!(installed(next()), [25]);
    assert_eq!(ports_of(&list_of(&ns, "web").unwrap()), [25]);

    // A list the rules refuse: reported once per reason, however often it is read.
    replace(
        &path,
        "server 127.0.0.1:26\nserver 127.0.0.1:27\n# touched\n",
    );
    assert_eq!(installed(next()), [26, 27]);
    for _ in 0..3 {
        replace(&path, "");
    }
    let SourceEvent::Problem { message, .. } = next() else {
        panic!("expected a refusal")
    };
    assert!(message.contains("empty list"), "{message}");
    replace(&path, "server 127.0.0.1:28\n");
    assert_eq!(installed(next()), [28]);

    follower.stop_with_nothing_more();
}

/// `source::follow` on one file, `web.domain` in a directory of its own, for the domain `web`
/// of a segment prefix of its own, on its own thread.
struct Follower {
    _shm: ShmPrefix,
    ns: Namespace,
    dir: PathBuf,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    events: mpsc::Receiver<SourceEvent>,
    thread: thread::JoinHandle<()>,
}

impl Follower {
    /// Starts following the file, first holding the server at `port`, and waits for its
    /// install. `tag` names the segment prefix and the directory.
    fn start(tag: &str, port: u16) -> Follower {
        let shm = ShmPrefix::new(tag);
        let ns = Namespace::with_prefix(&shm.prefix).unwrap();
        let dir = temp_dir(tag);
        let path = dir.join("web.domain");
        replace(&path, &format!("server 127.0.0.1:{port}\n"));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::channel::<SourceEvent>();
        let (followed, flag, file) = (ns.clone(), Arc::clone(&stop), path.clone());
        let thread = thread::spawn(move || {
            let following = vec![Following {
                domain: name("web"),
                source: Box::new(FileSource::new(file)),
            }];
            source::follow(
                &followed,
                following,
                Rules::default(),
                || flag.load(Ordering::Relaxed),
                |e| tx.send(e.clone()).unwrap(),
            )
        });
        let follower = Follower {
            _shm: shm,
            ns,
            dir,
            path,
            stop,
            events,
            thread,
        };
        assert_eq!(installed(follower.next()), [port]);
        follower
    }

    fn next(&self) -> SourceEvent {
        self.events.recv_timeout(LIMIT).expect("an event")
    }

    /// The servers of the next install. After a removal, the follower may have read the file
    /// while it was missing (a report and a recovery come first) or only once it was back.
    fn installed_after(&self, removed: bool) -> Vec<u16> {
        let mut event = self.next();
        if let SourceEvent::Problem { message, .. } = &event {
            assert!(removed && message.contains("No such file"), "{message}");
            let SourceEvent::Recovered { .. } = self.next() else {
                panic!("expected the recovery")
            };
            event = self.next();
        }
        installed(event)
    }

    /// Stops the follower and checks that it had nothing more to say.
    fn stop_with_nothing_more(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        let rest: Vec<SourceEvent> = self.events.try_iter().collect();
        assert!(rest.is_empty(), "events not expected: {rest:?}");
    }
}

fn installed(event: SourceEvent) -> Vec<u16> {
    match event {
        SourceEvent::Installed { list, .. } => ports_of(&list),
        other => panic!("expected an install, got {other:?}"),
    }
}

/// A file truncated and written in place is read when its writer closes it, even when other
/// changes in the directory come while it is half written (CI once saw the empty half).
#[test]
fn a_file_written_in_place_is_read_only_when_its_writer_closes_it() {
    let follower = Follower::start("src_inplace", 31);
    let (dir, path) = (follower.dir.clone(), follower.path.clone());

    for port in 32..36 {
        // Truncated, or removed and made again, and held open, half written ...
        if port % 2 == 1 {
            std::fs::remove_file(&path).unwrap();
        }
        let mut writer = std::fs::File::create(&path).unwrap();
        writer.write_all(b"server 127.0.0.1:").unwrap();
        // ... while a neighbour is replaced, which makes the directory be read again ...
        replace(&dir.join("neighbour.domain"), "server 127.0.0.1:1\n");
        // ... and the read has had its chance.
        thread::sleep(Duration::from_millis(200));
        writer.write_all(format!("{port}\n").as_bytes()).unwrap();
        drop(writer);
        let removed = port % 2 == 1;
        assert_eq!(follower.installed_after(removed), [port]);
    }

    // A complete file linked in place is read, though no writer closes it.
    std::fs::remove_file(&path).unwrap();
    let made = dir.join("made.domain");
    std::fs::write(&made, "server 127.0.0.1:36\n").unwrap();
    std::fs::hard_link(&made, &path).unwrap();
    assert_eq!(follower.installed_after(true), [36]);
    follower.stop_with_nothing_more();
}

#[test]
fn mcadmin_pulls_publishes_and_watches_files() {
    let shm = ShmPrefix::new("src_mcadmin");
    let ns = Namespace::with_prefix(&shm.prefix).unwrap();
    let dir = temp_dir("src_mcadmin");
    let state = dir.join("state");
    let run = |args: &[&str]| shm.mcadmin_kept(&state, args).output().unwrap();
    let (web_file, api_file) = (dir.join("web.domain"), dir.join("api.domain"));
    let url = |p: &Path| format!("file://{}", p.display());

    // pull --from: installs, then changes nothing; an empty file is refused unless allowed.
    replace(
        &web_file,
        "distribution crc32-modulo\nserver 127.0.0.1:31\n",
    );
    let out = run(&["--domain", "web", "pull", "--from", &url(&web_file)]);
    assert!(out.status.success(), "{out:?}");
    let version = list_of(&ns, "web").unwrap().version;
    let out = run(&["--domain", "web", "pull", "--from", &url(&web_file)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has the list"));
    assert_eq!(list_of(&ns, "web").unwrap().version, version);
    replace(&api_file, "# nothing yet\n");
    let out = run(&["--domain", "api", "pull", "--from", &url(&api_file)]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-empty"));
    assert!(list_of(&ns, "api").is_none());

    // publish --to writes the export format, which reads back as the same list.
    let copy = dir.join("copy.domain");
    let out = run(&["--domain", "web", "publish", "--to", &url(&copy)]);
    assert!(out.status.success(), "{out:?}");
    let file: DomainFile = domain_file::parse(&std::fs::read(&copy).unwrap()).unwrap();
    assert!(file.same_list(&list_of(&ns, "web").unwrap()));
    assert_eq!(file.version, Some(version));

    // One watch, two domains, two files.
    let mut watch = Watching::spawn(shm.mcadmin_kept(
        &state,
        &[
            "watch",
            "--domain",
            "web",
            "--from",
            &url(&web_file),
            "--domain",
            "api",
            "--from",
            &url(&api_file),
        ],
    ));
    assert!(watch.wait_line("api: file://", LIMIT), "{}", watch.log());
    replace(&api_file, "server 127.0.0.1:41\n");
    replace(&web_file, "server 127.0.0.1:32\n");
    let has = |d: &str, ports: &[u16]| list_of(&ns, d).is_some_and(|l| ports_of(&l) == ports);
    assert!(
        wait_until(LIMIT, || has("api", &[41]) && has("web", &[32])),
        "{}",
        watch.log()
    );
    // The durable copy follows too.
    let kept = std::fs::read_to_string(state.join("api.domain")).unwrap();
    assert!(kept.contains("server 127.0.0.1:41"), "{kept}");
    assert!(watch.stop().is_some_and(|s| s.success()), "{}", watch.log());
    assert_eq!(watch.count("refused"), 1, "{}", watch.log());
    assert!(
        watch.log().ends_with("stopped by SIGTERM"),
        "{}",
        watch.log()
    );

    // Usage errors: unpaired --from, an unknown scheme.
    let out = run(&[
        "watch",
        "--domain",
        "a",
        "--domain",
        "b",
        "--from",
        &url(&api_file),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run(&["--domain", "web", "pull", "--from", "gopher://x/"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// The trait's default: a source that cannot be written says so.
#[test]
fn a_source_without_publish_refuses_it() {
    struct Fixed;
    impl Source for Fixed {
        fn url(&self) -> String {
            "fixed:".into()
        }
        fn fetch(&mut self) -> Result<source::Found, source::SourceError> {
            Ok(Offer::Servers(Vec::new()).into())
        }
        fn follow(
            &mut self,
            _: &AtomicBool,
            _: &mut dyn FnMut(Result<source::Found, source::SourceError>),
        ) {
        }
    }
    let file = domain_file::parse(b"server 127.0.0.1:1\n").unwrap();
    let err = Fixed.publish(&file, source::Base::Current).unwrap_err();
    assert!(err.to_string().contains("cannot be written"), "{err}");
}
