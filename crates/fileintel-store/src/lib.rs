//! Where fileintel keeps what it knows: the [`Store`] trait, the embedded [`FjallStore`] backend,
//! and the [`contract`] suite that every backend must pass.
//!
//! The trait speaks only in core types ([`FileHash`], [`Observation`], [`FileRecord`]): no engine
//! type, transaction or driver error crosses it, so a PostgreSQL backend fits behind it unchanged.
//!
//! ```no_run
//! # async fn example() -> Result<(), fileintel_store::StoreError> {
//! use fileintel_store::{FjallStore, Store};
//! let store = FjallStore::open("data".as_ref())?;
//! let hash = fileintel_core::FileHash::parse("4388963aaa83afe2042a46a3c017ad50bdcdafb3").unwrap();
//! let record = store.get_file(hash).await?;
//! # Ok(()) }
//! ```

pub mod contract;
mod fjall_store;
pub mod pipeline;

use async_trait::async_trait;
use fileintel_core::{
    Application, FileFacts, FileHash, FileHashes, FileRecord, Indicator, Observation, SigningKey, Timestamp, User,
    Verdict, VerdictSource,
};

pub use fjall_store::{DEFAULT_CACHE_BYTES, ExportedFile, FjallStore, create_private_dir};
pub use pipeline::Ingestor;

/// The one error type every backend returns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the store; the text says who, when it is known.
    #[error("{0}")]
    Busy(String),
    /// The backing engine or database failed; the text is for logs, not for API clients.
    #[error("storage failure: {0}")]
    Backend(String),
    /// Stored bytes could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The backend cannot be reached right now.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// What one `ingest` call did. Once it is returned, everything it counts is durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Observations taken into the store.
    pub accepted: u64,
    /// Observations refused, by their index in the batch, with the reason.
    pub rejected: Vec<(usize, String)>,
    /// Distinct files the batch touched.
    pub files_touched: u64,
    /// Files new to the tenant of the observation that named them: whether another tenant saw
    /// one is not for the caller to learn.
    pub new_files: u64,
}

/// One device of one tenant that observed a file: what `/machines` is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSighting {
    pub device_id: String,
    pub device_name: Option<String>,
    /// The device's first and last observation of this file.
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The name the device last saw the file under.
    pub file_name: Option<String>,
    /// The device's first and last observation of any file.
    pub device_first_seen: Option<Timestamp>,
    pub device_last_seen: Option<Timestamp>,
    /// The device's operating system, where its telemetry named it.
    pub os_platform: Option<String>,
}

/// A file as one tenant saw it within a look-back window: what `/stats` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgFileStats {
    /// The file's record, for the global figures.
    pub record: FileRecord,
    /// Distinct devices of the tenant that observed the file within the window.
    pub prevalence: u64,
    /// The tenant's first and last observation of the file within the window.
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    /// The names the tenant's devices saw the file under, the most devices first (at most 5).
    pub top_file_names: Vec<String>,
}

/// The longest look-back window, in hours, that [`Store::file_stats`] answers exactly (MDE's 720):
/// the core's, named here too for the callers of the trait.
pub use fileintel_core::MAX_LOOKBACK_HOURS;

/// How many names `/stats` lists.
pub const TOP_FILE_NAMES: usize = 5;

/// Size figures, for benchmarks and health output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub files: u64,
    pub disk_bytes: u64,
}

/// What one [`Store::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Window entries removed, in the backend's own unit (keys, rows): for logs.
    pub removed: u64,
}

/// A file-intelligence store. Implementations are shared between request handlers (`Arc<dyn Store>`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The record of the file known by `hash`, whichever of its hashes that is.
    async fn get_file(&self, hash: FileHash) -> Result<Option<FileRecord>, StoreError>;

    /// Merges observations into the store. Returns only once the accepted ones are durable.
    /// Re-ingesting an observation changes no count; order does not matter.
    async fn ingest(&self, observations: Vec<Observation>) -> Result<IngestOutcome, StoreError>;

    /// Records static facts about a file (from analysis or feeds), creating the record if needed.
    /// Known facts win over new ones only where the new ones are missing.
    /// `size`, when given, is the file's size as measured from its bytes, and replaces any other.
    async fn put_facts(&self, hashes: FileHashes, size: Option<u64>, facts: FileFacts) -> Result<(), StoreError>;

    /// Records what sources say about files, under each hash given. For each (source, hash), a
    /// verdict replaces the stored one only if it supersedes it ([`Verdict::supersedes`]), so
    /// importing the same statements again changes nothing. Returns how many (source, file)
    /// verdicts were new or replaced one; durable when it returns.
    async fn put_verdicts(&self, verdicts: Vec<(FileHashes, Verdict)>) -> Result<u64, StoreError>;

    /// Every source's verdict about the file with these hashes, one per source (the newest
    /// when a source spoke under several of them), in source-key order.
    async fn verdicts(&self, hashes: &FileHashes) -> Result<Vec<Verdict>, StoreError>;

    /// What a lookup reads: the record `hash` names, if any, and [`Store::verdicts`] about it
    /// (about `hash` alone when no record is known). A backend that can read both at once (one
    /// statement, one round trip) overrides this; the answer is the same.
    async fn file_and_verdicts(&self, hash: FileHash) -> Result<(Option<FileRecord>, Vec<Verdict>), StoreError> {
        let record = self.get_file(hash).await?;
        let hashes = record.as_ref().map_or_else(|| FileHashes::from(hash), |record| record.hashes);
        let verdicts = self.verdicts(&hashes).await?;
        Ok((record, verdicts))
    }

    /// Ends, at `at`, every verdict of `source` kept under a hash that `listed` does not hold:
    /// one whose `valid_until` is later (or unset) gets `at`, so it no longer speaks and is kept
    /// as history. What a feed import that is the whole feed (`--replace`) does with the hashes
    /// the feed no longer lists. Returns how many verdicts it ended; durable when it returns.
    async fn end_unlisted_verdicts(
        &self,
        source: &VerdictSource,
        listed: &std::collections::HashSet<FileHash>,
        at: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Forgets what `source` said about the file with these hashes; whether it had said anything.
    async fn delete_verdict(&self, hashes: &FileHashes, source: &VerdictSource) -> Result<bool, StoreError>;

    /// Submits or updates an analyst's indicator: one of the same tenant, type and value is
    /// updated in place (keeping its id and creation time), otherwise it gets a new id. What
    /// it says about its file ([`Indicator::verdict`]) is written with it, in the same commit.
    /// Returns the indicator as stored.
    async fn put_indicator(&self, indicator: Indicator) -> Result<Indicator, StoreError>;

    /// The tenant's indicators, oldest first.
    async fn list_indicators(&self, tenant: &str) -> Result<Vec<Indicator>, StoreError>;

    /// Deletes a tenant's indicator and its verdict; whether there was one.
    async fn delete_indicator(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;

    /// The devices of `tenant` that observed the file, in no particular order.
    async fn file_devices(&self, hash: FileHash, tenant: &str) -> Result<Vec<DeviceSighting>, StoreError>;

    /// The file known by `hash` as `tenant` saw it since `since`, or `None` if the file is unknown.
    /// `since` must lie within [`MAX_LOOKBACK_HOURS`] of now: older observations are not kept
    /// for windows.
    async fn file_stats(
        &self,
        hash: FileHash,
        tenant: &str,
        since: Timestamp,
    ) -> Result<Option<OrgFileStats>, StoreError>;

    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Removes what no look-back window from `now` on can reach any more (observation times of
    /// hours that ended more than [`MAX_LOOKBACK_HOURS`], plus slack, before `now`): maintenance
    /// the application runs now and then, off the request path. No answer changes. A backend
    /// that keeps nothing of the kind has nothing to do, which is the default. Replicas of one
    /// database may sweep at once; the second finds little left.
    async fn sweep(&self, now: Timestamp) -> Result<SweepReport, StoreError> {
        let _ = now;
        Ok(SweepReport::default())
    }

    /// Whether the store can serve now (for `/ready`): `Err` says why not. The embedded store
    /// is always ready once open; a database backend asks its database.
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Registers an application, or replaces the one with the same tenant and client id.
    async fn put_application(&self, application: Application) -> Result<(), StoreError>;

    async fn get_application(&self, tenant: &str, client_id: &str) -> Result<Option<Application>, StoreError>;

    /// Every application of every tenant, ordered by tenant and client id.
    async fn list_applications(&self) -> Result<Vec<Application>, StoreError>;

    /// Whether there was such an application to delete.
    async fn delete_application(&self, tenant: &str, client_id: &str) -> Result<bool, StoreError>;

    /// Every signing key, in the order they were added: the last is the newest.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;

    async fn add_signing_key(&self, key: SigningKey) -> Result<(), StoreError>;

    /// Adds a user, or replaces the one with the same tenant and sign-in name.
    async fn put_user(&self, user: User) -> Result<(), StoreError>;

    /// The user of `tenant` signing in as `upn` (compared case-insensitively, as Entra ID does).
    async fn get_user(&self, tenant: &str, upn: &str) -> Result<Option<User>, StoreError>;

    /// The user of `tenant` with this object id, as a delegated token names them.
    async fn get_user_by_object_id(&self, tenant: &str, object_id: &str) -> Result<Option<User>, StoreError>;

    /// Every user of every tenant, ordered by tenant and sign-in name.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;

    /// Whether there was such a user to delete.
    async fn delete_user(&self, tenant: &str, upn: &str) -> Result<bool, StoreError>;

    /// A number that grows with every write of an application or user (created, replaced, its
    /// secret rotated, deleted), committed with the write. Whoever caches what it verified
    /// against applications and users (the server's verified tokens) keeps it beside them and
    /// trusts them only while it is unchanged, so a deletion through any process holds at once.
    /// One small read: a replica reads it at every request.
    async fn identity_generation(&self) -> Result<u64, StoreError>;
}
