//! Stand-ins for memcached, only for faults a real server cannot produce (garbage, a value cut
//! short, a stall, stray bytes, a trickle), and the pieces of the text protocol they read.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A scripted stand-in for memcached: each accepted connection runs `serve(stream, log)` in a
/// thread of its own, `log` being what the script records for the test to check. Stops when
/// dropped.
pub struct FakeServer<L: Send + 'static> {
    pub port: u16,
    pub log: Arc<Mutex<L>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl<L: Default + Send + 'static> FakeServer<L> {
    pub fn start(serve: fn(TcpStream, Arc<Mutex<L>>)) -> FakeServer<L> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("local_addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(L::default()));
        let (flag, shared) = (stop.clone(), log.clone());
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let log = shared.clone();
                        thread::spawn(move || serve(stream, log));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FakeServer {
            port,
            log,
            stop,
            thread: Some(thread),
        }
    }
}

impl<L: Send + 'static> Drop for FakeServer<L> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long a stand-in waits for its client's next command before it gives up on the
/// connection.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// A connection of a stand-in, cut in two: commands are read through the buffered reader,
/// replies written to the stream. None if the socket cannot be cloned.
pub fn halves(stream: TcpStream) -> Option<(BufReader<TcpStream>, TcpStream)> {
    let _ = stream.set_read_timeout(Some(IDLE_LIMIT));
    let out = stream.try_clone().ok()?;
    Some((BufReader::new(stream), out))
}

/// What a fake server's connections record: the command lines they received.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Reads one line ending in "\r\n" (without it); None at EOF, on an error or on a line longer
/// than 64 KiB.
pub fn read_line(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(65536)
        .read_until(b'\n', &mut line)
        .ok()?;
    if n == 0 || !line.ends_with(b"\r\n") {
        return None;
    }
    line.truncate(line.len() - 2);
    Some(String::from_utf8_lossy(&line).into_owned())
}

/// Reads and drops the data block of a storage command (`bytes` and "\r\n").
pub fn skip_data(reader: &mut BufReader<TcpStream>, bytes: usize) -> Option<()> {
    let mut data = vec![0u8; bytes + 2];
    reader.read_exact(&mut data).ok()
}

/// The byte count of a storage command line ("set k flags exptime bytes ...", cas too).
pub fn storage_bytes(words: &[&str]) -> Option<usize> {
    words.get(4)?.parse().ok()
}

pub fn is_storage(command: &str) -> bool {
    matches!(
        command,
        "set" | "add" | "replace" | "append" | "prepend" | "cas"
    )
}
