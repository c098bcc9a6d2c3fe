//! `POST /api/ingest/observations[?format=...]`: observations in any format fileintel reads,
//! streamed through the store as they arrive. Without `format` (or with `format=auto`) the
//! format is told from the body's first bytes, as `fileintel ingest` tells a file's; a body that
//! fits no format is read as native NDJSON, so its lines are rejected one by one.

use std::io::Read;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::routing::post;
use bytes::Bytes;
use fileintel_core::IngestSummary;
use fileintel_store::Ingestor;
use fileintel_store::pipeline::DEFAULT_BATCH;
use fileintel_telemetry::Format;
use futures_util::StreamExt;

use crate::AppState;
use crate::auth::{Authenticated, FILE_READ_WRITE_ALL};
use crate::error::ApiError;
use crate::import::{Failure, Opened, decode_into};
use crate::routes::Routes;

pub(crate) fn routes() -> Routes {
    Routes::new().limited("/api/ingest/observations", "ingest", post(post_observations))
}

/// What the query says of the body's format.
enum Requested {
    /// `format=NAME`: that format, whatever the content.
    Named(Format),
    /// `format=auto`: told from the content, and a body that fits no format is refused.
    Auto,
    /// No `format`: told from the content, and a body that fits no format is read as NDJSON,
    /// so that its lines are rejected one by one with their numbers.
    Unspecified,
}

fn requested_format(query: Option<&str>) -> Result<Requested, ApiError> {
    Ok(match crate::odata::query_param(query, "format") {
        None => Requested::Unspecified,
        Some(value) if value.eq_ignore_ascii_case("auto") => Requested::Auto,
        Some(value) => Requested::Named(
            value.parse::<Format>().map_err(|message| ApiError::BadRequest { code: "InvalidInput", message })?,
        ),
    })
}

/// How much of the body is read before its format is told: the first line of a JSON format, or
/// this much of a body without one (an event log's magic is its first 8 bytes).
const DETECT_PREFIX: usize = 64 * 1024;

/// Whether the request's `Content-Length` already says its body is over `limit`, so that it can
/// be refused before a byte is read.
pub(crate) fn declared_over(headers: &HeaderMap, limit: u64) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .is_some_and(|length| length > limit)
}

/// The body as a blocking reader, for decoders that pull (event logs, CSV).
struct BodyReader {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let length = buffer.len().min(self.current.len());
        buffer[..length].copy_from_slice(&self.current.split_to(length));
        Ok(length)
    }
}

/// Commits in batches as the body streams in and answers, once everything is durable, with the
/// summary: counts and every rejected record's position and reason.
async fn post_observations(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<IngestSummary>, ApiError> {
    caller.require_role(FILE_READ_WRITE_ALL)?;
    let _permit = state.upload_permit()?;
    let format = requested_format(query.as_deref())?;
    let limit = state.config.max_ingest_bytes;
    if declared_over(&headers, limit) {
        return Err(ApiError::PayloadTooLarge(format!("The body exceeds the ingestion limit of {limit} bytes.")));
    }
    // A tenant's token writes that tenant's observations only.
    let scope = caller.tenant().map(str::to_owned);
    let batch_size = DEFAULT_BATCH.min(state.config.ingest_batch);
    let mut ingestor = Ingestor::scoped(state.store.clone(), batch_size, scope.clone())
        .with_clock_skew(state.config.clock_skew_seconds);
    let too_large = |ingestor: &Ingestor| {
        let committed = ingestor.progress().accepted;
        ApiError::PayloadTooLarge(format!(
            "The body exceeds the ingestion limit of {limit} bytes; {committed} observations before the limit were stored."
        ))
    };
    // Fused: detection may have read to the end before the rest of the body is asked for.
    let mut stream = body.into_data_stream().fuse();
    let mut received: u64 = 0;
    // The first bytes, enough to tell the format when the query names none.
    let mut prefix = Vec::new();
    if !matches!(format, Requested::Named(_)) {
        while prefix.len() < DETECT_PREFIX && (prefix.len() < 8 || !prefix.contains(&b'\n')) {
            match next_chunk(&mut stream, &mut received).await? {
                Some(chunk) => prefix.extend_from_slice(&chunk),
                None => break,
            }
        }
    }
    // `None`: the decoder tells the format itself, and refuses a body that fits none.
    let format = match format {
        Requested::Named(format) => Some(format),
        Requested::Auto => None,
        Requested::Unspecified => Some(fileintel_telemetry::detect(&prefix).unwrap_or(Format::Ndjson)),
    };
    if received > limit {
        return Err(too_large(&ingestor));
    }
    if format == Some(Format::Ndjson) {
        ingestor.push(&prefix).await?;
        while let Some(chunk) = next_chunk(&mut stream, &mut received).await? {
            if received > limit {
                return Err(too_large(&ingestor));
            }
            ingestor.push(&chunk).await?;
        }
        return Ok(Json(ingestor.finish().await?));
    }

    // Other formats decode on a blocking thread that reads the body as it arrives.
    let (chunk_sender, chunks) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let prefix = Bytes::from(prefix);
    let pump = tokio::spawn(async move {
        if !prefix.is_empty() && chunk_sender.send(Ok(prefix)).await.is_err() {
            return Ok(());
        }
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    let message = format!("The request body could not be read: {error}");
                    let _ = chunk_sender.send(Err(std::io::Error::other(message.clone()))).await;
                    return Err(ApiError::bad_request(message));
                }
            };
            received += chunk.len() as u64;
            if received > limit {
                let _ = chunk_sender.send(Err(std::io::Error::other("body over the limit"))).await;
                return Err(ApiError::PayloadTooLarge(String::new()));
            }
            if chunk_sender.send(Ok(chunk)).await.is_err() {
                break;
            }
        }
        Ok(())
    });
    let reader = BodyReader { chunks, current: Bytes::new() };
    let open = move |reader: BodyReader| {
        let opened = match fileintel_telemetry::decoder(format, reader, scope.clone()) {
            Ok(decoder) => Opened::Decode(decoder),
            Err(error) => Opened::Refuse(error.to_string()),
        };
        (None, opened)
    };
    let decoded = decode_into(&mut ingestor, vec![reader], 1, batch_size, open, Arc::default(), |_| {}).await?;
    match pump.await.map_err(|error| ApiError::Internal(format!("body task: {error}")))? {
        Err(ApiError::PayloadTooLarge(_)) => return Err(too_large(&ingestor)),
        Err(error) => return Err(error),
        Ok(()) => {}
    }
    match decoded.failed.into_iter().next() {
        Some((_, Failure::Open(message))) => Err(ApiError::BadRequest { code: "InvalidRequestBody", message }),
        Some((_, Failure::Read(error))) => {
            Err(ApiError::bad_request(format!("The request body could not be read: {error}")))
        }
        None => Ok(Json(ingestor.finish().await?)),
    }
}

/// The body's next chunk, counted into `received`.
async fn next_chunk(
    stream: &mut (impl futures_util::Stream<Item = Result<Bytes, axum::Error>> + Unpin),
    received: &mut u64,
) -> Result<Option<Bytes>, ApiError> {
    let Some(chunk) = stream.next().await else { return Ok(None) };
    let chunk = chunk.map_err(|error| ApiError::bad_request(format!("The request body could not be read: {error}")))?;
    *received += chunk.len() as u64;
    Ok(Some(chunk))
}
