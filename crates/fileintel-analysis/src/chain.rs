//! Certificate paths: from a signing certificate, through the certificates a signature carries,
//! to a trusted root, as Windows builds them for Authenticode.
//!
//! No crate builds these paths the way Windows does (webpki refuses SHA-1 and non-strict
//! certificates, and knows nothing of trust-list policies), so this is fileintel's own:
//! - each certificate's signature verifies under its issuer's key (issuers found by name);
//! - every certificate below the root is within its validity at the verification time: the
//!   time a timestamp proves, or now;
//! - certificates that issue others are CAs (basic constraints, when present, say so; key
//!   usage, when present, allows certificate signing);
//! - every certificate that lists extended key usages lists the purpose (code signing or
//!   timestamping), or any purpose;
//! - the root is in the trust store, and its trust-list policy allows the purpose at that time.
//!
//! Roots are trusted as they are: their own validity and signature are not checked, as in
//! RFC 5280's trust anchors.

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier};

use crate::asn1::{SHA1, SHA256, SHA384, SHA512, display_name, unix, unix_to_rfc3339};
use crate::trust::{TrustStore, purpose_name, sha1_of};

const ANY_PURPOSE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
/// How many certificates a path may hold below its root.
const MAX_PATH: usize = 8;
/// How many issuer signatures one path search may verify: a hostile signature can carry many
/// certificates of the same name, and the search must stay short whatever it holds.
const MAX_ATTEMPTS: u32 = 64;

/// A certificate a signature carries, with what path building asks of it often.
#[derive(Clone)]
pub(crate) struct Held {
    pub certificate: Certificate,
    pub thumbprint: [u8; 20],
    subject: Vec<u8>,
}

impl Held {
    pub fn new(certificate: Certificate) -> Option<Self> {
        let der = certificate.to_der().ok()?;
        let subject = certificate.tbs_certificate.subject.to_der().ok()?;
        Some(Self { thumbprint: sha1_of(&der), certificate, subject })
    }
}

fn extension<'a, T: Decode<'a>>(certificate: &'a Certificate, oid: ObjectIdentifier) -> Option<T> {
    let extensions = certificate.tbs_certificate.extensions.as_ref()?;
    let found = extensions.iter().find(|extension| extension.extn_id == oid)?;
    T::from_der(found.extn_value.as_bytes()).ok()
}

/// The purposes a certificate lists; `None` when it lists none (and so allows every one).
pub(crate) fn purposes(certificate: &Certificate) -> Option<Vec<ObjectIdentifier>> {
    extension::<ExtendedKeyUsage>(certificate, EXTENDED_KEY_USAGE).map(|usage| usage.0)
}

pub(crate) fn allows(certificate: &Certificate, purpose: ObjectIdentifier) -> bool {
    purposes(certificate).is_none_or(|listed| listed.contains(&purpose) || listed.contains(&ANY_PURPOSE))
}

pub(crate) fn subject_key_identifier(certificate: &Certificate) -> Option<Vec<u8>> {
    extension::<SubjectKeyIdentifier>(certificate, SUBJECT_KEY_IDENTIFIER).map(|id| id.0.as_bytes().to_vec())
}

/// Whether `time` falls within the certificate's validity, and if not, why.
pub(crate) fn within_validity(certificate: &Certificate, time: i64) -> Result<(), String> {
    let validity = &certificate.tbs_certificate.validity;
    let (from, to) = (unix(&validity.not_before), unix(&validity.not_after));
    if time < from {
        return Err(format!(
            "'{}' is not valid before {} (checked at {})",
            display_name(certificate),
            unix_to_rfc3339(from),
            unix_to_rfc3339(time)
        ));
    }
    if time > to {
        return Err(format!(
            "'{}' expired {} (checked at {})",
            display_name(certificate),
            unix_to_rfc3339(to),
            unix_to_rfc3339(time)
        ));
    }
    Ok(())
}

/// The ring algorithm that verifies a signature by `key` over a digest by `digest`.
pub(crate) fn algorithm(
    key: &x509_cert::spki::SubjectPublicKeyInfoOwned,
    digest: ObjectIdentifier,
) -> Option<&'static dyn ring::signature::VerificationAlgorithm> {
    use ring::signature as verify;
    const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    let curve =
        key.algorithm.parameters.as_ref().and_then(|parameters| parameters.decode_as::<ObjectIdentifier>().ok());
    Some(match (key.algorithm.oid, curve, digest) {
        (RSA, _, SHA1) => &verify::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
        (RSA, _, SHA256) => &verify::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        (RSA, _, SHA384) => &verify::RSA_PKCS1_2048_8192_SHA384,
        (RSA, _, SHA512) => &verify::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        (EC, Some(P256), SHA256) => &verify::ECDSA_P256_SHA256_ASN1,
        (EC, Some(P256), SHA384) => &verify::ECDSA_P256_SHA384_ASN1,
        (EC, Some(P384), SHA256) => &verify::ECDSA_P384_SHA256_ASN1,
        (EC, Some(P384), SHA384) => &verify::ECDSA_P384_SHA384_ASN1,
        _ => return None,
    })
}

/// The digest a certificate signature algorithm uses, for those fileintel verifies.
fn certificate_digest(signature_algorithm: ObjectIdentifier) -> Option<ObjectIdentifier> {
    use const_oid::db::rfc5912::{
        ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, SHA_1_WITH_RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION,
        SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
    };
    /// OIW's older name for SHA-1 with RSA, which old Authenticode certificates use.
    const SHA1_WITH_RSA_OIW: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.29");
    Some(match signature_algorithm {
        SHA_1_WITH_RSA_ENCRYPTION | SHA1_WITH_RSA_OIW => SHA1,
        SHA_256_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_256 => SHA256,
        SHA_384_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_384 => SHA384,
        SHA_512_WITH_RSA_ENCRYPTION => SHA512,
        _ => return None,
    })
}

/// Whether `issuer`'s key verifies `child`'s signature; `Err` for algorithms not verified.
fn signed_by(child: &Certificate, issuer: &Certificate) -> Result<bool, String> {
    let oid = child.signature_algorithm.oid;
    let key = &issuer.tbs_certificate.subject_public_key_info;
    let algorithm = certificate_digest(oid)
        .and_then(|digest| algorithm(key, digest))
        .ok_or_else(|| format!("'{}' is signed with {oid}, which fileintel does not verify", display_name(child)))?;
    let tbs = child.tbs_certificate.to_der().map_err(|error| error.to_string())?;
    let Some(signature) = child.signature.as_bytes() else { return Ok(false) };
    Ok(ring::signature::UnparsedPublicKey::new(algorithm, key.subject_public_key.raw_bytes())
        .verify(&tbs, signature)
        .is_ok())
}

/// Whether a certificate may issue others for `purpose` at `time`.
fn may_issue(certificate: &Certificate, purpose: ObjectIdentifier, time: i64) -> Result<(), String> {
    within_validity(certificate, time)?;
    let name = display_name(certificate);
    if extension::<BasicConstraints>(certificate, BASIC_CONSTRAINTS).is_some_and(|constraints| !constraints.ca) {
        return Err(format!("'{name}' is not a CA"));
    }
    if extension::<KeyUsage>(certificate, KEY_USAGE).is_some_and(|usage| !usage.key_cert_sign()) {
        return Err(format!("'{name}' may not sign certificates"));
    }
    if !allows(certificate, purpose) {
        return Err(format!("'{name}' is not allowed for {}", purpose_name(purpose)));
    }
    Ok(())
}

/// What a path is asked to prove.
pub(crate) struct Request<'a> {
    pub trust: &'a TrustStore,
    pub held: &'a [Held],
    pub purpose: ObjectIdentifier,
    /// The verification time, Unix seconds.
    pub time: i64,
}

/// The signature checks a path search has left.
struct Budget(std::cell::Cell<u32>);

impl Budget {
    fn spend(&self) -> Result<(), String> {
        let left = self.0.get().checked_sub(1).ok_or_else(|| {
            format!("no path found within {MAX_ATTEMPTS} signature checks (too many candidate issuers)")
        })?;
        self.0.set(left);
        Ok(())
    }
}

impl Request<'_> {
    /// The path from `leaf` to a trusted root, as the certificates' names, or why there is none.
    /// The leaf itself must be valid at the time and allowed for the purpose.
    pub fn path(&self, leaf: &Certificate) -> Result<Vec<String>, String> {
        within_validity(leaf, self.time)?;
        if !allows(leaf, self.purpose) {
            return Err(format!("'{}' is not allowed for {}", display_name(leaf), purpose_name(self.purpose)));
        }
        let issued = unix(&leaf.tbs_certificate.validity.not_before);
        let der = leaf.to_der().map_err(|error| error.to_string())?;
        let mut visited = vec![sha1_of(&der)];
        self.extend(leaf, issued, &mut visited, &Budget(std::cell::Cell::new(MAX_ATTEMPTS)))
    }

    fn extend(
        &self,
        certificate: &Certificate,
        issued: i64,
        visited: &mut Vec<[u8; 20]>,
        budget: &Budget,
    ) -> Result<Vec<String>, String> {
        let name = display_name(certificate);
        if let Some(anchor) = self.trust.by_thumbprint(visited.last().expect("the certificate itself")) {
            return match anchor.policy.refuses(self.purpose, self.time, issued) {
                Some(reason) => Err(format!("'{name}': {reason}")),
                None => Ok(vec![name]),
            };
        }
        if visited.len() > MAX_PATH {
            return Err(format!("no trusted root within {MAX_PATH} certificates"));
        }
        let issuer = certificate.tbs_certificate.issuer.to_der().map_err(|error| error.to_string())?;
        let issuer_name = crate::asn1::common_name(&certificate.tbs_certificate.issuer)
            .unwrap_or_else(|| certificate.tbs_certificate.issuer.to_string());
        let mut why = format!("'{name}' was issued by '{issuer_name}', which is not a trusted root");
        for anchor in self.trust.by_subject(&issuer) {
            budget.spend()?;
            match signed_by(certificate, &anchor.certificate) {
                Ok(true) => match anchor.policy.refuses(self.purpose, self.time, issued) {
                    Some(reason) => why = format!("'{issuer_name}': {reason}"),
                    None => return Ok(vec![name, display_name(&anchor.certificate)]),
                },
                Ok(false) => why = format!("the signature of '{name}' does not verify under the root '{issuer_name}'"),
                Err(error) => why = error,
            }
        }
        for candidate in self.held.iter().filter(|held| held.subject == issuer) {
            if visited.contains(&candidate.thumbprint) {
                continue;
            }
            budget.spend()?;
            match signed_by(certificate, &candidate.certificate) {
                Ok(true) => {}
                Ok(false) => {
                    why = format!("the signature of '{name}' does not verify under '{issuer_name}'");
                    continue;
                }
                Err(error) => {
                    why = error;
                    continue;
                }
            }
            if let Err(error) = may_issue(&candidate.certificate, self.purpose, self.time) {
                why = error;
                continue;
            }
            visited.push(candidate.thumbprint);
            match self.extend(&candidate.certificate, issued, visited, budget) {
                Ok(mut names) => {
                    names.insert(0, name);
                    return Ok(names);
                }
                Err(error) => why = error,
            }
            visited.pop();
        }
        Err(why)
    }
}
