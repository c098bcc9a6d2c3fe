//! Reading the native feed incrementally: bytes in any chunking, out come numbered lines,
//! parsed observations in batches, and rejections with their line numbers.

use crate::observation::{Observation, Position, Rejection};
use crate::time::AcceptedTimes;

/// Longest line accepted; a longer one is rejected without being buffered whole.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Observations parsed from consecutive records, each with the position it came from, and the
/// records that were rejected on the way.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    pub observations: Vec<Observation>,
    pub positions: Vec<Position>,
    pub rejections: Vec<Rejection>,
    /// Input records read (lines, events, rows), whether or not they held an observation.
    pub records: u64,
}

impl ParsedBatch {
    pub fn len(&self) -> usize {
        self.observations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.observations.is_empty()
    }

    /// Whether the batch holds `max` records, observations and rejections together: decoders
    /// stop there, so that a run of bad records is handed on in batches like good ones rather
    /// than gathered whole.
    pub fn is_full(&self, max: usize) -> bool {
        self.observations.len() + self.rejections.len() >= max
    }

    pub fn push(&mut self, at: Position, observation: Observation) {
        self.observations.push(observation);
        self.positions.push(at);
    }

    /// Moves every observation whose time `accepted` refuses to the rejections, at its position
    /// and with why.
    pub fn reject_times_outside(&mut self, accepted: &AcceptedTimes) {
        if self.observations.iter().all(|observation| accepted.check(observation.timestamp).is_ok()) {
            return;
        }
        let observations = std::mem::take(&mut self.observations);
        let positions = std::mem::take(&mut self.positions);
        for (observation, at) in observations.into_iter().zip(positions) {
            match accepted.check(observation.timestamp) {
                Ok(()) => self.push(at, observation),
                Err(reason) => self.rejections.push(Rejection::new(at, reason)),
            }
        }
    }
}

/// Splits a byte stream into lines and parses them, however the stream is chunked.
#[derive(Debug, Default)]
pub struct NdjsonReader {
    carry: Vec<u8>,
    line: u64,
    /// Inside a line that already exceeded the limit: drop bytes until its end.
    overlong: bool,
    batch: ParsedBatch,
    /// Bytes consumed so far.
    pub bytes: u64,
    /// The tenant a scoped caller may write to (see [`Observation::parse_json_in`]).
    scope: Option<String>,
}

impl NdjsonReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader for a caller confined to one tenant.
    pub fn scoped(tenant: Option<String>) -> Self {
        NdjsonReader { scope: tenant, ..Self::default() }
    }

    /// Consumes a chunk; parsed observations accumulate until [`NdjsonReader::take_batch`].
    pub fn push(&mut self, mut chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        while let Some(end) = chunk.iter().position(|&byte| byte == b'\n') {
            let (head, rest) = (&chunk[..end], &chunk[end + 1..]);
            if self.carry.is_empty() && !self.overlong {
                self.line += 1;
                self.parse_line(head);
            } else {
                let mut line = std::mem::take(&mut self.carry);
                self.append(&mut line, head);
                self.line += 1;
                if std::mem::take(&mut self.overlong) {
                    self.reject_overlong();
                } else {
                    self.parse_line(&line);
                }
                line.clear();
                self.carry = line;
            }
            chunk = rest;
        }
        let mut carry = std::mem::take(&mut self.carry);
        self.append(&mut carry, chunk);
        self.carry = carry;
    }

    /// Ends the stream: a last line without a newline still counts.
    pub fn finish(&mut self) {
        if self.overlong {
            self.overlong = false;
            self.line += 1;
            self.reject_overlong();
        } else if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            self.line += 1;
            self.parse_line(&line);
        }
    }

    /// Records parsed so far and not yet taken, observations and rejections alike (a body of
    /// nothing but bad lines must be taken in batches too).
    pub fn pending(&self) -> usize {
        self.batch.len() + self.batch.rejections.len()
    }

    /// The observations and rejections so far, not yet taken.
    pub fn take_batch(&mut self) -> ParsedBatch {
        std::mem::take(&mut self.batch)
    }

    /// Lines seen so far, blank ones included.
    pub fn lines(&self) -> u64 {
        self.line
    }

    fn reject(&mut self, line: u64, reason: String) {
        self.batch.rejections.push(Rejection::new(Position::Line(line), reason));
    }

    fn append(&mut self, buffer: &mut Vec<u8>, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if buffer.len() + bytes.len() > MAX_LINE_BYTES {
            self.overlong = true;
            buffer.clear();
        } else {
            buffer.extend_from_slice(bytes);
        }
    }

    fn reject_overlong(&mut self) {
        self.batch.records += 1;
        let line = self.line;
        self.reject(line, format!("line longer than {MAX_LINE_BYTES} bytes"));
    }

    fn parse_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.batch.records += 1;
        match Observation::parse_json_in(line, self.scope.as_deref()) {
            Ok(observation) => {
                self.batch.push(Position::Line(self.line), observation);
            }
            Err(error) => {
                let number = self.line;
                self.reject(number, error.to_string());
            }
        }
    }
}

/// What an import did, as the CLI prints it and `POST /api/ingest/observations` answers.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngestSummary {
    /// Input records read: lines, events or rows, whether or not they held an observation.
    pub records: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Distinct files touched, counted per committed batch and summed.
    pub files_touched: u64,
    /// Files new to the tenant that observed them (whether another tenant saw one is not said).
    pub new_files: u64,
    pub seconds: f64,
    pub observations_per_second: f64,
    /// Each rejected record with its position and reason, in input order (at most [`MAX_REPORTED_REJECTIONS`]).
    pub rejected_lines: Vec<Rejection>,
    /// True when more lines were rejected than are listed.
    pub rejected_lines_truncated: bool,
    /// How many rejected records are not listed: only the first [`MAX_REPORTED_REJECTIONS`] are.
    pub rejected_lines_omitted: u64,
}

/// Caps the rejections listed in one summary, so a wholly bad upload cannot produce an unbounded answer.
pub const MAX_REPORTED_REJECTIONS: usize = 10_000;

impl IngestSummary {
    /// Builds the summary, listing rejections in line order; `omitted` counts rejections already
    /// dropped (see [`RejectionList`]).
    pub fn finish(mut self, mut rejections: Vec<Rejection>, omitted: u64, seconds: f64) -> Self {
        rejections.sort_by(|a, b| (&a.input, a.at).cmp(&(&b.input, b.at)));
        let over = rejections.len().saturating_sub(MAX_REPORTED_REJECTIONS) as u64;
        rejections.truncate(MAX_REPORTED_REJECTIONS);
        self.rejected_lines_omitted = omitted + over;
        self.rejected_lines_truncated = self.rejected_lines_omitted > 0;
        self.rejected_lines = rejections;
        self.seconds = seconds;
        self.observations_per_second = if seconds > 0.0 { self.accepted as f64 / seconds } else { 0.0 };
        self
    }
}

/// The rejections an import lists: the first [`MAX_REPORTED_REJECTIONS`] in input order, and a
/// count of the others, so that memory stays bounded however many records are bad.
#[derive(Debug, Default)]
pub struct RejectionList {
    kept: Vec<Rejection>,
    omitted: u64,
}

impl RejectionList {
    pub fn push(&mut self, rejection: Rejection) {
        self.kept.push(rejection);
        // Trimmed at twice the limit, so each sort is paid for by as many pushes as it keeps.
        if self.kept.len() >= 2 * MAX_REPORTED_REJECTIONS {
            self.kept.sort_by(|a, b| (&a.input, a.at).cmp(&(&b.input, b.at)));
            self.omitted += (self.kept.len() - MAX_REPORTED_REJECTIONS) as u64;
            self.kept.truncate(MAX_REPORTED_REJECTIONS);
        }
    }

    /// The rejections kept, and how many were dropped.
    pub fn into_parts(self) -> (Vec<Rejection>, u64) {
        (self.kept, self.omitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    const GOOD: &str =
        r#"{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","sha1":"4388963aaa83afe2042a46a3c017ad50bdcdafb3"}"#;

    fn read_in_chunks(input: &str, chunk: usize) -> NdjsonReader {
        let mut reader = NdjsonReader::new();
        for piece in input.as_bytes().chunks(chunk) {
            reader.push(piece);
        }
        reader.finish();
        reader
    }

    #[test]
    fn times_before_2000_or_past_the_skew_are_rejected_at_their_lines() {
        let now = Timestamp::parse("2026-12-01T12:00:00Z").unwrap();
        let line = |time: &str| GOOD.replace("2026-01-01T00:00:00Z", time);
        let times = ["1970-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z", "2026-12-01T12:05:00Z"];
        let future = ["2026-12-01T12:05:01Z", "2099-01-01T00:00:00Z"];
        let input: Vec<String> = times.iter().chain(&future).map(|time| line(time)).collect();
        let mut reader = read_in_chunks(&input.join("\n"), 64);
        let mut batch = reader.take_batch();
        assert_eq!(batch.len(), 6, "the parser itself takes any time");
        batch.reject_times_outside(&AcceptedTimes::at(now, 300));
        assert_eq!(batch.positions, [3, 4].map(Position::Line), "2000 and exactly the skew are accepted");
        let rejected: Vec<(Position, bool)> =
            batch.rejections.iter().map(|r| (r.at, r.reason.contains("in the future"))).collect();
        assert_eq!(rejected, [(1, false), (2, false), (5, true), (6, true)].map(|(l, f)| (Position::Line(l), f)));
        assert!(batch.rejections[0].reason.contains("before 2000-01-01T00:00:00"), "{}", batch.rejections[0].reason);
    }

    #[test]
    fn lines_are_numbered_the_same_however_the_input_is_chunked() {
        let input = format!("{GOOD}\n\nnot json\r\n{GOOD}\r\n{{\"deviceId\":\"d\"}}\n{GOOD}");
        for chunk in [1, 2, 7, 64, 10_000] {
            let mut reader = read_in_chunks(&input, chunk);
            let batch = reader.take_batch();
            assert_eq!(batch.positions, [1, 4, 6].map(Position::Line), "chunk {chunk}");
            let rejected: Vec<Position> = batch.rejections.iter().map(|r| r.at).collect();
            assert_eq!(rejected, [3, 5].map(Position::Line), "chunk {chunk}");
            assert!(batch.rejections[1].reason.contains("timestamp"));
            assert_eq!(batch.records, 5, "blank lines are not records");
            assert_eq!(reader.lines(), 6);
        }
    }

    #[test]
    fn an_overlong_line_is_rejected_and_the_next_one_still_read() {
        let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_LINE_BYTES));
        for chunk in [4096, MAX_LINE_BYTES * 2] {
            let mut reader = read_in_chunks(&format!("{long}\n{GOOD}\n{long}"), chunk);
            let batch = reader.take_batch();
            assert_eq!(batch.positions, [Position::Line(2)]);
            let rejected: Vec<Position> = batch.rejections.iter().map(|r| r.at).collect();
            assert_eq!(rejected, [1, 3].map(Position::Line));
        }
    }

    #[test]
    fn the_summary_lists_rejections_in_line_order() {
        let summary = IngestSummary { accepted: 10, ..Default::default() }.finish(
            vec![Rejection::new(Position::Line(9), "b"), Rejection::new(Position::Line(2), "a")],
            0,
            2.0,
        );
        assert_eq!(summary.rejected_lines[0].at, Position::Line(2));
        assert_eq!(summary.observations_per_second, 5.0);
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["rejectedLines"][1]["reason"], "b");
        assert_eq!(json["rejectedLines"][0]["line"], 2);
    }

    #[test]
    fn an_import_lists_the_first_rejections_and_counts_the_rest() {
        let mut list = RejectionList::default();
        let total = 5 * MAX_REPORTED_REJECTIONS as u64 + 7;
        // Out of order, as store rejections come after later lines' parse rejections.
        for line in (1..=total).rev() {
            list.push(Rejection::new(Position::Line(line), "bad"));
            assert!(list.kept.len() < 2 * MAX_REPORTED_REJECTIONS);
        }
        let (kept, omitted) = list.into_parts();
        let summary = IngestSummary { rejected: total, ..Default::default() }.finish(kept, omitted, 1.0);
        assert_eq!(summary.rejected_lines.len(), MAX_REPORTED_REJECTIONS);
        assert_eq!(summary.rejected_lines[0].at, Position::Line(1));
        assert_eq!(summary.rejected_lines.last().unwrap().at, Position::Line(MAX_REPORTED_REJECTIONS as u64));
        assert_eq!(summary.rejected_lines_omitted, total - MAX_REPORTED_REJECTIONS as u64);
        assert!(summary.rejected_lines_truncated);
        assert_eq!(serde_json::to_value(&summary).unwrap()["rejectedLinesOmitted"], total - 10_000);
    }

    #[test]
    fn a_reader_fed_only_bad_lines_hands_them_on_in_batches() {
        let mut reader = NdjsonReader::new();
        reader.push("{}\n".repeat(1000).as_bytes());
        assert_eq!(reader.pending(), 1000);
        assert_eq!(reader.take_batch().rejections.len(), 1000);
        assert_eq!(reader.pending(), 0);
    }
}
