//! fileintel as the token issuer, at the paths MDE clients use with Entra ID: the v1 and v2 token
//! endpoints, OpenID discovery, the JWKS, and Azure's `/metadata/endpoints`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fileintel_auth::tokens::{AppGrant, TokenVersion};
use serde_json::json;

use crate::AppState;
use crate::auth::now_seconds;
use crate::client::ClientAddress;
use crate::odata::request_host;
use crate::routes::Routes;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .limited(
            "/{tenant}/oauth2/v2.0/token",
            "token",
            post(|State(state), Path(tenant), address, headers, body| {
                post_token(state, tenant, address, headers, body, TokenVersion::V2)
            }),
        )
        .limited(
            "/{tenant}/oauth2/token",
            "token",
            post(|State(state), Path(tenant), address, headers, body| {
                post_token(state, tenant, address, headers, body, TokenVersion::V1)
            }),
        )
        // Advertised in the OpenID configuration (MSAL refuses a configuration without it) and
        // answered: fileintel has no interactive sign-in, so it says which grants it takes.
        .route("/{tenant}/oauth2/v2.0/authorize", get(get_authorize).post(get_authorize))
        .route("/{tenant}/oauth2/authorize", get(get_authorize).post(get_authorize))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(get_openid_configuration_v2))
        .route("/{tenant}/.well-known/openid-configuration", get(get_openid_configuration_v1))
        .route("/{tenant}/discovery/v2.0/keys", get(get_keys))
        .route("/{tenant}/discovery/keys", get(get_keys))
        .route("/metadata/endpoints", get(get_metadata_endpoints))
}

/// An OAuth2 error in Entra ID's shape. Credential failures all read the same, so a caller learns
/// nothing about which part was wrong.
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    code: u32,
}

impl OAuthError {
    fn invalid_client() -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "AADSTS7000215: Invalid client credentials.".into(),
            code: 7000215,
        }
    }

    fn bad_request(error: &'static str, description: impl Into<String>, code: u32) -> Self {
        OAuthError { status: StatusCode::BAD_REQUEST, error, description: description.into(), code }
    }

    /// Something on our side failed; the cause goes to the log only.
    fn server_error(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "issuing a token");
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "AADSTS50000: There was an error issuing a token.".into(),
            code: 50000,
        }
    }

    /// The store could not be read; the client may try again.
    fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "reading identities");
        OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: "AADSTS90033: Try again later.".into(),
            code: 90033,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let trace_id = uuid::Uuid::new_v4().to_string();
        tracing::info!(%trace_id, error = self.error, description = %self.description, "token request refused");
        let timestamp = fileintel_core::Timestamp::from_unix_seconds(now_seconds()).to_string();
        let body = json!({
            "error": self.error,
            "error_description": format!("{} Trace ID: {trace_id} Timestamp: {timestamp}", self.description),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        });
        (self.status, Json(body)).into_response()
    }
}

fn scheme(state: &AppState) -> &str {
    &state.config.scheme
}

fn base(state: &AppState, headers: &HeaderMap) -> String {
    state.auth.base_for(scheme(state), request_host(headers, state))
}

/// A token request's body as its fields; what is not a form is refused with `invalid_request`.
pub(crate) fn read_form(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    serde_urlencoded::from_bytes(body).map_err(|_| {
        OAuthError::bad_request("invalid_request", "AADSTS900144: The request body must be a form.", 900144)
    })
}

/// A token request at either endpoint: the body is read as a form whatever the `Content-Type`
/// says, since some clients send none. Failed sign-ins spend a budget per client id and address:
/// once it is spent, that address gets 429 for that client until failures age out, while other
/// addresses sign in as usual.
async fn post_token(
    state: AppState,
    tenant: String,
    address: Option<Extension<ClientAddress>>,
    headers: HeaderMap,
    body: Bytes,
    version: TokenVersion,
) -> Result<Response, OAuthError> {
    let form = read_form(&body)?;
    // Before anything is looked up or keyed by them: no tenant, application or user has a longer
    // name, and a longer one would only cost memory.
    let identifiers =
        [("tenant", Some(&tenant)), ("client_id", form.get("client_id")), ("username", form.get("username"))];
    for (field, value) in identifiers {
        if let Some(Err(error)) = value.map(|value| fileintel_core::check_identifier(field, value)) {
            return Err(OAuthError::bad_request(
                "invalid_request",
                format!("AADSTS900144: The request is invalid: {error}."),
                900144,
            ));
        }
    }
    let address = address.map_or_else(|| "unknown".to_owned(), |Extension(ClientAddress(address))| address);
    let key = form
        .get("client_id")
        .filter(|_| state.limits.enabled)
        .map(|client| format!("loginfail|{tenant}|{client}|{address}"));
    if let Some(key) = &key {
        let decision = state.limiter.peek(key, &state.limits.failed_logins).await;
        if !decision.allowed {
            return Ok(crate::throttle::too_many(&decision));
        }
    }
    let result = grant(&state, &tenant, &headers, &form, version).await;
    if let (Err(error), Some(key)) = (&result, &key)
        && matches!(error.error, "invalid_client" | "invalid_grant")
    {
        state.limiter.check(key, &state.limits.failed_logins).await;
    }
    result
}

/// The client-credentials grant (or, for `grant_type=password`, the password grant); extra
/// fields (`client_info`, ...) are ignored.
async fn grant(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    version: TokenVersion,
) -> Result<Response, OAuthError> {
    let field = |name: &str| form.get(name).map(String::as_str).filter(|value| !value.is_empty());
    let grant_type = field("grant_type");
    match grant_type {
        Some("client_credentials" | "password") => {}
        Some(_) => {
            return Err(OAuthError::bad_request(
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
                70003,
            ));
        }
        None => {
            return Err(OAuthError::bad_request(
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
                900144,
            ));
        }
    }
    let audience = match version {
        TokenVersion::V2 => {
            field("scope").and_then(|scope| scope.split_whitespace().find_map(|s| s.strip_suffix("/.default")))
        }
        TokenVersion::V1 => field("resource"),
    };
    let Some(audience) = audience.filter(|audience| state.auth.audiences.iter().any(|known| known == audience)) else {
        let (error, description, code) = match version {
            TokenVersion::V2 => (
                "invalid_scope",
                "AADSTS1002012: The provided value for scope is not valid: the client credentials flow takes '<resource>/.default' for an MDE resource.",
                1002012,
            ),
            TokenVersion::V1 => (
                "invalid_resource",
                "AADSTS500011: The resource principal was not found: name an MDE resource.",
                500011,
            ),
        };
        return Err(OAuthError::bad_request(error, description, code));
    };
    if grant_type == Some("password") {
        return password_grant(state, tenant, headers, form, audience, version).await;
    }
    let (Some(client_id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return Err(OAuthError::invalid_client());
    };
    let application = state.store.get_application(tenant, client_id).await.map_err(OAuthError::unavailable)?;
    // An unknown client costs the same hash as a known one, so timing does not tell them apart.
    let (phc, application) = match application {
        Some(application) => (application.secret_hash.clone(), Some(application)),
        None => (DUMMY_HASH.clone(), None),
    };
    let matches = verify_secret(state, secret.to_owned(), phc).await?;
    let Some(application) = application.filter(|_| matches) else {
        return Err(OAuthError::invalid_client());
    };
    // The application's budget, spent only once it has proven who it is, so that knowing a client
    // id is not enough to exhaust it.
    if let Some(refused) = spend_token_budget(state, &application).await {
        return Ok(refused);
    }
    let Some(key) = state.auth.signing_key() else { return Err(OAuthError::server_error("no signing key")) };
    let grant = AppGrant {
        tenant: &application.tenant,
        client_id: &application.client_id,
        object_id: &application.object_id,
        roles: &application.roles,
        audience,
    };
    let base = base(state, headers);
    let (token, expires_in) =
        fileintel_auth::tokens::issue(&key, &base, &grant, version, now_seconds()).map_err(OAuthError::server_error)?;
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    });
    if version == TokenVersion::V1 {
        // v1 answers also carry these, as strings.
        let now = now_seconds();
        body["expires_on"] = json!((now + expires_in).to_string());
        body["not_before"] = json!(now.to_string());
        body["resource"] = json!(audience);
        body["expires_in"] = json!(expires_in.to_string());
        body["ext_expires_in"] = json!(expires_in.to_string());
    }
    Ok((StatusCode::OK, [("cache-control", "no-store"), ("pragma", "no-cache")], Json(body)).into_response())
}

async fn spend_token_budget(state: &AppState, application: &fileintel_core::Application) -> Option<Response> {
    if !state.limits.enabled || state.limits.exempt.contains(&application.client_id) {
        return None;
    }
    let (tenant, client) = (&application.tenant, &application.client_id);
    let windows = state.limits.windows("token", tenant, client);
    let spent = crate::throttle::spend(state, &format!("token|{tenant}|{client}"), windows).await;
    spent.err().map(|refused| crate::throttle::too_many(&refused))
}

/// Checks a secret against a hash on the blocking pool, at most a few at a time: argon2 takes
/// tens of milliseconds and 19 MiB per check, so unbounded parallel checks would exhaust the host.
async fn verify_secret(state: &AppState, secret: String, phc: String) -> Result<bool, OAuthError> {
    let Ok(_permit) = state.auth.credential_checks.try_acquire() else {
        return Err(OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: "AADSTS90033: Too many sign-ins at once; try again shortly.".into(),
            code: 90033,
        });
    };
    Ok(tokio::task::spawn_blocking(move || fileintel_auth::secrets::verify(&secret, &phc)).await.unwrap_or(false))
}

/// The resource-owner password grant, as MDE's native-app sample uses it: a registered
/// application (its secret checked when one is sent) signs a user in; the token is delegated, its
/// `scp` the application's permissions. Wrong user or wrong password read the same.
async fn password_grant(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    audience: &str,
    version: TokenVersion,
) -> Result<Response, OAuthError> {
    let field = |name: &str| form.get(name).map(String::as_str).filter(|value| !value.is_empty());
    let application = match field("client_id") {
        Some(client_id) => state.store.get_application(tenant, client_id).await.map_err(OAuthError::unavailable)?,
        None => None,
    };
    // Every credential failure of this grant reads the same, so it tells nothing of which part
    // (client, secret, user, password) was wrong.
    let refused = || {
        OAuthError::bad_request(
            "invalid_grant",
            "AADSTS50126: Error validating credentials due to invalid username or password.",
            50126,
        )
    };
    let Some(application) = application else { return Err(refused()) };
    if let Some(secret) = field("client_secret")
        && !verify_secret(state, secret.to_owned(), application.secret_hash.clone()).await?
    {
        return Err(refused());
    }
    let user = match field("username") {
        Some(upn) => state.store.get_user(tenant, upn).await.map_err(OAuthError::unavailable)?,
        None => None,
    };
    let phc = user.as_ref().map_or_else(|| DUMMY_HASH.clone(), |user| user.password_hash.clone());
    let password = field("password").unwrap_or_default().to_owned();
    let matches = verify_secret(state, password, phc).await?;
    let Some(user) = user.filter(|_| matches) else { return Err(refused()) };
    if let Some(refused) = spend_token_budget(state, &application).await {
        return Ok(refused);
    }
    let Some(key) = state.auth.signing_key() else { return Err(OAuthError::server_error("no signing key")) };
    let grant = fileintel_auth::tokens::UserGrant {
        tenant: &user.tenant,
        client_id: &application.client_id,
        object_id: &user.object_id,
        upn: &user.upn,
        scopes: &application.roles,
        audience,
    };
    let base = base(state, headers);
    let (token, expires_in) = fileintel_auth::tokens::issue_delegated(&key, &base, &grant, version, now_seconds())
        .map_err(OAuthError::server_error)?;
    let body = json!({
        "token_type": "Bearer",
        "scope": application.roles.join(" "),
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    });
    Ok((StatusCode::OK, [("cache-control", "no-store"), ("pragma", "no-cache")], Json(body)).into_response())
}

/// The hash of a secret nobody knows, verified against when the client is unknown: made with the
/// same parameters as real ones, so both cost the same.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| fileintel_auth::secrets::hash(&fileintel_auth::secrets::generate()));

async fn get_openid_configuration_v2(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    Json(openid_configuration(&base(&state, &headers), &tenant, TokenVersion::V2))
}

async fn get_openid_configuration_v1(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    Json(openid_configuration(&base(&state, &headers), &tenant, TokenVersion::V1))
}

fn openid_configuration(base: &str, tenant: &str, version: TokenVersion) -> serde_json::Value {
    let (token, authorize, keys) = match version {
        TokenVersion::V2 => ("oauth2/v2.0/token", "oauth2/v2.0/authorize", "discovery/v2.0/keys"),
        TokenVersion::V1 => ("oauth2/token", "oauth2/authorize", "discovery/keys"),
    };
    json!({
        "issuer": fileintel_auth::tokens::issuer(base, tenant, version),
        "token_endpoint": format!("{base}/{tenant}/{token}"),
        "authorization_endpoint": format!("{base}/{tenant}/{authorize}"),
        "jwks_uri": format!("{base}/{tenant}/{keys}"),
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "response_types_supported": ["token"],
        "grant_types_supported": ["client_credentials", "password"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "tenant_region_scope": null,
    })
}

/// The authorization endpoint: no interactive sign-in (no browser redirect) exists, so every
/// request is refused as RFC 6749 refuses a response type the server does not support, naming
/// the grants the token endpoint does take.
async fn get_authorize() -> OAuthError {
    OAuthError::bad_request(
        "unsupported_response_type",
        "AADSTS700054: fileintel signs no one in interactively; ask the token endpoint for a token with the client_credentials or password grant.",
        700054,
    )
}

async fn get_keys(State(state): State<AppState>) -> Response {
    match fileintel_auth::keys::jwks(&state.auth.key_ring().keys) {
        Ok(jwks) => Json(jwks).into_response(),
        Err(error) => crate::ApiError::Internal(error.to_string()).into_response(),
    }
}

async fn get_metadata_endpoints(State(state): State<AppState>, headers: HeaderMap) -> Json<serde_json::Value> {
    let base = base(&state, &headers);
    Json(json!({
        "authentication": { "loginEndpoint": format!("{base}/"), "audiences": state.auth.audiences },
        "name": "fileintel",
    }))
}
