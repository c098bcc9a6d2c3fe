//! `POST /api/files/analyze`: a file's bytes in the body, hashed as they stream in and spooled to
//! an anonymous temporary file (gone when the request ends); the file is then analysed, the
//! results recorded, and the File entity answered with the analysis beside it (`analysis`: what
//! `fileintel analyze` prints of a file, its PE facts and every signature).

use std::io::Write;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use fileintel_analysis::Digests;
use fileintel_core::FileHash;
use futures_util::StreamExt;

use crate::AppState;
use crate::auth::{Authenticated, FILE_READ_WRITE_ALL};
use crate::error::ApiError;
use crate::routes::Routes;

pub(crate) fn routes() -> Routes {
    Routes::new().limited("/api/files/analyze", "analyze", post(post_analyze))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!("The file exceeds the analysis limit of {limit} bytes."))
}

/// Copies the spooled body into `dir/{sha256}`, durably, unless a file of that name is there.
fn keep_file(spool: &mut std::fs::File, dir: &std::path::Path, sha256: &str) -> std::io::Result<()> {
    use std::io::Seek;
    let target = dir.join(sha256);
    if target.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    spool.rewind()?;
    let mut kept = tempfile::NamedTempFile::new_in(dir)?;
    std::io::copy(spool, kept.as_file_mut())?;
    kept.as_file().sync_all()?;
    kept.persist(&target).map_err(|error| error.error)?;
    std::fs::File::open(dir)?.sync_all()
}

async fn post_analyze(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require_role(FILE_READ_WRITE_ALL)?;
    let _permit = state.upload_permit()?;
    let limit = state.config.max_analyze_bytes;
    if crate::ingest::declared_over(&headers, limit) {
        return Err(too_large(limit));
    }
    let internal = |what: &str, error: std::io::Error| ApiError::Internal(format!("{what}: {error}"));
    let mut spool = tempfile::tempfile().map_err(|error| internal("creating the spool file", error))?;
    let mut digests = Digests::new();
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|error| ApiError::bad_request(format!("The request body could not be read: {error}")))?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(too_large(limit));
        }
        digests.update(&chunk);
        spool.write_all(&chunk).map_err(|error| internal("spooling the body", error))?;
    }
    let hashes = digests.hashes();
    let analyzer = state.config.analyzer.clone();
    let keep = state.config.keep_analyzed.clone();
    let analysis = tokio::task::spawn_blocking(move || -> std::io::Result<fileintel_analysis::Analysis> {
        let analysis = if received == 0 {
            analyzer.analyze_hashed(&[], hashes)
        } else {
            // Safety: the spool file is private to this request (unnamed, never shared), so
            // nothing else can change it while it is mapped.
            let map = unsafe { memmap2::Mmap::map(&spool) }?;
            analyzer.analyze_hashed(&map, hashes)
        };
        if let (Some(dir), Some(sha256)) = (keep, analysis.hashes.sha256) {
            keep_file(&mut spool, &dir, &sha256.to_string())?;
        }
        Ok(analysis)
    })
    .await
    .map_err(|error| ApiError::Internal(format!("analysis task: {error}")))?
    .map_err(|error| internal("analysing the spooled file", error))?;
    state.store.put_facts(analysis.hashes, Some(analysis.size), analysis.facts()).await?;
    let sha256 = analysis.hashes.sha256.ok_or_else(|| ApiError::Internal("no SHA-256".into()))?;
    let record = state
        .store
        .get_file(FileHash::Sha256(sha256))
        .await?
        .ok_or_else(|| ApiError::Internal("the analysed file was not recorded".into()))?;
    let mut entity = crate::files::entity_value(&state, &caller, &headers, record).await?;
    entity["analysis"] = serde_json::to_value(&analysis)
        .map_err(|error| ApiError::Internal(format!("serializing the analysis: {error}")))?;
    Ok(crate::odata::odata_value(&entity))
}
