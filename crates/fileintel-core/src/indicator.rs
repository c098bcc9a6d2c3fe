//! Analysts' indicators in the shape of MDE's indicator API, and what each says about its file.
//!
//! An indicator's action becomes a determination (the README lists it):
//! - `Allowed`: `Clean`;
//! - `Block`, `BlockAndRemediate`, `AlertAndBlock`: `Malware`;
//! - `Alert`: `Unwanted`;
//! - `Warn`: `Pua`;
//! - `Audit`: nothing: an audit indicator watches, it does not judge.
//!
//! Except for `Allowed`, a title that names a determination as a word (`PUA toolbar`,
//! `Unwanted: crypto miner`) says that one instead. The title is the determination's value.

use crate::determination::{Verdict, VerdictSource};
use crate::hash::{FileHash, FileHashes};
use crate::record::DeterminationType;
use crate::time::Timestamp;

/// The file indicator types fileintel keeps (MDE also has IP, domain, URL and certificate ones).
pub const FILE_INDICATOR_TYPES: [&str; 3] = ["FileSha1", "FileSha256", "FileMd5"];
/// The actions MDE accepts.
pub const ACTIONS: [&str; 7] = ["Allowed", "Block", "BlockAndRemediate", "AlertAndBlock", "Alert", "Warn", "Audit"];
/// The severities MDE accepts.
pub const SEVERITIES: [&str; 4] = ["Informational", "Low", "Medium", "High"];

/// One indicator of one tenant, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Indicator {
    pub tenant: String,
    pub id: String,
    pub indicator_value: String,
    pub indicator_type: String,
    pub action: String,
    pub title: String,
    pub description: String,
    pub severity: Option<String>,
    pub application: Option<String>,
    pub recommended_actions: Option<String>,
    pub rbac_group_names: Vec<String>,
    pub generate_alert: Option<bool>,
    pub external_id: Option<String>,
    pub expiration_time: Option<Timestamp>,
    pub created_by: String,
    pub creation_time: Timestamp,
    pub last_update_time: Timestamp,
    pub last_updated_by: Option<String>,
}

impl Indicator {
    /// The file hash it names.
    pub fn hash(&self) -> Result<FileHash, String> {
        let hash = FileHash::parse(&self.indicator_value).map_err(|error| error.to_string())?;
        match (self.indicator_type.as_str(), hash) {
            ("FileSha1", FileHash::Sha1(_)) | ("FileSha256", FileHash::Sha256(_)) | ("FileMd5", FileHash::Md5(_)) => {
                Ok(hash)
            }
            (kind, _) => Err(format!("'{}' is not a {kind} value", self.indicator_value)),
        }
    }

    /// The determination its action (and title) says, if any.
    pub fn determination(&self) -> Option<DeterminationType> {
        use DeterminationType::*;
        let by_action = match self.action.as_str() {
            "Allowed" => return Some(Clean),
            "Block" | "BlockAndRemediate" | "AlertAndBlock" => Malware,
            "Alert" => Unwanted,
            "Warn" => Pua,
            _ => return None,
        };
        let named = self.title.split(|c: char| !c.is_ascii_alphanumeric()).find_map(|word| {
            match word.to_ascii_lowercase().as_str() {
                "malware" => Some(Malware),
                "unwanted" => Some(Unwanted),
                "pua" => Some(Pua),
                "clean" => Some(Clean),
                _ => None,
            }
        });
        Some(named.unwrap_or(by_action))
    }

    /// What it says about its file, as a verdict of its tenant; `None` when it judges nothing.
    pub fn verdict(&self) -> Option<(FileHashes, Verdict)> {
        let determination_type = self.determination()?;
        let hashes = FileHashes::from(self.hash().ok()?);
        Some((
            hashes,
            Verdict {
                source: VerdictSource::Indicator { tenant: self.tenant.clone(), id: self.id.clone() },
                determination_type,
                determination_value: Some(self.title.clone()).filter(|title| !title.is_empty()),
                rank: 0,
                said_at: Some(self.last_update_time),
                valid_from: None,
                valid_until: self.expiration_time,
                revoked: false,
                reference: Some(format!("indicator {}", self.id)),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indicator(action: &str, title: &str) -> Indicator {
        Indicator {
            tenant: "contoso".into(),
            id: "1".into(),
            indicator_value: "4388963aaa83afe2042a46a3c017ad50bdcdafb3".into(),
            indicator_type: "FileSha1".into(),
            action: action.into(),
            title: title.into(),
            description: String::new(),
            severity: None,
            application: None,
            recommended_actions: None,
            rbac_group_names: Vec::new(),
            generate_alert: None,
            external_id: None,
            expiration_time: None,
            created_by: "app".into(),
            creation_time: Timestamp(0),
            last_update_time: Timestamp(1),
            last_updated_by: None,
        }
    }

    #[test]
    fn actions_and_titles_say_determinations() {
        use DeterminationType::*;
        let said = |action: &str, title: &str| indicator(action, title).determination();
        assert_eq!(said("Allowed", "PUA we trust"), Some(Clean), "an allowed file is clean whatever the title");
        assert_eq!(said("Block", "bad"), Some(Malware));
        assert_eq!(said("BlockAndRemediate", "PUA: toolbar"), Some(Pua), "the title names another type");
        assert_eq!(said("AlertAndBlock", "x"), Some(Malware));
        assert_eq!(said("Alert", "odd"), Some(Unwanted));
        assert_eq!(said("Warn", "bundler"), Some(Pua));
        assert_eq!(said("Audit", "watch"), None);
        assert_eq!(said("Block", "Malwarebytes false positive"), Some(Malware), "a word, not a part of one");
        let (hashes, verdict) = indicator("Warn", "bundler").verdict().unwrap();
        assert!(hashes.sha1.is_some());
        assert_eq!(verdict.determination_value.as_deref(), Some("bundler"));
        assert_eq!(verdict.source, VerdictSource::Indicator { tenant: "contoso".into(), id: "1".into() });
        let mut wrong = indicator("Block", "x");
        wrong.indicator_type = "FileSha256".into();
        assert!(wrong.hash().unwrap_err().contains("is not a FileSha256"));
        assert_eq!(wrong.verdict(), None);
    }
}
