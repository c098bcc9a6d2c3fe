//! `fileintel ingest`: observations (native NDJSON, Sysmon event logs or JSON, MDE exports) into
//! the data directory, or through a running server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use fileintel_core::IngestSummary;
use fileintel_server::backend::{OpenedStore, StoreSettings, open_store};
use fileintel_server::import::{FileImport, Input, Progress, ingest_files, open_input};
use fileintel_server::remote::{ClientError, Sent, send_input};
use fileintel_store::Ingestor;
use fileintel_store::pipeline::DEFAULT_BATCH;
use fileintel_telemetry::Format;
use indicatif::{ProgressBar, ProgressStyle};

use crate::StoreArgs;

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
    /// Seconds past this machine's clock an observation's time may be; a later one (or one before
    /// 2000) is rejected, with its position, rather than set a file's first or last sighting. With
    /// --server, the server's own setting applies.
    #[arg(long, env = "FILEINTEL_MAX_CLOCK_SKEW", default_value_t = fileintel_core::DEFAULT_CLOCK_SKEW_SECONDS)]
    max_clock_skew: u32,
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

/// How many of an input's rejections its JSON line lists.
const LISTED_REJECTIONS: usize = 10;

fn parse_format(text: &str) -> Result<Format, String> {
    text.parse()
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
        // Through a server: this process touches no store, whatever the environment names.
        let opened = match &args.server {
            Some(_) => None,
            None => {
                let settings = StoreSettings { server_command: Some("ingest".into()), ..args.store.settings() };
                Some(open_store(&settings).await?)
            }
        };
        let store = opened.as_ref().map(OpenedStore::shared);
        let (total, reported) = match &store {
            Some(store) => {
                let progress = Arc::new(Progress::default());
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
                let label = match &inputs[..] {
                    [one] => one.path.display().to_string(),
                    many => format!("{} inputs", many.len()),
                };
                let labels: Vec<String> = inputs.iter().map(|input| input.path.display().to_string()).collect();
                let import = FileImport {
                    format: args.format,
                    tenant: args.tenant.clone(),
                    batch: args.batch,
                    jobs: args.jobs,
                    clock_skew_seconds: args.max_clock_skew,
                };
                // With --progress-json, each commit's durable count goes to standard error.
                let mut reported = 0;
                let report_durable = |ingestor: &Ingestor| {
                    let durable = ingestor.progress().accepted;
                    if args.progress_json && durable > reported {
                        reported = durable;
                        eprintln!("{}", serde_json::json!({ "durable": durable }));
                    }
                };
                let imported = ingest_files(store.clone(), inputs, &import, progress, report_durable)
                    .await
                    .context("storing observations")?;
                ticker.abort();
                bar.finish_and_clear();
                let reported = labels
                    .into_iter()
                    .map(|input| {
                        let outcome = match imported.skipped.get(input.as_str()) {
                            Some(reason) => Err(reason.clone()),
                            None => Ok(imported.of_input(&input, LISTED_REJECTIONS)),
                        };
                        Reported { input, outcome }
                    })
                    .collect();
                (Some((label, imported.summary)), reported)
            }
            None => {
                let server = args.server.as_deref().unwrap_or_default();
                let mut reported = Vec::new();
                for input in &inputs {
                    let name = input.path.display().to_string();
                    let mut bar = None;
                    let sent = send_input(server, args.token.as_deref(), input, args.format, |length| {
                        let shown = progress_bar(length, &name);
                        bar = Some(shown.clone());
                        Box::new(move |read| shown.inc(read))
                    })
                    .await;
                    if let Some(bar) = bar {
                        bar.finish_and_clear();
                    }
                    let outcome = match sent {
                        Ok(Sent::Imported(summary)) => Ok(summary),
                        Ok(Sent::Skipped(reason)) => Err(reason),
                        Err(error) => return Err(anyhow::Error::new(error).context(format!("importing {name}"))),
                    };
                    reported.push(Reported { input: name, outcome });
                }
                (None, reported)
            }
        };
        if let Some(opened) = opened {
            opened.flush().await.context("flushing the store")?;
        }
        report(total.as_ref(), &reported, args.json)?;
        let rejected =
            reported.iter().any(|reported| reported.outcome.as_ref().is_ok_and(|summary| summary.rejected > 0));
        Ok(crate::exit::import(rejected))
    })
}

/// Files named, with directories replaced by the files beneath them (in name order).
pub(crate) fn expand_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    Ok(inputs(paths)?.into_iter().map(|input| input.path).collect())
}

/// The inputs named, folders replaced by the files beneath them (in name order). A named input
/// that does not exist is an error before anything is read or created.
pub(crate) fn inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    fileintel_server::import::inputs(paths).map_err(anyhow::Error::msg)
}

/// Opens a file (or stdin) for `send` to stream to a running server, with a progress bar of what
/// is read of it.
pub(crate) async fn upload<T, F>(
    path: &Path,
    send: impl FnOnce(Box<dyn std::io::Read + Send>, Box<dyn Fn(u64) + Send>) -> F,
) -> anyhow::Result<T>
where
    F: std::future::Future<Output = Result<T, ClientError>>,
{
    let (input, length) = open_input(path).map_err(anyhow::Error::msg)?;
    let bar = progress_bar(length, &path.display().to_string());
    let reader_bar = bar.clone();
    let answer = send(input, Box::new(move |read| reader_bar.inc(read))).await;
    bar.finish_and_clear();
    Ok(answer?)
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
            "{input}: records {}, accepted {}, rejected {}, files touched {} ({} new to their tenants), {:.2} s, {:.0} observations/s",
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
