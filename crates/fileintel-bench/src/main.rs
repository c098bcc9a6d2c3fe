//! `fileintel-bench`: the benchmarks, a binary of their own so that the service a user deploys
//! carries no benchmark code. Build both binaries with `cargo build --release --workspace`, then run
//! `./target/release/fileintel-bench lookups` (see BENCHMARKS.md).

use clap::{Parser, Subcommand};

/// Benchmarks of the `fileintel` built beside this binary (see BENCHMARKS.md).
#[derive(Parser)]
#[command(name = "fileintel-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lookups against a ceiling server, and ingestion against a parse-only pass.
    Lookups(fileintel_bench::BenchArgs),
    /// Import of real event logs against a parse-only pass, and `/stats` latency.
    Telemetry(fileintel_bench::TelemetryArgs),
    /// Static analysis of real files against sha256sum and osslsigncode.
    Analysis(fileintel_bench::AnalysisArgs),
    /// Import of a generated STIX bundle against a parse-only pass.
    Feeds(fileintel_bench::FeedsArgs),
    /// The ceiling server the lookup benchmark compares against (started by `lookups`).
    #[command(hide = true)]
    Ceiling(fileintel_bench::CeilingArgs),
}

/// Exit codes as `fileintel`'s: 1 failed, 2 wrong command line.
const FAILED: u8 = 1;
const USAGE: u8 = 2;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // Help and version are asked for, not mistakes.
            return match error.use_stderr() {
                true => std::process::ExitCode::from(USAGE),
                false => std::process::ExitCode::SUCCESS,
            };
        }
    };
    let result = match cli.command {
        Command::Lookups(args) => fileintel_bench::run(args),
        Command::Telemetry(args) => fileintel_bench::run_telemetry(args),
        Command::Analysis(args) => fileintel_bench::run_analysis(args),
        Command::Feeds(args) => fileintel_bench::run_feeds(args),
        Command::Ceiling(args) => fileintel_bench::run_ceiling(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmarks_are_subcommands_of_fileintel_bench() {
        for sub in ["lookups", "telemetry", "analysis", "feeds"] {
            assert!(Cli::try_parse_from(["fileintel-bench", sub, "--help"]).is_err_and(|error| !error.use_stderr()));
        }
        assert!(Cli::try_parse_from(["fileintel-bench", "bench-telemetry"]).is_err());
    }

    #[test]
    fn the_ceiling_is_started_by_lookups_and_not_listed() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert!(!help.lines().any(|line| line.trim_start().starts_with("ceiling")), "{help}");
        let body = ["fileintel-bench", "ceiling", "--listen", "127.0.0.1:0", "--body-file", "body"];
        assert!(Cli::try_parse_from(body).is_ok());
    }
}
