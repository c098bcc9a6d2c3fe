//! The application as integration tests start it (feature `testing`): [`spawn_app`] builds the
//! same [`Application`] `fileintel serve` runs, on `127.0.0.1:0` over an embedded store in a
//! temporary directory, and returns a [`TestApp`] whose typed helpers (`get_file`, `ingest`,
//! `register`, `token_for`, ...) speak HTTP/1.1 to it over the socket.
//!
//! ```no_run
//! # async fn example() {
//! let app = fileintel_server::testing::spawn_app_with(|config| config.insecure_no_auth = true).await;
//! let answer = app.get_file("4388963aaa83afe2042a46a3c017ad50bdcdafb3", None).await;
//! assert_eq!(answer.status, axum::http::StatusCode::NOT_FOUND);
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

use crate::application::Config;
use crate::backend::StoreSettings;
use crate::{AppState, Application};

/// A running application; it stops, and its data directory goes, when this is dropped.
pub struct TestApp {
    pub address: SocketAddr,
    /// What the handlers reach: the store (to set up what a test needs), the signing keys.
    pub state: AppState,
    client: Client<HttpConnector, Body>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// One answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON; panics, saying what came instead, when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text))
    }

    /// Asserts that this is the MDE error envelope with `status` and `code`; returns the body.
    pub fn assert_envelope(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{}", self.text);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(uuid::Uuid::parse_str(body["error"]["target"].as_str().unwrap()).is_ok());
        assert!(self.headers["content-type"].to_str().unwrap().starts_with("application/json"));
        assert_eq!(self.headers["odata-version"], "4.0");
        body
    }
}

/// The application as `fileintel serve` starts it by default (authentication and rate limits on).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The application with `configure` applied to its configuration first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let listen = "127.0.0.1:0".parse().unwrap();
    let mut config = Config::new(listen, StoreSettings::embedded(dir.path().join("data")));
    configure(&mut config);
    let application = Application::build(config).await.unwrap();
    let (address, state) = (application.address(), application.state().clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    TestApp { address, state, client, stop: Some(stop), _dir: dir }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestApp {
    /// Sends `request` (its URI a path) to the application, and reads the answer whole. The
    /// future owns what it needs, so a test may spawn it and send others meanwhile.
    pub fn send(&self, request: Request<Body>) -> impl Future<Output = Answer> + Send + 'static {
        let (client, address) = (self.client.clone(), self.address);
        async move {
            let (mut parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
            parts.uri = format!("http://{address}{path}").parse().unwrap();
            let response = client.request(Request::from_parts(parts, body)).await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            Answer { status, headers, text: String::from_utf8(bytes.to_vec()).unwrap() }
        }
    }

    /// `GET path`, with a bearer token when one is given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = Request::get(path).header("accept", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// `GET /api/files/{id}`.
    pub async fn get_file(&self, id: &str, token: Option<&str>) -> Answer {
        self.get(&format!("/api/files/{id}"), token).await
    }

    /// `POST /api/ingest/observations` of NDJSON lines.
    pub async fn ingest(&self, ndjson: String, token: Option<&str>) -> Answer {
        let mut request = Request::post("/api/ingest/observations").header("content-type", "application/x-ndjson");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.send(request.body(Body::from(ndjson)).unwrap()).await
    }

    /// Registers an application of `tenant` with `roles` in the store; returns its client id and
    /// secret.
    pub async fn register(&self, tenant: &str, roles: &[&str]) -> (String, String) {
        let roles = roles.iter().map(|role| role.to_string()).collect();
        let (application, secret) = fileintel_auth::new_application(tenant, "test", roles, 0);
        let client_id = application.client_id.clone();
        self.state.store.put_application(application).await.unwrap();
        (client_id, secret)
    }

    /// An access token, by client credentials over HTTP, of a new application of `tenant` with
    /// `roles`.
    pub async fn token_for(&self, tenant: &str, roles: &[&str]) -> String {
        let (client_id, secret) = self.register(tenant, roles).await;
        let form = format!(
            "grant_type=client_credentials&client_id={client_id}&client_secret={secret}\
             &scope=https://api.securitycenter.microsoft.com/.default"
        );
        let request = Request::post(format!("/{tenant}/oauth2/v2.0/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let answer = self.send(request).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.json()["access_token"].as_str().unwrap().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_test_application_serves_on_a_port_of_its_own_and_takes_a_token_it_issued() {
        let app = spawn_app().await;
        assert_ne!(app.address.port(), 0);
        let sha1 = "4388963aaa83afe2042a46a3c017ad50bdcdafb3";
        app.get_file(sha1, None).await.assert_envelope(StatusCode::UNAUTHORIZED, "Unauthorized");
        let token = app.token_for("contoso", &["File.Read.All", "File.ReadWrite.All"]).await;
        let line =
            format!(r#"{{"tenantId":"contoso","deviceId":"d","timestamp":"2026-11-20T08:15:30Z","sha1":"{sha1}"}}"#);
        let answer = app.ingest(line, Some(&token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let answer = app.get_file(sha1, Some(&token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.json()["sha1"], sha1);
    }
}
