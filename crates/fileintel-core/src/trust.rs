//! Whose word counts: what one tenant's telemetry says of a file is kept apart from what
//! every tenant trusts (fileintel's own analysis, the operator's feeds), and a reader sees only
//! the tenants it counts: itself and the ones the operator trusts.

use std::collections::BTreeSet;

use crate::observation::{Observation, ReportedFacts};
use crate::record::FileRecord;
use crate::time::Timestamp;

/// The tenants whose telemetry the operator trusts to speak for every tenant. Empty by default:
/// then each tenant's figures are its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    tenants: BTreeSet<String>,
}

impl Trust {
    pub fn new(tenants: impl IntoIterator<Item = String>) -> Self {
        Trust { tenants: tenants.into_iter().collect() }
    }

    /// Trusts one more tenant.
    pub fn add(&mut self, tenant: impl Into<String>) {
        self.tenants.insert(tenant.into());
    }

    pub fn trusts(&self, tenant: &str) -> bool {
        self.tenants.contains(tenant)
    }

    /// The trusted tenants, in name order.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.tenants.iter().map(String::as_str)
    }
}

/// Who reads a file's profile, which decides whose telemetry its figures count.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    /// The operator (the CLI, exports, a migration): every tenant counts.
    Operator,
    /// A tenant: its own telemetry and that of the tenants the operator trusts.
    Tenant { name: &'a str, trust: &'a Trust },
}

impl Viewer<'_> {
    /// Whether `tenant`'s telemetry speaks to this reader.
    pub fn counts(&self, tenant: &str) -> bool {
        match self {
            Viewer::Operator => true,
            Viewer::Tenant { name, trust } => *name == tenant || trust.trusts(tenant),
        }
    }
}

/// What one tenant's telemetry says of one file, kept per (file, tenant) so that it speaks
/// only to the readers that count that tenant: how many of its devices saw the file and when,
/// and the size and endpoint report of its newest observation that carried them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantFile {
    pub tenant: String,
    /// Distinct devices of the tenant that observed the file.
    pub devices: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    /// The size its newest observation with a size gave, and that observation's time.
    pub size: Option<(Timestamp, u64)>,
    /// What its newest observation with a report said, and that observation's time.
    pub reported: Option<(Timestamp, ReportedFacts)>,
}

impl TenantFile {
    pub fn new(tenant: &str) -> Self {
        TenantFile { tenant: tenant.to_owned(), ..TenantFile::default() }
    }

    /// Takes in one observation of the tenant (its device count is the store's to keep): its
    /// time widens the window, and its size and report stand when no later one is known. In
    /// any order, the same result (ties go to the one taken last).
    pub fn take_observation(&mut self, observation: &Observation) {
        let time = observation.timestamp;
        self.widen(time, time);
        keep_newer(&mut self.size, observation.size.map(|size| (time, size)));
        keep_newer(&mut self.reported, observation.reported.as_ref().map(|reported| (time, (**reported).clone())));
    }

    fn widen(&mut self, first: Timestamp, last: Timestamp) {
        self.first = Some(self.first.map_or(first, |known| known.min(first)));
        self.last = Some(self.last.map_or(last, |known| known.max(last)));
    }

    /// Merges the same tenant's row of a file found to be this one (a link): the window
    /// widens and the newer size and report stand (at the same time, `other`'s). The device
    /// count is recounted by the store, since the two device sets can overlap.
    pub fn absorb(&mut self, other: TenantFile) {
        if let (Some(first), Some(last)) = (other.first, other.last) {
            self.widen(first, last);
        }
        keep_newer(&mut self.size, other.size);
        keep_newer(&mut self.reported, other.reported);
    }
}

/// A value with its time replaces the known one unless the known one is later.
fn keep_newer<T>(known: &mut Option<(Timestamp, T)>, candidate: Option<(Timestamp, T)>) {
    if let Some(candidate) = candidate
        && known.as_ref().is_none_or(|(at, _)| candidate.0 >= *at)
    {
        *known = Some(candidate);
    }
}

impl FileRecord {
    /// The profile as `viewer` sees it, or `None` when nothing it counts knows the file.
    ///
    /// Prevalence and the observed window count the tenants the viewer counts, exactly (the
    /// device sets of two tenants never overlap). The size fileintel measured wins, then the
    /// newest size among the tenants counted; the endpoint report is the newest among them (at
    /// the same time, the viewer's own). The file exists for the viewer when a tenant it counts
    /// saw it or when something every tenant trusts (fileintel's analysis) says anything of it.
    pub fn seen_by(&self, viewer: Viewer<'_>) -> Option<FileRecord> {
        let counted: Vec<&TenantFile> =
            self.tenants.iter().filter(|row| row.devices > 0 && viewer.counts(&row.tenant)).collect();
        let trusted = self.facts != Default::default() || self.size.is_some() || !self.reported.is_empty();
        if counted.is_empty() && !trusted {
            return None;
        }
        // The newest wins; at the same time, the viewer's own row.
        let own = |row: &TenantFile| matches!(viewer, Viewer::Tenant { name, .. } if name == row.tenant);
        let newest = |pick: fn(&TenantFile) -> Option<Timestamp>| {
            counted.iter().filter(|row| pick(row).is_some()).max_by_key(|row| (pick(row), own(row))).copied()
        };
        let reported = match newest(|row| row.reported.as_ref().map(|(at, _)| *at)) {
            Some(row) => row.reported.as_ref().map(|(_, reported)| reported.clone()).unwrap_or_default(),
            None => self.reported.clone(),
        };
        let size = self.size.or_else(|| newest(|row| row.size.map(|(at, _)| at)).and_then(|row| row.size).map(|s| s.1));
        Some(FileRecord {
            hashes: self.hashes,
            global_prevalence: counted.iter().map(|row| row.devices).sum(),
            global_first_observed: counted.iter().filter_map(|row| row.first).min(),
            global_last_observed: counted.iter().filter_map(|row| row.last).max(),
            size,
            facts: self.facts.clone(),
            reported,
            tenants: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{FileHashes, Sha1};
    use crate::record::FileFacts;

    fn observation(tenant: &str, time: i64) -> Observation {
        Observation {
            tenant_id: tenant.into(),
            device_id: "d".into(),
            device_name: None,
            timestamp: Timestamp(time),
            hashes: FileHashes { sha1: Some(Sha1([1; 20])), ..FileHashes::default() },
            size: None,
            file_name: None,
            folder_path: None,
            os_platform: None,
            reported: None,
        }
    }

    fn report(company: &str) -> Option<Box<ReportedFacts>> {
        Some(Box::new(ReportedFacts { company: Some(company.into()), ..ReportedFacts::default() }))
    }

    fn row(tenant: &str, devices: u64, observations: &[Observation]) -> TenantFile {
        let mut row = TenantFile::new(tenant);
        row.devices = devices;
        for observation in observations {
            row.take_observation(observation);
        }
        row
    }

    #[test]
    fn the_newest_size_and_report_of_a_tenant_stand_in_any_order() {
        let older = Observation { size: Some(1), reported: report("Old"), ..observation("t", 10) };
        let newer = Observation { size: Some(2), reported: report("New"), ..observation("t", 20) };
        let plain = observation("t", 30);
        let forward = row("t", 1, &[older.clone(), newer.clone(), plain.clone()]);
        let backward = row("t", 1, &[plain, newer, older]);
        assert_eq!(forward, backward);
        assert_eq!(forward.size, Some((Timestamp(20), 2)));
        assert_eq!(forward.reported.as_ref().and_then(|(_, r)| r.company.as_deref()), Some("New"));
        assert_eq!((forward.first, forward.last), (Some(Timestamp(10)), Some(Timestamp(30))));
    }

    #[test]
    fn a_viewer_sees_its_own_and_trusted_tenants_only() {
        let record = FileRecord {
            hashes: FileHashes { sha1: Some(Sha1([1; 20])), ..FileHashes::default() },
            tenants: vec![
                row("contoso", 1, &[Observation { reported: report("Contoso"), ..observation("contoso", 100) }]),
                row(
                    "fabrikam",
                    5000,
                    &[Observation { size: Some(9), reported: report("Microsoft"), ..observation("fabrikam", 5) }],
                ),
                row("woodgrove", 2, &[observation("woodgrove", 300)]),
            ],
            ..FileRecord::default()
        };
        let none = Trust::default();
        let contoso = record.seen_by(Viewer::Tenant { name: "contoso", trust: &none }).unwrap();
        assert_eq!(contoso.global_prevalence, 1, "no tenant trusted: its own figures");
        assert_eq!(
            (contoso.global_first_observed, contoso.global_last_observed),
            (Some(Timestamp(100)), Some(Timestamp(100)))
        );
        assert_eq!(contoso.reported.company.as_deref(), Some("Contoso"));
        assert_eq!(contoso.size, None, "fabrikam's size does not speak for contoso");

        let woodgrove = Trust::new(["woodgrove".to_owned()]);
        let seen = record.seen_by(Viewer::Tenant { name: "contoso", trust: &woodgrove }).unwrap();
        assert_eq!(seen.global_prevalence, 3);
        assert_eq!(seen.global_last_observed, Some(Timestamp(300)));

        let all = record.seen_by(Viewer::Operator).unwrap();
        assert_eq!(all.global_prevalence, 5003);
        assert_eq!(all.global_first_observed, Some(Timestamp(5)));
        assert_eq!(all.size, Some(9));
        assert_eq!(all.reported.company.as_deref(), Some("Contoso"), "the newest report");

        assert!(
            record.seen_by(Viewer::Tenant { name: "northwind", trust: &none }).is_none(),
            "a file only untrusted tenants saw does not exist for another"
        );
        assert_eq!(
            record.seen_by(Viewer::Tenant { name: "northwind", trust: &woodgrove }).unwrap().global_prevalence,
            2
        );
    }

    #[test]
    fn what_every_tenant_trusts_is_seen_by_all_and_analysis_wins() {
        let record = FileRecord {
            size: Some(4096),
            facts: FileFacts { file_publisher: Some("Contoso Ltd".into()), ..FileFacts::default() },
            tenants: vec![row(
                "fabrikam",
                1,
                &[Observation { size: Some(1), reported: report("Microsoft"), ..observation("fabrikam", 5) }],
            )],
            ..FileRecord::default()
        };
        let seen = record.seen_by(Viewer::Tenant { name: "contoso", trust: &Trust::default() }).unwrap();
        assert_eq!((seen.global_prevalence, seen.global_first_observed), (0, None));
        assert_eq!(seen.size, Some(4096));
        assert!(seen.reported.is_empty());
        let fabrikam = record.seen_by(Viewer::Tenant { name: "fabrikam", trust: &Trust::default() }).unwrap();
        assert_eq!(fabrikam.size, Some(4096), "the measured size wins over a report");
        assert_eq!(fabrikam.effective_facts().file_publisher.as_deref(), Some("Contoso Ltd"));
    }
}
