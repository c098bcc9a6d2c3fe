//! Ingest and facts: observations merged into records, sightings, observation times and devices,
//! in one transaction per call.
//!
//! A call first locks, in id order, every stored record any of its hashes names
//! (`SELECT ... FOR UPDATE`), then resolves and merges its observations in memory exactly as
//! fjall's writer does, then writes what changed in a handful of set-based statements (arrays
//! through `unnest`). The row lock on a record is what makes its sightings safe to merge: every
//! transaction that writes a file's sightings holds the file's row first, so while this one holds
//! it, the sightings it reads are the latest and nobody else changes them.
//!
//! New hashes (of files this call creates, or learnt for stored ones) are claimed in
//! `file_hashes`, the one unique index on hashes, by one statement in key order, so writers
//! meet there in a single order and never deadlock. A hash another replica committed first
//! makes the claim fall short, and the transaction runs again, finding that replica's file.
//! Linking two stored records writes what the call had for them so far, then merges the
//! absorbed one's sightings into the kept one's in SQL; a record this call created is linked in
//! memory.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;
use fileintel_core::{FileFacts, FileHash, FileHashes, FileRecord, Observation, Sighting, Timestamp};

use crate::error::Failure;
use crate::reads::{LOAD_RECORDS, record_from_row, to_json};

/// Why an observation cannot be kept, if it cannot: identifiers too long (the core's rule, as
/// in fjall), or holding a NUL character, which PostgreSQL's `text` cannot store.
pub(crate) fn refusal(observation: &Observation) -> Option<String> {
    observation.oversized().or_else(|| {
        observation.identifiers().into_iter().find_map(|(field, value)| {
            value
                .filter(|value| value.contains('\0'))
                .map(|_| format!("field '{field}' contains a NUL character, which PostgreSQL text cannot hold"))
        })
    })
}

/// A record this call works on: one it locked, or one it created.
#[derive(Default)]
struct Slot {
    /// The row's id; `None` for a record this call created and has not written yet.
    id: Option<i64>,
    record: FileRecord,
    /// The record as its row holds it, so that only changes are written; `None` until written.
    stored: Option<FileRecord>,
    /// Absorbed into another record by a link.
    gone: bool,
    /// Sightings not written yet, by device number, each merged over this call's observations.
    sightings: HashMap<u32, Sighting>,
    /// Observation times within the horizon not written yet: tenant number and time.
    times: HashSet<(u32, i64)>,
}

/// What this call learnt about one device: its activity, and the last name and platform named.
struct Device {
    tenant: u32,
    device_id: String,
    name: Option<String>,
    first: i64,
    last: i64,
    platform: Option<String>,
}

pub(crate) enum Resolution {
    /// The observation names this record.
    File(usize),
    /// The observation shows two records to be one file: link them, then resolve it again.
    Link(usize, usize),
    /// The observation contradicts a known pairing; why.
    Conflict(String),
}

/// One call's working state: the records it holds, and everything it has merged into them.
pub(crate) struct Batch {
    slots: Vec<Slot>,
    /// Every hash of every record held or created, to its slot.
    by_hash: HashMap<FileHash, usize>,
    tenants: Vec<String>,
    tenant_numbers: HashMap<String, u32>,
    /// Per tenant number: device id → device number (an index into `devices`).
    device_numbers: Vec<HashMap<String, u32>>,
    devices: Vec<Device>,
    /// Observation times before this are not kept for windows.
    horizon: Timestamp,
    /// Files new to the tenant that observed them (`IngestOutcome::new_files`).
    new_to_tenants: u64,
    /// Rows added to `files` less rows removed, for the file count.
    files_delta: i64,
    /// Ids of stored records this call absorbed into others: their hashes' claims move.
    absorbed_ids: Vec<i64>,
}

const NEW_IDS: &str = "SELECT nextval('file_ids') FROM generate_series(1, $1::int4)";

/// Claims hashes for files, in the order given (key order): a hash nobody had is inserted, one
/// a record this call absorbed had (`$4`) moves to its new file, and one another file holds is
/// left alone and missing from the count, which tells the caller it lost a race.
const CLAIM_HASHES: &str = "
    INSERT INTO file_hashes AS h (kind, hash, file_id)
    SELECT * FROM unnest($1::int2[], $2::bytea[], $3::int8[])
    ON CONFLICT (kind, hash) DO UPDATE SET file_id = excluded.file_id
    WHERE h.file_id = ANY($4::int8[])
    RETURNING 1";

const INSERT_FILES: &str = "
    INSERT INTO files (id, sha1, sha256, md5, all_devices, first_observed, last_observed, size, facts, reported,
                       tenants)
    SELECT u.id, u.sha1, u.sha256, u.md5, u.prevalence, u.first_observed, u.last_observed, u.size,
           u.facts::json, u.reported::json, u.tenants::json
    FROM unnest($1::int8[], $2::bytea[], $3::bytea[], $4::bytea[], $5::int8[], $6::int8[], $7::int8[],
                $8::int8[], $9::text[], $10::text[], $11::text[])
        AS u(id, sha1, sha256, md5, prevalence, first_observed, last_observed, size, facts, reported, tenants)";

/// Facts and reports are sent only when they changed (`NULL` keeps the stored ones): most
/// updates only move the observed window, the prevalence and the tenants' rows.
const UPDATE_FILES: &str = "
    UPDATE files AS f
    SET sha1 = u.sha1, sha256 = u.sha256, md5 = u.md5, all_devices = u.prevalence,
        first_observed = u.first_observed, last_observed = u.last_observed, size = u.size,
        facts = coalesce(u.facts::json, f.facts), reported = coalesce(u.reported::json, f.reported),
        tenants = u.tenants::json
    FROM unnest($1::int8[], $2::bytea[], $3::bytea[], $4::bytea[], $5::int8[], $6::int8[], $7::int8[],
                $8::int8[], $9::text[], $10::text[], $11::text[])
        AS u(id, sha1, sha256, md5, prevalence, first_observed, last_observed, size, facts, reported, tenants)
    WHERE f.id = u.id";

/// The assignments that merge a sighting of the same file and device, named `$new`, into a
/// stored one, `s`: the core's `Sighting` rule (the widest activity; the name of the latest
/// sighting that has one; the names of both, at most `NAMES_PER_SIGHTING`, in `merge_names`).
macro_rules! merge_sighting {
    ($new:literal) => {
        concat!(
            "first_seen = least(s.first_seen, ",
            $new,
            ".first_seen),
            last_seen = greatest(s.last_seen, ",
            $new,
            ".last_seen),
            file_name = CASE WHEN ",
            $new,
            ".last_seen >= s.last_seen AND ",
            $new,
            ".file_name IS NOT NULL
                             THEN ",
            $new,
            ".file_name ELSE s.file_name END,
            names = merge_names(s.names, ",
            $new,
            ".names)"
        )
    };
}

/// Writes merged sightings: new ones are inserted, stored ones merged with fjall's rule, and
/// the rows actually inserted are counted per file and tenant, which is what each prevalence
/// grows by.
/// Every sub-statement sees the same snapshot, so the update sees only rows that existed before
/// (never one the insert just made); the caller holds the files' rows, so no other transaction
/// can add one of these sightings in between.
const SIGHTINGS: &str = concat!(
    "
    WITH batch AS (
        SELECT u.file_id, u.tenant, u.device_id, u.first_seen, u.last_seen, u.file_name,
               ARRAY(SELECT json_array_elements_text(u.names::json)) AS names
        FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[])
            AS u(file_id, tenant, device_id, first_seen, last_seen, file_name, names)
    ),
    inserted AS (
        INSERT INTO sightings (file_id, tenant, device_id, first_seen, last_seen, file_name, names)
        SELECT file_id, tenant, device_id, first_seen, last_seen, file_name, names FROM batch
        ON CONFLICT (file_id, tenant, device_id) DO NOTHING
        RETURNING file_id, tenant
    ),
    merged AS (
        UPDATE sightings AS s
        SET ",
    merge_sighting!("b"),
    "
        FROM batch AS b
        WHERE s.file_id = b.file_id AND s.tenant = b.tenant AND s.device_id = b.device_id
          AND (b.first_seen < s.first_seen OR b.last_seen > s.last_seen
               OR (b.last_seen = s.last_seen AND b.file_name IS NOT NULL
                   AND b.file_name IS DISTINCT FROM s.file_name)
               OR (cardinality(s.names) < 8 AND NOT b.names <@ s.names))
        RETURNING 1
    )
    SELECT file_id, tenant, count(*) FROM inserted GROUP BY file_id, tenant"
);

const TIMES: &str = "
    INSERT INTO observation_times (file_id, tenant, time)
    SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[])
    ON CONFLICT DO NOTHING";

/// A device's name and platform are the last ones named; its activity only widens. Rows that
/// would not change are left alone (though still locked until commit).
const DEVICES: &str = "
    INSERT INTO devices AS d (tenant, device_id, device_name, first_seen, last_seen, os_platform)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[])
    ON CONFLICT (tenant, device_id) DO UPDATE
    SET device_name = coalesce(excluded.device_name, d.device_name),
        first_seen = least(d.first_seen, excluded.first_seen),
        last_seen = greatest(d.last_seen, excluded.last_seen),
        os_platform = coalesce(excluded.os_platform, d.os_platform)
    WHERE (excluded.device_name IS NOT NULL AND excluded.device_name IS DISTINCT FROM d.device_name)
       OR excluded.first_seen < d.first_seen OR excluded.last_seen > d.last_seen
       OR (excluded.os_platform IS NOT NULL AND excluded.os_platform IS DISTINCT FROM d.os_platform)";

/// The absorbed record's sightings move to the kept one, merged with fjall's rule where the
/// kept one has the device too; the counts are how many of each tenant were new to it.
const MOVE_SIGHTINGS: &str = concat!(
    "
    WITH moved AS (
        DELETE FROM sightings WHERE file_id = $2
        RETURNING tenant, device_id, first_seen, last_seen, file_name, names
    ),
    inserted AS (
        INSERT INTO sightings (file_id, tenant, device_id, first_seen, last_seen, file_name, names)
        SELECT $1, tenant, device_id, first_seen, last_seen, file_name, names FROM moved
        ON CONFLICT (file_id, tenant, device_id) DO NOTHING
        RETURNING tenant
    ),
    merged AS (
        UPDATE sightings AS s
        SET ",
    merge_sighting!("m"),
    "
        FROM moved AS m
        WHERE s.file_id = $1 AND s.tenant = m.tenant AND s.device_id = m.device_id
        RETURNING 1
    )
    SELECT tenant, count(*) FROM inserted GROUP BY tenant"
);

const MOVE_TIMES: &str = "
    WITH moved AS (DELETE FROM observation_times WHERE file_id = $2 RETURNING tenant, time)
    INSERT INTO observation_times (file_id, tenant, time)
    SELECT $1, tenant, time FROM moved
    ON CONFLICT DO NOTHING";

const DELETE_FILE: &str = "DELETE FROM files WHERE id = $1";

/// Written last in a transaction, so a writer waiting for a count row holds nothing the
/// holder still needs.
const COUNT_FILES: &str = "
    INSERT INTO file_counts (shard, files) VALUES ($1, $2)
    ON CONFLICT (shard) DO UPDATE SET files = file_counts.files + excluded.files";

fn bytes<const N: usize>(hash: Option<&[u8; N]>) -> Option<&[u8]> {
    hash.map(|hash| &hash[..])
}

/// Sizes and counts are unsigned in Rust and signed in SQL; the bits round-trip unchanged
/// (a size past 2^63 bytes reads back as itself, though SQL would show it negative).
fn to_sql(value: u64) -> i64 {
    value as i64
}

impl Batch {
    pub(crate) fn new(horizon: Timestamp) -> Self {
        Batch {
            slots: Vec::new(),
            by_hash: HashMap::new(),
            tenants: Vec::new(),
            tenant_numbers: HashMap::new(),
            device_numbers: Vec::new(),
            devices: Vec::new(),
            horizon,
            new_to_tenants: 0,
            files_delta: 0,
            absorbed_ids: Vec::new(),
        }
    }

    /// Locks and reads every stored record that any of `hashes` names, in id order (so two
    /// calls that lock overlapping records cannot deadlock over them).
    pub(crate) async fn load<'h>(
        &mut self,
        tx: &Transaction<'_>,
        hashes: impl Iterator<Item = &'h FileHashes>,
    ) -> Result<(), Failure> {
        let (mut md5, mut sha1, mut sha256) = (HashSet::new(), HashSet::new(), HashSet::new());
        for hashes in hashes {
            md5.extend(hashes.md5.map(|hash| hash.0));
            sha1.extend(hashes.sha1.map(|hash| hash.0));
            sha256.extend(hashes.sha256.map(|hash| hash.0));
        }
        if md5.is_empty() && sha1.is_empty() && sha256.is_empty() {
            return Ok(());
        }
        let md5: Vec<&[u8]> = md5.iter().map(|hash| &hash[..]).collect();
        let sha1: Vec<&[u8]> = sha1.iter().map(|hash| &hash[..]).collect();
        let sha256: Vec<&[u8]> = sha256.iter().map(|hash| &hash[..]).collect();
        let statement = tx.prepare_cached(LOAD_RECORDS).await?;
        for row in tx.query(&statement, &[&md5, &sha1, &sha256]).await? {
            let (id, record) = record_from_row(&row)?;
            let slot = self.slots.len();
            for hash in record.hashes.iter() {
                self.by_hash.insert(hash, slot);
            }
            self.slots.push(Slot { id: Some(id), stored: Some(record.clone()), record, ..Slot::default() });
        }
        Ok(())
    }

    /// Which record an observation's hashes name, or why they cannot name one
    /// ([`FileHashes::resolve`] decides, from the records this call holds).
    pub(crate) fn resolve(&mut self, hashes: &FileHashes) -> Resolution {
        // Each record found, once, with its hashes.
        let mut found: Vec<(usize, FileHashes)> = Vec::with_capacity(3);
        let mut unknown: Vec<FileHash> = Vec::with_capacity(3);
        for hash in hashes.iter() {
            match self.by_hash.get(&hash) {
                Some(&slot) => {
                    if !found.iter().any(|(known, _)| *known == slot) {
                        found.push((slot, self.slots[slot].record.hashes));
                    }
                }
                None => unknown.push(hash),
            }
        }
        let slot = match hashes.resolve(&found) {
            fileintel_core::Resolution::New => {
                let slot = self.slots.len();
                self.slots
                    .push(Slot { record: FileRecord { hashes: *hashes, ..FileRecord::default() }, ..Slot::default() });
                slot
            }
            fileintel_core::Resolution::Fill(slot, filled) => {
                self.slots[slot].record.hashes = filled;
                slot
            }
            fileintel_core::Resolution::Link(first, second) => return Resolution::Link(first, second),
            fileintel_core::Resolution::Conflict(reason) => return Resolution::Conflict(reason),
        };
        for hash in unknown {
            self.by_hash.insert(hash, slot);
        }
        Resolution::File(slot)
    }

    fn tenant_number(&mut self, tenant: &str) -> u32 {
        if let Some(&number) = self.tenant_numbers.get(tenant) {
            return number;
        }
        let number = self.tenants.len() as u32;
        self.tenants.push(tenant.to_owned());
        self.tenant_numbers.insert(tenant.to_owned(), number);
        self.device_numbers.push(HashMap::new());
        number
    }

    /// The device's number in this call, with what the observation says about it noted.
    fn device_number(&mut self, tenant: u32, observation: &Observation) -> u32 {
        let time = observation.timestamp.0;
        let numbers = &mut self.device_numbers[tenant as usize];
        let Some(&number) = numbers.get(&observation.device_id) else {
            let number = self.devices.len() as u32;
            numbers.insert(observation.device_id.clone(), number);
            self.devices.push(Device {
                tenant,
                device_id: observation.device_id.clone(),
                name: observation.device_name.clone(),
                first: time,
                last: time,
                platform: observation.os_platform.clone(),
            });
            return number;
        };
        let device = &mut self.devices[number as usize];
        if observation.device_name.is_some() {
            device.name.clone_from(&observation.device_name);
        }
        if observation.os_platform.is_some() {
            device.platform.clone_from(&observation.os_platform);
        }
        device.first = device.first.min(time);
        device.last = device.last.max(time);
        number
    }

    /// Merges an observation into the record it resolved to: fjall's `accept`.
    pub(crate) fn accept(&mut self, slot: usize, observation: &Observation) {
        let tenant = self.tenant_number(&observation.tenant_id);
        let device = self.device_number(tenant, observation);
        let time = observation.timestamp;
        let horizon = self.horizon;
        if self.slots[slot].record.take_observation(observation) {
            self.new_to_tenants += 1;
        }
        let entry = &mut self.slots[slot];
        if time >= horizon {
            entry.times.insert((tenant, time.0));
        }
        let sighting = Sighting::new(time, observation.file_name.clone());
        match entry.sightings.entry(device) {
            Entry::Occupied(mut known) => known.get_mut().merge(sighting),
            Entry::Vacant(vacant) => {
                vacant.insert(sighting);
            }
        }
    }

    /// Records static facts about the record (`Store::put_facts`): new facts win, the known
    /// ones fill their gaps; a measured size replaces any other.
    pub(crate) fn set_facts(&mut self, slot: usize, size: Option<u64>, facts: FileFacts) {
        let record = &mut self.slots[slot].record;
        if size.is_some() {
            record.size = size;
        }
        let mut merged = facts;
        merged.fill_from(std::mem::take(&mut record.facts));
        record.facts = merged;
    }

    /// Whether record `one` was created before record `other`: stored records before this
    /// call's, and by id, which follows creation (fjall keeps the older record of a link too).
    fn older(&self, one: usize, other: usize) -> bool {
        match (self.slots[one].id, self.slots[other].id) {
            (Some(one), Some(other)) => one < other,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => one < other,
        }
    }

    /// Links two records into the older one and returns the slot absorbed. Sightings are merged
    /// in fjall's order: everything so far for the kept record (then the absorbed one), and then
    /// the absorbed one's.
    pub(crate) async fn link(&mut self, tx: &Transaction<'_>, first: usize, second: usize) -> Result<usize, Failure> {
        let (keep, absorb) = if self.older(first, second) { (first, second) } else { (second, first) };
        if self.slots[keep].id.is_some() {
            let landing: Vec<usize> =
                [keep, absorb].into_iter().filter(|&slot| self.slots[slot].id.is_some()).collect();
            self.write_sightings(tx, &landing, &HashSet::new()).await?;
        }
        if let (Some(keep_id), Some(absorb_id)) = (self.slots[keep].id, self.slots[absorb].id) {
            let statement = tx.prepare_cached(MOVE_SIGHTINGS).await?;
            for row in tx.query(&statement, &[&keep_id, &absorb_id]).await? {
                let (tenant, moved): (&str, i64) = (row.try_get(0)?, row.try_get(1)?);
                self.slots[keep].record.count_devices(tenant, u64::try_from(moved).unwrap_or_default());
            }
            let statement = tx.prepare_cached(MOVE_TIMES).await?;
            tx.execute(&statement, &[&keep_id, &absorb_id]).await?;
            let statement = tx.prepare_cached(DELETE_FILE).await?;
            tx.execute(&statement, &[&absorb_id]).await?;
            self.files_delta -= 1;
            self.absorbed_ids.push(absorb_id);
        }
        let absorbed = std::mem::take(&mut self.slots[absorb]);
        self.slots[absorb].gone = true;
        let kept = &mut self.slots[keep];
        for (device, sighting) in absorbed.sightings {
            match kept.sightings.entry(device) {
                Entry::Occupied(mut known) => known.get_mut().merge(sighting),
                Entry::Vacant(vacant) => {
                    vacant.insert(sighting);
                }
            }
        }
        kept.times.extend(absorbed.times);
        kept.record.absorb(absorbed.record);
        for hash in kept.record.hashes.iter() {
            self.by_hash.insert(hash, keep);
        }
        Ok(absorb)
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|&slot| !self.slots[slot].gone)
    }

    /// Writes the pending sightings of `slots` (those with rows), and grows each prevalence by
    /// the sightings that were new, except for the `fresh` records, whose count was written with
    /// their row.
    async fn write_sightings(
        &mut self,
        tx: &Transaction<'_>,
        slots: &[usize],
        fresh: &HashSet<usize>,
    ) -> Result<(), Failure> {
        let mut rows: Vec<(i64, &str, &str, &Sighting)> = Vec::new();
        let mut slot_of: HashMap<i64, usize> = HashMap::new();
        for &slot in slots {
            let Some(id) = self.slots[slot].id else { continue };
            slot_of.insert(id, slot);
            for (device, sighting) in &self.slots[slot].sightings {
                let device = &self.devices[*device as usize];
                rows.push((id, &self.tenants[device.tenant as usize], &device.device_id, sighting));
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        // Key order, so that concurrent writers meet rows in the same order.
        rows.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let mut names = Vec::with_capacity(rows.len());
        for (_, _, _, sighting) in &rows {
            names.push(to_json("sighting names", &sighting.names)?);
        }
        let file_ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
        let tenants: Vec<&str> = rows.iter().map(|row| row.1).collect();
        let devices: Vec<&str> = rows.iter().map(|row| row.2).collect();
        let firsts: Vec<i64> = rows.iter().map(|row| row.3.first.0).collect();
        let lasts: Vec<i64> = rows.iter().map(|row| row.3.last.0).collect();
        let file_names: Vec<Option<&str>> = rows.iter().map(|row| row.3.file_name.as_deref()).collect();
        let statement = tx.prepare_cached(SIGHTINGS).await?;
        let inserted =
            tx.query(&statement, &[&file_ids, &tenants, &devices, &firsts, &lasts, &file_names, &names]).await?;
        drop(rows);
        for row in inserted {
            let (id, tenant, count): (i64, &str, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            if let Some(&slot) = slot_of.get(&id)
                && !fresh.contains(&slot)
            {
                self.slots[slot].record.count_devices(tenant, u64::try_from(count).unwrap_or_default());
            }
        }
        for &slot in slots {
            if self.slots[slot].id.is_some() {
                self.slots[slot].sightings.clear();
            }
        }
        Ok(())
    }

    /// Writes everything still pending, then the file count: the call's last statements.
    pub(crate) async fn finish(&mut self, tx: &Transaction<'_>, shard: i32) -> Result<(), Failure> {
        let fresh: Vec<usize> = self.live().filter(|&slot| self.slots[slot].id.is_none()).collect();
        self.number_files(tx, &fresh).await?;
        self.claim_hashes(tx).await?;
        if !fresh.is_empty() {
            self.insert_files(tx, &fresh).await?;
        }
        let live: Vec<usize> = self.live().collect();
        self.write_sightings(tx, &live, &fresh.iter().copied().collect()).await?;
        self.update_files(tx).await?;
        self.write_times(tx).await?;
        self.write_devices(tx).await?;
        if self.files_delta != 0 {
            let statement = tx.prepare_cached(COUNT_FILES).await?;
            tx.execute(&statement, &[&shard, &self.files_delta]).await?;
        }
        Ok(())
    }

    /// Gives the records this call created ids, drawn in the order they were created.
    async fn number_files(&mut self, tx: &Transaction<'_>, fresh: &[usize]) -> Result<(), Failure> {
        if fresh.is_empty() {
            return Ok(());
        }
        let count = i32::try_from(fresh.len()).map_err(|_| Failure::Raced("too many new files in one call"))?;
        let statement = tx.prepare_cached(NEW_IDS).await?;
        let mut ids = Vec::with_capacity(fresh.len());
        for row in tx.query(&statement, &[&count]).await? {
            ids.push(row.try_get::<_, i64>(0)?);
        }
        ids.sort_unstable();
        for (&slot, &id) in fresh.iter().zip(&ids) {
            self.slots[slot].id = Some(id);
        }
        Ok(())
    }

    /// Claims every hash a record has and its row did not: all of a new record's, those a
    /// stored one gained, and those it took over from a record it absorbed. If another writer
    /// committed one of them first, this transaction read too early and must run again.
    async fn claim_hashes(&mut self, tx: &Transaction<'_>) -> Result<(), Failure> {
        let mut claims: Vec<(i16, &[u8], i64)> = Vec::new();
        for slot in self.live() {
            let entry = &self.slots[slot];
            let Some(id) = entry.id else { continue };
            let known = entry.stored.as_ref().map(|stored| stored.hashes).unwrap_or_default();
            let hashes = &entry.record.hashes;
            if let (Some(hash), None) = (&hashes.md5, known.md5) {
                claims.push((0, &hash.0[..], id));
            }
            if let (Some(hash), None) = (&hashes.sha1, known.sha1) {
                claims.push((1, &hash.0[..], id));
            }
            if let (Some(hash), None) = (&hashes.sha256, known.sha256) {
                claims.push((2, &hash.0[..], id));
            }
        }
        if claims.is_empty() {
            return Ok(());
        }
        // Key order: every writer claims in it, so none waits for another in a cycle.
        claims.sort_unstable();
        let kinds: Vec<i16> = claims.iter().map(|claim| claim.0).collect();
        let hashes: Vec<&[u8]> = claims.iter().map(|claim| claim.1).collect();
        let ids: Vec<i64> = claims.iter().map(|claim| claim.2).collect();
        let statement = tx.prepare_cached(CLAIM_HASHES).await?;
        let claimed = tx.query(&statement, &[&kinds, &hashes, &ids, &self.absorbed_ids]).await?;
        if claimed.len() != claims.len() {
            return Err(Failure::Raced("another writer recorded one of the same hashes first"));
        }
        Ok(())
    }

    /// Inserts the records this call created (their hashes are claimed already).
    async fn insert_files(&mut self, tx: &Transaction<'_>, fresh: &[usize]) -> Result<(), Failure> {
        for &slot in fresh {
            let entry = &mut self.slots[slot];
            // No row names this id yet, so every one of its sightings is new.
            entry.record.global_prevalence = 0;
            for row in &mut entry.record.tenants {
                row.devices = 0;
            }
            for device in entry.sightings.keys() {
                let tenant = &self.tenants[self.devices[*device as usize].tenant as usize];
                entry.record.count_devices(tenant, 1);
            }
        }
        let columns = self.record_columns(fresh, |_| true)?;
        let statement = tx.prepare_cached(INSERT_FILES).await?;
        columns.run(tx, &statement).await?;
        self.files_delta += fresh.len() as i64;
        for &slot in fresh {
            let entry = &mut self.slots[slot];
            entry.stored = Some(entry.record.clone());
        }
        Ok(())
    }

    /// Writes the stored records that changed, in id order (their rows are locked already).
    async fn update_files(&mut self, tx: &Transaction<'_>) -> Result<(), Failure> {
        let mut changed: Vec<usize> = self
            .live()
            .filter(|&slot| self.slots[slot].stored.as_ref().is_some_and(|stored| *stored != self.slots[slot].record))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        changed.sort_unstable_by_key(|&slot| self.slots[slot].id);
        let columns = self.record_columns(&changed, |slot| {
            let entry = &self.slots[slot];
            entry
                .stored
                .as_ref()
                .is_none_or(|stored| stored.facts != entry.record.facts || stored.reported != entry.record.reported)
        })?;
        let statement = tx.prepare_cached(UPDATE_FILES).await?;
        columns.run(tx, &statement).await?;
        for slot in changed {
            let entry = &mut self.slots[slot];
            entry.stored = Some(entry.record.clone());
        }
        Ok(())
    }

    /// The columns of `files` for these records; facts and reports only where `with_facts`.
    fn record_columns(
        &self,
        slots: &[usize],
        with_facts: impl Fn(usize) -> bool,
    ) -> Result<RecordColumns<'_>, Failure> {
        let mut columns = RecordColumns::default();
        for &slot in slots {
            let entry = &self.slots[slot];
            let record = &entry.record;
            columns.ids.push(entry.id.unwrap_or_default());
            columns.sha1.push(bytes(record.hashes.sha1.as_ref().map(|hash| &hash.0)));
            columns.sha256.push(bytes(record.hashes.sha256.as_ref().map(|hash| &hash.0)));
            columns.md5.push(bytes(record.hashes.md5.as_ref().map(|hash| &hash.0)));
            columns.prevalence.push(to_sql(record.global_prevalence));
            columns.first.push(record.global_first_observed.map(|time| time.0));
            columns.last.push(record.global_last_observed.map(|time| time.0));
            columns.size.push(record.size.map(to_sql));
            if with_facts(slot) {
                columns.facts.push(Some(to_json("file facts", &record.facts)?));
                columns.reported.push(Some(to_json("endpoint report", &record.reported)?));
            } else {
                columns.facts.push(None);
                columns.reported.push(None);
            }
            columns.tenants.push(to_json("tenant rows", &record.tenants)?);
        }
        Ok(columns)
    }

    async fn write_times(&mut self, tx: &Transaction<'_>) -> Result<(), Failure> {
        let mut rows: Vec<(i64, &str, i64)> = Vec::new();
        for slot in self.live() {
            let entry = &self.slots[slot];
            let Some(id) = entry.id else { continue };
            rows.extend(entry.times.iter().map(|&(tenant, time)| (id, self.tenants[tenant as usize].as_str(), time)));
        }
        if rows.is_empty() {
            return Ok(());
        }
        rows.sort_unstable();
        let file_ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
        let tenants: Vec<&str> = rows.iter().map(|row| row.1).collect();
        let times: Vec<i64> = rows.iter().map(|row| row.2).collect();
        let statement = tx.prepare_cached(TIMES).await?;
        tx.execute(&statement, &[&file_ids, &tenants, &times]).await?;
        drop(rows);
        for slot in 0..self.slots.len() {
            self.slots[slot].times.clear();
        }
        Ok(())
    }

    async fn write_devices(&mut self, tx: &Transaction<'_>) -> Result<(), Failure> {
        if self.devices.is_empty() {
            return Ok(());
        }
        let mut order: Vec<&Device> = self.devices.iter().collect();
        // Key order: devices are shared by every file, so concurrent writers meet here most.
        order.sort_unstable_by(|a, b| {
            (&self.tenants[a.tenant as usize], &a.device_id).cmp(&(&self.tenants[b.tenant as usize], &b.device_id))
        });
        let tenants: Vec<&str> = order.iter().map(|device| self.tenants[device.tenant as usize].as_str()).collect();
        let device_ids: Vec<&str> = order.iter().map(|device| device.device_id.as_str()).collect();
        let names: Vec<Option<&str>> = order.iter().map(|device| device.name.as_deref()).collect();
        let firsts: Vec<i64> = order.iter().map(|device| device.first).collect();
        let lasts: Vec<i64> = order.iter().map(|device| device.last).collect();
        let platforms: Vec<Option<&str>> = order.iter().map(|device| device.platform.as_deref()).collect();
        let statement = tx.prepare_cached(DEVICES).await?;
        tx.execute(&statement, &[&tenants, &device_ids, &names, &firsts, &lasts, &platforms]).await?;
        drop(order);
        self.devices.clear();
        self.device_numbers.iter_mut().for_each(HashMap::clear);
        Ok(())
    }
}

/// The eleven columns of [`INSERT_FILES`] and [`UPDATE_FILES`], one array each.
#[derive(Default)]
struct RecordColumns<'a> {
    ids: Vec<i64>,
    sha1: Vec<Option<&'a [u8]>>,
    sha256: Vec<Option<&'a [u8]>>,
    md5: Vec<Option<&'a [u8]>>,
    prevalence: Vec<i64>,
    first: Vec<Option<i64>>,
    last: Vec<Option<i64>>,
    size: Vec<Option<i64>>,
    facts: Vec<Option<String>>,
    reported: Vec<Option<String>>,
    tenants: Vec<String>,
}

impl RecordColumns<'_> {
    async fn run(
        &self,
        tx: &Transaction<'_>,
        statement: &tokio_postgres::Statement,
    ) -> Result<Vec<tokio_postgres::Row>, Failure> {
        Ok(tx
            .query(
                statement,
                &[
                    &self.ids,
                    &self.sha1,
                    &self.sha256,
                    &self.md5,
                    &self.prevalence,
                    &self.first,
                    &self.last,
                    &self.size,
                    &self.facts,
                    &self.reported,
                    &self.tenants,
                ],
            )
            .await?)
    }
}

/// One `ingest` call, as one attempt of its transaction: what it did (but for `files_touched`),
/// and the ids of the files it touched, which the caller counts across its transactions.
pub(crate) async fn ingest(
    tx: &Transaction<'_>,
    observations: &[Observation],
    refusals: &[Option<String>],
    horizon: Timestamp,
    shard: i32,
) -> Result<(fileintel_store::IngestOutcome, Vec<i64>), Failure> {
    let mut batch = Batch::new(horizon);
    let kept = observations.iter().zip(refusals).filter(|(_, refusal)| refusal.is_none());
    batch.load(tx, kept.map(|(observation, _)| &observation.hashes)).await?;
    let mut outcome = fileintel_store::IngestOutcome::default();
    let mut touched: HashSet<usize> = HashSet::new();
    for (index, (observation, refusal)) in observations.iter().zip(refusals).enumerate() {
        if let Some(reason) = refusal {
            outcome.rejected.push((index, reason.clone()));
            continue;
        }
        loop {
            match batch.resolve(&observation.hashes) {
                Resolution::File(slot) => {
                    touched.insert(slot);
                    batch.accept(slot, observation);
                    outcome.accepted += 1;
                    break;
                }
                Resolution::Conflict(reason) => {
                    outcome.rejected.push((index, reason));
                    break;
                }
                Resolution::Link(first, second) => {
                    let absorbed = batch.link(tx, first, second).await?;
                    touched.remove(&absorbed);
                }
            }
        }
    }
    batch.finish(tx, shard).await?;
    outcome.new_files = batch.new_to_tenants;
    // Every live record has its id once written.
    let touched = touched.into_iter().filter_map(|slot| batch.slots[slot].id).collect();
    Ok((outcome, touched))
}

/// One `put_facts` call, as one attempt of its transaction.
pub(crate) async fn put_facts(
    tx: &Transaction<'_>,
    hashes: &FileHashes,
    size: Option<u64>,
    facts: &FileFacts,
    horizon: Timestamp,
    shard: i32,
) -> Result<(), Failure> {
    let mut batch = Batch::new(horizon);
    batch.load(tx, std::iter::once(hashes)).await?;
    loop {
        match batch.resolve(hashes) {
            Resolution::File(slot) => {
                batch.set_facts(slot, size, facts.clone());
                break;
            }
            Resolution::Link(first, second) => {
                batch.link(tx, first, second).await?;
            }
            Resolution::Conflict(reason) => return Err(Failure::Store(fileintel_store::StoreError::Backend(reason))),
        }
    }
    batch.finish(tx, shard).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use fileintel_core::{MAX_ID_BYTES, ReportedFacts, Timestamp};

    fn observation() -> Observation {
        Observation {
            tenant_id: "t".into(),
            device_id: "d".into(),
            device_name: None,
            timestamp: Timestamp(0),
            hashes: FileHashes { sha1: Some(fileintel_core::Sha1([1; 20])), ..FileHashes::default() },
            size: None,
            file_name: Some("a.exe".into()),
            folder_path: None,
            os_platform: None,
            reported: None,
        }
    }

    /// The SQL spells the core's limit on names per sighting as a number: the two must agree.
    #[test]
    fn the_sql_keeps_as_many_names_as_the_core() {
        let limit = fileintel_core::NAMES_PER_SIGHTING;
        assert!(SIGHTINGS.contains(&format!("cardinality(s.names) < {limit}")));
        let (_, schema) = crate::migrations::MIGRATIONS[0];
        assert!(schema.contains(&format!("LIMIT greatest({limit} - cardinality(kept), 0)")));
    }

    /// The migration to tenant rows writes an empty report as serde does.
    #[test]
    fn the_tenant_rows_migration_knows_empty_reports() {
        let (_, sql) = crate::migrations::MIGRATIONS[3];
        assert!(sql.contains(&serde_json::to_string(&ReportedFacts::default()).unwrap()));
        let facts = serde_json::to_value(FileFacts::default()).unwrap();
        let set: Vec<_> = facts.as_object().unwrap().iter().filter(|(_, value)| !value.is_null()).collect();
        assert_eq!(set, [(&"determination_type".to_owned(), &serde_json::json!("Unknown"))], "what empty facts keep");
    }

    #[test]
    fn text_postgresql_cannot_hold_is_refused_by_field() {
        assert_eq!(refusal(&observation()), None);
        let named = Observation { file_name: Some("a\0.exe".into()), ..observation() };
        assert!(refusal(&named).is_some_and(|reason| reason.contains("'fileName'") && reason.contains("NUL")));
        // Endpoint reports are kept as JSON text, which holds any string.
        let reported = Observation {
            reported: Some(Box::new(ReportedFacts { company: Some("\0".into()), ..ReportedFacts::default() })),
            ..observation()
        };
        assert_eq!(refusal(&reported), None);
        let long = Observation { device_id: "d".repeat(MAX_ID_BYTES + 1), ..observation() };
        assert_eq!(refusal(&long).as_deref(), Some("field 'deviceId' is longer than 1024 bytes"));
    }
}
