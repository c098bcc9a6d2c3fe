//! Budgets kept in this process: one sliding log per key.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::{Decision, KeyDigest, Window, decide};

/// Past this many keys, logs whose calls have all left their own windows are dropped.
const KEY_LIMIT: usize = 100_000;

/// One key's accepted calls, and until when they matter (its last call plus its longest window).
#[derive(Default)]
struct Log {
    calls: VecDeque<i64>,
    expires: i64,
}

/// Logs are keyed by the digest of their key, so an entry costs the same however long the
/// names in its key are.
#[derive(Default)]
pub struct LocalLimiter {
    logs: Mutex<HashMap<KeyDigest, Log>>,
}

impl LocalLimiter {
    /// Checks and, when allowed, records a call under `key` at `now` (milliseconds).
    pub fn check_at(&self, key: &str, windows: &[Window], now: i64) -> Decision {
        self.apply(key, windows, now, true)
    }

    /// Whether a call under `key` would be allowed at `now`, without recording one.
    pub fn peek_at(&self, key: &str, windows: &[Window], now: i64) -> Decision {
        self.apply(key, windows, now, false)
    }

    /// How many keys have a log, for tests of what a look costs.
    pub fn keys(&self) -> usize {
        self.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    fn apply(&self, key: &str, windows: &[Window], now: i64, record: bool) -> Decision {
        let key = KeyDigest::of(key);
        let longest = windows.iter().map(|window| window.duration.as_millis() as i64).max().unwrap_or(0);
        let mut logs = self.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A look at a budget nobody has spent allocates nothing: otherwise every unknown key
        // looked at (a failed-login budget is looked at before each sign-in) would stay.
        if !record && !logs.contains_key(&key) {
            return decide(&[], windows, now);
        }
        // Sweep only when the map has doubled past the limit, so the sweep's cost is shared by
        // as many new keys as it can free, and judge each log by its own windows.
        if logs.len() >= 2 * KEY_LIMIT && !logs.contains_key(&key) {
            logs.retain(|_, log| log.expires > now);
        }
        let log = logs.entry(key).or_default();
        while log.calls.front().is_some_and(|&oldest| oldest <= now - longest) {
            log.calls.pop_front();
        }
        let decision = decide(log.calls.make_contiguous(), windows, now);
        if decision.allowed && record {
            // Calls normally arrive in order; one that does not is placed where it belongs.
            let at = log.calls.partition_point(|&time| time <= now);
            log.calls.insert(at, now);
            log.expires = log.expires.max(now + longest);
        }
        decision
    }
}
