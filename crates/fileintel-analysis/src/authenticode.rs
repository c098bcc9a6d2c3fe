//! Authenticode signatures: every `WIN_CERTIFICATE` of the certificate table, and the signatures
//! nested in each (the `1.3.6.1.4.1.311.2.4.1` unsigned attribute), with their signer, issuer,
//! thumbprint and whether the digest they sign is the image's.
//!
//! Parsing and the image digest come from the `authenticode` crate. Whether the signer's
//! signature, its certificate chain and its timestamp hold is not decided here yet: `verified`
//! stays `None` until it is.

use authenticode::{AttributeCertificateIterator, AuthenticodeSignature, PeTrait};
use cms::signed_data::SignerIdentifier;
use const_oid::ObjectIdentifier;
use der::Encode;
use sha1::Digest as _;
use x509_cert::Certificate;

/// One signature of a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureFacts {
    /// 0 for a signature of the certificate table, 1 for one nested in it, and so on.
    pub depth: u8,
    /// The common name of the signing certificate's subject.
    pub signer: Option<String>,
    /// The common name of its issuer.
    pub issuer: Option<String>,
    /// The SHA-1 thumbprint of the signing certificate, lower-case hex.
    pub signer_hash: Option<String>,
    /// The digest algorithm the signature uses for the image: `SHA1`, `SHA256`, ...
    pub digest_algorithm: String,
    /// Whether the digest the signature holds is the image's Authenticode digest.
    pub digest_matches: Option<bool>,
    /// Whether the signer's signature holds: the signed attributes' message digest is the
    /// signed content's, and the signing certificate's key verifies the signature over them.
    /// `None` when the algorithm is not one fileintel checks.
    pub signer_signature_valid: Option<bool>,
    /// Whether the signature, chain and timestamp hold; not decided yet.
    pub verified: Option<bool>,
}

const NESTED_SIGNATURE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.4.1");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const MD5: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
/// How deep nested signatures are followed.
const MAX_DEPTH: u8 = 4;

/// The common name of an X.500 name, whatever string type it is written in.
fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    use der::asn1::{BmpString, Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
    let value = name.0.iter().flat_map(|rdn| rdn.0.iter()).find(|attribute| attribute.oid == COMMON_NAME)?;
    let value = &value.value;
    Utf8StringRef::try_from(value)
        .map(|text| text.as_str().to_owned())
        .or_else(|_| PrintableStringRef::try_from(value).map(|text| text.as_str().to_owned()))
        .or_else(|_| Ia5StringRef::try_from(value).map(|text| text.as_str().to_owned()))
        .or_else(|_| TeletexStringRef::try_from(value).map(|text| text.as_str().to_owned()))
        .or_else(|_| value.decode_as::<BmpString>().map(|text| text.to_string()))
        .ok()
}

/// Image digests by algorithm, each computed at most once per file.
struct ImageDigests<'a> {
    pe: &'a dyn PeTrait,
    known: Vec<(ObjectIdentifier, Option<Vec<u8>>)>,
}

impl ImageDigests<'_> {
    fn get(&mut self, algorithm: ObjectIdentifier) -> Option<Vec<u8>> {
        if let Some((_, digest)) = self.known.iter().find(|(known, _)| *known == algorithm) {
            return digest.clone();
        }
        fn run<D: digest::Digest + digest::Update>(pe: &dyn PeTrait) -> Option<Vec<u8>> {
            let mut hasher = D::new();
            authenticode::authenticode_digest(pe, &mut hasher).ok()?;
            Some(hasher.finalize().to_vec())
        }
        let digest = match algorithm {
            SHA1 => run::<sha1::Sha1>(self.pe),
            SHA256 => run::<sha2::Sha256>(self.pe),
            SHA384 => run::<sha2::Sha384>(self.pe),
            SHA512 => run::<sha2::Sha512>(self.pe),
            MD5 => run::<md5::Md5>(self.pe),
            _ => None,
        };
        self.known.push((algorithm, digest.clone()));
        digest
    }
}

fn algorithm_name(algorithm: ObjectIdentifier) -> String {
    match algorithm {
        SHA1 => "SHA1".into(),
        SHA256 => "SHA256".into(),
        SHA384 => "SHA384".into(),
        SHA512 => "SHA512".into(),
        MD5 => "MD5".into(),
        other => other.to_string(),
    }
}

fn describe(
    signature: &AuthenticodeSignature,
    depth: u8,
    digests: &mut ImageDigests<'_>,
    out: &mut Vec<SignatureFacts>,
    problems: &mut Vec<String>,
) {
    let signer_info = signature.signer_info();
    let signer = match &signer_info.sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => signature.certificates().find(|certificate| {
            certificate.tbs_certificate.issuer == id.issuer
                && certificate.tbs_certificate.serial_number == id.serial_number
        }),
        SignerIdentifier::SubjectKeyIdentifier(_) => None,
    };
    if signer.is_none() {
        problems.push(format!("signature {}: the signing certificate is not among the certificates", out.len() + 1));
    }
    let algorithm = signature.digest_algorithm().oid;
    let digest_matches = digests.get(algorithm).map(|image| image == signature.digest());
    out.push(SignatureFacts {
        depth,
        signer: signer.and_then(|certificate| common_name(&certificate.tbs_certificate.subject)),
        issuer: signer.and_then(|certificate| common_name(&certificate.tbs_certificate.issuer)),
        signer_hash: signer.and_then(thumbprint),
        digest_algorithm: algorithm_name(algorithm),
        digest_matches,
        signer_signature_valid: signer.and_then(|certificate| match signer_signature_holds(signature, certificate) {
            Ok(valid) => valid,
            Err(problem) => {
                problems.push(format!("signature {}: {problem}", out.len() + 1));
                Some(false)
            }
        }),
        verified: None,
    });
    if depth >= MAX_DEPTH {
        return;
    }
    let nested = signer_info.unsigned_attrs.iter().flat_map(|attributes| attributes.iter());
    for attribute in nested.filter(|attribute| attribute.oid == NESTED_SIGNATURE) {
        for value in attribute.values.iter() {
            match value
                .to_der()
                .map_err(|error| error.to_string())
                .and_then(|der| AuthenticodeSignature::from_bytes(&der).map_err(|error| error.to_string()))
            {
                Ok(inner) => describe(&inner, depth + 1, digests, out, problems),
                Err(error) => problems.push(format!("nested signature: {error}")),
            }
        }
    }
}

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

fn hash(algorithm: ObjectIdentifier, bytes: &[u8]) -> Option<Vec<u8>> {
    use digest::Digest;
    Some(match algorithm {
        SHA1 => sha1::Sha1::digest(bytes).to_vec(),
        SHA256 => sha2::Sha256::digest(bytes).to_vec(),
        SHA384 => sha2::Sha384::digest(bytes).to_vec(),
        SHA512 => sha2::Sha512::digest(bytes).to_vec(),
        MD5 => md5::Md5::digest(bytes).to_vec(),
        _ => return None,
    })
}

/// Checks the signer's signature: `Ok(None)` for algorithms not checked, `Err` for structures
/// that cannot be read.
fn signer_signature_holds(signature: &AuthenticodeSignature, signer: &Certificate) -> Result<Option<bool>, String> {
    use ring::signature as verify;
    let info = signature.signer_info();
    let attributes = info.signed_attrs.as_ref().ok_or("no signed attributes")?;
    let content = signature.encapsulated_content().ok_or("no signed content")?;
    let Some(computed) = hash(info.digest_alg.oid, content) else { return Ok(None) };
    let claimed = attributes
        .iter()
        .find(|attribute| attribute.oid == MESSAGE_DIGEST)
        .and_then(|attribute| attribute.values.get(0))
        .and_then(|value| der::asn1::OctetStringRef::try_from(value).ok())
        .ok_or("no message digest attribute")?;
    if claimed.as_bytes() != computed.as_slice() {
        return Ok(Some(false));
    }
    // The signature covers the attributes encoded as a SET OF, not as the [0] they are stored in.
    let signed = attributes.to_der().map_err(|error| format!("signed attributes: {error}"))?;
    let key = &signer.tbs_certificate.subject_public_key_info;
    let curve =
        key.algorithm.parameters.as_ref().and_then(|parameters| parameters.decode_as::<ObjectIdentifier>().ok());
    let algorithm: &'static dyn verify::VerificationAlgorithm = match (key.algorithm.oid, curve, info.digest_alg.oid) {
        (RSA_ENCRYPTION, _, SHA1) => &verify::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
        (RSA_ENCRYPTION, _, SHA256) => &verify::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        (RSA_ENCRYPTION, _, SHA384) => &verify::RSA_PKCS1_2048_8192_SHA384,
        (RSA_ENCRYPTION, _, SHA512) => &verify::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        (EC_PUBLIC_KEY, Some(P256), SHA256) => &verify::ECDSA_P256_SHA256_ASN1,
        (EC_PUBLIC_KEY, Some(P384), SHA384) => &verify::ECDSA_P384_SHA384_ASN1,
        _ => return Ok(None),
    };
    let public_key = verify::UnparsedPublicKey::new(algorithm, key.subject_public_key.raw_bytes());
    Ok(Some(public_key.verify(&signed, info.signature.as_bytes()).is_ok()))
}

fn thumbprint(certificate: &Certificate) -> Option<String> {
    let der = certificate.to_der().ok()?;
    Some(sha1::Sha1::digest(der).iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Every signature of a PE image, primary first, with what could not be read.
pub(crate) fn signatures(bytes: &[u8]) -> (Vec<SignatureFacts>, Vec<String>) {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let pe: Box<dyn PeTrait + '_> = match object::FileKind::parse(bytes) {
        Ok(object::FileKind::Pe32) => match object::read::pe::PeFile32::parse(bytes) {
            Ok(pe) => Box::new(pe),
            Err(error) => return (out, vec![format!("certificate table: {error}")]),
        },
        Ok(object::FileKind::Pe64) => match object::read::pe::PeFile64::parse(bytes) {
            Ok(pe) => Box::new(pe),
            Err(error) => return (out, vec![format!("certificate table: {error}")]),
        },
        _ => return (out, problems),
    };
    let certificates = match AttributeCertificateIterator::new(pe.as_ref()) {
        Ok(Some(certificates)) => certificates,
        Ok(None) => return (out, problems),
        Err(error) => return (out, vec![format!("certificate table: {error}")]),
    };
    let mut digests = ImageDigests { pe: pe.as_ref(), known: Vec::new() };
    for (index, certificate) in certificates.enumerate() {
        let signature = certificate
            .map_err(|error| error.to_string())
            .and_then(|certificate| certificate.get_authenticode_signature().map_err(|error| error.to_string()));
        match signature {
            Ok(signature) => describe(&signature, 0, &mut digests, &mut out, &mut problems),
            Err(error) => problems.push(format!("certificate {}: {error}", index + 1)),
        }
    }
    (out, problems)
}
