//! mclient(1): memcached commands from the shell and from scripts, over the safe Rust client.
//!
//! Values travel byte-exact: from an argument or standard input to the server, and from the
//! server to standard output, which carries nothing but the documented output (raw values,
//! `KEY FLAGS BYTES` records, or JSON Lines with `--json`). Exit statuses are the table of
//! `memcache::exit_code`, shared with mcadmin. See man/mclient.1.
#![forbid(unsafe_code)]

mod bench;
mod cli;
mod commands;
// The JSON of --json, shared with mcadmin.
#[path = "../common/json.rs"]
mod json;
mod load;
mod output;
#[path = "../common/security.rs"]
mod security;
mod servers;

use std::process::ExitCode;

use clap::Parser;
use memcache::client::ClientError;
use memcache::exit_code::Exit;

use cli::Cli;

/// Why a command stopped before its end: its exit status and one line for standard error.
pub struct Stop {
    pub exit: Exit,
    pub message: String,
}

impl Stop {
    pub fn usage(message: impl Into<String>) -> Stop {
        Stop {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Stop {
        Stop {
            exit: Exit::Failed,
            message: message.into(),
        }
    }
}

/// A key refused before any I/O is a mistake on the command line; anything else the client
/// reports means the command could not be carried out.
impl From<ClientError> for Stop {
    fn from(e: ClientError) -> Stop {
        match e {
            ClientError::BadKey(_) => Stop::usage(e.to_string()),
            other => Stop::failed(other.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap's message with its usage hint; --help and --version are not errors.
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            }
            .into();
        }
    };
    match commands::run(cli) {
        Ok(exit) => exit.into(),
        Err(stop) => {
            eprintln!("mclient: {}", one_line(&stop.message));
            stop.exit.into()
        }
    }
}

/// A note on standard error that does not stop the command (a key not found among several).
pub fn note(message: &str) {
    eprintln!("mclient: {}", one_line(message));
}

/// Messages may quote server replies and keys: control characters are shown escaped so the
/// message stays one line.
fn one_line(message: &str) -> String {
    message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}
