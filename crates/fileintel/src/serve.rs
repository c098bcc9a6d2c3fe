//! `fileintel serve`: the API on the embedded store.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use fileintel_server::{AppState, ServerConfig};
use fileintel_store::{Ingestor, Store};

use crate::StoreArgs;

/// Observations the `--demo` flag loads: five made-up files (their hashes are those of short
/// strings, see README) seen by devices of two tenants.
const DEMO_OBSERVATIONS: &str = include_str!("../demo/observations.ndjson");

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on; port 0 picks a free one (the log says which).
    #[arg(long, env = "FILEINTEL_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Load the demo observations before serving (idempotent: loading twice changes no count).
    #[arg(long, env = "FILEINTEL_DEMO")]
    demo: bool,
    /// Largest body `POST /api/ingest/observations` takes, in bytes.
    #[arg(long, env = "FILEINTEL_MAX_INGEST_BYTES", default_value_t = 4 << 30)]
    max_ingest_bytes: u64,
    /// Worker threads for the HTTP runtime (default: one per core).
    #[arg(long, env = "FILEINTEL_WORKERS")]
    workers: Option<usize>,
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
    let store = args.store.open().with_context(|| format!("opening the store in {}", args.store.data_dir.display()))?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    store
        .describe_holder(&format!("fileintel serve (pid {}) listening on http://{address}", std::process::id()))
        .context("recording the lock holder")?;
    let store: Arc<dyn Store> = Arc::new(store);
    if args.demo {
        let mut ingestor = Ingestor::new(store.clone(), 10_000);
        ingestor.push(DEMO_OBSERVATIONS.as_bytes()).await?;
        let summary = ingestor.finish().await?;
        tracing::info!(observations = summary.accepted, "demo data loaded");
        tracing::info!("try: curl -s http://{address}/api/files/2c4cd67ad70a478e658e5a9cbf26ae44e666d039");
    }
    let mut config = ServerConfig::for_address(address);
    config.max_ingest_bytes = args.max_ingest_bytes;
    let state = AppState::new(store, config);
    tracing::info!(%address, data_dir = %args.store.data_dir.display(), "fileintel is serving (no authentication yet)");
    // On stdout as well, for scripts and tests that asked for port 0.
    println!("fileintel listening on http://{address}");
    fileintel_server::serve(listener, state, shutdown_signal()).await.context("serving")?;
    tracing::info!("stopped");
    Ok(())
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
