//! Importing observations: inputs decoded on blocking threads, their batches stored through one
//! [`Ingestor`]. [`decode_into`] is the pump that `fileintel ingest` (files, [`ingest_files`])
//! and `POST /api/ingest/observations` (a request body) share.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fileintel_core::{IngestSummary, ParsedBatch, Position, Rejection};
use fileintel_store::pipeline::InputSummary;
use fileintel_store::{Ingestor, Store, StoreError};
use fileintel_telemetry::{Decoder, Format, OpenError};

/// What opening one input came to.
pub enum Opened {
    /// Its decoder.
    Decode(Box<dyn Decoder>),
    /// It cannot be read: reported as a rejection of the input (at its start), and the others
    /// go on.
    Refuse(String),
    /// It is not to be imported (a file in a folder that is of another format): not read, and
    /// reported as skipped, with the reason.
    Skip(String),
}

/// Why an input stopped before its end; it is reported as a rejection of the input too.
#[derive(Debug)]
pub enum Failure {
    /// It could not be opened (the [`Opened::Refuse`] reason).
    Open(String),
    /// Reading it failed partway: what was read before stays imported.
    Read(std::io::Error),
}

/// What the decoders have done so far, read while the import runs (for a progress line).
#[derive(Debug, Default)]
pub struct Progress {
    /// Records read.
    pub records: AtomicU64,
    /// Observations handed to the ingestor.
    pub observations: AtomicU64,
}

/// What [`decode_into`] met beside the observations it stored.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Inputs that stopped early, by label, with why.
    pub failed: Vec<(Option<Arc<str>>, Failure)>,
    /// Inputs skipped, by label, with why.
    pub skipped: HashMap<String, String>,
}

/// Decodes `inputs` on `jobs` blocking threads, each opening (with `open`, on that thread) and
/// reading one input at a time, and stores their batches of at most `batch` observations through
/// `ingestor`, each attributed to its input's label. `on_stored` is called after each batch with
/// the ingestor, which counts an observation as accepted once its commit is durable.
pub async fn decode_into<T: Send + 'static>(
    ingestor: &mut Ingestor,
    inputs: Vec<T>,
    jobs: usize,
    batch: usize,
    open: impl Fn(T) -> (Option<Arc<str>>, Opened) + Send + Sync + 'static,
    progress: Arc<Progress>,
    mut on_stored: impl FnMut(&Ingestor),
) -> Result<Decoded, StoreError> {
    let jobs = jobs.max(1);
    let queue = Arc::new(std::sync::Mutex::new(inputs.into_iter()));
    let open = Arc::new(open);
    // Each decoder hands over what several small inputs yield at once: a hand-over per input
    // would cost a thread wake-up per file.
    type Parcel = Vec<(Option<Arc<str>>, ParsedBatch)>;
    let (sender, mut parcels) = tokio::sync::mpsc::channel::<Parcel>(2 * jobs);
    let hand_over = (batch / 4).clamp(1, 8192);
    let mut decoders = Vec::new();
    for _ in 0..jobs {
        let (queue, sender, progress, open) = (queue.clone(), sender.clone(), progress.clone(), open.clone());
        decoders.push(tokio::task::spawn_blocking(move || {
            let mut decoded = Decoded::default();
            let mut parcel: Parcel = Vec::new();
            let mut gathered = 0;
            // An input that cannot be opened or read is reported like a bad record (at its
            // start), and the others go on.
            let refuse = |parcel: &mut Parcel, label: &Option<Arc<str>>, reason: String| {
                let mut refused = ParsedBatch::default();
                refused.rejections.push(Rejection::new(Position::Offset(0), reason));
                parcel.push((label.clone(), refused));
            };
            while let Some(input) = queue.lock().ok().and_then(|mut queue| queue.next()) {
                let (label, mut decoder) = match open(input) {
                    (label, Opened::Decode(decoder)) => (label, decoder),
                    (label, Opened::Refuse(reason)) => {
                        refuse(&mut parcel, &label, reason.clone());
                        decoded.failed.push((label, Failure::Open(reason)));
                        continue;
                    }
                    (label, Opened::Skip(reason)) => {
                        decoded.skipped.insert(label.as_deref().unwrap_or_default().to_owned(), reason);
                        continue;
                    }
                };
                loop {
                    let parsed = match decoder.next_batch(batch) {
                        Ok(Some(parsed)) => parsed,
                        Ok(None) => break,
                        Err(error) => {
                            refuse(&mut parcel, &label, format!("reading stopped: {error}"));
                            decoded.failed.push((label.clone(), Failure::Read(error)));
                            break;
                        }
                    };
                    progress.records.fetch_add(parsed.records, Ordering::Relaxed);
                    gathered += parsed.observations.len() + 1;
                    parcel.push((label.clone(), parsed));
                    if gathered >= hand_over {
                        gathered = 0;
                        if sender.blocking_send(std::mem::take(&mut parcel)).is_err() {
                            return decoded;
                        }
                    }
                }
            }
            if !parcel.is_empty() {
                let _ = sender.blocking_send(parcel);
            }
            decoded
        }));
    }
    drop(sender);
    while let Some(parcel) = parcels.recv().await {
        for (label, parsed) in parcel {
            let observations = parsed.observations.len() as u64;
            ingestor.submit_from(label, parsed).await?;
            progress.observations.fetch_add(observations, Ordering::Relaxed);
            on_stored(ingestor);
        }
    }
    let mut decoded = Decoded::default();
    for decoder in decoders {
        let done = decoder.await.map_err(|error| StoreError::Backend(format!("a decoder stopped: {error}")))?;
        decoded.failed.extend(done.failed);
        decoded.skipped.extend(done.skipped);
    }
    Ok(decoded)
}

/// One input of an import of files: a file, or `-` for standard input.
pub struct Input {
    pub path: PathBuf,
    /// Found in a folder rather than named: when it is not of the format imported it is skipped
    /// (a README beside the logs), where a file named is refused.
    pub in_folder: bool,
}

/// How an import of files reads them.
pub struct FileImport {
    /// The format, told from each file's content when `None`.
    pub format: Option<Format>,
    /// The tenant of inputs that name none; NDJSON lines naming another are refused.
    pub tenant: Option<String>,
    /// Observations per durable commit.
    pub batch: usize,
    /// Files read at once; 0 means one per CPU.
    pub jobs: usize,
    /// How far past the clock an observation's time may be (seconds).
    pub clock_skew_seconds: u32,
}

/// What an import of files came to.
pub struct FilesImported {
    /// The whole import's counts and rejections.
    pub summary: IngestSummary,
    /// Each input's counts, by its label (its path as shown).
    pub by_input: HashMap<Arc<str>, InputSummary>,
    /// Files skipped, with why.
    pub skipped: HashMap<String, String>,
}

impl FilesImported {
    /// One input's share of the import: its counts, and the first `listed` of the import's
    /// rejections that were in it.
    pub fn of_input(&self, label: &str, listed: usize) -> IngestSummary {
        let counts = self.by_input.get(label).copied().unwrap_or_default();
        let mut rejected_lines: Vec<Rejection> = self
            .summary
            .rejected_lines
            .iter()
            .filter(|rejection| rejection.input.as_deref() == Some(label))
            .cloned()
            .collect();
        rejected_lines.truncate(listed);
        let truncated = (rejected_lines.len() as u64) < counts.rejected;
        IngestSummary {
            records: counts.records,
            accepted: counts.accepted,
            rejected: counts.rejected,
            rejected_lines,
            rejected_lines_truncated: truncated,
            ..IngestSummary::default()
        }
    }
}

/// Imports files into `store`: `import.jobs` threads each decode one file at a time, and one
/// ingestor gathers their batches into durable commits. `on_stored` is as for [`decode_into`].
pub async fn ingest_files(
    store: Arc<dyn Store>,
    inputs: Vec<Input>,
    import: &FileImport,
    progress: Arc<Progress>,
    on_stored: impl FnMut(&Ingestor),
) -> Result<FilesImported, StoreError> {
    let (format, tenant) = (import.format, import.tenant.clone());
    let open = move |input: Input| {
        let label: Arc<str> = Arc::from(input.path.display().to_string());
        (Some(label), open_file(&input, format, tenant.clone()))
    };
    let mut ingestor = Ingestor::new(store, import.batch).with_clock_skew(import.clock_skew_seconds);
    let jobs = one_per_cpu_if_none(import.jobs);
    let decoded = decode_into(&mut ingestor, inputs, jobs, import.batch, open, progress, on_stored).await?;
    let (summary, by_input) = ingestor.finish_by_input().await?;
    Ok(FilesImported { summary, by_input, skipped: decoded.skipped })
}

/// `jobs`, or one per CPU when it is 0.
pub(crate) fn one_per_cpu_if_none(jobs: usize) -> usize {
    match jobs {
        0 => std::thread::available_parallelism().map_or(2, usize::from),
        jobs => jobs,
    }
}

/// Opens one file of an import for decoding.
fn open_file(input: &Input, format: Option<Format>, tenant: Option<String>) -> Opened {
    let (input, format) = match open_import_input(input, format) {
        Ok(Ok(opened)) => (opened.reader, opened.format),
        Ok(Err(reason)) => return Opened::Skip(reason),
        Err(reason) => return Opened::Refuse(reason),
    };
    match fileintel_telemetry::decoder(format, input, tenant) {
        Ok(decoder) => Opened::Decode(decoder),
        Err(OpenError::Undetected(reason)) => {
            Opened::Refuse(format!("cannot tell the format: {reason}; name it with --format"))
        }
        Err(error) => Opened::Refuse(error.to_string()),
    }
}

/// The inputs named, folders replaced by the files beneath them (in name order). A named input
/// that does not exist is an error before anything is read or created.
pub fn inputs(paths: &[PathBuf]) -> Result<Vec<Input>, String> {
    fn walk(dir: &Path, out: &mut Vec<Input>) -> Result<(), String> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .and_then(|entries| entries.map(|entry| entry.map(|entry| entry.path())).collect())
            .map_err(|error| format!("reading the directory {}: {error}", dir.display()))?;
        entries.sort();
        for path in entries {
            if path.is_dir() { walk(&path, out)? } else { out.push(Input { path, in_folder: true }) }
        }
        Ok(())
    }
    let mut inputs = Vec::new();
    for path in paths {
        if path == Path::new("-") {
            inputs.push(Input { path: path.clone(), in_folder: false });
            continue;
        }
        match std::fs::metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("input {} does not exist", path.display()));
            }
            Err(error) => return Err(format!("input {}: {error}", path.display())),
            Ok(metadata) if metadata.is_dir() => walk(path, &mut inputs)?,
            Ok(_) => inputs.push(Input { path: path.clone(), in_folder: false }),
        }
    }
    Ok(inputs)
}

/// Opens a file, or standard input for `-`, with its length when known.
pub fn open_input(path: &Path) -> Result<(Box<dyn Read + Send>, Option<u64>), String> {
    if path == Path::new("-") {
        return Ok((Box::new(std::io::stdin()), None));
    }
    let file = std::fs::File::open(path).map_err(|error| format!("opening {}: {error}", path.display()))?;
    let length = file.metadata().ok().map(|metadata| metadata.len());
    Ok((Box::new(file), length))
}

/// The format a file found in a folder is imported as, from its first bytes, or why it is
/// skipped: it is not of the format named, or, with none named, of no format that can be told.
fn folder_format(prefix: &[u8], wanted: Option<Format>) -> Result<Format, String> {
    match (fileintel_telemetry::detect(prefix), wanted) {
        (Ok(found), Some(wanted)) if found != wanted => Err(format!("it is {}, not {}", found.name(), wanted.name())),
        (Ok(found), _) => Ok(found),
        (Err(reason), Some(wanted)) => Err(format!("it is not {}: {reason}", wanted.name())),
        (Err(reason), None) => Err(format!("cannot tell its format: {reason}")),
    }
}

/// One input of an import, opened: its bytes, their length when known, and the format to decode
/// them as (`None`: told from the bytes).
pub struct OpenedInput {
    pub reader: Box<dyn Read + Send>,
    pub length: Option<u64>,
    pub format: Option<Format>,
}

/// Opens one input of an import, `fileintel ingest`'s and `ingest --server`'s alike. A file found
/// in a folder is told apart first from its first bytes (read once, and read again from memory), so
/// that a file of no use is skipped (`Ok(Err(why))`) rather than refused (`Err(why)`).
pub fn open_import_input(input: &Input, format: Option<Format>) -> Result<Result<OpenedInput, String>, String> {
    if !input.in_folder {
        let (reader, length) = open_input(&input.path)?;
        return Ok(Ok(OpenedInput { reader, length, format }));
    }
    let path = &input.path;
    let mut file = std::fs::File::open(path).map_err(|error| format!("opening {}: {error}", path.display()))?;
    let length = file.metadata().ok().map(|metadata| metadata.len());
    let prefix =
        fileintel_telemetry::read_prefix(&mut file).map_err(|error| format!("reading {}: {error}", path.display()))?;
    Ok(folder_format(&prefix, format).map(|format| OpenedInput {
        reader: Box::new(std::io::Cursor::new(prefix).chain(file)),
        length,
        format: Some(format),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"tenantId": "contoso", "deviceId": "d1", "timestamp": "2026-11-20T13:24:13Z", "sha256": "ce52406823dd94a0e21e358f55368e028b7562569966741de8471eb942a84a65", "fileName": "a.exe"}"#;

    /// A reader that yields `good` and then fails.
    struct Failing(std::io::Cursor<Vec<u8>>);

    impl Read for Failing {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buffer)? {
                0 => Err(std::io::Error::other("the disk went away")),
                read => Ok(read),
            }
        }
    }

    #[tokio::test]
    async fn an_input_that_cannot_be_opened_or_read_is_its_own_rejection_and_the_others_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(fileintel_store::FjallStore::open(dir.path()).unwrap());
        let mut ingestor = Ingestor::new(store, 1000);
        let open = |name: &'static str| {
            let label = Some(Arc::from(name));
            let opened = match name {
                "good" => Opened::Decode(
                    fileintel_telemetry::decoder(Some(Format::Ndjson), std::io::Cursor::new(format!("{LINE}\n")), None)
                        .unwrap(),
                ),
                "broken" => {
                    let input = Failing(std::io::Cursor::new(format!("{LINE}\n").into_bytes()));
                    Opened::Decode(fileintel_telemetry::decoder(Some(Format::Ndjson), input, None).unwrap())
                }
                "readme" => Opened::Skip("it is not ndjson".into()),
                _ => Opened::Refuse("opening missing: no such file".into()),
            };
            (label, opened)
        };
        let inputs = vec!["good", "missing", "readme", "broken"];
        let decoded = decode_into(&mut ingestor, inputs, 2, 1000, open, Arc::default(), |_| {}).await.unwrap();
        let (summary, by_input) = ingestor.finish_by_input().await.unwrap();
        assert_eq!(decoded.skipped.get("readme").map(String::as_str), Some("it is not ndjson"));
        let mut failed: Vec<String> = decoded
            .failed
            .iter()
            .map(|(label, failure)| format!("{}: {failure:?}", label.as_deref().unwrap_or_default()))
            .collect();
        failed.sort();
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(failed[0].starts_with("broken: Read("), "{failed:?}");
        assert!(failed[1].starts_with("missing: Open("), "{failed:?}");
        assert_eq!(by_input[&Arc::from("good")].accepted, 1);
        assert_eq!(by_input[&Arc::from("missing")].rejected, 1);
        let reasons: Vec<&str> = summary.rejected_lines.iter().map(|rejection| rejection.reason.as_str()).collect();
        assert!(reasons.contains(&"opening missing: no such file"), "{reasons:?}");
        assert!(reasons.iter().any(|reason| reason.starts_with("reading stopped: ")), "{reasons:?}");
    }
}
