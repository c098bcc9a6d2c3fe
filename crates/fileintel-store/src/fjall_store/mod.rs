//! The embedded backend: fjall, an LSM tree, with one writer and atomic cross-keyspace batches.
//!
//! Layout (every integer big-endian so keys sort numerically):
//!
//! | keyspace      | key                                   | value                                  |
//! |---------------|---------------------------------------|----------------------------------------|
//! | `files`       | file id (u64)                         | `FileRecord`, versioned postcard        |
//! | `by_sha1`     | SHA-1 (20 bytes)                      | file id                                |
//! | `by_sha256`   | SHA-256 (32 bytes)                    | file id                                |
//! | `by_md5`      | MD5 (16 bytes)                        | file id                                |
//! | `tenants`     | tenant name                           | tenant id (u32)                        |
//! | `devices`     | tenant id, device id text             | device number (u32)                    |
//! | `device_info` | device number                         | `DeviceInfo`                            |
//! | `sightings`   | file id, tenant id, device number     | `Sighting`: first, last, file names    |
//! | `recent_times`| file id, tenant id, time              | (none): one per distinct observation time |
//! | `recent_devices`| file id, tenant id, last seen, device | (none): each device at its last sighting |
//! | `recent_counts`| file id, tenant id, 0 and hour, or 1 and day, of last seen | devices whose last sighting is in that hour, or day (u32) |
//! | `file_names`  | file id, tenant id, file name         | devices that saw the file under that name (u32) |
//! | `applications`| tenant, 0, client id                  | `Application` (secret as argon2id)     |
//! | `users`       | tenant, 0, lower-cased sign-in name   | `User` (password as argon2id)          |
//! | `users_by_oid`| tenant, 0, object id                  | lower-cased sign-in name               |
//! | `signing_keys`| sequence number (u64)                 | `SigningKey`, in the order added       |
//! | `meta`        | name                                  | counters (each tenant's last indicator id too) and the schema version |
//!
//! Indexes point at a compact internal file id rather than at a full hash, and sightings key on
//! numbers rather than names, so the per-observation rows stay small.
//!
//! The `recent_*` keyspaces answer `/stats` for any look-back window of up to [`MAX_LOOKBACK`]
//! without visiting every device: they hold only times within that horizon of the moment they
//! were written (older ones can never fall inside a window again). An entry that has since aged
//! out may linger until it is swept ([`FjallStore::sweep_windows`]), but always together with its
//! hour and day counts, so counts taken over a window stay exact.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fileintel_core::{
    Application, FileFacts, FileHash, FileHashes, FileRecord, Indicator, Observation, Sighting, SigningKey, Timestamp,
    User, Verdict, VerdictSource,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use serde::{Deserialize, Serialize};

use crate::{DeviceSighting, IngestOutcome, OrgFileStats, Store, StoreError, StoreStats, SweepReport, TOP_FILE_NAMES};

mod export;
mod writer;

pub use export::ExportedFile;

/// Written as the first byte of every value. Version 2 added names to sightings, activity to
/// devices and endpoint reports to file records; version 1 values of those are still read.
const SCHEMA_VERSION: u8 = 2;
const LOCK_FILE: &str = "fileintel.lock";
/// Point lookups read a filter, an index and a data block per table: at 10 million files the
/// filters and index blocks alone take about 100 MiB, and every one not cached costs a read.
pub const DEFAULT_CACHE_BYTES: u64 = 160 << 20;
/// Bounds the writer's device cache; past it the cache starts over (lookups then hit the store).
const DEVICE_CACHE_LIMIT: usize = 262_144;

impl From<fjall::Error> for StoreError {
    fn from(error: fjall::Error) -> Self {
        StoreError::Backend(error.to_string())
    }
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![SCHEMA_VERSION];
    // Encoding plain data into a Vec cannot fail.
    bytes.extend(postcard::to_stdvec(value).unwrap_or_default());
    bytes
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((version, rest)) if (1..=SCHEMA_VERSION).contains(version) => {
            postcard::from_bytes(rest).map_err(|error| corrupt(what, error))
        }
        Some((version, _)) => Err(corrupt(what, format!("unknown schema version {version}"))),
        None => Err(corrupt(what, "empty value")),
    }
}

fn u64_value(what: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    bytes.try_into().map(u64::from_be_bytes).map_err(|_| corrupt(what, "not an 8-byte integer"))
}

fn u32_value(what: &str, bytes: &[u8]) -> Result<u32, StoreError> {
    bytes.try_into().map(u32::from_be_bytes).map_err(|_| corrupt(what, "not a 4-byte integer"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DeviceInfo {
    tenant: u32,
    device_id: String,
    device_name: Option<String>,
    /// The device's first and last observation of any file.
    first_seen: Option<Timestamp>,
    last_seen: Option<Timestamp>,
    os_platform: Option<String>,
}

/// `DeviceInfo` as schema version 1 wrote it.
#[derive(Deserialize)]
struct DeviceInfoV1 {
    tenant: u32,
    device_id: String,
    device_name: Option<String>,
}

/// Decodes a value whose layout changed in schema version 2: version 1 bytes are read as `Old`
/// and brought up to date by `upgrade`.
fn decode_upgraded<Old: for<'de> Deserialize<'de>, New: for<'de> Deserialize<'de>>(
    what: &str,
    bytes: &[u8],
    upgrade: impl FnOnce(Old) -> New,
) -> Result<New, StoreError> {
    match bytes.split_first() {
        Some((1, rest)) => postcard::from_bytes(rest).map(upgrade).map_err(|error| corrupt(what, error)),
        _ => decode(what, bytes),
    }
}

fn decode_device_info(bytes: &[u8]) -> Result<DeviceInfo, StoreError> {
    decode_upgraded("device info", bytes, |old: DeviceInfoV1| DeviceInfo {
        tenant: old.tenant,
        device_id: old.device_id,
        device_name: old.device_name,
        first_seen: None,
        last_seen: None,
        os_platform: None,
    })
}

/// `FileRecord` as schema version 1 wrote it.
#[derive(Deserialize)]
struct FileRecordV1 {
    hashes: FileHashes,
    global_prevalence: u64,
    global_first_observed: Option<Timestamp>,
    global_last_observed: Option<Timestamp>,
    size: Option<u64>,
    facts: FileFacts,
}

fn decode_record(bytes: &[u8]) -> Result<FileRecord, StoreError> {
    decode_upgraded("file record", bytes, |old: FileRecordV1| FileRecord {
        hashes: old.hashes,
        global_prevalence: old.global_prevalence,
        global_first_observed: old.global_first_observed,
        global_last_observed: old.global_last_observed,
        size: old.size,
        facts: old.facts,
        reported: Default::default(),
    })
}

/// `Sighting` as schema version 1 wrote it.
#[derive(Deserialize)]
struct SightingV1 {
    first: Timestamp,
    last: Timestamp,
    file_name: Option<String>,
}

fn decode_sighting(bytes: &[u8]) -> Result<Sighting, StoreError> {
    decode_upgraded("sighting", bytes, |old: SightingV1| Sighting {
        first: old.first,
        last: old.last,
        names: old.file_name.iter().cloned().collect(),
        file_name: old.file_name,
    })
}

/// The longest look-back `/stats` answers for (MDE's 720 hours), plus an hour of slack for
/// clocks that disagree.
pub(crate) const MAX_LOOKBACK: i64 = 721 * TICKS_PER_HOUR;
const TICKS_PER_HOUR: i64 = 3600 * 10_000_000;

/// Times as key bytes that sort in time order, before 1970 too.
fn time_bytes(time: Timestamp) -> [u8; 8] {
    ((time.0 as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from_bytes(bytes: &[u8]) -> Timestamp {
    Timestamp((u64::from_be_bytes(bytes.try_into().unwrap_or_default()) ^ (1 << 63)) as i64)
}

fn hour_of(time: Timestamp) -> i64 {
    time.0.div_euclid(TICKS_PER_HOUR)
}

/// File id and tenant id: the prefix every per-tenant key of a file starts with.
fn file_tenant(file: u64, tenant: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&file.to_be_bytes());
    key[8..].copy_from_slice(&tenant.to_be_bytes());
    key
}

fn recent_time_key(file: u64, tenant: u32, time: Timestamp) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..12].copy_from_slice(&file_tenant(file, tenant));
    key[12..].copy_from_slice(&time_bytes(time));
    key
}

fn recent_device_key(file: u64, tenant: u32, last: Timestamp, device: u32) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..20].copy_from_slice(&recent_time_key(file, tenant, last));
    key[20..].copy_from_slice(&device.to_be_bytes());
    key
}

/// The two levels of `recent_counts`.
const HOUR_LEVEL: u8 = 0;
const DAY_LEVEL: u8 = 1;

fn day_of(time: Timestamp) -> i64 {
    time.0.div_euclid(24 * TICKS_PER_HOUR)
}

fn count_key(file: u64, tenant: u32, level: u8, bucket: i64) -> [u8; 21] {
    let mut key = [0u8; 21];
    key[..12].copy_from_slice(&file_tenant(file, tenant));
    key[12] = level;
    key[13..].copy_from_slice(&((bucket as u64) ^ (1 << 63)).to_be_bytes());
    key
}

/// The hour and the day counters a last sighting at `time` counts in.
fn count_keys(file: u64, tenant: u32, time: Timestamp) -> [[u8; 21]; 2] {
    [count_key(file, tenant, HOUR_LEVEL, hour_of(time)), count_key(file, tenant, DAY_LEVEL, day_of(time))]
}

fn bucket_of_key(key: &[u8]) -> i64 {
    (u64::from_be_bytes(key[13..21].try_into().unwrap_or_default()) ^ (1 << 63)) as i64
}

fn name_key(file: u64, tenant: u32, name: &str) -> Vec<u8> {
    let mut key = file_tenant(file, tenant).to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

fn sighting_key(file: u64, tenant: u32, device: u32) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&file.to_be_bytes());
    key[8..12].copy_from_slice(&tenant.to_be_bytes());
    key[12..].copy_from_slice(&device.to_be_bytes());
    key
}

fn device_key(tenant: u32, device_id: &str) -> Vec<u8> {
    let mut key = tenant.to_be_bytes().to_vec();
    key.extend_from_slice(device_id.as_bytes());
    key
}

/// Counters that only the writer changes, persisted in `meta` with each batch.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct Counters {
    next_file: u64,
    next_device: u32,
    next_tenant: u32,
    files: u64,
    /// Records without a SHA-256. While there are none, an observation whose SHA-256 is unknown
    /// names a new file, and its other hashes need no lookup.
    partial: u64,
}

struct Writer {
    counters: Counters,
    /// Observation times before this are not kept for windows (set at the start of each ingest).
    horizon: Timestamp,
    tenants: HashMap<String, u32>,
    devices: HashMap<(u32, String), (u32, Option<String>)>,
}

struct Inner {
    db: Database,
    files: Keyspace,
    by_sha1: Keyspace,
    by_sha256: Keyspace,
    by_md5: Keyspace,
    tenants: Keyspace,
    devices: Keyspace,
    device_info: Keyspace,
    sightings: Keyspace,
    recent_times: Keyspace,
    recent_devices: Keyspace,
    recent_counts: Keyspace,
    file_names: Keyspace,
    /// Tenant, a zero byte, client id → `Application`.
    applications: Keyspace,
    /// Sequence number (big-endian) → `SigningKey`: iterating yields them in the order added.
    signing_keys: Keyspace,
    /// Tenant, a zero byte, lower-cased sign-in name → `User`.
    users: Keyspace,
    /// Tenant, a zero byte, object id → lower-cased sign-in name.
    users_by_oid: Keyspace,
    /// Hash kind (0 MD5, 1 SHA-1, 2 SHA-256), the hash, the source key → `Verdict`.
    verdicts: Keyspace,
    /// Held while verdicts are compared and written, so two imports cannot interleave there.
    verdict_writes: Mutex<()>,
    /// Tenant, a zero byte, the id as 20 decimal digits → `Indicator`.
    indicators: Keyspace,
    /// Tenant, a zero byte, indicator type, a zero byte, lower-cased value → id.
    indicators_by_value: Keyspace,
    /// Whether any verdict was ever stored: until one is, lookups skip the verdict scans.
    has_verdicts: std::sync::atomic::AtomicBool,
    /// [`Store::identity_generation`]: in memory, since only this process uses the store and
    /// every cache it is compared against lives in this process too.
    identity_generation: std::sync::atomic::AtomicU64,
    meta: Keyspace,
    writer: Mutex<Writer>,
    lock: Mutex<File>,
}

/// The embedded store: one directory, one process at a time (a lock file says who holds it).
#[derive(Clone)]
pub struct FjallStore {
    inner: Arc<Inner>,
}

impl FjallStore {
    /// Opens or creates the store in `path` with the default cache. Fails with
    /// [`StoreError::Busy`], naming the holder, when another process has it open.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens or creates the store with a block cache of `cache_bytes`.
    pub fn open_with(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        create_private_dir(path)?;
        let lock = acquire_lock(path)?;
        let db = Database::builder(path.join("db")).cache_size(cache_bytes).open()?;
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        // Reads of these follow an index hit and always find their key, so the last level's
        // bloom filters would only cost bytes.
        let always_hit =
            |name: &str| db.keyspace(name, || KeyspaceCreateOptions::default().expect_point_read_hits(true));
        let meta = keyspace("meta")?;
        let stored = meta.get("counters")?;
        // A store written by schema version 1 has sightings but no window entries yet.
        let from_version_1 = stored.as_ref().is_some_and(|bytes| bytes.first() == Some(&1));
        let counters = match stored {
            Some(bytes) => decode("counters", &bytes)?,
            None => Counters { next_file: 1, next_device: 1, next_tenant: 1, files: 0, partial: 0 },
        };
        let inner = Inner {
            files: always_hit("files")?,
            by_sha1: keyspace("by_sha1")?,
            by_sha256: keyspace("by_sha256")?,
            by_md5: keyspace("by_md5")?,
            tenants: keyspace("tenants")?,
            devices: keyspace("devices")?,
            device_info: always_hit("device_info")?,
            sightings: keyspace("sightings")?,
            recent_times: keyspace("recent_times")?,
            recent_devices: keyspace("recent_devices")?,
            recent_counts: keyspace("recent_counts")?,
            file_names: keyspace("file_names")?,
            applications: keyspace("applications")?,
            signing_keys: keyspace("signing_keys")?,
            users: keyspace("users")?,
            users_by_oid: keyspace("users_by_oid")?,
            verdicts: keyspace("verdicts")?,
            indicators: keyspace("indicators")?,
            indicators_by_value: keyspace("indicators_by_value")?,
            verdict_writes: Mutex::new(()),
            has_verdicts: std::sync::atomic::AtomicBool::new(false),
            identity_generation: std::sync::atomic::AtomicU64::new(1),
            meta,
            db,
            writer: Mutex::new(Writer {
                counters,
                horizon: Timestamp(i64::MIN),
                tenants: HashMap::new(),
                devices: HashMap::new(),
            }),
            lock: Mutex::new(lock),
        };
        let stored_verdicts = inner.verdicts.first_key_value().is_some();
        inner.has_verdicts.store(stored_verdicts, std::sync::atomic::Ordering::Release);
        let store = FjallStore { inner: Arc::new(inner) };
        if from_version_1 {
            let mut writer = store.inner.writer.lock().map_err(|_| StoreError::Backend("writer poisoned".into()))?;
            store.inner.rebuild_windows(&mut writer)?;
        }
        // What the journal replayed sits in memtables, whose skiplist lookups cost several times
        // a lookup in a table on disk: write it out before serving.
        store.flush()?;
        Ok(store)
    }

    /// Writes every memtable out to tables on disk and lets the journal go. The data was durable
    /// before; this makes lookups cheaper and the directory smaller.
    pub fn flush(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let keyspaces = [
            &inner.files,
            &inner.by_sha1,
            &inner.by_sha256,
            &inner.by_md5,
            &inner.tenants,
            &inner.devices,
            &inner.device_info,
            &inner.sightings,
            &inner.recent_times,
            &inner.recent_devices,
            &inner.recent_counts,
            &inner.file_names,
            &inner.applications,
            &inner.signing_keys,
            &inner.users,
            &inner.users_by_oid,
            &inner.meta,
        ];
        // Each rotation waits for its table to be written: wait for them all at once.
        std::thread::scope(|scope| {
            let flushes: Vec<_> =
                keyspaces.iter().map(|keyspace| scope.spawn(|| keyspace.rotate_memtable_and_wait())).collect();
            for flush in flushes {
                flush.join().map_err(|_| StoreError::Backend("a flush panicked".into()))??;
            }
            Ok(())
        })
    }

    /// Removes window entries that no look-back from `now` on can reach: observation times, and
    /// devices with their hour counts, of whole hours that ended more than [`MAX_LOOKBACK`] (plus an
    /// hour) before `now`. Queries and the writer only touch later hours, so this runs beside
    /// them. Returns how many entries went.
    pub fn sweep_windows(&self, now: Timestamp) -> Result<u64, StoreError> {
        let inner = &self.inner;
        let horizon = now.0.saturating_sub(MAX_LOOKBACK + TICKS_PER_HOUR);
        // The first hour still kept, and the first time in it.
        let kept_hour = horizon.div_euclid(TICKS_PER_HOUR);
        let kept_from = Timestamp(kept_hour * TICKS_PER_HOUR);
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
        for (keyspace, length) in [(&inner.recent_times, 20), (&inner.recent_devices, 24), (&inner.recent_counts, 21)] {
            let counts = std::ptr::eq(keyspace, &inner.recent_counts);
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

    /// Records who holds the store (shown to a second process that tries to open it).
    pub fn describe_holder(&self, description: &str) -> Result<(), StoreError> {
        let mut lock = self.inner.lock.lock().map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        let mut write = || -> std::io::Result<()> {
            lock.set_len(0)?;
            lock.rewind()?;
            lock.write_all(description.as_bytes())?;
            lock.sync_data()
        };
        write().map_err(|error| StoreError::Backend(format!("writing the lock file: {error}")))
    }

    /// Ingests on the calling thread; [`Store::ingest`] runs this on tokio's blocking pool.
    pub fn ingest_blocking(&self, observations: Vec<Observation>) -> Result<IngestOutcome, StoreError> {
        let mut writer = self.inner.writer.lock().map_err(|_| StoreError::Backend("writer poisoned".into()))?;
        self.inner.ingest(&mut writer, observations)
    }
}

/// Creates the data directory readable by its owner only (it holds the token signing keys, the
/// password hashes and the admin socket), or tightens an existing one. Made that way from the
/// start, so there is no moment when others may enter it; only a directory somebody else made
/// too open is worth a warning.
pub fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    let failed = |error: std::io::Error| StoreError::Backend(format!("preparing {}: {error}", path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let created = match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => true,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => false,
            // Parents are missing: they are made as the data directory is, owner only.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(failed)?;
                true
            }
            Err(error) => return Err(failed(error)),
        };
        let mode = std::fs::metadata(path).map_err(failed)?.permissions().mode();
        match tightening(created, mode) {
            Tightening::None => {}
            tighten => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
                if tighten == Tightening::Warn {
                    tracing::warn!(path = %path.display(), was = %format_args!("{:o}", mode & 0o777), "made the data directory readable by its owner only");
                }
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(path).map_err(failed)?;
    Ok(())
}

/// What a data directory's mode calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tightening {
    None,
    /// One fileintel just made, which an unusual umask left other than asked: nobody else made
    /// it so, so there is nothing to warn about.
    Quietly,
    /// One that was there before, open to others: somebody should know it was.
    Warn,
}

fn tightening(created_here: bool, mode: u32) -> Tightening {
    match (mode & 0o777 == 0o700, created_here) {
        (true, _) => Tightening::None,
        (false, true) => Tightening::Quietly,
        (false, false) if mode & 0o077 != 0 => Tightening::Warn,
        // The owner's own bits only (0500, say): theirs to choose, and nobody else can enter.
        (false, false) => Tightening::None,
    }
}

/// Whether names can be part of a key: no longer than the core's identifier rule. Nothing longer
/// is ever stored, so a lookup by a longer one finds nothing (and the engine, which refuses keys
/// over 64 KiB, is never asked).
fn keyable(names: &[&str]) -> bool {
    names.iter().all(|name| name.len() <= fileintel_core::MAX_ID_BYTES)
}

/// Refuses to store under names longer than the core's identifier rule.
fn check_keyable(fields: &[(&'static str, &str)]) -> Result<(), StoreError> {
    for (field, value) in fields {
        fileintel_core::check_identifier(field, value).map_err(|error| StoreError::Backend(error.to_string()))?;
    }
    Ok(())
}

fn application_key(tenant: &str, client_id: &str) -> Vec<u8> {
    let mut key = tenant.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(client_id.as_bytes());
    key
}

fn acquire_lock(path: &Path) -> Result<File, StoreError> {
    let lock_path = path.join(LOCK_FILE);
    let io = |error: std::io::Error| StoreError::Backend(format!("{}: {error}", lock_path.display()));
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = if holder.trim().is_empty() { "another process".to_owned() } else { holder.trim().to_owned() };
            return Err(StoreError::Busy(format!("the data directory {} is in use by {holder}", path.display())));
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
    }
    file.set_len(0).map_err(io)?;
    write!(file, "process {}", std::process::id()).map_err(io)?;
    Ok(file)
}

impl Inner {
    fn load_record(&self, id: u64) -> Result<FileRecord, StoreError> {
        match self.files.get(id.to_be_bytes())? {
            Some(bytes) => decode_record(&bytes),
            None => Err(corrupt("file record", format!("index points at missing file {id}"))),
        }
    }

    fn get_file(&self, hash: &FileHash) -> Result<Option<FileRecord>, StoreError> {
        match self.lookup_id(hash)? {
            Some(id) => self.load_record(id).map(Some),
            None => Ok(None),
        }
    }

    fn file_devices(&self, hash: &FileHash, tenant: &str) -> Result<Vec<DeviceSighting>, StoreError> {
        let Some(id) = self.lookup_id(hash)? else {
            return Ok(Vec::new());
        };
        if !keyable(&[tenant]) {
            return Ok(Vec::new());
        }
        let Some(tenant) = self.tenants.get(tenant)? else {
            return Ok(Vec::new());
        };
        let mut prefix = id.to_be_bytes().to_vec();
        prefix.extend_from_slice(&tenant);
        let mut devices = Vec::new();
        for item in self.sightings.prefix(prefix) {
            let (key, value) = item.into_inner()?;
            let sighting = decode_sighting(&value)?;
            let number = u32_value("sighting key", &key[12..])?;
            let info = match self.device_info.get(number.to_be_bytes())? {
                Some(bytes) => decode_device_info(&bytes)?,
                None => return Err(corrupt("device info", format!("missing device {number}"))),
            };
            devices.push(DeviceSighting {
                device_id: info.device_id,
                device_name: info.device_name,
                first_seen: sighting.first,
                last_seen: sighting.last,
                file_name: sighting.file_name,
                device_first_seen: info.first_seen,
                device_last_seen: info.last_seen,
                os_platform: info.os_platform,
            });
        }
        Ok(devices)
    }

    fn file_stats(&self, hash: &FileHash, tenant: &str, since: Timestamp) -> Result<Option<OrgFileStats>, StoreError> {
        let Some(id) = self.lookup_id(hash)? else { return Ok(None) };
        let record = self.load_record(id)?;
        let mut stats =
            OrgFileStats { record, prevalence: 0, first_seen: None, last_seen: None, top_file_names: Vec::new() };
        if !keyable(&[tenant]) {
            return Ok(Some(stats));
        }
        let Some(tenant) = self.tenants.get(tenant)? else { return Ok(Some(stats)) };
        // Every window read from one snapshot: a commit landing between two of them could
        // otherwise move a device from one count to another unseen.
        let snapshot = self.db.snapshot();
        let tenant = u32_value("tenant", &tenant)?;
        let prefix = file_tenant(id, tenant);
        let end = recent_time_key(id, tenant, Timestamp(i64::MAX));

        // The first and last observation times at or after `since`.
        let window = recent_time_key(id, tenant, since)..=end;
        if let Some(item) = snapshot.range(&self.recent_times, window.clone()).next() {
            stats.first_seen = Some(time_from_bytes(&item.key()?[12..20]));
        }
        if let Some(item) = snapshot.range(&self.recent_times, window).next_back() {
            stats.last_seen = Some(time_from_bytes(&item.key()?[12..20]));
        }

        // Devices whose last sighting is at or after `since`: whole days after the one `since`
        // falls in, then the whole hours after its hour in that day, from their counts; within
        // its hour, from the devices themselves, counting whichever part of the hour is shorter.
        let hour = hour_of(since);
        let day = day_of(since);
        let mut prevalence: i64 = 0;
        let counts = [
            count_key(id, tenant, DAY_LEVEL, day + 1)..count_key(id, tenant, DAY_LEVEL + 1, i64::MIN),
            count_key(id, tenant, HOUR_LEVEL, hour + 1)..count_key(id, tenant, HOUR_LEVEL, (day + 1) * 24),
        ];
        for range in counts {
            for item in snapshot.range(&self.recent_counts, range) {
                prevalence += i64::from(u32_value("device count", &item.value()?)?);
            }
        }
        let hour_start = Timestamp(hour * TICKS_PER_HOUR);
        let hour_end = Timestamp((hour + 1) * TICKS_PER_HOUR);
        let count_devices = |from: Timestamp, to: Timestamp| -> Result<i64, StoreError> {
            let range = recent_device_key(id, tenant, from, 0)..recent_device_key(id, tenant, to, 0);
            let mut count = 0;
            for item in snapshot.range(&self.recent_devices, range) {
                item.key()?;
                count += 1;
            }
            Ok(count)
        };
        if since.0 - hour_start.0 <= hour_end.0 - since.0 {
            let whole = match snapshot.get(&self.recent_counts, count_key(id, tenant, HOUR_LEVEL, hour))? {
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
        for item in snapshot.prefix(&self.sightings, prefix) {
            let sighting = decode_sighting(&item.value()?)?;
            for name in sighting.names_since(since) {
                *names.entry(name.to_owned()).or_default() += 1;
            }
        }
        stats.top_file_names = fileintel_core::top_names(names.into_iter().collect(), TOP_FILE_NAMES);
        Ok(Some(stats))
    }
}

#[async_trait]
impl Store for FjallStore {
    async fn get_file(&self, hash: FileHash) -> Result<Option<FileRecord>, StoreError> {
        // A point lookup costs microseconds from the block cache: cheaper inline than a hop to
        // the blocking pool.
        self.inner.get_file(&hash)
    }

    async fn ingest(&self, observations: Vec<Observation>) -> Result<IngestOutcome, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.ingest_blocking(observations))
            .await
            .map_err(|error| StoreError::Backend(format!("ingest task: {error}")))?
    }

    async fn put_facts(&self, hashes: FileHashes, size: Option<u64>, facts: FileFacts) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = store.inner.writer.lock().map_err(|_| StoreError::Backend("writer poisoned".into()))?;
            store.inner.put_facts(&mut writer, &hashes, size, facts)
        })
        .await
        .map_err(|error| StoreError::Backend(format!("facts task: {error}")))?
    }

    async fn file_devices(&self, hash: FileHash, tenant: &str) -> Result<Vec<DeviceSighting>, StoreError> {
        self.inner.file_devices(&hash, tenant)
    }

    async fn file_stats(
        &self,
        hash: FileHash,
        tenant: &str,
        since: Timestamp,
    ) -> Result<Option<OrgFileStats>, StoreError> {
        self.inner.file_stats(&hash, tenant, since)
    }

    async fn put_verdicts(&self, verdicts: Vec<(FileHashes, Verdict)>) -> Result<u64, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.inner.put_verdicts(verdicts))
            .await
            .map_err(|error| StoreError::Backend(format!("verdict task: {error}")))?
    }

    async fn verdicts(&self, hashes: &FileHashes) -> Result<Vec<Verdict>, StoreError> {
        self.inner.verdicts(hashes)
    }

    async fn end_unlisted_verdicts(
        &self,
        source: &VerdictSource,
        listed: &std::collections::HashSet<FileHash>,
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        let _guard = self.inner.verdict_writes.lock().map_err(|_| StoreError::Backend("verdicts poisoned".into()))?;
        let source_key = source.key();
        let mut write = self.inner.db.batch().durability(Some(PersistMode::SyncAll));
        let mut ended = 0;
        // Verdicts are keyed by hash first: a source's are found by a pass over them all, which
        // a whole-feed import (itself a pass over the feed) can afford.
        for item in self.inner.verdicts.iter() {
            let (key, value) = item.into_inner()?;
            if !key.ends_with(source_key.as_bytes()) {
                continue;
            }
            let hash = export::verdict_key_hash(&key)?;
            if key.len() != 1 + hash.bytes().len() + source_key.len() || listed.contains(&hash) {
                continue;
            }
            let mut verdict: Verdict = decode("verdict", &value)?;
            if verdict.source != *source || verdict.valid_until.is_some_and(|until| until <= at) {
                continue;
            }
            verdict.valid_until = Some(at);
            write.insert(&self.inner.verdicts, key, encode(&verdict));
            ended += 1;
        }
        write.commit()?;
        Ok(ended)
    }

    async fn delete_verdict(&self, hashes: &FileHashes, source: &VerdictSource) -> Result<bool, StoreError> {
        let _guard = self.inner.verdict_writes.lock().map_err(|_| StoreError::Backend("verdicts poisoned".into()))?;
        let mut write = self.inner.db.batch().durability(Some(PersistMode::SyncAll));
        let mut found = false;
        for key in verdict_keys(hashes, source) {
            if self.inner.verdicts.get(&key)?.is_some() {
                found = true;
                write.remove(&self.inner.verdicts, key);
            }
        }
        write.commit()?;
        Ok(found)
    }

    async fn put_indicator(&self, indicator: Indicator) -> Result<Indicator, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.inner.put_indicator(indicator))
            .await
            .map_err(|error| StoreError::Backend(format!("indicator task: {error}")))?
    }

    async fn list_indicators(&self, tenant: &str) -> Result<Vec<Indicator>, StoreError> {
        if !keyable(&[tenant]) {
            return Ok(Vec::new());
        }
        let mut indicators = Vec::new();
        for item in self.inner.indicators.prefix(tenant_prefix(tenant)) {
            indicators.push(decode("indicator", &item.value()?)?);
        }
        Ok(indicators)
    }

    async fn delete_indicator(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let _guard = self.inner.verdict_writes.lock().map_err(|_| StoreError::Backend("verdicts poisoned".into()))?;
        let Ok(number) = id.parse::<u64>() else { return Ok(false) };
        if !keyable(&[tenant]) {
            return Ok(false);
        }
        let key = indicator_key(tenant, number);
        let Some(bytes) = self.inner.indicators.get(&key)? else { return Ok(false) };
        let indicator: Indicator = decode("indicator", &bytes)?;
        let mut write = self.inner.db.batch().durability(Some(PersistMode::SyncAll));
        write.remove(&self.inner.indicators, key);
        write.remove(&self.inner.indicators_by_value, indicator_value_key(&indicator));
        if let Ok(hash) = indicator.hash() {
            let source = VerdictSource::Indicator { tenant: tenant.to_owned(), id: indicator.id.clone() };
            for key in verdict_keys(&FileHashes::from(hash), &source) {
                write.remove(&self.inner.verdicts, key);
            }
        }
        write.commit()?;
        Ok(true)
    }

    async fn sweep(&self, now: Timestamp) -> Result<SweepReport, StoreError> {
        let store = self.clone();
        let removed = tokio::task::spawn_blocking(move || store.sweep_windows(now))
            .await
            .map_err(|error| StoreError::Backend(format!("sweep task: {error}")))??;
        Ok(SweepReport { removed })
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let files = self.inner.writer.lock().map_err(|_| StoreError::Backend("writer poisoned".into()))?.counters.files;
        Ok(StoreStats { files, disk_bytes: self.inner.db.disk_space()? })
    }

    async fn put_application(&self, application: Application) -> Result<(), StoreError> {
        check_keyable(&[("tenant", &application.tenant), ("clientId", &application.client_id)])?;
        let key = application_key(&application.tenant, &application.client_id);
        let mut write = self.inner.db.batch().durability(Some(PersistMode::SyncAll));
        write.insert(&self.inner.applications, key, encode(&application));
        write.commit()?;
        self.inner.identity_changed();
        Ok(())
    }

    async fn get_application(&self, tenant: &str, client_id: &str) -> Result<Option<Application>, StoreError> {
        if !keyable(&[tenant, client_id]) {
            return Ok(None);
        }
        let bytes = self.inner.applications.get(application_key(tenant, client_id))?;
        bytes.map(|bytes| decode("application", &bytes)).transpose()
    }

    async fn list_applications(&self) -> Result<Vec<Application>, StoreError> {
        let mut applications = Vec::new();
        for item in self.inner.applications.iter() {
            applications.push(decode("application", &item.value()?)?);
        }
        Ok(applications)
    }

    async fn delete_application(&self, tenant: &str, client_id: &str) -> Result<bool, StoreError> {
        if !keyable(&[tenant, client_id]) {
            return Ok(false);
        }
        let key = application_key(tenant, client_id);
        if self.inner.applications.get(&key)?.is_none() {
            return Ok(false);
        }
        let mut write = self.inner.db.batch().durability(Some(PersistMode::SyncAll));
        write.remove(&self.inner.applications, key);
        write.commit()?;
        self.inner.identity_changed();
        Ok(true)
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let mut keys = Vec::new();
        for item in self.inner.signing_keys.iter() {
            keys.push(decode("signing key", &item.value()?)?);
        }
        Ok(keys)
    }

    async fn put_user(&self, user: User) -> Result<(), StoreError> {
        check_keyable(&[("tenant", &user.tenant), ("upn", &user.upn), ("objectId", &user.object_id)])?;
        let upn = user.upn.to_lowercase();
        let mut write = self.inner.db.batch().durability(Some(PersistMode::SyncAll));
        if let Some(previous) = self.get_user(&user.tenant, &upn).await?
            && previous.object_id != user.object_id
        {
            write.remove(&self.inner.users_by_oid, application_key(&user.tenant, &previous.object_id));
        }
        write.insert(
            &self.inner.users_by_oid,
            application_key(&user.tenant, &user.object_id),
            upn.clone().into_bytes(),
        );
        write.insert(&self.inner.users, application_key(&user.tenant, &upn), encode(&user));
        write.commit()?;
        self.inner.identity_changed();
        Ok(())
    }

    async fn get_user(&self, tenant: &str, upn: &str) -> Result<Option<User>, StoreError> {
        if !keyable(&[tenant, upn]) {
            return Ok(None);
        }
        let bytes = self.inner.users.get(application_key(tenant, &upn.to_lowercase()))?;
        bytes.map(|bytes| decode("user", &bytes)).transpose()
    }

    async fn get_user_by_object_id(&self, tenant: &str, object_id: &str) -> Result<Option<User>, StoreError> {
        if !keyable(&[tenant, object_id]) {
            return Ok(None);
        }
        match self.inner.users_by_oid.get(application_key(tenant, object_id))? {
            Some(upn) => self.get_user(tenant, &String::from_utf8_lossy(&upn)).await,
            None => Ok(None),
        }
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut users = Vec::new();
        for item in self.inner.users.iter() {
            users.push(decode("user", &item.value()?)?);
        }
        Ok(users)
    }

    async fn delete_user(&self, tenant: &str, upn: &str) -> Result<bool, StoreError> {
        let Some(user) = self.get_user(tenant, upn).await? else { return Ok(false) };
        let mut write = self.inner.db.batch().durability(Some(PersistMode::SyncAll));
        write.remove(&self.inner.users, application_key(tenant, &user.upn.to_lowercase()));
        write.remove(&self.inner.users_by_oid, application_key(tenant, &user.object_id));
        write.commit()?;
        self.inner.identity_changed();
        Ok(true)
    }

    async fn identity_generation(&self) -> Result<u64, StoreError> {
        Ok(self.inner.identity_generation.load(std::sync::atomic::Ordering::Acquire))
    }

    async fn add_signing_key(&self, key: SigningKey) -> Result<(), StoreError> {
        // Keys are kept in the order they were added, whatever the clock says: the last is the
        // newest, even if the clock stepped back between two rotations.
        let last = match self.inner.signing_keys.last_key_value() {
            Some(item) => u64_value("signing key id", &item.key()?)?,
            None => 0,
        };
        let id = (last + 1).to_be_bytes().to_vec();
        let mut write = self.inner.db.batch().durability(Some(PersistMode::SyncAll));
        write.insert(&self.inner.signing_keys, id, encode(&key));
        Ok(write.commit()?)
    }
}

fn tenant_prefix(tenant: &str) -> Vec<u8> {
    [tenant.as_bytes(), &[0]].concat()
}

fn indicator_key(tenant: &str, number: u64) -> Vec<u8> {
    [tenant_prefix(tenant), format!("{number:020}").into_bytes()].concat()
}

/// The `meta` key of a tenant's last indicator id.
fn indicator_counter_key(tenant: &str) -> Vec<u8> {
    [b"indicator_seq\0".as_slice(), tenant.as_bytes()].concat()
}

fn indicator_value_key(indicator: &Indicator) -> Vec<u8> {
    [
        tenant_prefix(&indicator.tenant),
        indicator.indicator_type.as_bytes().to_vec(),
        vec![0],
        indicator.indicator_value.to_ascii_lowercase().into_bytes(),
    ]
    .concat()
}

/// The prefixes under which verdicts about a file with these hashes are kept.
fn verdict_prefixes(hashes: &FileHashes) -> Vec<Vec<u8>> {
    let mut prefixes = Vec::new();
    if let Some(md5) = hashes.md5 {
        prefixes.push([&[0u8][..], &md5.0].concat());
    }
    if let Some(sha1) = hashes.sha1 {
        prefixes.push([&[1u8][..], &sha1.0].concat());
    }
    if let Some(sha256) = hashes.sha256 {
        prefixes.push([&[2u8][..], &sha256.0].concat());
    }
    prefixes
}

fn verdict_keys(hashes: &FileHashes, source: &VerdictSource) -> Vec<Vec<u8>> {
    let source = source.key();
    verdict_prefixes(hashes).into_iter().map(|prefix| [prefix, source.as_bytes().to_vec()].concat()).collect()
}

impl Inner {
    /// Moves [`Store::identity_generation`] on, after an identity write has committed.
    fn identity_changed(&self) {
        self.identity_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn put_indicator(&self, mut indicator: Indicator) -> Result<Indicator, StoreError> {
        let _guard = self.verdict_writes.lock().map_err(|_| StoreError::Backend("verdicts poisoned".into()))?;
        let value_key = indicator_value_key(&indicator);
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        match self.indicators_by_value.get(&value_key)? {
            Some(id) => {
                let id = String::from_utf8_lossy(&id).into_owned();
                let number: u64 = id.parse().map_err(|_| StoreError::Corrupt(format!("indicator id {id}")))?;
                if let Some(bytes) = self.indicators.get(indicator_key(&indicator.tenant, number))? {
                    let previous: Indicator = decode("indicator", &bytes)?;
                    indicator.creation_time = previous.creation_time;
                    indicator.created_by = previous.created_by;
                }
                indicator.id = id;
            }
            None => {
                // Each tenant numbers its own, so an id tells nothing of other tenants'. A store
                // from before kept one count for all tenants: a tenant's own count starts past
                // it, so no id it ever gave out is given again.
                let counter = indicator_counter_key(&indicator.tenant);
                let last = match self.meta.get(&counter)? {
                    Some(bytes) => decode::<u64>("indicator counter", &bytes)?,
                    None => match self.meta.get("indicator_seq")? {
                        Some(bytes) => decode::<u64>("indicator sequence", &bytes)?,
                        None => 0,
                    },
                };
                let next = last + 1;
                write.insert(&self.meta, counter, encode(&next));
                indicator.id = next.to_string();
                write.insert(&self.indicators_by_value, value_key, indicator.id.clone().into_bytes());
            }
        }
        let number: u64 = indicator.id.parse().unwrap_or_default();
        write.insert(&self.indicators, indicator_key(&indicator.tenant, number), encode(&indicator));
        let source = VerdictSource::Indicator { tenant: indicator.tenant.clone(), id: indicator.id.clone() };
        match indicator.verdict() {
            Some((hashes, verdict)) => {
                for key in verdict_keys(&hashes, &source) {
                    write.insert(&self.verdicts, key, encode(&verdict));
                }
                self.has_verdicts.store(true, std::sync::atomic::Ordering::Release);
            }
            None => {
                if let Ok(hash) = indicator.hash() {
                    for key in verdict_keys(&FileHashes::from(hash), &source) {
                        write.remove(&self.verdicts, key);
                    }
                }
            }
        }
        write.commit()?;
        Ok(indicator)
    }

    fn put_verdicts(&self, verdicts: Vec<(FileHashes, Verdict)>) -> Result<u64, StoreError> {
        let _guard = self.verdict_writes.lock().map_err(|_| StoreError::Backend("verdicts poisoned".into()))?;
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        // Later statements in the same call compete with earlier ones as with stored ones.
        let mut pending: ahash::AHashMap<Vec<u8>, Verdict> = ahash::AHashMap::new();
        let mut changed = 0;
        for (hashes, verdict) in verdicts {
            let mut wrote = false;
            for key in verdict_keys(&hashes, &verdict.source) {
                let stored = match pending.get(&key) {
                    Some(verdict) => Some(verdict.clone()),
                    None => self.verdicts.get(&key)?.map(|bytes| decode::<Verdict>("verdict", &bytes)).transpose()?,
                };
                if stored.as_ref().is_some_and(|stored| !verdict.supersedes(stored) || *stored == verdict) {
                    continue;
                }
                write.insert(&self.verdicts, key.clone(), encode(&verdict));
                pending.insert(key, verdict.clone());
                wrote = true;
            }
            changed += u64::from(wrote);
        }
        write.commit()?;
        if changed > 0 {
            self.has_verdicts.store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(changed)
    }

    fn verdicts(&self, hashes: &FileHashes) -> Result<Vec<Verdict>, StoreError> {
        if !self.has_verdicts.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(Vec::new());
        }
        let mut by_source: std::collections::BTreeMap<String, Verdict> = std::collections::BTreeMap::new();
        for prefix in verdict_prefixes(hashes) {
            for item in self.verdicts.prefix(&prefix) {
                let verdict: Verdict = decode("verdict", &item.value()?)?;
                let key = verdict.source.key();
                if by_source.get(&key).is_none_or(|known| verdict.said_at > known.said_at) {
                    by_source.insert(key, verdict);
                }
            }
        }
        Ok(by_source.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> (FjallStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (FjallStore::open(dir.path()).unwrap(), dir)
    }

    crate::contract_suite!(fresh);

    #[test]
    fn only_a_directory_made_too_open_by_somebody_else_is_warned_about() {
        assert_eq!(tightening(true, 0o40700), Tightening::None, "a fresh directory, as asked");
        assert_eq!(tightening(true, 0o40500), Tightening::Quietly, "a fresh one the umask changed");
        assert_eq!(tightening(false, 0o40755), Tightening::Warn);
        assert_eq!(tightening(false, 0o40770), Tightening::Warn);
        assert_eq!(tightening(false, 0o40700), Tightening::None);
    }

    #[cfg(unix)]
    #[test]
    fn the_data_directory_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let fresh = parent.path().join("fresh");
        drop(FjallStore::open(&fresh).unwrap());
        assert_eq!(mode(&fresh), 0o700);
        let nested = parent.path().join("made").join("here");
        create_private_dir(&nested).unwrap();
        assert_eq!((mode(&nested), mode(nested.parent().unwrap())), (0o700, 0o700));
        let existing = parent.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(FjallStore::open(&existing).unwrap());
        assert_eq!(mode(&existing), 0o700);
    }

    fn now() -> Timestamp {
        Timestamp((std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() / 100) as i64)
    }

    /// Device `device` of tenant `t` saw file `n` (by SHA-1) `hours_ago` before `now`, as `name`.
    fn seen_ago(now: Timestamp, device: &str, hours_ago: i64, n: u8, name: &str) -> Observation {
        Observation {
            tenant_id: "t".into(),
            device_id: device.into(),
            device_name: None,
            timestamp: Timestamp(now.0 - hours_ago * TICKS_PER_HOUR),
            hashes: FileHashes { sha1: Some(fileintel_core::Sha1([n; 20])), ..Default::default() },
            size: None,
            file_name: Some(name.into()),
            folder_path: None,
            os_platform: None,
            reported: None,
        }
    }

    #[tokio::test]
    async fn verdicts_are_found_after_reopening() {
        use fileintel_core::{DeterminationType, Verdict, VerdictSource};
        let dir = tempfile::tempdir().unwrap();
        let hashes = FileHashes { sha1: Some(fileintel_core::Sha1([9; 20])), ..FileHashes::default() };
        let verdict = Verdict {
            source: VerdictSource::Feed { name: "bazaar".into() },
            determination_type: DeterminationType::Malware,
            determination_value: Some("Emotet".into()),
            rank: 1,
            said_at: None,
            valid_from: None,
            valid_until: None,
            revoked: false,
            reference: None,
        };
        {
            let store = FjallStore::open(dir.path()).unwrap();
            assert!(store.verdicts(&hashes).await.unwrap().is_empty());
            store.put_verdicts(vec![(hashes, verdict.clone())]).await.unwrap();
        }
        let store = FjallStore::open(dir.path()).unwrap();
        assert_eq!(store.verdicts(&hashes).await.unwrap(), vec![verdict], "a reopened store knows it has verdicts");
    }

    #[tokio::test]
    async fn sweeping_removes_only_what_no_window_can_reach() {
        let (store, _dir) = fresh().await;
        let hour = TICKS_PER_HOUR;
        let now = now();
        let hash = fileintel_core::Sha1([7; 20]);
        let seen = |device: &str, hours_ago: i64| seen_ago(now, device, hours_ago, 7, "x.exe");
        store.ingest(vec![seen("old", 700), seen("new", 10)]).await.unwrap();
        let count = |keyspace: &Keyspace| keyspace.iter().count();
        assert_eq!(
            (count(&store.inner.recent_times), count(&store.inner.recent_devices), count(&store.inner.recent_counts)),
            (2, 2, 4),
            "an hour and a day counter each"
        );
        // Nothing is out of reach yet.
        assert_eq!(store.sweep(now).await.unwrap().removed, 0);
        // A hundred hours on, "old" (800 hours back) is out of every window; "new" is not.
        let later = Timestamp(now.0 + 100 * hour);
        assert_eq!(store.sweep(later).await.unwrap().removed, 4);
        assert_eq!(
            (count(&store.inner.recent_times), count(&store.inner.recent_devices), count(&store.inner.recent_counts)),
            (1, 1, 2)
        );
        let stats =
            store.file_stats(FileHash::Sha1(hash), "t", Timestamp(later.0 - 720 * hour)).await.unwrap().unwrap();
        assert_eq!((stats.prevalence, stats.first_seen), (1, Some(Timestamp(now.0 - 10 * hour))));
        assert_eq!(stats.record.global_prevalence, 2, "sightings themselves stay");
    }

    #[tokio::test]
    async fn a_store_written_by_version_1_gets_its_windows_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        let hour = TICKS_PER_HOUR;
        let now = now();
        let hash = fileintel_core::Sha1([8; 20]);
        let seen = |device: &str, hours_ago: i64, name: &str| seen_ago(now, device, hours_ago, 8, name);
        store.ingest(vec![seen("a", 10, "x.exe"), seen("b", 30, "x.exe"), seen("c", 900, "y.exe")]).await.unwrap();
        let since = Timestamp(now.0 - 720 * hour);
        let expected = store.file_stats(FileHash::Sha1(hash), "t", since).await.unwrap().unwrap();
        assert_eq!(expected.prevalence, 2);

        // Turn the store back into what version 1 wrote: no window entries, version 1 values.
        let inner = &store.inner;
        let mut write = inner.db.batch();
        for keyspace in [&inner.recent_times, &inner.recent_devices, &inner.recent_counts, &inner.file_names] {
            for item in keyspace.iter() {
                write.remove(keyspace, item.key().unwrap().to_vec());
            }
        }
        for item in inner.sightings.iter() {
            let (key, value) = item.into_inner().unwrap();
            let sighting = decode_sighting(&value).unwrap();
            let mut old = vec![1u8];
            old.extend(postcard::to_stdvec(&(sighting.first, sighting.last, sighting.file_name)).unwrap());
            write.insert(&inner.sightings, key.to_vec(), old);
        }
        let counters = inner.writer.lock().unwrap().counters;
        let mut old = vec![1u8];
        old.extend(postcard::to_stdvec(&counters).unwrap());
        write.insert(&inner.meta, b"counters".to_vec(), old);
        write.commit().unwrap();
        drop(store);

        let store = FjallStore::open(dir.path()).unwrap();
        let rebuilt = store.file_stats(FileHash::Sha1(hash), "t", since).await.unwrap().unwrap();
        assert_eq!(rebuilt, expected);
        assert_eq!(store.inner.meta.get("counters").unwrap().unwrap()[0], SCHEMA_VERSION, "done once");
        // And it counts on from there.
        store.ingest(vec![seen("b", 1, "x.exe")]).await.unwrap();
        let later = store.file_stats(FileHash::Sha1(hash), "t", Timestamp(now.0 - 5 * hour)).await.unwrap().unwrap();
        assert_eq!(later.prevalence, 1);
    }

    #[test]
    fn a_second_process_is_told_who_holds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        store.describe_holder("fileintel serve (pid 1) on http://127.0.0.1:1").unwrap();
        // Locks are per open file description, so a second open in this process is refused like another process.
        let Err(StoreError::Busy(message)) = FjallStore::open(dir.path()) else { panic!("the second open succeeded") };
        assert!(message.contains("http://127.0.0.1:1"), "{message}");
        drop(store);
        FjallStore::open(dir.path()).unwrap();
    }
}
