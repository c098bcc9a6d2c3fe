//! The application `fileintel serve` runs, and integration tests start: built from a [`Config`],
//! bound to its address (port 0 picks a free one, which [`Application::address`] reports), and
//! run until a shutdown future resolves (zero-to-production's `Application::build`).
//!
//! Building opens the store and what the API needs (signing keys, trusted issuers, TLS, rate limits, the demo
//! data when asked for) and binds the API's listener and the admin socket; running serves both
//! and the background tasks (the window sweeper, and on a shared database the key refresh).

mod demo;
mod rate_limits;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fileintel_store::Store;

use crate::backend::{OpenedStore, StoreSettings, open_store};
use crate::{AppState, AuthState, RustlsConfig, ServerConfig};

pub use rate_limits::RateLimitConfig;

/// What the application is built from: the command line's settings, parsed.
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The store; its data directory holds the admin socket whichever the store is.
    pub store: StoreSettings,
    /// The handlers' settings; its scheme and public host are set from the address bound.
    pub server: ServerConfig,
    /// Load the demo observations and refresh the demo application (printing its secret);
    /// without it the demo application is removed.
    pub demo: bool,
    /// Serve HTTPS with this certificate chain and key (PEM).
    pub tls: Option<TlsFiles>,
    /// Base URLs clients reach this server at, which tokens name as issuer; empty: the address
    /// bound, and localhost for a loopback one.
    pub public_urls: Vec<String>,
    /// Serve without authentication: every caller may read and write.
    pub insecure_no_auth: bool,
    /// Directory roles that grant "View Data" to delegated (user) callers.
    pub view_data_roles: Vec<String>,
    /// A JSON file listing external OpenID issuers whose tokens are accepted.
    pub trusted_issuers: Option<PathBuf>,
    pub rate_limits: RateLimitConfig,
    /// The command, ready to paste, that registers a first application in this store; printed
    /// when none is registered and authentication is on.
    pub apps_create_command: String,
}

impl Config {
    /// An application on `listen` over `store`, with the settings `fileintel serve` has by default.
    pub fn new(listen: SocketAddr, store: StoreSettings) -> Self {
        Config {
            listen,
            store,
            server: ServerConfig::for_address(listen),
            demo: false,
            tls: None,
            public_urls: Vec::new(),
            insecure_no_auth: false,
            view_data_roles: fileintel_auth::default_view_data_roles(),
            trusted_issuers: None,
            rate_limits: RateLimitConfig::default(),
            apps_create_command: "fileintel apps create".into(),
        }
    }
}

/// A certificate chain and its private key, in PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The application, bound and ready to run.
pub struct Application {
    address: SocketAddr,
    state: AppState,
    listener: tokio::net::TcpListener,
    admin: tokio::net::UnixListener,
    tls: Option<RustlsConfig>,
    /// Whether the store is a database other replicas share, whose signing keys they may rotate.
    shared: bool,
}

impl Application {
    /// Opens what the API needs, binds the API's listener and the admin socket, and says where
    /// it listens (on the log and on stdout).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let tls_files = config.tls.clone();
        // The scheme clients reach it by, for the command a second process suggests.
        let scheme = if tls_files.is_some() { "https" } else { "http" };
        let data_dir = &config.store.data_dir;
        let opened = open_store(&config.store).await?;
        // Bound once the store is open, so that a second `serve` on the same data reports the
        // lock's holder rather than a taken port.
        let (listener, address) = bind(config.listen).await?;
        let (store, location, shared) = match opened {
            // Replicas keep no state of their own: everything is in the database.
            OpenedStore::Postgres(database) => (Arc::new(database) as Arc<dyn Store>, "PostgreSQL".to_owned(), true),
            OpenedStore::Embedded(store) => {
                store
                    .describe_holder(&format!(
                        "fileintel serve (pid {}) listening on {scheme}://{}",
                        std::process::id(),
                        reachable(address)
                    ))
                    .context("recording the lock holder")?;
                (Arc::new(store) as Arc<dyn Store>, data_dir.display().to_string(), false)
            }
        };
        if config.demo {
            demo::load(store.clone()).await?;
        }
        let mut server = config.server;
        if config.demo {
            // The demo's two tenants are one organisation's: each sees the other's figures.
            demo::DEMO_TENANTS.into_iter().for_each(|tenant| server.trust.add(tenant));
        }
        let trusted: Vec<&str> = server.trust.tenants().collect();
        if !trusted.is_empty() {
            tracing::info!(tenants = trusted.join(", "), "trusted tenants: their telemetry speaks to every tenant");
        }
        server.public_host = address.to_string();
        server.scheme = scheme.into();
        let tls = match &tls_files {
            Some(TlsFiles { cert, key }) => Some(RustlsConfig::from_pem_file(cert, key).await.with_context(|| {
                format!("loading the TLS certificate {} and key {}", cert.display(), key.display())
            })?),
            None => None,
        };
        let public_urls =
            if config.public_urls.is_empty() { default_public_urls(scheme, address) } else { config.public_urls };
        let keys = crate::admin::signing_keys(store.as_ref()).await?;
        let auth =
            AuthState::new(!config.insecure_no_auth, public_urls, keys, fileintel_auth::tokens::default_audiences())
                .context("loading the signing keys")?
                .with_view_data_roles(config.view_data_roles);
        let mut external_tenants = Vec::new();
        let auth = match &config.trusted_issuers {
            Some(path) => {
                let issuers = crate::issuers::ExternalIssuers::load(path).map_err(anyhow::Error::msg)?;
                external_tenants.extend(issuers.tenants().map(str::to_owned));
                auth.with_external_issuers(issuers)
            }
            None => auth,
        };
        let demo_secret = match config.demo {
            true => Some(demo::refresh_application(store.as_ref()).await?),
            false => {
                demo::remove_application(store.as_ref()).await?;
                None
            }
        };
        let applications = store.list_applications().await.context("listing the applications")?;
        let known = rate_limits::KnownCallers {
            tenants: applications
                .iter()
                .map(|application| application.tenant.clone())
                .chain(store.list_users().await.context("listing the users")?.into_iter().map(|user| user.tenant))
                .chain(external_tenants)
                .collect(),
            applications: applications.iter().map(|application| application.client_id.clone()).collect(),
            external_issuers: config.trusted_issuers.is_some(),
        };
        let (limits, limiter) = rate_limits::rate_limits(&config.rate_limits, &known)?;
        let state = AppState::new(store, server, auth).with_rate_limits(limits, limiter);
        if config.insecure_no_auth {
            tracing::warn!(
                %address,
                "AUTHENTICATION IS OFF (--insecure-no-auth): anyone who can reach this address can read and write everything"
            );
        }
        // Bound before the address is announced, so that whoever reads it can use the socket at once.
        let admin = bind_admin_socket(&config.store.data_dir)?;
        tracing::info!(%address, store = %location, "fileintel is serving");
        // On stdout as well, for scripts and tests that asked for port 0.
        say(&format!("fileintel listening on {scheme}://{address}"));
        if applications.is_empty() && !config.insecure_no_auth {
            say(&format!(
                "no application may obtain a token yet; register one with:\n  {}",
                config.apps_create_command
            ));
        }
        if let Some(secret) = demo_secret {
            say(&demo_commands(scheme, address, tls_files.as_ref().map(|files| files.cert.as_path()), &secret)?);
        }
        Ok(Application { address, state, listener, admin, tls, shared })
    }

    /// The address the API listens on (the port picked, when port 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What every handler reaches: the store, the signing keys, the limits.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves the API and the admin socket, and runs the background tasks, until `shutdown`
    /// resolves; then lets requests in flight finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { state, listener, admin, tls, shared, .. } = self;
        let mut tasks = vec![sweep_every_six_hours(state.store.clone())];
        if shared {
            tasks.push(refresh_keys(state.clone()));
        }
        // One signal stops both the API and the admin socket.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        tokio::spawn(crate::admin::serve(admin, state.clone(), until_stopped()));
        let served = match tls {
            Some(tls) => crate::serve_tls(listener, tls, state, until_stopped()).await,
            None => crate::serve(listener, state, until_stopped()).await,
        };
        for task in tasks {
            task.abort();
        }
        served.context("serving")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The commands the demo prints, to paste as they are: an address a client can reach, curl
/// failing loudly (-f), and over TLS the certificate to trust (the file served, which holds the
/// chain).
fn demo_commands(scheme: &str, address: SocketAddr, cert: Option<&Path>, secret: &str) -> anyhow::Result<String> {
    let url = format!("{scheme}://{}", reachable(address));
    let curl = match cert {
        Some(cert) => format!("curl -sSf --cacert {}", shell_word(&std::path::absolute(cert)?.display().to_string())),
        None => "curl -sSf".to_owned(),
    };
    let (tenant, client_id) = (demo::DEMO_TENANT, demo::DEMO_CLIENT_ID);
    Ok(format!(
        "demo application (tenant {tenant}, a new secret at every start):\n  \
         TOKEN=$({curl} {url}/{tenant}/oauth2/v2.0/token -d grant_type=client_credentials \\\n    \
         -d client_id={client_id} -d client_secret={secret} \\\n    \
         -d scope=https://api.securitycenter.microsoft.com/.default | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n  \
         {curl} -H \"Authorization: Bearer $TOKEN\" {url}/api/files/2c4cd67ad70a478e658e5a9cbf26ae44e666d039"
    ))
}

/// Replicas share signing keys through the database: a key rotated through any of them (or with
/// `fileintel keys rotate`) is read by all within half a minute and signs from then on. A token
/// naming a key not read yet is checked after reading the keys at once (see `authenticate`).
fn refresh_keys(state: AppState) -> tokio::task::JoinHandle<()> {
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
    })
}

async fn bind(listen: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr().context("reading the bound address")?;
    Ok((listener, address))
}

/// Window entries that no look-back can reach any more are swept a minute after start, then
/// every six hours, off the request path (on PostgreSQL every replica does; the second finds
/// little left).
fn sweep_every_six_hours(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(60),
            Duration::from_secs(6 * 3600),
        );
        loop {
            every.tick().await;
            match store.sweep(fileintel_core::Timestamp::now()).await {
                Ok(report) => tracing::debug!(removed = report.removed, "swept window entries out of reach"),
                Err(error) => tracing::warn!(%error, "sweeping window entries failed"),
            }
        }
    })
}

/// The admin API's socket in the data directory, owner only. A stale one from a killed server
/// is replaced: holding the store's lock means no other server is using it. It is bound inside
/// the owner-only data directory, so nobody else can connect in the moment before its own mode
/// is set.
fn bind_admin_socket(data_dir: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    fileintel_store::create_private_dir(data_dir).with_context(|| format!("preparing {}", data_dir.display()))?;
    let path = data_dir.join(crate::admin::SOCKET);
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

/// `text` as one word of a POSIX shell command: as it is when it holds nothing the shell reads,
/// otherwise single-quoted. For the commands the application and the binary print to be pasted.
pub fn shell_word(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:@%,".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Writes a line to stdout for whoever started the server; a closed stdout must not stop it.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_application_binds_a_free_port_and_stops_when_its_shutdown_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let settings = StoreSettings::embedded(dir.path().join("data"));
        let application = Application::build(Config::new("127.0.0.1:0".parse().unwrap(), settings)).await.unwrap();
        let address = application.address();
        assert_ne!(address.port(), 0, "the port it got, not the one asked for");
        assert!(dir.path().join("data").join(crate::admin::SOCKET).exists(), "the admin socket is bound at build");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(application.run_until(async {
            let _ = stopped.await;
        }));
        assert!(tokio::net::TcpStream::connect(address).await.is_ok(), "it serves until told to stop");
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(address).await.is_err(), "nothing listens once it has stopped");
    }
}
