//! Feeding NDJSON into any [`Store`]: parse one batch while the previous one commits.
//! Both `fileintel ingest` and `POST /api/ingest/observations` go through here.

use std::sync::Arc;
use std::time::Instant;

use fileintel_core::{IngestSummary, NdjsonReader, ParsedBatch};
use tokio::task::JoinHandle;

use crate::{IngestOutcome, Store, StoreError};

/// Observations per commit: large enough to amortise the fsync, small enough to bound memory.
pub const DEFAULT_BATCH: usize = 50_000;

type Commit = JoinHandle<(Vec<u64>, Result<IngestOutcome, StoreError>)>;

/// An import in progress. Push bytes, then [`Ingestor::finish`] for the summary; nothing is
/// counted as accepted before the store has made it durable.
pub struct Ingestor {
    store: Arc<dyn Store>,
    reader: NdjsonReader,
    batch_size: usize,
    in_flight: Option<Commit>,
    summary: IngestSummary,
    started: Instant,
}

impl Ingestor {
    pub fn new(store: Arc<dyn Store>, batch_size: usize) -> Self {
        Self::scoped(store, batch_size, None)
    }

    /// An import on behalf of a caller confined to `tenant`: lines naming another are rejected.
    pub fn scoped(store: Arc<dyn Store>, batch_size: usize, tenant: Option<String>) -> Self {
        Ingestor {
            store,
            reader: NdjsonReader::scoped(tenant),
            batch_size: batch_size.max(1),
            in_flight: None,
            summary: IngestSummary::default(),
            started: Instant::now(),
        }
    }

    /// Consumes a chunk of input, committing full batches as they fill.
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
        self.wait().await?;
        let mut summary = std::mem::take(&mut self.summary);
        summary.rejected = self.reader.rejected;
        let rejections = std::mem::take(&mut self.reader.rejections);
        Ok(summary.finish(rejections, self.started.elapsed().as_secs_f64()))
    }

    async fn submit(&mut self, batch: ParsedBatch) -> Result<(), StoreError> {
        self.wait().await?;
        if batch.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let ParsedBatch { observations, lines } = batch;
        self.in_flight = Some(tokio::spawn(async move { (lines, store.ingest(observations).await) }));
        Ok(())
    }

    async fn wait(&mut self) -> Result<(), StoreError> {
        let Some(commit) = self.in_flight.take() else {
            return Ok(());
        };
        let (lines, outcome) = commit.await.map_err(|error| StoreError::Backend(format!("commit task: {error}")))?;
        let outcome = outcome?;
        self.summary.accepted += outcome.accepted;
        self.summary.files_touched += outcome.files_touched;
        self.summary.new_files += outcome.new_files;
        for (index, reason) in outcome.rejected {
            let line = lines.get(index).copied().unwrap_or_default();
            self.reader.reject(line, reason);
        }
        self.summary.rejected = self.reader.rejected;
        Ok(())
    }
}
