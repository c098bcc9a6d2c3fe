//! Budgets shared through Redis: each check is one `EVALSHA` of a Lua script that trims, counts
//! and records atomically, with Redis's clock, on a sorted set that expires by itself.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Decision, Window, whole_seconds};

/// KEYS[1]: the log, a sorted set of accepted call times (ms). ARGV[1]: a member unique to this
/// call, or empty to only look (nothing is recorded); then pairs of window duration (ms) and limit. Returns allowed, limit, remaining, reset
/// (ms) and retry (ms), the same figures as `super::decide`.
const SCRIPT: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local longest = 0
for i = 2, #ARGV, 2 do longest = math.max(longest, tonumber(ARGV[i])) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - longest))
local allowed, retry = 1, 0
local best_remaining, best_limit, best_reset = -1, 0, 0
for i = 2, #ARGV, 2 do
  local duration, limit = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local after = '(' .. string.format('%d', now - duration)
  local count = redis.call('ZCOUNT', KEYS[1], after, '+inf')
  if count >= limit then
    allowed = 0
    if limit <= 0 then
      retry = math.max(retry, duration)
    else
      local blocker = redis.call('ZRANGEBYSCORE', KEYS[1], after, '+inf', 'WITHSCORES', 'LIMIT', count - limit, 1)
      retry = math.max(retry, tonumber(blocker[2]) + duration - now)
    end
  end
  local remaining = math.max(limit - count - 1, 0)
  local reset = 0
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], after, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #oldest > 0 then reset = tonumber(oldest[2]) + duration - now end
  if best_remaining < 0 or remaining < best_remaining then
    best_remaining, best_limit, best_reset = remaining, limit, reset
  end
end
if allowed == 1 and ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], string.format('%d', now), string.format('%d', now) .. '-' .. ARGV[1])
  redis.call('PEXPIRE', KEYS[1], string.format('%d', longest))
else
  best_remaining = 0
end
return {allowed, best_limit, best_remaining, best_reset, retry}
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

    /// Checks and, when allowed, records a call (or with `record` false, only looks).
    pub async fn check(&self, key: &str, windows: &[Window], record: bool) -> Result<Decision, redis::RedisError> {
        let mut invocation = self.script.key(redis_key(key));
        invocation.arg(if record { rand_member() } else { String::new() });
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
