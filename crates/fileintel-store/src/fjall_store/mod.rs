//! The embedded backend: fjall, an LSM tree, with one writer and atomic cross-keyspace batches.
//!
//! Layout: the table of [`Keyspaces`] below, each with its key and value (keys are spelled in
//! `keys`, values in `codec`). Indexes point at a compact internal file id rather than at a full
//! hash, and sightings key on numbers rather than names, so the per-observation rows stay small.
//!
//! The `recent_*` keyspaces answer `/stats` for any look-back window of up to
//! [`MAX_LOOKBACK_HOURS`](fileintel_core::MAX_LOOKBACK_HOURS) without visiting every device: they
//! hold only times within [`WINDOW_HORIZON_HOURS`](fileintel_core::WINDOW_HORIZON_HOURS) of the
//! moment they were written (older ones can never fall inside a window again). An entry that has
//! since aged out may linger until it is swept (`Store::sweep`), but always
//! together with its hour and day counts, so counts taken over a window stay exact.
//!
//! The modules: `open` (directory, lock, keyspaces), `codec` (values and their versions), `keys`,
//! `reads` (lookups), `windows` (`/stats` and the sweep), `writer` (ingest, facts, links),
//! `verdicts` (verdicts and indicators), `identity` (applications, users, signing keys) and
//! `export` (reading everything back out, for a migration).

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use fileintel_core::{
    Application, FileFacts, FileHash, FileHashes, FileRecord, Indicator, Observation, Sighting, SigningKey, Timestamp,
    User, Verdict, VerdictSource,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use serde::{Deserialize, Serialize};

use crate::{DeviceSighting, IngestOutcome, OrgFileStats, Store, StoreError, StoreStats, SweepReport};

mod codec;
mod export;
mod identity;
mod keys;
mod open;
mod reads;
mod verdicts;
mod windows;
mod writer;

pub use export::ExportedFile;
pub use open::{DEFAULT_CACHE_BYTES, create_private_dir};

/// Bounds the writer's device cache; past it the cache starts over (lookups then hit the store).
const DEVICE_CACHE_LIMIT: usize = 262_144;

/// What point reads of a keyspace find, which decides whether its last level keeps bloom filters.
#[derive(Clone, Copy)]
enum Reads {
    /// Reads may look for a key that is not there: filters save a block read each.
    MayMiss,
    /// Reads follow an index hit and always find their key, so the last level's filters would
    /// only cost bytes.
    AlwaysHit,
}

impl Reads {
    fn options(self) -> KeyspaceCreateOptions {
        KeyspaceCreateOptions::default().expect_point_read_hits(matches!(self, Reads::AlwaysHit))
    }
}

/// Declares the keyspaces once: the struct that holds them, opening them all and listing them
/// all are made from the one table, so a keyspace cannot be opened and then left out of a pass
/// over every keyspace ([`FjallStore::flush`]).
macro_rules! keyspaces {
    ($($(#[doc = $doc:literal])* $name:ident: $reads:ident,)*) => {
        /// Every keyspace of the store, named as fjall knows it.
        struct Keyspaces {
            $($(#[doc = $doc])* $name: Keyspace,)*
        }

        impl Keyspaces {
            fn open(db: &Database) -> Result<Self, StoreError> {
                Ok(Keyspaces { $($name: db.keyspace(stringify!($name), || Reads::$reads.options())?,)* })
            }

            /// Every keyspace, in the table's order.
            fn all(&self) -> Vec<&Keyspace> {
                vec![$(&self.$name),*]
            }
        }
    };
}

// Every integer in a key is big-endian, so keys sort numerically.
keyspaces! {
    /// File id (u64) → `FileRecord`, with each tenant's row (`TenantFile`).
    files: AlwaysHit,
    /// SHA-1 (20 bytes) → file id.
    by_sha1: MayMiss,
    /// SHA-256 (32 bytes) → file id.
    by_sha256: MayMiss,
    /// MD5 (16 bytes) → file id.
    by_md5: MayMiss,
    /// Tenant name → tenant id (u32).
    tenants: MayMiss,
    /// Tenant id, device id text → device number (u32).
    devices: MayMiss,
    /// Device number → `DeviceInfo`.
    device_info: AlwaysHit,
    /// File id, tenant id, device number → `Sighting`: first, last, file names.
    sightings: MayMiss,
    /// File id, tenant id, time → nothing: one per distinct observation time within the horizon.
    recent_times: MayMiss,
    /// File id, tenant id, last seen, device number → nothing: each device at its last sighting.
    recent_devices: MayMiss,
    /// File id, tenant id, 0 and the hour, or 1 and the day, of a last sighting → devices whose
    /// last sighting is in that hour, or day (u32).
    recent_counts: MayMiss,
    /// File id, tenant id, file name → devices that saw the file under that name (u32).
    file_names: MayMiss,
    /// Tenant, a zero byte, client id → `Application` (its secret as argon2id).
    applications: MayMiss,
    /// Sequence number (u64) → `SigningKey`: iterating yields them in the order added.
    signing_keys: MayMiss,
    /// Tenant, a zero byte, lower-cased sign-in name → `User` (its password as argon2id).
    users: MayMiss,
    /// Tenant, a zero byte, object id → lower-cased sign-in name.
    users_by_oid: MayMiss,
    /// Hash kind (0 MD5, 1 SHA-1, 2 SHA-256), the hash, the source key → `Verdict`.
    verdicts: MayMiss,
    /// Tenant, a zero byte, the id as 20 decimal digits → `Indicator`.
    indicators: MayMiss,
    /// Tenant, a zero byte, indicator type, a zero byte, lower-cased value → indicator id.
    indicators_by_value: MayMiss,
    /// Name → the writer's counters, each tenant's last indicator id, and the schema version.
    meta: MayMiss,
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
    /// The same tenants, by id.
    tenant_names: HashMap<u32, String>,
    devices: HashMap<(u32, String), (u32, Option<String>)>,
}

struct Inner {
    db: Database,
    keyspaces: Keyspaces,
    /// Held while verdicts are compared and written, so two imports cannot interleave there.
    verdict_writes: Mutex<()>,
    /// Whether any verdict was ever stored: until one is, lookups skip the verdict scans.
    has_verdicts: std::sync::atomic::AtomicBool,
    /// [`Store::identity_generation`]: in memory, since only this process uses the store and
    /// every cache it is compared against lives in this process too.
    identity_generation: std::sync::atomic::AtomicU64,
    writer: Mutex<Writer>,
    lock: Mutex<File>,
}

impl Inner {
    fn writer(&self) -> Result<MutexGuard<'_, Writer>, StoreError> {
        self.writer.lock().map_err(|_| StoreError::Backend("writer poisoned".into()))
    }

    fn verdict_writes(&self) -> Result<MutexGuard<'_, ()>, StoreError> {
        self.verdict_writes.lock().map_err(|_| StoreError::Backend("verdicts poisoned".into()))
    }
}

/// The embedded store: one directory, one process at a time (a lock file says who holds it).
#[derive(Clone)]
pub struct FjallStore {
    inner: Arc<Inner>,
}

impl FjallStore {
    /// Writes every memtable out to tables on disk and lets the journal go. The data was durable
    /// before; this makes lookups cheaper and the directory smaller.
    pub fn flush(&self) -> Result<(), StoreError> {
        let keyspaces = self.inner.keyspaces.all();
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

    /// Ingests on the calling thread; [`Store::ingest`] runs this on tokio's blocking pool.
    pub fn ingest_blocking(&self, observations: Vec<Observation>) -> Result<IngestOutcome, StoreError> {
        self.inner.ingest(&mut *self.inner.writer()?, observations)
    }

    /// Runs `work` on tokio's blocking pool: for what writes (and so may wait for an fsync) or
    /// reads much. `what` names it if the task fails.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce(&FjallStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|error| StoreError::Backend(format!("{what} task: {error}")))?
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
        self.blocking("ingest", move |store| store.ingest_blocking(observations)).await
    }

    async fn put_facts(&self, hashes: FileHashes, size: Option<u64>, facts: FileFacts) -> Result<(), StoreError> {
        self.blocking("facts", move |store| store.inner.put_facts(&mut *store.inner.writer()?, &hashes, size, facts))
            .await
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
        self.blocking("verdict", move |store| store.inner.put_verdicts(verdicts)).await
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
        self.inner.end_unlisted_verdicts(source, listed, at)
    }

    async fn delete_verdict(&self, hashes: &FileHashes, source: &VerdictSource) -> Result<bool, StoreError> {
        self.inner.delete_verdict(hashes, source)
    }

    async fn put_indicator(&self, indicator: Indicator) -> Result<Indicator, StoreError> {
        self.blocking("indicator", move |store| store.inner.put_indicator(indicator)).await
    }

    async fn list_indicators(&self, tenant: &str) -> Result<Vec<Indicator>, StoreError> {
        self.inner.list_indicators(tenant)
    }

    async fn delete_indicator(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_indicator(tenant, id)
    }

    async fn sweep(&self, now: Timestamp) -> Result<SweepReport, StoreError> {
        let removed = self.blocking("sweep", move |store| store.sweep_windows(now)).await?;
        Ok(SweepReport { removed })
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let files = self.inner.writer()?.counters.files;
        Ok(StoreStats { files, disk_bytes: self.inner.db.disk_space()? })
    }

    async fn put_application(&self, application: Application) -> Result<(), StoreError> {
        self.inner.put_application(application)
    }

    async fn get_application(&self, tenant: &str, client_id: &str) -> Result<Option<Application>, StoreError> {
        self.inner.get_application(tenant, client_id)
    }

    async fn list_applications(&self) -> Result<Vec<Application>, StoreError> {
        self.inner.list_applications()
    }

    async fn delete_application(&self, tenant: &str, client_id: &str) -> Result<bool, StoreError> {
        self.inner.delete_application(tenant, client_id)
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        self.inner.signing_keys()
    }

    async fn add_signing_key(&self, key: SigningKey) -> Result<(), StoreError> {
        self.inner.add_signing_key(key)
    }

    async fn put_user(&self, user: User) -> Result<(), StoreError> {
        self.inner.put_user(user)
    }

    async fn get_user(&self, tenant: &str, upn: &str) -> Result<Option<User>, StoreError> {
        self.inner.get_user(tenant, upn)
    }

    async fn get_user_by_object_id(&self, tenant: &str, object_id: &str) -> Result<Option<User>, StoreError> {
        self.inner.get_user_by_object_id(tenant, object_id)
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.inner.list_users()
    }

    async fn delete_user(&self, tenant: &str, upn: &str) -> Result<bool, StoreError> {
        self.inner.delete_user(tenant, upn)
    }

    async fn identity_generation(&self) -> Result<u64, StoreError> {
        Ok(self.inner.identity_generation.load(std::sync::atomic::Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::codec::{SCHEMA_VERSION, decode_sighting};
    use super::*;
    use fileintel_core::TICKS_PER_HOUR;

    async fn fresh() -> (FjallStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (FjallStore::open(dir.path()).unwrap(), dir)
    }

    crate::contract_suite!(fresh);

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
    async fn flushing_writes_indicators_and_their_verdicts_out_of_memory_too() {
        let (store, _dir) = fresh().await;
        let indicator = Indicator {
            tenant: "contoso".into(),
            id: String::new(),
            indicator_value: fileintel_core::Sha1([4; 20]).to_string(),
            indicator_type: "FileSha1".into(),
            action: "Block".into(),
            title: "analyst said".into(),
            description: "why".into(),
            severity: None,
            application: None,
            recommended_actions: None,
            rbac_group_names: Vec::new(),
            generate_alert: None,
            external_id: None,
            expiration_time: None,
            created_by: "app-1".into(),
            creation_time: Timestamp::now(),
            last_update_time: Timestamp::now(),
            last_updated_by: None,
        };
        // One commit that writes an indicator, its value's entry, its verdict and its counter.
        store.put_indicator(indicator).await.unwrap();
        let keyspaces = &store.inner.keyspaces;
        let on_disk = [&keyspaces.indicators, &keyspaces.indicators_by_value, &keyspaces.verdicts, &keyspaces.meta]
            .map(|keyspace| keyspace.table_count());
        assert_eq!(on_disk, [0; 4], "written to memtables and the journal only");
        store.flush().unwrap();
        let on_disk = [&keyspaces.indicators, &keyspaces.indicators_by_value, &keyspaces.verdicts, &keyspaces.meta]
            .map(|keyspace| keyspace.table_count());
        assert_eq!(on_disk, [1; 4], "each written out to a table");
    }

    #[tokio::test]
    async fn sweeping_removes_only_what_no_window_can_reach() {
        let (store, _dir) = fresh().await;
        let hour = TICKS_PER_HOUR;
        let now = Timestamp::now();
        let hash = fileintel_core::Sha1([7; 20]);
        let seen = |device: &str, hours_ago: i64| seen_ago(now, device, hours_ago, 7, "x.exe");
        store.ingest(vec![seen("old", 700), seen("new", 10)]).await.unwrap();
        let count = |keyspace: &Keyspace| keyspace.iter().count();
        assert_eq!(
            (
                count(&store.inner.keyspaces.recent_times),
                count(&store.inner.keyspaces.recent_devices),
                count(&store.inner.keyspaces.recent_counts)
            ),
            (2, 2, 4),
            "an hour and a day counter each"
        );
        // Nothing is out of reach yet.
        assert_eq!(store.sweep(now).await.unwrap().removed, 0);
        // A hundred hours on, "old" (800 hours back) is out of every window; "new" is not.
        let later = Timestamp(now.0 + 100 * hour);
        assert_eq!(store.sweep(later).await.unwrap().removed, 4);
        assert_eq!(
            (
                count(&store.inner.keyspaces.recent_times),
                count(&store.inner.keyspaces.recent_devices),
                count(&store.inner.keyspaces.recent_counts)
            ),
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
        let now = Timestamp::now();
        let hash = fileintel_core::Sha1([8; 20]);
        let seen = |device: &str, hours_ago: i64, name: &str| seen_ago(now, device, hours_ago, 8, name);
        store.ingest(vec![seen("a", 10, "x.exe"), seen("b", 30, "x.exe"), seen("c", 900, "y.exe")]).await.unwrap();
        let since = Timestamp(now.0 - 720 * hour);
        let expected = store.file_stats(FileHash::Sha1(hash), "t", since).await.unwrap().unwrap();
        assert_eq!(expected.prevalence, 2);

        // Turn the store back into what version 1 wrote: no window entries, version 1 values.
        let inner = &store.inner;
        let mut write = inner.db.batch();
        for keyspace in [
            &inner.keyspaces.recent_times,
            &inner.keyspaces.recent_devices,
            &inner.keyspaces.recent_counts,
            &inner.keyspaces.file_names,
        ] {
            for item in keyspace.iter() {
                write.remove(keyspace, item.key().unwrap().to_vec());
            }
        }
        for item in inner.keyspaces.sightings.iter() {
            let (key, value) = item.into_inner().unwrap();
            let sighting = decode_sighting(&value).unwrap();
            let mut old = vec![1u8];
            old.extend(postcard::to_stdvec(&(sighting.first, sighting.last, sighting.file_name)).unwrap());
            write.insert(&inner.keyspaces.sightings, key.to_vec(), old);
        }
        let counters = inner.writer.lock().unwrap().counters;
        let mut old = vec![1u8];
        old.extend(postcard::to_stdvec(&counters).unwrap());
        write.insert(&inner.keyspaces.meta, b"counters".to_vec(), old);
        write.commit().unwrap();
        drop(store);

        let store = FjallStore::open(dir.path()).unwrap();
        let rebuilt = store.file_stats(FileHash::Sha1(hash), "t", since).await.unwrap().unwrap();
        assert_eq!(rebuilt, expected);
        assert_eq!(store.inner.keyspaces.meta.get("counters").unwrap().unwrap()[0], SCHEMA_VERSION, "done once");
        // And it counts on from there.
        store.ingest(vec![seen("b", 1, "x.exe")]).await.unwrap();
        let later = store.file_stats(FileHash::Sha1(hash), "t", Timestamp(now.0 - 5 * hour)).await.unwrap().unwrap();
        assert_eq!(later.prevalence, 1);
    }

    /// A store of version 2 kept one report and size per file: opened, each tenant gets its
    /// row from the sightings, and every tenant that saw a file keeps the report and size in its
    /// own row, so that they speak to no other tenant.
    #[tokio::test]
    async fn a_store_written_by_version_2_gets_its_tenant_rows_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        let now = Timestamp::now();
        let by = |tenant: &str, device: &str, hours_ago: i64, n: u8| Observation {
            tenant_id: tenant.into(),
            ..seen_ago(now, device, hours_ago, n, "x.exe")
        };
        store
            .ingest(vec![by("c", "1", 5, 50), by("c", "2", 3, 50), by("c", "1", 4, 51), by("f", "9", 8, 51)])
            .await
            .unwrap();

        // Turn the records back into what version 2 wrote: no rows, a report and size per file.
        let inner = &store.inner;
        let legacy = fileintel_core::ReportedFacts { company: Some("Legacy".into()), ..Default::default() };
        let mut write = inner.db.batch();
        for item in inner.keyspaces.files.iter() {
            let (key, value) = item.into_inner().unwrap();
            let record = codec::decode_record(&value).unwrap();
            let mut old = vec![2u8];
            let fields = (
                record.hashes,
                record.global_prevalence,
                record.global_first_observed,
                record.global_last_observed,
                Some(9u64),
                record.facts,
                legacy.clone(),
            );
            old.extend(postcard::to_stdvec(&fields).unwrap());
            write.insert(&inner.keyspaces.files, key.to_vec(), old);
        }
        let counters = inner.writer.lock().unwrap().counters;
        let mut old = vec![2u8];
        old.extend(postcard::to_stdvec(&counters).unwrap());
        write.insert(&inner.keyspaces.meta, b"counters".to_vec(), old);
        write.commit().unwrap();
        drop(store);

        let store = FjallStore::open(dir.path()).unwrap();
        assert_eq!(store.inner.keyspaces.meta.get("counters").unwrap().unwrap()[0], SCHEMA_VERSION, "done once");
        let get = async |n: u8| store.get_file(FileHash::Sha1(fileintel_core::Sha1([n; 20]))).await.unwrap().unwrap();
        let only_c = get(50).await;
        assert_eq!((only_c.size, only_c.reported.is_empty()), (None, true), "moved to the tenant");
        let row = &only_c.tenants[0];
        let last = Timestamp(now.0 - 3 * TICKS_PER_HOUR);
        assert_eq!((row.tenant.as_str(), row.devices, row.last), ("c", 2, Some(last)));
        assert_eq!((row.size, row.reported.clone()), (Some((last, 9)), Some((last, legacy.clone()))));

        let shared = get(51).await;
        assert_eq!((shared.size, shared.reported.is_empty()), (None, true), "moved to each tenant");
        let rows: Vec<_> = shared.tenants.iter().map(|row| (row.tenant.as_str(), row.devices, row.size)).collect();
        let (c_last, f_last) = (Timestamp(now.0 - 4 * TICKS_PER_HOUR), Timestamp(now.0 - 8 * TICKS_PER_HOUR));
        assert_eq!(rows, [("c", 1, Some((c_last, 9))), ("f", 1, Some((f_last, 9)))]);
        let trust = fileintel_core::Trust::default();
        let seen = shared.seen_by(fileintel_core::Viewer::Tenant { name: "c", trust: &trust }).unwrap();
        assert_eq!((seen.global_prevalence, seen.reported.company.as_deref()), (1, Some("Legacy")));
        assert!(
            shared.seen_by(fileintel_core::Viewer::Tenant { name: "n", trust: &trust }).is_none(),
            "n never saw it"
        );
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
