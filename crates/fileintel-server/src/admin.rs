//! The local admin API: applications and signing keys, served on a Unix socket in the data
//! directory (`admin.sock`, owner only), so `fileintel apps` and `fileintel keys` work while a
//! server holds the store. File permissions are its authentication; it is never on the network.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
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
