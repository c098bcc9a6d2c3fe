//! The ceiling: an HTTP server that answers every request with the same bytes and does nothing
//! else. It runs on the same hyper and tokio as fileintel, with the same headers, so the gap
//! between the two is what fileintel does per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, header};
use hyper_util::rt::TokioIo;

#[derive(clap::Args, Debug)]
pub struct CeilingArgs {
    #[arg(long)]
    pub listen: SocketAddr,
    /// The response body to answer with.
    #[arg(long)]
    pub body_file: PathBuf,
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

pub fn run_ceiling(args: CeilingArgs) -> anyhow::Result<ExitCode> {
    let body =
        Bytes::from(std::fs::read(&args.body_file).with_context(|| format!("reading {}", args.body_file.display()))?);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.workers.max(1)).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let body = body.clone();
                    async move {
                        let mut response = Response::new(Full::new(body));
                        let headers = response.headers_mut();
                        headers.insert(
                            header::CONTENT_TYPE,
                            header::HeaderValue::from_static(
                                "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8",
                            ),
                        );
                        headers.insert("odata-version", header::HeaderValue::from_static("4.0"));
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}
