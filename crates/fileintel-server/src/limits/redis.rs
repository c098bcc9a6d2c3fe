//! Budgets shared through Redis: each check is one `EVALSHA` of a Lua script that trims, counts
//! and records atomically, with Redis's clock, on a sorted set that expires by itself.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Decision, Window, whole_seconds};

/// KEYS[1]: the log, a sorted set of accepted call times (ms). ARGV[1]: a member unique to this
/// call, or empty to only look (nothing is recorded). ARGV[2]: the time (ms), or empty to read
/// Redis's clock, which every replica shares. Then pairs of window duration (ms) and limit.
/// Returns allowed, limit, remaining, reset (ms) and retry (ms): the rule of `super`'s module
/// comment, as `super::decide` computes it, step for step.
const SCRIPT: &str = r#"
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local longest = 0
for i = 3, #ARGV, 2 do longest = math.max(longest, tonumber(ARGV[i])) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - longest))
local allowed, block_wait, block_limit = 1, -1, 0
local best_remaining, best_limit, best_reset = -1, 0, 0
for i = 3, #ARGV, 2 do
  local duration, limit = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local after = '(' .. string.format('%d', now - duration)
  local count = redis.call('ZCOUNT', KEYS[1], after, '+inf')
  if count >= limit then
    allowed = 0
    local wait = duration
    if limit > 0 then
      local blocker = redis.call('ZRANGEBYSCORE', KEYS[1], after, '+inf', 'WITHSCORES', 'LIMIT', count - limit, 1)
      wait = tonumber(blocker[2]) + duration - now
    end
    -- The window that waits longest, the first listed among equal waits.
    if wait > block_wait then block_wait, block_limit = wait, limit end
  end
  local remaining = math.max(limit - count - 1, 0)
  local reset = 0
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], after, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #oldest > 0 then reset = tonumber(oldest[2]) + duration - now end
  if best_remaining < 0 or remaining < best_remaining then
    best_remaining, best_limit, best_reset = remaining, limit, reset
  end
end
if allowed == 0 then
  return {0, block_limit, 0, block_wait, block_wait}
end
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], string.format('%d', now), string.format('%d', now) .. '-' .. ARGV[1])
  redis.call('PEXPIRE', KEYS[1], string.format('%d', longest))
end
return {1, best_limit, best_remaining, best_reset, 0}
"#;

pub struct RedisLimiter {
    connection: ConnectionManager,
    script: redis::Script,
}

impl RedisLimiter {
    /// Connects lazily: a Redis that is down at start is tried again on use.
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|error| format!("{url}: {error}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|error| format!("{url}: {error}"))?;
        Ok(RedisLimiter { connection, script: redis::Script::new(SCRIPT) })
    }

    /// Whether Redis answers a `PING`.
    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING").query_async::<String>(&mut connection).await.map(drop)
    }

    /// Checks and, when allowed, records a call (or with `record` false, only looks), at `now`
    /// (ms) or, given `None`, at Redis's time.
    pub async fn check(
        &self,
        key: &str,
        windows: &[Window],
        record: bool,
        now: Option<i64>,
    ) -> Result<Decision, redis::RedisError> {
        let mut invocation = self.script.key(redis_key(key));
        invocation.arg(if record { rand_member() } else { String::new() });
        invocation.arg(now.map(|now| now.to_string()).unwrap_or_default());
        for window in windows {
            invocation.arg(window.duration.as_millis() as u64).arg(window.limit);
        }
        let mut connection = self.connection.clone();
        let answer: Vec<i64> = invocation.invoke_async(&mut connection).await?;
        let figure = |index: usize| answer.get(index).copied().unwrap_or_default();
        let allowed = figure(0) == 1;
        Ok(Decision {
            allowed,
            limit: figure(1) as u64,
            remaining: figure(2) as u64,
            reset_seconds: if figure(3) > 0 { whole_seconds(figure(3)) } else { 0 },
            retry_after: if allowed { 0 } else { whole_seconds(figure(4)) },
        })
    }
}

/// The sorted set of a budget: named by the digest of its key, so its name is the same length
/// whatever the key holds.
pub(crate) fn redis_key(key: &str) -> String {
    format!("fileintel:ratelimit:{}", super::KeyDigest::of(key).hex())
}

/// A member suffix unique to this call, so two calls in the same millisecond both count.
fn rand_member() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::local::LocalLimiter;
    use super::super::{Window, mde_windows};
    use super::*;

    /// A small generator of pseudo-random numbers (SplitMix64), seeded so a failure can be rerun.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    /// The script and `decide` are two writings of one rule: the same calls at the same times,
    /// checks and looks mixed, through both, must get the same decision, figure for figure.
    /// Small limits make both windows fill, alone and together; a zero limit refuses all.
    #[tokio::test]
    async fn the_redis_script_and_the_local_log_decide_every_call_alike() {
        let Some(url) = fileintel_testing::env_or_skip("FILEINTEL_TEST_REDIS", "to compare the script with decide")
        else {
            return;
        };
        let redis = RedisLimiter::new(&url).unwrap();
        let seconds = Duration::from_secs;
        let budgets: [Vec<Window>; 4] = [
            vec![Window { duration: seconds(60), limit: 5 }, Window { duration: seconds(300), limit: 8 }],
            // The longer window first: the order of the list must not change the answer.
            vec![Window { duration: seconds(300), limit: 8 }, Window { duration: seconds(60), limit: 5 }],
            mde_windows(),
            vec![Window { duration: seconds(60), limit: 3 }, Window { duration: seconds(120), limit: 0 }],
        ];
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        println!("seed {seed}");
        let mut random = SplitMix(seed);
        let gaps = [0, 1, 7, 999, 1000, 1001, 4_000, 13_000, 59_999, 60_000, 61_000, 150_000];
        let mut both_full = 0;
        for (index, windows) in budgets.iter().enumerate() {
            let key = format!("test:{}:{index}", uuid::Uuid::new_v4().simple());
            let local = LocalLimiter::default();
            let mut now = 1_800_000_000_000i64;
            let mut accepted = Vec::new();
            for step in 0..600 {
                // Mostly bursts, now and then a pause as long as a window.
                let gap =
                    if random.below(4) == 0 { gaps[random.below(gaps.len() as u64) as usize] } else { random.below(3) };
                now += gap as i64;
                let record = random.below(5) != 0;
                let here = if record { local.check_at(&key, windows, now) } else { local.peek_at(&key, windows, now) };
                let there = redis.check(&key, windows, record, Some(now)).await.unwrap();
                assert_eq!(here, there, "seed {seed}, budget {index}, step {step} at {now} (record {record})");
                if here.allowed && record {
                    accepted.push(now);
                }
                let full = |window: &Window| {
                    let duration = window.duration.as_millis() as i64;
                    accepted.iter().filter(|&&time| time > now - duration).count() as u64 >= window.limit
                };
                both_full += usize::from(windows.iter().all(full));
            }
            let mut connection = redis.connection.clone();
            let _: () = ::redis::cmd("DEL")
                .arg(format!("fileintel:ratelimit:{key}"))
                .query_async(&mut connection)
                .await
                .unwrap();
        }
        assert!(both_full > 0, "seed {seed}: the sequence never filled both windows");
    }
}
