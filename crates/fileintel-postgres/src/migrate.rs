//! Moving an embedded store into PostgreSQL (`fileintel migrate --from-data-dir DIR --to URL`).
//!
//! Everything the embedded store holds moves through the [`Store`] trait: applications, users and
//! signing keys; each file as observations that rebuild its counts and windows exactly
//! ([`FjallStore::export_files`]) and its static facts; feed verdicts; indicators. Progress is
//! kept in `DIR/migrate-progress.json` after every page, so an interrupted move resumes where it
//! stopped (ingestion is idempotent, so the page that was in flight is simply sent again). At
//! the end the file counts of both sides are compared, and a sample of files is compared whole.
//! What the move tells as it goes reaches the caller through [`Report`], so that how it is shown
//! (a progress bar, lines on stderr) stays with the command.

use std::path::{Path, PathBuf};

use fileintel_core::{FileFacts, FileHash};
use fileintel_store::{FjallStore, Store, StoreError};
use serde_json::{Value, json};

use crate::PgStore;

/// The file in the data directory that keeps where a move stands.
const PROGRESS_FILE: &str = "migrate-progress.json";
/// Observations per ingest call into the database.
const OBSERVATIONS_PER_CALL: usize = 20_000;
/// Files compared whole at the end.
const SAMPLE: usize = 1_000;

/// What a move tells as it goes.
pub trait Report {
    /// A stage is done, or something the operator should know: one line.
    fn say(&mut self, line: &str);
    /// Files are being moved: `moved` of `total` so far.
    fn files(&mut self, moved: u64, total: u64);
    /// Every file is moved.
    fn files_done(&mut self);
}

/// Why a move stopped. Run again, it resumes from the progress file.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The progress file could not be read or written.
    #[error("{action} {}", path.display())]
    Progress {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {}", path.display())]
    ProgressText {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the database refused an observation of the page after file {after} ({index}): {reason}")]
    Refused { after: u64, index: usize, reason: String },
    #[error("the counts differ: {ours} files in {}, {theirs} in the database", dir.display())]
    CountsDiffer { ours: u64, theirs: u64, dir: PathBuf },
    #[error("file {hash} differs after the move:\n  here:  {here}\n  there: {there}")]
    Differs { hash: String, here: String, there: String },
}

/// Where a move stands, as kept in the progress file.
struct Progress {
    path: PathBuf,
    state: Value,
}

impl Progress {
    /// The progress of a move from `dir` into the database at `url` (by its address without
    /// credentials); a move into another database starts over.
    fn load(dir: &Path, url: &str) -> Result<Self, MoveError> {
        let path = dir.join(PROGRESS_FILE);
        // What names the target in the progress file, without its password.
        let target = crate::address_without_password(url).unwrap_or_default();
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let state: Value = serde_json::from_slice(&bytes)
                    .map_err(|source| MoveError::ProgressText { path: path.clone(), source })?;
                if state["target"] == target { state } else { json!({"target": target}) }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => json!({"target": target}),
            Err(source) => return Err(MoveError::Progress { action: "reading", path, source }),
        };
        Ok(Progress { path, state })
    }

    fn done(&self, stage: &str) -> bool {
        self.state[stage] == true
    }

    /// Records progress durably (a new file renamed over the old, both synced).
    fn mark(&mut self, key: &str, value: Value) -> Result<(), MoveError> {
        self.state[key] = value;
        let temporary = self.path.with_extension("json.new");
        let mut file = std::fs::File::create(&temporary).map_err(|source| MoveError::Progress {
            action: "writing",
            path: temporary.clone(),
            source,
        })?;
        std::io::Write::write_all(&mut file, self.state.to_string().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &self.path).map_err(|source| MoveError::Progress {
            action: "writing",
            path: self.path.clone(),
            source,
        })?;
        if let Some(parent) = self.path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    }
}

/// Moves everything `source` (the store in `dir`) holds into `target` (the database at `url`),
/// `page` files at a time, resuming a move that stopped.
pub async fn move_store(
    source: &FjallStore,
    target: &PgStore,
    dir: &Path,
    url: &str,
    page: usize,
    report: &mut dyn Report,
) -> Result<(), MoveError> {
    let mut progress = Progress::load(dir, url)?;

    if !progress.done("identity") {
        for application in source.list_applications().await? {
            target.put_application(application).await?;
        }
        for user in source.list_users().await? {
            target.put_user(user).await?;
        }
        let known: Vec<String> = target.signing_keys().await?.into_iter().map(|key| key.kid).collect();
        for key in source.signing_keys().await? {
            if !known.contains(&key.kid) {
                target.add_signing_key(key).await?;
            }
        }
        progress.mark("identity", json!(true))?;
        report.say("moved applications, users and signing keys");
    }

    if !progress.done("files") {
        let total = source.stats().await?.files;
        let mut after = progress.state["files_after"].as_u64().unwrap_or(0);
        let mut moved = progress.state["files_moved"].as_u64().unwrap_or(0);
        report.files(moved, total);
        loop {
            let files = source.export_files(after, page)?;
            let Some(last) = files.last().map(|file| file.id) else { break };
            let mut observations = Vec::new();
            let mut facts = Vec::new();
            for file in &files {
                observations.extend(file.observations.iter().cloned());
                // The record's own size is fileintel's measurement (or, for a file no device saw,
                // what a store written before reports were per tenant kept); tenants' sizes ride
                // on their observations.
                let measured = file.record.size;
                if file.record.facts != FileFacts::default() || measured.is_some() || file.observations.is_empty() {
                    facts.push((file.record.hashes, measured, file.record.facts.clone()));
                }
            }
            // In calls of a bounded size: a popular file alone can bring many observations.
            for chunk in observations.chunks(OBSERVATIONS_PER_CALL) {
                let outcome = target.ingest(chunk.iter().map(without_nul).collect()).await?;
                if let Some((index, reason)) = outcome.rejected.first() {
                    return Err(MoveError::Refused { after, index: *index, reason: reason.clone() });
                }
            }
            for (hashes, size, facts) in facts {
                target.put_facts(hashes, size, facts).await?;
            }
            after = last;
            moved += files.len() as u64;
            progress.mark("files_after", json!(after))?;
            progress.mark("files_moved", json!(moved))?;
            report.files(moved, total);
        }
        report.files_done();
        progress.mark("files", json!(true))?;
        report.say(&format!("moved {moved} files"));
    }

    if !progress.done("verdicts") {
        let mut after: Option<Vec<u8>> = progress.state["verdicts_after"].as_str().and_then(decode_hex);
        let mut moved = 0u64;
        loop {
            let (verdicts, next) = source.export_verdicts(after.as_deref(), page * 10)?;
            moved += verdicts.len() as u64;
            target.put_verdicts(verdicts).await?;
            let Some(next) = next else { break };
            progress.mark("verdicts_after", json!(encode_hex(&next)))?;
            after = Some(next);
        }
        progress.mark("verdicts", json!(true))?;
        report.say(&format!("moved {moved} feed verdicts"));
    }

    if !progress.done("indicators") {
        let indicators = source.export_indicators()?;
        let count = indicators.len();
        // Each keeps its id unless its tenant has another indicator of that id in the database
        // already; those are named. The same tenant, type and value again updates in place:
        // sending them twice is harmless.
        for indicator in indicators {
            let (tenant, id) = (indicator.tenant.clone(), indicator.id.clone());
            let stored = target.import_indicator(indicator).await?;
            if stored.id != id {
                report.say(&format!(
                    "indicator {id} of tenant {tenant} is {} in the database: the id was taken",
                    stored.id
                ));
            }
        }
        progress.mark("indicators", json!(true))?;
        report.say(&format!("moved {count} indicators"));
    }

    // The check: the same number of files, and a sample of them the same, whole.
    let (ours, theirs) = (source.stats().await?.files, target.stats().await?.files);
    if ours != theirs {
        return Err(MoveError::CountsDiffer { ours, theirs, dir: dir.to_owned() });
    }
    let mut compared = 0;
    let step = (ours as usize / SAMPLE).max(1);
    let mut after = 0;
    'pages: loop {
        let files = source.export_files(after, page)?;
        let Some(last) = files.last().map(|file| file.id) else { break };
        for file in files.iter().step_by(step) {
            let Some(hash) =
                file.record.hashes.sha256.map(FileHash::Sha256).or(file.record.hashes.sha1.map(FileHash::Sha1))
            else {
                continue;
            };
            let moved = target.get_file(hash).await?;
            if moved.as_ref() != Some(&file.record) {
                return Err(MoveError::Differs {
                    hash: hash.to_string(),
                    here: format!("{:?}", file.record),
                    there: format!("{moved:?}"),
                });
            }
            compared += 1;
            if compared >= SAMPLE {
                break 'pages;
            }
        }
        after = last;
    }
    report.say(&format!("checked: {ours} files on both sides; {compared} compared whole, all equal"));
    progress.mark("checked", json!(true))?;
    Ok(())
}

/// An observation with every NUL character in its text replaced by U+FFFD: the embedded store
/// keeps NULs, PostgreSQL's text cannot, and a store must move whole.
fn without_nul(observation: &fileintel_core::Observation) -> fileintel_core::Observation {
    let clean = |text: &str| text.replace('\0', "\u{fffd}");
    let optional = |text: &Option<String>| text.as_deref().map(clean);
    let mut observation = observation.clone();
    observation.tenant_id = clean(&observation.tenant_id);
    observation.device_id = clean(&observation.device_id);
    observation.device_name = optional(&observation.device_name);
    observation.file_name = optional(&observation.file_name);
    observation.folder_path = optional(&observation.folder_path);
    observation.os_platform = optional(&observation.os_platform);
    observation
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len()).step_by(2).map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_named_without_its_password() {
        use crate::address_without_password as named;
        assert_eq!(named("postgres://app:s3cret@db:5432/fi").as_deref(), Some("postgres://app@db:5432/fi"));
        // The port the address means, given or not.
        assert_eq!(named("postgres://db/fi").as_deref(), Some("postgres://db:5432/fi"));
        assert_eq!(
            named("postgres://app@db/fi?password=s3cret&sslmode=require").as_deref(),
            Some("postgres://app@db:5432/fi")
        );
        for spelled in ["host=db password=s3cret dbname=fi", "host=db password = 's3cret x' dbname=fi"] {
            assert_eq!(named(spelled).as_deref(), Some("postgres://db:5432/fi"), "{spelled}");
        }
        assert_eq!(named("postgres://a@h1:1,h2:2/fi").as_deref(), Some("postgres://a@h1:1,h2:2/fi"));
        assert_eq!(decode_hex(&encode_hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
    }
}
