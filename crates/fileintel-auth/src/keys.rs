//! ES256 signing keys and the JWKS that publishes their public halves.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fileintel_core::SigningKey;
use p256::ecdsa::SigningKey as P256Key;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};

use crate::AuthError;

/// A fresh P-256 key with a random `kid`.
pub fn generate(now: i64) -> SigningKey {
    let key = P256Key::random(&mut rand_core::OsRng);
    // Encoding a freshly generated key cannot fail.
    let pkcs8 = key.to_pkcs8_der().map(|der| der.as_bytes().to_vec()).unwrap_or_default();
    let mut kid = [0u8; 12];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut kid);
    SigningKey { kid: URL_SAFE_NO_PAD.encode(kid), pkcs8, created: now }
}

/// The public key's affine coordinates, base64url, as a JWK carries them.
pub(crate) fn public_coordinates(key: &SigningKey) -> Result<(String, String), AuthError> {
    let private = P256Key::from_pkcs8_der(&key.pkcs8).map_err(|error| AuthError::Key(error.to_string()))?;
    let point = private.verifying_key().to_encoded_point(false);
    match (point.x(), point.y()) {
        (Some(x), Some(y)) => Ok((URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y))),
        _ => Err(AuthError::Key("the public key is the identity point".into())),
    }
}

/// The JWKS document (`{"keys": [...]}`) for these keys.
pub fn jwks(keys: &[SigningKey]) -> Result<serde_json::Value, AuthError> {
    let mut published = Vec::with_capacity(keys.len());
    for key in keys {
        let (x, y) = public_coordinates(key)?;
        published.push(serde_json::json!({
            "kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256", "kid": key.kid, "x": x, "y": y,
        }));
    }
    Ok(serde_json::json!({ "keys": published }))
}

/// The key new tokens are signed with: the newest, which is the last of the keys in the store's
/// order (the order they were added).
pub fn current(keys: &[SigningKey]) -> Option<&SigningKey> {
    keys.last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwks_publishes_each_key_without_its_private_half() {
        let keys = [generate(1), generate(2)];
        let jwks = jwks(&keys).unwrap();
        let published = jwks["keys"].as_array().unwrap();
        assert_eq!(published.len(), 2);
        assert_eq!(published[1]["kid"], keys[1].kid);
        assert_eq!(URL_SAFE_NO_PAD.decode(published[0]["x"].as_str().unwrap()).unwrap().len(), 32);
        assert!(published[0].get("d").is_none());
        assert_ne!(keys[0].kid, keys[1].kid);
        assert_eq!(current(&keys).unwrap().kid, keys[1].kid);
    }
}
