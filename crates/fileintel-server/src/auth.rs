//! Who is calling: bearer-token validation as an extractor, and the permission checks handlers make.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use fileintel_auth::{Caller, Verifier, keys};
use fileintel_core::SigningKey;

use crate::AppState;
use crate::client::client_address;
use crate::error::ApiError;
use crate::issuers::ExternalIssuers;

/// Application permission to read files (`roles`), or the delegated scope of the same name (`scp`).
pub const FILE_READ_ALL: &str = "File.Read.All";
/// Application permission the ingestion endpoints need.
pub const FILE_READ_WRITE_ALL: &str = "File.ReadWrite.All";
/// Application permission to read machines (`roles`).
pub const MACHINE_READ_ALL: &str = "Machine.Read.All";
/// Threat-intelligence write access: importing feeds and managing indicators.
pub const TI_READ_WRITE_ALL: &str = "Ti.ReadWrite.All";
/// The delegated scope to read machines (`scp`).
pub const MACHINE_READ: &str = "Machine.Read";
/// The delegated scope to manage indicators (`scp`), beside the application permission.
pub const TI_READ_WRITE: &str = "Ti.ReadWrite";

/// Every permission some endpoint checks: what an application may be given. Its users' tokens
/// carry them as delegated scopes, so the delegated-only ones are here too.
pub const APPLICATION_PERMISSIONS: [&str; 6] =
    [FILE_READ_ALL, FILE_READ_WRITE_ALL, MACHINE_READ_ALL, MACHINE_READ, TI_READ_WRITE_ALL, TI_READ_WRITE];

/// Refuses a permission no endpoint checks (a misspelt `File.Reed.All` would make an application
/// that can do nothing), naming the known ones.
pub fn check_application_roles(roles: &[String]) -> Result<(), String> {
    let unknown: Vec<&str> =
        roles.iter().map(String::as_str).filter(|role| !APPLICATION_PERMISSIONS.contains(role)).collect();
    match unknown.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "unknown application permission {}; the known ones are {}",
            unknown.join(", "),
            APPLICATION_PERMISSIONS.join(", ")
        )),
    }
}

/// Refuses a user role that is neither one of the directory roles MDE knows nor one of
/// `view_data_roles` (the ones configured to grant View Data), naming the known ones.
pub fn check_user_roles(roles: &[String], view_data_roles: &[String]) -> Result<(), String> {
    let mut known = fileintel_auth::default_view_data_roles();
    known.extend(view_data_roles.iter().filter(|role| !known.contains(role)).cloned().collect::<Vec<_>>());
    let unknown: Vec<&str> = roles.iter().filter(|role| !known.contains(role)).map(String::as_str).collect();
    match unknown.is_empty() {
        true => Ok(()),
        false => Err(format!("unknown user role {}; the known ones are {}", unknown.join(", "), known.join(", "))),
    }
}

/// Verified tokens kept, so a client that reuses its token pays for the signature check once.
const CACHE_LIMIT: usize = 16_384;

/// The signing keys and the verifier built from them, swapped whole when keys change.
pub struct KeyRing {
    pub keys: Vec<SigningKey>,
    pub verifier: Verifier,
}

/// Authentication settings and state, built once at start.
pub struct AuthState {
    /// `false` only with `--insecure-no-auth`.
    pub required: bool,
    /// Base URLs fileintel is reached at (`https://host:port`); the first names our tokens' issuer
    /// when a request arrives under a host that is not listed.
    pub public_urls: Vec<String>,
    pub audiences: Vec<String>,
    /// Directory roles that grant "View Data", which a delegated caller needs besides the scope.
    pub view_data_roles: Vec<String>,
    ring: RwLock<Arc<KeyRing>>,
    /// Verified tokens: the caller, and the store's identity generation
    /// ([`fileintel_store::Store::identity_generation`]) it was checked against. An entry holds
    /// only while the generation is unchanged: a deleted application or user, through this process
    /// or another replica, moves it on, and every token is then checked against the store again.
    cache: RwLock<HashMap<String, (Caller, u64)>>,
    /// Key ids a token named that this process did not know, and when the keys were last read
    /// again for each (another replica may have made or rotated them); held while reading, so
    /// requests naming the same new key wait for one read instead of each making one.
    key_reloads: tokio::sync::Mutex<HashMap<String, i64>>,
    /// Other OpenID issuers whose tokens are accepted (e.g. a real Entra ID tenant).
    external: ExternalIssuers,
    /// Bounds concurrent credential checks (argon2 needs CPU and memory): one per core.
    pub credential_checks: tokio::sync::Semaphore,
}

impl AuthState {
    pub fn new(
        required: bool,
        public_urls: Vec<String>,
        keys: Vec<SigningKey>,
        audiences: Vec<String>,
    ) -> Result<Self, fileintel_auth::AuthError> {
        let ring = Self::ring(&public_urls, keys, &audiences)?;
        Ok(AuthState {
            required,
            public_urls,
            audiences,
            view_data_roles: fileintel_auth::default_view_data_roles(),
            ring: RwLock::new(Arc::new(ring)),
            cache: RwLock::default(),
            key_reloads: tokio::sync::Mutex::default(),
            external: ExternalIssuers::default(),
            credential_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map(|cores| cores.get()).unwrap_or(2),
            ),
        })
    }

    /// Accepts tokens from these external issuers too.
    pub fn with_external_issuers(mut self, issuers: ExternalIssuers) -> Self {
        self.external = issuers;
        self
    }

    /// Replaces which directory roles grant "View Data" (MDE's by default).
    pub fn with_view_data_roles(mut self, roles: Vec<String>) -> Self {
        self.view_data_roles = roles;
        self
    }

    fn ring(
        public_urls: &[String],
        keys: Vec<SigningKey>,
        audiences: &[String],
    ) -> Result<KeyRing, fileintel_auth::AuthError> {
        let verifier = Verifier::new(public_urls, &keys, audiences.to_vec())?;
        Ok(KeyRing { keys, verifier })
    }

    /// Replaces the signing keys: the newest signs from now on, all of them verify.
    pub fn set_keys(&self, keys: Vec<SigningKey>) -> Result<(), fileintel_auth::AuthError> {
        let ring = Arc::new(Self::ring(&self.public_urls, keys, &self.audiences)?);
        match self.ring.write() {
            Ok(mut current) => *current = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
        Ok(())
    }

    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.ring.read().map(|ring| ring.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// The key new tokens are signed with.
    pub fn signing_key(&self) -> Option<SigningKey> {
        keys::current(&self.key_ring().keys).cloned()
    }

    /// The public base URL for a request that arrived under `scheme://host`: itself when listed,
    /// else the first configured one.
    pub fn base_for(&self, scheme: &str, host: &str) -> String {
        let requested = format!("{scheme}://{host}");
        if self.public_urls.iter().any(|url| url.trim_end_matches('/') == requested) {
            requested
        } else {
            self.public_urls.first().cloned().unwrap_or(requested)
        }
    }

    /// The caller of a token verified before and not expired since, with the identity
    /// generation it was last checked against the store at.
    fn cached(&self, token: &str) -> Option<(Caller, u64)> {
        let now = now_seconds();
        let cache = self.cache.read().ok()?;
        cache.get(token).filter(|(caller, _)| caller.expires + fileintel_auth::tokens::LEEWAY > now).cloned()
    }

    /// Remembers a verified caller, checked against the store at identity generation
    /// `generation`, until the token expires or the generation moves on.
    fn remember(&self, token: &str, caller: &Caller, generation: u64) {
        let now = now_seconds();
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_LIMIT {
                cache.retain(|_, (cached, checked)| {
                    cached.expires + fileintel_auth::tokens::LEEWAY > now && *checked == generation
                });
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
            }
            cache.insert(token.to_owned(), (caller.clone(), generation));
        }
    }

    fn forget(&self, token: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(token);
        }
    }

    /// Verifies a token's signature and claims.
    async fn verify(&self, token: &str) -> Result<Caller, fileintel_auth::AuthError> {
        let now = now_seconds();
        let caller = match self.external.is_empty() {
            true => self.key_ring().verifier.verify(token, now)?,
            false => {
                let peek = fileintel_auth::tokens::peek(token)?;
                match self.external.find(&peek.iss, &peek.tid) {
                    Some((issuer, expected)) => issuer.verify(token, peek.kid.as_deref(), &expected, now).await?,
                    None => self.key_ring().verifier.verify(token, now)?,
                }
            }
        };
        Ok(caller)
    }
}

/// The time now in Unix seconds, as tokens and identities are stamped.
pub fn now_seconds() -> i64 {
    fileintel_core::Timestamp::now().unix_seconds()
}

pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let header =
        headers.get(header::AUTHORIZATION).ok_or_else(|| ApiError::Unauthorized("no Authorization header".into()))?;
    header
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| ApiError::Unauthorized("the Authorization header is not a bearer token".into()))
}

/// The caller of a request from a client at `address`: nobody in particular when authentication
/// is off, else whom its bearer token names ([`authenticate`]).
pub(crate) async fn caller_of(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    address: &str,
) -> Result<Option<Caller>, ApiError> {
    match state.auth.required {
        true => authenticate(state, headers, address).await.map(Some),
        false => Ok(None),
    }
}

/// Authenticates a request's bearer token. A token verified before costs a cache lookup and a
/// read of the store's identity generation (and, once the generation has moved, its application
/// and user looked up again); any other spends one check of the client address's budget first,
/// so a flood of bad tokens is refused with 429 before it costs a store read or a signature
/// check.
pub async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    address: &str,
) -> Result<Caller, ApiError> {
    let token = bearer(headers)?;
    if let Some((caller, checked)) = state.auth.cached(token) {
        let generation = state.store.identity_generation().await?;
        if checked != generation {
            // The signature held before and still does: only who it names may have gone. A token
            // refused now is forgotten, so that presenting it again spends the address's budget.
            if caller.issued_here
                && let Err(refused) = still_registered(state, &caller).await
            {
                state.auth.forget(token);
                return Err(refused);
            }
            state.auth.remember(token, &caller, generation);
        }
        return Ok(caller);
    }
    if state.limits.enabled {
        let decision = state.limiter.check(&format!("unverified|{address}"), &state.limits.unverified).await;
        if !decision.allowed {
            return Err(ApiError::TooManyRequests { retry_after: decision.retry_after });
        }
    }
    // Only once the budget allows it, so that a flood of bad tokens costs no store reads; and
    // before the checks below, so that a deletion committed while they run moves the
    // generation past the one this caller is remembered under.
    let generation = state.store.identity_generation().await?;
    let caller = match state.auth.verify(token).await {
        Err(fileintel_auth::AuthError::UnknownKey(kid)) => reload_keys_for(state, token, kid).await?,
        verified => verified,
    }
    .map_err(|error| ApiError::Unauthorized(error.to_string()))?;
    if caller.issued_here {
        still_registered(state, &caller).await?;
    }
    state.auth.remember(token, &caller, generation);
    Ok(caller)
}

/// A token fileintel issued holds only while the application it was issued to exists: its own
/// token, or a user's obtained through it (`appid`/`azp` name it in both). A user's token holds
/// only while the user exists too.
async fn still_registered(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let app = caller.app_id.as_deref().unwrap_or_default();
    if state.store.get_application(&caller.tenant, app).await?.is_none() {
        return Err(ApiError::Unauthorized(format!("application {app} of tenant {} no longer exists", caller.tenant)));
    }
    if caller.is_delegated() && state.store.get_user_by_object_id(&caller.tenant, &caller.object_id).await?.is_none() {
        return Err(ApiError::Unauthorized(format!(
            "user {} of tenant {} no longer exists",
            caller.object_id, caller.tenant
        )));
    }
    Ok(())
}

/// Replicas share their keys through the store: a key made or rotated by another replica is
/// read when a token first names it. One read at a time (the others wait and then find the key
/// loaded), and at most one a second for the same unknown key id; how many unknown tokens an
/// address may present is bounded by its unverified-token budget already.
async fn reload_keys_for(
    state: &AppState,
    token: &str,
    kid: Option<String>,
) -> Result<Result<Caller, fileintel_auth::AuthError>, ApiError> {
    let mut reloads = state.auth.key_reloads.lock().await;
    match state.auth.verify(token).await {
        Err(fileintel_auth::AuthError::UnknownKey(_)) => {}
        verified => return Ok(verified),
    }
    let now = now_seconds();
    let kid = kid.unwrap_or_default();
    if reloads.get(&kid).is_some_and(|&at| now - at < 1) {
        return Ok(Err(fileintel_auth::AuthError::UnknownKey(Some(kid))));
    }
    reloads.retain(|_, at| now - *at < 1);
    reloads.insert(kid, now);
    let keys = state.store.signing_keys().await?;
    state.auth.set_keys(keys).map_err(|error| ApiError::Internal(format!("signing keys: {error}")))?;
    Ok(state.auth.verify(token).await)
}

/// The authenticated caller of a request. A handler that takes it needs a valid bearer token
/// (unless the server runs with `--insecure-no-auth`, when every caller may do everything).
pub struct Authenticated(pub Option<Caller>);

/// The caller the rate-limit middleware already authenticated, handed on to the handler.
#[derive(Clone)]
pub struct Verified(pub Option<Caller>);

impl Authenticated {
    /// The caller's tenant; `None` when authentication is off.
    pub fn tenant(&self) -> Option<&str> {
        self.0.as_ref().map(|caller| caller.tenant.as_str())
    }

    /// The tenant the caller speaks for; in open mode (`--insecure-no-auth`), the default tenant.
    pub fn tenant_or_default(&self) -> &str {
        self.tenant().unwrap_or(fileintel_core::DEFAULT_TENANT)
    }

    /// Whose telemetry the caller's answers count: its own tenant's and the trusted tenants'; in
    /// open mode, where no caller has a tenant to be kept apart from, every tenant's.
    pub fn viewer<'a>(&'a self, state: &'a crate::AppState) -> fileintel_core::Viewer<'a> {
        match self.tenant() {
            Some(name) => fileintel_core::Viewer::Tenant { name, trust: &state.config.trust },
            None => fileintel_core::Viewer::Operator,
        }
    }

    /// Requires an application permission in the token's `roles`; delegated tokens cannot write.
    pub fn require_role(&self, permission: &str) -> Result<&Self, ApiError> {
        match &self.0 {
            None => Ok(self),
            Some(caller) if caller.roles.iter().any(|role| role == permission) => Ok(self),
            Some(caller) if caller.is_delegated() => {
                Err(ApiError::Forbidden(format!("This operation needs the {permission} application permission.")))
            }
            Some(_) => Err(ApiError::Forbidden(format!("The application lacks the {permission} permission."))),
        }
    }

    /// Requires `permission` to read data: in `roles` for an application token; in `scp` for a
    /// delegated token, whose user must also hold a role that grants View Data. The user's roles
    /// are read at each request, so taking a role away takes effect at once.
    pub async fn require_view(&self, state: &AppState, permission: &str) -> Result<&Self, ApiError> {
        self.require_view_as(state, permission, permission).await
    }

    /// [`Authenticated::require_view`] where the application permission (`role`) and the delegated
    /// scope (`scope`) have different names, as `Machine.Read.All` and `Machine.Read` do.
    pub async fn require_view_as(&self, state: &AppState, role: &str, scope: &str) -> Result<&Self, ApiError> {
        let Some(caller) = &self.0 else { return Ok(self) };
        if !caller.is_delegated() {
            return self.require_role(role);
        }
        if !caller.scopes.iter().any(|granted| granted == scope) {
            return Err(ApiError::Forbidden(format!("The token lacks the {scope} scope.")));
        }
        let roles = match &caller.directory_roles {
            // An external issuer trusted for the user's roles vouches for them in the token.
            Some(roles) => roles.clone(),
            None => {
                let user = state.store.get_user_by_object_id(&caller.tenant, &caller.object_id).await?;
                user.map(|user| user.roles).unwrap_or_default()
            }
        };
        let views = roles.iter().any(|role| state.auth.view_data_roles.contains(role));
        if views { Ok(self) } else { Err(ApiError::Forbidden("The user holds no role that grants View Data.".into())) }
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(Verified(caller)) = parts.extensions.get::<Verified>() {
            return Ok(Authenticated(caller.clone()));
        }
        let address = client_address(&parts.extensions, &parts.headers, &state.config.trusted_proxies);
        caller_of(state, &parts.headers, &address).await.map(Authenticated)
    }
}
