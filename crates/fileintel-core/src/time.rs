//! Timestamps as MDE writes them: UTC, 100-nanosecond ticks, up to 7 fractional digits.

use std::fmt;

/// A point in time as 100-nanosecond ticks since 1970-01-01T00:00:00Z (MDE's resolution).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Timestamp(pub i64);

/// Why a string is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an RFC 3339 timestamp (like 2026-11-20T08:15:30.1234567Z)")]
pub struct TimestampError(pub String);

const TICKS_PER_SECOND: i64 = 10_000_000;

impl Timestamp {
    /// The system clock's time now: the one function of the core that reads anything but its
    /// arguments. Nothing in the core calls it; the edges (the stores, the server) do, and hand
    /// the time to the core's functions, which take it as a parameter. Before 1970 (a clock
    /// badly wrong) it gives 1970.
    pub fn now() -> Self {
        let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(i64::try_from(elapsed.as_nanos() / 100).unwrap_or(i64::MAX))
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
