//! fileintel's HTTP API: the MDE Files API and fileintel's own ingestion endpoint.
//!
//! Only this crate knows HTTP, the MDE error envelope and (later) tokens and rate limits. It is
//! wired as config, then state, then router: [`AppState`] is built once by the caller,
//! [`router`] is a pure function of it (tests drive it without a socket), and [`serve`] runs it
//! on a listener the caller bound, until the shutdown future the caller passes resolves.
//!
//! ```no_run
//! # async fn example(store: std::sync::Arc<dyn fileintel_store::Store>) -> std::io::Result<()> {
//! use fileintel_server::{AppState, AuthState, ServerConfig, serve};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let address = listener.local_addr()?;
//! let auth = AuthState::new(false, vec![format!("http://{address}")], vec![], vec![]).unwrap();
//! let state = AppState::new(store, ServerConfig::for_address(address), auth);
//! serve(listener, state, async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```

pub mod admin;
pub mod analyze;
pub mod application;
pub mod auth;
pub mod backend;
mod client;
pub mod devcert;
pub mod error;
mod feeds;
mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
mod indicators;
mod ingest;
pub mod issuers;
pub mod limits;
mod metadata;
mod odata;
pub mod remote;
mod routes;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod throttle;
mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fileintel_store::Store;
use tower_http::catch_panic::CatchPanicLayer;

pub use application::Application;
pub use auth::AuthState;
pub use axum_server::tls_rustls::RustlsConfig;
pub use error::ApiError;
pub use feeds::{FeedImport, ImportMode, Imported};
pub use metadata::METADATA;

/// Settings the handlers need; the binary fills them from its flags.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `http` or `https`, for `@odata.context`.
    pub scheme: String,
    /// Host to name in `@odata.context` when a request carries no `Host` header.
    pub public_host: String,
    /// Largest body `POST /api/ingest/observations` takes.
    pub max_ingest_bytes: u64,
    /// Observations per commit during HTTP ingestion.
    pub ingest_batch: usize,
    /// Largest file `POST /api/files/analyze` takes.
    pub max_analyze_bytes: u64,
    /// What `POST /api/files/analyze` verifies signatures with: the trust roots, loaded once.
    pub analyzer: fileintel_analysis::Analyzer,
    /// Where `POST /api/files/analyze` keeps the bytes it analysed, named by SHA-256; `None`
    /// drops them.
    pub keep_analyzed: Option<std::path::PathBuf>,
    /// The threat-intelligence feeds `POST /api/feeds/import` takes, with their ranks and labels.
    pub feed_sources: Vec<fileintel_feeds::Source>,
    /// Proxies (load balancers) whose `X-Forwarded-For` names the real client address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Largest body `POST /api/feeds/import` takes: a feed is read whole, so this bounds the
    /// memory one import costs.
    pub max_feed_bytes: u64,
    /// Uploads (ingestion, feed imports, analyses) served at once; more wait for none of them
    /// and get 429 with `Retry-After`, so that a burst of large bodies cannot exhaust memory.
    pub max_uploads: usize,
    /// Timeouts and the connection cap of the listener.
    pub connections: ConnectionLimits,
    /// How far past this server's clock an ingested observation's time may be (seconds).
    pub clock_skew_seconds: u32,
    /// The tenants whose telemetry speaks to every tenant (`--trusted-tenant`); none by
    /// default, so that each tenant's figures are its own.
    pub trust: fileintel_core::Trust,
}

/// How long a connection may take and how many there may be: without them a client that opens
/// connections and sends nothing (or a header a byte a minute) holds them, and their memory,
/// for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a connection's first byte (or the end of the previous request) to the end of the
    /// request's headers; a connection that sends no complete header in time is closed.
    pub header_timeout: std::time::Duration,
    /// Longest a connection may wait for the client while a request body is read; a body that
    /// stalls longer fails the request.
    pub body_timeout: std::time::Duration,
    /// Connections served at once; one past it is closed at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: std::time::Duration::from_secs(30),
            body_timeout: std::time::Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

impl ServerConfig {
    pub fn for_address(address: SocketAddr) -> Self {
        ServerConfig {
            scheme: "http".into(),
            public_host: address.to_string(),
            max_ingest_bytes: 4 << 30,
            ingest_batch: fileintel_store::pipeline::DEFAULT_BATCH,
            max_analyze_bytes: 256 << 20,
            analyzer: fileintel_analysis::Analyzer::default(),
            keep_analyzed: None,
            feed_sources: Vec::new(),
            trusted_proxies: Vec::new(),
            max_feed_bytes: 64 << 20,
            max_uploads: 4,
            connections: ConnectionLimits::default(),
            clock_skew_seconds: fileintel_core::DEFAULT_CLOCK_SKEW_SECONDS,
            trust: fileintel_core::Trust::default(),
        }
    }
}

/// Everything a handler can reach, built once and cloned per request.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServerConfig>,
    pub auth: Arc<AuthState>,
    pub limits: Arc<throttle::RateLimits>,
    pub limiter: Arc<limits::Limiter>,
    /// Permits for uploads in flight ([`ServerConfig::max_uploads`]).
    uploads: Arc<tokio::sync::Semaphore>,
    /// The last readiness answer and when it was made: `/ready` asks the backends at most once
    /// a second, however often it is called (it needs no token).
    readiness: Arc<tokio::sync::Mutex<Option<Readiness>>>,
}

/// A readiness answer: when it was made, and why not ready (nothing when ready).
type Readiness = (std::time::Instant, Vec<String>);

impl AppState {
    /// State with MDE's rate limits kept in this process.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig, auth: AuthState) -> Self {
        AppState {
            store,
            uploads: Arc::new(tokio::sync::Semaphore::new(config.max_uploads.max(1))),
            config: Arc::new(config),
            auth: Arc::new(auth),
            limits: Arc::new(throttle::RateLimits::default()),
            limiter: Arc::new(limits::Limiter::local()),
            readiness: Arc::default(),
        }
    }

    pub fn with_rate_limits(mut self, limits: throttle::RateLimits, limiter: limits::Limiter) -> Self {
        self.limits = Arc::new(limits);
        self.limiter = Arc::new(limiter);
        self
    }
}

pub use throttle::RateLimits;

impl AppState {
    /// A permit to read an upload's body, or 429 when [`ServerConfig::max_uploads`] are being
    /// read already: the client tries again shortly rather than every upload sharing memory.
    pub(crate) fn upload_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        // The refusal is logged as every refusal is, by the error envelope.
        self.uploads.clone().try_acquire_owned().map_err(|_| ApiError::TooManyRequests { retry_after: 1 })
    }
}

/// Every route of the API, each limited one with the API whose budget it spends.
fn routes() -> routes::Routes {
    routes::Routes::new()
        .merge(files::routes())
        .merge(ingest::routes())
        .merge(analyze::routes())
        .merge(feeds::routes())
        .merge(indicators::routes())
        .merge(metadata::routes())
        .merge(tokens::routes())
        .route("/health", axum::routing::get(health))
        .route("/ready", axum::routing::get(ready))
}

/// The whole API. Unknown routes and wrong methods answer in the error envelope too.
pub fn router(state: AppState) -> Router {
    let (routes, apis) = routes().into_parts();
    routes
        // After routing, so it knows which API a request is for.
        .layer(axum::middleware::from_fn(odata::refuse_unsupported_options))
        .layer(axum::middleware::from_fn_with_state((state.clone(), apis), throttle::enforce))
        // Every request body must keep coming: one that stalls longer than the timeout fails,
        // rather than holding its connection (and an upload permit) for ever.
        .layer(axum::middleware::map_request_with_state(state.clone(), time_body))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn time_body(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
) -> axum::extract::Request {
    let timeout = state.config.connections.body_timeout;
    request.map(|body| axum::body::Body::new(tower_http::timeout::TimeoutBody::new(timeout, body)))
}

async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok", "rateLimits": state.limiter.backend()})))
}

/// `GET /ready`: whether this replica can serve: the store answers and, when rate limits are
/// shared through Redis, Redis answers. 200 `{"status": "ready"}`, else 503 with which of them
/// does not answer (the details go to the log, not to whoever asks), for load balancers to
/// route around it until it recovers (it does, by itself). Asked at most once a second; callers
/// in between get the last answer.
async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    let mut last = state.readiness.lock().await;
    let reasons = match &*last {
        Some((at, reasons)) if at.elapsed() < std::time::Duration::from_secs(1) => reasons.clone(),
        _ => {
            let reasons = readiness(&state).await;
            *last = Some((std::time::Instant::now(), reasons.clone()));
            reasons
        }
    };
    match reasons.is_empty() {
        true => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready"}))),
        false => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not ready", "reasons": reasons})),
        ),
    }
}

async fn readiness(state: &AppState) -> Vec<String> {
    let (store, redis) = tokio::join!(
        tokio::time::timeout(std::time::Duration::from_secs(5), state.store.ready()),
        state.limiter.ready()
    );
    let mut reasons = Vec::new();
    match store {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready: the store does not answer");
            reasons.push("the store does not answer".to_owned());
        }
        Err(_) => {
            tracing::warn!("not ready: the store gave no answer within 5 s");
            reasons.push("the store gave no answer within 5 s".to_owned());
        }
    }
    if let Err(error) = redis {
        tracing::warn!(%error, "not ready: redis does not answer");
        reasons.push("redis (shared rate limits) does not answer".to_owned());
    }
    reasons
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Resource not found".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
        .unwrap_or_default();
    ApiError::Internal(format!("handler panicked: {detail}")).into_response()
}

/// Serves the API on `listener` until `shutdown` resolves, then lets requests in flight finish.
/// Connections are held to [`ServerConfig::connections`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.connections;
    let server = limited(axum_server::from_tcp(listener.into_std()?)?, limits);
    let service = router(state).into_make_service_with_connect_info::<SocketAddr>();
    server.handle(stopping(shutdown, None)).serve(service).await
}

/// Serves the API over TLS (rustls) on `listener` until `shutdown` resolves, then gives requests in
/// flight up to ten seconds to finish. Connections are held to [`ServerConfig::connections`].
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: axum_server::tls_rustls::RustlsConfig,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Offer only HTTP/1.1 in the handshake: the listener speaks nothing else (see [`limited`]),
    // and a client that was offered h2 (curl, browsers) would speak it and get no answer.
    let mut only_http1 = (*tls.get_inner()).clone();
    only_http1.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls.reload_from_config(Arc::new(only_http1));
    let limits = state.config.connections;
    let server = limited(axum_server::from_tcp_rustls(listener.into_std()?, tls)?, limits);
    let service = router(state).into_make_service_with_connect_info::<SocketAddr>();
    server.handle(stopping(shutdown, Some(std::time::Duration::from_secs(10)))).serve(service).await
}

/// A handle that starts a graceful shutdown when `shutdown` resolves, giving connections `grace`
/// to finish (`None`: as long as they need).
fn stopping(
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Option<std::time::Duration>,
) -> axum_server::Handle<SocketAddr> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(grace);
    });
    handle
}

/// The same limits for the plain and the TLS listener: HTTP/1 only, hyper's header read timeout
/// (which also closes a kept-alive connection whose next request does not come in time), a
/// deadline for the first request, and the connection cap (the TLS handshake has the acceptor's
/// own deadline). Request bodies are held
/// to their own timeout in [`router`].
fn limited<Acceptor>(
    server: axum_server::Server<SocketAddr, Acceptor>,
    limits: ConnectionLimits,
) -> axum_server::Server<SocketAddr, Capped<Acceptor>> {
    // HTTP/1 only: hyper's header read timeout, which closes idle connections, is HTTP/1's; an
    // HTTP/2 connection (h2c, or h2 through ALPN) would be held open by one request for ever,
    // and a few hundred of them would fill the connection cap. No MDE client needs HTTP/2.
    let mut server = server.http1_only();
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    server.first_request_timeout(limits.header_timeout).map(|inner| Capped { inner, permits })
}

/// An acceptor in front of another (plain or TLS) that sets `TCP_NODELAY`, so small responses
/// leave at once rather than wait for Nagle's algorithm, and closes connections past the cap at
/// once: each holds a permit for as long as it is open.
#[derive(Clone)]
struct Capped<Acceptor> {
    inner: Acceptor,
    permits: Arc<tokio::sync::Semaphore>,
}

impl<Acceptor, S> axum_server::accept::Accept<tokio::net::TcpStream, S> for Capped<Acceptor>
where
    Acceptor: axum_server::accept::Accept<tokio::net::TcpStream, S>,
    Acceptor::Future: Send + 'static,
{
    type Stream = Permitted<Acceptor::Stream>;
    type Service = Acceptor::Service;
    type Future = std::pin::Pin<Box<dyn Future<Output = std::io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let permit = self.permits.clone().try_acquire_owned();
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let accepted = self.inner.accept(stream, service);
        Box::pin(async move {
            let Ok(permit) = permit else {
                warn_connection_cap();
                return Err(std::io::Error::other("the connection cap is reached"));
            };
            let (stream, service) = accepted.await?;
            Ok((Permitted { stream, _permit: permit }, service))
        })
    }
}

/// Says that connections are being closed at the cap, at most once a minute: a flood of
/// connections must not become a flood of log lines.
fn warn_connection_cap() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = limits::now_millis().max(0) as u64;
    let next = NEXT.load(Ordering::Relaxed);
    if now >= next && NEXT.compare_exchange(next, now + 60_000, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        tracing::warn!(
            "connections are closed at once: as many are open as --max-connections allows (logged at most once a minute)"
        );
    }
}

/// A connection's stream with its permit, released when the connection closes.
struct Permitted<S> {
    stream: S,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Permitted<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Permitted<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buffer: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(context, buffer)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
