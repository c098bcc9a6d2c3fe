//! Feeding parsed observations into any [`Store`]: one batch commits while the next is parsed.
//! `fileintel ingest` and `POST /api/ingest/observations` both go through here, whatever the format.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use fileintel_core::{
    AcceptedTimes, DEFAULT_CLOCK_SKEW_SECONDS, IngestSummary, NdjsonReader, ParsedBatch, Position, Rejection,
    RejectionList, Timestamp,
};
use tokio::task::JoinHandle;

use crate::{IngestOutcome, Store, StoreError};

/// Observations per commit: large enough to amortise the fsync, small enough to bound memory.
pub const DEFAULT_BATCH: usize = 50_000;

type Labels = Vec<Option<Arc<str>>>;
/// A commit in flight: positions and inputs of its observations, the exact duplicates of them
/// dropped before it, and the store's answer.
type Commit = JoinHandle<(Vec<Position>, Labels, Vec<Repeats>, Result<IngestOutcome, StoreError>)>;

/// The exact repeats of one pending observation that were dropped: how many, and the other
/// inputs that held some (a repeat in the first copy's own input is only counted).
#[derive(Debug, Default)]
struct Repeats {
    count: u32,
    elsewhere: Vec<Arc<str>>,
}

/// What one named input of an import came to, once every commit is durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputSummary {
    /// Records read: lines, events or rows, whether or not they held an observation.
    pub records: u64,
    pub accepted: u64,
    pub rejected: u64,
}

/// Per named input while the import runs: observations handed over (repeats included) and
/// those the store refused.
#[derive(Debug, Default)]
struct InputCounts {
    records: u64,
    observations: u64,
    refused_by_parser: u64,
    refused_by_store: u64,
}

/// An import in progress. Push NDJSON bytes or submit batches parsed elsewhere, then
/// [`Ingestor::finish`] for the summary; nothing is counted as accepted before the store has made
/// it durable.
pub struct Ingestor {
    store: Arc<dyn Store>,
    reader: NdjsonReader,
    batch_size: usize,
    in_flight: Option<Commit>,
    summary: IngestSummary,
    /// The first rejections, in input order, and a count of the rest: a body of nothing but bad
    /// records must not cost memory for each.
    rejections: RejectionList,
    /// Observations gathered from several inputs until a commit's worth, with the input of each.
    pending: ParsedBatch,
    pending_labels: Labels,
    /// Hashes of the pending observations, to drop exact repeats (a log imported twice, or
    /// overlapping exports) before they cost the store anything: an observation changes nothing
    /// the second time.
    pending_hashes: HashMap<u64, Vec<usize>>,
    /// Per pending observation, the exact repeats of it that were dropped.
    pending_repeats: Vec<Repeats>,
    /// Per named input, so that each can be reported on its own.
    inputs: HashMap<Arc<str>, InputCounts>,
    /// Seeded at random per ingestor, so crafted input cannot aim for collisions.
    hasher: ahash::RandomState,
    started: Instant,
    /// How far past the clock an observation's time may be (see [`AcceptedTimes`]).
    clock_skew_seconds: u32,
}

impl Ingestor {
    pub fn new(store: Arc<dyn Store>, batch_size: usize) -> Self {
        Self::scoped(store, batch_size, None)
    }

    /// An import on behalf of a caller confined to `tenant`: NDJSON lines naming another are rejected.
    pub fn scoped(store: Arc<dyn Store>, batch_size: usize, tenant: Option<String>) -> Self {
        Ingestor {
            store,
            reader: NdjsonReader::scoped(tenant),
            batch_size: batch_size.max(1),
            in_flight: None,
            summary: IngestSummary::default(),
            rejections: RejectionList::default(),
            pending: ParsedBatch::default(),
            pending_labels: Vec::new(),
            pending_hashes: HashMap::new(),
            pending_repeats: Vec::new(),
            inputs: HashMap::new(),
            hasher: Default::default(),
            started: Instant::now(),
            clock_skew_seconds: DEFAULT_CLOCK_SKEW_SECONDS,
        }
    }

    /// Accepts observation times up to `seconds` past the clock (by default
    /// [`DEFAULT_CLOCK_SKEW_SECONDS`]); a later one, or one before [`AcceptedTimes`]' earliest, is
    /// rejected at its position.
    pub fn with_clock_skew(mut self, seconds: u32) -> Self {
        self.clock_skew_seconds = seconds;
        self
    }

    /// Consumes a chunk of native NDJSON, committing full batches as they fill.
    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.reader.push(chunk);
        if self.reader.pending() >= self.batch_size {
            let batch = self.reader.take_batch();
            self.submit(batch).await?;
        }
        Ok(())
    }

    /// Durable so far: accepted and rejected counts of committed batches.
    pub fn progress(&self) -> &IngestSummary {
        &self.summary
    }

    /// Commits what is left and returns the summary.
    pub async fn finish(self) -> Result<IngestSummary, StoreError> {
        Ok(self.finish_by_input().await?.0)
    }

    /// Commits what is left and returns the summary, and what each input named in
    /// [`Ingestor::submit_from`] came to.
    pub async fn finish_by_input(mut self) -> Result<(IngestSummary, HashMap<Arc<str>, InputSummary>), StoreError> {
        self.reader.finish();
        let batch = self.reader.take_batch();
        self.submit(batch).await?;
        self.commit_pending().await?;
        self.wait().await?;
        let summary = std::mem::take(&mut self.summary);
        let (rejections, omitted) = std::mem::take(&mut self.rejections).into_parts();
        let inputs = std::mem::take(&mut self.inputs)
            .into_iter()
            .map(|(label, counts)| {
                let summary = InputSummary {
                    records: counts.records,
                    accepted: counts.observations.saturating_sub(counts.refused_by_store),
                    rejected: counts.refused_by_parser + counts.refused_by_store,
                };
                (label, summary)
            })
            .collect();
        Ok((summary.finish(rejections, omitted, self.started.elapsed().as_secs_f64()), inputs))
    }

    /// Commits a batch parsed elsewhere (by an importer), after the previous one is durable.
    pub async fn submit(&mut self, batch: ParsedBatch) -> Result<(), StoreError> {
        self.submit_from(None, batch).await
    }

    /// Takes a batch read from the input `label`. Batches of small inputs are gathered until a
    /// commit's worth, so that a thousand small files do not cost a thousand syncs.
    pub async fn submit_from(&mut self, label: Option<Arc<str>>, mut batch: ParsedBatch) -> Result<(), StoreError> {
        // Every import passes here, whatever its format: the one place a time is checked.
        batch.reject_times_outside(&AcceptedTimes::at(Timestamp::now(), self.clock_skew_seconds));
        let ParsedBatch { observations, positions, rejections, records } = batch;
        if let Some(label) = &label {
            let counts = self.inputs.entry(label.clone()).or_default();
            counts.records += records;
            counts.observations += observations.len() as u64;
            counts.refused_by_parser += rejections.len() as u64;
        }
        self.summary.records += records;
        self.summary.rejected += rejections.len() as u64;
        for mut rejection in rejections {
            rejection.input = label.as_deref().map(str::to_owned);
            self.rejections.push(rejection);
        }
        for (observation, position) in observations.into_iter().zip(positions) {
            let slots = self.pending_hashes.entry(self.hasher.hash_one(&observation)).or_default();
            if let Some(&slot) = slots.iter().find(|&&slot| self.pending.observations[slot] == observation) {
                let repeats = &mut self.pending_repeats[slot];
                repeats.count += 1;
                if let Some(label) = &label
                    && self.pending_labels[slot].as_ref() != Some(label)
                {
                    repeats.elsewhere.push(label.clone());
                }
                continue;
            }
            slots.push(self.pending.observations.len());
            self.pending_repeats.push(Repeats::default());
            self.pending.push(position, observation);
            self.pending_labels.push(label.clone());
        }
        if self.pending.len() >= self.batch_size {
            self.commit_pending().await?;
        }
        Ok(())
    }

    async fn commit_pending(&mut self) -> Result<(), StoreError> {
        self.wait().await?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let ParsedBatch { observations, positions, .. } = std::mem::take(&mut self.pending);
        let labels = std::mem::take(&mut self.pending_labels);
        self.pending_hashes.clear();
        let repeats = std::mem::take(&mut self.pending_repeats);
        let store = self.store.clone();
        self.in_flight =
            Some(tokio::spawn(async move { (positions, labels, repeats, store.ingest(observations).await) }));
        Ok(())
    }

    async fn wait(&mut self) -> Result<(), StoreError> {
        let Some(commit) = self.in_flight.take() else {
            return Ok(());
        };
        let (positions, labels, repeats, outcome) =
            commit.await.map_err(|error| StoreError::Backend(format!("commit task: {error}")))?;
        let outcome = outcome?;
        // A dropped repeat shares its first copy's fate: accepted or rejected with it (only the
        // first copy's position is listed).
        let repeated_rejections: u64 = outcome.rejected.iter().map(|(index, _)| u64::from(repeats[*index].count)).sum();
        let all_repeats: u64 = repeats.iter().map(|repeats| u64::from(repeats.count)).sum();
        self.summary.accepted += outcome.accepted + all_repeats - repeated_rejections;
        self.summary.rejected += repeated_rejections;
        self.summary.files_touched += outcome.files_touched;
        self.summary.new_files += outcome.new_files;
        self.summary.rejected += outcome.rejected.len() as u64;
        for (index, reason) in outcome.rejected {
            let at = positions.get(index).copied().unwrap_or(Position::Line(0));
            let label = labels.get(index).cloned().flatten();
            // The refusal holds for every copy, in whichever input it was.
            if let Some(repeats) = repeats.get(index) {
                let at_home = u64::from(repeats.count) - repeats.elsewhere.len() as u64;
                if let Some(counts) = label.as_ref().and_then(|label| self.inputs.get_mut(label)) {
                    counts.refused_by_store += 1 + at_home;
                }
                for other in &repeats.elsewhere {
                    if let Some(counts) = self.inputs.get_mut(other) {
                        counts.refused_by_store += 1;
                    }
                }
            }
            let input = label.as_deref().map(str::to_owned);
            self.rejections.push(Rejection { input, ..Rejection::new(at, reason) });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(lines: &[String]) -> ParsedBatch {
        let mut reader = NdjsonReader::new();
        for line in lines {
            reader.push(format!("{line}\n").as_bytes());
        }
        reader.finish();
        reader.take_batch()
    }

    fn line(device: &str, sha1: char, sha256: char) -> String {
        format!(
            r#"{{"tenantId": "t", "deviceId": "{device}", "timestamp": "2026-11-20T13:24:13Z", "sha1": "{}", "sha256": "{}"}}"#,
            sha1.to_string().repeat(40),
            sha256.to_string().repeat(64)
        )
    }

    #[tokio::test]
    async fn each_named_input_is_counted_on_its_own_repeats_and_refusals_included() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::FjallStore::open(dir.path()).unwrap());
        let mut ingestor = Ingestor::new(store, 1000);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a.ndjson"), Arc::from("b.ndjson"));
        // a: two observations and a line that is no JSON.
        let mut from_a = vec![line("d1", 'a', 'b'), line("d2", 'a', 'b')];
        from_a.push("not json".into());
        ingestor.submit_from(Some(a.clone()), parsed(&from_a)).await.unwrap();
        // b: a repeat of a's first, one observation of its own, and one pairing a's SHA-1 with
        // another SHA-256, which the store refuses; then that refused line's repeat in a.
        let from_b = [line("d1", 'a', 'b'), line("d3", 'c', 'd'), line("d4", 'a', 'e')];
        ingestor.submit_from(Some(b.clone()), parsed(&from_b)).await.unwrap();
        ingestor.submit_from(Some(a.clone()), parsed(&[line("d4", 'a', 'e')])).await.unwrap();
        let (total, inputs) = ingestor.finish_by_input().await.unwrap();
        assert_eq!((total.records, total.accepted, total.rejected), (7, 4, 3));
        assert_eq!(inputs[&a], InputSummary { records: 4, accepted: 2, rejected: 2 });
        assert_eq!(inputs[&b], InputSummary { records: 3, accepted: 2, rejected: 1 });
    }
}
