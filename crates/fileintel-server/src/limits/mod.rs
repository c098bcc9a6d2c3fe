//! Rate limits as MDE applies them: per API, per (tenant, application), 100 calls a minute and
//! 1500 an hour, both at once, exactly.
//!
//! The algorithm is a sliding log: every accepted call's time is kept for the longest window, and
//! a call is accepted only if, for every window, fewer than `limit` accepted calls fall in the
//! `duration` before it. That is exact in the sense MDE states (the 101st call within *any*
//! minute is refused, wherever the minute starts), which fixed windows are not (they allow 200
//! calls across a window boundary) and token buckets or GCRA are not either (they smooth bursts
//! rather than count them). Refused calls are not recorded, so they spend no budget, and
//! `Retry-After` is the time until the oldest accepted call that keeps a window full leaves it:
//! a client that waits that long is accepted (unless others spend the budget meanwhile). The log
//! costs at most `limit` timestamps per key and window.
//!
//! [`local`] keeps the logs in the process; [`redis`] keeps them in Redis sorted sets, checked
//! and updated by one Lua script per call, with Redis's own clock, so any number of replicas share
//! one budget. When Redis cannot be reached the limiter falls back to the local logs.
//!
//! Both follow one rule, written once in [`decide`] and again, line for line, in the script (a
//! test runs the same calls through both and compares every figure):
//!
//! - For each window, `count` is the accepted calls in `(now - duration, now]`.
//! - The call is refused when any window has `count >= limit`. Each such window's wait is the
//!   time until its call number `count - limit` (oldest first, from 0) leaves it, or its whole
//!   duration for a zero limit. `Retry-After` is the longest wait, and the headers name the
//!   window of that wait (the first listed among equal waits, compared in milliseconds): its
//!   limit, 0 remaining, and the wait again as the reset.
//! - Otherwise the call is accepted, and the headers name the window with the fewest calls left
//!   after this one (the first listed among equals): its limit, `limit - count - 1` remaining,
//!   and the time until its oldest call leaves it as the reset (0 for an empty window).
//! - A look ([`Limiter::peek`]) answers exactly what a check would, and records nothing.

pub mod local;
pub mod redis;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// One window: at most `limit` calls in any `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub duration: Duration,
    pub limit: u64,
}

/// MDE's budgets: 100 calls a minute and 1500 an hour.
pub fn mde_windows() -> Vec<Window> {
    vec![
        Window { duration: Duration::from_secs(60), limit: 100 },
        Window { duration: Duration::from_secs(3600), limit: 1500 },
    ]
}

/// The answer to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The tightest window's limit, for `x-ratelimit-limit`.
    pub limit: u64,
    /// Calls left in the tightest window after this one.
    pub remaining: u64,
    /// Whole seconds until the tightest window has room again (for `x-ratelimit-reset`).
    pub reset_seconds: u64,
    /// For a refusal: whole seconds after which the same call is accepted; at least 1.
    pub retry_after: u64,
}

/// What a budget is known by: the SHA-256 of its key (`loginfail|tenant|client|address`, ...), so
/// that an entry, here or in Redis, has the same size whatever names the key is built from, and
/// every replica derives the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        use sha2::Digest;
        KeyDigest(sha2::Sha256::digest(key.as_bytes()).into())
    }

    /// The digest in lower-case hex, as Redis keys name it.
    pub fn hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Milliseconds rounded up to whole seconds, never 0 for a wait.
pub(crate) fn whole_seconds(millis: i64) -> u64 {
    (millis.max(1) as u64).div_ceil(1000)
}

/// The decision for a log (ascending accepted-call times in milliseconds, already trimmed to the
/// longest window) at `now`; shared by the local limiter and the tests of the Redis script's logic.
pub fn decide(log: &[i64], windows: &[Window], now: i64) -> Decision {
    let mut allowed = true;
    let mut tightest: Option<(u64, u64, u64)> = None; // (remaining, limit, reset)
    // (wait in milliseconds, limit) of the window that waits longest; compared in milliseconds,
    // as the Redis script compares them, so both name the same window.
    let mut blocking: Option<(i64, u64)> = None;
    for window in windows {
        let duration = window.duration.as_millis() as i64;
        // Calls in (now - duration, now].
        let start = log.partition_point(|&time| time <= now - duration);
        let in_window = &log[start..];
        let count = in_window.len() as u64;
        if count >= window.limit {
            allowed = false;
            // A zero limit refuses everything; the wait is then the whole window.
            let wait = match window.limit {
                0 => duration,
                limit => in_window[(count - limit) as usize] + duration - now,
            };
            if blocking.is_none_or(|(longest, _)| wait > longest) {
                blocking = Some((wait, window.limit));
            }
        }
        let remaining = window.limit.saturating_sub(count + 1);
        let reset = in_window.first().map_or(0, |&oldest| whole_seconds(oldest + duration - now));
        if tightest.is_none_or(|(least, _, _)| remaining < least) {
            tightest = Some((remaining, window.limit, reset));
        }
    }
    let (remaining, limit, reset_seconds) = tightest.unwrap_or((u64::MAX, 0, 0));
    match blocking {
        // A refusal reports the window that blocks it, so the headers agree with Retry-After.
        Some((wait, limit)) => {
            let wait = whole_seconds(wait);
            Decision { allowed, limit, remaining: 0, reset_seconds: wait, retry_after: wait }
        }
        None => Decision { allowed, limit, remaining, reset_seconds, retry_after: 0 },
    }
}

/// The time in milliseconds since the epoch, as a limiter reads it.
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// Where budgets live: this process, or Redis with this process as the fallback.
pub struct Limiter {
    local: local::LocalLimiter,
    redis: Option<redis::RedisLimiter>,
    /// `None`: the system's clock here and Redis's own in Redis (one clock for every replica).
    /// `Some`: this clock for both, so that tests can move time.
    clock: Option<Clock>,
    /// Set while Redis is unreachable; cleared when a call through it succeeds again.
    redis_down: AtomicBool,
    /// Milliseconds on the process's monotonic clock before which Redis is not tried again
    /// after a failure; whoever moves it forward is the one request that probes Redis.
    retry_redis_at: AtomicU64,
}

/// Milliseconds since this process started, on a clock that never steps back.
fn monotonic_millis() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
}

/// How long a check may wait for Redis before this node counts on its own.
const REDIS_DEADLINE: Duration = Duration::from_millis(200);

impl Limiter {
    pub fn local() -> Self {
        Limiter {
            local: local::LocalLimiter::default(),
            redis: None,
            clock: None,
            redis_down: AtomicBool::new(false),
            retry_redis_at: AtomicU64::new(0),
        }
    }

    pub fn with_redis(url: &str) -> Result<Self, String> {
        let redis = redis::RedisLimiter::new(url)?;
        Ok(Limiter { redis: Some(redis), ..Self::local() })
    }

    /// This limiter, reading the time from `clock` instead of the system's (and, with Redis,
    /// handing it to the script instead of letting it read Redis's): for tests that move time.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// `redis` while Redis answers, `local` otherwise (also when Redis is configured but down).
    /// Whether this check goes to Redis: always while it answers; after a failure, only the one
    /// request that claims the next retry slot probes it, the others count locally meanwhile.
    fn may_use_redis(&self) -> bool {
        if !self.redis_down.load(Ordering::Relaxed) {
            return true;
        }
        let now = monotonic_millis();
        let due = self.retry_redis_at.load(Ordering::Relaxed);
        now >= due
            && self.retry_redis_at.compare_exchange(due, now + 1000, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    pub fn backend(&self) -> &'static str {
        match (&self.redis, self.redis_down.load(Ordering::Relaxed)) {
            (Some(_), false) => "redis",
            (Some(_), true) => "local (redis unreachable)",
            (None, _) => "local",
        }
    }

    /// For readiness: `Err` with the reason when Redis is configured and does not answer a
    /// `PING` within the check deadline; `Ok` when it answers or is not configured.
    pub async fn ready(&self) -> Result<(), String> {
        let Some(redis) = &self.redis else { return Ok(()) };
        match tokio::time::timeout(REDIS_DEADLINE, redis.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("redis: {error}")),
            Err(_) => Err(format!("redis: no answer within {REDIS_DEADLINE:?}")),
        }
    }

    /// Checks and, when allowed, records one call under `key`.
    pub async fn check(&self, key: &str, windows: &[Window]) -> Decision {
        self.apply(key, windows, true).await
    }

    /// Whether one call under `key` would be allowed, without recording it: for budgets that
    /// only failures spend.
    pub async fn peek(&self, key: &str, windows: &[Window]) -> Decision {
        self.apply(key, windows, false).await
    }

    async fn apply(&self, key: &str, windows: &[Window], record: bool) -> Decision {
        if let Some(redis) = &self.redis
            && self.may_use_redis()
        {
            let now = self.clock.as_ref().map(|clock| clock());
            let answer = tokio::time::timeout(REDIS_DEADLINE, redis.check(key, windows, record, now)).await;
            match answer {
                Ok(Ok(decision)) => {
                    if self.redis_down.swap(false, Ordering::Relaxed) {
                        tracing::warn!("redis is reachable again: rate limits are shared again");
                    }
                    return decision;
                }
                failed => {
                    // Try again in a second, timed from now; meanwhile this node counts on its own.
                    self.retry_redis_at.store(monotonic_millis() + 1000, Ordering::Relaxed);
                    if !self.redis_down.swap(true, Ordering::Relaxed) {
                        let error = match failed {
                            Ok(Err(error)) => error.to_string(),
                            _ => format!("no answer within {REDIS_DEADLINE:?}"),
                        };
                        tracing::error!(%error, "redis is unreachable: rate limits fall back to this process until it is back");
                    }
                }
            }
        }
        let now = self.clock.as_ref().map_or_else(now_millis, |clock| clock());
        match record {
            true => self.local.check_at(key, windows, now),
            false => self.local.peek_at(key, windows, now),
        }
    }
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows() -> Vec<Window> {
        mde_windows()
    }

    /// Feeds calls at the given millisecond times through a local limiter; returns the decisions.
    fn run(times: impl IntoIterator<Item = i64>) -> Vec<Decision> {
        let limiter = local::LocalLimiter::default();
        times.into_iter().map(|time| limiter.check_at("k", &windows(), time)).collect()
    }

    #[test]
    fn the_101st_call_in_a_minute_is_refused() {
        let decisions = run((0..101).map(|i| 1_000_000 + i * 10));
        assert!(decisions[..100].iter().all(|d| d.allowed));
        assert!(!decisions[100].allowed);
        assert_eq!(decisions[99].remaining, 0);
        assert_eq!(decisions[0].remaining, 99);
    }

    #[test]
    fn calls_across_a_minute_boundary_are_counted_exactly() {
        // 100 calls in the last second of one minute, then more in the first second of the next:
        // fixed windows would allow them; any-minute counting must not.
        let base = 60_000 * 1000;
        let mut times: Vec<i64> = (0..100).map(|i| base - 1000 + i * 10).collect();
        times.push(base + 10);
        let decisions = run(times.clone());
        assert!(!decisions[100].allowed);
        // 59.01 s after the first call the window still holds all 100; at 60 s the first leaves.
        let limiter = local::LocalLimiter::default();
        for &time in &times[..100] {
            assert!(limiter.check_at("k", &windows(), time).allowed);
        }
        assert!(!limiter.check_at("k", &windows(), times[0] + 59_999).allowed);
        assert!(limiter.check_at("k", &windows(), times[0] + 60_000).allowed);
    }

    #[test]
    fn retry_after_is_honest_at_every_point_of_the_window() {
        let start = 5_000_000;
        // The 100 calls span 693 ms, so the window stays full until 60 s after the first:
        // 59_306 ms after the last is the last offset that is refused.
        let last_refused = 60_000 - 99 * 7 - 1;
        for offset in [0, 1, 7, 999, 1000, 1001, 30_000, 30_500, 59_000, 59_300, last_refused] {
            let limiter = local::LocalLimiter::default();
            for i in 0..100 {
                assert!(limiter.check_at("k", &windows(), start + i * 7).allowed);
            }
            let now = start + 99 * 7 + offset;
            let refused = limiter.check_at("k", &windows(), now);
            assert!(!refused.allowed, "offset {offset}: the window is still full");
            assert!(refused.retry_after >= 1, "never 0");
            let retry = now + refused.retry_after as i64 * 1000;
            assert!(
                limiter.check_at("k", &windows(), retry).allowed,
                "waiting {}s at offset {offset} must succeed",
                refused.retry_after
            );
            // And it is the shortest whole-second wait that works.
            let limiter = local::LocalLimiter::default();
            for i in 0..100 {
                limiter.check_at("k", &windows(), start + i * 7);
            }
            assert!(
                !limiter.check_at("k", &windows(), retry - 1000).allowed,
                "offset {offset}: one second less must not do"
            );
        }
        // And from there on the first call has left: the next is accepted at once.
        let limiter = local::LocalLimiter::default();
        for i in 0..100 {
            limiter.check_at("k", &windows(), start + i * 7);
        }
        assert!(limiter.check_at("k", &windows(), start + 99 * 7 + last_refused + 1).allowed);
    }

    #[test]
    fn the_1501st_call_in_an_hour_is_refused() {
        // 100 calls every 61 seconds stay within every minute but fill the hour after 15 rounds.
        let limiter = local::LocalLimiter::default();
        let mut accepted = 0;
        let mut refused_at = None;
        for round in 0..16i64 {
            for i in 0..100 {
                let time = round * 61_000 + i;
                let decision = limiter.check_at("k", &windows(), time);
                if decision.allowed {
                    accepted += 1;
                } else if refused_at.is_none() {
                    refused_at = Some((time, decision.retry_after));
                }
            }
        }
        assert_eq!(accepted, 1500);
        let (time, retry_after) = refused_at.unwrap();
        // The first call of the hour leaves at 3600 s: from 15 * 61 s that is 2685 s away.
        assert_eq!(retry_after, whole_seconds(3_600_000 - time));
        assert!(limiter.check_at("k", &windows(), time + retry_after as i64 * 1000).allowed);
    }

    #[test]
    fn looking_spends_nothing() {
        let limiter = local::LocalLimiter::default();
        for i in 0..100 {
            assert!(limiter.peek_at("k", &windows(), i).allowed);
        }
        assert!(limiter.check_at("k", &windows(), 100).allowed);
        for i in 0..99 {
            limiter.check_at("k", &windows(), 101 + i);
        }
        assert!(!limiter.peek_at("k", &windows(), 300).allowed);
    }

    #[test]
    fn a_refusal_reports_the_window_that_blocks_it() {
        let limiter = local::LocalLimiter::default();
        // 1500 calls spread over the hour, none in the last minute: the hour blocks.
        for i in 0..1500 {
            assert!(limiter.check_at("k", &windows(), i * 2_000).allowed, "call {i}");
        }
        let refused = limiter.check_at("k", &windows(), 3_100_000);
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 1500);
        assert_eq!(refused.reset_seconds, refused.retry_after);
        assert_eq!(refused.retry_after, whole_seconds(3_600_000 - 3_100_000));
    }

    #[test]
    fn a_zero_limit_refuses_without_panicking() {
        let zero = [Window { duration: Duration::from_secs(60), limit: 0 }];
        let refused = local::LocalLimiter::default().check_at("k", &zero, 1_000);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 60);
    }

    #[test]
    fn looking_at_a_budget_nobody_spent_adds_no_entry() {
        let limiter = local::LocalLimiter::default();
        for i in 0..1000 {
            assert!(limiter.peek_at(&format!("loginfail|t|client {i}|192.0.2.1"), &windows(), i).allowed);
        }
        assert_eq!(limiter.keys(), 0);
        limiter.check_at("spent", &windows(), 1000);
        assert!(limiter.peek_at("spent", &windows(), 1001).allowed);
        assert_eq!(limiter.keys(), 1);
    }

    #[test]
    fn budget_keys_are_the_same_size_whatever_names_they_hold() {
        let short = KeyDigest::of("loginfail|t|c|192.0.2.1");
        let long = KeyDigest::of(&format!("loginfail|t|{}|192.0.2.1", "c".repeat(2_000_000)));
        assert_ne!(short, long);
        assert_eq!(short.hex().len(), 64);
        assert_eq!(long.hex().len(), 64);
        let (short, long) = (redis::redis_key("a"), redis::redis_key(&"a".repeat(100_000)));
        assert_eq!(short.len(), long.len());
        assert!(short.starts_with("fileintel:ratelimit:"));
    }

    #[test]
    fn keys_do_not_share_budgets() {
        let limiter = local::LocalLimiter::default();
        for i in 0..100 {
            assert!(limiter.check_at("a", &windows(), i).allowed);
        }
        assert!(!limiter.check_at("a", &windows(), 100).allowed);
        assert!(limiter.check_at("b", &windows(), 100).allowed);
    }
}
