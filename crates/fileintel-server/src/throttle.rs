//! Applying rate limits to requests: which API a request is for, whose budget it spends, and the
//! headers and 429s that tell the client.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::Verified;
use crate::error::ApiError;
use crate::limits::{Decision, Window, mde_windows};

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
    /// [`api_of`] gives a route, and nothing else.
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

/// The API a routed request is for, by its route; `None` for what MDE does not limit.
fn api_of(route: &str) -> Option<&'static str> {
    match route {
        "/api/files/{id}" | "/api/v1.0/files/{id}" => Some("files"),
        "/api/files/{id}/stats" | "/api/v1.0/files/{id}/stats" => Some("stats"),
        "/api/files/{id}/machines" | "/api/v1.0/files/{id}/machines" => Some("machines"),
        "/api/files/{id}/sources"
        | "/api/v1.0/files/{id}/sources"
        | "/api/files/{id}/determinations"
        | "/api/v1.0/files/{id}/determinations" => Some("files"),
        "/api/feeds/import" => Some("feeds"),
        "/api/indicators" | "/api/indicators/{id}" | "/api/indicators/import" => Some("indicators"),
        "/api/ingest/observations" => Some("ingest"),
        "/api/files/analyze" => Some("analyze"),
        "/{tenant}/oauth2/v2.0/token" | "/{tenant}/oauth2/token" => Some("token"),
        _ => None,
    }
}

/// Spends one call of `key`'s budget, or says how long to wait.
pub(crate) async fn spend(state: &AppState, key: &str, windows: &[Window]) -> Result<Decision, Decision> {
    let decision = state.limiter.check(key, windows).await;
    if decision.allowed { Ok(decision) } else { Err(decision) }
}

/// The client's address, handed to the token endpoint for its failed-login budget.
#[derive(Clone)]
pub(crate) struct ClientAddress(pub String);

/// The address a request's budgets are kept under: the TCP peer, or, when the peer is a trusted
/// proxy, the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries
/// further left are whatever the client chose to send, and prove nothing); see
/// [`budget_address`] for how much of it counts.
pub(crate) fn client_address(
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> String {
    let Some(peer) = extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()) else {
        return "unknown".to_owned();
    };
    if !trusted.contains(&peer) {
        if forwarded_by_an_untrusted_peer(peer, headers, trusted) {
            warn_untrusted_forwarding(peer);
        }
        return budget_address(peer);
    }
    let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok());
    let hops: Vec<std::net::IpAddr> =
        forwarded.flat_map(|value| value.split(',')).filter_map(|hop| hop.trim().parse().ok()).collect();
    budget_address(hops.into_iter().rev().find(|hop| !trusted.contains(hop)).unwrap_or(peer))
}

/// How much of an address a budget is kept per: an IPv4 address whole, an IPv6 address by its
/// /64, the smallest block a site is given (one host can take any of its 2^64 addresses, so
/// per address it would have unlimited budgets).
pub(crate) fn budget_address(address: std::net::IpAddr) -> String {
    match address {
        std::net::IpAddr::V4(address) => address.to_string(),
        std::net::IpAddr::V6(address) => match address.to_ipv4_mapped() {
            Some(mapped) => mapped.to_string(),
            None => {
                let [a, b, c, d, ..] = address.segments();
                format!("{}/64", std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// Whether a request carries `X-Forwarded-For` from a peer that is not a trusted proxy: the
/// header is then ignored, and if the peer is a load balancer every client behind it shares
/// its budgets, failed sign-ins included.
pub(crate) fn forwarded_by_an_untrusted_peer(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> bool {
    !trusted.contains(&peer) && headers.contains_key("x-forwarded-for")
}

/// Says so once per process, loudly: per request it would flood the log.
fn warn_untrusted_forwarding(peer: std::net::IpAddr) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            %peer,
            "a request came with X-Forwarded-For from a peer that is not a trusted proxy: the header is ignored, \
             so every client behind that peer shares one address's rate limits and failed-sign-in budget; \
             if it is your load balancer, pass --trusted-proxy {peer} (logged once)"
        );
    }
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

/// Authenticates the caller of a limited API, then spends one call of its budget.
pub async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(api) = request.extensions().get::<MatchedPath>().and_then(|path| api_of(path.as_str())) else {
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
    let caller = match state.auth.required {
        true => match crate::auth::authenticate(&state, request.headers(), &address).await {
            Ok(caller) => Some(caller),
            Err(error) => return error.into_response(),
        },
        false => None,
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
    fn every_route_with_a_budget_is_named_in_the_list_of_apis_and_every_listed_api_has_a_route() {
        let routes = [
            "/api/files/{id}",
            "/api/v1.0/files/{id}",
            "/api/files/{id}/stats",
            "/api/v1.0/files/{id}/stats",
            "/api/files/{id}/machines",
            "/api/v1.0/files/{id}/machines",
            "/api/files/{id}/sources",
            "/api/v1.0/files/{id}/sources",
            "/api/files/{id}/determinations",
            "/api/v1.0/files/{id}/determinations",
            "/api/feeds/import",
            "/api/indicators",
            "/api/indicators/{id}",
            "/api/indicators/import",
            "/api/ingest/observations",
            "/api/files/analyze",
            "/{tenant}/oauth2/v2.0/token",
            "/{tenant}/oauth2/token",
        ];
        let named: HashSet<&str> = routes.iter().map(|route| api_of(route).unwrap()).collect();
        assert_eq!(named, RateLimits::API_NAMES.into_iter().collect::<HashSet<_>>());
        assert_eq!(api_of("/health"), None);
    }

    fn headers(forwarded: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(forwarded) = forwarded {
            headers.insert("x-forwarded-for", HeaderValue::from_str(forwarded).unwrap());
        }
        headers
    }

    #[test]
    fn ipv6_budgets_are_kept_per_64_and_ipv4_per_address() {
        let one: std::net::IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: std::net::IpAddr = "2001:db8:1:2:ffff:1234:5678:9abc".parse().unwrap();
        let next_64: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(budget_address(one), "2001:db8:1:2::/64");
        assert_eq!(budget_address(one), budget_address(same_64));
        assert_ne!(budget_address(one), budget_address(next_64));
        assert_eq!(budget_address("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_ne!(budget_address("192.0.2.7".parse().unwrap()), budget_address("192.0.2.8".parse().unwrap()));
        assert_eq!(budget_address("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
    }

    #[test]
    fn forwarded_ipv6_clients_of_a_trusted_proxy_are_kept_per_64() {
        let mut extensions = axum::http::Extensions::new();
        extensions.insert(ConnectInfo("10.0.0.1:443".parse::<SocketAddr>().unwrap()));
        let trusted = ["10.0.0.1".parse().unwrap()];
        let address = client_address(&extensions, &headers(Some("2001:db8:7:8::42")), &trusted);
        assert_eq!(address, "2001:db8:7:8::/64");
    }

    #[test]
    fn only_forwarding_by_an_untrusted_peer_is_warned_about() {
        let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let other: std::net::IpAddr = "198.51.100.9".parse().unwrap();
        let trusted = [proxy];
        assert!(forwarded_by_an_untrusted_peer(other, &headers(Some("192.0.2.7")), &trusted));
        assert!(forwarded_by_an_untrusted_peer(other, &headers(Some("192.0.2.7")), &[]));
        assert!(!forwarded_by_an_untrusted_peer(proxy, &headers(Some("192.0.2.7")), &trusted));
        assert!(!forwarded_by_an_untrusted_peer(other, &headers(None), &trusted));
    }
}
