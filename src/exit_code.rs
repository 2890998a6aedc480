//! The exit statuses of `mclient(1)` and `mcadmin(8)`: one table, so that a script reads a
//! status the same way whichever tool it ran (issue 13, point 6).
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done: found, stored, deleted, touched, counted, every server answered, list changed |
//! | 1 | the command ran and the answer is no: a miss, not stored, exists (cas), not found |
//! | 2 | usage: the command line is wrong (unknown command or option, bad value, bad key) |
//! | 3 | failure: the command could not be carried out (server, network, domain, local I/O) |
//!
//! 2 is also what the argument parser and most Unix tools use for a usage error; 1 keeps
//! `mclient get`'s "miss" of 1.4-era scripts (`if mclient get k >/dev/null; then`).
#![forbid(unsafe_code)]

/// How a run of a tool ended. The discriminant is the process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Exit {
    /// 0: the command did what was asked.
    Ok = 0,
    /// 1: a negative answer: a key not found, a value not stored, a cas that lost.
    Miss = 1,
    /// 2: the command line is wrong; nothing was sent anywhere.
    Usage = 2,
    /// 3: the command could not be carried out: a server unreachable, timed out, answering
    /// wrongly or refusing; a domain missing or unreadable; standard input or output failing.
    Failed = 3,
}

impl Exit {
    /// Every status, in increasing order.
    pub const ALL: [Exit; 4] = [Exit::Ok, Exit::Miss, Exit::Usage, Exit::Failed];

    /// The process exit status.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The status of a command made of several parts (keys, servers): the most severe of
    /// `self` and `other`, a failure above a miss above success.
    pub fn and(self, other: Exit) -> Exit {
        self.max(other)
    }

    /// What the status means, in a few words (the help texts and man pages use these).
    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success",
            Exit::Miss => "miss (not found or not stored)",
            Exit::Usage => "usage error",
            Exit::Failed => "failure (server, network, domain or I/O)",
        }
    }

    /// One line for `--help`: `Exit status: 0 success, 1 miss, ...`.
    pub fn summary() -> String {
        let parts: Vec<String> = Exit::ALL
            .iter()
            .map(|e| format!("{} {}", e.code(), e.meaning()))
            .collect();
        format!("Exit status: {}.", parts.join(", "))
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(e.code())
    }
}

/// The status as `std::process::ExitStatus::code` gives it back.
impl From<Exit> for i32 {
    fn from(e: Exit) -> i32 {
        i32::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_severity() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3]);
        assert_eq!(Exit::Ok.and(Exit::Miss), Exit::Miss);
        assert_eq!(Exit::Failed.and(Exit::Miss), Exit::Failed);
        assert_eq!(Exit::Miss.and(Exit::Ok), Exit::Miss);
        assert_eq!(
            Exit::summary(),
            "Exit status: 0 success, 1 miss (not found or not stored), 2 usage error, \
             3 failure (server, network, domain or I/O)."
        );
    }
}
