//! The local admin API: applications and signing keys, served on a Unix socket in the data
//! directory (`admin.sock`, owner only), so `fileintel apps` and `fileintel keys` work while a
//! server holds the store. File permissions are its authentication; it is never on the network.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::now_seconds;
use crate::error::ApiError;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/admin/apps", post(create_app).get(list_apps))
        .route("/admin/apps/{tenant}/{client_id}", delete(delete_app))
        .route("/admin/apps/{tenant}/{client_id}/rotate-secret", post(rotate_app_secret))
        .route("/admin/users", post(create_user).get(list_users))
        .route("/admin/users/{tenant}/{upn}", delete(delete_user))
        .route("/admin/keys", get(list_keys))
        .route("/admin/keys/rotate", post(rotate_key))
        .route("/admin/feeds/import", post(import_feed))
        .fallback(|| async { ApiError::NotFound("Resource not found".into()) })
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::UnixListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// A feed import by the operator: as `POST /api/feeds/import`, into the sources whose writers
/// include `operator` (the default).
async fn import_feed(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: axum::body::Body,
) -> Result<axum::response::Response, ApiError> {
    crate::feeds::import_request(&state, &fileintel_feeds::Writer::Operator, &headers, query.as_deref(), body).await
}

#[derive(Deserialize)]
struct NewApp {
    tenant: String,
    name: String,
    roles: Vec<String>,
}

/// Holds names that become keys to the core's identifier rule.
fn identifiers(fields: &[(&'static str, &str)]) -> Result<(), ApiError> {
    for (field, value) in fields {
        fileintel_core::check_identifier(field, value)
            .map_err(|error| ApiError::BadRequest { code: "InvalidInput", message: error.to_string() })?;
    }
    Ok(())
}

fn with_secret(application: &fileintel_core::Application, secret: String) -> Value {
    let mut shown = fileintel_auth::public_view(application);
    shown["clientSecret"] = Value::String(secret);
    shown
}

async fn create_app(
    State(state): State<AppState>,
    Json(new): Json<NewApp>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    identifiers(&[("tenant", &new.tenant), ("name", &new.name)])?;
    if new.tenant.is_empty() || new.roles.is_empty() {
        return Err(ApiError::BadRequest {
            code: "InvalidInput",
            message: "An application needs a tenant and at least one role.".into(),
        });
    }
    crate::auth::check_application_roles(&new.roles)
        .map_err(|message| ApiError::BadRequest { code: "InvalidInput", message })?;
    let (application, secret) = fileintel_auth::new_application(&new.tenant, &new.name, new.roles, now_seconds());
    state.store.put_application(application.clone()).await?;
    Ok((StatusCode::CREATED, Json(with_secret(&application, secret))))
}

async fn list_apps(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let applications = state.store.list_applications().await?;
    Ok(Json(Value::Array(applications.iter().map(fileintel_auth::public_view).collect())))
}

async fn delete_app(
    State(state): State<AppState>,
    Path((tenant, client_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    match state.store.delete_application(&tenant, &client_id).await? {
        // The deletion moved the store's identity generation on: every replica checks its
        // verified tokens again at their next use, and refuses this application's.
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound(format!("No application {client_id} in tenant {tenant}"))),
    }
}

async fn rotate_app_secret(
    State(state): State<AppState>,
    Path((tenant, client_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let application = state
        .store
        .get_application(&tenant, &client_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No application {client_id} in tenant {tenant}")))?;
    let (application, secret) = fileintel_auth::rotate_secret(application);
    state.store.put_application(application.clone()).await?;
    Ok(Json(with_secret(&application, secret)))
}

#[derive(Deserialize)]
struct NewUser {
    tenant: String,
    upn: String,
    roles: Vec<String>,
    password: String,
}

async fn create_user(
    State(state): State<AppState>,
    Json(new): Json<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    identifiers(&[("tenant", &new.tenant), ("upn", &new.upn)])?;
    if new.tenant.is_empty() || new.upn.is_empty() || new.password.is_empty() {
        return Err(ApiError::BadRequest {
            code: "InvalidInput",
            message: "A user needs a tenant, a sign-in name and a password.".into(),
        });
    }
    crate::auth::check_user_roles(&new.roles, &state.auth.view_data_roles)
        .map_err(|message| ApiError::BadRequest { code: "InvalidInput", message })?;
    let password = new.password;
    let (tenant, upn, roles) = (new.tenant, new.upn, new.roles);
    let user =
        tokio::task::spawn_blocking(move || fileintel_auth::new_user(&tenant, &upn, roles, &password, now_seconds()))
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?;
    state.store.put_user(user.clone()).await?;
    Ok((StatusCode::CREATED, Json(fileintel_auth::public_user(&user))))
}

async fn list_users(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let users = state.store.list_users().await?;
    Ok(Json(Value::Array(users.iter().map(fileintel_auth::public_user).collect())))
}

async fn delete_user(
    State(state): State<AppState>,
    Path((tenant, upn)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    match state.store.delete_user(&tenant, &upn).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound(format!("No user {upn} in tenant {tenant}"))),
    }
}

async fn list_keys(State(state): State<AppState>) -> Json<Value> {
    let keys: Vec<Value> = state
        .auth
        .key_ring()
        .keys
        .iter()
        .map(|key| json!({"kid": key.kid, "created": fileintel_core::Timestamp::from_unix_seconds(key.created).to_string()}))
        .collect();
    Json(Value::Array(keys))
}

/// Adds a signing key and starts signing with it at once; older keys keep verifying.
async fn rotate_key(State(state): State<AppState>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = fileintel_auth::keys::generate(now_seconds());
    state.store.add_signing_key(key.clone()).await?;
    let keys = state.store.signing_keys().await?;
    state.auth.set_keys(keys).map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok((StatusCode::CREATED, Json(json!({"kid": key.kid}))))
}

/// The signing keys, generating the first one when there is none.
pub(crate) async fn signing_keys(
    store: &dyn fileintel_store::Store,
) -> Result<Vec<fileintel_core::SigningKey>, AdminError> {
    let found = store.signing_keys().await.map_err(AdminError::Keys)?;
    if !found.is_empty() {
        return Ok(found);
    }
    let key = fileintel_auth::keys::generate(now_seconds());
    store.add_signing_key(key.clone()).await.map_err(AdminError::StoringKey)?;
    tracing::info!(kid = %key.kid, "generated the first token signing key");
    // Read again: replicas starting together on one database may each have made one, and all
    // of them must verify (a key made after this read is found when a token first names it).
    store.signing_keys().await.map_err(AdminError::Keys)
}

/// The file name of a running server's admin socket, in its data directory.
pub const SOCKET: &str = "admin.sock";

/// Where administration commands are carried out: this admin API, served in this process over
/// the store opened here, or served by the running server on the data directory's socket (which
/// holds the embedded store, or is a replica on PostgreSQL). Either way each command is one admin
/// request, written once.
pub enum Admin {
    InProcess(Router),
    Socket(std::path::PathBuf),
}

/// Why an administration command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Open(#[from] crate::backend::OpenError),
    #[error("{holder}, and it offers no admin socket at {}", socket.display())]
    NoSocket { holder: String, socket: std::path::PathBuf },
    #[error("reading the signing keys")]
    Keys(#[source] fileintel_store::StoreError),
    #[error("storing a new signing key")]
    StoringKey(#[source] fileintel_store::StoreError),
    #[error("loading the signing keys")]
    KeyRing(#[source] fileintel_auth::AuthError),
    #[error(transparent)]
    Socket(#[from] crate::remote::SocketError),
    /// Refused in this process: the same words the server would have answered with.
    #[error("{0}")]
    Refused(String),
    #[error("the server refused ({status}): {message}")]
    ServerRefused { status: u16, message: String },
    #[error("no application {client_id} in tenant {tenant}")]
    NoApplication { tenant: String, client_id: String },
    #[error("no user {upn} in tenant {tenant}")]
    NoUser { tenant: String, upn: String },
}

impl Admin {
    /// The admin API of a server running on the embedded store `settings` name, when one answers
    /// on its socket (a socket nobody answers on is left by a server that was killed).
    pub async fn running_server(settings: &crate::backend::StoreSettings) -> Option<Admin> {
        let socket = settings.data_dir.join(SOCKET);
        let answers = settings.database.is_none() && tokio::net::UnixStream::connect(&socket).await.is_ok();
        answers.then_some(Admin::Socket(socket))
    }

    /// The admin API for the store `settings` name: a database is opened here (every replica
    /// shares it); else a server answering on the data directory's admin socket is used; else
    /// the embedded store is opened here, and when another process holds it after all, its
    /// socket. `view_data_roles` are the roles besides MDE's that grant View Data, which a
    /// user's roles are checked against in this process (a running server checks its own).
    pub async fn open(
        settings: &crate::backend::StoreSettings,
        view_data_roles: Vec<String>,
    ) -> Result<Admin, AdminError> {
        if let Some(running) = Admin::running_server(settings).await {
            return Ok(running);
        }
        let socket = settings.data_dir.join(SOCKET);
        let store = match crate::backend::open_store(settings).await {
            Ok(opened) => opened.shared(),
            Err(crate::backend::OpenError::Embedded { source: fileintel_store::StoreError::Busy(holder), .. }) => {
                if !socket.exists() {
                    return Err(AdminError::NoSocket { holder, socket });
                }
                return Ok(Admin::Socket(socket));
            }
            Err(error) => return Err(error.into()),
        };
        let keys = store.signing_keys().await.map_err(AdminError::Keys)?;
        let auth = crate::AuthState::new(false, Vec::new(), keys, fileintel_auth::tokens::default_audiences())
            .map_err(AdminError::KeyRing)?
            .with_view_data_roles(view_data_roles);
        let config = crate::ServerConfig::for_address(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        Ok(Admin::InProcess(router(AppState::new(store, config, auth))))
    }

    /// One request: its status and JSON body (null when it has none).
    async fn send(&self, request: axum::http::Request<bytes::Bytes>) -> Result<(u16, Value), AdminError> {
        match self {
            Admin::InProcess(router) => {
                use tower::ServiceExt;
                use tracing::instrument::WithSubscriber;
                // The command reports a refusal itself: the log line a server writes for one
                // would say it twice.
                let response = router
                    .clone()
                    .oneshot(request.map(axum::body::Body::from))
                    .with_subscriber(tracing::subscriber::NoSubscriber::default())
                    .await
                    .unwrap_or_else(|never| match never {});
                // A store that failed: its own words, which the envelope keeps from clients.
                if let Some(crate::error::Cause(cause)) = response.extensions().get() {
                    return Err(AdminError::Refused(cause.clone()));
                }
                let status = response.status().as_u16();
                // The admin API's answers are small JSON bodies, made here.
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
                Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
            }
            Admin::Socket(socket) => Ok(crate::remote::admin_socket_request(socket, request).await?),
        }
    }

    /// The answer's body when it has status `expected`, `None` when 404, else the refusal.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Result<Option<Value>, AdminError> {
        self.call_with(crate::remote::admin_request(method, path, body), expected).await
    }

    /// As [`Admin::call`], for a request built by the caller.
    async fn call_with(
        &self,
        request: axum::http::Request<bytes::Bytes>,
        expected: StatusCode,
    ) -> Result<Option<Value>, AdminError> {
        match self.send(request).await? {
            (status, body) if status == expected.as_u16() => Ok(Some(body)),
            (404, _) => Ok(None),
            (status, body) => {
                let message = body["error"]["message"].as_str().unwrap_or("no message").to_owned();
                Err(match self {
                    Admin::InProcess(_) => AdminError::Refused(message),
                    Admin::Socket(_) => AdminError::ServerRefused { status, message },
                })
            }
        }
    }

    /// Registers an application: its public view with its secret, shown once.
    pub async fn create_app(&self, tenant: &str, name: &str, roles: &[String]) -> Result<Value, AdminError> {
        let body = json!({"tenant": tenant, "name": name, "roles": roles});
        Ok(self.call(Method::POST, "/admin/apps", Some(body), StatusCode::CREATED).await?.unwrap_or_default())
    }

    /// The applications, never their secrets.
    pub async fn list_apps(&self) -> Result<Value, AdminError> {
        Ok(self.call(Method::GET, "/admin/apps", None, StatusCode::OK).await?.unwrap_or_default())
    }

    pub async fn delete_app(&self, tenant: &str, client_id: &str) -> Result<(), AdminError> {
        let path = format!("/admin/apps/{tenant}/{client_id}");
        match self.call(Method::DELETE, &path, None, StatusCode::NO_CONTENT).await? {
            Some(_) => Ok(()),
            None => Err(AdminError::NoApplication { tenant: tenant.into(), client_id: client_id.into() }),
        }
    }

    /// Gives an application a new secret: its public view with the secret, shown once.
    pub async fn rotate_app_secret(&self, tenant: &str, client_id: &str) -> Result<Value, AdminError> {
        let path = format!("/admin/apps/{tenant}/{client_id}/rotate-secret");
        self.call(Method::POST, &path, None, StatusCode::OK)
            .await?
            .ok_or_else(|| AdminError::NoApplication { tenant: tenant.into(), client_id: client_id.into() })
    }

    /// Adds a user: their public view (never the password's hash).
    pub async fn create_user(
        &self,
        tenant: &str,
        upn: &str,
        roles: &[String],
        password: &str,
    ) -> Result<Value, AdminError> {
        let body = json!({"tenant": tenant, "upn": upn, "roles": roles, "password": password});
        Ok(self.call(Method::POST, "/admin/users", Some(body), StatusCode::CREATED).await?.unwrap_or_default())
    }

    pub async fn list_users(&self) -> Result<Value, AdminError> {
        Ok(self.call(Method::GET, "/admin/users", None, StatusCode::OK).await?.unwrap_or_default())
    }

    pub async fn delete_user(&self, tenant: &str, upn: &str) -> Result<(), AdminError> {
        let path = format!("/admin/users/{tenant}/{upn}");
        match self.call(Method::DELETE, &path, None, StatusCode::NO_CONTENT).await? {
            Some(_) => Ok(()),
            None => Err(AdminError::NoUser { tenant: tenant.into(), upn: upn.into() }),
        }
    }

    /// Adds a signing key, which signs from then on: `{"kid"}`.
    pub async fn rotate_key(&self) -> Result<Value, AdminError> {
        Ok(self.call(Method::POST, "/admin/keys/rotate", None, StatusCode::CREATED).await?.unwrap_or_default())
    }

    /// Imports a feed file into the running server's source `source` as the operator (the
    /// server's `--feed-sources` configure it): its answer, as `POST /api/feeds/import`'s.
    pub async fn import_feed(
        &self,
        format: fileintel_feeds::Format,
        source: &str,
        replace: bool,
        feed: Vec<u8>,
    ) -> Result<Value, AdminError> {
        let mode = if replace { "replace" } else { "add" };
        // As `--server` sends it (`remote::post_feed`): source names are the configuration's own.
        let path = format!("/admin/feeds/import?format={}&source={source}&mode={mode}", format.name());
        let mut request = crate::remote::admin_request(Method::POST, &path, None);
        *request.body_mut() = bytes::Bytes::from(feed);
        let octets = axum::http::HeaderValue::from_static("application/octet-stream");
        request.headers_mut().insert(axum::http::header::CONTENT_TYPE, octets);
        // A 404 is a server older than this route.
        self.call_with(request, StatusCode::OK).await?.ok_or_else(|| AdminError::ServerRefused {
            status: 404,
            message: "this server takes no feed import on its admin socket".into(),
        })
    }

    /// The signing keys' ids and creation times.
    pub async fn list_keys(&self) -> Result<Value, AdminError> {
        Ok(self.call(Method::GET, "/admin/keys", None, StatusCode::OK).await?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::StoreSettings;

    #[tokio::test]
    async fn commands_in_process_go_through_the_admin_api_over_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let admin = Admin::open(&StoreSettings::embedded(dir.path()), Vec::new()).await.unwrap();
        assert!(matches!(admin, Admin::InProcess(_)));
        let created = admin.create_app("contoso", "reader", &["File.Read.All".into()]).await.unwrap();
        let client_id = created["clientId"].as_str().unwrap().to_owned();
        let secret = created["clientSecret"].as_str().unwrap().to_owned();
        let listed = admin.list_apps().await.unwrap();
        assert_eq!(listed[0]["clientId"], client_id.as_str(), "{listed}");
        assert!(listed[0].get("clientSecret").is_none(), "{listed}");
        let rotated = admin.rotate_app_secret("contoso", &client_id).await.unwrap();
        assert_ne!(rotated["clientSecret"].as_str().unwrap(), secret);
        admin.delete_app("contoso", &client_id).await.unwrap();
        let error = admin.delete_app("contoso", &client_id).await.unwrap_err();
        assert_eq!(error.to_string(), format!("no application {client_id} in tenant contoso"));
        let error = admin.rotate_app_secret("contoso", &client_id).await.unwrap_err();
        assert_eq!(error.to_string(), format!("no application {client_id} in tenant contoso"));
        let kid = admin.rotate_key().await.unwrap()["kid"].as_str().unwrap().to_owned();
        assert_eq!(admin.list_keys().await.unwrap()[0]["kid"], kid.as_str());
    }

    #[tokio::test]
    async fn a_refusal_in_process_says_what_the_admin_api_says_and_names_no_server() {
        let dir = tempfile::tempdir().unwrap();
        let admin = Admin::open(&StoreSettings::embedded(dir.path()), Vec::new()).await.unwrap();
        let error = admin.create_app("contoso", "reader", &["No.Such.Role".into()]).await.unwrap_err();
        assert!(matches!(error, AdminError::Refused(_)), "{error:?}");
        assert!(error.to_string().contains("No.Such.Role"), "{error}");
        // A user's roles are checked against the View Data roles given.
        let roles = ["Triage".to_owned()];
        assert!(admin.create_user("contoso", "alice@contoso.com", &roles, "secret").await.is_err());
        drop(admin);
        let admin = Admin::open(&StoreSettings::embedded(dir.path()), vec!["Triage".into()]).await.unwrap();
        let user = admin.create_user("contoso", "alice@contoso.com", &roles, "secret").await.unwrap();
        assert_eq!(user["upn"], "alice@contoso.com", "{user}");
        assert!(admin.list_users().await.unwrap().to_string().contains("alice@contoso.com"));
        admin.delete_user("contoso", "alice@contoso.com").await.unwrap();
        let error = admin.delete_user("contoso", "alice@contoso.com").await.unwrap_err();
        assert_eq!(error.to_string(), "no user alice@contoso.com in tenant contoso");
    }

    #[tokio::test]
    async fn a_store_held_by_a_process_with_no_admin_socket_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = fileintel_store::FjallStore::open(dir.path()).unwrap();
        held.describe_holder("fileintel ingest (pid 1)").unwrap();
        let Err(error) = Admin::open(&StoreSettings::embedded(dir.path()), Vec::new()).await else {
            panic!("opened a held store")
        };
        let message = error.to_string();
        assert!(message.contains("fileintel ingest (pid 1), and it offers no admin socket at"), "{message}");
    }
}
