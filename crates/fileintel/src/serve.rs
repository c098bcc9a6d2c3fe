//! `fileintel serve`: the API, on the embedded store or on PostgreSQL shared by several replicas.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use fileintel_server::application::{Config, RateLimitConfig, TlsFiles, shell_word};
use fileintel_server::{Application, ConnectionLimits};

use crate::StoreArgs;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    trust: crate::roots::TrustArgs,
    /// Address to listen on; port 0 picks a free one (the log says which).
    #[arg(long, env = "FILEINTEL_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Load the demo observations before serving (idempotent: loading twice changes no count).
    #[arg(long, env = "FILEINTEL_DEMO")]
    demo: bool,
    /// Largest body `POST /api/ingest/observations` takes, in bytes.
    #[arg(long, env = "FILEINTEL_MAX_INGEST_BYTES", default_value_t = 4 << 30)]
    max_ingest_bytes: u64,
    /// Largest file `POST /api/files/analyze` takes, in bytes.
    #[arg(long, env = "FILEINTEL_MAX_ANALYZE_BYTES", default_value_t = 256 << 20)]
    max_analyze_bytes: u64,
    /// Largest feed `POST /api/feeds/import` takes, in bytes (a feed is read whole).
    #[arg(long, env = "FILEINTEL_MAX_FEED_BYTES", default_value_t = 64 << 20)]
    max_feed_bytes: u64,
    /// Seconds past this server's clock an ingested observation's time may be; a later one (or
    /// one before 2000) is rejected, with its position, rather than set a file's first or last
    /// sighting.
    #[arg(long, env = "FILEINTEL_MAX_CLOCK_SKEW", default_value_t = fileintel_core::DEFAULT_CLOCK_SKEW_SECONDS)]
    max_clock_skew: u32,
    /// Uploads (ingestion, feed imports, analyses) read at once; more get 429 with Retry-After.
    #[arg(long, env = "FILEINTEL_MAX_UPLOADS", default_value_t = 4)]
    max_uploads: usize,
    /// Seconds a connection may take to send a request's headers, and may stay idle between requests.
    #[arg(long, env = "FILEINTEL_HEADER_TIMEOUT", default_value_t = 30)]
    header_timeout: u64,
    /// Seconds a request body may stall before the request fails.
    #[arg(long, env = "FILEINTEL_BODY_TIMEOUT", default_value_t = 60)]
    body_timeout: u64,
    /// Connections served at once; more are closed at once.
    #[arg(long, env = "FILEINTEL_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Keep the bytes of files sent to `POST /api/files/analyze` in this folder, named by their
    /// SHA-256 (by default they are dropped once analysed).
    #[arg(long, env = "FILEINTEL_KEEP_ANALYZED")]
    keep_analyzed: Option<std::path::PathBuf>,
    /// Feed sources: a JSON array of {"name", "rank", "labels", "writers", "tenant"}; a source is
    /// written by the operator alone (the CLI, the admin socket) unless its "writers" name
    /// tenants, whose `POST /api/feeds/import` it then takes; one with "tenant" is that tenant's
    /// own, speaks to it alone, and is written by the operator and that tenant.
    #[arg(long, env = "FILEINTEL_FEED_SOURCES")]
    feed_sources: Option<std::path::PathBuf>,
    /// Worker threads for the HTTP runtime (default: one per core).
    #[arg(long, env = "FILEINTEL_WORKERS")]
    workers: Option<usize>,
    /// Serve without authentication: every caller may read and write. For local experiments only.
    #[arg(long, env = "FILEINTEL_INSECURE_NO_AUTH")]
    insecure_no_auth: bool,
    /// Base URLs clients reach this server at (e.g. https://fileintel.example.com); tokens name
    /// one of them as issuer. Default: the listen address, and localhost for a loopback one.
    #[arg(long, env = "FILEINTEL_PUBLIC_URL", value_delimiter = ',')]
    public_url: Vec<String>,
    /// Directory roles that grant "View Data" to delegated (user) callers; MDE's by default.
    #[arg(long = "view-data-role", env = "FILEINTEL_VIEW_DATA_ROLES", value_delimiter = ',',
          default_values_t = fileintel_auth::default_view_data_roles())]
    view_data_roles: Vec<String>,
    /// Share rate-limit budgets between fileintel processes through this Redis
    /// (e.g. redis://127.0.0.1:6379); without it, each process counts on its own.
    #[arg(long, env = "FILEINTEL_RATE_LIMIT_REDIS")]
    rate_limit_redis: Option<String>,
    /// A budget other than MDE's 100 a minute and 1500 an hour, as NAME=PER_MINUTE/PER_HOUR, where
    /// NAME is an API (files, stats, machines, ingest, analyze, feeds, indicators, token), a known
    /// tenant or an application's client id. Repeatable.
    #[arg(long = "rate-limit", env = "FILEINTEL_RATE_LIMITS", value_delimiter = ',')]
    rate_limits: Vec<String>,
    /// A registered application (client id) that is never rate limited. Repeatable.
    #[arg(long = "rate-limit-exempt", env = "FILEINTEL_RATE_LIMIT_EXEMPT", value_delimiter = ',')]
    rate_limit_exempt: Vec<String>,
    /// A proxy or load balancer whose X-Forwarded-For names the real client (for the per-address
    /// limits). Repeatable.
    #[arg(long = "trusted-proxy", env = "FILEINTEL_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// A tenant whose telemetry speaks to every tenant: its devices count in every tenant's
    /// global prevalence and first and last observed, and its endpoints' reports (signer,
    /// publisher, size) are shown to all. Repeatable; by default no tenant is trusted, and each
    /// tenant's figures are its own and what fileintel's analysis and operator feeds say.
    #[arg(long = "trusted-tenant", env = "FILEINTEL_TRUSTED_TENANTS", value_delimiter = ',')]
    trusted_tenants: Vec<String>,
    /// No rate limits at all.
    #[arg(long, env = "FILEINTEL_RATE_LIMIT_OFF")]
    rate_limit_off: bool,
    /// A JSON file listing external OpenID issuers whose tokens are accepted (see README).
    #[arg(long, env = "FILEINTEL_TRUSTED_ISSUERS")]
    trusted_issuers: Option<std::path::PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. `fileintel dev-cert` makes one.
    #[arg(long, env = "FILEINTEL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "FILEINTEL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers {
        runtime.worker_threads(workers.max(1));
    }
    runtime.enable_all().build().context("starting the runtime")?.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::new(args.listen, args.store.settings());
    config.server.max_ingest_bytes = args.max_ingest_bytes;
    config.server.max_analyze_bytes = args.max_analyze_bytes;
    config.server.max_feed_bytes = args.max_feed_bytes;
    config.server.clock_skew_seconds = args.max_clock_skew;
    config.server.max_uploads = args.max_uploads;
    config.server.connections = ConnectionLimits {
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        body_timeout: Duration::from_secs(args.body_timeout.max(1)),
        max_connections: args.max_connections.max(1),
    };
    config.server.analyzer = args.trust.analyzer()?;
    config.server.keep_analyzed = args.keep_analyzed;
    config.server.feed_sources = crate::feeds::load_sources(args.feed_sources.as_ref())?;
    config.server.trusted_proxies = args.trusted_proxies;
    config.server.trust = fileintel_core::Trust::new(args.trusted_tenants);
    config.demo = args.demo;
    config.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    config.public_urls = args.public_url;
    config.insecure_no_auth = args.insecure_no_auth;
    config.view_data_roles = args.view_data_roles;
    config.trusted_issuers = args.trusted_issuers;
    config.rate_limits = RateLimitConfig {
        budgets: args.rate_limits,
        exempt: args.rate_limit_exempt,
        off: args.rate_limit_off,
        redis: args.rate_limit_redis,
        clock: None,
    };
    config.apps_create_command = apps_create_command(&args.store);
    Application::build(config).await?.run_until(shutdown_signal()).await
}

/// The `fileintel apps create` command that registers a first application in this server's
/// store, ready to paste. A database password is not printed: the command then reads the URL
/// from `FILEINTEL_DATABASE_URL`, which the user has (or sets) for the server anyway.
fn apps_create_command(store: &StoreArgs) -> String {
    let place = match &store.database.database_url {
        Some(url) if url_has_password(url) => "--database-url \"$FILEINTEL_DATABASE_URL\"".to_owned(),
        Some(url) => format!("--database-url {}", shell_word(url)),
        None => format!("--data-dir {}", shell_word(&store.data_dir.display().to_string())),
    };
    format!("fileintel apps create {place} --tenant my-tenant --name my-app --role File.Read.All")
}

/// Whether a PostgreSQL URL (or key=value connection string) carries a password.
fn url_has_password(url: &str) -> bool {
    let authority = url.split_once("://").map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or_default());
    let in_authority =
        authority.and_then(|authority| authority.rsplit_once('@')).is_some_and(|(user, _)| user.contains(':'));
    in_authority || url.contains("password")
}

async fn shutdown_signal() {
    let interrupt = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_create_hint_names_the_store_and_never_a_database_password() {
        let mut store = StoreArgs { data_dir: "my data".into(), cache_mb: 1, database: crate::DatabaseArgs::default() };
        assert_eq!(
            apps_create_command(&store),
            "fileintel apps create --data-dir 'my data' --tenant my-tenant --name my-app --role File.Read.All"
        );
        store.database.database_url = Some("postgres://postgres@127.0.0.1:5432/test".into());
        assert!(apps_create_command(&store).contains("--database-url postgres://postgres@127.0.0.1:5432/test "));
        for url in ["postgres://app:s3cret@db/fileintel", "host=db user=app password=s3cret"] {
            store.database.database_url = Some(url.into());
            let command = apps_create_command(&store);
            assert!(!command.contains("s3cret"), "{command}");
            assert!(command.contains("--database-url \"$FILEINTEL_DATABASE_URL\""), "{command}");
        }
    }
}
