//! Whether a server takes part in placement.

use std::time::{Duration, Instant};

/// A server's health. A failed connect or a timeout puts it down for the retry interval: its
/// keys go to the next live server instead of costing a full timeout on every call. The user
/// can put a server down for good (1.4's `mc_server_deactivate`).
#[derive(Debug, Default, Clone)]
pub struct Health {
    /// When the server went down; None while it is up.
    down_since: Option<Instant>,
    /// A retry of a server that was down is under way: its next connect is a reconnect.
    retrying: bool,
    /// Put down by the user: not retried automatically.
    user_down: bool,
    /// Why the server went down (meaningful while it is down).
    why: String,
}

impl Health {
    /// Whether the server may be picked at `now`. A mark lasts at least 1 ns, so a pick made
    /// again at the instant of a failure skips the server that failed.
    #[inline]
    pub fn is_live(&self, now: Instant, retry: Duration) -> bool {
        !self.user_down
            && self.down_since.is_none_or(|since| {
                now.saturating_duration_since(since) >= retry.max(Duration::from_nanos(1))
            })
    }

    pub fn is_down(&self) -> bool {
        self.user_down || self.down_since.is_some()
    }

    /// Takes the server out of placement for the retry interval.
    pub fn mark_down(&mut self, why: impl Into<String>) {
        self.down_since = Some(Instant::now());
        self.retrying = false;
        self.why = why.into();
    }

    /// The user's own down (never retried) or up (back in placement at once).
    pub fn set_user_down(&mut self, down: bool) {
        self.user_down = down;
        if !down {
            self.down_since = None;
            self.retrying = false;
        }
    }

    /// If the server is down and its retry time has come, starts a retry: it is back in
    /// placement, and its next connect is reported as a reconnect. True when it did.
    pub fn retry_if_due(&mut self, now: Instant, retry: Duration) -> bool {
        if self.user_down || self.down_since.is_none() || !self.is_live(now, retry) {
            return false;
        }
        self.down_since = None;
        self.retrying = true;
        true
    }

    /// A connect succeeded: the server is up. True when this ended a retry (a reconnect).
    pub fn connected(&mut self) -> bool {
        self.down_since = None;
        std::mem::take(&mut self.retrying)
    }

    /// Why the server went down.
    pub fn why(&self) -> &str {
        &self.why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_for_the_retry_interval_then_retried_once() {
        let retry = Duration::from_millis(50);
        let mut h = Health::default();
        let t0 = Instant::now();
        assert!(h.is_live(t0, retry));
        h.mark_down("refused");
        let marked = Instant::now();
        assert!(!h.is_live(marked, retry));
        assert!(!h.retry_if_due(marked, retry));
        let later = marked + retry;
        assert!(h.is_live(later, retry));
        assert!(h.retry_if_due(later, retry));
        assert!(
            h.connected(),
            "the first connect after a retry is a reconnect"
        );
        assert!(!h.connected());
        assert!(!h.is_down());
    }

    #[test]
    fn a_zero_retry_still_skips_the_server_at_the_instant_it_failed() {
        let mut h = Health::default();
        h.mark_down("timeout");
        let now = Instant::now();
        // The mark was made before `now` or at it; at the same instant it holds.
        assert!(!h.is_live(h.down_since.unwrap(), Duration::ZERO));
        assert!(h.is_live(now + Duration::from_nanos(1), Duration::ZERO));
    }

    #[test]
    fn a_user_down_is_never_retried() {
        let mut h = Health::default();
        h.set_user_down(true);
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(!h.is_live(far, Duration::ZERO));
        assert!(!h.retry_if_due(far, Duration::ZERO));
        h.set_user_down(false);
        assert!(h.is_live(Instant::now(), Duration::from_secs(5)));
    }
}
