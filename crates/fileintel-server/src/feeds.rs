//! `POST /api/feeds/import?source=NAME&format=FORMAT`: a threat-intelligence feed as the body,
//! read into verdicts of the configured source `NAME` and recorded; needs `Ti.ReadWrite.All`.
//! Answers what was taken and what was rejected, where and why. With `mode=replace` the body is
//! the whole feed: what the source said before about hashes it no longer lists stops speaking.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::json;

use std::collections::HashSet;

use fileintel_core::{FileHash, FileHashes, Verdict, VerdictSource};
use fileintel_store::{Store, StoreError};

use crate::AppState;
use crate::auth::{Authenticated, TI_READ_WRITE_ALL};
use crate::error::ApiError;
use crate::odata::{odata_value, query_param};
use crate::routes::Routes;

/// Verdicts recorded per store call, so that a feed of millions never sits in one commit.
const CHUNK: usize = 10_000;

/// What one input of an import came to.
#[derive(Debug)]
pub struct Imported {
    /// Verdicts the input gave.
    pub taken: usize,
    /// Of those, how many were new or replaced one.
    pub changed: u64,
    /// The input's records that could not be read, where and why.
    pub rejections: Vec<fileintel_core::Rejection>,
}

/// Whether an import adds to what a source said or is the whole of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// What the import lists is added; what it does not list keeps speaking.
    #[default]
    Add,
    /// The import is the whole feed: the source's verdicts about hashes it does not list end
    /// when it is finished (kept as history in `/determinations`).
    Replace,
}

/// One import of a feed, of one or several inputs, into a store: the use case that
/// `fileintel feeds import` and `POST /api/feeds/import` share.
pub struct FeedImport<'a> {
    store: &'a dyn Store,
    /// The source as configured, whose labels and rank make the verdicts.
    configured: fileintel_feeds::Source,
    source: VerdictSource,
    mode: ImportMode,
    /// Every hash the import listed, for `Replace`.
    listed: HashSet<FileHash>,
    /// Records the inputs held that could not be read: a hash among them may still be listed.
    rejected: usize,
    /// How many verdicts were new or replaced one.
    pub changed: u64,
}

impl<'a> FeedImport<'a> {
    /// An import into `source` by `writer`; refused, saying why, when the source's configuration
    /// does not name the writer (a feed speaks to every tenant).
    pub fn new(
        store: &'a dyn Store,
        source: &fileintel_feeds::Source,
        writer: &fileintel_feeds::Writer,
        mode: ImportMode,
    ) -> Result<Self, String> {
        source.check_writer(writer)?;
        let configured = source.clone();
        let source = source.verdict_source();
        Ok(FeedImport { store, configured, source, mode, listed: HashSet::new(), rejected: 0, changed: 0 })
    }

    /// Reads one input of the feed (on a blocking thread: a feed may be large) and records its
    /// verdicts: how many it gave, how many of those changed, and its records that were rejected.
    pub async fn import(&mut self, format: fileintel_feeds::Format, bytes: Vec<u8>) -> Result<Imported, StoreError> {
        let source = self.configured.clone();
        let (verdicts, rejections) = tokio::task::spawn_blocking(move || {
            fileintel_feeds::verdicts(&source, fileintel_feeds::read(format, &bytes))
        })
        .await
        .map_err(|error| StoreError::Backend(format!("the feed task: {error}")))?;
        let (taken, before) = (verdicts.len(), self.changed);
        self.record(verdicts, rejections.len()).await?;
        Ok(Imported { taken, changed: self.changed - before, rejections })
    }

    /// Records verdicts read from one input, in commits of [`CHUNK`], and how many of its
    /// records were rejected.
    async fn record(&mut self, verdicts: Vec<(FileHashes, Verdict)>, rejected: usize) -> Result<(), StoreError> {
        self.rejected += rejected;
        if self.mode == ImportMode::Replace {
            for (hashes, _) in &verdicts {
                self.listed.extend(hashes.iter());
            }
        }
        let mut verdicts = verdicts.into_iter().peekable();
        while verdicts.peek().is_some() {
            self.changed += self.store.put_verdicts(verdicts.by_ref().take(CHUNK).collect()).await?;
        }
        Ok(())
    }

    /// Ends the import: with `Replace`, what the source said about hashes no input listed stops
    /// speaking now. Returns how many verdicts that ended, or why nothing was ended: an import
    /// with a rejected record, or with no record at all, is not known to be the whole feed (a
    /// record that could not be read may name a hash the feed still lists), so it ends nothing.
    pub async fn finish(self) -> Result<Result<u64, String>, StoreError> {
        match self.mode {
            ImportMode::Add => Ok(Ok(0)),
            ImportMode::Replace if self.rejected > 0 => Ok(Err(format!(
                "not replaced: {} records were rejected, and may name hashes the feed still lists; nothing was ended",
                self.rejected
            ))),
            ImportMode::Replace if self.listed.is_empty() => {
                Ok(Err("not replaced: the import lists no hash; nothing was ended".to_owned()))
            }
            ImportMode::Replace => Ok(Ok(self
                .store
                .end_unlisted_verdicts(&self.source, &self.listed, fileintel_core::Timestamp::now())
                .await?)),
        }
    }
}

pub(crate) fn routes() -> Routes {
    Routes::new().limited("/api/feeds/import", "feeds", post(post_import))
}

async fn post_import(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require_role(TI_READ_WRITE_ALL)?;
    let _permit = state.upload_permit()?;
    let writer = fileintel_feeds::Writer::Tenant(caller.tenant_or_default().to_owned());
    import_request(&state, &writer, &headers, query.as_deref(), body).await
}

/// One import request, from a tenant (`POST /api/feeds/import`) or the operator (the admin
/// socket's `POST /admin/feeds/import`): the query names the format, source and mode, the body
/// is the feed.
pub(crate) async fn import_request(
    state: &AppState,
    writer: &fileintel_feeds::Writer,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
) -> Result<Response, ApiError> {
    let format: fileintel_feeds::Format = query_param(query, "format")
        .ok_or_else(|| ApiError::bad_request("Name the feed's format: ?format=csv, bazaar-csv, stix or misp."))?
        .parse()
        .map_err(ApiError::bad_request)?;
    let name = query_param(query, "source").ok_or_else(|| ApiError::bad_request("Name the feed: ?source=NAME."))?;
    let source = state.config.feed_sources.iter().find(|source| source.name == name).cloned().ok_or_else(|| {
        ApiError::bad_request(format!("The feed source '{name}' is not configured (--feed-sources)."))
    })?;
    let mode = match query_param(query, "mode") {
        None | Some("add") => ImportMode::Add,
        Some("replace") => ImportMode::Replace,
        Some(other) => {
            return Err(ApiError::bad_request(format!("mode is add (the default) or replace, not '{other}'.")));
        }
    };
    // Refused before the body is read: a writer the source does not name gets a 403.
    let mut import = FeedImport::new(state.store.as_ref(), &source, writer, mode).map_err(ApiError::Forbidden)?;
    let limit = state.config.max_feed_bytes;
    if crate::ingest::declared_over(headers, limit) {
        return Err(ApiError::PayloadTooLarge(format!("The feed exceeds the limit of {limit} bytes.")));
    }
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|error| ApiError::bad_request(format!("The request body could not be read: {error}")))?;
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::PayloadTooLarge(format!("The feed exceeds the limit of {limit} bytes.")));
        }
        bytes.extend_from_slice(&chunk);
    }
    let Imported { taken, changed, rejections } = import.import(format, bytes).await?;
    let (ended, not_replaced) = match import.finish().await? {
        Ok(ended) => (ended, None),
        Err(reason) => (0, Some(reason)),
    };
    let body = json!({"source": name, "taken": taken, "changed": changed, "ended": ended,
        "notReplaced": not_replaced, "rejected": rejections});
    Ok(odata_value(&body))
}
