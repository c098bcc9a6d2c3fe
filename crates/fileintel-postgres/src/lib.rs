//! The PostgreSQL backend of the fileintel store: [`PgStore`] implements
//! [`fileintel_store::Store`] with the same answers as the embedded fjall backend, for several
//! replicas that share one database.
//!
//! ```no_run
//! # async fn example() -> Result<(), fileintel_store::StoreError> {
//! use fileintel_postgres::{PgOptions, PgStore};
//! use fileintel_store::Store;
//! let store = PgStore::connect("postgres://fileintel@db.internal/fileintel", PgOptions::default()).await?;
//! store.ping().await?;
//! let hash = fileintel_core::FileHash::parse("4388963aaa83afe2042a46a3c017ad50bdcdafb3").unwrap();
//! let record = store.get_file(hash).await?;
//! # Ok(()) }
//! ```
//!
//! Schema (created by [`PgStore::migrate`]; times are `bigint` 100 ns ticks, `Timestamp`'s own
//! unit; key text is `COLLATE "C"`, so listings come in fjall's byte order):
//!
//! | table                 | key                                   | holds                                         |
//! |-----------------------|---------------------------------------|-----------------------------------------------|
//! | `files`               | `id` (from sequence `file_ids`)       | `sha1`, `sha256`, `md5` (`bytea`), `all_devices`, first and last observed, size, `facts`, `reported` and `tenants` (each tenant's `TenantFile`) (`json`) |
//! | `file_hashes`         | hash kind (0 MD5, 1 SHA-1, 2 SHA-256), hash | the file id: the one unique index on hashes |
//! | `file_counts`         | `shard`                               | files added less files removed, summed by `stats` |
//! | `sightings`           | file id, tenant, device id            | first and last observation, latest file name, every name seen (at most 8); indexed by (file id, tenant, last seen) for windows |
//! | `observation_times`   | file id, tenant, time                 | (nothing): one row per distinct observation time within 721 hours of when it was written |
//! | `devices`             | tenant, device id                     | name, first and last activity, platform       |
//! | `verdicts`            | hash kind (0 MD5, 1 SHA-1, 2 SHA-256), hash, source key | the `Verdict` (`json`)        |
//! | `indicators`          | tenant, id (from sequence `indicator_ids`); unique tenant, type, lower-cased value | the `Indicator` (`json`) |
//! | `applications`        | tenant, client id                     | object id, name, roles, secret hash, created  |
//! | `users`               | tenant, lower-cased sign-in name      | sign-in name as given, object id, roles, password hash, created |
//! | `user_object_ids`     | tenant, object id                     | the lower-cased sign-in name                  |
//! | `signing_keys`        | `seq` (identity: the order added)     | kid, PKCS#8 key, created                      |
//! | `fileintel_schema_migrations` | `version`                     | when it was applied                           |
//!
//! **Exact counts across replicas.** An `ingest` is one transaction. It first locks, in id order,
//! the `files` rows its hashes name; every writer of a file's sightings holds that lock, so what
//! the transaction reads of them stays true until it commits. A file's prevalence grows by the
//! sightings rows its `INSERT ... ON CONFLICT DO NOTHING` actually inserted, so a (tenant, device)
//! seen by two replicas at once is counted once: the second waits for the first's lock and then
//! finds the row. New hashes are claimed in `file_hashes` by one statement in key order (so
//! writers meet there in one order and cannot deadlock); a file two replicas create at once is
//! claimed by one, and the other runs its transaction again and finds it, as it does after a
//! deadlock or a serialization failure, a bounded number of times. Window figures are counted
//! from rows when asked (`/stats`), so they need no counters to keep in step.
//!
//! **TLS.** Connections use rustls (ring) as the address's `sslmode` and `sslrootcert` say, with
//! libpq's meanings (`verify-full` with a CA file is the one to use across a network); the
//! `tls` module reads them, as the driver knows only some of `sslmode` and none of the rest.
//!
//! **Nothing waits for ever.** Taking a pooled connection waits at most
//! [`PgOptions::acquire_timeout`], and every statement runs under the session's
//! `statement_timeout`; lost connections, a server shutting down and statements out of time are
//! [`StoreError::Unavailable`], everything else [`StoreError::Backend`].

mod error;
mod identity;
pub mod migrate;
mod migrations;
mod reads;
pub mod testing;
mod tls;
mod verdicts;
mod writer;

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use fileintel_core::{
    Application, FileFacts, FileHash, FileHashes, FileRecord, Indicator, Observation, SigningKey, Timestamp, User,
    Verdict, VerdictSource,
};
use fileintel_store::{
    DeviceSighting, IngestOutcome, OrgFileStats, Store, StoreError, StoreStats, SweepReport, TOP_FILE_NAMES,
};

use crate::error::Failure;

/// Runs `$body` (an expression using the transaction `$tx`) in a transaction on a pooled
/// connection, committing it, and all of it again on a fresh transaction when it lost a race
/// with another writer, at most [`ATTEMPTS`] times. A macro rather than a method taking a
/// closure: the body borrows the call's arguments, which a closure returning a future cannot
/// do for every lifetime of the transaction it is given.
macro_rules! transaction {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let store = $store;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let mut client = store.client().await?;
                let $tx = client.transaction().await?;
                let value = $body?;
                $tx.commit().await?;
                Ok(value)
            }
            .await;
            if let Some(answer) = store.after_attempt(result, attempt).await {
                break answer;
            }
        }
    }};
}

/// [`transaction!`] for a write: its statements may run for the store's write timeout rather
/// than the statement timeout, as a write may queue behind another replica's write to the same
/// rows (or for the verdict writers' advisory lock), which is no fault. Every transaction that
/// can wait on another writer is one of these.
macro_rules! write_transaction {
    ($store:expr, |$tx:ident| $body:expr) => {
        transaction!($store, |$tx| async {
            $tx.batch_execute(&$store.write_timeout).await?;
            $body
        }
        .await)
    };
}

/// How a [`PgStore`] connects and how long it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// The most connections the pool opens; each replica has its own pool.
    pub max_connections: usize,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// How long a call may wait for a pooled connection, opening one included.
    pub acquire_timeout: Duration,
    /// How long one statement may run (waiting for locks included), set for every session.
    pub statement_timeout: Duration,
    /// How long one statement of a write (ingest, facts, verdicts) may run: a write may wait
    /// for another replica's write to the same files, which is no fault. Still bounded.
    pub write_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Observations per ingest transaction (see [`PgStore`]'s `ingest`).
const INGEST_CHUNK: usize = 5_000;

/// Attempts of one transaction before a race with other writers is given up on.
const ATTEMPTS: u32 = 10;

/// How many rows the file count is spread over, so that writers rarely wait on the same one.
const COUNT_SHARDS: u32 = 16;

/// The advisory lock each chunk of a sweep holds ("fisweep!" in ASCII), so replicas that sweep
/// at once take turns rather than delete side by side.
const SWEEP_LOCK: i64 = 0x6669_7377_6565_7021;

/// How long one chunk of [`PgStore::sweep_windows`] may run.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Files whose observation times one transaction of a sweep removes.
const SWEEP_CHUNK_FILES: usize = 20_000;

/// The PostgreSQL store. Cheap to clone (clones share the pool); any number of processes may
/// use one database at once.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    acquire_timeout: Duration,
    /// `SET LOCAL statement_timeout = ...` for writes ([`PgOptions::write_timeout`]).
    write_timeout: Arc<str>,
    /// Picks the file-count row each write adds to, starting somewhere random per process.
    next_shard: Arc<AtomicU32>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("pool", &self.pool.status()).finish_non_exhaustive()
    }
}

/// A random number from the standard library's per-process hash keys: enough to spread writers
/// and retries apart, without a dependency for it.
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos()));
    hasher.finish()
}

/// A database address as it may be shown or kept without its password: user, hosts, ports and
/// database only (`postgres://app@db:5432/fileintel`), read as `PgStore::connect` reads the
/// address, in either of its forms; `None` when it is no address.
pub fn address_without_password(url: &str) -> Option<String> {
    let config = tls::driver_config(url).ok()?;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let host = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            // The port used: the host's own, else the one given for all, else PostgreSQL's.
            let port = config.get_ports().get(index).or(config.get_ports().first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let user = config.get_user().map(|user| format!("{user}@")).unwrap_or_default();
    Some(format!("postgres://{user}{}/{}", hosts.join(","), config.get_dbname().unwrap_or_default()))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// `host=... dbname=...`), over TLS as its `sslmode` and `sslrootcert` say (libpq's names
    /// and meanings: `disable`, `prefer` (the default), `require`, `verify-ca`, `verify-full`
    /// with `sslrootcert=<CA file>`), and brings its schema up to date
    /// ([`PgStore::migrate`]). Fails with [`StoreError::Unavailable`] when the server cannot be
    /// reached in time, and with [`StoreError::Backend`] when the address is wrong or the
    /// server's certificate is refused. Warns, once, when the server is not on this machine and
    /// the connection is not encrypted or its certificate not checked.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let tls::Connection { mut config, tls, mode, checked } = tls::read(url)?;
        let local = tls::is_local(&config);
        config.connect_timeout(options.connect_timeout);
        // A server that vanishes without closing the connection (a host down, a partition)
        // would otherwise leave a statement waiting on TCP for hours: probe an idle connection
        // after `connect_timeout` and give up after three unanswered probes a second apart, and
        // give up on data the server has not acknowledged within a statement's time.
        config
            .keepalives(true)
            .keepalives_idle(options.connect_timeout)
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3)
            .tcp_user_timeout(options.statement_timeout + options.connect_timeout);
        // Through the startup packet, so every session the pool opens has it before its first
        // statement, and no `SET` can be forgotten on a new connection.
        let timeout = format!("-c statement_timeout={}", options.statement_timeout.as_millis().max(1));
        let session = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {timeout}"),
            _ => timeout,
        };
        config.options(session);
        if config.get_application_name().is_none() {
            config.application_name("fileintel");
        }
        let manager = Manager::from_config(config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| StoreError::Backend(format!("the connection pool: {error}")))?;
        let store = PgStore {
            pool,
            acquire_timeout: options.acquire_timeout,
            write_timeout: format!(
                "SET LOCAL statement_timeout = {}",
                options.write_timeout.max(options.statement_timeout).as_millis().max(1)
            )
            .into(),
            next_shard: Arc::new(AtomicU32::new((random() % u64::from(COUNT_SHARDS)) as u32)),
        };
        store.migrate().await?;
        // Passwords, signing keys and credential hashes travel on this connection: say so, once,
        // when they cross a network in clear or to a server nobody checked. A server that
        // cannot say whether it is encrypted is not warned about.
        let encrypted = if local { Ok(true) } else { store.encrypted().await };
        if let Some(warning) = encrypted.ok().and_then(|encrypted| tls::exposure(local, encrypted, checked)) {
            tracing::warn!(
                database = address_without_password(url).unwrap_or_default(),
                ?mode,
                "{warning}; use sslmode=verify-full with sslrootcert=<CA file> (see README.md, PostgreSQL)"
            );
        }
        Ok(store)
    }

    /// Whether this store's connections to the server are encrypted, as the server sees them
    /// (`pg_stat_ssl`, asked on one pooled connection).
    pub async fn encrypted(&self) -> Result<bool, StoreError> {
        self.with_client(async |client| {
            let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await?;
            Ok(row.try_get(0)?)
        })
        .await
    }

    /// Applies the schema migrations the database lacks, in one transaction under an advisory
    /// lock: safe when several replicas start at once, and a no-op when up to date.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await.map_err(Failure::into_store_error)?;
        migrations::migrate(&mut client).await.map_err(Failure::into_store_error)
    }

    /// The newest migration applied to the database.
    pub async fn schema_version(&self) -> Result<i32, StoreError> {
        self.with_client(async |client| {
            let row =
                client.query_one("SELECT coalesce(max(version), 0) FROM fileintel_schema_migrations", &[]).await?;
            Ok(row.get::<_, i32>(0))
        })
        .await
    }

    /// `Store::put_indicator` for an indicator moved from another store: a new one keeps its
    /// numeric id where its tenant has none of that id (`fileintel migrate`).
    pub async fn import_indicator(&self, indicator: Indicator) -> Result<Indicator, StoreError> {
        write_transaction!(self, |tx| verdicts::put_indicator(&tx, indicator.clone(), true).await)
    }

    /// Whether the database answers, through the pool: for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_client(async |client| {
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    /// Removes observation times that no look-back window from `now` on can reach (of whole
    /// hours before [`Timestamp::first_hour_kept`], as every store sweeps); returns how many
    /// went. Sightings stay: they are the counts themselves. Maintenance, not a
    /// request: it reads the whole table once, range by range of the primary key (an index on
    /// time would cost every ingest), so each range may take up to [`SWEEP_TIMEOUT`] rather
    /// than the statement timeout.
    async fn sweep_windows(&self, now: Timestamp) -> Result<u64, StoreError> {
        let kept_from = Timestamp::start_of_hour(now.first_hour_kept()).0;
        // In ranges of file ids (the primary key's prefix, so each chunk reads only its own part
        // of the index, and the whole sweep is one pass), each its own short transaction, so a
        // link waiting on those rows waits for one chunk, not the whole sweep. The lock keeps
        // chunks of sweeps that replicas run at once from running side by side; deleting what
        // another already deleted finds nothing.
        let last_id: i64 = self
            .with_client(async |client| {
                let row = client.query_one("SELECT last_value FROM file_ids", &[]).await?;
                Ok(row.try_get(0)?)
            })
            .await?;
        let mut removed = 0;
        for from in (0..=last_id).step_by(SWEEP_CHUNK_FILES) {
            removed += transaction!(self, |tx| async {
                tx.batch_execute(&format!("SET LOCAL statement_timeout = {}", SWEEP_TIMEOUT.as_millis())).await?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SWEEP_LOCK]).await?;
                let deleted = tx
                    .execute(
                        "DELETE FROM observation_times WHERE file_id >= $1 AND file_id < $2 AND time < $3",
                        &[&from, &(from + SWEEP_CHUNK_FILES as i64), &kept_from],
                    )
                    .await?;
                Ok::<_, Failure>(deleted)
            }
            .await)?;
        }
        Ok(removed)
    }

    /// A pooled connection, waiting at most `acquire_timeout` in all, opening one included.
    async fn client(&self) -> Result<Client, Failure> {
        match tokio::time::timeout(self.acquire_timeout, self.pool.get()).await {
            Ok(client) => Ok(client?),
            Err(_) => Err(Failure::Store(StoreError::Unavailable(format!(
                "no PostgreSQL connection within {:?}",
                self.acquire_timeout
            )))),
        }
    }

    /// Runs reads, or one self-contained statement, on a pooled connection.
    async fn with_client<T>(&self, work: impl AsyncFnOnce(&Client) -> Result<T, Failure>) -> Result<T, StoreError> {
        let result = async {
            let client = self.client().await?;
            work(&client).await
        }
        .await;
        result.map_err(Failure::into_store_error)
    }

    /// What follows one attempt of a transaction ([`transaction!`]): its answer, or `None` when
    /// it lost a race with another writer (a deadlock, a serialization failure, a hash another
    /// replica committed first) and should run again, which this waits a random while before so
    /// that the writers that met spread apart.
    async fn after_attempt<T>(&self, result: Result<T, Failure>, attempt: u32) -> Option<Result<T, StoreError>> {
        match result {
            Ok(value) => Some(Ok(value)),
            Err(failure) if failure.retryable() && attempt < ATTEMPTS => {
                tracing::debug!(attempt, failure = %failure, "a PostgreSQL transaction lost a race; running it again");
                let ceiling = 1u64 << attempt.min(8);
                tokio::time::sleep(Duration::from_millis(random() % ceiling + 1)).await;
                None
            }
            Err(failure) => Some(Err(failure.into_store_error())),
        }
    }

    fn shard(&self) -> i32 {
        (self.next_shard.fetch_add(1, Ordering::Relaxed) % COUNT_SHARDS) as i32
    }
}

#[async_trait]
impl Store for PgStore {
    async fn get_file(&self, hash: FileHash) -> Result<Option<FileRecord>, StoreError> {
        self.with_client(async |client| {
            let statement = client.prepare_cached(reads::GET_FILE).await?;
            let (kind, bytes) = reads::hash_key(&hash);
            match client.query_opt(&statement, &[&kind, &bytes]).await? {
                Some(row) => Ok(Some(reads::record_from_row(&row)?.1)),
                None => Ok(None),
            }
        })
        .await
    }

    /// In transactions of at most [`INGEST_CHUNK`] observations, one after another: a
    /// statement over a whole pipeline batch (50,000 observations of files spread over a large
    /// table) can outlast the write timeout, and a smaller transaction holds its files' locks
    /// for less time. Durable when it returns, as every chunk is committed by then; a failure
    /// part-way leaves the earlier chunks in, which sending the call again does not count twice.
    /// `files_touched` counts distinct files over the chunks.
    async fn ingest(&self, observations: Vec<Observation>) -> Result<IngestOutcome, StoreError> {
        let refusals: Vec<Option<String>> = observations.iter().map(writer::refusal).collect();
        let (horizon, shard) = (Timestamp::now().window_horizon(), self.shard());
        let mut outcome = IngestOutcome::default();
        // Distinct across the chunks, as the trait counts them.
        let mut touched: HashSet<i64> = HashSet::new();
        for (number, (observations, refusals)) in
            observations.chunks(INGEST_CHUNK).zip(refusals.chunks(INGEST_CHUNK)).enumerate()
        {
            let (part, ids) =
                write_transaction!(self, |tx| writer::ingest(&tx, observations, refusals, horizon, shard).await)?;
            touched.extend(ids);
            outcome.accepted += part.accepted;
            outcome.new_files += part.new_files;
            let offset = number * INGEST_CHUNK;
            outcome.rejected.extend(part.rejected.into_iter().map(|(index, reason)| (index + offset, reason)));
        }
        outcome.files_touched = touched.len() as u64;
        Ok(outcome)
    }

    async fn put_facts(&self, hashes: FileHashes, size: Option<u64>, facts: FileFacts) -> Result<(), StoreError> {
        let (horizon, shard) = (Timestamp::now().window_horizon(), self.shard());
        write_transaction!(self, |tx| writer::put_facts(&tx, &hashes, size, &facts, horizon, shard).await)
    }

    async fn put_verdicts(&self, verdicts: Vec<(FileHashes, Verdict)>) -> Result<u64, StoreError> {
        write_transaction!(self, |tx| verdicts::put_verdicts(&tx, &verdicts).await)
    }

    async fn verdicts(&self, hashes: &FileHashes) -> Result<Vec<Verdict>, StoreError> {
        self.with_client(async |client| verdicts::verdicts(client, hashes).await).await
    }

    /// One statement, so a lookup is one round trip to the database.
    async fn file_and_verdicts(&self, hash: FileHash) -> Result<(Option<FileRecord>, Vec<Verdict>), StoreError> {
        self.with_client(async |client| {
            let statement = client.prepare_cached(reads::FILE_AND_VERDICTS).await?;
            let (kind, bytes) = reads::hash_key(&hash);
            let row = client.query_one(&statement, &[&kind, &bytes]).await?;
            let record = match row.try_get::<_, Option<i64>>(0)? {
                Some(_) => Some(reads::record_from_row(&row)?.1),
                None => None,
            };
            let verdicts = verdicts::newest_per_source(row.try_get::<_, Vec<&str>>(11)?)?;
            Ok((record, verdicts))
        })
        .await
    }

    async fn end_unlisted_verdicts(
        &self,
        source: &VerdictSource,
        listed: &HashSet<FileHash>,
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        write_transaction!(self, |tx| verdicts::end_unlisted_verdicts(&tx, source, listed, at).await)
    }

    async fn delete_verdict(&self, hashes: &FileHashes, source: &VerdictSource) -> Result<bool, StoreError> {
        write_transaction!(self, |tx| verdicts::delete_verdict(&tx, hashes, source).await)
    }

    async fn put_indicator(&self, indicator: Indicator) -> Result<Indicator, StoreError> {
        write_transaction!(self, |tx| verdicts::put_indicator(&tx, indicator.clone(), false).await)
    }

    async fn list_indicators(&self, tenant: &str) -> Result<Vec<Indicator>, StoreError> {
        self.with_client(async |client| verdicts::list_indicators(client, tenant).await).await
    }

    async fn delete_indicator(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        write_transaction!(self, |tx| verdicts::delete_indicator(&tx, tenant, id).await)
    }

    async fn file_devices(&self, hash: FileHash, tenant: &str) -> Result<Vec<DeviceSighting>, StoreError> {
        self.with_client(async |client| {
            let statement = client.prepare_cached(reads::FILE_DEVICES).await?;
            let (kind, bytes) = reads::hash_key(&hash);
            let rows = client.query(&statement, &[&kind, &bytes, &tenant]).await?;
            rows.iter().map(reads::device_from_row).collect()
        })
        .await
    }

    async fn file_stats(
        &self,
        hash: FileHash,
        tenant: &str,
        since: Timestamp,
    ) -> Result<Option<OrgFileStats>, StoreError> {
        self.with_client(async |client| {
            let statement = client.prepare_cached(reads::FILE_STATS).await?;
            let (kind, bytes) = reads::hash_key(&hash);
            let top = TOP_FILE_NAMES as i64;
            match client.query_opt(&statement, &[&kind, &bytes, &tenant, &since.0, &top]).await? {
                Some(row) => Ok(Some(reads::stats_from_row(&row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn sweep(&self, now: Timestamp) -> Result<SweepReport, StoreError> {
        Ok(SweepReport { removed: self.sweep_windows(now).await? })
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.with_client(async |client| {
            let statement = client
                .prepare_cached(
                    "SELECT (SELECT coalesce(sum(files), 0)::int8 FROM file_counts),
                            pg_database_size(current_database())",
                )
                .await?;
            let row = client.query_one(&statement, &[]).await?;
            let (files, bytes): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            Ok(StoreStats {
                files: u64::try_from(files).unwrap_or_default(),
                disk_bytes: u64::try_from(bytes).unwrap_or_default(),
            })
        })
        .await
    }

    /// Whether the database answers ([`PgStore::ping`]).
    async fn ready(&self) -> Result<(), StoreError> {
        self.ping().await
    }

    async fn put_application(&self, application: Application) -> Result<(), StoreError> {
        write_transaction!(self, |tx| identity::put_application(&tx, &application).await)
    }

    async fn get_application(&self, tenant: &str, client_id: &str) -> Result<Option<Application>, StoreError> {
        self.with_client(async |client| identity::get_application(client, tenant, client_id).await).await
    }

    async fn list_applications(&self) -> Result<Vec<Application>, StoreError> {
        self.with_client(async |client| identity::list_applications(client).await).await
    }

    async fn delete_application(&self, tenant: &str, client_id: &str) -> Result<bool, StoreError> {
        write_transaction!(self, |tx| identity::delete_application(&tx, tenant, client_id).await)
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        self.with_client(async |client| identity::signing_keys(client).await).await
    }

    async fn add_signing_key(&self, key: SigningKey) -> Result<(), StoreError> {
        self.with_client(async |client| identity::add_signing_key(client, &key).await).await
    }

    async fn put_user(&self, user: User) -> Result<(), StoreError> {
        write_transaction!(self, |tx| identity::put_user(&tx, &user).await)
    }

    async fn get_user(&self, tenant: &str, upn: &str) -> Result<Option<User>, StoreError> {
        self.with_client(async |client| identity::get_user(client, tenant, upn).await).await
    }

    async fn get_user_by_object_id(&self, tenant: &str, object_id: &str) -> Result<Option<User>, StoreError> {
        self.with_client(async |client| identity::get_user_by_object_id(client, tenant, object_id).await).await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.with_client(async |client| identity::list_users(client).await).await
    }

    async fn delete_user(&self, tenant: &str, upn: &str) -> Result<bool, StoreError> {
        write_transaction!(self, |tx| identity::delete_user(&tx, tenant, upn).await)
    }

    async fn identity_generation(&self) -> Result<u64, StoreError> {
        self.with_client(async |client| identity::identity_generation(client).await).await
    }
}
