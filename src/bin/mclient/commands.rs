//! Each mclient command: one or more client calls, their answers printed, their outcome turned
//! into an exit status. Misses are notes on standard error (except for `get`, whose miss shows
//! in its output); errors of one key or server are reported and the others still done.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::time::Instant;

use memcache::client::{Client, ClientError, Item};
use memcache::command::Stored;
use memcache::exit_code::Exit;
use memcache::protocol::StoreCmd;

use crate::cli::{Cli, Command};
use crate::json::JsonLine;
use crate::output::{record, Out};
use crate::servers::ServerList;
use crate::{bench, note, Stop};

/// How `get` and `gets` show the items found.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    /// The values' bytes and nothing else.
    Raw,
    /// `KEY FLAGS BYTES[ CAS]\n<bytes>\n` per item found.
    Records,
    /// One JSON object per key asked, found or not.
    Json,
}

pub fn run(cli: Cli) -> Result<Exit, Stop> {
    let list = ServerList::from_cli(&cli)?;
    let json = cli.json;
    let command = match cli.command {
        Command::Bench(args) => return bench::run(&list, &args, cli.exptime, json),
        Command::Ping => {
            let mut out = Out::new();
            let exit = ping(&list, &mut out, json)?;
            out.flush()?;
            return Ok(exit);
        }
        other => other,
    };
    let mut s = Session {
        c: list.client()?,
        out: Out::new(),
        json,
        flags: cli.flags,
        exptime: cli.exptime,
    };
    let exit = s.run(command)?;
    s.out.flush()?;
    Ok(exit)
}

/// One client, standard output and the options every command of the run shares.
struct Session {
    c: Client,
    out: Out,
    json: bool,
    flags: u32,
    exptime: u64,
}

impl Session {
    fn run(&mut self, command: Command) -> Result<Exit, Stop> {
        let json = self.json;
        let listed = if json { Format::Json } else { Format::Raw };
        match command {
            Command::Get { print_keys, keys } => {
                let format = if print_keys && !json {
                    Format::Records
                } else {
                    listed
                };
                self.get(&keys, format)
            }
            Command::Gets { keys } => {
                let format = if json { Format::Json } else { Format::Records };
                self.gets(&keys, format)
            }
            Command::Set(a) => self.store(StoreCmd::Set, &a.key, a.value),
            Command::Add(a) => self.store(StoreCmd::Add, &a.key, a.value),
            Command::Replace(a) => self.store(StoreCmd::Replace, &a.key, a.value),
            Command::Append(a) => self.store(StoreCmd::Append, &a.key, a.value),
            Command::Prepend(a) => self.store(StoreCmd::Prepend, &a.key, a.value),
            Command::Cas { key, cas, value } => self.store(StoreCmd::Cas(cas), &key, value),
            Command::Delete { keys } => self.each_key(&keys, "deleted", |c, k, _| c.delete(k)),
            Command::Touch { keys } => {
                self.each_key(&keys, "touched", |c, k, exptime| c.touch(k, exptime))
            }
            Command::Exists { keys } => self.exists(&keys),
            Command::Incr(a) => self.arith(&a.key, a.delta, true),
            Command::Decr(a) => self.arith(&a.key, a.delta, false),
            Command::Stats { group } => self.stats(&group.join(" ")),
            Command::Flush => {
                let results = self.c.flush_all();
                each_server(&mut self.out, results, |name, ()| {
                    if json {
                        JsonLine::new()
                            .str("server", name)
                            .raw("flushed", true)
                            .line()
                    } else {
                        Vec::new()
                    }
                })
            }
            Command::Version => {
                let results = self.c.version();
                each_server(&mut self.out, results, |name, v| {
                    if json {
                        JsonLine::new()
                            .str("server", name)
                            .str("version", &v)
                            .line()
                    } else {
                        line(name, &v)
                    }
                })
            }
            Command::Load { records, add, file } => {
                let cmd = if add { StoreCmd::Add } else { StoreCmd::Set };
                let mut input: Box<dyn io::BufRead> = match file {
                    Some(path) => Box::new(io::BufReader::new(
                        std::fs::File::open(&path)
                            .map_err(|e| Stop::failed(format!("{}: {e}", path.display())))?,
                    )),
                    None => Box::new(io::stdin().lock()),
                };
                let options = (self.flags, self.exptime, self.json);
                crate::load::load(
                    &mut self.c,
                    &mut self.out,
                    &mut *input,
                    records,
                    cmd,
                    options,
                )
            }
            Command::Ping | Command::Bench(_) => unreachable!("run before a session is made"),
        }
    }

    fn get(&mut self, keys: &[OsString], format: Format) -> Result<Exit, Stop> {
        let keys = key_bytes(keys);
        let items = if let [key] = keys[..] {
            vec![self.c.get(key)?]
        } else {
            self.c.get_multi(&keys)?
        };
        show_items(&mut self.out, &keys, &items, format, false)
    }

    /// `gets` asks key by key: the client's multi-key fetch has no cas variant.
    fn gets(&mut self, keys: &[OsString], format: Format) -> Result<Exit, Stop> {
        let keys = key_bytes(keys);
        let items = keys
            .iter()
            .map(|k| self.c.gets(k))
            .collect::<Result<Vec<_>, _>>()?;
        show_items(&mut self.out, &keys, &items, format, true)
    }

    fn store(
        &mut self,
        cmd: StoreCmd,
        key: &OsString,
        value: Option<OsString>,
    ) -> Result<Exit, Stop> {
        let key = key.as_bytes();
        let value = match value {
            Some(v) => v.into_vec(),
            None => {
                let mut v = Vec::new();
                io::stdin().lock().read_to_end(&mut v).map_err(|e| {
                    Stop::failed(format!("reading the value from standard input: {e}"))
                })?;
                v
            }
        };
        let (reason, why) = match self.c.store(cmd, key, &value, self.flags, self.exptime)? {
            Stored::Stored => {
                if self.json {
                    let line = JsonLine::new().bytes("key", key).raw("stored", true);
                    self.out.write(&line.line())?;
                }
                return Ok(Exit::Ok);
            }
            Stored::NotStored => ("not_stored", "not stored"),
            Stored::Exists => ("exists", "exists (changed since it was read)"),
            Stored::NotFound => ("not_found", "not found"),
            Stored::ServerError(message) => {
                let server = self
                    .c
                    .server_for(key)
                    .map_or_else(|| "server".to_string(), |i| self.c.servers()[i].to_string());
                return Err(Stop::failed(format!("{server}: server error: {message}")));
            }
        };
        if self.json {
            let line = JsonLine::new()
                .bytes("key", key)
                .raw("stored", false)
                .str("reason", reason);
            self.out.write(&line.line())?;
        }
        note(&format!("{}: {why}", String::from_utf8_lossy(key)));
        Ok(Exit::Miss)
    }

    /// `delete` and `touch` of several keys, one after the other: a missing key is a note
    /// (status 1), a key that fails an error line (status 3), and the other keys are still
    /// done. `op` gets the client, the key and `--exptime`.
    fn each_key(
        &mut self,
        keys: &[OsString],
        done: &str,
        op: impl Fn(&mut Client, &[u8], u64) -> Result<bool, ClientError>,
    ) -> Result<Exit, Stop> {
        let keys = key_bytes(keys);
        // Every key is checked first, so a bad one among several changes nothing.
        for key in &keys {
            memcache::key::check(key).map_err(|e| Stop::usage(e.message()))?;
        }
        let mut exit = Exit::Ok;
        for key in keys {
            match op(&mut self.c, key, self.exptime) {
                Ok(yes) => {
                    if self.json {
                        let line = JsonLine::new().bytes("key", key).raw(done, yes);
                        self.out.write(&line.line())?;
                    }
                    if !yes {
                        note(&format!("{}: not found", String::from_utf8_lossy(key)));
                        exit = exit.and(Exit::Miss);
                    }
                }
                Err(e) => {
                    let stop = Stop::from(e);
                    note(&stop.message);
                    exit = exit.and(stop.exit);
                }
            }
        }
        Ok(exit)
    }

    /// Whether each key exists, asked with one multi-key get (the values are read and
    /// dropped).
    fn exists(&mut self, keys: &[OsString]) -> Result<Exit, Stop> {
        let keys = key_bytes(keys);
        let items = self.c.get_multi(&keys)?;
        let mut exit = Exit::Ok;
        for (key, item) in keys.iter().zip(&items) {
            if self.json {
                let line = JsonLine::new()
                    .bytes("key", key)
                    .raw("exists", item.is_some());
                self.out.write(&line.line())?;
            }
            if item.is_none() {
                note(&format!("{}: not found", String::from_utf8_lossy(key)));
                exit = Exit::Miss;
            }
        }
        Ok(exit)
    }

    fn arith(&mut self, key: &OsString, delta: u64, incr: bool) -> Result<Exit, Stop> {
        let key = key.as_bytes();
        let result = if incr {
            self.c.incr(key, delta)
        } else {
            self.c.decr(key, delta)
        };
        match result? {
            Some(n) if self.json => {
                let line = JsonLine::new().bytes("key", key).raw("value", n);
                self.out.write(&line.line())?
            }
            Some(n) => self.out.write(format!("{n}\n").as_bytes())?,
            None => {
                note(&format!("{}: not found", String::from_utf8_lossy(key)));
                return Ok(Exit::Miss);
            }
        }
        Ok(Exit::Ok)
    }

    fn stats(&mut self, group: &str) -> Result<Exit, Stop> {
        let json = self.json;
        let group = (!group.is_empty()).then_some(group.as_bytes());
        let results = self.c.stats(group);
        each_server(&mut self.out, results, |name, lines| {
            if json {
                let all = lines
                    .iter()
                    .fold(JsonLine::new(), |o, (stat, value)| o.str(stat, value));
                return JsonLine::new()
                    .str("server", name)
                    .raw("stats", all.object())
                    .line();
            }
            let mut text = Vec::new();
            for (stat, value) in lines {
                text.extend(line(name, &format!("{stat}\t{value}")));
            }
            text
        })
    }
}

fn key_bytes(keys: &[OsString]) -> Vec<&[u8]> {
    keys.iter().map(|k| k.as_bytes()).collect()
}

fn item_json(key: &[u8], item: &Item, with_cas: bool) -> Vec<u8> {
    let mut line = JsonLine::new()
        .bytes("key", key)
        .raw("found", true)
        .raw("flags", item.flags)
        .raw("bytes", item.value.len())
        .bytes("value", &item.value);
    if with_cas {
        line = line.raw("cas", item.cas);
    }
    line.line()
}

/// The items of `keys` (None for a miss) in `format`; 1 unless every key was found.
fn show_items(
    out: &mut Out,
    keys: &[&[u8]],
    items: &[Option<Item>],
    format: Format,
    with_cas: bool,
) -> Result<Exit, Stop> {
    let mut exit = Exit::Ok;
    for (key, item) in keys.iter().zip(items) {
        match (item, format) {
            (None, Format::Json) => {
                out.write(&JsonLine::new().bytes("key", key).raw("found", false).line())?
            }
            (None, _) => {}
            (Some(item), Format::Raw) => out.write(&item.value)?,
            (Some(item), Format::Records) => out.write(&record(key, item, with_cas))?,
            (Some(item), Format::Json) => out.write(&item_json(key, item, with_cas))?,
        }
        if item.is_none() {
            exit = Exit::Miss;
        }
    }
    Ok(exit)
}

/// Every server on its own: the time to connect and have its version, so a script sees which
/// servers answer and how fast. A server that fails is an error line and status 3.
fn ping(list: &ServerList, out: &mut Out, json: bool) -> Result<Exit, Stop> {
    let mut exit = Exit::Ok;
    for server in &list.servers {
        let mut one = list.client_for(vec![server.clone()])?;
        let start = Instant::now();
        let (name, result) = one.version().pop().expect("one server, one answer");
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(version) if json => out.write(
                &JsonLine::new()
                    .str("server", &name)
                    .str("version", &version)
                    .raw("ms", format!("{ms:.3}"))
                    .line(),
            )?,
            Ok(version) => out.write(&line(&name, &format!("{version}\t{ms:.3}")))?,
            Err(e) => {
                note(&e.to_string());
                exit = Exit::Failed;
            }
        }
    }
    Ok(exit)
}

/// The per-server results of an admin command: what `show` makes of each success goes to
/// standard output; each failure is a line on standard error, and any makes the status 3.
fn each_server<T>(
    out: &mut Out,
    results: Vec<(String, Result<T, ClientError>)>,
    show: impl Fn(&str, T) -> Vec<u8>,
) -> Result<Exit, Stop> {
    let mut exit = Exit::Ok;
    for (name, result) in results {
        match result {
            Ok(v) => out.write(&show(&name, v))?,
            Err(e) => {
                let stop = Stop::from(e);
                note(&stop.message);
                exit = exit.and(stop.exit);
            }
        }
    }
    Ok(exit)
}

/// `SERVER<TAB>REST` and a newline.
fn line(server: &str, rest: &str) -> Vec<u8> {
    format!("{server}\t{rest}\n").into_bytes()
}
