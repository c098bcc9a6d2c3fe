//! `fileintel serve`: the API, on the embedded store or on PostgreSQL shared by several replicas.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use fileintel_server::limits::{Limiter, Window};
use fileintel_server::{AppState, AuthState, RateLimits, RustlsConfig, ServerConfig};
use fileintel_store::{Ingestor, Store};

use crate::StoreArgs;

/// Observations the `--demo` flag loads: five made-up files (their hashes are those of short
/// strings, see README) seen by devices of two tenants.
const DEMO_OBSERVATIONS: &str = include_str!("../demo/observations.ndjson");

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
    /// Feed sources `POST /api/feeds/import` takes: a JSON array of {"name", "rank", "labels"}.
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

/// The demo observations with their times moved forward by whole days, so that the newest falls
/// within the last day and `/stats` (which looks back at most 30 days) has something to count.
/// Loading again on the same day changes nothing; on a later day the devices are seen again.
fn demo_observations(now: std::time::SystemTime) -> String {
    const DAY: i64 = 86_400 * 10_000_000;
    let now = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| (elapsed.as_nanos() / 100) as i64);
    let mut lines: Vec<serde_json::Value> =
        DEMO_OBSERVATIONS.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let time = |line: &serde_json::Value| {
        line["timestamp"].as_str().and_then(|text| fileintel_core::Timestamp::parse(text).ok()).map(|time| time.0)
    };
    let newest = lines.iter().filter_map(time).max().unwrap_or(now);
    let shift = (now - newest).div_euclid(DAY).max(0) * DAY;
    for line in &mut lines {
        if let Some(ticks) = time(line) {
            line["timestamp"] = fileintel_core::Timestamp(ticks + shift).to_string().into();
        }
    }
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// The demo application's client id: fixed, so the README can name it; its secret changes at
/// every start.
const DEMO_CLIENT_ID: &str = "00000000-0000-0000-0000-00000000de70";
const DEMO_TENANT: &str = "contoso";

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers {
        runtime.worker_threads(workers.max(1));
    }
    runtime.enable_all().build().context("starting the runtime")?.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listen = args.listen;
    use fileintel_server::backend::{OpenedStore, open_store};
    let (store, address, listener, location) = match open_store(&args.store.settings()).await? {
        // Replicas keep no state of their own: everything is in the database.
        OpenedStore::Postgres(database) => {
            let (listener, address) = bind(listen).await?;
            let sweeper = database.clone();
            every_six_hours(move |now| {
                let store = sweeper.clone();
                async move { store.sweep_windows(now).await }
            });
            // Only the admin socket lives there, which is its owner's alone.
            fileintel_store::create_private_dir(&args.store.data_dir)
                .with_context(|| format!("creating {}", args.store.data_dir.display()))?;
            (Arc::new(database) as Arc<dyn Store>, address, listener, "PostgreSQL".to_owned())
        }
        OpenedStore::Embedded(store) => {
            let (listener, address) = bind(listen).await?;
            // The scheme clients reach it by, for the command a second process suggests.
            let scheme = if args.tls_cert.is_some() && args.tls_key.is_some() { "https" } else { "http" };
            store
                .describe_holder(&format!(
                    "fileintel serve (pid {}) listening on {scheme}://{}",
                    std::process::id(),
                    reachable(address)
                ))
                .context("recording the lock holder")?;
            let sweeper = store.clone();
            every_six_hours(move |now| {
                let store = sweeper.clone();
                async move {
                    tokio::task::spawn_blocking(move || store.sweep_windows(now))
                        .await
                        .map_err(|error| fileintel_store::StoreError::Backend(format!("the sweep task: {error}")))?
                }
            });
            (Arc::new(store) as Arc<dyn Store>, address, listener, args.store.data_dir.display().to_string())
        }
    };
    if args.demo {
        let mut ingestor = Ingestor::new(store.clone(), 10_000);
        ingestor.push(demo_observations(std::time::SystemTime::now()).as_bytes()).await?;
        let summary = ingestor.finish().await?;
        tracing::info!(observations = summary.accepted, "demo data loaded");
    }
    let mut config = ServerConfig::for_address(address);
    config.max_ingest_bytes = args.max_ingest_bytes;
    config.max_analyze_bytes = args.max_analyze_bytes;
    config.max_feed_bytes = args.max_feed_bytes;
    config.max_uploads = args.max_uploads;
    config.connections = fileintel_server::ConnectionLimits {
        header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
        body_timeout: std::time::Duration::from_secs(args.body_timeout.max(1)),
        max_connections: args.max_connections.max(1),
    };
    config.analyzer = args.trust.analyzer()?;
    config.keep_analyzed = args.keep_analyzed.clone();
    config.feed_sources = crate::feeds::load_sources(args.feed_sources.as_ref())?;
    config.trusted_proxies = args.trusted_proxies.clone();
    let tls =
        match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                config.scheme = "https".into();
                Some(RustlsConfig::from_pem_file(cert, key).await.with_context(|| {
                    format!("loading the TLS certificate {} and key {}", cert.display(), key.display())
                })?)
            }
            _ => None,
        };
    let scheme = config.scheme.clone();
    let public_urls =
        if args.public_url.is_empty() { default_public_urls(&config.scheme, address) } else { args.public_url.clone() };
    let keys = crate::identity::signing_keys(store.as_ref()).await?;
    let auth = AuthState::new(!args.insecure_no_auth, public_urls, keys, fileintel_auth::tokens::default_audiences())
        .context("loading the signing keys")?
        .with_view_data_roles(args.view_data_roles.clone());
    let mut external_tenants = Vec::new();
    let auth = match &args.trusted_issuers {
        Some(path) => {
            let issuers = fileintel_server::issuers::ExternalIssuers::load(path).map_err(anyhow::Error::msg)?;
            external_tenants.extend(issuers.tenants().map(str::to_owned));
            auth.with_external_issuers(issuers)
        }
        None => auth,
    };
    let demo_secret = match args.demo {
        true => Some(crate::identity::refresh_demo_application(store.as_ref(), DEMO_TENANT, DEMO_CLIENT_ID).await?),
        false => {
            // The demo application's secrets were printed: it lives only while --demo is given.
            if store.delete_application(DEMO_TENANT, DEMO_CLIENT_ID).await.context("removing the demo application")? {
                tracing::info!("removed the demo application (serve without --demo)");
            }
            None
        }
    };
    let applications = store.list_applications().await.context("listing the applications")?;
    let known = KnownCallers {
        tenants: applications
            .iter()
            .map(|application| application.tenant.clone())
            .chain(store.list_users().await.context("listing the users")?.into_iter().map(|user| user.tenant))
            .chain(external_tenants)
            .collect(),
        applications: applications.iter().map(|application| application.client_id.clone()).collect(),
        external_issuers: args.trusted_issuers.is_some(),
    };
    let (limits, limiter) = rate_limits(&args, &known)?;
    let state = AppState::new(store, config, auth).with_rate_limits(limits, limiter);
    if args.store.database.database_url.is_some() {
        refresh_keys(state.clone());
    }
    if args.insecure_no_auth {
        tracing::warn!(
            %address,
            "AUTHENTICATION IS OFF (--insecure-no-auth): anyone who can reach this address can read and write everything"
        );
    }
    // Bound before the address is announced, so that whoever reads it can use the socket at once.
    let admin = bind_admin_socket(&args.store.data_dir)?;
    tracing::info!(%address, store = %location, "fileintel is serving");
    // On stdout as well, for scripts and tests that asked for port 0.
    say(&format!("fileintel listening on {scheme}://{address}"));
    if applications.is_empty() && !args.insecure_no_auth {
        say(&format!(
            "no application may obtain a token yet; register one with:\n  {}",
            apps_create_command(&args.store)
        ));
    }
    if let Some(secret) = demo_secret {
        // Commands to paste as they are: an address a client can reach, curl failing loudly
        // (-f), and over TLS the certificate to trust (the file served, which holds the chain).
        let url = format!("{scheme}://{}", reachable(address));
        let curl = match &args.tls_cert {
            Some(cert) if tls.is_some() => format!("curl -sSf --cacert {}", shell_word(&std::path::absolute(cert)?)),
            _ => "curl -sSf".to_owned(),
        };
        say(&format!(
            "demo application (tenant {DEMO_TENANT}, a new secret at every start):\n  \
             TOKEN=$({curl} {url}/{DEMO_TENANT}/oauth2/v2.0/token -d grant_type=client_credentials \\\n    \
             -d client_id={DEMO_CLIENT_ID} -d client_secret={secret} \\\n    \
             -d scope=https://api.securitycenter.microsoft.com/.default | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n  \
             {curl} -H \"Authorization: Bearer $TOKEN\" {url}/api/files/2c4cd67ad70a478e658e5a9cbf26ae44e666d039"
        ));
    }
    // One signal stops both the API and the admin socket.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    tokio::spawn(fileintel_server::admin::serve(admin, state.clone(), until_stopped()));
    match tls {
        Some(tls) => fileintel_server::serve_tls(listener, tls, state, until_stopped()).await.context("serving")?,
        None => fileintel_server::serve(listener, state, until_stopped()).await.context("serving")?,
    }
    tracing::info!("stopped");
    Ok(())
}

/// Replicas share signing keys through the database: a key rotated through any of them (or with
/// `fileintel keys rotate`) is read by all within half a minute and signs from then on. A token
/// naming a key not read yet is checked after reading the keys at once (see `authenticate`).
fn refresh_keys(state: AppState) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(30));
        every.tick().await;
        loop {
            every.tick().await;
            match state.store.signing_keys().await {
                Ok(keys)
                    if keys.iter().map(|key| &key.kid).ne(state.auth.key_ring().keys.iter().map(|key| &key.kid)) =>
                {
                    if let Err(error) = state.auth.set_keys(keys) {
                        tracing::warn!(%error, "the signing keys in the database are unusable");
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "reading the signing keys failed"),
            }
        }
    });
}

async fn bind(listen: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr().context("reading the bound address")?;
    Ok((listener, address))
}

/// Window entries that no look-back can reach any more are swept a minute after start, then
/// every six hours, off the request path (on PostgreSQL every replica does; the second finds
/// little left).
fn every_six_hours<F, Fut>(sweep: F)
where
    F: Fn(fileintel_core::Timestamp) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<u64, fileintel_store::StoreError>> + Send,
{
    tokio::spawn(async move {
        let mut every = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(60),
            Duration::from_secs(6 * 3600),
        );
        loop {
            every.tick().await;
            let now = fileintel_core::Timestamp(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| (elapsed.as_nanos() / 100) as i64),
            );
            match sweep(now).await {
                Ok(removed) => tracing::debug!(removed, "swept window entries out of reach"),
                Err(error) => tracing::warn!(%error, "sweeping window entries failed"),
            }
        }
    });
}

/// Who `--rate-limit` and `--rate-limit-exempt` may name besides an API: the tenants and
/// applications this server knows, so that a mistyped name is refused rather than becoming a
/// budget nobody spends.
#[derive(Debug, Default)]
struct KnownCallers {
    tenants: std::collections::BTreeSet<String>,
    applications: std::collections::BTreeSet<String>,
    /// Applications of trusted external issuers cannot be listed: any client id (a GUID) may be one.
    external_issuers: bool,
}

impl KnownCallers {
    fn is_application(&self, name: &str) -> bool {
        self.applications.contains(name) || (self.external_issuers && uuid::Uuid::try_parse(name).is_ok())
    }

    /// What `option` could have named instead of `name`.
    fn refuse(&self, option: &str, name: &str, apis: bool) -> anyhow::Error {
        let list = |names: &mut dyn Iterator<Item = &str>| {
            let names: Vec<&str> = names.collect();
            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
        };
        let mut message = format!("{option} {name}: no such ");
        if apis {
            message += &format!(
                "API, tenant or application.\nAPIs: {}\ntenants: {}\n",
                RateLimits::API_NAMES.join(", "),
                list(&mut self.tenants.iter().map(String::as_str))
            );
        } else {
            message += "application.\n";
        }
        message += &format!("applications (client ids): {}", list(&mut self.applications.iter().map(String::as_str)));
        if self.external_issuers {
            message += " (and any GUID, for applications of the trusted issuers)";
        }
        anyhow::anyhow!(message)
    }
}

/// The budgets `--rate-limit` and `--rate-limit-exempt` configure, each name checked against the
/// APIs and the callers the server knows.
fn configured_limits(
    specs: &[String],
    exempt: &[String],
    enabled: bool,
    known: &KnownCallers,
) -> anyhow::Result<RateLimits> {
    let mut limits = RateLimits { enabled, ..RateLimits::default() };
    for client_id in exempt {
        if !known.is_application(client_id) {
            return Err(known.refuse("--rate-limit-exempt", client_id, false));
        }
        limits.exempt.insert(client_id.clone());
    }
    for spec in specs {
        let parse = || -> Option<(String, Vec<Window>)> {
            let (name, budget) = spec.split_once('=')?;
            let (minute, hour) = budget.split_once('/')?;
            // A budget of 0 would refuse everything: say so rather than accept it.
            let window = |seconds, limit: &str| {
                let limit: u64 = limit.trim().parse().ok().filter(|&limit| limit > 0)?;
                Some(Window { duration: Duration::from_secs(seconds), limit })
            };
            Some((name.trim().to_owned(), vec![window(60, minute)?, window(3600, hour)?]))
        };
        let (name, windows) =
            parse().with_context(|| format!("--rate-limit {spec}: expected NAME=PER_MINUTE/PER_HOUR"))?;
        if RateLimits::API_NAMES.contains(&name.as_str()) {
            limits.per_api.insert(name, windows);
        } else if known.tenants.contains(&name) || known.is_application(&name) {
            limits.per_caller.insert(name, windows);
        } else {
            return Err(known.refuse("--rate-limit", &name, true));
        }
    }
    Ok(limits)
}

fn rate_limits(args: &ServeArgs, known: &KnownCallers) -> anyhow::Result<(RateLimits, Limiter)> {
    let limits = configured_limits(&args.rate_limits, &args.rate_limit_exempt, !args.rate_limit_off, known)?;
    let limiter = match &args.rate_limit_redis {
        Some(url) => Limiter::with_redis(url).map_err(anyhow::Error::msg).context("--rate-limit-redis")?,
        None => Limiter::local(),
    };
    tracing::info!(backend = limiter.backend(), enabled = limits.enabled, "rate limits");
    Ok((limits, limiter))
}

/// The `fileintel apps create` command that registers a first application in this server's
/// store, ready to paste. A database password is not printed: the command then reads the URL
/// from `FILEINTEL_DATABASE_URL`, which the user has (or sets) for the server anyway.
fn apps_create_command(store: &StoreArgs) -> String {
    let place = match &store.database.database_url {
        Some(url) if url_has_password(url) => "--database-url \"$FILEINTEL_DATABASE_URL\"".to_owned(),
        Some(url) => format!("--database-url {}", shell_quoted(url)),
        None => format!("--data-dir {}", shell_quoted(&store.data_dir.display().to_string())),
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

/// `text` as one word of a POSIX shell command.
fn shell_quoted(text: &str) -> String {
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain { text.to_owned() } else { format!("'{}'", text.replace('\'', "'\\''")) }
}

/// The admin API's socket in the data directory, owner only. A stale one from a killed server
/// is replaced: holding the store's lock means no other server is using it. It is bound inside
/// the owner-only data directory, so nobody else can connect in the moment before its own mode
/// is set.
fn bind_admin_socket(data_dir: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    fileintel_store::create_private_dir(data_dir).with_context(|| format!("preparing {}", data_dir.display()))?;
    let path = data_dir.join(crate::identity::ADMIN_SOCKET);
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(|| format!("removing the stale {}", path.display()));
        }
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

/// Writes a line to stdout for whoever started the server; a closed stdout must not stop it.
/// The address a client on this machine reaches a server listening on `address` at: a loopback
/// address for one listening on all (0.0.0.0 is no address to connect to, nor a name a
/// certificate carries).
fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => (std::net::Ipv4Addr::LOCALHOST, address.port()).into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => (std::net::Ipv6Addr::LOCALHOST, address.port()).into(),
        _ => address,
    }
}

/// A path as one word of a POSIX shell command: as it is when it holds nothing the shell reads,
/// otherwise single-quoted.
fn shell_word(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:@%,".contains(c)) {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn say(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

fn default_public_urls(scheme: &str, address: SocketAddr) -> Vec<String> {
    let mut urls = vec![format!("{scheme}://{address}")];
    if address.ip().is_loopback() || address.ip().is_unspecified() {
        urls.push(format!("{scheme}://localhost:{}", address.port()));
        urls.push(format!("{scheme}://127.0.0.1:{}", address.port()));
    }
    urls.dedup();
    urls
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

    fn known() -> KnownCallers {
        KnownCallers {
            tenants: ["contoso".to_owned()].into(),
            applications: ["11111111-2222-3333-4444-555555555555".to_owned()].into(),
            external_issuers: false,
        }
    }

    fn specs(specs: &[&str]) -> Vec<String> {
        specs.iter().map(|spec| spec.to_string()).collect()
    }

    #[test]
    fn every_api_the_throttle_knows_can_be_given_its_own_budget() {
        for api in RateLimits::API_NAMES {
            let limits = configured_limits(&specs(&[&format!("{api}=10/100")]), &[], true, &known()).unwrap();
            let windows = &limits.per_api[api];
            assert_eq!((windows[0].limit, windows[1].limit), (10, 100), "{api}");
            assert!(limits.per_caller.is_empty(), "{api} is an API, not a caller");
            assert_eq!(limits.windows(api, "contoso", "any").len(), 2);
        }
        let limits = configured_limits(&specs(&["stats=10/100"]), &[], true, &known()).unwrap();
        assert_eq!(limits.windows("stats", "contoso", "any")[0].limit, 10);
        assert_eq!(limits.windows("files", "contoso", "any")[0].limit, 100, "other APIs keep MDE's budget");
    }

    #[test]
    fn a_known_tenant_or_application_gets_a_budget_of_its_own() {
        let app = "11111111-2222-3333-4444-555555555555";
        let limits = configured_limits(&specs(&["contoso=5/50", &format!("{app}=7/70")]), &[], true, &known()).unwrap();
        assert!(limits.per_api.is_empty());
        assert_eq!(limits.windows("files", "contoso", "another app")[0].limit, 5);
        assert_eq!(limits.windows("files", "contoso", app)[0].limit, 7, "the application's budget comes first");
        assert_eq!(limits.windows("files", "fabrikam", "another app")[0].limit, 100);
    }

    #[test]
    fn a_name_that_is_no_api_tenant_or_application_is_refused_with_the_valid_names() {
        let error = configured_limits(&specs(&["stat=10/100"]), &[], true, &known()).unwrap_err().to_string();
        assert!(error.starts_with("--rate-limit stat: no such API, tenant or application"), "{error}");
        for name in RateLimits::API_NAMES.into_iter().chain(["contoso", "11111111-2222-3333-4444-555555555555"]) {
            assert!(error.contains(name), "{name} is not listed in: {error}");
        }
        let guid = "99999999-2222-3333-4444-555555555555";
        assert!(configured_limits(&specs(&[&format!("{guid}=1/1")]), &[], true, &known()).is_err());
        let external = KnownCallers { external_issuers: true, ..known() };
        assert!(
            configured_limits(&specs(&[&format!("{guid}=1/1")]), &[], true, &external).is_ok(),
            "an external issuer's application cannot be listed, so any client id may be one"
        );
        assert!(configured_limits(&specs(&["fabrikam=1/1"]), &[], true, &external).is_err());
    }

    #[test]
    fn only_a_known_application_can_be_exempted() {
        let app = "11111111-2222-3333-4444-555555555555";
        let limits = configured_limits(&[], &specs(&[app]), true, &known()).unwrap();
        assert!(limits.exempt.contains(app));
        let error = configured_limits(&[], &specs(&["contoso"]), true, &known()).unwrap_err().to_string();
        assert!(error.starts_with("--rate-limit-exempt contoso: no such application"), "{error}");
        assert!(error.contains(app), "{error}");
    }

    #[test]
    fn a_malformed_or_zero_budget_is_refused() {
        for spec in ["files", "files=10", "files=0/100", "files=ten/100"] {
            assert!(configured_limits(&specs(&[spec]), &[], true, &known()).is_err(), "{spec}");
        }
    }

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

    #[test]
    fn demo_times_move_forward_by_whole_days_only() {
        let day = std::time::Duration::from_secs(86_400);
        let authored = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let later = authored + 40 * day + std::time::Duration::from_secs(3600);
        let original: Vec<serde_json::Value> =
            DEMO_OBSERVATIONS.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let moved: Vec<serde_json::Value> =
            demo_observations(later).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(moved.len(), original.len());
        let time =
            |line: &serde_json::Value| fileintel_core::Timestamp::parse(line["timestamp"].as_str().unwrap()).unwrap();
        let newest = moved.iter().map(time).max().unwrap();
        let seconds = later.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let now = fileintel_core::Timestamp::from_unix_seconds(seconds);
        assert!(newest <= now && now.0 - newest.0 < 86_400 * 10_000_000, "{newest:?} vs {now:?}");
        let shift = time(&moved[0]).0 - time(&original[0]).0;
        assert_eq!(shift % (86_400 * 10_000_000), 0, "whole days");
        for (moved, original) in moved.iter().zip(&original) {
            assert_eq!(time(moved).0 - time(original).0, shift, "every time moves alike");
            assert_eq!(moved["sha1"], original["sha1"], "only times change");
        }
    }
}
