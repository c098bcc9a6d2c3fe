//! The look-back windows `/stats` answers from the `recent_*` keyspaces, and the sweep that
//! removes what no window can reach any more.

use fileintel_core::{FileHash, Timestamp};
use fjall::{Keyspace, PersistMode, Readable};

use super::codec::{decode_sighting, u32_value};
use super::keys::{
    DAY_LEVEL, HOUR_LEVEL, bucket_of_key, count_key, file_tenant, keyable, recent_device_key, recent_time_key,
    time_from_bytes,
};
use super::{FjallStore, Inner};
use crate::{OrgFileStats, StoreError, TOP_FILE_NAMES};

impl FjallStore {
    /// Removes window entries that no look-back from `now` on can reach: observation times, and
    /// devices with their hour counts, of whole hours before [`Timestamp::first_hour_kept`].
    /// Queries and the writer only touch later hours, so this runs beside them. Returns how many
    /// entries went.
    pub(crate) fn sweep_windows(&self, now: Timestamp) -> Result<u64, StoreError> {
        let inner = &self.inner;
        // The first hour still kept, and the first time in it.
        let kept_hour = now.first_hour_kept();
        let kept_from = Timestamp::start_of_hour(kept_hour);
        // Keys to remove, committed in bounded batches.
        let mut removed = 0u64;
        let mut doomed: Vec<(&Keyspace, Vec<u8>)> = Vec::new();
        let commit = |doomed: &mut Vec<(&Keyspace, Vec<u8>)>| -> Result<(), StoreError> {
            let mut write = inner.db.batch().durability(Some(PersistMode::SyncAll));
            for (keyspace, key) in doomed.drain(..) {
                write.remove(keyspace, key);
            }
            Ok(write.commit()?)
        };
        for (keyspace, length) in [
            (&inner.keyspaces.recent_times, 20),
            (&inner.keyspaces.recent_devices, 24),
            (&inner.keyspaces.recent_counts, 21),
        ] {
            let counts = std::ptr::eq(keyspace, &inner.keyspaces.recent_counts);
            for item in keyspace.iter() {
                let key = item.key()?;
                let expired = key.len() == length
                    && if counts {
                        // An hour, or a whole day, that ended before the first hour kept.
                        let bucket = bucket_of_key(&key);
                        if key[12] == DAY_LEVEL { (bucket + 1) * 24 <= kept_hour } else { bucket < kept_hour }
                    } else {
                        time_from_bytes(&key[12..20]) < kept_from
                    };
                if expired {
                    doomed.push((keyspace, key.to_vec()));
                    removed += 1;
                    if doomed.len() >= 65_536 {
                        commit(&mut doomed)?;
                    }
                }
            }
        }
        commit(&mut doomed)?;
        Ok(removed)
    }
}

impl Inner {
    pub(super) fn file_stats(
        &self,
        hash: &FileHash,
        tenant: &str,
        since: Timestamp,
    ) -> Result<Option<OrgFileStats>, StoreError> {
        let Some(id) = self.lookup_id(hash)? else { return Ok(None) };
        let record = self.load_record(id)?;
        let mut stats =
            OrgFileStats { record, prevalence: 0, first_seen: None, last_seen: None, top_file_names: Vec::new() };
        if !keyable(&[tenant]) {
            return Ok(Some(stats));
        }
        let Some(tenant) = self.keyspaces.tenants.get(tenant)? else { return Ok(Some(stats)) };
        // Every window read from one snapshot: a commit landing between two of them could
        // otherwise move a device from one count to another unseen.
        let snapshot = self.db.snapshot();
        let tenant = u32_value("tenant", &tenant)?;
        let prefix = file_tenant(id, tenant);
        let end = recent_time_key(id, tenant, Timestamp(i64::MAX));

        // The first and last observation times at or after `since`.
        let window = recent_time_key(id, tenant, since)..=end;
        if let Some(item) = snapshot.range(&self.keyspaces.recent_times, window.clone()).next() {
            stats.first_seen = Some(time_from_bytes(&item.key()?[12..20]));
        }
        if let Some(item) = snapshot.range(&self.keyspaces.recent_times, window).next_back() {
            stats.last_seen = Some(time_from_bytes(&item.key()?[12..20]));
        }

        // Devices whose last sighting is at or after `since`: whole days after the one `since`
        // falls in, then the whole hours after its hour in that day, from their counts; within
        // its hour, from the devices themselves, counting whichever part of the hour is shorter.
        let hour = since.hour();
        let day = since.day();
        let mut prevalence: i64 = 0;
        let counts = [
            count_key(id, tenant, DAY_LEVEL, day + 1)..count_key(id, tenant, DAY_LEVEL + 1, i64::MIN),
            count_key(id, tenant, HOUR_LEVEL, hour + 1)..count_key(id, tenant, HOUR_LEVEL, (day + 1) * 24),
        ];
        for range in counts {
            for item in snapshot.range(&self.keyspaces.recent_counts, range) {
                prevalence += i64::from(u32_value("device count", &item.value()?)?);
            }
        }
        let hour_start = Timestamp::start_of_hour(hour);
        let hour_end = Timestamp::start_of_hour(hour + 1);
        let count_devices = |from: Timestamp, to: Timestamp| -> Result<i64, StoreError> {
            let range = recent_device_key(id, tenant, from, 0)..recent_device_key(id, tenant, to, 0);
            let mut count = 0;
            for item in snapshot.range(&self.keyspaces.recent_devices, range) {
                item.key()?;
                count += 1;
            }
            Ok(count)
        };
        if since.0 - hour_start.0 <= hour_end.0 - since.0 {
            let whole = match snapshot.get(&self.keyspaces.recent_counts, count_key(id, tenant, HOUR_LEVEL, hour))? {
                Some(bytes) => i64::from(u32_value("hour count", &bytes)?),
                None => 0,
            };
            prevalence += whole - count_devices(hour_start, since)?;
        } else {
            prevalence += count_devices(since, hour_end)?;
        }
        stats.prevalence = u64::try_from(prevalence.max(0)).unwrap_or_default();

        // Names from the same window: each device's sighting says which names it saw the file
        // under since then (`Sighting::names_since`); a pass over the tenant's sightings.
        let mut names: ahash::AHashMap<String, u64> = ahash::AHashMap::new();
        for item in snapshot.prefix(&self.keyspaces.sightings, prefix) {
            let sighting = decode_sighting(&item.value()?)?;
            for name in sighting.names_since(since) {
                *names.entry(name.to_owned()).or_default() += 1;
            }
        }
        stats.top_file_names = fileintel_core::top_names(names.into_iter().collect(), TOP_FILE_NAMES);
        Ok(Some(stats))
    }
}
