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
pub mod auth;
pub mod error;
mod feeds;
mod files;
mod indicators;
mod ingest;
pub mod issuers;
pub mod limits;
mod metadata;
mod odata;
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

pub use auth::AuthState;
pub use axum_server::tls_rustls::RustlsConfig;
pub use error::ApiError;
pub use feeds::{FeedImport, ImportMode};
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

/// The whole API. Unknown routes and wrong methods answer in the error envelope too.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(files::router())
        .merge(ingest::router())
        .merge(analyze::router())
        .merge(feeds::router())
        .merge(indicators::router())
        .merge(metadata::router())
        .merge(tokens::router())
        .route("/health", axum::routing::get(health))
        .route("/ready", axum::routing::get(ready))
        // After routing, so it knows which API a request is for.
        .layer(axum::middleware::from_fn(odata::refuse_unsupported_options))
        .layer(axum::middleware::from_fn_with_state(state.clone(), throttle::enforce))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
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
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Small responses must leave at once rather than wait for Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let service = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}

/// Serves the API over TLS (rustls) on `listener` until `shutdown` resolves, then gives requests in
/// flight up to ten seconds to finish.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: axum_server::tls_rustls::RustlsConfig,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let service = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum_server::from_tcp_rustls(listener, tls)?.handle(handle).serve(service).await
}
