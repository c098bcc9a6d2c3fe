//! Reading an embedded store out, to move it into another backend (`fileintel migrate
//! --from-data-dir`), through nothing but the [`Store`](crate::Store) trait on the other side.
//!
//! A file is exported as its record and a set of observations that, ingested anywhere, rebuild
//! exactly what the embedded store answers about it:
//! - for each device that saw it, an observation at the device's first sighting under each name
//!   it saw the file under, and one at its last sighting under the latest name: prevalence,
//!   first and last seen (per device, per device's activity, per tenant, globally) and the
//!   names ranked by devices come out the same;
//! - for each observation time still kept for look-back windows, an observation by one of the
//!   tenant's devices whose sightings span that time, so windows start and end where they did;
//! - each tenant's size and report ride on an observation at the time they were given.
//!
//! Ingesting observations is idempotent, so a move interrupted part-way is resumed by exporting
//! again from the last file it finished.

use std::collections::HashMap;

use fileintel_core::{FileHashes, FileRecord, Indicator, Observation, Verdict};

use super::codec::{corrupt, decode, decode_device_info, decode_record, decode_sighting, u32_value, u64_value};
use super::keys::{time_from_bytes, verdict_key_hash};
use super::{FjallStore, Inner};
use crate::StoreError;

/// One file of the embedded store, as [`FjallStore::export_files`] gives it.
#[derive(Debug, Clone)]
pub struct ExportedFile {
    /// The file's internal id: export again after the last one finished to resume.
    pub id: u64,
    pub record: FileRecord,
    /// Observations that rebuild the file's sightings, windows and report (see the module).
    pub observations: Vec<Observation>,
}

impl FjallStore {
    /// Up to `limit` files with ids greater than `after`, in id order.
    pub fn export_files(&self, after: u64, limit: usize) -> Result<Vec<ExportedFile>, StoreError> {
        let inner = &self.inner;
        let tenants = inner.tenant_names()?;
        let start = after.saturating_add(1).to_be_bytes();
        let mut files = Vec::new();
        for item in inner.keyspaces.files.range(start..).take(limit) {
            let (key, value) = item.into_inner()?;
            let id = u64_value("file id", &key)?;
            let record = decode_record(&value)?;
            let observations = inner.file_observations(id, &record, &tenants)?;
            files.push(ExportedFile { id, record, observations });
        }
        Ok(files)
    }

    /// Up to `limit` feed verdicts after the key `after` (`None`: from the start), each under
    /// the one hash it was stored under, and the key to continue from (`None` at the end).
    /// Indicators' verdicts are not among them: [`FjallStore::export_indicators`] carries them.
    #[allow(clippy::type_complexity)]
    pub fn export_verdicts(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<(FileHashes, Verdict)>, Option<Vec<u8>>), StoreError> {
        let inner = &self.inner;
        let range = match after {
            Some(after) => {
                inner.keyspaces.verdicts.range((std::ops::Bound::Excluded(after.to_vec()), std::ops::Bound::Unbounded))
            }
            None => inner.keyspaces.verdicts.range::<Vec<u8>, _>(..),
        };
        let mut verdicts = Vec::new();
        let (mut read, mut last) = (0, None);
        for item in range.take(limit) {
            let (key, value) = item.into_inner()?;
            let hash = verdict_key_hash(&key)?;
            let verdict: Verdict = decode("verdict", &value)?;
            if verdict.source.is_feed() {
                verdicts.push((FileHashes::from(hash), verdict));
            }
            read += 1;
            last = Some(key.to_vec());
        }
        Ok((verdicts, if read == limit { last } else { None }))
    }

    /// Every tenant's indicators, each tenant's oldest first.
    pub fn export_indicators(&self) -> Result<Vec<Indicator>, StoreError> {
        let mut indicators = Vec::new();
        for item in self.inner.keyspaces.indicators.iter() {
            indicators.push(decode("indicator", &item.value()?)?);
        }
        Ok(indicators)
    }
}

/// A device's sightings of one file, with what the observations need of the device.
struct Seen {
    tenant: u32,
    device_id: String,
    device_name: Option<String>,
    os_platform: Option<String>,
    first: fileintel_core::Timestamp,
    last: fileintel_core::Timestamp,
    file_name: Option<String>,
    names: Vec<String>,
}

impl Inner {
    /// Tenant numbers to names.
    pub(super) fn tenant_names(&self) -> Result<HashMap<u32, String>, StoreError> {
        let mut names = HashMap::new();
        for item in self.keyspaces.tenants.iter() {
            let (name, number) = item.into_inner()?;
            let name = String::from_utf8(name.to_vec()).map_err(|error| corrupt("tenant name", error))?;
            names.insert(u32_value("tenant", &number)?, name);
        }
        Ok(names)
    }

    fn file_observations(
        &self,
        id: u64,
        record: &FileRecord,
        tenants: &HashMap<u32, String>,
    ) -> Result<Vec<Observation>, StoreError> {
        let mut seen = Vec::new();
        for item in self.keyspaces.sightings.prefix(id.to_be_bytes()) {
            let (key, value) = item.into_inner()?;
            let sighting = decode_sighting(&value)?;
            let tenant = u32_value("sighting key", &key[8..12])?;
            let number = u32_value("sighting key", &key[12..16])?;
            let info = match self.keyspaces.device_info.get(number.to_be_bytes())? {
                Some(bytes) => decode_device_info(&bytes)?,
                None => return Err(corrupt("device info", format!("missing device {number}"))),
            };
            seen.push(Seen {
                tenant,
                device_id: info.device_id,
                device_name: info.device_name,
                os_platform: info.os_platform,
                first: sighting.first,
                last: sighting.last,
                file_name: sighting.file_name,
                names: sighting.names,
            });
        }
        let tenant_name = |tenant: u32| {
            tenants.get(&tenant).cloned().ok_or_else(|| corrupt("tenant", format!("missing tenant {tenant}")))
        };
        let observation = |seen: &Seen, time, file_name: Option<String>| -> Result<Observation, StoreError> {
            Ok(Observation {
                tenant_id: tenant_name(seen.tenant)?,
                device_id: seen.device_id.clone(),
                device_name: seen.device_name.clone(),
                timestamp: time,
                hashes: record.hashes,
                size: None,
                file_name,
                folder_path: None,
                os_platform: seen.os_platform.clone(),
                reported: None,
            })
        };
        let mut observations = Vec::new();
        for device in &seen {
            for name in &device.names {
                observations.push(observation(device, device.first, Some(name.clone()))?);
            }
            if device.names.is_empty() {
                observations.push(observation(device, device.first, None)?);
            }
        }
        // The window times, each by a device of its tenant whose sightings span it. Times come
        // in (tenant, time) order; devices are taken in (tenant, first sighting) order, and of
        // those that started by a time, the one seen last spans it if any does.
        let mut by_start: Vec<&Seen> = seen.iter().collect();
        by_start.sort_by_key(|device| (device.tenant, device.first));
        let (mut next, mut latest): (usize, Option<&Seen>) = (0, None);
        let mut current_tenant = None;
        for item in self.keyspaces.recent_times.prefix(id.to_be_bytes()) {
            let key = item.key()?;
            let tenant = u32_value("window key", &key[8..12])?;
            let time = time_from_bytes(&key[12..20]);
            if current_tenant != Some(tenant) {
                current_tenant = Some(tenant);
                latest = None;
                next = by_start.partition_point(|device| device.tenant < tenant);
            }
            while let Some(device) = by_start.get(next).filter(|device| device.tenant == tenant && device.first <= time)
            {
                if latest.is_none_or(|latest| device.last > latest.last) {
                    latest = Some(device);
                }
                next += 1;
            }
            if let Some(device) = latest.filter(|device| time <= device.last) {
                observations.push(observation(device, time, None)?);
            }
        }
        // Each tenant's size and report, at the time of the observation that gave them, by one
        // of its devices whose sightings span that time (so no sighting or window changes): one
        // always does, since that observation's device is one.
        for row in &record.tenants {
            let spanning = |at: fileintel_core::Timestamp| {
                seen.iter()
                    .find(|device| {
                        tenants.get(&device.tenant) == Some(&row.tenant) && device.first <= at && at <= device.last
                    })
                    .ok_or_else(|| corrupt("tenant row", format!("no device of '{}' saw the file at {at}", row.tenant)))
            };
            if let Some((at, size)) = row.size {
                observations.push(Observation { size: Some(size), ..observation(spanning(at)?, at, None)? });
            }
            if let Some((at, reported)) = &row.reported {
                let reported = Some(Box::new(reported.clone()));
                observations.push(Observation { reported, ..observation(spanning(*at)?, *at, None)? });
            }
        }
        // Last sightings last, so the latest name is the one each device keeps.
        for device in &seen {
            observations.push(observation(device, device.last, device.file_name.clone())?);
        }
        Ok(observations)
    }
}

#[cfg(test)]
mod tests {
    use fileintel_core::{DeterminationType, FileFacts, FileHash, Md5, ReportedFacts, Sha1, Sha256, Timestamp};

    use super::*;
    use crate::Store;

    const HOUR: i64 = fileintel_core::TICKS_PER_HOUR;

    fn hashes(n: u8) -> FileHashes {
        FileHashes {
            sha1: Some(Sha1([n; 20])),
            sha256: Some(Sha256([n; 32])),
            md5: n.is_multiple_of(2).then_some(Md5([n; 16])),
        }
    }

    /// Observations with repeats, renames, several tenants and devices, times inside and far
    /// outside the windows, platforms and a report.
    fn observations() -> Vec<Observation> {
        let now = Timestamp::now();
        let mut observations = Vec::new();
        for n in 1..=6u8 {
            for device in 0..(n as usize + 2) {
                for step in 0..4i64 {
                    let tenant = if device % 3 == 0 { "fabrikam" } else { "contoso" };
                    let hours_ago = (device as i64 * 37 + step * 211 + n as i64 * 5) % 2000;
                    observations.push(Observation {
                        tenant_id: tenant.into(),
                        device_id: format!("d-{device}"),
                        device_name: Some(format!("pc-{device}.{tenant}.local")),
                        timestamp: Timestamp(now.0 - hours_ago * HOUR),
                        hashes: hashes(n),
                        size: Some(1000 + n as u64),
                        file_name: Some(format!("name-{}.exe", (device + step as usize) % 3)),
                        folder_path: None,
                        os_platform: (device % 2 == 0).then(|| "Windows10".to_owned()),
                        reported: (step == 3 && device == 1).then(|| {
                            Box::new(ReportedFacts {
                                company: Some(format!("Contoso {n}")),
                                ..ReportedFacts::default()
                            })
                        }),
                    });
                }
            }
        }
        observations
    }

    #[tokio::test]
    async fn an_exported_store_ingested_elsewhere_answers_the_same() {
        let (from_dir, to_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let from = FjallStore::open(from_dir.path()).unwrap();
        let outcome = from.ingest(observations()).await.unwrap();
        assert!(outcome.rejected.is_empty());
        let facts = FileFacts { determination_type: DeterminationType::Pua, ..FileFacts::default() };
        from.put_facts(hashes(9), Some(77), facts).await.unwrap();

        // Moved in pages of two files, as `migrate` does.
        let to = FjallStore::open(to_dir.path()).unwrap();
        let mut after = 0;
        loop {
            let page = from.export_files(after, 2).unwrap();
            let Some(last) = page.last() else { break };
            after = last.id;
            for file in page {
                if file.observations.is_empty() {
                    to.put_facts(file.record.hashes, file.record.size, file.record.facts.clone()).await.unwrap();
                } else {
                    to.ingest(file.observations).await.unwrap();
                    to.put_facts(file.record.hashes, None, file.record.facts.clone()).await.unwrap();
                }
            }
        }
        assert_eq!(from.stats().await.unwrap().files, to.stats().await.unwrap().files);
        let now = Timestamp::now();
        for n in (1..=6u8).chain([9]) {
            let hash = FileHash::Sha1(Sha1([n; 20]));
            assert_eq!(from.get_file(hash).await.unwrap(), to.get_file(hash).await.unwrap(), "file {n}");
            for tenant in ["contoso", "fabrikam"] {
                let sorted = |mut devices: Vec<crate::DeviceSighting>| {
                    devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
                    devices
                };
                assert_eq!(
                    sorted(from.file_devices(hash, tenant).await.unwrap()),
                    sorted(to.file_devices(hash, tenant).await.unwrap()),
                    "file {n}, {tenant}"
                );
                for hours in [1, 24, 100, 400, 720] {
                    let since = Timestamp(now.0 - hours * HOUR);
                    assert_eq!(
                        from.file_stats(hash, tenant, since).await.unwrap(),
                        to.file_stats(hash, tenant, since).await.unwrap(),
                        "file {n}, {tenant}, {hours} h"
                    );
                }
            }
        }
    }
}
