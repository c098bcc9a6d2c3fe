//! Tokens from external OpenID issuers, such as a real Entra ID tenant: which issuers are trusted,
//! and their signing keys, fetched from their JWKS and cached.
//!
//! Configuration is a JSON file (`--trusted-issuers`), a list of:
//!
//! ```json
//! {"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
//!  "jwks_uri": "https://login.microsoftonline.com/common/discovery/v2.0/keys",
//!  "audiences": ["https://api.securitycenter.microsoft.com"],
//!  "user_roles": "store"}
//! ```
//!
//! `{tenantid}` in `issuer` stands for the token's `tid`. `jwks_file` may replace `jwks_uri`;
//! `ca_file` adds a CA for fetching `jwks_uri`; `audiences` defaults to MDE's; `user_roles` says
//! where a delegated caller's directory roles come from: `store` (fileintel's users, by `oid`) or
//! `claims` (the token's `wids` and `roles`). `min_refresh_seconds` (default 60) bounds how often
//! an unknown `kid` may trigger a fetch.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fileintel_auth::{AuthError, Caller};
use http_body_util::{BodyExt, Empty};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRoles {
    #[default]
    Store,
    Claims,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    pub issuer: String,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    #[serde(default)]
    pub user_roles: UserRoles,
    #[serde(default = "default_min_refresh")]
    pub min_refresh_seconds: u64,
    /// The tenants (`tid`) whose tokens are accepted. Required: a multi-tenant issuer such as
    /// Entra ID signs for every tenant in the world with the same keys.
    pub tenants: Vec<String>,
}

/// How long a fetched key set is trusted before it is fetched again.
const MAX_KEY_AGE: Duration = Duration::from_secs(24 * 3600);

fn default_min_refresh() -> u64 {
    60
}

/// Whether an unknown `kid` may trigger a fetch now: never more often than `min_interval`.
pub fn may_refresh(last_fetch: Option<Instant>, now: Instant, min_interval: Duration) -> bool {
    last_fetch.is_none_or(|last| now.saturating_duration_since(last) >= min_interval)
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

struct Cached {
    keys: JwkSet,
    fetched: Option<Instant>,
}

pub struct Issuer {
    config: IssuerConfig,
    audiences: HashSet<String>,
    client: Option<HttpsClient>,
    /// Held across a fetch, so concurrent requests with a new `kid` fetch once.
    cache: tokio::sync::Mutex<Cached>,
}

/// Every configured external issuer.
#[derive(Default)]
pub struct ExternalIssuers {
    issuers: Vec<Issuer>,
}

impl ExternalIssuers {
    /// Reads the configuration file; a JWKS file is read at once, a JWKS URL at first use.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("reading {}: {error}", path.display()))?;
        let configs: Vec<IssuerConfig> =
            serde_json::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        let mut issuers = Vec::with_capacity(configs.len());
        for config in configs {
            if config.tenants.is_empty() {
                return Err(format!("{}: list the tenants whose tokens are accepted in \"tenants\"", config.issuer));
            }
            let audiences = config
                .audiences
                .clone()
                .unwrap_or_else(fileintel_auth::tokens::default_audiences)
                .into_iter()
                .collect();
            let (keys, client) = match (&config.jwks_file, &config.jwks_uri) {
                (Some(file), None) => (read_jwks_file(file)?, None),
                (None, Some(uri)) if uri.starts_with("https://") => {
                    (JwkSet { keys: Vec::new() }, Some(https_client(&config)?))
                }
                (None, Some(uri)) => return Err(format!("{}: jwks_uri must be https, not {uri}", config.issuer)),
                _ => return Err(format!("{}: give one of jwks_uri and jwks_file", config.issuer)),
            };
            issuers.push(Issuer {
                config,
                audiences,
                client,
                cache: tokio::sync::Mutex::new(Cached { keys, fetched: None }),
            });
        }
        Ok(ExternalIssuers { issuers })
    }

    /// The tenants whose tokens some issuer is trusted for (for `--rate-limit TENANT=...`).
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.issuers.iter().flat_map(|issuer| issuer.config.tenants.iter().map(String::as_str))
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The configured issuer a token claiming `iss` for tenant `tid` belongs to, with the issuer
    /// string the token must carry; only for the issuer's listed tenants.
    pub fn find(&self, iss: &str, tid: &str) -> Option<(&Issuer, String)> {
        self.issuers.iter().find_map(|issuer| {
            let expected = issuer.config.issuer.replace("{tenantid}", tid);
            (expected == iss && issuer.config.tenants.iter().any(|tenant| tenant == tid)).then_some((issuer, expected))
        })
    }
}

fn read_jwks_file(file: &std::path::Path) -> Result<JwkSet, String> {
    let text = std::fs::read_to_string(file).map_err(|error| format!("reading {}: {error}", file.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("{}: not a JWKS: {error}", file.display()))
}

fn https_client(config: &IssuerConfig) -> Result<HttpsClient, String> {
    use rustls_pki::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(ca) = &config.ca_file {
        for cert in
            rustls_pki::CertificateDer::pem_file_iter(ca).map_err(|error| format!("{}: {error}", ca.display()))?
        {
            let cert = cert.map_err(|error| format!("{}: {error}", ca.display()))?;
            roots.add(cert).map_err(|error| format!("{}: {error}", ca.display()))?;
        }
    }
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| error.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

use rustls::pki_types as rustls_pki;

impl Issuer {
    /// Verifies a token this issuer signed, fetching its keys when the `kid` is new to us.
    pub async fn verify(&self, token: &str, kid: Option<&str>, iss: &str, now: i64) -> Result<Caller, AuthError> {
        let jwk = self.key(kid).await?;
        let roles_from_claims = self.config.user_roles == UserRoles::Claims;
        fileintel_auth::tokens::verify_with_jwk(token, &jwk, iss, &self.audiences, roles_from_claims, now)
    }

    async fn key(&self, kid: Option<&str>) -> Result<Jwk, AuthError> {
        let find = |keys: &JwkSet| match kid {
            Some(kid) => keys.find(kid).cloned(),
            // Without a kid, only a single-key set is unambiguous.
            None => (keys.keys.len() == 1).then(|| keys.keys[0].clone()),
        };
        let mut cache = self.cache.lock().await;
        // Keys an issuer withdrew are dropped when the set is fetched again, at least daily.
        let stale = cache.fetched.is_some_and(|fetched| fetched.elapsed() >= MAX_KEY_AGE);
        if !stale && let Some(jwk) = find(&cache.keys) {
            return Ok(jwk);
        }
        let min_interval = Duration::from_secs(self.config.min_refresh_seconds);
        if !may_refresh(cache.fetched, Instant::now(), min_interval) {
            return Err(AuthError::UnknownKey(kid.map(str::to_owned)));
        }
        cache.fetched = Some(Instant::now());
        let fetched = match (&self.client, &self.config.jwks_uri, &self.config.jwks_file) {
            (Some(client), Some(uri), _) => fetch_jwks(client, uri).await,
            (_, _, Some(file)) => read_jwks_file(file),
            _ => Err("no JWKS source".to_owned()),
        };
        match fetched {
            Ok(keys) => cache.keys = keys,
            Err(error) => tracing::warn!(issuer = %self.config.issuer, %error, "fetching the issuer's JWKS failed"),
        }
        find(&cache.keys).ok_or_else(|| AuthError::UnknownKey(kid.map(str::to_owned)))
    }
}

/// Largest JWKS accepted: Entra ID's is a few kilobytes.
const MAX_JWKS_BYTES: usize = 1 << 20;

async fn fetch_jwks(client: &HttpsClient, uri: &str) -> Result<JwkSet, String> {
    let uri: axum::http::Uri = uri.parse().map_err(|error| format!("{uri}: {error}"))?;
    // One deadline for the whole exchange, body included, so a stalled issuer cannot hold the
    // key cache.
    let fetch = async {
        let response = client.get(uri.clone()).await.map_err(|error| format!("{uri}: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("{uri}: {}", response.status()));
        }
        let limited = http_body_util::Limited::new(response.into_body(), MAX_JWKS_BYTES);
        let body = limited.collect().await.map_err(|error| format!("{uri}: {error}"))?.to_bytes();
        serde_json::from_slice(&body).map_err(|error| format!("{uri}: not a JWKS: {error}"))
    };
    tokio::time::timeout(Duration::from_secs(10), fetch).await.map_err(|_| format!("{uri}: timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_kid_fetches_at_most_once_a_minute() {
        let start = Instant::now();
        let minute = Duration::from_secs(60);
        assert!(may_refresh(None, start, minute), "the first fetch is always allowed");
        assert!(!may_refresh(Some(start), start + Duration::from_secs(59), minute));
        assert!(may_refresh(Some(start), start + minute, minute));
    }

    #[test]
    fn issuers_match_by_template_and_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, r#"{"keys":[]}"#).unwrap();
        let config = dir.path().join("issuers.json");
        std::fs::write(
            &config,
            format!(
                r#"[{{"issuer":"https://login.example/{{tenantid}}/v2.0","jwks_file":{},"tenants":["contoso"]}}]"#,
                serde_json::json!(jwks)
            ),
        )
        .unwrap();
        let issuers = ExternalIssuers::load(&config).unwrap();
        assert!(issuers.find("https://login.example/contoso/v2.0", "contoso").is_some());
        assert!(
            issuers.find("https://login.example/contoso/v2.0", "fabrikam").is_none(),
            "iss must name the token's own tenant"
        );
        assert!(issuers.find("https://login.example/fabrikam/v2.0", "fabrikam").is_none(), "only listed tenants");
        assert!(issuers.find("https://evil.example/contoso/v2.0", "contoso").is_none());
        std::fs::write(&config, r#"[{"issuer":"x","jwks_uri":"https://keys.example/","tenants":[]}]"#).unwrap();
        let Err(error) = ExternalIssuers::load(&config) else { panic!("an issuer without tenants was accepted") };
        assert!(error.contains("tenants"), "{error}");
        std::fs::write(&config, r#"[{"issuer":"x","jwks_uri":"http://plain.example/keys","tenants":["t"]}]"#).unwrap();
        let Err(error) = ExternalIssuers::load(&config) else { panic!("a plain-http JWKS URL was accepted") };
        assert!(error.contains("https"), "{error}");
    }
}
