//! Client secrets: shown once when made, kept only as argon2id hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A new random secret: 32 bytes, base64url (43 characters).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The argon2id hash of `secret` in PHC form, with a fresh salt.
pub fn hash(secret: &str) -> String {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    // Hashing with default parameters and a valid salt does not fail.
    Argon2::default().hash_password(secret.as_bytes(), &salt).map(|hash| hash.to_string()).unwrap_or_default()
}

/// Whether `secret` matches `phc` (in constant time, as argon2 compares).
pub fn verify(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| Argon2::default().verify_password(secret.as_bytes(), &hash).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_against_its_hash_and_nothing_else_does() {
        let secret = generate();
        let phc = hash(&secret);
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains(&secret));
        assert!(verify(&secret, &phc));
        assert!(!verify(&generate(), &phc));
        assert!(!verify(&secret, "not a hash"));
        assert_ne!(hash(&secret), phc, "every hash has its own salt");
    }
}
