//! Access tokens as Entra ID shapes them, issued and checked by fileintel.
//!
//! - [`keys`]: ES256 signing keys, generated on first start, and the JWKS that publishes them.
//! - [`secrets`]: client secrets, generated once and kept only as argon2id hashes.
//! - [`tokens`]: issuing access tokens ([`tokens::issue`]) and validating them ([`Verifier`]),
//!   which yields the [`Caller`] that handlers authorize.
//!
//! No I/O: keys and applications come from the store through the caller, and time is a parameter.
//!
//! ```
//! use fileintel_auth::{keys, tokens, Verifier, TokenVersion};
//! let key = keys::generate(1_700_000_000);
//! let grant = tokens::AppGrant { tenant: "contoso", client_id: "c1", object_id: "o1",
//!     roles: &["File.Read.All".to_string()], audience: "https://api.securitycenter.microsoft.com" };
//! let base = "https://localhost:8443";
//! let (token, _) = tokens::issue(&key, base, &grant, TokenVersion::V2, 1_700_000_000).unwrap();
//! let verifier = Verifier::new(&[base.to_string()], &[key], tokens::default_audiences()).unwrap();
//! let caller = verifier.verify(&token, 1_700_000_100).unwrap();
//! assert_eq!(caller.tenant, "contoso");
//! ```

pub mod keys;
pub mod secrets;
pub mod tokens;

pub use tokens::{Caller, TokenVersion, Verifier};

/// A new application with fresh ids and secret; returns it with the secret, which is shown once
/// and kept only as its hash.
pub fn new_application(
    tenant: &str,
    name: &str,
    roles: Vec<String>,
    now: i64,
) -> (fileintel_core::Application, String) {
    let secret = secrets::generate();
    let application = fileintel_core::Application {
        tenant: tenant.to_owned(),
        client_id: uuid::Uuid::new_v4().to_string(),
        object_id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        roles,
        secret_hash: secrets::hash(&secret),
        created: now,
    };
    (application, secret)
}

/// The application with a fresh secret; returns it with the secret.
pub fn rotate_secret(mut application: fileintel_core::Application) -> (fileintel_core::Application, String) {
    let secret = secrets::generate();
    application.secret_hash = secrets::hash(&secret);
    (application, secret)
}

/// An application as it may be shown: never its secret or hash.
pub fn public_view(application: &fileintel_core::Application) -> serde_json::Value {
    serde_json::json!({
        "tenantId": application.tenant,
        "clientId": application.client_id,
        "objectId": application.object_id,
        "name": application.name,
        "roles": application.roles,
        "created": fileintel_core::Timestamp::from_unix_seconds(application.created).to_string(),
    })
}

/// Why a bearer token was not accepted. Handlers turn every variant into 401; the variant is for
/// the log, never for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// The key the token's header names (its `kid`), or none.
    #[error("{}", unknown_key(.0))]
    UnknownKey(Option<String>),
    #[error("the token's algorithm {0} is not the one its key uses")]
    WrongAlgorithm(String),
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not trusted")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token lacks a required claim: {0}")]
    MissingClaim(&'static str),
    #[error("key material is unusable: {0}")]
    Key(String),
}

/// The message of [`AuthError::UnknownKey`]: the key named quoted (it is the token's text, so
/// escaped), or that none is named.
fn unknown_key(kid: &Option<String>) -> String {
    match kid {
        Some(kid) => format!("the token's signing key {} is not known", serde_json::Value::from(kid.as_str())),
        None => "the token names no signing key".to_owned(),
    }
}

/// A new user with a fresh object id; the password is kept only as its hash.
pub fn new_user(tenant: &str, upn: &str, roles: Vec<String>, password: &str, now: i64) -> fileintel_core::User {
    fileintel_core::User {
        tenant: tenant.to_owned(),
        upn: upn.to_owned(),
        object_id: uuid::Uuid::new_v4().to_string(),
        roles,
        password_hash: secrets::hash(password),
        created: now,
    }
}

/// A user as it may be shown: never the password hash.
pub fn public_user(user: &fileintel_core::User) -> serde_json::Value {
    serde_json::json!({
        "tenantId": user.tenant,
        "upn": user.upn,
        "objectId": user.object_id,
        "roles": user.roles,
        "created": fileintel_core::Timestamp::from_unix_seconds(user.created).to_string(),
    })
}

/// The directory roles MDE grants "View Data" to by default.
pub fn default_view_data_roles() -> Vec<String> {
    ["Security Reader", "Security Operator", "Security Administrator", "Global Reader", "Global Administrator"]
        .map(String::from)
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_named_as_text_not_as_a_rust_value() {
        assert_eq!(
            AuthError::UnknownKey(Some("k\n1".into())).to_string(),
            r#"the token's signing key "k\n1" is not known"#
        );
        assert_eq!(AuthError::UnknownKey(None).to_string(), "the token names no signing key");
    }
}
