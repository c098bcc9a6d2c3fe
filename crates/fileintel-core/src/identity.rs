//! Who may call the API: registered applications and the keys fileintel signs tokens with.
//! Values only; hashing and signing live in `fileintel-auth`.

/// An application registered in a tenant, as `fileintel apps create` makes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Application {
    pub tenant: String,
    /// A GUID, as Entra ID's application (client) ids are.
    pub client_id: String,
    /// Stable object id of the application, the token's `oid`.
    pub object_id: String,
    pub name: String,
    /// Application permissions, the token's `roles` (e.g. `File.Read.All`).
    pub roles: Vec<String>,
    /// The client secret as a slow hash (argon2id, PHC string); the secret itself is never kept.
    pub secret_hash: String,
    /// Seconds since the Unix epoch.
    pub created: i64,
}

/// A key fileintel signs access tokens with. The newest signs; older ones stay in the JWKS so
/// tokens they signed verify until they expire.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SigningKey {
    /// The JWT `kid`.
    pub kid: String,
    /// The private key, PKCS#8 DER (ES256: P-256).
    pub pkcs8: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub created: i64,
}

/// A person who may obtain delegated tokens (the resource-owner password grant).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub tenant: String,
    /// The sign-in name, e.g. `alice@contoso.com`: the token's `upn`.
    pub upn: String,
    /// Stable object id, the token's `oid`.
    pub object_id: String,
    /// Directory roles, e.g. `Security Reader`; configuration maps them to permissions such as View Data.
    pub roles: Vec<String>,
    /// The password as a slow hash (argon2id, PHC string).
    pub password_hash: String,
    /// Seconds since the Unix epoch.
    pub created: i64,
}
