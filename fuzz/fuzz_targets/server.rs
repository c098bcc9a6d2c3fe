//! The server targets' checks (query strings, token forms, bearer tokens), shared with
//! fileintel-server's tests/fuzz_regressions.rs, which replays the kept findings through them.
#![allow(dead_code)]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fileintel_auth::{AuthError, Verifier};
use fileintel_core::SigningKey;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::EncodePrivateKey;

/// A query string through the server's parsers of it: `lookBackHours` is 720 when absent and
/// otherwise within 1 to 720 or refused; system options start with `$`.
pub fn query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let query = fileintel_server::fuzzing::query(text);
    match query.look_back_value {
        None => assert_eq!(query.look_back_hours, Some(720)),
        Some(value) => {
            if let Some(hours) = query.look_back_hours {
                assert!((1..=720).contains(&hours), "{value:?} gave {hours}");
            }
        }
    }
    assert!(query.system_options.iter().all(|option| option.starts_with('$')), "{:?}", query.system_options);
}

/// A token request's body through the form reader the token endpoint uses: a form's fields have
/// no more characters than its body has bytes, since each byte decodes to at most one (a byte
/// that is not UTF-8 becomes U+FFFD, three bytes, so bytes are not the measure).
pub fn token_form(body: &[u8]) {
    if let Some(form) = fileintel_server::fuzzing::token_form(body) {
        let chars = |text: &String| text.chars().count();
        assert!(form.iter().all(|(name, value)| chars(name) + chars(value) <= body.len()));
    }
}

/// 2026-01-01, as the other targets.
const NOW: i64 = 1_767_225_600;
const KID: &str = "fuzz-key";

fn ring() -> &'static (Verifier, p256::ecdsa::SigningKey) {
    static RING: OnceLock<(Verifier, p256::ecdsa::SigningKey)> = OnceLock::new();
    RING.get_or_init(|| {
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("a valid scalar");
        let pkcs8 = key.to_pkcs8_der().expect("encodes").as_bytes().to_vec();
        let signing = SigningKey { kid: KID.into(), pkcs8, created: 0 };
        let bases = ["https://fileintel.test".to_owned()];
        let verifier = Verifier::new(&bases, &[signing], fileintel_auth::tokens::default_audiences()).expect("ring");
        (verifier, key)
    })
}

fn check(token: &str) -> Result<fileintel_auth::Caller, AuthError> {
    let _ = fileintel_auth::tokens::peek(token);
    ring().0.verify(token, NOW)
}

/// Bearer tokens against a fixed key ring, never panicking. The first byte picks what the rest
/// is: 0, a token as sent; 1, an `Authorization` header value, through the server's reading of
/// it; 2, a token's claims (any bytes), signed here with the ring's key, so that the fuzzer
/// reaches the checks after the signature: such a token is never refused for its signature.
pub fn bearer(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                let _ = check(token);
            }
        }
        1 => {
            if let Some(token) = fileintel_server::fuzzing::bearer(rest) {
                let _ = check(&token);
            }
        }
        _ => {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"ES256","kid":"{KID}","typ":"JWT"}}"#));
            let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(rest));
            let signature: p256::ecdsa::Signature = ring().1.sign(signed.as_bytes());
            let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
            let result = check(&token);
            assert!(
                !matches!(
                    result,
                    Err(AuthError::BadSignature | AuthError::UnknownKey(_) | AuthError::WrongAlgorithm(_))
                ),
                "a token signed with the ring's key: {result:?}"
            );
        }
    }
}
