//! Applying rate limits to requests: which API a request is for, whose budget it spends, and the
//! headers and 429s that tell the client.

use std::collections::{HashMap, HashSet};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::{Verified, caller_of};
use crate::client::{ClientAddress, client_address};
use crate::error::ApiError;
use crate::limits::{Decision, Window, mde_windows};
use crate::routes::Apis;

/// Which budgets apply, from configuration.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Off entirely (`--rate-limit-off`).
    pub enabled: bool,
    /// Every API's budget unless overridden: MDE's 100 a minute and 1500 an hour.
    pub default: Vec<Window>,
    /// Per API (one of [`RateLimits::API_NAMES`]), replacing the default.
    pub per_api: HashMap<String, Vec<Window>>,
    /// Per tenant or per application (client id), replacing the API's budget.
    pub per_caller: HashMap<String, Vec<Window>>,
    /// Applications (client ids) that are never limited.
    pub exempt: HashSet<String>,
    /// Tokens checked per client address that are not already verified: a flood of bad tokens
    /// is refused before it costs signature checks.
    pub unverified: Vec<Window>,
    /// Credential checks (argon2) per client address at the token endpoint.
    pub logins: Vec<Window>,
    /// Failed credential checks per client id and address: only failures spend it, and per
    /// address, so knowing a client id is not enough to lock the application out.
    pub failed_logins: Vec<Window>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            default: mde_windows(),
            per_api: HashMap::new(),
            per_caller: HashMap::new(),
            exempt: HashSet::new(),
            unverified: vec![Window { duration: std::time::Duration::from_secs(60), limit: 120 }],
            // As many as an application may ask tokens for: what this bounds is argon2 work
            // per address, not an honest client's sign-ins.
            logins: vec![Window { duration: std::time::Duration::from_secs(60), limit: 100 }],
            failed_logins: vec![
                Window { duration: std::time::Duration::from_secs(60), limit: 5 },
                Window { duration: std::time::Duration::from_secs(3600), limit: 20 },
            ],
        }
    }
}

impl RateLimits {
    /// The APIs that spend budgets of their own, by the names `--rate-limit` takes: every name
    /// a route is labelled with ([`crate::routes::Routes::limited`]), and nothing else.
    pub const API_NAMES: [&'static str; 8] =
        ["files", "stats", "machines", "ingest", "analyze", "feeds", "indicators", "token"];

    /// The budget of `api` for an application of `tenant`.
    pub fn windows(&self, api: &str, tenant: &str, app: &str) -> &[Window] {
        self.per_caller
            .get(app)
            .or_else(|| self.per_caller.get(tenant))
            .or_else(|| self.per_api.get(api))
            .unwrap_or(&self.default)
    }
}

/// Spends one call of `key`'s budget, or says how long to wait.
pub(crate) async fn spend(state: &AppState, key: &str, windows: &[Window]) -> Result<Decision, Decision> {
    let decision = state.limiter.check(key, windows).await;
    if decision.allowed { Ok(decision) } else { Err(decision) }
}

pub(crate) fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_seconds));
}

pub(crate) fn too_many(decision: &Decision) -> Response {
    let mut response = ApiError::TooManyRequests { retry_after: decision.retry_after }.into_response();
    set_headers(response.headers_mut(), decision);
    response
}

/// Authenticates the caller of a limited API (which API, `apis` says of the route), then spends
/// one call of its budget.
pub(crate) async fn enforce(
    State((state, apis)): State<(AppState, Apis)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(api) = request.extensions().get::<MatchedPath>().and_then(|path| apis.of(path.as_str())) else {
        return next.run(request).await;
    };
    let address = client_address(request.extensions(), request.headers(), &state.config.trusted_proxies);
    if api == "token" {
        // Credentials are checked with a deliberately slow hash: each address gets only so many
        // checks. The application's own budget is spent in the handler, which knows its client id.
        if state.limits.enabled
            && let Err(decision) = spend(&state, &format!("login|{address}"), &state.limits.logins).await
        {
            return too_many(&decision);
        }
        request.extensions_mut().insert(ClientAddress(address));
        return next.run(request).await;
    }
    let caller = match caller_of(&state, request.headers(), &address).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    if state.limits.enabled {
        let (tenant, app) = match &caller {
            // Delegated tokens spend their application's budget.
            Some(caller) => (caller.tenant.clone(), caller.app_id.clone().unwrap_or_else(|| caller.object_id.clone())),
            None => ("-".to_owned(), format!("address {address}")),
        };
        if !state.limits.exempt.contains(&app) {
            let key = format!("{api}|{tenant}|{app}");
            let decision = state.limiter.check(&key, state.limits.windows(api, &tenant, &app)).await;
            if !decision.allowed {
                return too_many(&decision);
            }
            request.extensions_mut().insert(Verified(caller));
            let mut response = next.run(request).await;
            set_headers(response.headers_mut(), &decision);
            return response;
        }
    }
    request.extensions_mut().insert(Verified(caller));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limited_route_spends_a_listed_api_and_every_listed_api_has_a_route() {
        let (_, apis) = crate::routes().into_parts();
        let labelled: HashSet<&str> = apis.iter().map(|(_, api)| api).collect();
        assert_eq!(labelled, RateLimits::API_NAMES.into_iter().collect::<HashSet<_>>());
        // What MDE does not limit spends nothing.
        for unlimited in ["/health", "/ready", "/api/$metadata", "/{tenant}/discovery/v2.0/keys"] {
            assert_eq!(apis.of(unlimited), None, "{unlimited}");
        }
        // MDE's budgets as the README documents them: stats and machines are APIs of their own,
        // a file's other views spend the files budget, both versions alike.
        let documented = [
            ("/api/files/{id}", "files"),
            ("/api/v1.0/files/{id}/sources", "files"),
            ("/api/files/{id}/determinations", "files"),
            ("/api/files/{id}/stats", "stats"),
            ("/api/v1.0/files/{id}/stats", "stats"),
            ("/api/files/{id}/machines", "machines"),
            ("/api/v1.0/files/{id}/machines", "machines"),
            ("/api/ingest/observations", "ingest"),
            ("/api/files/analyze", "analyze"),
            ("/api/feeds/import", "feeds"),
            ("/api/indicators/{id}", "indicators"),
            ("/{tenant}/oauth2/v2.0/token", "token"),
            ("/{tenant}/oauth2/token", "token"),
        ];
        for (route, api) in documented {
            assert_eq!(apis.of(route), Some(api), "{route}");
        }
    }
}
