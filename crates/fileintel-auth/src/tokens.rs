//! Issuing access tokens shaped like Entra ID's, and validating bearer tokens into a [`Caller`].

use std::collections::{HashMap, HashSet};

use fileintel_core::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AuthError;

/// Seconds a token lives: about an hour, as Entra ID issues (MSAL treats under 5 minutes left as expired).
pub const LIFETIME: i64 = 3599;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: i64 = 60;

/// The resources MDE accepts as a token audience, each also with a trailing slash.
pub fn default_audiences() -> Vec<String> {
    let bare = [
        "https://api.securitycenter.microsoft.com",
        "https://api.security.microsoft.com",
        "https://api.securitycenter.windows.com",
        "https://securitycenter.onmicrosoft.com/windowsatpservice",
        "fc780465-2017-40d4-a0c5-307022471b92",
    ];
    bare.iter().flat_map(|audience| [audience.to_string(), format!("{audience}/")]).collect()
}

/// Entra ID's two token formats: v1 (`sts.windows.net`-style issuer, `appid`) and v2 (`/v2.0` issuer, `azp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenVersion {
    V1,
    V2,
}

/// The issuer fileintel writes into its own tokens, in Entra ID's two forms, on its own base URL.
pub fn issuer(base: &str, tenant: &str, version: TokenVersion) -> String {
    let base = base.trim_end_matches('/');
    match version {
        TokenVersion::V1 => format!("{base}/{tenant}/"),
        TokenVersion::V2 => format!("{base}/{tenant}/v2.0"),
    }
}

/// The claims of an access token. Optional ones are left out when absent, as Entra ID does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idtyp: Option<String>,
    pub oid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    pub sub: String,
    pub tid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    pub ver: String,
}

/// What an application asked for with the client-credentials grant.
#[derive(Debug, Clone, Copy)]
pub struct AppGrant<'a> {
    pub tenant: &'a str,
    pub client_id: &'a str,
    pub object_id: &'a str,
    pub roles: &'a [String],
    pub audience: &'a str,
}

/// The claims every token carries, in Entra ID's v1 or v2 form, before the caller-specific ones.
fn base_claims(
    base: &str,
    tenant: &str,
    client_id: &str,
    object_id: &str,
    audience: &str,
    version: TokenVersion,
    now: i64,
) -> AccessClaims {
    let (appid, azp, ver) = match version {
        TokenVersion::V1 => (Some(client_id.to_owned()), None, "1.0"),
        TokenVersion::V2 => (None, Some(client_id.to_owned()), "2.0"),
    };
    AccessClaims {
        aud: audience.to_owned(),
        iss: issuer(base, tenant, version),
        iat: now,
        nbf: now,
        exp: now + LIFETIME,
        appid,
        azp,
        idtyp: None,
        oid: object_id.to_owned(),
        roles: None,
        scp: None,
        sub: object_id.to_owned(),
        tid: tenant.to_owned(),
        upn: None,
        ver: ver.into(),
    }
}

/// Signs an application token; returns it with its lifetime in seconds (`expires_in`).
pub fn issue(
    key: &SigningKey,
    base: &str,
    grant: &AppGrant<'_>,
    version: TokenVersion,
    now: i64,
) -> Result<(String, i64), AuthError> {
    let mut claims = base_claims(base, grant.tenant, grant.client_id, grant.object_id, grant.audience, version, now);
    claims.idtyp = Some("app".into());
    claims.roles = Some(grant.roles.to_vec());
    sign(key, &claims).map(|token| (token, LIFETIME))
}

/// What a user obtained through an application (the resource-owner password grant).
#[derive(Debug, Clone, Copy)]
pub struct UserGrant<'a> {
    pub tenant: &'a str,
    pub client_id: &'a str,
    /// The user's object id.
    pub object_id: &'a str,
    pub upn: &'a str,
    /// Delegated permissions, the token's `scp`.
    pub scopes: &'a [String],
    pub audience: &'a str,
}

/// Signs a delegated (user) token: `scp`, the user's `oid` and `upn`, no `roles`.
pub fn issue_delegated(
    key: &SigningKey,
    base: &str,
    grant: &UserGrant<'_>,
    version: TokenVersion,
    now: i64,
) -> Result<(String, i64), AuthError> {
    let mut claims = base_claims(base, grant.tenant, grant.client_id, grant.object_id, grant.audience, version, now);
    claims.idtyp = Some("user".into());
    claims.scp = Some(grant.scopes.join(" "));
    claims.upn = Some(grant.upn.to_owned());
    sign(key, &claims).map(|token| (token, LIFETIME))
}

/// Signs any claims with `key` (ES256, its `kid` in the header).
pub fn sign(key: &SigningKey, claims: &AccessClaims) -> Result<String, AuthError> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&key.pkcs8))
        .map_err(|error| AuthError::Key(error.to_string()))
}

/// The authenticated caller of a request, as handlers authorize it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    /// The application (client) id: `appid` or `azp`.
    pub app_id: Option<String>,
    pub object_id: String,
    /// Application permissions (`roles`).
    pub roles: Vec<String>,
    /// Delegated permissions (`scp`); empty for application tokens.
    pub scopes: Vec<String>,
    pub upn: Option<String>,
    /// `exp`, so a cache never keeps the caller past it.
    pub expires: i64,
    /// Whether fileintel issued the token itself (its application is then in fileintel's store).
    pub issued_here: bool,
    /// Whether a user signed in (a delegated token) rather than an application acting as itself;
    /// see [`is_delegated`].
    pub delegated: bool,
    /// Directory roles the token itself vouches for (an external issuer configured to be trusted
    /// for them); `None` means: look the user up in fileintel's own user table.
    pub directory_roles: Option<Vec<String>>,
}

impl Caller {
    /// Whether the token is a user's: its permissions are then its `scp` alone, never `roles`.
    pub fn is_delegated(&self) -> bool {
        self.delegated
    }
}

/// Whether claims are a user's (delegated) rather than an application's. `idtyp` says which when
/// present; without it (an issuer not asked for the optional claim) a token naming a user (`upn`)
/// or delegated permissions (`scp`) is a user's. Anything else that is not plainly an application
/// token counts as a user's, so that its `roles` never act as application permissions: a user
/// token with no `scp` has no permission at all.
pub fn is_delegated(claims: &AccessClaims) -> bool {
    match claims.idtyp.as_deref() {
        Some("app") => false,
        Some(_) => true,
        None => claims.upn.is_some() || claims.scp.is_some(),
    }
}

/// The validity window against `now`, with [`LEEWAY`] for clock skew: not expired, and neither
/// valid from (`nbf`) nor issued (`iat`) in the future, since a token issued later than now was
/// not issued by any honest clock and its `exp` cannot be trusted to bound its life.
fn check_times(claims: &AccessClaims, now: i64) -> Result<(), AuthError> {
    if now >= claims.exp + LEEWAY {
        return Err(AuthError::Expired);
    }
    if claims.nbf > now + LEEWAY || claims.iat > now + LEEWAY {
        return Err(AuthError::NotYetValid);
    }
    Ok(())
}

/// The delegated scopes (`scp`) of a user's token; none for an application's.
fn scopes_of(claims: &AccessClaims, delegated: bool) -> Vec<String> {
    match (&claims.scp, delegated) {
        (Some(scp), true) => scp.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Validates bearer tokens against fileintel's own keys.
pub struct Verifier {
    /// The base URLs fileintel answers under; its tokens' issuers are built on one of them.
    bases: Vec<String>,
    /// Each key, with the time after which it verifies nothing: a key superseded by a newer one
    /// only verifies the tokens it signed before, which expire within one lifetime.
    keys: HashMap<String, (DecodingKey, Option<i64>)>,
    audiences: HashSet<String>,
}

impl Verifier {
    pub fn new(bases: &[String], keys: &[SigningKey], audiences: Vec<String>) -> Result<Self, AuthError> {
        let mut decoding = HashMap::new();
        for (index, key) in keys.iter().enumerate() {
            let (x, y) = crate::keys::public_coordinates(key)?;
            let decoding_key =
                DecodingKey::from_ec_components(&x, &y).map_err(|error| AuthError::Key(error.to_string()))?;
            // Keys come oldest first; a key's successor retires it one token lifetime later.
            let retired = keys.get(index + 1).map(|successor| successor.created + LIFETIME + LEEWAY);
            decoding.insert(key.kid.clone(), (decoding_key, retired));
        }
        Ok(Verifier {
            bases: bases.iter().map(|base| base.trim_end_matches('/').to_owned()).collect(),
            keys: decoding,
            audiences: audiences.into_iter().collect(),
        })
    }

    /// Checks the signature (with the algorithm the key uses, never the one the token names),
    /// then issuer, audience and validity window against `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| AuthError::Malformed(error.to_string()))?;
        let (key, retired) =
            header.kid.as_ref().and_then(|kid| self.keys.get(kid)).ok_or(AuthError::UnknownKey(header.kid.clone()))?;
        if retired.is_some_and(|retired| now >= retired) {
            return Err(AuthError::UnknownKey(header.kid.clone()));
        }
        if header.alg != Algorithm::ES256 {
            return Err(AuthError::WrongAlgorithm(format!("{:?}", header.alg)));
        }
        let mut validation = Validation::new(Algorithm::ES256);
        // Time, issuer and audience are checked below against the caller's clock and rules.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                    AuthError::WrongAlgorithm(format!("{:?}", header.alg))
                }
                _ => AuthError::Malformed(error.to_string()),
            })?;
        let claims = data.claims;
        check_times(&claims, now)?;
        // Our tokens live one lifetime: a longer one was not made by this code, however it is signed.
        if claims.exp - claims.iat > LIFETIME {
            return Err(AuthError::Malformed("the token outlives what fileintel issues".into()));
        }
        let own = self.bases.iter().any(|base| {
            [TokenVersion::V1, TokenVersion::V2]
                .into_iter()
                .any(|version| issuer(base, &claims.tid, version) == claims.iss)
        });
        if !own {
            return Err(AuthError::WrongIssuer);
        }
        if !self.audiences.contains(&claims.aud) {
            return Err(AuthError::WrongAudience);
        }
        if claims.tid.is_empty() {
            return Err(AuthError::MissingClaim("tid"));
        }
        let delegated = is_delegated(&claims);
        let scopes = scopes_of(&claims, delegated);
        Ok(Caller {
            tenant: claims.tid,
            app_id: claims.appid.or(claims.azp),
            object_id: claims.oid,
            roles: if delegated { Vec::new() } else { claims.roles.unwrap_or_default() },
            scopes,
            upn: claims.upn,
            expires: claims.exp,
            issued_here: true,
            delegated,
            directory_roles: None,
        })
    }
}

/// What a token says about itself before it is verified: enough to choose the key to verify it with.
#[derive(Debug, Clone)]
pub struct Peek {
    pub kid: Option<String>,
    pub iss: String,
    pub tid: String,
}

/// Reads the header's `kid` and the claims' `iss` and `tid` without verifying anything.
pub fn peek(token: &str) -> Result<Peek, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|error| AuthError::Malformed(error.to_string()))?;
    let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)
        .map_err(|error| AuthError::Malformed(error.to_string()))?
        .claims;
    let text = |name: &str| claims.get(name).and_then(|value| value.as_str()).unwrap_or_default().to_owned();
    Ok(Peek { kid: header.kid, iss: text("iss"), tid: text("tid") })
}

/// Entra ID's role template ids (`wids`) for the roles MDE maps to permissions, by name.
const ROLE_TEMPLATES: [(&str, &str); 5] = [
    ("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader"),
    ("5f2222b1-57c3-48ba-8ad5-d4759f1fde6f", "Security Operator"),
    ("194ae4cb-b126-40b2-bd5b-6091b380977d", "Security Administrator"),
    ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader"),
    ("62e90394-69f5-4237-9190-012177145e10", "Global Administrator"),
];

#[derive(Deserialize)]
struct ExternalClaims {
    #[serde(flatten)]
    access: AccessClaims,
    #[serde(default)]
    wids: Vec<String>,
}

/// Verifies a token from an external issuer with one key of its JWKS. The algorithm comes from
/// the key (RSA: RS256, P-256: ES256), never from the token. With `roles_from_claims`, a delegated
/// token's `wids` (as role names) are taken as the user's directory roles.
pub fn verify_with_jwk(
    token: &str,
    jwk: &jsonwebtoken::jwk::Jwk,
    expected_issuer: &str,
    audiences: &HashSet<String>,
    roles_from_claims: bool,
    now: i64,
) -> Result<Caller, AuthError> {
    use jsonwebtoken::jwk::AlgorithmParameters;
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(curve) if curve.curve == jsonwebtoken::jwk::EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return Err(AuthError::Key("unsupported key type in the issuer's JWKS".into())),
    };
    let header = jsonwebtoken::decode_header(token).map_err(|error| AuthError::Malformed(error.to_string()))?;
    if header.alg != algorithm {
        return Err(AuthError::WrongAlgorithm(format!("{:?}", header.alg)));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|error| AuthError::Key(error.to_string()))?;
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let data =
        jsonwebtoken::decode::<ExternalClaims>(token, &key, &validation).map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
            _ => AuthError::Malformed(error.to_string()),
        })?;
    let ExternalClaims { access: claims, wids } = data.claims;
    check_times(&claims, now)?;
    if claims.iss != expected_issuer {
        return Err(AuthError::WrongIssuer);
    }
    if !audiences.contains(&claims.aud) {
        return Err(AuthError::WrongAudience);
    }
    let delegated = is_delegated(&claims);
    let scopes = scopes_of(&claims, delegated);
    // Only `wids` names directory roles: `roles` holds app roles, which any app owner can name
    // "Security Reader".
    let directory_roles = (roles_from_claims && delegated).then(|| {
        let named = wids.iter().filter_map(|wid| ROLE_TEMPLATES.iter().find(|(id, _)| id == wid));
        named.map(|(_, name)| name.to_string()).collect()
    });
    Ok(Caller {
        tenant: claims.tid,
        app_id: claims.appid.or(claims.azp),
        object_id: claims.oid,
        // A delegated token's `roles` are the user's, not application permissions.
        roles: if delegated { Vec::new() } else { claims.roles.unwrap_or_default() },
        scopes,
        upn: claims.upn,
        expires: claims.exp,
        issued_here: false,
        delegated,
        directory_roles,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::keys;

    const BASE: &str = "https://fileintel.test";
    const NOW: i64 = 1_800_000_000;
    const MDE: &str = "https://api.securitycenter.microsoft.com";

    fn roles() -> Vec<String> {
        vec!["File.Read.All".into()]
    }

    fn token_with(key: &SigningKey, audience: &str, version: TokenVersion, now: i64) -> String {
        let roles = roles();
        let grant = AppGrant { tenant: "contoso", client_id: "app-1", object_id: "obj-1", roles: &roles, audience };
        issue(key, BASE, &grant, version, now).unwrap().0
    }

    fn verifier(keys: &[SigningKey]) -> Verifier {
        Verifier::new(&[BASE.to_owned()], keys, default_audiences()).unwrap()
    }

    fn claims_of(token: &str) -> serde_json::Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn tokens_carry_entra_id_claims_in_both_versions() {
        let key = keys::generate(NOW);
        let v1 = claims_of(&token_with(&key, MDE, TokenVersion::V1, NOW));
        assert_eq!(v1["iss"], "https://fileintel.test/contoso/");
        assert_eq!(v1["appid"], "app-1");
        assert_eq!(v1["ver"], "1.0");
        assert!(v1.get("azp").is_none() && v1.get("scp").is_none());
        let v2 = claims_of(&token_with(&key, MDE, TokenVersion::V2, NOW));
        assert_eq!(v2["iss"], "https://fileintel.test/contoso/v2.0");
        assert_eq!(v2["azp"], "app-1");
        assert_eq!(v2["roles"][0], "File.Read.All");
        assert_eq!(v2["exp"].as_i64().unwrap() - v2["iat"].as_i64().unwrap(), LIFETIME);
        let stranger = token_with(&keys::generate(NOW), MDE, TokenVersion::V1, NOW);
        assert!(matches!(verifier(&[key]).verify(&stranger, NOW), Err(AuthError::UnknownKey(Some(_)))));
    }

    #[test]
    fn a_valid_token_yields_its_caller() {
        let key = keys::generate(NOW);
        let caller = verifier(std::slice::from_ref(&key))
            .verify(&token_with(&key, &format!("{MDE}/"), TokenVersion::V2, NOW), NOW + 10)
            .unwrap();
        assert_eq!(caller.tenant, "contoso");
        assert_eq!(caller.app_id.as_deref(), Some("app-1"));
        assert_eq!(caller.roles, roles());
        assert!(!caller.is_delegated());
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused() {
        let key = keys::generate(NOW);
        let verifier = verifier(std::slice::from_ref(&key));
        let token = token_with(&key, MDE, TokenVersion::V2, NOW);
        assert!(verifier.verify(&token, NOW + LIFETIME + LEEWAY - 1).is_ok());
        assert_eq!(verifier.verify(&token, NOW + LIFETIME + LEEWAY), Err(AuthError::Expired));
        assert_eq!(verifier.verify(&token, NOW - LEEWAY - 1), Err(AuthError::NotYetValid));
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused_whatever_its_expiry() {
        let key = keys::generate(NOW);
        let verifier = verifier(std::slice::from_ref(&key));
        let mut claims: AccessClaims =
            serde_json::from_value(claims_of(&token_with(&key, MDE, TokenVersion::V2, NOW))).unwrap();
        // Ten years ahead, living one ordinary lifetime from then, and valid from now.
        claims.iat = NOW + 10 * 365 * 86_400;
        claims.exp = claims.iat + LIFETIME;
        claims.nbf = NOW;
        let future = sign(&key, &claims).unwrap();
        assert_eq!(verifier.verify(&future, NOW), Err(AuthError::NotYetValid));
        let jwks = crate::keys::jwks(std::slice::from_ref(&key)).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
        claims.iss = "https://login.example/contoso/v2.0".into();
        let audiences: HashSet<String> = default_audiences().into_iter().collect();
        let external = sign(&key, &claims).unwrap();
        assert_eq!(verify_with_jwk(&external, &jwk, &claims.iss, &audiences, false, NOW), Err(AuthError::NotYetValid));
        // Within the leeway, a clock a little ahead of ours is tolerated.
        claims.iss = issuer(BASE, "contoso", TokenVersion::V2);
        claims.iat = NOW + LEEWAY;
        claims.exp = claims.iat + LIFETIME;
        assert!(verifier.verify(&sign(&key, &claims).unwrap(), NOW).is_ok());
    }

    #[test]
    fn a_user_token_without_scopes_is_no_application_token() {
        let key = keys::generate(NOW);
        let jwks = crate::keys::jwks(std::slice::from_ref(&key)).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
        let audiences: HashSet<String> = default_audiences().into_iter().collect();
        let mut claims: AccessClaims =
            serde_json::from_value(claims_of(&token_with(&key, MDE, TokenVersion::V2, NOW))).unwrap();
        claims.iss = "https://login.example/contoso/v2.0".into();
        claims.idtyp = Some("user".into());
        claims.upn = Some("alice@contoso.example".into());
        claims.roles = Some(vec!["File.ReadWrite.All".into()]);
        claims.scp = None;
        let user = verify_with_jwk(&sign(&key, &claims).unwrap(), &jwk, &claims.iss, &audiences, true, NOW).unwrap();
        assert!(user.is_delegated());
        assert!(user.roles.is_empty() && user.scopes.is_empty(), "{user:?}");
        // Without `idtyp`, a named user still makes the token a user's.
        claims.idtyp = None;
        let user = verify_with_jwk(&sign(&key, &claims).unwrap(), &jwk, &claims.iss, &audiences, true, NOW).unwrap();
        assert!(user.is_delegated() && user.roles.is_empty());
        // An application token says so, or names no user and no scope.
        claims.upn = None;
        let app = verify_with_jwk(&sign(&key, &claims).unwrap(), &jwk, &claims.iss, &audiences, true, NOW).unwrap();
        assert!(!app.is_delegated());
        assert_eq!(app.roles, ["File.ReadWrite.All"]);
        assert_eq!(app.directory_roles, None);
    }

    #[test]
    fn tokens_for_another_audience_or_from_another_issuer_are_refused() {
        let key = keys::generate(NOW);
        let verifier = verifier(std::slice::from_ref(&key));
        let other_audience = token_with(&key, "https://graph.microsoft.com", TokenVersion::V2, NOW);
        assert_eq!(verifier.verify(&other_audience, NOW), Err(AuthError::WrongAudience));
        let mut claims: AccessClaims =
            serde_json::from_value(claims_of(&token_with(&key, MDE, TokenVersion::V2, NOW))).unwrap();
        claims.iss = "https://login.microsoftonline.com/contoso/v2.0".into();
        assert_eq!(verifier.verify(&sign(&key, &claims).unwrap(), NOW), Err(AuthError::WrongIssuer));
        // The issuer must name the token's own tenant.
        claims.iss = issuer(BASE, "fabrikam", TokenVersion::V2);
        assert_eq!(verifier.verify(&sign(&key, &claims).unwrap(), NOW), Err(AuthError::WrongIssuer));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let key = keys::generate(NOW);
        let verifier = verifier(std::slice::from_ref(&key));
        let token = token_with(&key, MDE, TokenVersion::V2, NOW);
        let parts: Vec<&str> = token.split('.').collect();
        let (x, _) = keys::public_coordinates(&key).unwrap();

        // alg: none, no signature.
        let none_header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, key.kid));
        assert!(matches!(verifier.verify(&format!("{none_header}.{}.", parts[1]), NOW), Err(AuthError::Malformed(_))));

        // HS256 with the public key as the shared secret.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let claims: AccessClaims = serde_json::from_value(claims_of(&token)).unwrap();
        let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(x.as_bytes())).unwrap();
        assert!(matches!(verifier.verify(&forged, NOW), Err(AuthError::WrongAlgorithm(_))));

        // A key we never issued.
        let stranger = keys::generate(NOW);
        assert!(matches!(
            verifier.verify(&token_with(&stranger, MDE, TokenVersion::V2, NOW), NOW),
            Err(AuthError::UnknownKey(_))
        ));

        // Claims changed after signing.
        let mut tampered = claims.clone();
        tampered.tid = "fabrikam".into();
        let tampered_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered).unwrap());
        assert_eq!(
            verifier.verify(&format!("{}.{tampered_payload}.{}", parts[0], parts[2]), NOW),
            Err(AuthError::BadSignature)
        );

        // Not a JWT at all.
        assert!(matches!(verifier.verify("not-a-token", NOW), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn an_external_delegated_token_can_vouch_for_the_users_roles() {
        let key = keys::generate(NOW);
        let jwks = crate::keys::jwks(std::slice::from_ref(&key)).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
        let issuer = "https://login.example/contoso/v2.0";
        let mut claims: AccessClaims =
            serde_json::from_value(claims_of(&token_with(&key, MDE, TokenVersion::V2, NOW))).unwrap();
        claims.iss = issuer.into();
        claims.roles = None;
        claims.idtyp = Some("user".into());
        claims.scp = Some("File.Read.All".into());
        let mut with_wids = serde_json::to_value(&claims).unwrap();
        // Security Reader's role template id, and one fileintel does not know.
        with_wids["wids"] =
            serde_json::json!(["5d6b6bb7-de71-4623-b4af-96380a352509", "b79fbf4d-3ef9-4689-8143-76b194e85509"]);
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &with_wids, &EncodingKey::from_ec_der(&key.pkcs8)).unwrap();
        let audiences: HashSet<String> = default_audiences().into_iter().collect();
        let trusted = verify_with_jwk(&token, &jwk, issuer, &audiences, true, NOW).unwrap();
        assert_eq!(trusted.directory_roles, Some(vec!["Security Reader".to_string()]));
        assert_eq!(trusted.scopes, ["File.Read.All"]);
        let looked_up = verify_with_jwk(&token, &jwk, issuer, &audiences, false, NOW).unwrap();
        assert_eq!(looked_up.directory_roles, None, "roles then come from fileintel's own users");
        assert_eq!(
            verify_with_jwk(&token, &jwk, "https://login.example/fabrikam/v2.0", &audiences, true, NOW),
            Err(AuthError::WrongIssuer)
        );
    }

    #[test]
    fn tokens_signed_by_a_previous_key_verify_until_they_could_have_expired() {
        let old = keys::generate(NOW);
        let token = token_with(&old, MDE, TokenVersion::V2, NOW);
        let new = keys::generate(NOW + 100);
        let keys = [old.clone(), new];
        assert_eq!(crate::keys::current(&keys).unwrap().kid, keys[1].kid);
        assert!(verifier(&keys).verify(&token, NOW + 200).is_ok());
        // A token minted later with the superseded key (a leaked key, say) stops verifying once
        // every token it honestly signed has expired.
        let late = token_with(&old, MDE, TokenVersion::V2, NOW + 100 + LIFETIME);
        let later = NOW + 100 + LIFETIME + LEEWAY;
        assert!(matches!(verifier(&keys).verify(&late, later), Err(AuthError::UnknownKey(_))));
        // And a token that claims a longer life than fileintel gives is refused.
        let mut claims: AccessClaims = serde_json::from_value(claims_of(&token)).unwrap();
        claims.exp = NOW + 10 * LIFETIME;
        let long_lived = sign(&old, &claims).unwrap();
        assert!(matches!(verifier(std::slice::from_ref(&old)).verify(&long_lived, NOW), Err(AuthError::Malformed(_))));
    }
}
