//! `fileintel ingest`: observations (native NDJSON, Sysmon event logs or JSON, MDE exports) into
//! the data directory, or through a running server.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use fileintel_core::IngestSummary;
use fileintel_store::pipeline::{DEFAULT_BATCH, InputSummary};
use fileintel_store::{FjallStore, Ingestor, Store, StoreError};
use fileintel_telemetry::{Format, OpenError};
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::StoreArgs;

const CHUNK: usize = 1 << 20;

#[derive(clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Send the data through a running fileintel (e.g. http://127.0.0.1:8080) instead of opening
    /// the data directory, which a running server holds.
    #[arg(long, env = "FILEINTEL_SERVER")]
    server: Option<String>,
    /// Bearer token for --server (an application token with File.ReadWrite.All).
    #[arg(long, env = "FILEINTEL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Observations per durable commit.
    #[arg(long, default_value_t = DEFAULT_BATCH, conflicts_with = "server")]
    batch: usize,
    /// The input format: ndjson, evtx, sysmon-json, mde-csv or mde-json; told from each file's
    /// content when not given.
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// The tenant that event logs and exports (which name none) belong to; for NDJSON, lines
    /// naming another tenant are refused. Default: NDJSON lines name their own tenant, and event
    /// logs and exports go to the tenant `default`.
    #[arg(long, conflicts_with = "server")]
    tenant: Option<String>,
    /// Files read at once (each on its own thread); 0 means one per CPU.
    #[arg(long, default_value_t = 0, conflicts_with = "server")]
    jobs: usize,
    /// Print one JSON object per input (a line each: its name, counts and first rejections)
    /// instead of text.
    #[arg(long)]
    json: bool,
    /// Into the data directory: after each commit, write a line `{"durable":N}` to standard
    /// error, N being the observations accepted so far that are on disk (a kill after it loses
    /// none of them), for scripts that must know how far an import got.
    #[arg(long, conflicts_with = "server")]
    progress_json: bool,
    /// Files and folders to import (folders are walked; files in them of no format that can be
    /// told, or of another than --format, are skipped); `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// One input of an import: a file, or `-` for standard input.
pub(crate) struct Input {
    pub path: PathBuf,
    /// Found in a folder rather than named: when it is not of the format imported it is skipped
    /// (a README beside the logs), where a file named is refused.
    pub in_folder: bool,
}

/// How many of an input's rejections its JSON line lists.
const LISTED_REJECTIONS: usize = 10;

fn open_input(path: &Path) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((Box::new(std::io::stdin()), None));
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let length = file.metadata().ok().map(|metadata| metadata.len());
    Ok((Box::new(file), length))
}

fn parse_format(text: &str) -> Result<Format, String> {
    text.parse()
}

/// What all inputs have done so far, for the progress line.
#[derive(Default)]
struct Progress {
    records: AtomicU64,
    observations: AtomicU64,
    /// `--progress-json`: report each commit's durable count on standard error.
    report_durable: bool,
}

fn progress_bar(length: Option<u64>, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(length.unwrap_or(0));
    let template = if length.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
    } else {
        "{msg} {bytes} {binary_bytes_per_sec}"
    };
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_message(label.to_owned());
    bar
}

/// What one input came to, as reported: its counts and first rejections, or why it was skipped.
struct Reported {
    input: String,
    outcome: Result<IngestSummary, String>,
}

pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    // Every input is found before anything is opened, so that a mistyped name creates nothing.
    let inputs = inputs(&args.files)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        // The embedded store is also kept as itself, to be flushed at the end.
        let (store, local): (Option<Arc<dyn Store>>, Option<FjallStore>) = match &args.server {
            // Through a server: this process touches no store, whatever the environment names.
            Some(_) => (None, None),
            None => match args.store.database.connect().await? {
                Some(database) => (Some(Arc::new(database)), None),
                None => {
                    let local = open_store(&args.store)?;
                    (Some(Arc::new(local.clone())), Some(local))
                }
            },
        };
        let (total, reported) = match &store {
            Some(store) => {
                let progress = Arc::new(Progress { report_durable: args.progress_json, ..Progress::default() });
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                let ticker = {
                    let (bar, progress) = (bar.clone(), progress.clone());
                    let started = Instant::now();
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let records = progress.records.load(Ordering::Relaxed);
                            let rate = records as f64 / started.elapsed().as_secs_f64().max(1e-9);
                            bar.set_message(format!(
                                "records {records}, observations {}, {rate:.0} records/s",
                                progress.observations.load(Ordering::Relaxed)
                            ));
                            bar.tick();
                        }
                    })
                };
                let jobs = if args.jobs == 0 {
                    std::thread::available_parallelism().map_or(2, usize::from)
                } else {
                    args.jobs
                };
                let label = match &inputs[..] {
                    [one] => one.path.display().to_string(),
                    many => format!("{} inputs", many.len()),
                };
                let labels: Vec<String> = inputs.iter().map(|input| input.path.display().to_string()).collect();
                let (summary, by_input, skipped) =
                    ingest_local(store.clone(), inputs, args.format, args.tenant.clone(), args.batch, jobs, progress)
                        .await?;
                ticker.abort();
                bar.finish_and_clear();
                let reported = labels
                    .into_iter()
                    .map(|input| {
                        let outcome = match skipped.get(input.as_str()) {
                            Some(reason) => Err(reason.clone()),
                            None => Ok(input_summary(&summary, &input, by_input.get(input.as_str()))),
                        };
                        Reported { input, outcome }
                    })
                    .collect();
                (Some((label, summary)), reported)
            }
            None => {
                let server = args.server.as_deref().unwrap_or_default();
                let mut reported = Vec::new();
                for input in &inputs {
                    let name = input.path.display().to_string();
                    let format = match input.in_folder {
                        true => match folder_format(&sniff(&input.path)?.1, args.format) {
                            Ok(format) => Some(format),
                            Err(reason) => {
                                reported.push(Reported { input: name, outcome: Err(reason) });
                                continue;
                            }
                        },
                        false => args.format,
                    };
                    let summary = match ingest_remote(server, args.token.as_deref(), &input.path, format).await {
                        Ok(summary) => summary,
                        // Refused as a whole, like an input that cannot be read here: the
                        // others go on.
                        Err(error) if error.downcast_ref::<Refused>().is_some_and(Refused::is_about_the_input) => {
                            let rejection =
                                fileintel_core::Rejection::new(fileintel_core::Position::Offset(0), error.to_string());
                            IngestSummary { rejected: 1, rejected_lines: vec![rejection], ..IngestSummary::default() }
                        }
                        Err(error) => return Err(error.context(format!("importing {name}"))),
                    };
                    reported.push(Reported { input: name, outcome: Ok(summary) });
                }
                (None, reported)
            }
        };
        if let Some(local) = local {
            // Everything is durable already; writing the memtables out now spares the next open
            // a journal replay and leaves the store compact.
            tokio::task::spawn_blocking(move || local.flush())
                .await
                .context("flushing")?
                .context("flushing the store")?;
        }
        report(total.as_ref(), &reported, args.json)?;
        let rejected =
            reported.iter().any(|reported| reported.outcome.as_ref().is_ok_and(|summary| summary.rejected > 0));
        Ok(crate::exit::import(rejected))
    })
}

/// One input's share of a local import: its counts, and those of the import's rejections that
/// were in it.
fn input_summary(total: &IngestSummary, input: &str, counts: Option<&InputSummary>) -> IngestSummary {
    let counts = counts.copied().unwrap_or_default();
    let mut rejected_lines: Vec<fileintel_core::Rejection> =
        total.rejected_lines.iter().filter(|rejection| rejection.input.as_deref() == Some(input)).cloned().collect();
    rejected_lines.truncate(LISTED_REJECTIONS);
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

pub(crate) fn open_store(args: &StoreArgs) -> anyhow::Result<FjallStore> {
    let data_dir = &args.data_dir;
    match args.open() {
        Ok(store) => Ok(store),
        Err(StoreError::Busy(holder)) => bail!(held_by_server(&holder, "ingest")),
        Err(error) => Err(error).with_context(|| format!("opening the store in {}", data_dir.display())),
    }
}

/// What to do when a server holds the data directory: stop it, or send the data through it with
/// the `fileintel COMMAND --server` this prints, to paste as it is once TOKEN holds a token.
pub(crate) fn held_by_server(holder: &str, command: &str) -> String {
    let stop = format!("{holder}.\nThe embedded store takes one process at a time.");
    match holder.split("listening on ").nth(1) {
        Some(address) if address.starts_with("http://") => format!(
            "{stop} Stop that server, or send the data through it with an access token in TOKEN (of an \
             application with File.ReadWrite.All):\n  fileintel {command} --server {address} --token \"$TOKEN\" FILE..."
        ),
        // --server speaks plain HTTP only, so there is no command to offer.
        Some(_) => format!("{stop} Stop that server first: it serves HTTPS, which --server does not take."),
        None => format!("{stop} Stop that process first."),
    }
}

/// Files named, with directories replaced by the files beneath them (in name order).
pub(crate) fn expand_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    Ok(inputs(paths)?.into_iter().map(|input| input.path).collect())
}

/// The inputs named, folders replaced by the files beneath them (in name order). A named input
/// that does not exist is an error before anything is read or created.
pub(crate) fn inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    fn walk(dir: &Path, out: &mut Vec<Input>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the directory {}", dir.display()))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()?;
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
                bail!("input {} does not exist", path.display())
            }
            Err(error) => return Err(error).with_context(|| format!("input {}", path.display())),
            Ok(metadata) if metadata.is_dir() => walk(path, &mut inputs)?,
            Ok(_) => inputs.push(Input { path: path.clone(), in_folder: false }),
        }
    }
    Ok(inputs)
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

/// Reads the first bytes of a file found in a folder, for [`folder_format`].
fn sniff(path: &Path) -> anyhow::Result<(std::fs::File, Vec<u8>)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let prefix = fileintel_telemetry::read_prefix(&mut file).with_context(|| format!("reading {}", path.display()))?;
    Ok((file, prefix))
}

/// Imports every input: `jobs` threads each decode one input at a time, and one ingestor
/// gathers their batches into durable commits.
///
/// Returns the summary, what each input came to, and the files skipped with the reason.
async fn ingest_local(
    store: Arc<dyn Store>,
    inputs: Vec<Input>,
    format: Option<Format>,
    tenant: Option<String>,
    batch: usize,
    jobs: usize,
    progress: Arc<Progress>,
) -> anyhow::Result<(IngestSummary, HashMap<Arc<str>, InputSummary>, HashMap<String, String>)> {
    let queue = Arc::new(std::sync::Mutex::new(inputs.into_iter()));
    let skipped = Arc::new(std::sync::Mutex::new(HashMap::new()));
    // Each decoder hands over what several small inputs yield at once: a hand-over per input
    // would cost a thread wake-up per file.
    type Parcel = Vec<(Arc<str>, fileintel_core::ParsedBatch)>;
    let (sender, mut parcels) = tokio::sync::mpsc::channel::<Parcel>(2 * jobs);
    let hand_over = (batch / 4).clamp(1, 8192);
    let mut decoders = Vec::new();
    for _ in 0..jobs.max(1) {
        let (queue, sender, progress, tenant) = (queue.clone(), sender.clone(), progress.clone(), tenant.clone());
        let skipped = skipped.clone();
        decoders.push(tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut parcel: Parcel = Vec::new();
            let mut gathered = 0;
            // An input that cannot be opened, read or told apart is reported like a bad record
            // (at the byte offset where it failed, when known), and the others go on.
            let refuse = |parcel: &mut Parcel, label: &Arc<str>, reason: String| {
                let mut refused = fileintel_core::ParsedBatch::default();
                refused.rejections.push(fileintel_core::Rejection::new(fileintel_core::Position::Offset(0), reason));
                parcel.push((label.clone(), refused));
            };
            while let Some(Input { path, in_folder }) = queue.lock().ok().and_then(|mut queue| queue.next()) {
                let label: Arc<str> = Arc::from(path.display().to_string());
                let opened = match in_folder {
                    // Told apart here, so that a file of no use is skipped rather than refused.
                    true => sniff(&path).map(|(file, prefix)| {
                        let format = folder_format(&prefix, format);
                        let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(prefix).chain(file));
                        (input, format.map(Some))
                    }),
                    false => open_input(&path).map(|(input, _)| (input, Ok(format))),
                };
                let (input, format) = match opened {
                    Ok((input, Ok(format))) => (input, format),
                    Ok((_, Err(reason))) => {
                        if let Ok(mut skipped) = skipped.lock() {
                            skipped.insert(label.to_string(), reason);
                        }
                        continue;
                    }
                    Err(error) => {
                        refuse(&mut parcel, &label, format!("{error:#}"));
                        continue;
                    }
                };
                let mut decoder = match fileintel_telemetry::decoder(format, input, tenant.clone()) {
                    Ok(decoder) => decoder,
                    Err(OpenError::Undetected(reason)) => {
                        refuse(&mut parcel, &label, format!("cannot tell the format: {reason}; name it with --format"));
                        continue;
                    }
                    Err(error) => {
                        refuse(&mut parcel, &label, error.to_string());
                        continue;
                    }
                };
                loop {
                    let parsed = match decoder.next_batch(batch) {
                        Ok(Some(parsed)) => parsed,
                        Ok(None) => break,
                        Err(error) => {
                            refuse(&mut parcel, &label, format!("reading stopped: {error}"));
                            break;
                        }
                    };
                    progress.records.fetch_add(parsed.records, Ordering::Relaxed);
                    gathered += parsed.observations.len() + 1;
                    parcel.push((label.clone(), parsed));
                    if gathered >= hand_over {
                        gathered = 0;
                        if sender.blocking_send(std::mem::take(&mut parcel)).is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            if !parcel.is_empty() {
                let _ = sender.blocking_send(parcel);
            }
            Ok(())
        }));
    }
    drop(sender);
    let mut ingestor = Ingestor::new(store, batch);
    let mut reported = 0;
    while let Some(parcel) = parcels.recv().await {
        for (label, parsed) in parcel {
            let observations = parsed.observations.len() as u64;
            ingestor.submit_from(Some(label), parsed).await.context("storing observations")?;
            progress.observations.fetch_add(observations, Ordering::Relaxed);
            // The ingestor counts an observation as accepted only once its commit is durable.
            let durable = ingestor.progress().accepted;
            if progress.report_durable && durable > reported {
                reported = durable;
                eprintln!("{}", serde_json::json!({ "durable": durable }));
            }
        }
    }
    for decoder in decoders {
        decoder.await.context("a decoder stopped")??;
    }
    let (summary, by_input) = ingestor.finish_by_input().await.context("storing observations")?;
    let skipped = std::mem::take(&mut *skipped.lock().map_err(|_| anyhow::anyhow!("a decoder panicked"))?);
    Ok((summary, by_input, skipped))
}

async fn ingest_remote(
    server: &str,
    token: Option<&str>,
    path: &Path,
    format: Option<Format>,
) -> anyhow::Result<IngestSummary> {
    let started = Instant::now();
    let format_name = format.map_or("auto", Format::name);
    let content_type = match format {
        Some(Format::Evtx) => "application/octet-stream",
        Some(Format::MdeCsv) => "text/csv",
        _ => "application/x-ndjson",
    };
    let target = format!("/api/ingest/observations?format={format_name}");
    let answer = post_file(server, &target, token, path, content_type).await?;
    let mut summary = summary_from_json(&answer);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Streams a file (or stdin) to `target` on a running server, with a progress bar, and returns
/// its JSON answer; an error answer becomes an error carrying the envelope's message, and a
/// server that cannot be reached an error saying so.
pub(crate) async fn post_file(
    server: &str,
    target: &str,
    token: Option<&str>,
    path: &Path,
    content_type: &str,
) -> anyhow::Result<serde_json::Value> {
    let base = server.trim_end_matches('/');
    let uri: hyper::Uri = format!("{base}{target}").parse().with_context(|| format!("server URL {server}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--server takes an http:// URL");
    }
    let (mut input, length) = open_input(path)?;
    let bar = progress_bar(length, &path.display().to_string());
    // Read on a blocking thread and stream the chunks as the request body.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(4);
    let reader_bar = bar.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            match input.read(&mut buffer) {
                Ok(0) => return,
                Ok(read) => {
                    reader_bar.inc(read as u64);
                    let frame = hyper::body::Frame::data(Bytes::copy_from_slice(&buffer[..read]));
                    if sender.blocking_send(Ok(frame)).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            }
        }
    });
    let body = http_body_util::StreamBody::new(futures_stream(receiver));
    let mut request = hyper::Request::post(uri).header(hyper::header::CONTENT_TYPE, content_type);
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(body).context("building the request")?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    // Not reaching the server is told apart from its refusing: nothing was sent.
    let response = client.request(request).await.map_err(|error| {
        let connect = error.is_connect();
        let error = anyhow::Error::new(error);
        if connect {
            error.context(format!("could not reach the server at {base}"))
        } else {
            error.context(format!("sending to {base}"))
        }
    })?;
    let status = response.status();
    let bytes = response.into_body().collect().await.context("reading the answer")?.to_bytes();
    reader.await.ok();
    bar.finish_and_clear();
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(Refused { status: status.as_u16(), message }.into());
    }
    serde_json::from_slice(&bytes).context("decoding the server's answer")
}

/// The server's error answer to a request: it was reached, and said no.
#[derive(Debug, thiserror::Error)]
#[error("the server refused it ({status}): {message}")]
pub(crate) struct Refused {
    pub status: u16,
    pub message: String,
}

impl Refused {
    /// Whether the refusal is about this input (its content or size), so that the next input
    /// may fare better; any other (a bad token, a server in trouble) holds for every input.
    fn is_about_the_input(&self) -> bool {
        matches!(self.status, 400 | 413 | 415 | 422)
    }
}

fn futures_stream<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |context| receiver.poll_recv(context))
}

fn summary_from_json(answer: &serde_json::Value) -> IngestSummary {
    serde_json::from_value(answer.clone()).unwrap_or_default()
}

/// Prints the outcome: with `json`, one line per input; else the rejections, the skipped files
/// and the counts (of the whole import when it was local, else of each input).
fn report(total: Option<&(String, IngestSummary)>, reported: &[Reported], json: bool) -> anyhow::Result<()> {
    for Reported { input, outcome } in reported {
        if let Err(reason) = outcome {
            eprintln!("{input}: skipped: {reason}");
        }
    }
    if json {
        let mut stdout = std::io::stdout().lock();
        for Reported { input, outcome } in reported {
            let line = match outcome {
                Ok(summary) => serde_json::json!({
                    "input": input,
                    "records": summary.records,
                    "accepted": summary.accepted,
                    "rejected": summary.rejected,
                    "rejectedLines": summary.rejected_lines.iter().take(LISTED_REJECTIONS).collect::<Vec<_>>(),
                    "rejectedLinesTruncated":
                        summary.rejected_lines_truncated || summary.rejected_lines.len() > LISTED_REJECTIONS,
                }),
                Err(reason) => serde_json::json!({"input": input, "skipped": reason}),
            };
            writeln!(stdout, "{line}")?;
        }
        return Ok(());
    }
    let summaries: Vec<(&str, &IngestSummary)> = match total {
        Some((label, summary)) => vec![(label.as_str(), summary)],
        None => reported
            .iter()
            .filter_map(|reported| reported.outcome.as_ref().ok().map(|summary| (reported.input.as_str(), summary)))
            .collect(),
    };
    for (input, summary) in summaries {
        for rejection in &summary.rejected_lines {
            let source = rejection.input.as_deref().unwrap_or(input);
            eprintln!("{source}: {}: rejected: {}", rejection.at, rejection.reason);
        }
        if summary.rejected_lines_truncated {
            eprintln!("{input}: {} more rejected records not listed", summary.rejected_lines_omitted);
        }
        println!(
            "{input}: records {}, accepted {}, rejected {}, files touched {} ({} new), {:.2} s, {:.0} observations/s",
            summary.records,
            summary.accepted,
            summary.rejected,
            summary.files_touched,
            summary.new_files,
            summary.seconds,
            summary.accepted as f64 / summary.seconds.max(1e-9)
        );
    }
    Ok(())
}
