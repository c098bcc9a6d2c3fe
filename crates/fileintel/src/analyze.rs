//! `fileintel analyze`: static analysis of files and folders, one JSON profile per file, and with
//! `--data-dir` the results recorded in the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use fileintel_analysis::Analysis;
use fileintel_server::backend::{StoreSettings, open_store};
use fileintel_store::Store;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// Record the results in this data directory (no server may hold it), so that
    /// `GET /api/files/{id}` returns them.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Block cache of the embedded store, in MiB (see `serve --cache-mb`).
    #[arg(long, env = "FILEINTEL_CACHE_MB", default_value_t = fileintel_store::DEFAULT_CACHE_BYTES >> 20)]
    cache_mb: u64,
    /// Or record them in PostgreSQL (see `serve --database-url`).
    #[command(flatten)]
    database: crate::DatabaseArgs,
    /// Send the files to a running fileintel (e.g. http://127.0.0.1:8080), which analyses and
    /// records them (`POST /api/files/analyze`), instead of analysing here.
    #[arg(long, env = "FILEINTEL_SERVER", conflicts_with = "data_dir")]
    server: Option<String>,
    /// Bearer token for --server (an application token with File.ReadWrite.All).
    #[arg(long, env = "FILEINTEL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Files analysed at once; 0 means one per CPU.
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    #[command(flatten)]
    trust: crate::roots::TrustArgs,
    /// Files and folders to analyse (folders are walked).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// One file's analysis as printed, analysed here or by a server: its path, the profile's fields,
/// and the details.
fn profile(path: &Path, analysis: &Analysis, facts: &fileintel_core::FileFacts) -> serde_json::Value {
    serde_json::json!({
        "path": path.display().to_string(),
        "sha1": analysis.hashes.sha1.map(|hash| hash.to_string()),
        "sha256": analysis.hashes.sha256.map(|hash| hash.to_string()),
        "md5": analysis.hashes.md5.map(|hash| hash.to_string()),
        "size": analysis.size,
        "fileType": facts.file_type,
        "isPeFile": facts.is_pe_file,
        "filePublisher": facts.file_publisher,
        "fileProductName": facts.file_product_name,
        "signer": facts.signer,
        "issuer": facts.issuer,
        "signerHash": facts.signer_hash.map(|hash| hash.to_string()),
        "isValidCertificate": facts.is_valid_certificate,
        "pe": analysis.pe,
        "signatures": analysis.signatures,
        "problems": analysis.problems,
    })
}

/// A count and its noun, plural unless it is one: "1 file", "2 files", "0 files" (for nouns
/// whose plural takes an s).
pub(crate) fn counted(count: u64, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// The profile of a file a server analysed, from its answer: the entity with the analysis beside.
fn remote_profile(path: &Path, answer: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
    let analysis = answer.get("analysis").context("the server's answer holds no analysis (an older fileintel?)")?;
    let analysis: Analysis = serde_json::from_value(analysis.clone()).context("the server's analysis")?;
    Ok(profile(path, &analysis, &analysis.facts()))
}

/// Sends each file to the server, which analyses and records it; prints the profile it answers,
/// as a run here would.
fn run_remote(server: &str, token: Option<&str>, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let mut failed = 0;
    for path in paths {
        let answer = runtime.block_on(crate::ingest::upload(path, |input, progress| {
            fileintel_server::remote::post_file(
                server,
                "/api/files/analyze",
                token,
                input,
                "application/octet-stream",
                progress,
            )
        }));
        match answer.and_then(|answer| remote_profile(path, &answer)) {
            Ok(profile) => println!("{profile}"),
            Err(error) => {
                failed += 1;
                eprintln!("{}: {error:#}", path.display());
            }
        }
    }
    eprintln!("sent {} to {server}, {failed} refused", counted(paths.len() as u64, "file"));
    Ok(crate::exit::import(failed > 0))
}

pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let paths = crate::ingest::expand_inputs(&args.paths)?;
    if let Some(server) = &args.server {
        return run_remote(server, args.token.as_deref(), &paths);
    }
    let analyzer = args.trust.analyzer()?;
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let settings = match (args.database.settings(), &args.data_dir) {
        (None, None) => None,
        (database, data_dir) => Some(StoreSettings {
            data_dir: data_dir.clone().unwrap_or_default(),
            cache_bytes: args.cache_mb << 20,
            database,
            create: true,
            server_command: Some("analyze".into()),
        }),
    };
    let store: Option<Arc<dyn Store>> = match settings {
        Some(settings) => Some(runtime.block_on(open_store(&settings))?.shared()),
        None => None,
    };
    let bar = ProgressBar::new(paths.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} files {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut files, mut bytes, mut pe_files, mut failed, mut with_problems) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut signed, mut valid, mut invalid) = (0u64, 0u64, 0u64);
    fileintel_server::analyze::analyze_files(&analyzer, &paths, args.jobs, |path, analysis| -> anyhow::Result<()> {
        bar.inc(1);
        let analysis = match analysis {
            Ok(analysis) => analysis,
            Err(error) => {
                failed += 1;
                bar.suspend(|| eprintln!("{}: {error}", path.display()));
                return Ok(());
            }
        };
        files += 1;
        bytes += analysis.size;
        pe_files += u64::from(analysis.is_pe_file == Some(true));
        with_problems += u64::from(
            !analysis.problems.is_empty() || analysis.signatures.iter().any(|signature| !signature.problems.is_empty()),
        );
        signed += u64::from(!analysis.signatures.is_empty());
        let facts = analysis.facts();
        match facts.is_valid_certificate {
            Some(true) => valid += 1,
            Some(false) => invalid += 1,
            None => {}
        }
        bar.suspend(|| println!("{}", profile(path, &analysis, &facts)));
        if let Some(store) = &store {
            runtime
                .block_on(store.put_facts(analysis.hashes, Some(analysis.size), facts))
                .with_context(|| format!("recording {}", path.display()))?;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "analysed {} ({pe_files} PE, {signed} signed: {valid} valid, {invalid} not; {with_problems} with \
         problems, {failed} unreadable), {:.1} MB in {seconds:.2} s{}",
        counted(files, "file"),
        bytes as f64 / 1e6,
        if store.is_some() { ", recorded" } else { "" }
    );
    Ok(crate::exit::import(failed > 0))
}
