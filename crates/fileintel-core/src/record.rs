//! What fileintel knows about one file, and how two partial records of the same file merge.

use crate::hash::{FileHashes, Sha1};
use crate::observation::{Observation, ReportedFacts};
use crate::time::Timestamp;
use crate::trust::TenantFile;

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
    /// Distinct devices, across all tenants, that observed the file (in a profile a viewer
    /// sees, across the tenants it counts; the same for the observed window).
    pub global_prevalence: u64,
    pub global_first_observed: Option<Timestamp>,
    pub global_last_observed: Option<Timestamp>,
    pub size: Option<u64>,
    /// Facts from fileintel's own analysis and from feeds.
    pub facts: FileFacts,
    /// What endpoints reported, used where `facts` has no answer: in a profile a viewer sees
    /// ([`FileRecord::seen_by`]), the report that speaks to it. Stored records keep reports in
    /// their tenants' rows; one a store wrote before that moves there when the store is opened.
    pub reported: ReportedFacts,
    /// What each tenant's telemetry says of the file, one row per tenant that observed it:
    /// what [`FileRecord::seen_by`] counts. Empty in a profile a viewer sees.
    pub tenants: Vec<crate::trust::TenantFile>,
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
        // Device counts are recounted by the store ([`FileRecord::count_devices`]).
        for row in other.tenants {
            self.tenant_mut(&row.tenant).absorb(row);
        }
    }

    /// The facts the profile shows: fileintel's own where it has them, the endpoints' report
    /// filling the signer and publisher fields it does not.
    pub fn effective_facts(&self) -> FileFacts {
        self.sourced_facts().0
    }

    /// The facts the profile shows, and where each of its static fields came from.
    pub fn sourced_facts(&self) -> (FileFacts, FactSources) {
        let mut facts = self.facts.clone();
        let own = |known: bool| known.then_some(FactSource::FileAnalysis);
        let mut sources = FactSources {
            file_type: own(facts.file_type.is_some()),
            is_pe_file: own(facts.is_pe_file.is_some()),
            file_publisher: own(facts.file_publisher.is_some()),
            file_product_name: own(facts.file_product_name.is_some()),
            signer: own(facts.signer.is_some()),
            issuer: own(facts.issuer.is_some()),
            signer_hash: own(facts.signer_hash.is_some()),
            is_valid_certificate: own(facts.is_valid_certificate.is_some()),
        };
        let reported = &self.reported;
        let from_endpoint = |field: &mut Option<String>, source: &mut Option<FactSource>, value: &Option<String>| {
            if field.is_none() && value.is_some() {
                *field = value.clone();
                *source = Some(FactSource::EndpointReport);
            }
        };
        // The signer comes from the endpoint only when the file carries no signature of its own
        // (Windows also signs files through catalogs, which endpoints see and the bytes do not).
        if facts.signer.is_none() && reported.signed == Some(true) {
            from_endpoint(&mut facts.signer, &mut sources.signer, &reported.signature);
            if let (None, Some(status)) = (facts.is_valid_certificate, reported.signature_status.as_deref()) {
                facts.is_valid_certificate = Some(status == "Valid");
                sources.is_valid_certificate = Some(FactSource::EndpointReport);
            }
        }
        from_endpoint(&mut facts.file_publisher, &mut sources.file_publisher, &reported.company);
        from_endpoint(&mut facts.file_product_name, &mut sources.file_product_name, &reported.product);
        (facts, sources)
    }
}

/// Where a field of the profile came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum FactSource {
    /// fileintel's static analysis of the file's own bytes.
    FileAnalysis,
    /// What an endpoint reported about the file (Sysmon's `Company`, `Signature`, ...).
    EndpointReport,
}

/// The source of each static field of a profile; `None` where the field is unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FactSources {
    pub file_type: Option<FactSource>,
    pub is_pe_file: Option<FactSource>,
    pub file_publisher: Option<FactSource>,
    pub file_product_name: Option<FactSource>,
    pub signer: Option<FactSource>,
    pub issuer: Option<FactSource>,
    pub signer_hash: Option<FactSource>,
    pub is_valid_certificate: Option<FactSource>,
}

/// The most names kept per device and file: a file renamed on every run must not grow without end.
pub const NAMES_PER_SIGHTING: usize = 8;

/// One device's sightings of one file, as every store keeps them: its first and last
/// observation of the file, the latest name it saw the file under, and every name it saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sighting {
    pub first: Timestamp,
    pub last: Timestamp,
    /// The file name from the latest observation that named one.
    pub file_name: Option<String>,
    /// Every distinct name the device saw the file under, in the order first seen (at most
    /// [`NAMES_PER_SIGHTING`]).
    pub names: Vec<String>,
}

impl Sighting {
    pub fn new(time: Timestamp, file_name: Option<String>) -> Self {
        Sighting { first: time, last: time, names: file_name.iter().cloned().collect(), file_name }
    }

    /// Merges another sighting of the same device and file: in any order, the same activity and
    /// the same result, except which names are kept once there are too many and, when both were
    /// last seen at the same time under different names, which name is the latest (the one
    /// merged in).
    pub fn merge(&mut self, other: Sighting) {
        self.first = self.first.min(other.first);
        for name in other.names {
            if !self.names.contains(&name) && self.names.len() < NAMES_PER_SIGHTING {
                self.names.push(name);
            }
        }
        if other.last >= self.last {
            self.last = other.last;
            if other.file_name.is_some() {
                self.file_name = other.file_name;
            }
        }
    }
}

impl Sighting {
    /// The names the device certainly saw the file under at or after `since`, each once: none
    /// when its last sighting is earlier; its latest name when only the last sighting is that
    /// late; every name when its first sighting is too. Names are kept without times of their
    /// own, so a name the device used before `since` never counts, and one it used only within
    /// the window but before a later, other name counts only when the whole sighting is within.
    /// `/stats` ranks `topFileNames` by how many devices these names count, in both stores.
    pub fn names_since(&self, since: Timestamp) -> Vec<&str> {
        if self.last < since {
            return Vec::new();
        }
        let mut names: Vec<&str> = self.file_name.as_deref().into_iter().collect();
        if self.first >= since {
            for name in &self.names {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names
    }
}

/// The most-seen names first, ties by name in byte order, at most `limit`: `topFileNames`
/// from each name's device count.
pub fn top_names(mut counts: Vec<(String, u64)>, limit: usize) -> Vec<String> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.as_bytes().cmp(b.0.as_bytes())));
    counts.into_iter().take(limit).map(|(name, _)| name).collect()
}

impl FileRecord {
    /// Takes in one observation: its time widens the observed window, and its tenant's row
    /// takes what it says ([`TenantFile::take_observation`]); what it reports of the file
    /// (size, signer, ...) speaks only through that row. Returns whether the file is new to the
    /// tenant (it had no row).
    pub fn take_observation(&mut self, observation: &Observation) -> bool {
        self.observe(observation.timestamp);
        let rows = self.tenants.len();
        self.tenant_mut(&observation.tenant_id).take_observation(observation);
        self.tenants.len() > rows
    }

    /// Counts `devices` more devices of `tenant` that observed the file (sightings the store
    /// found to be new), in the tenant's row and in the total.
    pub fn count_devices(&mut self, tenant: &str, devices: u64) {
        self.global_prevalence += devices;
        self.tenant_mut(tenant).devices += devices;
    }

    /// The row of `tenant`, added empty if the tenant has none yet (rows are in name order).
    pub fn tenant_mut(&mut self, tenant: &str) -> &mut TenantFile {
        // Kept in name order, so two stores hold the same rows in the same order.
        let index = match self.tenants.binary_search_by(|row| row.tenant.as_str().cmp(tenant)) {
            Ok(index) => index,
            Err(index) => {
                self.tenants.insert(index, TenantFile::new(tenant));
                index
            }
        };
        &mut self.tenants[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sightings_merge_in_any_order_and_keep_the_latest_name() {
        let mut sighting = Sighting::new(Timestamp(10), Some("a.exe".into()));
        sighting.merge(Sighting::new(Timestamp(5), Some("b.exe".into())));
        assert_eq!(
            (sighting.first, sighting.last, sighting.file_name.as_deref()),
            (Timestamp(5), Timestamp(10), Some("a.exe"))
        );
        sighting.merge(Sighting::new(Timestamp(20), None));
        assert_eq!(
            (sighting.last, sighting.file_name.as_deref()),
            (Timestamp(20), Some("a.exe")),
            "a later sighting without a name"
        );
        for n in 0..20 {
            sighting.merge(Sighting::new(Timestamp(1), Some(format!("{n}.exe"))));
        }
        assert_eq!(sighting.names.len(), NAMES_PER_SIGHTING);
        assert_eq!(&sighting.names[..3], ["a.exe", "b.exe", "0.exe"]);
    }

    #[test]
    fn the_files_own_answers_win_and_each_field_names_its_source() {
        let record = FileRecord {
            facts: FileFacts {
                file_publisher: Some("Microsoft Corporation".into()),
                is_pe_file: Some(true),
                ..Default::default()
            },
            reported: ReportedFacts {
                signed: Some(true),
                signature: Some("Contoso Ltd".into()),
                signature_status: Some("Expired".into()),
                company: Some("Contoso".into()),
                product: Some("Contoso Tools".into()),
            },
            ..Default::default()
        };
        let (facts, sources) = record.sourced_facts();
        assert_eq!(facts.file_publisher.as_deref(), Some("Microsoft Corporation"), "the file's own answer wins");
        assert_eq!(sources.file_publisher, Some(FactSource::FileAnalysis));
        assert_eq!(facts.file_product_name.as_deref(), Some("Contoso Tools"), "the report fills a gap");
        assert_eq!(sources.file_product_name, Some(FactSource::EndpointReport));
        assert_eq!((facts.signer.as_deref(), sources.signer), (Some("Contoso Ltd"), Some(FactSource::EndpointReport)));
        assert_eq!(facts.is_valid_certificate, Some(false));
        assert_eq!(sources.is_valid_certificate, Some(FactSource::EndpointReport));
        assert_eq!((facts.file_type.as_deref(), sources.file_type), (None, None));
        assert_eq!(record.effective_facts(), facts);

        // Once the file's own signature is read, the report no longer speaks for it.
        let mut signed = record.clone();
        signed.facts.signer = Some("Microsoft Windows".into());
        signed.facts.is_valid_certificate = Some(true);
        let (facts, sources) = signed.sourced_facts();
        assert_eq!((facts.signer.as_deref(), facts.is_valid_certificate), (Some("Microsoft Windows"), Some(true)));
        assert_eq!(sources.signer, Some(FactSource::FileAnalysis));
    }
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
