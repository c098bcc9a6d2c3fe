//! Authenticode signatures: every `WIN_CERTIFICATE` of the certificate table, and the signatures
//! nested in each (the `1.3.6.1.4.1.311.2.4.1` unsigned attribute), each verified:
//! 1. the digest it signs is the image's Authenticode digest;
//! 2. the signer's signature over its signed attributes holds, and those attributes carry the
//!    signed content's digest;
//! 3. a timestamp, when there is one (an RFC 3161 token, or a legacy countersignature), holds
//!    in the same way and chains to a trusted root for timestamping; the time it proves is the
//!    verification time, else now;
//! 4. the signing certificate chains to a trusted root for code signing at that time
//!    (see [`crate::chain`]).
//!
//! The SignedData is read with RustCrypto's `cms`; the image digest comes from the
//! `authenticode` crate, over `object`'s PE reader.

use authenticode::{AttributeCertificateIterator, PeTrait, SpcIndirectDataContent};
use cms::content_info::ContentInfo;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use const_oid::ObjectIdentifier;
use der::asn1::Any;
use der::{Decode, Encode, Tagged};
use x509_cert::Certificate;

use crate::asn1::{self, algorithm_name, hash, lenient_time, unix_to_rfc3339};
use crate::chain::{self, Held, Request};
use crate::trust::{CODE_SIGNING, TIME_STAMPING, TrustStore};

use crate::asn1::common_name;

/// One signature of a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The signature's timestamp, when it has one.
    pub timestamp: Option<TimestampFacts>,
    /// The time the signing certificate was checked at: the timestamp's, or the time of analysis.
    pub verified_at: Option<String>,
    /// The certificates from the signer to its trusted root, by common name, when there is one.
    pub chain: Vec<String>,
    /// Whether the whole signature holds: digest, signer signature, and a path to a root
    /// trusted for code signing at the verification time. `None` when no trust roots are
    /// loaded or an algorithm is not one fileintel checks.
    pub verified: Option<bool>,
    /// Why it does not hold, or what could not be checked.
    pub problems: Vec<String>,
}

/// A signature's timestamp.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimestampFacts {
    /// `RFC3161` for a token in Microsoft's `1.3.6.1.4.1.311.3.3.1` attribute, `Authenticode`
    /// for a PKCS #9 countersignature.
    pub kind: String,
    /// The time it states.
    pub time: Option<String>,
    /// The timestamping authority's common name.
    pub signer: Option<String>,
    /// Whether it holds: it timestamps this signature, its signature verifies, and its
    /// certificate chains to a root trusted for timestamping at that time.
    pub verified: Option<bool>,
}

const SPC_INDIRECT_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
const NESTED_SIGNATURE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.4.1");
const MS_RFC3161_TIMESTAMP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.3.3.1");
const COUNTERSIGNATURE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.6");
const SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// Microsoft's lifetime-signing purpose: a timestamp does not outlive the certificate.
const LIFETIME_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.3.13");
/// How deep nested signatures are followed.
const MAX_DEPTH: u8 = 4;
/// How many signatures of one file are read: real files carry one to three; a hostile one could
/// carry thousands, each costing signature checks.
const MAX_SIGNATURES: usize = 16;

/// What signatures are verified against.
pub(crate) struct Verification<'a> {
    pub trust: &'a TrustStore,
    /// The time of analysis, Unix seconds.
    pub now: i64,
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
            asn1::SHA1 => run::<sha1::Sha1>(self.pe),
            asn1::SHA256 => run::<sha2::Sha256>(self.pe),
            asn1::SHA384 => run::<sha2::Sha384>(self.pe),
            asn1::SHA512 => run::<sha2::Sha512>(self.pe),
            asn1::MD5 => run::<md5::Md5>(self.pe),
            _ => None,
        };
        self.known.push((algorithm, digest.clone()));
        digest
    }
}

/// A CMS SignedData, read field by field so that what one part holds that fileintel does not
/// know (the obsolete attribute-certificate choices some timestamping authorities put among
/// their certificates, say) costs only that part.
struct Signed {
    content_type: ObjectIdentifier,
    content: Option<Any>,
    certificates: Vec<Held>,
    signers: Vec<SignerInfo>,
}

/// Reads a ContentInfo holding a SignedData (trailing bytes, such as a certificate entry's
/// padding, ignored), in DER or, as Windows also reads it, BER.
fn signed_data(bytes: &[u8]) -> Result<Signed, String> {
    signed_data_der(bytes).or_else(|error| match asn1::ber_to_der(bytes) {
        Some(der) => signed_data_der(&der).map_err(|_| error),
        None => Err(error),
    })
}

fn signed_data_der(der: &[u8]) -> Result<Signed, String> {
    let mut reader = der::SliceReader::new(der).map_err(|error| error.to_string())?;
    let content = ContentInfo::decode(&mut reader).map_err(|error| format!("content info: {error}"))?;
    if content.content_type != const_oid::db::rfc5911::ID_SIGNED_DATA {
        return Err(format!("content type {} is not signed data", content.content_type));
    }
    let fields = asn1::elements(&content.content).map_err(|error| format!("signed data: {error}"))?;
    let [_version, _digest_algorithms, encapsulated, rest @ ..] = fields.as_slice() else {
        return Err("signed data is too short".into());
    };
    let encapsulated = encapsulated
        .decode_as::<cms::signed_data::EncapsulatedContentInfo>()
        .map_err(|error| format!("encapsulated content: {error}"))?;
    let mut signed = Signed {
        content_type: encapsulated.econtent_type,
        content: encapsulated.econtent,
        certificates: Vec::new(),
        signers: Vec::new(),
    };
    for field in rest {
        match field.tag() {
            // certificates [0] IMPLICIT CertificateSet: the X.509 certificates among them.
            der::Tag::ContextSpecific { number, .. } if number.value() == 0 => {
                let choices = asn1::elements(field).map_err(|error| format!("certificates: {error}"))?;
                signed.certificates.extend(
                    choices.iter().filter_map(|choice| choice.decode_as::<Certificate>().ok()).filter_map(Held::new),
                );
            }
            der::Tag::Set => {
                let signers = asn1::elements(field).map_err(|error| format!("signers: {error}"))?;
                for signer in signers {
                    signed.signers.push(signer.decode_as().map_err(|error| format!("signer: {error}"))?);
                }
            }
            // crls [1], and anything else.
            _ => {}
        }
    }
    Ok(signed)
}

/// The certificate a signer identifies.
fn find_signer<'a>(signer: &SignerInfo, held: &'a [Held]) -> Option<&'a Certificate> {
    held.iter().map(|held| &held.certificate).find(|certificate| match &signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => {
            certificate.tbs_certificate.issuer == id.issuer
                && certificate.tbs_certificate.serial_number == id.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(id) => {
            chain::subject_key_identifier(certificate).is_some_and(|key| key == id.0.as_bytes())
        }
    })
}

fn attribute(attributes: Option<&x509_cert::attr::Attributes>, oid: ObjectIdentifier) -> Option<&Any> {
    attributes?.iter().find(|attribute| attribute.oid == oid).and_then(|attribute| attribute.values.get(0))
}

/// Checks a signer's signature: its `messageDigest` attribute is the digest of `content`, and
/// `certificate`'s key verifies its signature over the signed attributes. `Ok(None)` for
/// algorithms not checked, `Err` for structures that cannot be read.
fn signer_holds(info: &SignerInfo, content: &[u8], certificate: &Certificate) -> Result<Option<bool>, String> {
    let attributes = info.signed_attrs.as_ref().ok_or("no signed attributes")?;
    let Some(computed) = hash(info.digest_alg.oid, content) else { return Ok(None) };
    let claimed = attribute(Some(attributes), MESSAGE_DIGEST)
        .and_then(|value| der::asn1::OctetStringRef::try_from(value).ok())
        .ok_or("no message digest attribute")?;
    if claimed.as_bytes() != computed.as_slice() {
        return Ok(Some(false));
    }
    // The signature covers the attributes encoded as a SET OF, not as the [0] they are stored in.
    let signed = attributes.to_der().map_err(|error| format!("signed attributes: {error}"))?;
    let key = &certificate.tbs_certificate.subject_public_key_info;
    let Some(algorithm) = chain::algorithm(key, info.digest_alg.oid) else { return Ok(None) };
    let public_key = ring::signature::UnparsedPublicKey::new(algorithm, key.subject_public_key.raw_bytes());
    Ok(Some(public_key.verify(&signed, info.signature.as_bytes()).is_ok()))
}

/// A timestamp as read and checked: its facts, and the time it proves when it holds.
struct Timestamp {
    facts: TimestampFacts,
    proves: Option<i64>,
}

/// The timestamp of a signer, from either attribute; `None` when it has none.
fn timestamp(
    signer: &SignerInfo,
    held: &[Held],
    verification: &Verification<'_>,
    problems: &mut Vec<String>,
) -> Option<Timestamp> {
    let unsigned = signer.unsigned_attrs.as_ref();
    if let Some(token) = attribute(unsigned, MS_RFC3161_TIMESTAMP) {
        let mut facts = TimestampFacts { kind: "RFC3161".into(), ..TimestampFacts::default() };
        let proves = match rfc3161(token, signer, held, verification, &mut facts) {
            Ok(proves) => proves,
            Err(problem) => {
                problems.push(format!("timestamp: {problem}"));
                facts.verified = Some(false);
                None
            }
        };
        return Some(Timestamp { facts, proves });
    }
    let countersigner = attribute(unsigned, COUNTERSIGNATURE)?;
    let mut facts = TimestampFacts { kind: "Authenticode".into(), ..TimestampFacts::default() };
    let proves = match countersignature(countersigner, signer, held, verification, &mut facts) {
        Ok(proves) => proves,
        Err(problem) => {
            problems.push(format!("timestamp: {problem}"));
            facts.verified = Some(false);
            None
        }
    };
    Some(Timestamp { facts, proves })
}

/// Checks a timestamping signer over `content` with its certificate among `held`, at `time`,
/// filling `facts`; returns the time proven when all of it holds (or cannot be decided for
/// want of trust roots).
fn timestamp_signer(
    tsa: &SignerInfo,
    content: &[u8],
    held: &[Held],
    time: i64,
    verification: &Verification<'_>,
    facts: &mut TimestampFacts,
) -> Result<Option<i64>, String> {
    facts.time = Some(unix_to_rfc3339(time));
    let certificate = find_signer(tsa, held).ok_or("the timestamping certificate is not among the certificates")?;
    facts.signer = common_name(&certificate.tbs_certificate.subject);
    match signer_holds(tsa, content, certificate)? {
        Some(true) => {}
        Some(false) => return Err("its signature does not verify".into()),
        None => return Ok(None),
    }
    if verification.trust.is_empty() {
        return Ok(None);
    }
    let request = Request { trust: verification.trust, held, purpose: TIME_STAMPING, time };
    request.path(certificate)?;
    facts.verified = Some(true);
    Ok(Some(time))
}

fn rfc3161(
    token: &Any,
    signer: &SignerInfo,
    outer: &[Held],
    verification: &Verification<'_>,
    facts: &mut TimestampFacts,
) -> Result<Option<i64>, String> {
    let signed = signed_data(&token.to_der().map_err(|error| error.to_string())?)?;
    if signed.content_type != TST_INFO {
        return Err(format!("content type {} is not a timestamp", signed.content_type));
    }
    let content = signed.content.as_ref().ok_or("no timestamp content")?;
    // eContent is an OCTET STRING holding the DER of TSTInfo ::= SEQUENCE { version, policy,
    // messageImprint, serialNumber, genTime, ... }.
    let tst_der = content.value();
    let tst = asn1::elements(&Any::from_der(tst_der).map_err(|error| format!("TSTInfo: {error}"))?)
        .map_err(|error| format!("TSTInfo: {error}"))?;
    let [_, _, imprint, _, time, ..] = tst.as_slice() else { return Err("TSTInfo is too short".into()) };
    let imprint = asn1::elements(imprint).map_err(|error| format!("message imprint: {error}"))?;
    let [algorithm, digest] = imprint.as_slice() else { return Err("message imprint is malformed".into()) };
    let algorithm = asn1::elements(algorithm)
        .ok()
        .and_then(|parts| parts.first().and_then(|oid| oid.decode_as::<ObjectIdentifier>().ok()))
        .ok_or("message imprint algorithm is malformed")?;
    let time = lenient_time(time).ok_or("genTime is malformed")?;
    facts.time = Some(unix_to_rfc3339(time));
    if hash(algorithm, signer.signature.as_bytes()).is_none_or(|computed| computed != digest.value()) {
        return Err("it timestamps another signature".into());
    }
    let tsa = signed.signers.first().ok_or("no timestamping signer")?;
    let mut held = signed.certificates.clone();
    held.extend(outer.iter().cloned());
    timestamp_signer(tsa, tst_der, &held, time, verification, facts)
}

fn countersignature(
    value: &Any,
    signer: &SignerInfo,
    held: &[Held],
    verification: &Verification<'_>,
    facts: &mut TimestampFacts,
) -> Result<Option<i64>, String> {
    let countersigner = value.decode_as::<SignerInfo>().map_err(|error| format!("countersignature: {error}"))?;
    let time = attribute(countersigner.signed_attrs.as_ref(), SIGNING_TIME)
        .and_then(lenient_time)
        .ok_or("the countersignature has no signing time")?;
    // The countersignature signs the signer's signature value.
    timestamp_signer(&countersigner, signer.signature.as_bytes(), held, time, verification, facts)
}

/// Reads one SignedData and every signature nested in it, appending to `out`.
fn describe(
    der: &[u8],
    depth: u8,
    digests: &mut ImageDigests<'_>,
    verification: &Verification<'_>,
    out: &mut Vec<SignatureFacts>,
    problems: &mut Vec<String>,
) {
    if out.len() >= MAX_SIGNATURES {
        if !problems.iter().any(|problem| problem.starts_with("more than")) {
            problems.push(format!("more than {MAX_SIGNATURES} signatures: the rest are not read"));
        }
        return;
    }
    let signed = match signed_data(der) {
        Ok(signed) => signed,
        Err(error) => return problems.push(format!("signature {}: {error}", out.len() + 1)),
    };
    let number = out.len() + 1;
    if signed.content_type != SPC_INDIRECT_DATA {
        return problems
            .push(format!("signature {number}: content type {} is not Authenticode's", signed.content_type));
    }
    let Some(content) = signed.content.as_ref() else {
        return problems.push(format!("signature {number}: no signed content"));
    };
    let indirect = match content.decode_as::<SpcIndirectDataContent>() {
        Ok(indirect) => indirect,
        Err(error) => return problems.push(format!("signature {number}: indirect data: {error}")),
    };
    let Some(signer_info) = signed.signers.first() else {
        return problems.push(format!("signature {number}: no signer"));
    };
    let held = &signed.certificates;
    let signer = find_signer(signer_info, held);
    let algorithm = indirect.message_digest.digest_algorithm.oid;
    let mut facts = SignatureFacts {
        depth,
        signer: signer.and_then(|certificate| common_name(&certificate.tbs_certificate.subject)),
        issuer: signer.and_then(|certificate| common_name(&certificate.tbs_certificate.issuer)),
        signer_hash: signer.and_then(asn1::thumbprint),
        digest_algorithm: algorithm_name(algorithm),
        digest_matches: digests.get(algorithm).map(|image| image == indirect.message_digest.digest.as_bytes()),
        ..SignatureFacts::default()
    };
    if signed.signers.len() > 1 {
        facts.problems.push(format!("{} signers; the first is read", signed.signers.len()));
    }
    verify(&mut facts, signer_info, signer, content.value(), held, verification);
    out.push(facts);

    if depth >= MAX_DEPTH {
        return;
    }
    let unsigned = signer_info.unsigned_attrs.iter().flat_map(|attributes| attributes.iter());
    for attribute in unsigned.filter(|attribute| attribute.oid == NESTED_SIGNATURE) {
        for value in attribute.values.iter() {
            match value.to_der() {
                Ok(der) => describe(&der, depth + 1, digests, verification, out, problems),
                Err(error) => problems.push(format!("nested signature: {error}")),
            }
        }
    }
}

/// Decides steps 2 to 4 of a signature whose digest was compared already.
fn verify(
    facts: &mut SignatureFacts,
    info: &SignerInfo,
    signer: Option<&Certificate>,
    content: &[u8],
    held: &[Held],
    verification: &Verification<'_>,
) {
    let Some(signer) = signer else {
        facts.problems.push("the signing certificate is not among the certificates".into());
        facts.verified = Some(false);
        return;
    };
    facts.signer_signature_valid = match signer_holds(info, content, signer) {
        Ok(valid) => valid,
        Err(problem) => {
            facts.problems.push(problem);
            Some(false)
        }
    };
    let timestamp = timestamp(info, held, verification, &mut facts.problems);
    let lifetime = chain::purposes(signer).is_some_and(|purposes| purposes.contains(&LIFETIME_SIGNING));
    let time = match timestamp.as_ref().and_then(|timestamp| timestamp.proves) {
        Some(time) if !lifetime => time,
        _ => verification.now,
    };
    facts.timestamp = timestamp.map(|timestamp| timestamp.facts);
    facts.verified_at = Some(unix_to_rfc3339(time));
    match facts.digest_matches {
        Some(false) => facts.problems.push("the image's digest is not the signed digest".into()),
        None => facts
            .problems
            .push(format!("the digest algorithm {} is not one fileintel computes", facts.digest_algorithm)),
        Some(true) => {}
    }
    match facts.signer_signature_valid {
        Some(false) => facts.problems.push("the signer's signature does not verify".into()),
        None => facts.problems.push("the signer's signature algorithm is not one fileintel verifies".into()),
        Some(true) => {}
    }
    let chain = if verification.trust.is_empty() {
        facts.problems.push("no trust roots are loaded".into());
        None
    } else {
        let request = Request { trust: verification.trust, held, purpose: CODE_SIGNING, time };
        match request.path(signer) {
            Ok(names) => {
                facts.chain = names;
                Some(true)
            }
            Err(problem) => {
                facts.problems.push(problem);
                Some(false)
            }
        }
    };
    facts.verified = match (facts.digest_matches, facts.signer_signature_valid, chain) {
        (Some(false), _, _) | (_, Some(false), _) | (_, _, Some(false)) => Some(false),
        (Some(true), Some(true), Some(true)) => Some(true),
        _ => None,
    };
    if facts.verified == Some(true) {
        facts.problems.clear();
    }
}

/// Verifies a CMS SignedData outside a PE image (Microsoft's certificate trust list): its first
/// signer's signature over the content holds, and the signing certificate chains to a root of
/// `trust` for `purpose` at `time`. Returns the chain by name, or why it does not hold.
pub(crate) fn verify_signed_data(
    der: &[u8],
    trust: &TrustStore,
    purpose: ObjectIdentifier,
    time: i64,
) -> Result<Vec<String>, String> {
    let signed = signed_data(der)?;
    let content = signed.content.as_ref().ok_or("no signed content")?;
    let info = signed.signers.first().ok_or("no signer")?;
    let signer =
        find_signer(info, &signed.certificates).ok_or("the signing certificate is not among the certificates")?;
    match signer_holds(info, content.value(), signer)? {
        Some(true) => Request { trust, held: &signed.certificates, purpose, time }.path(signer),
        Some(false) => Err("the signer's signature does not verify".into()),
        None => Err("the signer's signature algorithm is not one fileintel verifies".into()),
    }
}

/// Every signature of a parsed PE image, primary first, with what could not be read.
pub(crate) fn signatures(pe: &dyn PeTrait, verification: &Verification<'_>) -> (Vec<SignatureFacts>, Vec<String>) {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let certificates = match AttributeCertificateIterator::new(pe) {
        Ok(Some(certificates)) => certificates,
        Ok(None) => return (out, problems),
        Err(error) => return (out, vec![format!("certificate table: {error}")]),
    };
    let mut digests = ImageDigests { pe, known: Vec::new() };
    for (index, certificate) in certificates.enumerate() {
        match certificate {
            Ok(certificate) if certificate.certificate_type != authenticode::WIN_CERT_TYPE_PKCS_SIGNED_DATA => problems
                .push(format!(
                    "certificate {}: type {:#x} is not PKCS #7 signed data",
                    index + 1,
                    certificate.certificate_type
                )),
            Ok(certificate) => describe(certificate.data, 0, &mut digests, verification, &mut out, &mut problems),
            Err(error) => problems.push(format!("certificate {}: {error}", index + 1)),
        }
    }
    (out, problems)
}
