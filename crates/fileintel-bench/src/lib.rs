//! Benchmarks for fileintel, a binary of their own beside the product (`fileintel` carries no
//! benchmark code), run as `fileintel-bench lookups|telemetry|analysis|feeds` after
//! `cargo build --release --workspace`; they drive the `fileintel` binary built beside them:
//!
//! - ingestion: `fileintel ingest` of synthetic NDJSON into a fresh store, against a parse-only
//!   pass over the same bytes in this process (observations per second, and the ratio);
//! - lookups: `GET /api/files/{id}` for random known hashes on `fileintel serve`, against a
//!   ceiling server that answers every request with the same bytes and does nothing else, loaded by
//!   the same `wrk` with the same settings in alternating rounds (requests per second, p50/p99, the
//!   ratio ours/ceiling), plus the server's peak RSS and the store's bytes on disk per file.
//!
//! Figures go to stdout and, as JSON, to `--out`.

pub mod analysis;
pub mod ceiling;
pub mod feeds;
pub mod synth;
pub mod telemetry;

use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use serde::Serialize;

pub use analysis::{AnalysisArgs, run_analysis};
pub use ceiling::{CeilingArgs, run_ceiling};
pub use feeds::{FeedsArgs, run_feeds};
pub use telemetry::{TelemetryArgs, run_telemetry};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Synthetic files in the store (10000000 for the record).
    #[arg(long, default_value_t = 1_000_000)]
    pub files: u64,
    /// Folder for the generated input, the store and the logs (reused input when the size matches).
    #[arg(long, default_value = "bench-out")]
    pub work_dir: PathBuf,
    /// Seconds per load round.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Rounds per server, alternating ours and the ceiling.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Open connections wrk keeps.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    pub wrk_threads: u32,
    /// Server worker threads (the same for ours and the ceiling).
    #[arg(long, default_value_t = 2)]
    pub server_workers: u32,
    /// Skip ingestion and reuse the store already in the work dir.
    #[arg(long)]
    pub reuse_store: bool,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run our server with authentication on: register an application, get a token, and send it
    /// with every request (to the ceiling too, which ignores it). Without it, `--insecure-no-auth`.
    #[arg(long)]
    pub auth: bool,
    /// With --auth: keep rate limits in this Redis (e.g. redis://127.0.0.1:6379) instead of in the
    /// server process. The benchmark application's budget is raised so it is never refused.
    #[arg(long, requires = "auth")]
    pub redis: Option<String>,
    /// Keep the store in PostgreSQL instead of the embedded store: the database
    /// `fileintel_bench_<files>` is made afresh on the server this URL names (e.g.
    /// postgres://postgres@127.0.0.1:5432/postgres) and kept after the run.
    #[arg(long)]
    pub database_url: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct LoadFigures {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// `embedded` or `postgresql`.
    pub backend: String,
    pub files: u64,
    pub observations: u64,
    pub machine: String,
    pub date: String,
    pub ingest_observations_per_second: f64,
    pub parse_only_observations_per_second: f64,
    pub ingest_ratio: f64,
    pub disk_bytes: u64,
    pub disk_bytes_per_file: f64,
    pub ours_rounds: Vec<LoadFigures>,
    pub ceiling_rounds: Vec<LoadFigures>,
    pub ours: LoadFigures,
    pub ceiling: LoadFigures,
    pub lookup_ratio: f64,
    pub server_peak_rss_mb: f64,
    pub wrk: String,
    pub authentication: bool,
    pub rate_limits: String,
}

/// Kills a child process when dropped, so a failed benchmark leaves no server behind.
pub(crate) struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fileintel ingest` of `input` into a fresh `data_dir`.
/// `fileintel ingest` of `input` into a fresh store: `store` names it (`--data-dir DIR`, or
/// `--database-url URL` of a fresh database); the data directory is removed first.
pub(crate) fn ingest_fresh(
    exe: &Path,
    store: &[std::ffi::OsString],
    data_dir: &Path,
    input: &Path,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(data_dir);
    let status = Command::new(exe)
        .arg("ingest")
        .args(store)
        .arg(input)
        .stdout(Stdio::null())
        .status()
        .context("running fileintel ingest")?;
    if !status.success() {
        bail!("fileintel ingest failed: {status}");
    }
    Ok(())
}

/// The `fileintel` binary the benchmarks measure: `FILEINTEL_BIN`, or the one beside this
/// benchmark binary (`cargo build --release --workspace` builds both into `target/release`).
pub(crate) fn fileintel_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FILEINTEL_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("finding the benchmark binary")?;
    let fileintel = exe.with_file_name("fileintel");
    if !fileintel.exists() {
        bail!(
            "no fileintel binary beside {}: build it with `cargo build --release` (or name one in FILEINTEL_BIN)",
            exe.display()
        );
    }
    Ok(fileintel)
}

/// Starts the ceiling server (this binary's hidden `ceiling` command) answering `body_file` on
/// a free port.
pub(crate) fn start_ceiling(body_file: &Path, workers: u32) -> anyhow::Result<(SocketAddr, Guard)> {
    let address = free_port()?;
    let exe = std::env::current_exe().context("finding the benchmark binary")?;
    let child = Command::new(exe)
        .args(["ceiling", "--listen", &address.to_string(), "--workers", &workers.to_string(), "--body-file"])
        .arg(body_file)
        .stdout(Stdio::null())
        .spawn()
        .context("starting the ceiling server")?;
    Ok((address, Guard(child)))
}

pub(crate) fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

pub(crate) fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => dir_size(&entry.path()),
            // Allocated blocks, not the apparent length: journals are preallocated sparse files.
            Ok(metadata) => std::os::unix::fs::MetadataExt::blocks(&metadata) * 512,
            Err(_) => 0,
        })
        .sum()
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024 / 1024)
        .unwrap_or(0);
    format!("{cores} cores, {memory} GiB, {cpu}")
}

pub(crate) fn today() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("the lookup benchmark needs wrk on the PATH (Debian: apt-get install wrk)");
    }
    std::fs::create_dir_all(&args.work_dir).context("creating the work dir")?;
    let exe = crate::fileintel_binary()?;
    let fleet = synth::Fleet::for_files(args.files);
    let mut report = Report { files: args.files, machine: machine(), date: today(), ..Default::default() };
    let input = args.work_dir.join(format!("observations-{}.ndjson", args.files));
    let data_dir = args.work_dir.join(format!("data-{}", args.files));
    // On PostgreSQL the data directory holds only the server's admin socket; `store` names the
    // store for every command: the data directory, or the database.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let database = match &args.database_url {
        Some(server) => {
            let name = format!("fileintel_bench_{}", args.files);
            Some(match args.reuse_store {
                true => fileintel_postgres::testing::with_database(server, &name),
                false => runtime
                    .block_on(fileintel_postgres::testing::recreate_database(server, &name))
                    .with_context(|| format!("making the database {name}"))?,
            })
        }
        None => None,
    };
    let store: Vec<std::ffi::OsString> = match &database {
        Some(url) => vec!["--database-url".into(), url.into(), "--data-dir".into(), data_dir.clone().into()],
        None => vec!["--data-dir".into(), data_dir.clone().into()],
    };
    report.backend = if database.is_some() { "postgresql".into() } else { "embedded".into() };
    // PostgreSQL's empty database (catalogs, the schema) is not the files' bytes.
    let database_bytes = |runtime: &tokio::runtime::Runtime| -> anyhow::Result<u64> {
        let Some(url) = &database else { return Ok(0) };
        runtime.block_on(async {
            use fileintel_store::Store;
            let store = fileintel_postgres::PgStore::connect(url, fileintel_postgres::PgOptions::default()).await?;
            Ok(store.stats().await?.disk_bytes)
        })
    };
    let empty_bytes = if args.reuse_store { 0 } else { database_bytes(&runtime)? };

    if !args.reuse_store {
        if !input.exists() {
            eprintln!("generating {} ...", input.display());
            let partial = input.with_extension("partial");
            let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial)?);
            synth::write_observations(&mut out, &fleet, 42)?;
            out.flush()?;
            drop(out);
            std::fs::rename(&partial, &input)?;
        }
        // Parse-only reference: the same bytes through the same reader, results dropped.
        eprintln!("parse-only pass ...");
        let (observations, parse_seconds) = parse_only(&input)?;
        report.observations = observations;
        report.parse_only_observations_per_second = observations as f64 / parse_seconds;

        eprintln!("fileintel ingest ...");
        let started = Instant::now();
        ingest_fresh(&exe, &store, &data_dir, &input)?;
        let ingest_seconds = started.elapsed().as_secs_f64();
        report.ingest_observations_per_second = observations as f64 / ingest_seconds;
        report.ingest_ratio = report.ingest_observations_per_second / report.parse_only_observations_per_second;
    }
    report.disk_bytes = match &database {
        Some(_) => database_bytes(&runtime)?.saturating_sub(empty_bytes),
        None => dir_size(&data_dir),
    };
    report.disk_bytes_per_file = report.disk_bytes as f64 / args.files as f64;

    // Servers: ours on the store, the ceiling on one of our responses.
    report.authentication = args.auth;
    report.rate_limits = match (args.auth, &args.redis) {
        (false, _) => "off".into(),
        (true, None) => "on, in process".into(),
        (true, Some(_)) => "on, in redis".into(),
    };
    let credentials = if args.auth { Some(register_application(&exe, &store)?) } else { None };
    let ours_address = free_port()?;
    let log = std::fs::File::create(args.work_dir.join("serve.log"))?;
    let ours = Guard(
        Command::new(&exe)
            .arg("serve")
            .args(&store)
            .args(["--listen", &ours_address.to_string(), "--workers", &args.server_workers.to_string()])
            .args(server_flags(&args, &fleet, credentials.as_ref()))
            .env("FILEINTEL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting fileintel serve")?,
    );
    let (sha1, _, _) = synth::file_hashes(0);
    let sample_path = format!("/api/files/{sha1}");
    let token = match &credentials {
        Some((client_id, secret)) => Some(fetch_token(ours_address, client_id, secret, Duration::from_secs(300))?),
        None => None,
    };
    let body = wait_and_get(ours_address, &sample_path, token.as_deref(), Duration::from_secs(300))?;
    let body_file = args.work_dir.join("ceiling-body.json");
    std::fs::write(&body_file, &body)?;
    let (ceiling_address, _ceiling) = start_ceiling(&body_file, args.server_workers)?;
    wait_and_get(ceiling_address, &sample_path, None, Duration::from_secs(30))?;

    // Random known hashes, all three kinds, for wrk to pick from.
    let paths_file = args.work_dir.join("paths.txt");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut paths = BufWriter::new(std::fs::File::create(&paths_file)?);
    for i in 0..100_000u64 {
        let (sha1, sha256, md5) = synth::file_hashes(rng.random_range(0..args.files));
        match i % 3 {
            0 => writeln!(paths, "/api/files/{sha256}")?,
            1 => writeln!(paths, "/api/files/{sha1}")?,
            _ => writeln!(paths, "/api/files/{md5}")?,
        }
    }
    paths.flush()?;
    drop(paths);
    let script = args.work_dir.join("random-paths.lua");
    std::fs::write(&script, WRK_SCRIPT)?;
    let load = Load { threads: args.wrk_threads, connections: args.connections, seconds: args.seconds };
    report.wrk = load.describe();

    for round in 0..args.rounds {
        for (name, address) in [("fileintel", ours_address), ("ceiling", ceiling_address)] {
            let figures = wrk(load, address, &script, &paths_file, token.as_deref())?;
            eprintln!(
                "round {}: {name:9} {:>10.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                round + 1,
                figures.requests_per_second,
                figures.p50_ms,
                figures.p99_ms,
                figures.errors
            );
            if name == "fileintel" { report.ours_rounds.push(figures) } else { report.ceiling_rounds.push(figures) }
        }
    }
    report.ours = median(&report.ours_rounds);
    report.ceiling = median(&report.ceiling_rounds);
    report.lookup_ratio = report.ours.requests_per_second / report.ceiling.requests_per_second;
    report.server_peak_rss_mb = peak_rss_mb(ours.0.id()).unwrap_or(0.0);
    drop(ours);

    print_report(&report);
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) const WRK_SCRIPT: &str = r#"-- Picks a random known hash for every request.
local paths = {}
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(os.time() + (args[2] and tonumber(args[2]) or 0))
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"#;

fn parse_only(input: &Path) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut reader = fileintel_core::NdjsonReader::new();
    let mut file = std::fs::File::open(input)?;
    let mut buffer = vec![0u8; 1 << 20];
    let (mut observations, mut rejected) = (0u64, 0usize);
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        reader.push(&buffer[..read]);
        let batch = reader.take_batch();
        observations += batch.len() as u64;
        rejected += batch.rejections.len();
    }
    reader.finish();
    let batch = reader.take_batch();
    observations += batch.len() as u64;
    rejected += batch.rejections.len();
    if rejected > 0 {
        bail!("the synthetic input has {rejected} rejected lines");
    }
    Ok((observations, started.elapsed().as_secs_f64()))
}

/// Open: no authentication, no limits. Authenticated: limits on (in process or in Redis), with
/// the benchmark application's budget raised so that no request is refused.
fn server_flags(args: &BenchArgs, fleet: &synth::Fleet, credentials: Option<&(String, String)>) -> Vec<String> {
    match credentials {
        None => vec!["--insecure-no-auth".into(), "--rate-limit-off".into()],
        Some((client_id, _)) => {
            let mut flags = vec!["--rate-limit".into(), format!("{client_id}=1000000000/1000000000")];
            // The benchmark application's tenant sees the fleet's figures only through trust.
            for tenant in 0..fleet.tenants {
                flags.extend(["--trusted-tenant".into(), synth::Fleet::tenant_name(tenant)]);
            }
            if let Some(redis) = &args.redis {
                flags.extend(["--rate-limit-redis".into(), redis.clone()]);
            }
            flags
        }
    }
}

/// Registers a benchmark application (File.Read.All) in the store before the server starts.
fn register_application(exe: &Path, store: &[std::ffi::OsString]) -> anyhow::Result<(String, String)> {
    let output = Command::new(exe)
        .args(["apps", "create", "--tenant", "bench", "--name", "bench", "--role", "File.Read.All"])
        .args(store)
        .output()
        .context("running fileintel apps create")?;
    if !output.status.success() {
        bail!("fileintel apps create failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let app: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let field = |name: &str| app[name].as_str().map(str::to_owned).context("apps create printed no credentials");
    Ok((field("clientId")?, field("clientSecret")?))
}

fn fetch_token(address: SocketAddr, client_id: &str, secret: &str, patience: Duration) -> anyhow::Result<String> {
    let form = format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={secret}&scope=https://api.securitycenter.microsoft.com/.default"
    );
    let deadline = Instant::now() + patience;
    loop {
        match http_request(address, "POST", "/bench/oauth2/v2.0/token", &form, None) {
            Ok((200, body)) => {
                let answer: serde_json::Value = serde_json::from_slice(&body)?;
                return answer["access_token"].as_str().map(str::to_owned).context("no access_token in the answer");
            }
            Ok((status, body)) => bail!("token request: {status} {}", String::from_utf8_lossy(&body)),
            Err(error) if Instant::now() > deadline => return Err(error.context(format!("waiting for {address}"))),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

pub(crate) fn wait_and_get(
    address: SocketAddr,
    path: &str,
    token: Option<&str>,
    patience: Duration,
) -> anyhow::Result<Vec<u8>> {
    let deadline = Instant::now() + patience;
    loop {
        match http_request(address, "GET", path, "", token) {
            Ok((200, body)) => return Ok(body),
            Ok((status, body)) => bail!("GET {path} on {address}: {status} {}", String::from_utf8_lossy(&body)),
            Err(error) if Instant::now() > deadline => {
                return Err(error.context(format!("waiting for {address}")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A one-shot HTTP/1.1 request, enough to fetch a token or a sample response; the load itself
/// comes from wrk.
fn http_request(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let authorization = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").context("no header end")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status")?;
    Ok((status, response[split + 4..].to_vec()))
}

/// How wrk loads a server: threads, connections, seconds per round.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    threads: u32,
    connections: u32,
    seconds: u64,
}

impl Load {
    fn describe(&self) -> String {
        format!("wrk -t{} -c{} -d{}s --latency", self.threads, self.connections, self.seconds)
    }
}

fn wrk(
    load: Load,
    address: SocketAddr,
    script: &Path,
    paths: &Path,
    token: Option<&str>,
) -> anyhow::Result<LoadFigures> {
    let mut command = Command::new("wrk");
    if let Some(token) = token {
        command.arg("-H").arg(format!("Authorization: Bearer {token}"));
    }
    let output = command
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.seconds))
        .arg("--timeout")
        .arg("5s")
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(format!("http://{address}"))
        .arg("--")
        .arg(paths)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_wrk(&text)
        .with_context(|| format!("reading wrk's output:\n{text}{}", String::from_utf8_lossy(&output.stderr)))
}

fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

pub fn parse_wrk(text: &str) -> Option<LoadFigures> {
    let mut figures = LoadFigures::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(value)) => figures.p50_ms = duration_ms(value)?,
            (Some("99%"), Some(value)) => figures.p99_ms = duration_ms(value)?,
            (Some("Requests/sec:"), Some(value)) => figures.requests_per_second = value.parse().ok()?,
            (Some("Non-2xx"), _) => figures.errors += line.rsplit(' ').next()?.parse::<u64>().ok()?,
            (Some("Socket"), Some("errors:")) => {
                figures.errors +=
                    line.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u64>().ok()).sum::<u64>()
            }
            _ => {}
        }
    }
    (figures.requests_per_second > 0.0).then_some(figures)
}

pub(crate) fn median(rounds: &[LoadFigures]) -> LoadFigures {
    let mut sorted = rounds.to_vec();
    sorted.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    sorted.get(sorted.len() / 2).cloned().unwrap_or_default()
}

pub(crate) fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn print_report(report: &Report) {
    println!("machine: {}  date: {}", report.machine, report.date);
    println!("store: {}  files: {}  observations: {}", report.backend, report.files, report.observations);
    if report.observations > 0 {
        println!(
            "ingest: {:.0} obs/s   parse-only: {:.0} obs/s   ratio {:.2}",
            report.ingest_observations_per_second, report.parse_only_observations_per_second, report.ingest_ratio
        );
    }
    println!("disk: {} bytes, {:.1} bytes per file", report.disk_bytes, report.disk_bytes_per_file);
    println!("load: {} (median of {} rounds each)", report.wrk, report.ours_rounds.len());
    for (name, figures) in [("fileintel", &report.ours), ("ceiling", &report.ceiling)] {
        println!(
            "  {name:9} {:>10.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
            figures.requests_per_second, figures.p50_ms, figures.p99_ms, figures.errors
        );
    }
    println!("lookup ratio ours/ceiling: {:.2}", report.lookup_ratio);
    println!("server peak RSS: {:.1} MB", report.server_peak_rss_mb);
    println!(
        "authentication: {}",
        if report.authentication {
            "on (bearer token, verified once, then cached)"
        } else {
            "off (--insecure-no-auth)"
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read_in_its_units() {
        let text = "Running 1s test\n  Latency Distribution\n     50%  210.00us\n     75%  1.00ms\n     99%    1.52ms\n  1000 requests in 1.00s\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:  12345.67\n";
        let figures = parse_wrk(text).unwrap();
        assert_eq!(figures.requests_per_second, 12345.67);
        assert!((figures.p50_ms - 0.21).abs() < 1e-9);
        assert!((figures.p99_ms - 1.52).abs() < 1e-9);
        assert_eq!(figures.errors, 7);
    }
}
