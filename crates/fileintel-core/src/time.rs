//! Timestamps as MDE writes them: UTC, 100-nanosecond ticks, up to 7 fractional digits.

use std::fmt;

/// A point in time as 100-nanosecond ticks since 1970-01-01T00:00:00Z (MDE's resolution).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Timestamp(pub i64);

/// Why a string is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an RFC 3339 timestamp (like 2026-11-20T08:15:30.1234567Z)")]
pub struct TimestampError(pub String);

/// Ticks in a second, an hour and a day.
pub const TICKS_PER_SECOND: i64 = 10_000_000;
pub const TICKS_PER_HOUR: i64 = 3600 * TICKS_PER_SECOND;
pub const TICKS_PER_DAY: i64 = 24 * TICKS_PER_HOUR;

/// The longest look-back window, in hours, that `/stats` answers exactly (MDE's 720).
pub const MAX_LOOKBACK_HOURS: i64 = 720;

/// How long, in hours, a store keeps observation times for windows: the longest look-back plus
/// an hour of slack for clocks that disagree. Older times can never fall inside a window again.
pub const WINDOW_HORIZON_HOURS: i64 = MAX_LOOKBACK_HOURS + 1;

/// The earliest time an observation may carry: 2000-01-01T00:00:00Z. Endpoint telemetry of the
/// kind fileintel reads did not exist before; an earlier time is a clock that was never set (or a
/// claim made up to move a file's first sighting back).
pub const EARLIEST_OBSERVATION: Timestamp = Timestamp(946_684_800 * TICKS_PER_SECOND);

/// How far past the receiving clock an observation's time may be, by default: five minutes of
/// clocks that disagree.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u32 = 300;

/// The times an import accepts, from [`EARLIEST_OBSERVATION`] to a bounded skew past now: a time
/// outside them would set a file's first or last sighting for good (first-observed 1970, a report
/// dated 2099 that no honest one could replace), so it is rejected rather than stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedTimes {
    pub earliest: Timestamp,
    pub latest: Timestamp,
}

impl AcceptedTimes {
    /// The times accepted at `now` with a skew of `skew_seconds` into the future.
    pub fn at(now: Timestamp, skew_seconds: u32) -> Self {
        let latest = Timestamp(now.0.saturating_add(i64::from(skew_seconds) * TICKS_PER_SECOND));
        AcceptedTimes { earliest: EARLIEST_OBSERVATION, latest }
    }

    /// Why `time` is not accepted, if it is not.
    pub fn check(&self, time: Timestamp) -> Result<(), String> {
        if time < self.earliest {
            return Err(format!("timestamp {time} is before {}, the earliest accepted", self.earliest));
        }
        if time > self.latest {
            return Err(format!(
                "timestamp {time} is in the future (after {}, the receiving clock plus the allowed skew)",
                self.latest
            ));
        }
        Ok(())
    }
}

impl Timestamp {
    /// The system clock's time now: the one function of the core that reads anything but its
    /// arguments. Nothing in the core calls it; the edges (the stores, the server) do, and hand
    /// the time to the core's functions, which take it as a parameter. Before 1970 (a clock
    /// badly wrong) it gives 1970.
    pub fn now() -> Self {
        let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(i64::try_from(elapsed.as_nanos() / 100).unwrap_or(i64::MAX))
    }

    /// This time `hours` later (earlier when negative), the nearest a timestamp holds at the ends.
    pub fn plus_hours(self, hours: i64) -> Self {
        Timestamp(self.0.saturating_add(hours.saturating_mul(TICKS_PER_HOUR)))
    }

    /// The hour this time falls in, counted from 1970 (negative before).
    pub fn hour(self) -> i64 {
        self.0.div_euclid(TICKS_PER_HOUR)
    }

    /// The day this time falls in, counted from 1970 (negative before).
    pub fn day(self) -> i64 {
        self.0.div_euclid(TICKS_PER_DAY)
    }

    /// The first moment of `hour` (as [`Timestamp::hour`] counts them).
    pub fn start_of_hour(hour: i64) -> Self {
        Timestamp(hour.saturating_mul(TICKS_PER_HOUR))
    }

    /// Observation times before this, with `self` as now, are not kept for windows
    /// ([`WINDOW_HORIZON_HOURS`]).
    pub fn window_horizon(self) -> Self {
        self.plus_hours(-WINDOW_HORIZON_HOURS)
    }

    /// The first hour whose window entries a sweep at `self` (as now) keeps: every hour before it
    /// ended more than the horizon and an hour more ago, so no window from now on can reach it,
    /// whichever side of an hour the horizon falls. Whole hours go, so an hour's entries and its
    /// count go together.
    pub fn first_hour_kept(self) -> i64 {
        self.plus_hours(-(WINDOW_HORIZON_HOURS + 1)).hour()
    }

    /// Parses RFC 3339 with any offset; digits past the seventh fraction digit are truncated.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|_| TimestampError(text.to_owned()))?;
        let ticks = parsed.unix_timestamp_nanos().div_euclid(100);
        i64::try_from(ticks).map(Timestamp).map_err(|_| TimestampError(text.to_owned()))
    }

    /// Parses the timestamps telemetry writes: RFC 3339, or a date and time without an offset
    /// (`2019-05-14 10:55:52.123`, `2019-05-14T10:55:52.123`), which is taken as UTC, as Sysmon's
    /// `UtcTime` and MDE exports write it.
    pub fn parse_utc(text: &str) -> Result<Self, TimestampError> {
        let text = text.trim();
        Self::parse(text).or_else(|error| {
            let bytes = text.as_bytes();
            let has_offset =
                text.ends_with(['Z', 'z']) || (bytes.len() > 19 && bytes[19..].iter().any(|&b| b == b'+' || b == b'-'));
            if has_offset || bytes.len() < 19 || !(bytes[10] == b' ' || bytes[10] == b'T') {
                return Err(error);
            }
            let mut fixed = String::with_capacity(text.len() + 1);
            fixed.push_str(&text[..10]);
            fixed.push('T');
            fixed.push_str(&text[11..]);
            fixed.push('Z');
            Self::parse(&fixed).map_err(|_| error)
        })
    }

    /// For seconds known to be in range (a clock, a time fileintel stored); beyond what a
    /// timestamp holds (about 29,000 years either side of 1970) it gives the nearest one it holds.
    pub fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(TICKS_PER_SECOND))
    }

    /// Whole seconds since 1970 (rounded down, before it too): for clocks that count seconds.
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(TICKS_PER_SECOND)
    }

    /// For seconds read from input, which may say anything: `None` beyond what a timestamp holds.
    pub fn checked_from_unix_seconds(seconds: i64) -> Option<Self> {
        seconds.checked_mul(TICKS_PER_SECOND).map(Timestamp)
    }
}

impl fmt::Display for Timestamp {
    /// `2017-09-19T03:51:27.6785431Z`: trailing zeros of the fraction dropped, no fraction when it is zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.div_euclid(TICKS_PER_SECOND);
        let fraction = self.0.rem_euclid(TICKS_PER_SECOND);
        let days = seconds.div_euclid(86_400);
        let second_of_day = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )?;
        if fraction != 0 {
            let mut digits = format!("{fraction:07}");
            while digits.ends_with('0') {
                digits.pop();
            }
            write!(f, ".{digits}")?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Days since the Unix epoch to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &str) -> String {
        Timestamp::parse(input).unwrap().to_string()
    }

    #[test]
    fn timestamps_keep_seven_digits_and_drop_trailing_zeros() {
        assert_eq!(round_trip("2017-09-19T03:51:27.6785431Z"), "2017-09-19T03:51:27.6785431Z");
        assert_eq!(round_trip("2019-12-07T13:44:16Z"), "2019-12-07T13:44:16Z");
        assert_eq!(round_trip("2019-12-07T13:44:16.000Z"), "2019-12-07T13:44:16Z");
        assert_eq!(round_trip("2019-12-07T13:44:16.5Z"), "2019-12-07T13:44:16.5Z");
        assert_eq!(round_trip("2019-12-07T13:44:16.1200000Z"), "2019-12-07T13:44:16.12Z");
        // Nanoseconds are truncated to MDE's 100 ns ticks.
        assert_eq!(round_trip("2019-12-07T13:44:16.123456789Z"), "2019-12-07T13:44:16.1234567Z");
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        assert_eq!(round_trip("2020-01-01T01:30:00+02:00"), "2019-12-31T23:30:00Z");
        assert_eq!(round_trip("2024-02-29T23:59:59.9999999-00:30"), "2024-03-01T00:29:59.9999999Z");
    }

    #[test]
    fn unix_seconds_beyond_what_a_timestamp_holds_are_refused_or_clamped_never_overflowed() {
        assert_eq!(Timestamp::checked_from_unix_seconds(1_700_000_000), Some(Timestamp(17_000_000_000_000_000)));
        assert_eq!(Timestamp::checked_from_unix_seconds(i64::MAX), None);
        assert_eq!(Timestamp::checked_from_unix_seconds(i64::MIN / 1000), None);
        assert_eq!(Timestamp::from_unix_seconds(i64::MAX), Timestamp(i64::MAX));
        assert_eq!(Timestamp::from_unix_seconds(i64::MIN), Timestamp(i64::MIN));
        assert_eq!(Timestamp::from_unix_seconds(1_700_000_000).unix_seconds(), 1_700_000_000);
        assert_eq!(Timestamp(-1).unix_seconds(), -1, "a tick before 1970 is in the second before it");
    }

    #[test]
    fn the_clock_reads_a_time_after_this_code_was_written() {
        let now = Timestamp::now();
        assert!(now > Timestamp::parse("2026-01-01T00:00:00Z").unwrap(), "{now}");
        assert!(Timestamp::now() >= now);
    }

    #[test]
    fn hours_and_days_count_from_1970_and_before_it_too() {
        let time = Timestamp::parse("1970-01-02T01:30:00Z").unwrap();
        assert_eq!((time.hour(), time.day()), (25, 1));
        assert_eq!(Timestamp::start_of_hour(time.hour()).to_string(), "1970-01-02T01:00:00Z");
        let before = Timestamp::parse("1969-12-31T23:59:59.9Z").unwrap();
        assert_eq!((before.hour(), before.day()), (-1, -1));
        assert_eq!(Timestamp::start_of_hour(-1).to_string(), "1969-12-31T23:00:00Z");
        assert_eq!(time.plus_hours(-26).to_string(), "1969-12-31T23:30:00Z");
        assert_eq!(Timestamp(i64::MAX).plus_hours(1), Timestamp(i64::MAX));
    }

    #[test]
    fn windows_keep_721_hours_and_a_sweep_keeps_whole_hours_beyond_them() {
        let now = Timestamp::parse("2026-12-03T10:20:00Z").unwrap();
        assert_eq!(now.window_horizon().to_string(), "2026-11-03T09:20:00Z", "720 hours and one");
        let kept = Timestamp::start_of_hour(now.first_hour_kept());
        assert_eq!(kept.to_string(), "2026-11-03T08:00:00Z");
        // Whatever lies before the first hour kept is older than the horizon by an hour or more.
        assert!(kept.plus_hours(1) <= now.window_horizon());
        let on_the_hour = Timestamp::parse("2026-12-03T10:00:00Z").unwrap();
        assert_eq!(Timestamp::start_of_hour(on_the_hour.first_hour_kept()).to_string(), "2026-11-03T08:00:00Z");
    }

    #[test]
    fn dates_before_the_epoch_format_correctly() {
        assert_eq!(round_trip("1969-12-31T23:59:59.9Z"), "1969-12-31T23:59:59.9Z");
        assert_eq!(round_trip("1601-01-01T00:00:00Z"), "1601-01-01T00:00:00Z");
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for bad in ["", "yesterday", "2020-13-01T00:00:00Z", "2020-01-01 00:00:00", "2020-01-01T00:00:00"] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn telemetry_timestamps_without_an_offset_are_utc() {
        let sysmon = Timestamp::parse_utc("2020-02-10 08:28:12.848").unwrap();
        assert_eq!(sysmon.to_string(), "2020-02-10T08:28:12.848Z");
        assert_eq!(Timestamp::parse_utc("2020-02-10T08:28:12").unwrap().to_string(), "2020-02-10T08:28:12Z");
        assert_eq!(Timestamp::parse_utc("2020-02-10T10:28:12+02:00").unwrap().to_string(), "2020-02-10T08:28:12Z");
        assert!(Timestamp::parse_utc("2020-02-10").is_err());
        assert!(Timestamp::parse_utc("yesterday at noon").is_err());
    }
}
