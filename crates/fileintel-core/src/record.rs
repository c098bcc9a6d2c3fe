//! What fileintel knows about one file, and how two partial records of the same file merge.

use crate::hash::{FileHashes, Sha1};
use crate::observation::ReportedFacts;
use crate::time::Timestamp;

/// MDE's determination of a file, serialized by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DeterminationType {
    #[default]
    Unknown,
    Malware,
    Unwanted,
    Clean,
    Pua,
}

impl DeterminationType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Malware => "Malware",
            Self::Unwanted => "Unwanted",
            Self::Clean => "Clean",
            Self::Pua => "Pua",
        }
    }
}

impl std::str::FromStr for DeterminationType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        [Self::Unknown, Self::Malware, Self::Unwanted, Self::Clean, Self::Pua]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("'{text}' is not one of Unknown, Malware, Unwanted, Clean, Pua"))
    }
}

/// Static facts about a file: from its own bytes (static analysis) or from what endpoints and feeds say.
/// Every field is unknown until a source fills it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileFacts {
    pub file_type: Option<String>,
    pub is_pe_file: Option<bool>,
    pub file_publisher: Option<String>,
    pub file_product_name: Option<String>,
    pub signer: Option<String>,
    pub issuer: Option<String>,
    pub signer_hash: Option<Sha1>,
    pub is_valid_certificate: Option<bool>,
    pub determination_type: DeterminationType,
    pub determination_value: Option<String>,
}

impl FileFacts {
    /// Keeps what `self` knows and fills the gaps from `other`.
    pub fn fill_from(&mut self, other: FileFacts) {
        fn fill<T>(mine: &mut Option<T>, theirs: Option<T>) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
        fill(&mut self.file_type, other.file_type);
        fill(&mut self.is_pe_file, other.is_pe_file);
        fill(&mut self.file_publisher, other.file_publisher);
        fill(&mut self.file_product_name, other.file_product_name);
        fill(&mut self.signer, other.signer);
        fill(&mut self.issuer, other.issuer);
        fill(&mut self.signer_hash, other.signer_hash);
        fill(&mut self.is_valid_certificate, other.is_valid_certificate);
        if self.determination_type == DeterminationType::Unknown {
            self.determination_type = other.determination_type;
            self.determination_value = other.determination_value;
        }
    }
}

/// One file's profile as the store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRecord {
    pub hashes: FileHashes,
    /// Distinct devices, across all tenants, that observed the file.
    pub global_prevalence: u64,
    pub global_first_observed: Option<Timestamp>,
    pub global_last_observed: Option<Timestamp>,
    pub size: Option<u64>,
    /// Facts from fileintel's own analysis and from feeds.
    pub facts: FileFacts,
    /// What endpoints reported (the latest report), used where `facts` has no answer.
    pub reported: ReportedFacts,
}

impl FileRecord {
    /// Widens the observed window to include `timestamp`.
    pub fn observe(&mut self, timestamp: Timestamp) {
        self.global_first_observed = Some(self.global_first_observed.map_or(timestamp, |t| t.min(timestamp)));
        self.global_last_observed = Some(self.global_last_observed.map_or(timestamp, |t| t.max(timestamp)));
    }

    /// Merges a record of the same file that was known by other hashes. Prevalence is not added:
    /// the two device sets can overlap, so the store recounts it from the merged devices.
    pub fn absorb(&mut self, other: FileRecord) {
        self.hashes.fill_from(&other.hashes);
        if let Some(first) = other.global_first_observed {
            self.observe(first);
        }
        if let Some(last) = other.global_last_observed {
            self.observe(last);
        }
        self.size = self.size.or(other.size);
        self.facts.fill_from(other.facts);
        if self.reported.is_empty() {
            self.reported = other.reported;
        }
    }

    /// The facts the profile shows: fileintel's own where it has them, the endpoints' report
    /// filling the signer and publisher fields it does not.
    pub fn effective_facts(&self) -> FileFacts {
        let mut facts = self.facts.clone();
        let reported = &self.reported;
        if facts.signer.is_none() && reported.signed == Some(true) {
            facts.signer = reported.signature.clone();
            if facts.is_valid_certificate.is_none() {
                facts.is_valid_certificate = reported.signature_status.as_deref().map(|status| status == "Valid");
            }
        }
        if facts.file_publisher.is_none() {
            facts.file_publisher = reported.company.clone();
        }
        if facts.file_product_name.is_none() {
            facts.file_product_name = reported.product.clone();
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Sha256;

    #[test]
    fn absorbing_a_record_keeps_every_field_of_both() {
        let mut first = FileRecord {
            hashes: FileHashes { sha1: Some(Sha1([1; 20])), ..Default::default() },
            global_first_observed: Some(Timestamp(100)),
            global_last_observed: Some(Timestamp(200)),
            facts: FileFacts { file_publisher: Some("Contoso".into()), ..Default::default() },
            ..Default::default()
        };
        let second = FileRecord {
            hashes: FileHashes { sha256: Some(Sha256([2; 32])), ..Default::default() },
            global_first_observed: Some(Timestamp(50)),
            global_last_observed: Some(Timestamp(150)),
            size: Some(7),
            facts: FileFacts {
                file_publisher: Some("Other".into()),
                determination_type: DeterminationType::Malware,
                determination_value: Some("Trojan:Win32/X".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        first.absorb(second);
        assert_eq!(first.hashes.sha256, Some(Sha256([2; 32])));
        assert_eq!(first.hashes.sha1, Some(Sha1([1; 20])));
        assert_eq!(first.global_first_observed, Some(Timestamp(50)));
        assert_eq!(first.global_last_observed, Some(Timestamp(200)));
        assert_eq!(first.size, Some(7));
        assert_eq!(first.facts.file_publisher.as_deref(), Some("Contoso"));
        assert_eq!(first.facts.determination_type, DeterminationType::Malware);
    }

    #[test]
    fn determination_types_parse_by_name() {
        assert_eq!("pua".parse::<DeterminationType>(), Ok(DeterminationType::Pua));
        assert!("evil".parse::<DeterminationType>().is_err());
        assert_eq!(serde_json::to_string(&DeterminationType::Malware).unwrap(), "\"Malware\"");
    }
}
