//! `fileintel-bench telemetry`: the telemetry issue's two figures.
//!
//! - Import: `fileintel ingest --format evtx` of many real event logs (the given ones repeated,
//!   through a folder of links) into a fresh store, parse, extract and durable store included,
//!   against a reference pass in this process that only parses the same files with the `evtx`
//!   crate, in parallel across files, counting records. The reference renders each record both as
//!   XML (`records`) and as JSON (`records_json`); the ratio is taken against the faster.
//! - `/stats`: one file seen by many devices of one tenant (last seen spread over 30 days), asked
//!   for with random look-back windows by wrk, against the ceiling server answering the same bytes.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::{Guard, Load, LoadFigures, free_port, machine, median, today, wait_and_get, wrk};

#[derive(clap::Args, Debug)]
pub struct TelemetryArgs {
    /// A folder of Sysmon event logs (searched recursively for *.evtx), e.g. ../shared/testdata/evtx.
    #[arg(long)]
    pub evtx: PathBuf,
    /// How many times each log is imported (repeat until the import takes a few seconds).
    #[arg(long, default_value_t = 400)]
    pub repeat: usize,
    /// Files parsed at once, by the reference and by `fileintel ingest --jobs`.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Rounds of each import measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Devices of one tenant that have seen the file `/stats` is asked about.
    #[arg(long, default_value_t = 100_000)]
    pub devices: u64,
    /// Seconds per `/stats` load round.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Open connections wrk keeps.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// Folder for the links, the stores and the logs.
    #[arg(long, default_value = "bench-out")]
    pub work_dir: PathBuf,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip the `/stats` part.
    #[arg(long)]
    pub import_only: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct TelemetryReport {
    pub machine: String,
    pub date: String,
    pub logs: usize,
    pub repeat: usize,
    pub records: u64,
    pub observations: u64,
    pub reference_xml_records_per_second: f64,
    pub reference_json_records_per_second: f64,
    pub import_records_per_second: f64,
    pub import_observations_per_second: f64,
    pub import_ratio: f64,
    pub import_rounds_seconds: Vec<f64>,
    pub stats_devices: u64,
    pub stats: LoadFigures,
    pub ceiling: LoadFigures,
    pub stats_ratio: f64,
    pub wrk: String,
}

fn evtx_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "evtx") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Parses every file with the evtx crate on `jobs` threads, each taking the next file, and
/// counts the records: the work any importer must do, and nothing else.
fn reference(files: &[PathBuf], jobs: usize, json: bool) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let records = std::thread::scope(|scope| -> anyhow::Result<u64> {
        let workers: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<u64> {
                    let mut records = 0;
                    while let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let mut parser = evtx::EvtxParser::from_path(path)?
                            .with_configuration(evtx::ParserSettings::new().num_threads(1));
                        if json {
                            records += parser.records_json().filter(Result::is_ok).count() as u64;
                        } else {
                            records += parser.records().filter(Result::is_ok).count() as u64;
                        }
                    }
                    Ok(records)
                })
            })
            .collect();
        let mut total = 0;
        for worker in workers {
            total += worker.join().map_err(|_| anyhow::anyhow!("a reference worker panicked"))??;
        }
        Ok(total)
    })?;
    Ok((records, started.elapsed().as_secs_f64()))
}

/// A folder holding `repeat` links to each log, so that one `fileintel ingest FOLDER` reads them all.
fn link_farm(work_dir: &Path, files: &[PathBuf], repeat: usize) -> anyhow::Result<PathBuf> {
    let farm = work_dir.join(format!("evtx-x{repeat}"));
    let _ = std::fs::remove_dir_all(&farm);
    for round in 0..repeat {
        let dir = farm.join(format!("{round:05}"));
        std::fs::create_dir_all(&dir)?;
        for (index, file) in files.iter().enumerate() {
            let target = std::fs::canonicalize(file)?;
            std::os::unix::fs::symlink(target, dir.join(format!("{index:04}.evtx")))?;
        }
    }
    Ok(farm)
}

fn import(exe: &Path, work_dir: &Path, farm: &Path, jobs: usize) -> anyhow::Result<(serde_json::Value, f64)> {
    let data_dir = work_dir.join("data-telemetry");
    let _ = std::fs::remove_dir_all(&data_dir);
    let started = Instant::now();
    let output = Command::new(exe)
        .args(["ingest", "--format", "evtx", "--json", "--jobs", &jobs.to_string(), "--data-dir"])
        .arg(&data_dir)
        .arg(farm)
        .stderr(Stdio::inherit())
        .output()
        .context("running fileintel ingest")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("fileintel ingest failed: {}", output.status);
    }
    // One JSON line per input: the import's counts are their sums.
    let (mut records, mut accepted) = (0, 0);
    for line in output.stdout.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
        let summary: serde_json::Value = serde_json::from_slice(line).context("reading the summary")?;
        records += summary["records"].as_u64().unwrap_or_default();
        accepted += summary["accepted"].as_u64().unwrap_or_default();
    }
    Ok((serde_json::json!({"records": records, "accepted": accepted}), seconds))
}

pub fn run_telemetry(args: TelemetryArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.work_dir).context("creating the work dir")?;
    let exe = crate::fileintel_binary()?;
    let logs = evtx_files(&args.evtx)?;
    if logs.is_empty() {
        bail!("no .evtx files under {}", args.evtx.display());
    }
    let mut report = TelemetryReport {
        machine: machine(),
        date: today(),
        logs: logs.len(),
        repeat: args.repeat,
        stats_devices: args.devices,
        ..Default::default()
    };
    let repeated: Vec<PathBuf> = (0..args.repeat).flat_map(|_| logs.iter().cloned()).collect();
    let farm = link_farm(&args.work_dir, &logs, args.repeat)?;
    let (mut xml, mut json, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let (records, seconds) = reference(&repeated, args.jobs, false)?;
        xml.push(records as f64 / seconds);
        let (records, seconds) = reference(&repeated, args.jobs, true)?;
        json.push(records as f64 / seconds);
        report.records = records;
        let (summary, seconds) = import(&exe, &args.work_dir, &farm, args.jobs)?;
        if summary["records"].as_u64() != Some(records) {
            bail!("the import read {} records, the reference {records}", summary["records"]);
        }
        report.observations = summary["accepted"].as_u64().unwrap_or_default();
        ours.push(seconds);
        eprintln!(
            "round {round}: reference xml {:.0} rec/s, json {:.0} rec/s; fileintel ingest {:.0} rec/s ({seconds:.2} s)",
            xml.last().unwrap_or(&0.0),
            json.last().unwrap_or(&0.0),
            records as f64 / seconds
        );
    }
    let middle = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    report.reference_xml_records_per_second = middle(&mut xml);
    report.reference_json_records_per_second = middle(&mut json);
    report.import_rounds_seconds = ours.clone();
    let seconds = middle(&mut ours);
    report.import_records_per_second = report.records as f64 / seconds;
    report.import_observations_per_second = report.observations as f64 / seconds;
    report.import_ratio = report.import_records_per_second
        / report.reference_xml_records_per_second.max(report.reference_json_records_per_second);
    let _ = std::fs::remove_dir_all(&farm);

    if !args.import_only {
        stats_latency(&args, &exe, &mut report)?;
    }
    print_report(&report);
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

const STATS_SHA1: &str = "5a7e5a7e5a7e5a7e5a7e5a7e5a7e5a7e5a7e5a7e";

/// One file seen by `devices` devices of the default tenant, their last sightings spread evenly
/// over 30 days (a fifth seen once more, up to 40 days before), under five names; and by a
/// tenth as many devices of another tenant.
fn write_stats_fleet(path: &Path, devices: u64) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    // Within 719 hours, so that every device is still inside the 720-hour window when asked.
    let span = 719 * 3600;
    let mut line = |tenant: &str, device: u64, seconds_ago: i64, name: &str| -> std::io::Result<()> {
        let time = fileintel_core::Timestamp::from_unix_seconds(now - seconds_ago);
        writeln!(
            out,
            r#"{{"tenantId":"{tenant}","deviceId":"dev-{device:06}","timestamp":"{time}","sha1":"{STATS_SHA1}","fileName":"{name}"}}"#
        )
    };
    let names = ["setup.exe", "installer.exe", "update.exe", "tool.exe", "a.exe"];
    for device in 0..devices {
        let ago = (device as i64 * span) / devices as i64 + 60;
        line("default", device, ago, names[(device % 7 % 5) as usize])?;
        if device % 5 == 0 {
            line("default", device, ago + (device as i64 * 7919) % (240 * 3600), names[0])?;
        }
    }
    for device in 0..devices / 10 {
        line("other", device, (device as i64 * 3600) % span, "other.exe")?;
    }
    out.flush()?;
    Ok(())
}

fn stats_latency(args: &TelemetryArgs, exe: &Path, report: &mut TelemetryReport) -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("the /stats benchmark needs wrk on the PATH (Debian: apt-get install wrk)");
    }
    let input = args.work_dir.join("stats-fleet.ndjson");
    write_stats_fleet(&input, args.devices)?;
    let data_dir = args.work_dir.join("data-stats");
    crate::ingest_fresh(exe, &["--data-dir".into(), data_dir.clone().into()], &data_dir, &input)?;
    let address = free_port()?;
    let log = std::fs::File::create(args.work_dir.join("serve-stats.log"))?;
    let ours = Guard(
        Command::new(exe)
            .args(["serve", "--insecure-no-auth", "--rate-limit-off", "--workers", "2", "--data-dir"])
            .arg(&data_dir)
            .args(["--listen", &address.to_string()])
            .env("FILEINTEL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting fileintel serve")?,
    );
    let sample = format!("/api/files/{STATS_SHA1}/stats?lookBackHours=720");
    let body = wait_and_get(address, &sample, None, Duration::from_secs(120))?;
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    if answer["organizationPrevalence"].as_u64() != Some(args.devices) {
        bail!("/stats counts {} devices, not {}", answer["organizationPrevalence"], args.devices);
    }
    let body_file = args.work_dir.join("ceiling-stats.json");
    std::fs::write(&body_file, &body)?;
    let (ceiling_address, _ceiling) = crate::start_ceiling(&body_file, 2)?;
    wait_and_get(ceiling_address, &sample, None, Duration::from_secs(30))?;
    let paths_file = args.work_dir.join("stats-paths.txt");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let mut paths = BufWriter::new(std::fs::File::create(&paths_file)?);
    for _ in 0..10_000 {
        writeln!(paths, "/api/files/{STATS_SHA1}/stats?lookBackHours={}", rng.random_range(1..=720))?;
    }
    paths.flush()?;
    drop(paths);
    let script = args.work_dir.join("random-paths.lua");
    std::fs::write(&script, crate::WRK_SCRIPT)?;
    let load = Load { threads: 1, connections: args.connections, seconds: args.seconds };
    report.wrk = load.describe();
    let (mut ours_rounds, mut ceiling_rounds) = (Vec::new(), Vec::new());
    for round in 1..=3 {
        for (name, target) in [("fileintel", address), ("ceiling", ceiling_address)] {
            let figures = wrk(load, target, &script, &paths_file, None)?;
            eprintln!(
                "stats round {round}: {name:9} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                figures.requests_per_second, figures.p50_ms, figures.p99_ms, figures.errors
            );
            if name == "fileintel" { ours_rounds.push(figures) } else { ceiling_rounds.push(figures) }
        }
    }
    report.stats = median(&ours_rounds);
    report.ceiling = median(&ceiling_rounds);
    report.stats_ratio = report.stats.requests_per_second / report.ceiling.requests_per_second;
    drop(ours);
    Ok(())
}

fn print_report(report: &TelemetryReport) {
    println!("machine: {}  date: {}", report.machine, report.date);
    println!(
        "import: {} logs x {} = {} records, {} observations",
        report.logs, report.repeat, report.records, report.observations
    );
    println!(
        "  reference parse-only: {:.0} records/s (XML), {:.0} records/s (JSON)",
        report.reference_xml_records_per_second, report.reference_json_records_per_second
    );
    println!(
        "  fileintel ingest:     {:.0} records/s, {:.0} observations/s; ratio to the faster reference {:.2}",
        report.import_records_per_second, report.import_observations_per_second, report.import_ratio
    );
    if report.stats_devices > 0 && report.stats.requests_per_second > 0.0 {
        println!("/stats on a file seen by {} devices: {}", report.stats_devices, report.wrk);
        for (name, figures) in [("fileintel", &report.stats), ("ceiling", &report.ceiling)] {
            println!(
                "  {name:9} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                figures.requests_per_second, figures.p50_ms, figures.p99_ms, figures.errors
            );
        }
        println!("  ratio ours/ceiling: {:.2}", report.stats_ratio);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_fleet_spreads_last_sightings_over_thirty_days() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.ndjson");
        write_stats_fleet(&path, 1000).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines.len(), 1000 + 200 + 100);
        let devices: std::collections::HashSet<&str> = lines
            .iter()
            .filter(|line| line["tenantId"] == "default")
            .map(|line| line["deviceId"].as_str().unwrap())
            .collect();
        assert_eq!(devices.len(), 1000);
    }
}
