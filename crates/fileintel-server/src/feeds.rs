//! `POST /api/feeds/import?source=NAME&format=FORMAT`: a threat-intelligence feed as the body,
//! read into verdicts of the configured source `NAME` and recorded; needs `Ti.ReadWrite.All`.
//! Answers what was taken and what was rejected, where and why.

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::json;

use crate::AppState;
use crate::auth::{Authenticated, TI_READ_WRITE_ALL};
use crate::error::ApiError;
use crate::files::{odata_value, query_param};

/// Verdicts recorded per store call.
const CHUNK: usize = 10_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/feeds/import", post(post_import))
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
    let query = query.as_deref();
    let format: fileintel_feeds::Format = query_param(query, "format")
        .ok_or_else(|| ApiError::bad_request("Name the feed's format: ?format=csv, bazaar-csv, stix or misp."))?
        .parse()
        .map_err(ApiError::bad_request)?;
    let name = query_param(query, "source").ok_or_else(|| ApiError::bad_request("Name the feed: ?source=NAME."))?;
    let source = state.config.feed_sources.iter().find(|source| source.name == name).cloned().ok_or_else(|| {
        ApiError::bad_request(format!("The feed source '{name}' is not configured (--feed-sources)."))
    })?;
    let limit = state.config.max_feed_bytes;
    if crate::ingest::declared_over(&headers, limit) {
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
    let (verdicts, rejections) =
        tokio::task::spawn_blocking(move || fileintel_feeds::verdicts(&source, fileintel_feeds::read(format, &bytes)))
            .await
            .map_err(|error| ApiError::Internal(format!("feed task: {error}")))?;
    let taken = verdicts.len();
    let mut changed = 0;
    let mut verdicts = verdicts.into_iter().peekable();
    while verdicts.peek().is_some() {
        changed += state.store.put_verdicts(verdicts.by_ref().take(CHUNK).collect()).await?;
    }
    let body = json!({"source": name, "taken": taken, "changed": changed, "rejected": rejections});
    Ok(odata_value(&body))
}
