//! Clients of a running fileintel: uploads to its API over the network (`--server`), and its
//! admin API on the data directory's Unix socket.
//!
//! Network requests go through reqwest; hyper is used directly only for the Unix socket, which
//! reqwest does not speak.

use std::io::Read;
use std::path::Path;

use axum::http;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// How much of an upload is read (and sent) at a time.
const CHUNK: usize = 1 << 20;

/// Why a request to a running server did not get the answer asked for.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("server URL {0}")]
    Url(String),
    #[error("--server takes an http:// URL")]
    NotHttp,
    /// Nothing was sent: told apart from the server's refusing.
    #[error("could not reach the server at {base}")]
    Unreachable {
        base: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("sending to {base}")]
    Sending {
        base: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("reading the answer")]
    Reading(#[source] reqwest::Error),
    #[error("decoding the server's answer")]
    Decoding(#[source] serde_json::Error),
    /// The input could not be opened or read here; nothing was sent.
    #[error("{0}")]
    Input(String),
    /// The server was reached, and said no.
    #[error("the server refused it ({status}): {message}")]
    Refused { status: u16, message: String },
}

impl ClientError {
    /// Whether the server refused this input (its content or size), so that the next input may
    /// fare better; any other failure (a bad token, a server in trouble) holds for every input.
    pub fn is_about_the_input(&self) -> bool {
        matches!(self, ClientError::Refused { status: 400 | 413 | 415 | 422, .. })
    }
}

/// Streams `input` to `target` on a running server and returns its JSON answer; `progress` is
/// told of every chunk read. An error answer becomes [`ClientError::Refused`] carrying the
/// envelope's message.
pub async fn post_file(
    server: &str,
    target: &str,
    token: Option<&str>,
    mut input: Box<dyn Read + Send>,
    content_type: &str,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<Value, ClientError> {
    let base = server.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}{target}")).map_err(|_| ClientError::Url(server.to_owned()))?;
    if url.scheme() != "http" {
        return Err(ClientError::NotHttp);
    }
    // Read on a blocking thread and stream the chunks as the request body.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let reader = tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            match input.read(&mut buffer) {
                Ok(0) => return,
                Ok(read) => {
                    progress(read as u64);
                    if sender.blocking_send(Ok(Bytes::copy_from_slice(&buffer[..read]))).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            }
        }
    });
    let body = reqwest::Body::wrap_stream(futures_util::stream::poll_fn(move |context| receiver.poll_recv(context)));
    let mut request = http_client()
        .map_err(|source| ClientError::Sending { base: base.to_owned(), source })?
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|source| match source.is_connect() {
        true => ClientError::Unreachable { base: base.to_owned(), source },
        false => ClientError::Sending { base: base.to_owned(), source },
    })?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(ClientError::Reading)?;
    reader.await.ok();
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(ClientError::Refused { status: status.as_u16(), message });
    }
    serde_json::from_slice(&bytes).map_err(ClientError::Decoding)
}

/// Sends observations to a running server (`POST /api/ingest/observations`) in `format`, told
/// by the server from the content when `None`; returns its summary, timed here.
pub async fn post_observations(
    server: &str,
    token: Option<&str>,
    input: Box<dyn Read + Send>,
    format: Option<fileintel_telemetry::Format>,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<fileintel_core::IngestSummary, ClientError> {
    use fileintel_telemetry::Format;
    let started = std::time::Instant::now();
    let content_type = match format {
        Some(Format::Evtx) => "application/octet-stream",
        Some(Format::MdeCsv) => "text/csv",
        _ => "application/x-ndjson",
    };
    let target = format!("/api/ingest/observations?format={}", format.map_or("auto", Format::name));
    let answer = post_file(server, &target, token, input, content_type, progress).await?;
    let mut summary: fileintel_core::IngestSummary = serde_json::from_value(answer).unwrap_or_default();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// What sending one input of an import through a server came to.
#[derive(Debug)]
pub enum Sent {
    /// The server's summary. An input the server refused as such (its content or size) has the
    /// refusal as its one rejection, so that the others may go on.
    Imported(fileintel_core::IngestSummary),
    /// A file found in a folder that is not of the format imported: not sent, for this reason.
    Skipped(String),
}

/// Sends one input of an import (`fileintel ingest --server`) to a running server. `start` is
/// told the input's length, when known, as it starts, and returns what is told of each chunk
/// read.
pub async fn send_input(
    server: &str,
    token: Option<&str>,
    input: &crate::import::Input,
    format: Option<fileintel_telemetry::Format>,
    start: impl FnOnce(Option<u64>) -> Box<dyn Fn(u64) + Send>,
) -> Result<Sent, ClientError> {
    let opened = match crate::import::open_import_input(input, format).map_err(ClientError::Input)? {
        Ok(opened) => opened,
        Err(reason) => return Ok(Sent::Skipped(reason)),
    };
    let crate::import::OpenedInput { reader, length, format } = opened;
    match post_observations(server, token, reader, format, start(length)).await {
        Ok(summary) => Ok(Sent::Imported(summary)),
        Err(refused) if refused.is_about_the_input() => {
            let rejection = fileintel_core::Rejection::new(fileintel_core::Position::Offset(0), refused.to_string());
            let summary = fileintel_core::IngestSummary {
                rejected: 1,
                rejected_lines: vec![rejection],
                ..fileintel_core::IngestSummary::default()
            };
            Ok(Sent::Imported(summary))
        }
        Err(error) => Err(error),
    }
}

/// Sends a feed to a running server (`POST /api/feeds/import`), which reads it as the source it
/// configures under `source`; with `replace`, the input is the whole feed. Returns its answer.
pub async fn post_feed(
    server: &str,
    token: Option<&str>,
    input: Box<dyn Read + Send>,
    format: fileintel_feeds::Format,
    source: &str,
    replace: bool,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<Value, ClientError> {
    let mode = if replace { "&mode=replace" } else { "" };
    let target = format!("/api/feeds/import?format={}&source={source}{mode}", format.name());
    post_file(server, &target, token, input, "application/octet-stream", progress).await
}

/// A client for plain HTTP (`--server` takes no other). reqwest is built without a TLS provider
/// of its own; it is given ring's, as the rest of fileintel's TLS uses, though no TLS is spoken.
fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|builder| builder.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth());
    // Straight to the server named, as before reqwest: a proxy from the environment is for
    // reaching the internet, not one's own fileintel.
    // A redirect is reported as the server's answer, as before reqwest, never followed: a
    // followed 302 would resend neither the body nor, to another host, the token.
    let builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("fileintel/", env!("CARGO_PKG_VERSION")));
    match tls {
        Ok(tls) => builder.tls_backend_preconfigured(tls),
        Err(_) => builder,
    }
    .build()
}

/// Why a request to the admin socket failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("connecting to {}", .0.display())]
    Connecting(std::path::PathBuf, #[source] std::io::Error),
    #[error("talking to the server's admin socket")]
    Talking(#[source] hyper::Error),
}

/// One request to the admin API on the Unix socket at `socket`: its status and JSON body (null
/// when it has none).
pub async fn admin_socket_request(socket: &Path, request: http::Request<Bytes>) -> Result<(u16, Value), SocketError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|error| SocketError::Connecting(socket.to_owned(), error))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(SocketError::Talking)?;
    tokio::spawn(connection);
    let response = sender.send_request(request.map(Full::new)).await.map_err(SocketError::Talking)?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.map_err(SocketError::Talking)?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

/// An admin request, as sent on the socket or handed to the admin router in process. The
/// methods and paths are the admin API's own, so the request is well formed.
pub(crate) fn admin_request(method: http::Method, path: &str, body: Option<Value>) -> http::Request<Bytes> {
    let mut request = http::Request::new(body.map(|body| Bytes::from(body.to_string())).unwrap_or_default());
    *request.method_mut() = method;
    // A path that is no URI (a name with a space) is sent as `/`, and answered 404 like any
    // unknown one.
    *request.uri_mut() = path.parse().unwrap_or_default();
    let headers = request.headers_mut();
    headers.insert(http::header::HOST, http::HeaderValue::from_static("localhost"));
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_plain_http_servers_are_taken_and_nothing_is_read_for_another() {
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = read.clone();
        let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(b"{}\n".to_vec()));
        let progress = move |bytes| {
            counted.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        };
        let error = post_file("https://127.0.0.1:1", "/x", None, input, "text/plain", progress).await.unwrap_err();
        assert_eq!(error.to_string(), "--server takes an http:// URL");
        assert_eq!(read.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn only_a_refusal_of_the_input_itself_lets_the_next_input_go_on() {
        let refused = |status| ClientError::Refused { status, message: String::new() };
        for status in [400, 413, 415, 422] {
            assert!(refused(status).is_about_the_input(), "{status}");
        }
        for status in [401, 403, 429, 500, 503] {
            assert!(!refused(status).is_about_the_input(), "{status}");
        }
        assert!(!ClientError::NotHttp.is_about_the_input());
    }
}
