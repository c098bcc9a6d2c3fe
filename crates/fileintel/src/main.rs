//! The `fileintel` binary: thin glue over the library crates.

mod analyze;
mod devcert;
mod exit;
mod feeds;
mod identity;
mod ingest;
mod migrate;
mod roots;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A file-intelligence service of your own: it answers Microsoft Defender for Endpoint's Files
/// API (`GET /api/files/{hash}`, `/stats`, `/machines`) from your telemetry (Sysmon event logs,
/// MDE exports, NDJSON), static analysis of files, and threat-intelligence feeds.
///
/// Start with `fileintel serve --demo`, which prints a token command and a first query.
#[derive(Parser)]
#[command(name = "fileintel", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API.
    Serve(Box<serve::ServeArgs>),
    /// Import observations (NDJSON, Sysmon event logs or JSON, MDE exports) into the store or through a server.
    Ingest(ingest::IngestArgs),
    /// Analyse files and folders: hashes, type, PE facts and version information, as JSON lines;
    /// with --data-dir, recorded in the store.
    Analyze(analyze::AnalyzeArgs),
    /// Threat-intelligence feeds: what they say about files decides their determinations.
    #[command(subcommand)]
    Feeds(feeds::FeedsCommand),
    /// Applications that may obtain tokens (client credentials).
    #[command(subcommand)]
    Apps(identity::AppsCommand),
    /// Users who may obtain delegated tokens (the password grant).
    #[command(subcommand)]
    Users(identity::UsersCommand),
    /// PostgreSQL: apply the schema's migrations (serve does too, at start).
    Migrate(migrate::MigrateArgs),
    /// The keys fileintel signs access tokens with.
    #[command(subcommand)]
    Keys(identity::KeysCommand),
    /// Make a local CA and a server certificate for localhost (for --tls-cert and --tls-key).
    DevCert(devcert::DevCertArgs),
    /// The roots Authenticode signatures are verified against: Microsoft's root program.
    #[command(subcommand)]
    TrustRoots(roots::TrustRootsCommand),
}

const AFTER_HELP: &str = "Exit codes: 0 done (an import took everything), 1 failed, 2 wrong command line, \
3 an import took what it could and rejected some records.";

/// Where the store lives: the embedded store in a data directory (the default), or PostgreSQL.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory of the embedded store (created by the commands that add data, if missing). With --database-url it holds
    /// only this process's own files (the admin socket).
    #[arg(long, env = "FILEINTEL_DATA_DIR", default_value = "fileintel-data")]
    pub data_dir: PathBuf,
    /// Block cache of the embedded store, in MiB: lookups are fastest when the store's filters
    /// and index blocks fit in it (about 100 MiB at 10 million files).
    #[arg(long, env = "FILEINTEL_CACHE_MB", default_value_t = fileintel_store::DEFAULT_CACHE_BYTES >> 20)]
    pub cache_mb: u64,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// PostgreSQL as the store, shared by every replica, instead of the embedded one.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DatabaseArgs {
    /// PostgreSQL to use instead of the embedded store (`postgres://user:password@host:5432/db`).
    /// TLS as libpq's `sslmode` and `sslrootcert` say: over a network, add
    /// `?sslmode=verify-full&sslrootcert=/path/to/ca.pem`. Migrations run at start.
    #[arg(long, env = "FILEINTEL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Seconds a request waits for the database (a pooled connection, then each statement)
    /// before it is answered 503 ServiceUnavailable. Statements that write may wait six times
    /// as long (at least 30 s): they may queue behind another replica's write to the same files.
    #[arg(long, env = "FILEINTEL_DATABASE_TIMEOUT", default_value_t = 5)]
    pub database_timeout: u64,
    /// Connections each process keeps to the database at most.
    #[arg(long, env = "FILEINTEL_DATABASE_CONNECTIONS", default_value_t = 16)]
    pub database_connections: usize,
}

impl DatabaseArgs {
    /// The database settings, when a database URL is given.
    pub fn settings(&self) -> Option<fileintel_server::backend::DatabaseSettings> {
        Some(fileintel_server::backend::DatabaseSettings {
            url: self.database_url.clone()?,
            timeout: std::time::Duration::from_secs(self.database_timeout),
            connections: self.database_connections,
        })
    }
}

impl StoreArgs {
    /// The settings of a command that adds data: a missing data directory is created.
    pub fn settings(&self) -> fileintel_server::backend::StoreSettings {
        fileintel_server::backend::StoreSettings {
            data_dir: self.data_dir.clone(),
            cache_bytes: self.cache_mb << 20,
            database: self.database.settings(),
            create: true,
            server_command: None,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // Help and version are asked for, not mistakes.
            return match error.use_stderr() {
                true => std::process::ExitCode::from(exit::USAGE),
                false => std::process::ExitCode::SUCCESS,
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FILEINTEL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Ingest(args) => ingest::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Feeds(command) => feeds::run(command),
        Command::Apps(command) => identity::run_apps(command),
        Command::Users(command) => identity::run_users(command),
        Command::Keys(command) => identity::run_keys(command),
        Command::DevCert(args) => devcert::run(args),
        Command::TrustRoots(command) => roots::run(command),
        Command::Migrate(args) => migrate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(exit::FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option and positional argument of `command` and of its subcommands, as
    /// "fileintel sub --option", that has no description.
    fn undescribed(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if arg.is_hide_set() || ["help", "version"].contains(&arg.get_id().as_str()) {
                continue;
            }
            if arg.get_help().is_none_or(|help| help.to_string().trim().is_empty()) {
                let name = arg.get_long().map_or_else(|| arg.get_id().to_string(), |long| format!("--{long}"));
                found.push(format!("{path} {name}"));
            }
        }
        for sub in command.get_subcommands() {
            if sub.is_hide_set() {
                continue;
            }
            if sub.get_about().is_none() {
                found.push(format!("{path} {} (the command itself)", sub.get_name()));
            }
            undescribed(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }

    #[test]
    fn every_command_and_every_option_of_every_command_has_a_description() {
        use clap::CommandFactory;
        let mut command = Cli::command();
        command.build();
        let mut found = Vec::new();
        undescribed(&command, "fileintel", &mut found);
        assert!(found.is_empty(), "without a description:\n{}", found.join("\n"));
    }

    #[test]
    fn the_help_says_what_fileintel_is_for_and_lists_the_exit_codes() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Defender for Endpoint's Files"), "{help}");
        assert!(!help.contains("Thin glue"), "{help}");
        assert!(help.contains("3 an import took what it could"), "{help}");
        for bench in ["bench-telemetry", "bench-analysis", "bench-feeds", "bench-ceiling"] {
            assert!(!help.contains(bench), "{bench} is listed: {help}");
        }
    }

    #[test]
    fn every_command_that_opens_the_embedded_store_takes_its_cache_size() {
        for command in [
            &["serve"][..],
            &["ingest", "x.ndjson"],
            &["analyze", "--data-dir", "d", "x.exe"],
            &["feeds", "import", "--format", "csv", "--source", "s", "x.csv"],
            &["apps", "list"],
            &["users", "list"],
            &["keys", "list"],
        ] {
            let line = [&["fileintel"][..], command, &["--cache-mb", "8"]].concat();
            assert!(Cli::try_parse_from(&line).is_ok(), "{line:?}");
        }
    }

    #[test]
    fn the_benchmarks_are_no_part_of_the_product() {
        for sub in ["lookups", "telemetry", "analysis", "feeds"] {
            assert!(Cli::try_parse_from(["fileintel", "bench", sub, "--help"]).is_err_and(|error| error.use_stderr()));
        }
        assert!(Cli::try_parse_from(["fileintel", "bench-ceiling", "--help"]).is_err_and(|error| error.use_stderr()));
        assert!(Cli::try_parse_from(["fileintel", "bench-telemetry"]).is_err());
    }
}
