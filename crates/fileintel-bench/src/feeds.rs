//! `fileintel-bench feeds`: import of a generated STIX 2.1 bundle (one indicator per file
//! hash, half of them indicating a malware through a relationship) by `fileintel feeds import`
//! into a fresh store, against a pass that only parses the same bundle into statements, in this
//! process. Indicators per second, and the ratio.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct FeedsArgs {
    /// Indicators in the generated bundle.
    #[arg(long, default_value_t = 1_000_000)]
    pub indicators: u64,
    /// Folder for the bundle and the stores (the bundle is reused when its size matches).
    #[arg(long, default_value = "bench-out")]
    pub work_dir: PathBuf,
    /// Rounds, alternating the parse-only pass and the import.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Figures {
    indicators: u64,
    bundle_bytes: u64,
    parse_seconds: Vec<f64>,
    import_seconds: Vec<f64>,
    parse_per_second: f64,
    import_per_second: f64,
    /// import rate over parse rate.
    ratio: f64,
}

/// Writes a bundle of `count` indicators, each naming one SHA-256 (distinct, derived from its
/// number), with a malware and an `indicates` relationship for every second one.
fn generate(path: &std::path::Path, count: u64) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    write!(out, r#"{{"type":"bundle","id":"bundle--00000000-0000-4000-8000-000000000000","objects":["#)?;
    write!(
        out,
        r#"{{"type":"malware","spec_version":"2.1","id":"malware--00000000-0000-4000-8000-00000000beef","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-01T00:00:00.000Z","name":"BenchFamily","is_family":true}}"#
    )?;
    for n in 0..count {
        let hash = format!("{:016x}{:048x}", n, n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        write!(
            out,
            r#",{{"type":"indicator","spec_version":"2.1","id":"indicator--{n:08x}-0000-4000-8000-000000000000","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-02T00:00:00.000Z","name":"sample {n}","indicator_types":["malicious-activity"],"pattern":"[file:hashes.'SHA-256' = '{hash}']","pattern_type":"stix","pattern_version":"2.1","valid_from":"2026-01-01T00:00:00Z"}}"#
        )?;
        if n % 2 == 0 {
            write!(
                out,
                r#",{{"type":"relationship","spec_version":"2.1","id":"relationship--{n:08x}-0000-4000-8000-000000000000","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-01T00:00:00.000Z","relationship_type":"indicates","source_ref":"indicator--{n:08x}-0000-4000-8000-000000000000","target_ref":"malware--00000000-0000-4000-8000-00000000beef"}}"#
            )?;
        }
    }
    write!(out, "]}}")?;
    out.flush()?;
    Ok(())
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(0.0)
}

pub fn run_feeds(args: FeedsArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.work_dir)?;
    let bundle = args.work_dir.join(format!("stix-{}.json", args.indicators));
    if !bundle.exists() {
        eprintln!("generating {} indicators into {}", args.indicators, bundle.display());
        generate(&bundle, args.indicators)?;
    }
    let bundle_bytes = std::fs::metadata(&bundle)?.len();
    let fileintel = crate::fileintel_binary()?;
    let (mut parse_seconds, mut import_seconds) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let started = Instant::now();
        let bytes = std::fs::read(&bundle)?;
        let source = fileintel_feeds::Source::new("bench", 1);
        let (verdicts, rejections) =
            fileintel_feeds::verdicts(&source, fileintel_feeds::read(fileintel_feeds::Format::Stix, &bytes));
        let parsed = started.elapsed().as_secs_f64();
        if verdicts.len() as u64 != args.indicators || !rejections.is_empty() {
            bail!("the bundle read as {} verdicts and {} rejections", verdicts.len(), rejections.len());
        }
        drop((verdicts, bytes));
        parse_seconds.push(parsed);

        let store = args.work_dir.join(format!("feeds-store-{round}"));
        let _ = std::fs::remove_dir_all(&store);
        let started = Instant::now();
        let status = Command::new(&fileintel)
            .args(["feeds", "import", "--format", "stix", "--source", "bench", "--data-dir"])
            .arg(&store)
            .arg(&bundle)
            .stdout(Stdio::null())
            .status()?;
        let imported = started.elapsed().as_secs_f64();
        if !status.success() {
            bail!("fileintel feeds import failed: {status}");
        }
        let _ = std::fs::remove_dir_all(&store);
        import_seconds.push(imported);
        eprintln!("round {}: parse {parsed:.2} s, import {imported:.2} s", round + 1);
    }
    let count = args.indicators as f64;
    let (parse, import) = (median(parse_seconds.clone()), median(import_seconds.clone()));
    let figures = Figures {
        indicators: args.indicators,
        bundle_bytes,
        parse_seconds,
        import_seconds,
        parse_per_second: count / parse,
        import_per_second: count / import,
        ratio: parse / import,
    };
    println!(
        "{} indicators, {:.0} MB: parse-only {:.0}/s, fileintel feeds import {:.0}/s, ratio {:.2}",
        figures.indicators,
        figures.bundle_bytes as f64 / 1e6,
        figures.parse_per_second,
        figures.import_per_second,
        figures.ratio
    );
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_vec_pretty(&figures)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
