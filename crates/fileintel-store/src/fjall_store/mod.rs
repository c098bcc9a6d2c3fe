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
//! | `sightings`   | file id, tenant id, device number     | `Sighting`: first, last, file name     |
//! | `applications`| tenant, 0, client id                  | `Application` (secret as argon2id)     |
//! | `users`       | tenant, 0, lower-cased sign-in name   | `User` (password as argon2id)          |
//! | `users_by_oid`| tenant, 0, object id                  | lower-cased sign-in name               |
//! | `signing_keys`| sequence number (u64)                 | `SigningKey`, in the order added       |
//! | `meta`        | name                                  | counters and the schema version        |
//!
//! Indexes point at a compact internal file id rather than at a full hash, and sightings key on
//! numbers rather than names, so the per-observation rows stay small.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fileintel_core::{
    Application, FileFacts, FileHash, FileHashes, FileRecord, Observation, SigningKey, Timestamp, User,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};

use crate::{DeviceSighting, IngestOutcome, Store, StoreError, StoreStats};

mod writer;

const SCHEMA_VERSION: u8 = 1;
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
        Some((&SCHEMA_VERSION, rest)) => postcard::from_bytes(rest).map_err(|error| corrupt(what, error)),
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeviceInfo {
    tenant: u32,
    device_id: String,
    device_name: Option<String>,
}

/// One device's sightings of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sighting {
    first: Timestamp,
    last: Timestamp,
    /// The file name from the latest observation.
    file_name: Option<String>,
}

impl Sighting {
    fn merge(&mut self, other: Sighting) {
        self.first = self.first.min(other.first);
        if other.last >= self.last {
            self.last = other.last;
            if other.file_name.is_some() {
                self.file_name = other.file_name;
            }
        }
    }
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
    /// Tenant, a zero byte, client id → `Application`.
    applications: Keyspace,
    /// Sequence number (big-endian) → `SigningKey`: iterating yields them in the order added.
    signing_keys: Keyspace,
    /// Tenant, a zero byte, lower-cased sign-in name → `User`.
    users: Keyspace,
    /// Tenant, a zero byte, object id → lower-cased sign-in name.
    users_by_oid: Keyspace,
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
        let counters = match meta.get("counters")? {
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
            applications: keyspace("applications")?,
            signing_keys: keyspace("signing_keys")?,
            users: keyspace("users")?,
            users_by_oid: keyspace("users_by_oid")?,
            meta,
            db,
            writer: Mutex::new(Writer { counters, tenants: HashMap::new(), devices: HashMap::new() }),
            lock: Mutex::new(lock),
        };
        let store = FjallStore { inner: Arc::new(inner) };
        // What the journal replayed sits in memtables, whose skiplist lookups cost several times
        // a lookup in a table on disk: write it out before serving.
        store.flush()?;
        Ok(store)
    }

    /// Writes every memtable out to tables on disk and lets the journal go. The data was durable
    /// before; this makes lookups cheaper and the directory smaller.
    pub fn flush(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        for keyspace in [
            &inner.files,
            &inner.by_sha1,
            &inner.by_sha256,
            &inner.by_md5,
            &inner.tenants,
            &inner.devices,
            &inner.device_info,
            &inner.sightings,
            &inner.applications,
            &inner.signing_keys,
            &inner.users,
            &inner.users_by_oid,
            &inner.meta,
        ] {
            keyspace.rotate_memtable_and_wait()?;
        }
        Ok(())
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

/// Creates the data directory, or tightens an existing one, so that only its owner can read it:
/// it holds the token signing keys and the password hashes.
fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    let failed = |error: std::io::Error| StoreError::Backend(format!("preparing {}: {error}", path.display()));
    std::fs::create_dir_all(path).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(failed)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
            tracing::warn!(path = %path.display(), was = format!("{:o}", mode & 0o777), "made the data directory readable by its owner only");
        }
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
            Some(bytes) => decode("file record", &bytes),
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
        let Some(tenant) = self.tenants.get(tenant)? else {
            return Ok(Vec::new());
        };
        let mut prefix = id.to_be_bytes().to_vec();
        prefix.extend_from_slice(&tenant);
        let mut devices = Vec::new();
        for item in self.sightings.prefix(prefix) {
            let (key, value) = item.into_inner()?;
            let sighting: Sighting = decode("sighting", &value)?;
            let number = u32_value("sighting key", &key[12..])?;
            let info: DeviceInfo = match self.device_info.get(number.to_be_bytes())? {
                Some(bytes) => decode("device info", &bytes)?,
                None => return Err(corrupt("device info", format!("missing device {number}"))),
            };
            devices.push(DeviceSighting {
                device_id: info.device_id,
                device_name: info.device_name,
                first_seen: sighting.first,
                last_seen: sighting.last,
                file_name: sighting.file_name,
            });
        }
        Ok(devices)
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

    async fn put_facts(&self, hashes: FileHashes, facts: FileFacts) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = store.inner.writer.lock().map_err(|_| StoreError::Backend("writer poisoned".into()))?;
            store.inner.put_facts(&mut writer, &hashes, facts)
        })
        .await
        .map_err(|error| StoreError::Backend(format!("facts task: {error}")))?
    }

    async fn file_devices(&self, hash: FileHash, tenant: &str) -> Result<Vec<DeviceSighting>, StoreError> {
        self.inner.file_devices(&hash, tenant)
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let files = self.inner.writer.lock().map_err(|_| StoreError::Backend("writer poisoned".into()))?.counters.files;
        Ok(StoreStats { files, disk_bytes: self.inner.db.disk_space()? })
    }

    async fn put_application(&self, application: Application) -> Result<(), StoreError> {
        let key = application_key(&application.tenant, &application.client_id);
        let mut write = self.inner.db.batch().durability(Some(PersistMode::SyncAll));
        write.insert(&self.inner.applications, key, encode(&application));
        Ok(write.commit()?)
    }

    async fn get_application(&self, tenant: &str, client_id: &str) -> Result<Option<Application>, StoreError> {
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
        let key = application_key(tenant, client_id);
        if self.inner.applications.get(&key)?.is_none() {
            return Ok(false);
        }
        let mut write = self.inner.db.batch().durability(Some(PersistMode::SyncAll));
        write.remove(&self.inner.applications, key);
        write.commit()?;
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
        Ok(write.commit()?)
    }

    async fn get_user(&self, tenant: &str, upn: &str) -> Result<Option<User>, StoreError> {
        let bytes = self.inner.users.get(application_key(tenant, &upn.to_lowercase()))?;
        bytes.map(|bytes| decode("user", &bytes)).transpose()
    }

    async fn get_user_by_object_id(&self, tenant: &str, object_id: &str) -> Result<Option<User>, StoreError> {
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
        Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> (FjallStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (FjallStore::open(dir.path()).unwrap(), dir)
    }

    crate::contract_suite!(fresh);

    #[cfg(unix)]
    #[test]
    fn the_data_directory_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let fresh = parent.path().join("fresh");
        drop(FjallStore::open(&fresh).unwrap());
        assert_eq!(mode(&fresh), 0o700);
        let existing = parent.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(FjallStore::open(&existing).unwrap());
        assert_eq!(mode(&existing), 0o700);
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
