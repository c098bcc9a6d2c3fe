//! `fileintel ingest`: observations (native NDJSON, Sysmon event logs or JSON, MDE exports) into
//! the data directory, or through a running server.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use fileintel_core::IngestSummary;
use fileintel_store::pipeline::DEFAULT_BATCH;
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
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// The input format: ndjson, evtx, sysmon-json, mde-csv or mde-json; told from each file's
    /// content when not given.
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// The tenant that event logs and exports (which name none) belong to; for NDJSON, lines
    /// naming another tenant are refused.
    #[arg(long)]
    tenant: Option<String>,
    /// Files read at once (each on its own thread); 0 means one per CPU.
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Print the summary as JSON (one object per input) instead of text.
    #[arg(long)]
    json: bool,
    /// Into the data directory: after each commit, write a line `{"durable":N}` to standard
    /// error, N being the observations accepted so far that are on disk (a kill after it loses
    /// none of them), for scripts that must know how far an import got.
    #[arg(long, conflicts_with = "server")]
    progress_json: bool,
    /// Files to import; `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

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

pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let mut summaries = Vec::new();
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
        match &store {
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
                let inputs = expand_inputs(&args.files)?;
                let label = match &inputs[..] {
                    [one] => one.display().to_string(),
                    many => format!("{} inputs", many.len()),
                };
                let summary =
                    ingest_local(store.clone(), inputs, args.format, args.tenant.clone(), args.batch, jobs, progress)
                        .await?;
                summaries.push((label, summary));
                ticker.abort();
                bar.finish_and_clear();
            }
            None => {
                let server = args.server.as_deref().unwrap_or_default();
                for path in &args.files {
                    let summary = ingest_remote(server, args.token.as_deref(), path, args.format).await?;
                    summaries.push((path.display().to_string(), summary));
                }
            }
        }
        if let Some(local) = local {
            // Everything is durable already; writing the memtables out now spares the next open
            // a journal replay and leaves the store compact.
            tokio::task::spawn_blocking(move || local.flush())
                .await
                .context("flushing")?
                .context("flushing the store")?;
        }
        report(&summaries, args.json)?;
        let rejected = summaries.iter().any(|(_, summary)| summary.rejected > 0);
        Ok(if rejected { ExitCode::from(2) } else { ExitCode::SUCCESS })
    })
}

pub(crate) fn open_store(args: &StoreArgs) -> anyhow::Result<FjallStore> {
    let data_dir = &args.data_dir;
    match args.open() {
        Ok(store) => Ok(store),
        Err(StoreError::Busy(holder)) => {
            let address = holder.split("listening on ").nth(1).unwrap_or("http://HOST:PORT");
            bail!(
                "{holder}.\nThe embedded store takes one process at a time. Stop that server, or send the data through it:\n  fileintel ingest --server {address} FILE..."
            )
        }
        Err(error) => Err(error).with_context(|| format!("opening the store in {}", data_dir.display())),
    }
}

/// Files named, with directories replaced by the files beneath them (in name order).
pub(crate) fn expand_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the directory {}", dir.display()))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            if path.is_dir() { walk(&path, out)? } else { out.push(path) }
        }
        Ok(())
    }
    let mut inputs = Vec::new();
    for path in paths {
        if path.is_dir() { walk(path, &mut inputs)? } else { inputs.push(path.clone()) }
    }
    Ok(inputs)
}

/// Imports every input: `jobs` threads each decode one input at a time, and one ingestor
/// gathers their batches into durable commits.
async fn ingest_local(
    store: Arc<dyn Store>,
    inputs: Vec<PathBuf>,
    format: Option<Format>,
    tenant: Option<String>,
    batch: usize,
    jobs: usize,
    progress: Arc<Progress>,
) -> anyhow::Result<IngestSummary> {
    let queue = Arc::new(std::sync::Mutex::new(inputs.into_iter()));
    // Each decoder hands over what several small inputs yield at once: a hand-over per input
    // would cost a thread wake-up per file.
    type Parcel = Vec<(Arc<str>, fileintel_core::ParsedBatch)>;
    let (sender, mut parcels) = tokio::sync::mpsc::channel::<Parcel>(2 * jobs);
    let hand_over = (batch / 4).clamp(1, 8192);
    let mut decoders = Vec::new();
    for _ in 0..jobs.max(1) {
        let (queue, sender, progress, tenant) = (queue.clone(), sender.clone(), progress.clone(), tenant.clone());
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
            while let Some(path) = queue.lock().ok().and_then(|mut queue| queue.next()) {
                let label: Arc<str> = Arc::from(path.display().to_string());
                let input = match open_input(&path) {
                    Ok((input, _)) => input,
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
    ingestor.finish().await.context("storing observations")
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
    let answer = post_file(server, &target, token, path, content_type)
        .await
        .map_err(|error| error.context("the server refused the import"))?;
    let mut summary = summary_from_json(&answer);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Streams a file (or stdin) to `target` on a running server, with a progress bar, and returns
/// its JSON answer; an error answer becomes an error carrying the envelope's message.
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
    let response = client.request(request).await.with_context(|| format!("sending to {server}"))?;
    let status = response.status();
    let bytes = response.into_body().collect().await.context("reading the answer")?.to_bytes();
    reader.await.ok();
    bar.finish_and_clear();
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        bail!("{status}: {message}");
    }
    serde_json::from_slice(&bytes).context("decoding the server's answer")
}

fn futures_stream<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |context| receiver.poll_recv(context))
}

fn summary_from_json(answer: &serde_json::Value) -> IngestSummary {
    serde_json::from_value(answer.clone()).unwrap_or_default()
}

fn report(summaries: &[(String, IngestSummary)], json: bool) -> anyhow::Result<()> {
    if json {
        let objects: Vec<serde_json::Value> = summaries
            .iter()
            .map(|(input, summary)| {
                let mut object = serde_json::to_value(summary).unwrap_or_default();
                object["input"] = serde_json::Value::String(input.clone());
                object
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&objects)?);
        return Ok(());
    }
    for (input, summary) in summaries {
        for rejection in &summary.rejected_lines {
            let source = rejection.input.as_deref().unwrap_or(input);
            eprintln!("{source}: {}: rejected: {}", rejection.at, rejection.reason);
        }
        if summary.rejected_lines_truncated {
            eprintln!("{input}: more rejected records than listed");
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
