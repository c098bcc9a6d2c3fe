//! `POST /api/ingest/observations`: NDJSON observations, streamed through the store as they arrive.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use fileintel_core::IngestSummary;
use fileintel_store::Ingestor;
use fileintel_store::pipeline::DEFAULT_BATCH;
use futures_util::StreamExt;

use crate::AppState;
use crate::auth::{Authenticated, FILE_READ_WRITE_ALL};
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/ingest/observations", post(post_observations))
}

/// Commits in batches as the body streams in and answers, once everything is durable, with the
/// summary: counts and every rejected line's number and reason.
async fn post_observations(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestSummary>, ApiError> {
    caller.require_role(FILE_READ_WRITE_ALL)?;
    let limit = state.config.max_ingest_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge(format!("The body exceeds the ingestion limit of {limit} bytes.")));
    }
    // A tenant's token writes that tenant's observations only.
    let scope = caller.0.as_ref().map(|caller| caller.tenant.clone());
    let mut ingestor = Ingestor::scoped(state.store.clone(), DEFAULT_BATCH.min(state.config.ingest_batch), scope);
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|error| ApiError::bad_request(format!("The request body could not be read: {error}")))?;
        received += chunk.len() as u64;
        if received > limit {
            let committed = ingestor.progress().accepted;
            return Err(ApiError::PayloadTooLarge(format!(
                "The body exceeds the ingestion limit of {limit} bytes; {committed} observations before the limit were stored."
            )));
        }
        ingestor.push(&chunk).await?;
    }
    Ok(Json(ingestor.finish().await?))
}
