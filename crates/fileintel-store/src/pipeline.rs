//! Feeding parsed observations into any [`Store`]: one batch commits while the next is parsed.
//! `fileintel ingest` and `POST /api/ingest/observations` both go through here, whatever the format.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use fileintel_core::{IngestSummary, NdjsonReader, ParsedBatch, Position, Rejection, RejectionList};
use tokio::task::JoinHandle;

use crate::{IngestOutcome, Store, StoreError};

/// Observations per commit: large enough to amortise the fsync, small enough to bound memory.
pub const DEFAULT_BATCH: usize = 50_000;

type Labels = Vec<Option<Arc<str>>>;
/// A commit in flight: positions and inputs of its observations, how many exact duplicates of
/// them were dropped before it, and the store's answer.
type Commit = JoinHandle<(Vec<Position>, Labels, Vec<u32>, Result<IngestOutcome, StoreError>)>;

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
    /// Per pending observation, how many exact repeats of it were dropped.
    pending_repeats: Vec<u32>,
    /// Seeded at random per ingestor, so crafted input cannot aim for collisions.
    hasher: ahash::RandomState,
    started: Instant,
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
            hasher: Default::default(),
            started: Instant::now(),
        }
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
    pub async fn finish(mut self) -> Result<IngestSummary, StoreError> {
        self.reader.finish();
        let batch = self.reader.take_batch();
        self.submit(batch).await?;
        self.commit_pending().await?;
        self.wait().await?;
        let summary = std::mem::take(&mut self.summary);
        let (rejections, omitted) = std::mem::take(&mut self.rejections).into_parts();
        Ok(summary.finish(rejections, omitted, self.started.elapsed().as_secs_f64()))
    }

    /// Commits a batch parsed elsewhere (by an importer), after the previous one is durable.
    pub async fn submit(&mut self, batch: ParsedBatch) -> Result<(), StoreError> {
        self.submit_from(None, batch).await
    }

    /// Takes a batch read from the input `label`. Batches of small inputs are gathered until a
    /// commit's worth, so that a thousand small files do not cost a thousand syncs.
    pub async fn submit_from(&mut self, label: Option<Arc<str>>, batch: ParsedBatch) -> Result<(), StoreError> {
        let ParsedBatch { observations, positions, rejections, records } = batch;
        self.summary.records += records;
        self.summary.rejected += rejections.len() as u64;
        for mut rejection in rejections {
            rejection.input = label.as_deref().map(str::to_owned);
            self.rejections.push(rejection);
        }
        for (observation, position) in observations.into_iter().zip(positions) {
            let slots = self.pending_hashes.entry(self.hasher.hash_one(&observation)).or_default();
            if let Some(&slot) = slots.iter().find(|&&slot| self.pending.observations[slot] == observation) {
                self.pending_repeats[slot] += 1;
                continue;
            }
            slots.push(self.pending.observations.len());
            self.pending_repeats.push(0);
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
        let repeated_rejections: u64 = outcome.rejected.iter().map(|(index, _)| u64::from(repeats[*index])).sum();
        let all_repeats: u64 = repeats.iter().map(|&count| u64::from(count)).sum();
        self.summary.accepted += outcome.accepted + all_repeats - repeated_rejections;
        self.summary.rejected += repeated_rejections;
        self.summary.files_touched += outcome.files_touched;
        self.summary.new_files += outcome.new_files;
        self.summary.rejected += outcome.rejected.len() as u64;
        for (index, reason) in outcome.rejected {
            let at = positions.get(index).copied().unwrap_or(Position::Line(0));
            let input = labels.get(index).cloned().flatten().as_deref().map(str::to_owned);
            self.rejections.push(Rejection { input, ..Rejection::new(at, reason) });
        }
        Ok(())
    }
}
