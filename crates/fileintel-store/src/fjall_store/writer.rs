//! The single writer: merges observations into records and sightings, and writes them durably.
//!
//! One call to [`Inner::ingest`] works through its observations in sub-batches. While the write of
//! sub-batch j runs on a second thread (fjall's memtable inserts, about half the work), sub-batch
//! j+1 is resolved against an overlay of j's state, since the store itself may not hold j yet.
//! Writes land in order, and the call returns only after the last one is fsynced.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use fileintel_core::{FileFacts, FileHash, FileHashes, FileRecord, Observation, Timestamp};
use fjall::{OwnedWriteBatch as WriteBatch, PersistMode};

use super::codec::{DeviceInfo, corrupt, decode_device_info, decode_sighting, encode, u32_value, u64_value};
use super::keys::{count_keys, device_key, name_key, recent_device_key, recent_time_key, sighting_key};
use super::{DEVICE_CACHE_LIMIT, Inner, Sighting, Writer};
use crate::{IngestOutcome, StoreError};

/// Observations per sub-batch: small enough to overlap several writes per call, large enough
/// that sorting and batching still pay.
const SUB_BATCH: usize = 8192;

/// The merged state of one sub-batch. Once prepared, it holds exactly what the store will hold
/// for these keys when its write lands, which is what lets it serve as the next one's overlay.
#[derive(Default)]
pub(super) struct Batch {
    /// Every hash this batch resolved, to its file id.
    ids: HashMap<FileHash, u64>,
    /// Index entries the store does not hold yet.
    new_index: Vec<(FileHash, u64)>,
    records: HashMap<u64, FileRecord>,
    /// For records that existed before this batch: whether they lacked a SHA-256 then.
    partial_before: HashMap<u64, bool>,
    new_files: HashSet<u64>,
    sightings: HashMap<[u8; 16], Sighting>,
    tenants: Vec<(String, u32)>,
    devices: Vec<(u32, String, u32, Option<String>)>,
    observations: usize,
    /// Files new to the tenant that observed them (`IngestOutcome::new_files`).
    new_to_tenants: u64,
    /// `recent_times` keys of this batch's observations within the horizon.
    recent_times: HashSet<[u8; 20]>,
    /// Per device number: first and last observation in this batch, and the platform named.
    activity: HashMap<u32, (Timestamp, Timestamp, Option<String>)>,
    /// Once prepared: the hour counts, name counts and device infos as this batch writes them.
    hours: HashMap<[u8; 21], u32>,
    names: HashMap<Vec<u8>, u32>,
    device_infos: HashMap<u32, DeviceInfo>,
}

pub(super) enum Resolution {
    File(u64),
    /// The observation links two records the store holds apart: merge them, then try again.
    Link(u64, u64),
    Conflict(String),
}

impl Inner {
    fn index(&self, hash: &FileHash) -> (&fjall::Keyspace, Vec<u8>) {
        match hash {
            FileHash::Sha1(h) => (&self.keyspaces.by_sha1, h.0.to_vec()),
            FileHash::Sha256(h) => (&self.keyspaces.by_sha256, h.0.to_vec()),
            FileHash::Md5(h) => (&self.keyspaces.by_md5, h.0.to_vec()),
        }
    }

    pub(super) fn lookup_id(&self, hash: &FileHash) -> Result<Option<u64>, StoreError> {
        let (keyspace, key) = self.index(hash);
        keyspace.get(key)?.map(|bytes| u64_value("hash index", &bytes)).transpose()
    }

    fn tenant_id(&self, writer: &mut Writer, batch: &mut Batch, name: &str) -> Result<u32, StoreError> {
        if let Some(&id) = writer.tenants.get(name) {
            return Ok(id);
        }
        let id = match self.keyspaces.tenants.get(name)? {
            Some(bytes) => u32_value("tenant", &bytes)?,
            None => {
                let id = writer.counters.next_tenant;
                writer.counters.next_tenant += 1;
                batch.tenants.push((name.to_owned(), id));
                id
            }
        };
        // Tenants are few: this cache is never cleared, so an id handed out here is never
        // handed out twice while its write is in flight.
        writer.tenants.insert(name.to_owned(), id);
        writer.tenant_names.insert(id, name.to_owned());
        Ok(id)
    }

    fn device_number(
        &self,
        writer: &mut Writer,
        batch: &mut Batch,
        tenant: u32,
        observation: &Observation,
    ) -> Result<u32, StoreError> {
        let cache_key = (tenant, observation.device_id.clone());
        if let Some((number, name)) = writer.devices.get_mut(&cache_key) {
            // Known already (perhaps only to a write still in flight): a new name renames it.
            if observation.device_name.is_some() && *name != observation.device_name {
                name.clone_from(&observation.device_name);
                batch.devices.push((tenant, observation.device_id.clone(), *number, observation.device_name.clone()));
            }
            return Ok(*number);
        }
        let key = device_key(tenant, &observation.device_id);
        let (number, known_name) = match self.keyspaces.devices.get(&key)? {
            Some(bytes) => {
                let number = u32_value("device", &bytes)?;
                let info: DeviceInfo = match self.keyspaces.device_info.get(number.to_be_bytes())? {
                    Some(bytes) => decode_device_info(&bytes)?,
                    None => return Err(corrupt("device info", format!("missing device {number}"))),
                };
                (number, info.device_name)
            }
            None => {
                let number = writer.counters.next_device;
                writer.counters.next_device =
                    number.checked_add(1).ok_or_else(|| StoreError::Backend("more than 4 billion devices".into()))?;
                batch.devices.push((tenant, observation.device_id.clone(), number, observation.device_name.clone()));
                (number, observation.device_name.clone())
            }
        };
        let name = match &observation.device_name {
            Some(name) if known_name.as_ref() != Some(name) => {
                batch.devices.push((tenant, observation.device_id.clone(), number, Some(name.clone())));
                Some(name.clone())
            }
            _ => known_name,
        };
        // The cache is only cleared between calls (see `ingest`), never while a write is in
        // flight, so a device number it handed out is always found again before it lands.
        writer.devices.insert(cache_key, (number, name));
        Ok(number)
    }

    /// The id of the file `hash` names, looking in this batch, then the overlay, then the store.
    fn find_id(
        &self,
        batch: &Batch,
        overlay: Option<&Batch>,
        hash: &FileHash,
        store: bool,
    ) -> Result<Option<u64>, StoreError> {
        if let Some(&id) = batch.ids.get(hash) {
            return Ok(Some(id));
        }
        if let Some(&id) = overlay.and_then(|overlay| overlay.ids.get(hash)) {
            return Ok(Some(id));
        }
        if store { self.lookup_id(hash) } else { Ok(None) }
    }

    fn batch_record<'b>(
        &self,
        batch: &'b mut Batch,
        overlay: Option<&Batch>,
        id: u64,
    ) -> Result<&'b mut FileRecord, StoreError> {
        match batch.records.entry(id) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                let record = match overlay.and_then(|overlay| overlay.records.get(&id)) {
                    Some(record) => record.clone(),
                    None => self.load_record(id)?,
                };
                batch.partial_before.insert(id, record.hashes.sha256.is_none());
                Ok(entry.insert(record))
            }
        }
    }

    /// Finds which record an observation's hashes name, or says why they cannot name one
    /// ([`FileHashes::resolve`] decides, from what the lookups found).
    fn resolve_file(
        &self,
        writer: &mut Writer,
        batch: &mut Batch,
        overlay: Option<&Batch>,
        hashes: &FileHashes,
    ) -> Result<Resolution, StoreError> {
        // Each file found, once, with its hashes.
        let mut found: Vec<(u64, FileHashes)> = Vec::with_capacity(3);
        let mut unknown: Vec<FileHash> = Vec::with_capacity(3);
        // When the SHA-256 is unknown, only a record without a SHA-256 can hold the other hashes;
        // while the store has none such, looking them up on disk is wasted work.
        let mut search_store = true;
        for hash in hashes.iter() {
            // A hash the record found so far already carries points at that record: no lookup.
            if let [(_, known)] = &found[..]
                && known.iter().any(|known| known == hash)
            {
                continue;
            }
            let id = self.find_id(batch, overlay, &hash, search_store)?;
            match id {
                Some(id) => {
                    batch.ids.insert(hash, id);
                    if !found.iter().any(|(file, _)| *file == id) {
                        let known = self.batch_record(batch, overlay, id)?.hashes;
                        found.push((id, known));
                    }
                }
                None => {
                    if matches!(hash, FileHash::Sha256(_)) && writer.counters.partial == 0 {
                        search_store = false;
                    }
                    unknown.push(hash);
                }
            }
        }
        let id = match hashes.resolve(&found) {
            fileintel_core::Resolution::New => {
                let id = writer.counters.next_file;
                writer.counters.next_file += 1;
                batch.records.insert(id, FileRecord { hashes: *hashes, ..Default::default() });
                batch.new_files.insert(id);
                id
            }
            fileintel_core::Resolution::Fill(id, filled) => {
                self.batch_record(batch, overlay, id)?.hashes = filled;
                id
            }
            fileintel_core::Resolution::Link(one, other) => {
                return Ok(Resolution::Link(one.min(other), one.max(other)));
            }
            fileintel_core::Resolution::Conflict(reason) => return Ok(Resolution::Conflict(reason)),
        };
        for hash in unknown {
            batch.ids.insert(hash, id);
            batch.new_index.push((hash, id));
        }
        Ok(Resolution::File(id))
    }

    fn accept(
        &self,
        writer: &mut Writer,
        batch: &mut Batch,
        overlay: Option<&Batch>,
        id: u64,
        observation: &Observation,
    ) -> Result<(), StoreError> {
        let tenant = self.tenant_id(writer, batch, &observation.tenant_id)?;
        let device = self.device_number(writer, batch, tenant, observation)?;
        let record = self.batch_record(batch, overlay, id)?;
        let time = observation.timestamp;
        if record.take_observation(observation) {
            batch.new_to_tenants += 1;
        }
        if time >= writer.horizon {
            batch.recent_times.insert(recent_time_key(id, tenant, time));
        }
        let activity = batch.activity.entry(device).or_insert((time, time, None));
        activity.0 = activity.0.min(time);
        activity.1 = activity.1.max(time);
        if observation.os_platform.is_some() {
            activity.2.clone_from(&observation.os_platform);
        }
        let sighting = Sighting::new(time, observation.file_name.clone());
        match batch.sightings.entry(sighting_key(id, tenant, device)) {
            Entry::Occupied(mut entry) => entry.get_mut().merge(sighting),
            Entry::Vacant(entry) => {
                entry.insert(sighting);
            }
        }
        batch.observations += 1;
        Ok(())
    }

    pub(super) fn ingest(
        &self,
        writer: &mut Writer,
        observations: Vec<Observation>,
    ) -> Result<IngestOutcome, StoreError> {
        refresh_horizon(writer);
        // Only here, with no write in flight, may the device cache start over.
        if writer.devices.len() >= DEVICE_CACHE_LIMIT {
            writer.devices.clear();
        }
        let mut outcome = IngestOutcome::default();
        let mut touched: HashSet<u64> = HashSet::new();
        std::thread::scope(|scope| -> Result<(), StoreError> {
            let mut in_flight: Option<std::thread::ScopedJoinHandle<'_, fjall::Result<()>>> = None;
            let land = |in_flight: &mut Option<
                std::thread::ScopedJoinHandle<'_, fjall::Result<()>>,
            >|
             -> Result<(), StoreError> {
                match in_flight.take() {
                    Some(handle) => Ok(handle
                        .join()
                        .map_err(|_| StoreError::Backend("write thread panicked".into()))??),
                    None => Ok(()),
                }
            };
            // The sub-batch whose write is in flight, for reads the store cannot answer yet.
            let mut overlay: Option<Batch> = None;
            let mut batch = Batch::default();
            let mut index = 0;
            while index < observations.len() {
                let observation = &observations[index];
                if let Some(reason) = observation.oversized() {
                    outcome.rejected.push((index, reason));
                    index += 1;
                    continue;
                }
                match self.resolve_file(writer, &mut batch, overlay.as_ref(), &observation.hashes)? {
                    Resolution::File(id) => {
                        touched.insert(id);
                        self.accept(writer, &mut batch, overlay.as_ref(), id, observation)?;
                        outcome.accepted += 1;
                    }
                    Resolution::Conflict(reason) => outcome.rejected.push((index, reason)),
                    Resolution::Link(keep, absorb) => {
                        // Linking is rare: land everything so far, merge the two records on
                        // their own, and take this observation again against the merged record.
                        land(&mut in_flight)?;
                        overlay = None;
                        outcome.new_files += batch.new_to_tenants;
                        let (write, _) =
                            self.prepare(writer, std::mem::take(&mut batch), None, PersistMode::SyncAll)?;
                        write.commit()?;
                        self.link(writer, keep, absorb)?;
                        touched.remove(&absorb);
                        continue;
                    }
                }
                index += 1;
                if batch.observations >= SUB_BATCH && index < observations.len() {
                    outcome.new_files += batch.new_to_tenants;
                    let (write_batch, prepared) =
                        self.prepare(writer, std::mem::take(&mut batch), overlay.as_ref(), PersistMode::Buffer)?;
                    // Writes land in order: the previous one first.
                    land(&mut in_flight)?;
                    in_flight = Some(scope.spawn(move || write_batch.commit()));
                    overlay = Some(prepared);
                }
            }
            outcome.new_files += batch.new_to_tenants;
            let (write, _) = self.prepare(writer, batch, overlay.as_ref(), PersistMode::SyncAll)?;
            land(&mut in_flight)?;
            // The last write is fsynced, and with it the journal the earlier ones went to.
            write.commit()?;
            Ok(())
        })?;
        outcome.files_touched = touched.len() as u64;
        Ok(outcome)
    }

    /// Turns a merged batch into one atomic write: recounts prevalence from which sightings are
    /// new, and returns the write with the batch as it will stand once written.
    fn prepare(
        &self,
        writer: &mut Writer,
        mut batch: Batch,
        overlay: Option<&Batch>,
        durability: PersistMode,
    ) -> Result<(WriteBatch, Batch), StoreError> {
        let mut write = self.db.batch().durability(Some(durability));
        // Sorted keys make the existence checks walk the sightings tree in order.
        let mut sightings: Vec<([u8; 16], Sighting)> = batch.sightings.drain().collect();
        sightings.sort_unstable_by_key(|(key, _)| *key);
        let horizon = writer.horizon;
        let mut hour_deltas: HashMap<[u8; 21], i64> = HashMap::new();
        let mut name_deltas: HashMap<Vec<u8>, i64> = HashMap::new();
        for (key, mut sighting) in sightings {
            let id = u64::from_be_bytes(key[..8].try_into().unwrap_or_default());
            let known = if batch.new_files.contains(&id) {
                None
            } else if let Some(known) = overlay.and_then(|overlay| overlay.sightings.get(&key)) {
                Some(known.clone())
            } else {
                self.keyspaces.sightings.get(key)?.map(|bytes| decode_sighting(&bytes)).transpose()?
            };
            match &known {
                Some(known) => {
                    let mut merged = known.clone();
                    merged.merge(sighting);
                    if merged == *known {
                        continue;
                    }
                    sighting = merged;
                }
                None => {
                    let tenant = u32::from_be_bytes(key[8..12].try_into().unwrap_or_default());
                    // Every sighting's tenant went through `tenant_id` in `accept`.
                    let name = writer
                        .tenant_names
                        .get(&tenant)
                        .ok_or_else(|| corrupt("sighting", format!("unknown tenant {tenant}")))?;
                    if let Some(record) = batch.records.get_mut(&id) {
                        record.count_devices(name, 1);
                    }
                }
            }
            let tenant = u32::from_be_bytes(key[8..12].try_into().unwrap_or_default());
            let device = u32::from_be_bytes(key[12..].try_into().unwrap_or_default());
            for name in &sighting.names {
                if known.as_ref().is_none_or(|known| !known.names.contains(name)) {
                    *name_deltas.entry(name_key(id, tenant, name)).or_default() += 1;
                }
            }
            let old_last = known.as_ref().map(|known| known.last);
            if old_last != Some(sighting.last) {
                // A device's entry moves to its new last sighting, and its hour count with it.
                // An old entry below the horizon may never have been written: leave it be.
                if let Some(old_last) = old_last
                    && old_last >= horizon
                {
                    write.remove(
                        &self.keyspaces.recent_devices,
                        recent_device_key(id, tenant, old_last, device).to_vec(),
                    );
                    for key in count_keys(id, tenant, old_last) {
                        *hour_deltas.entry(key).or_default() -= 1;
                    }
                }
                if sighting.last >= horizon {
                    write.insert(
                        &self.keyspaces.recent_devices,
                        recent_device_key(id, tenant, sighting.last, device).to_vec(),
                        [],
                    );
                    for key in count_keys(id, tenant, sighting.last) {
                        *hour_deltas.entry(key).or_default() += 1;
                    }
                }
            }
            write.insert(&self.keyspaces.sightings, key.to_vec(), encode(&sighting));
            batch.sightings.insert(key, sighting);
        }
        for (key, delta) in hour_deltas {
            if delta == 0 {
                continue;
            }
            let current = match overlay.and_then(|overlay| overlay.hours.get(&key)) {
                Some(&count) => count,
                None => self
                    .keyspaces
                    .recent_counts
                    .get(key)?
                    .map(|bytes| u32_value("hour count", &bytes))
                    .transpose()?
                    .unwrap_or(0),
            };
            let count = u32::try_from((i64::from(current) + delta).max(0)).unwrap_or(u32::MAX);
            if count == 0 {
                write.remove(&self.keyspaces.recent_counts, key.to_vec());
            } else {
                write.insert(&self.keyspaces.recent_counts, key.to_vec(), count.to_be_bytes().to_vec());
            }
            batch.hours.insert(key, count);
        }
        for (key, delta) in name_deltas {
            let current = match overlay.and_then(|overlay| overlay.names.get(&key)) {
                Some(&count) => count,
                None => self
                    .keyspaces
                    .file_names
                    .get(&key)?
                    .map(|bytes| u32_value("name count", &bytes))
                    .transpose()?
                    .unwrap_or(0),
            };
            let count = u32::try_from(i64::from(current) + delta).unwrap_or(u32::MAX);
            write.insert(&self.keyspaces.file_names, key.clone(), count.to_be_bytes().to_vec());
            batch.names.insert(key, count);
        }
        for key in batch.recent_times.drain() {
            write.insert(&self.keyspaces.recent_times, key.to_vec(), []);
        }
        for (id, record) in &batch.records {
            let before = !batch.new_files.contains(id) && batch.partial_before.get(id).copied().unwrap_or(false);
            let after = record.hashes.sha256.is_none();
            writer.counters.partial = writer.counters.partial + u64::from(after) - u64::from(before);
            write.insert(&self.keyspaces.files, id.to_be_bytes().to_vec(), encode(record));
        }
        for (hash, id) in &batch.new_index {
            let (keyspace, key) = self.index(hash);
            write.insert(keyspace, key, id.to_be_bytes().to_vec());
        }
        for (name, id) in &batch.tenants {
            write.insert(&self.keyspaces.tenants, name.as_bytes().to_vec(), id.to_be_bytes().to_vec());
        }
        // Device infos: new devices, renamed ones, and every active one's first and last seen.
        let mut infos: HashMap<u32, (Option<DeviceInfo>, DeviceInfo)> = HashMap::new();
        let known_info = |number: u32| -> Result<Option<DeviceInfo>, StoreError> {
            if let Some(info) = overlay.and_then(|overlay| overlay.device_infos.get(&number)) {
                return Ok(Some(info.clone()));
            }
            self.keyspaces.device_info.get(number.to_be_bytes())?.map(|bytes| decode_device_info(&bytes)).transpose()
        };
        let mut numbered = HashSet::new();
        for (tenant, device_id, number, device_name) in batch.devices.drain(..) {
            // A device renamed within the batch comes twice: one insert per key.
            if numbered.insert(number) {
                write.insert(&self.keyspaces.devices, device_key(tenant, &device_id), number.to_be_bytes().to_vec());
            }
            let entry = match infos.entry(number) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let known = known_info(number)?;
                    let info = known.clone().unwrap_or(DeviceInfo {
                        tenant,
                        device_id,
                        device_name: None,
                        first_seen: None,
                        last_seen: None,
                        os_platform: None,
                    });
                    entry.insert((known, info))
                }
            };
            entry.1.device_name = device_name;
        }
        for (number, (first, last, platform)) in batch.activity.drain() {
            let entry = match infos.entry(number) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let Some(known) = known_info(number)? else {
                        return Err(corrupt("device info", format!("missing device {number}")));
                    };
                    entry.insert((Some(known.clone()), known))
                }
            };
            let info = &mut entry.1;
            info.first_seen = Some(info.first_seen.map_or(first, |seen| seen.min(first)));
            info.last_seen = Some(info.last_seen.map_or(last, |seen| seen.max(last)));
            if platform.is_some() {
                info.os_platform = platform;
            }
        }
        for (number, (known, info)) in infos {
            if known.as_ref() != Some(&info) {
                write.insert(&self.keyspaces.device_info, number.to_be_bytes().to_vec(), encode(&info));
            }
            batch.device_infos.insert(number, info);
        }
        writer.counters.files += batch.new_files.len() as u64;
        write.insert(&self.keyspaces.meta, b"counters".to_vec(), encode(&writer.counters));
        Ok((write, batch))
    }

    /// Merges record `absorb` into record `keep`: sightings, fields and index entries move, the
    /// prevalence is recounted over the union of both device sets, and the window entries of both
    /// are rebuilt from the merged sightings. Everything before must have landed.
    fn link(&self, writer: &mut Writer, keep: u64, absorb: u64) -> Result<(), StoreError> {
        let names = self.tenant_names()?;
        let mut kept = self.load_record(keep)?;
        let absorbed = self.load_record(absorb)?;
        let kept_was_partial = kept.hashes.sha256.is_none();
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        for hash in absorbed.hashes.iter() {
            let (keyspace, key) = self.index(&hash);
            write.insert(keyspace, key, keep.to_be_bytes().to_vec());
        }
        let mut merged: BTreeMap<[u8; 16], Sighting> = BTreeMap::new();
        for item in self.keyspaces.sightings.prefix(keep.to_be_bytes()) {
            let (key, value) = item.into_inner()?;
            let key: [u8; 16] = key[..].try_into().map_err(|_| corrupt("sighting key", "not 16 bytes"))?;
            merged.insert(key, decode_sighting(&value)?);
        }
        for item in self.keyspaces.sightings.prefix(absorb.to_be_bytes()) {
            let (key, value) = item.into_inner()?;
            let mut moved_key = [0u8; 16];
            moved_key.copy_from_slice(&key);
            moved_key[..8].copy_from_slice(&keep.to_be_bytes());
            let sighting = decode_sighting(&value)?;
            match merged.entry(moved_key) {
                std::collections::btree_map::Entry::Occupied(mut entry) => entry.get_mut().merge(sighting),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    let tenant = u32::from_be_bytes(moved_key[8..12].try_into().unwrap_or_default());
                    let name =
                        names.get(&tenant).ok_or_else(|| corrupt("sighting", format!("unknown tenant {tenant}")))?;
                    kept.count_devices(name, 1);
                    entry.insert(sighting);
                }
            }
            write.remove(&self.keyspaces.sightings, key.to_vec());
        }
        // The window entries of both files, rebuilt from the merged sightings.
        let mut devices: HashSet<Vec<u8>> = HashSet::new();
        let mut hours: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut names: HashMap<Vec<u8>, u32> = HashMap::new();
        for (key, sighting) in &merged {
            write.insert(&self.keyspaces.sightings, key.to_vec(), encode(sighting));
            let tenant = u32::from_be_bytes(key[8..12].try_into().unwrap_or_default());
            let device = u32::from_be_bytes(key[12..].try_into().unwrap_or_default());
            if sighting.last >= writer.horizon {
                devices.insert(recent_device_key(keep, tenant, sighting.last, device).to_vec());
                for key in count_keys(keep, tenant, sighting.last) {
                    *hours.entry(key.to_vec()).or_default() += 1;
                }
            }
            for name in &sighting.names {
                *names.entry(name_key(keep, tenant, name)).or_default() += 1;
            }
        }
        for keyspace in [&self.keyspaces.recent_devices, &self.keyspaces.recent_counts, &self.keyspaces.file_names] {
            for file in [keep, absorb] {
                for item in keyspace.prefix(file.to_be_bytes()) {
                    let key = item.key()?.to_vec();
                    let rebuilt = devices.contains(&key) || hours.contains_key(&key) || names.contains_key(&key);
                    if !rebuilt {
                        write.remove(keyspace, key);
                    }
                }
            }
        }
        for key in devices {
            write.insert(&self.keyspaces.recent_devices, key, []);
        }
        for (key, count) in hours {
            write.insert(&self.keyspaces.recent_counts, key, count.to_be_bytes().to_vec());
        }
        for (key, count) in names {
            write.insert(&self.keyspaces.file_names, key, count.to_be_bytes().to_vec());
        }
        for item in self.keyspaces.recent_times.prefix(absorb.to_be_bytes()) {
            let key = item.key()?;
            let mut moved = key.to_vec();
            moved[..8].copy_from_slice(&keep.to_be_bytes());
            write.insert(&self.keyspaces.recent_times, moved, []);
            write.remove(&self.keyspaces.recent_times, key.to_vec());
        }
        let counters = &mut writer.counters;
        counters.partial -= u64::from(absorbed.hashes.sha256.is_none()) + u64::from(kept_was_partial);
        kept.absorb(absorbed);
        counters.partial += u64::from(kept.hashes.sha256.is_none());
        counters.files = counters.files.saturating_sub(1);
        write.insert(&self.keyspaces.files, keep.to_be_bytes().to_vec(), encode(&kept));
        write.remove(&self.keyspaces.files, absorb.to_be_bytes().to_vec());
        write.insert(&self.keyspaces.meta, b"counters".to_vec(), encode(&writer.counters));
        write.commit()?;
        Ok(())
    }

    /// Builds the per-tenant rows of a store that schema version 2 or older wrote, from its
    /// sightings: each tenant's devices and observed window. A report and a size, which those
    /// versions kept once per file, go into the row of every tenant that saw the file, at its
    /// last observation (the size only when the file has no facts of fileintel's own, whose
    /// analysis measured it), so that they speak to no tenant that did not see it. Absolute
    /// values, so running it again after a crash changes nothing (a record written by an earlier
    /// run has moved its report and size already). Ends by writing the counters in the current
    /// version, which marks the store as done.
    pub(super) fn rebuild_tenant_files(&self, writer: &mut Writer) -> Result<(), StoreError> {
        let names = self.tenant_names()?;
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        let mut pending = 0;
        let mut current: Option<(u64, FileRecord)> = None;
        let finish = |write: &mut WriteBatch, file: Option<(u64, FileRecord)>| {
            if let Some((id, mut record)) = file {
                // With facts of fileintel's own, the size is the one analysis measured.
                let size = if record.facts == FileFacts::default() { record.size.take() } else { None };
                let reported = std::mem::take(&mut record.reported);
                for row in &mut record.tenants {
                    let Some(last) = row.last else { continue };
                    if let Some(size) = size {
                        row.size = Some((last, size));
                    }
                    if !reported.is_empty() {
                        row.reported = Some((last, reported.clone()));
                    }
                }
                write.insert(&self.keyspaces.files, id.to_be_bytes().to_vec(), encode(&record));
            }
        };
        for item in self.keyspaces.sightings.iter() {
            let (key, value) = item.into_inner()?;
            let sighting = decode_sighting(&value)?;
            let (Ok(file), Ok(tenant)) = (key[..8].try_into(), key[8..12].try_into()) else {
                return Err(corrupt("sighting key", "not 16 bytes"));
            };
            let (file, tenant) = (u64::from_be_bytes(file), u32::from_be_bytes(tenant));
            if current.as_ref().is_none_or(|(id, _)| *id != file) {
                finish(&mut write, current.take());
                let mut record = self.load_record(file)?;
                // Counted afresh; a size or report attributed by an earlier, interrupted run stays.
                for row in &mut record.tenants {
                    (row.devices, row.first, row.last) = (0, None, None);
                }
                current = Some((file, record));
                pending += 1;
            }
            let Some((_, record)) = current.as_mut() else { continue };
            let name = names.get(&tenant).ok_or_else(|| corrupt("sighting", format!("unknown tenant {tenant}")))?;
            let row = record.tenant_mut(name);
            row.devices += 1;
            row.first = Some(row.first.map_or(sighting.first, |first| first.min(sighting.first)));
            row.last = Some(row.last.map_or(sighting.last, |last| last.max(sighting.last)));
            if pending >= 20_000 {
                std::mem::replace(&mut write, self.db.batch().durability(Some(PersistMode::SyncAll))).commit()?;
                pending = 0;
            }
        }
        finish(&mut write, current.take());
        write.insert(&self.keyspaces.meta, b"counters".to_vec(), encode(&writer.counters));
        write.commit()?;
        Ok(())
    }

    /// Builds the window entries of a store that schema version 1 wrote, from its sightings:
    /// each device at its last sighting, the hour and day counts, the names, and, for
    /// observation times, each sighting's first and last (version 1 kept no others). Absolute
    /// values, so running it again after a crash changes nothing (`rebuild_tenant_files`, which
    /// follows, marks the store as done).
    pub(super) fn rebuild_windows(&self, writer: &mut Writer) -> Result<(), StoreError> {
        refresh_horizon(writer);
        let mut counts: HashMap<[u8; 21], u32> = HashMap::new();
        let mut names: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        let mut pending = 0;
        for item in self.keyspaces.sightings.iter() {
            let (key, value) = item.into_inner()?;
            let sighting = decode_sighting(&value)?;
            let (Ok(file), Ok(tenant), Ok(device)) =
                (key[..8].try_into(), key[8..12].try_into(), key[12..16].try_into())
            else {
                return Err(corrupt("sighting key", "not 16 bytes"));
            };
            let (file, tenant, device) =
                (u64::from_be_bytes(file), u32::from_be_bytes(tenant), u32::from_be_bytes(device));
            if sighting.last >= writer.horizon {
                write.insert(
                    &self.keyspaces.recent_devices,
                    recent_device_key(file, tenant, sighting.last, device).to_vec(),
                    [],
                );
                for key in count_keys(file, tenant, sighting.last) {
                    *counts.entry(key).or_default() += 1;
                }
                for time in [sighting.first, sighting.last].into_iter().filter(|time| *time >= writer.horizon) {
                    write.insert(&self.keyspaces.recent_times, recent_time_key(file, tenant, time).to_vec(), []);
                }
                pending += 3;
            }
            for name in &sighting.names {
                *names.entry(name_key(file, tenant, name)).or_default() += 1;
            }
            if pending >= 60_000 {
                std::mem::replace(&mut write, self.db.batch().durability(Some(PersistMode::SyncAll))).commit()?;
                pending = 0;
            }
        }
        for (key, count) in counts {
            write.insert(&self.keyspaces.recent_counts, key.to_vec(), count.to_be_bytes().to_vec());
        }
        for (key, count) in names {
            write.insert(&self.keyspaces.file_names, key, count.to_be_bytes().to_vec());
        }
        write.commit()?;
        Ok(())
    }

    pub(super) fn put_facts(
        &self,
        writer: &mut Writer,
        hashes: &FileHashes,
        size: Option<u64>,
        facts: FileFacts,
    ) -> Result<(), StoreError> {
        refresh_horizon(writer);
        let mut batch = Batch::default();
        loop {
            match self.resolve_file(writer, &mut batch, None, hashes)? {
                Resolution::File(id) => {
                    let record = self.batch_record(&mut batch, None, id)?;
                    if size.is_some() {
                        record.size = size;
                    }
                    let mut merged = facts;
                    merged.fill_from(std::mem::take(&mut record.facts));
                    record.facts = merged;
                    let (write, _) = self.prepare(writer, batch, None, PersistMode::SyncAll)?;
                    write.commit()?;
                    return Ok(());
                }
                Resolution::Link(keep, absorb) => {
                    let (write, _) = self.prepare(writer, std::mem::take(&mut batch), None, PersistMode::SyncAll)?;
                    write.commit()?;
                    self.link(writer, keep, absorb)?;
                }
                Resolution::Conflict(reason) => return Err(StoreError::Backend(reason)),
            }
        }
    }
}

/// Observations older than the longest look-back window, counted from now, are not kept for
/// windows. The horizon never moves back, even if the clock does: an entry written above it must
/// stay above it, or its removal would be skipped while its counts were decremented.
fn refresh_horizon(writer: &mut Writer) {
    writer.horizon = writer.horizon.max(Timestamp::now().window_horizon());
}
