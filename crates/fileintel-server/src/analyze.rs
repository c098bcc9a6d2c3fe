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
        .and_then(|record| record.seen_by(caller.viewer(&state)))
        .ok_or_else(|| ApiError::Internal("the analysed file was not recorded".into()))?;
    let mut entity = crate::files::entity_value(&state, &caller, &headers, record).await?;
    entity["analysis"] = serde_json::to_value(&analysis)
        .map_err(|error| ApiError::Internal(format!("serializing the analysis: {error}")))?;
    Ok(crate::odata::odata_value(&entity))
}

/// Analyses files on `jobs` threads (0: one per CPU) and hands each analysis (or why the file could not be read)
/// to `each` in the order named, on the calling thread; an error from `each` stops the rest.
/// The use case of `fileintel analyze`.
pub fn analyze_files<E>(
    analyzer: &fileintel_analysis::Analyzer,
    paths: &[std::path::PathBuf],
    jobs: usize,
    mut each: impl FnMut(&std::path::Path, Result<fileintel_analysis::Analysis, String>) -> Result<(), E>,
) -> Result<(), E> {
    let jobs = crate::import::one_per_cpu_if_none(jobs);
    let queue = std::sync::Mutex::new(paths.iter().enumerate());
    type Analysed<'a> = (usize, (&'a std::path::Path, Result<fileintel_analysis::Analysis, String>));
    let (sender, results) = std::sync::mpsc::sync_channel::<Analysed>(2 * jobs);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let (queue, sender) = (&queue, sender.clone());
            scope.spawn(move || {
                while let Some((index, path)) = queue.lock().ok().and_then(|mut queue| queue.next()) {
                    let analysis = analyze_file(analyzer, path);
                    if sender.send((index, (path.as_path(), analysis))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        // Files finish in any order and are handed over in the order named.
        for (path, analysis) in in_order(results) {
            each(path, analysis)?;
        }
        Ok(())
    })
}

/// Maps a file for analysis: its pages are read as they are touched and can be dropped again,
/// so memory stays bounded however large the file.
fn analyze_file(
    analyzer: &fileintel_analysis::Analyzer,
    path: &std::path::Path,
) -> Result<fileintel_analysis::Analysis, String> {
    let file = std::fs::File::open(path).map_err(|error| format!("opening {}: {error}", path.display()))?;
    let length = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    if length == 0 {
        return Ok(analyzer.analyze(&[]));
    }
    // Safety: the mapping is read-only and private to this process; a file truncated by another
    // process while mapped would fault, which is the accepted trade of mapping (as in ripgrep).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|error| format!("mapping {}: {error}", path.display()))?;
    Ok(analyzer.analyze(&map))
}

/// Items numbered from 0 that arrive in any order, in their order. Those that arrive early wait
/// here: a few kilobytes each for analyses, while the channel they come through stays bounded.
fn in_order<T>(items: impl IntoIterator<Item = (usize, T)>) -> impl Iterator<Item = T> {
    let mut items = items.into_iter();
    let mut early = std::collections::BTreeMap::new();
    let mut next = 0;
    std::iter::from_fn(move || {
        loop {
            if let Some(item) = early.remove(&next) {
                next += 1;
                return Some(item);
            }
            match items.next() {
                Some((index, item)) => early.insert(index, item),
                // A number that never came (its worker died) holds up no others.
                None => return early.pop_first().map(|(_, item)| item),
            };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_items_come_out_in_order_and_a_missing_number_holds_up_none() {
        let items = [(2, 'c'), (0, 'a'), (4, 'e'), (1, 'b')];
        assert_eq!(in_order(items).collect::<String>(), "abce");
    }

    #[test]
    fn files_are_handed_over_in_the_order_named_and_an_unreadable_one_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for index in 0..20 {
            let path = dir.path().join(format!("file{index}"));
            std::fs::write(&path, vec![index as u8; index * 1000]).unwrap();
            paths.push(path);
        }
        paths.insert(5, dir.path().join("missing"));
        let mut seen = Vec::new();
        analyze_files(&fileintel_analysis::Analyzer::default(), &paths, 4, |path, analysis| {
            seen.push((path.to_owned(), analysis.map(|analysis| analysis.size)));
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(seen.iter().map(|(path, _)| path.clone()).collect::<Vec<_>>(), paths);
        assert_eq!(seen[6].1, Ok(5000));
        assert!(seen[5].1.as_ref().is_err_and(|error| error.starts_with("opening ")), "{:?}", seen[5]);
    }
}
