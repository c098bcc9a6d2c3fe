//! Runs the fileintel store's ingest and lookup pattern on three embedded engines: fjall (what the
//! service uses), redb and LMDB through heed. The per-observation logic lives once, in `ingest`;
//! an engine only answers `get`, commits a sorted list of writes durably, and serves lookups.
//!
//! The layout mirrors `crates/fileintel-store/src/fjall_store.rs`: `files` (id → record),
//! `by_sha256`/`by_sha1`/`by_md5` (hash → id) and `sightings` (id|tenant|device → first, last,
//! name), every integer key big-endian.
//!
//! Usage: engine-compare [--files N] [--lookups N] [--engines fjall,redb,lmdb] [--dir D] [--out F]
//!                       [--keep]   (leave each engine's directory behind, to look at its files)

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const BATCH: usize = 50_000;
/// The same budget for every engine that has a cache of its own; LMDB only has the OS page cache.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
#[cfg(not(feature = "redb3"))]
const VERSIONS: [(&str, &str); 3] = [
    ("fjall", "3.1.13"),
    ("redb", "4.6.0"),
    ("lmdb", "heed 0.23.1"),
];
#[cfg(feature = "redb3")]
const VERSIONS: [(&str, &str); 3] = [
    ("fjall", "3.1.13"),
    ("redb", "3.1.3"),
    ("lmdb", "heed 0.23.1"),
];
// Shadows the redb 4 dependency for the whole crate.
#[cfg(feature = "redb3")]
use redb3 as redb;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Table {
    Files,
    BySha256,
    BySha1,
    ByMd5,
    Sightings,
}

const TABLES: [Table; 5] = [
    Table::Files,
    Table::BySha256,
    Table::BySha1,
    Table::ByMd5,
    Table::Sightings,
];

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Files => "files",
            Table::BySha256 => "by_sha256",
            Table::BySha1 => "by_sha1",
            Table::ByMd5 => "by_md5",
            Table::Sightings => "sightings",
        }
    }
}

type Write = (Table, Vec<u8>, Vec<u8>);

/// What differs between engines, and nothing else.
trait Engine {
    /// Called before each batch's reads, so B-tree engines can take one read snapshot per batch
    /// instead of one per `get`.
    fn begin_batch(&mut self) -> Result<()>;
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// One durable, atomic commit. `writes` is sorted by table, then key.
    fn commit(&mut self, writes: Vec<Write>) -> Result<()>;
    /// Hash → id → record, with its own read snapshot, as one request to the service would do.
    fn lookup(&self, index: Table, hash: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Makes the directory's size final before it is measured.
    fn flush(&mut self) -> Result<()>;
}

// ---------------------------------------------------------------------------------------------
// fjall

struct Fjall {
    db: fjall::Database,
    keyspaces: [fjall::Keyspace; 5],
}

impl Fjall {
    fn open(dir: &Path) -> Result<Self> {
        let db = fjall::Database::builder(dir)
            .cache_size(CACHE_BYTES as u64)
            .open()?;
        let keyspaces = TABLES.map(|table| {
            // As in the store: reads of `files` follow an index hit, so last-level filters only cost bytes.
            db.keyspace(table.name(), || {
                fjall::KeyspaceCreateOptions::default()
                    .expect_point_read_hits(table == Table::Files)
            })
        });
        let [a, b, c, d, e] = keyspaces;
        Ok(Fjall {
            keyspaces: [a?, b?, c?, d?, e?],
            db,
        })
    }

    fn keyspace(&self, table: Table) -> &fjall::Keyspace {
        &self.keyspaces[table as usize]
    }
}

impl Engine for Fjall {
    fn begin_batch(&mut self) -> Result<()> {
        Ok(())
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.keyspace(table).get(key)?.map(|value| value.to_vec()))
    }

    fn commit(&mut self, writes: Vec<Write>) -> Result<()> {
        let mut batch = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncAll));
        for (table, key, value) in writes {
            batch.insert(self.keyspace(table), key, value);
        }
        Ok(batch.commit()?)
    }

    fn lookup(&self, index: Table, hash: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.keyspace(index).get(hash)? {
            Some(id) => Ok(self
                .keyspace(Table::Files)
                .get(id)?
                .map(|record| record.to_vec())),
            None => Ok(None),
        }
    }

    fn flush(&mut self) -> Result<()> {
        for keyspace in &self.keyspaces {
            keyspace.rotate_memtable_and_wait()?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// redb

type RedbTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

fn redb_definition(table: Table) -> redb::TableDefinition<'static, &'static [u8], &'static [u8]> {
    redb::TableDefinition::new(table.name())
}

struct Redb {
    db: redb::Database,
    /// The batch's read snapshot; the transaction is kept so the tables stay valid.
    read: Option<(redb::ReadTransaction, Vec<RedbTable>)>,
}

impl Redb {
    fn open(dir: &Path) -> Result<Self> {
        // Left alone, redb would cache up to 1 GiB.
        let db = redb::Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("db.redb"))?;
        let txn = db.begin_write()?;
        for table in TABLES {
            txn.open_table(redb_definition(table))?;
        }
        txn.commit()?;
        Ok(Redb { db, read: None })
    }
}

impl Engine for Redb {
    fn begin_batch(&mut self) -> Result<()> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        let tables = TABLES
            .iter()
            .map(|&table| txn.open_table(redb_definition(table)))
            .collect::<std::result::Result<_, _>>()?;
        self.read = Some((txn, tables));
        Ok(())
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let (_, tables) = self.read.as_ref().ok_or("get outside a batch")?;
        Ok(tables[table as usize]
            .get(key)?
            .map(|value| value.value().to_vec()))
    }

    fn commit(&mut self, writes: Vec<Write>) -> Result<()> {
        // A live snapshot would keep the pages this commit frees from being reused.
        self.read = None;
        let txn = self.db.begin_write()?;
        for chunk in writes.chunk_by(|a, b| a.0 == b.0) {
            let mut table = txn.open_table(redb_definition(chunk[0].0))?;
            for (_, key, value) in chunk {
                table.insert(key.as_slice(), value.as_slice())?;
            }
        }
        Ok(txn.commit()?)
    }

    fn lookup(&self, index: Table, hash: &[u8]) -> Result<Option<Vec<u8>>> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        let Some(id) = txn.open_table(redb_definition(index))?.get(hash)? else {
            return Ok(None);
        };
        let files = txn.open_table(redb_definition(Table::Files))?;
        Ok(files.get(id.value())?.map(|record| record.value().to_vec()))
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// LMDB, through heed

type LmdbDb = heed::Database<'static, heed::types::Bytes, heed::types::Bytes>;

struct Lmdb {
    env: heed::Env,
    dbs: [LmdbDb; 5],
    read: Option<heed::RoTxn<'static, heed::WithTls>>,
}

impl Lmdb {
    fn open(dir: &Path) -> Result<Self> {
        let mut options = heed::EnvOpenOptions::new();
        // Address space only: the file grows as pages are written, so st_blocks stays honest.
        options.map_size(256 << 30).max_dbs(TABLES.len() as u32);
        // SAFETY: the directory is fresh and only this process opens it.
        let env = unsafe { options.open(dir)? };
        let txn = env.write_txn()?;
        let dbs = env
            .create_databases_and_commit(txn, |opener, txn| -> heed::Result<_> {
                let mut create = |table: Table| {
                    opener.create_database::<heed::types::Bytes, heed::types::Bytes>(
                        txn,
                        Some(table.name()),
                    )
                };
                let dbs = [
                    create(TABLES[0])?,
                    create(TABLES[1])?,
                    create(TABLES[2])?,
                    create(TABLES[3])?,
                    create(TABLES[4])?,
                ];
                Ok(heed::CommitOrAbort::<_, ()>::Commit(dbs))
            })?
            .unwrap_commit();
        Ok(Lmdb {
            env,
            dbs,
            read: None,
        })
    }
}

impl Engine for Lmdb {
    fn begin_batch(&mut self) -> Result<()> {
        self.read = Some(self.env.clone().static_read_txn()?);
        Ok(())
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let txn = self.read.as_ref().ok_or("get outside a batch")?;
        Ok(self.dbs[table as usize].get(txn, key)?.map(<[u8]>::to_vec))
    }

    fn commit(&mut self, writes: Vec<Write>) -> Result<()> {
        // As for redb: an open reader would pin the pages this commit frees.
        self.read = None;
        let mut txn = self.env.write_txn()?;
        for (table, key, value) in &writes {
            self.dbs[*table as usize].put(&mut txn, key, value)?;
        }
        Ok(txn.commit()?)
    }

    fn lookup(&self, index: Table, hash: &[u8]) -> Result<Option<Vec<u8>>> {
        let txn = self.env.read_txn()?;
        let Some(id) = self.dbs[index as usize].get(&txn, hash)? else {
            return Ok(None);
        };
        Ok(self.dbs[Table::Files as usize]
            .get(&txn, id)?
            .map(<[u8]>::to_vec))
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The workload

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded stream of splitmix64 outputs: deterministic, so every engine sees the same run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix64(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random-looking bytes that only depend on the file and which hash they stand for.
fn digest<const L: usize>(file: u64, kind: u64) -> [u8; L] {
    let mut bytes = [0u8; L];
    for (n, chunk) in bytes.chunks_mut(8).enumerate() {
        let word = splitmix64(file ^ (kind << 56) ^ ((n as u64) << 48)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    bytes
}

struct Hashes {
    sha256: [u8; 32],
    sha1: [u8; 20],
    md5: [u8; 16],
}

impl Hashes {
    fn of(file: u64) -> Self {
        Hashes {
            sha256: digest(file, 1),
            sha1: digest(file, 2),
            md5: digest(file, 3),
        }
    }
}

#[derive(Clone, Copy)]
struct Observation {
    file: u32,
    device: u32,
}

fn observations(files: u64) -> Vec<Observation> {
    let devices = (files / 8).max(1);
    let mut rng = Rng(0x5eed);
    let mut all: Vec<Observation> = (0..files)
        .map(|file| Observation {
            file: file as u32,
            device: (splitmix64(file ^ 0xd5) % devices) as u32,
        })
        .collect();
    for _ in 0..files / 2 {
        // u^4 piles the mass onto low file numbers: a few files seen on very many devices.
        let file = ((files as f64 * rng.unit().powi(4)) as u64).min(files - 1);
        all.push(Observation {
            file: file as u32,
            device: rng.below(devices) as u32,
        });
    }
    for i in (1..all.len()).rev() {
        all.swap(i, rng.below(i as u64 + 1) as usize);
    }
    all
}

/// The store's `FileRecord`, reduced to fixed little-endian fields of the same size (104 bytes).
#[derive(Clone)]
struct Record {
    sha256: [u8; 32],
    sha1: [u8; 20],
    md5: [u8; 16],
    first: u64,
    last: u64,
    observations: u64,
    devices: u32,
    size: u64,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(104);
        bytes.extend_from_slice(&self.sha256);
        bytes.extend_from_slice(&self.sha1);
        bytes.extend_from_slice(&self.md5);
        for field in [self.first, self.last, self.observations] {
            bytes.extend_from_slice(&field.to_le_bytes());
        }
        bytes.extend_from_slice(&self.devices.to_le_bytes());
        bytes.extend_from_slice(&self.size.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 104 {
            return Err(format!("record of {} bytes", bytes.len()).into());
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        Ok(Record {
            sha256: bytes[0..32].try_into()?,
            sha1: bytes[32..52].try_into()?,
            md5: bytes[52..68].try_into()?,
            first: u64_at(68),
            last: u64_at(76),
            observations: u64_at(84),
            devices: u32::from_le_bytes(bytes[92..96].try_into()?),
            size: u64_at(96),
        })
    }

    fn carries(&self, index: Table, hash: &[u8]) -> bool {
        match index {
            Table::BySha256 => self.sha256 == hash,
            Table::BySha1 => self.sha1 == hash,
            _ => self.md5 == hash,
        }
    }
}

/// First and last sighting and the latest file name: 8 + 8 + 9 = 25 bytes.
fn encode_sighting(first: u64, last: u64, name: &[u8]) -> Vec<u8> {
    [&first.to_le_bytes()[..], &last.to_le_bytes(), name].concat()
}

fn file_name(file: u64) -> Vec<u8> {
    format!("{:05x}.dll", splitmix64(file) & 0xf_ffff).into_bytes()
}

#[derive(Default)]
struct Counts {
    new_files: u64,
    new_sightings: u64,
}

/// The store's merge, minus what this workload never exercises (conflicting hashes, linking two
/// records): index lookups stop at the first hit whose record already carries the other hashes.
fn ingest(engine: &mut dyn Engine, observations: &[Observation]) -> Result<Counts> {
    let mut counts = Counts::default();
    let mut next_id = 1u64;
    const TENANT: u32 = 1;
    for (batch_number, batch) in observations.chunks(BATCH).enumerate() {
        engine.begin_batch()?;
        // Per-batch caches, as in the store: whatever the batch touched is read from the engine once.
        let mut ids: HashMap<(Table, Vec<u8>), u64> = HashMap::new();
        let mut records: HashMap<u64, Record> = HashMap::new();
        let mut new_files: HashSet<u64> = HashSet::new();
        let mut new_index: Vec<Write> = Vec::new();
        let mut sightings: HashMap<[u8; 16], Vec<u8>> = HashMap::new();
        for (offset, observation) in batch.iter().enumerate() {
            let timestamp = 1_700_000_000 + (batch_number * BATCH + offset) as u64;
            let file = observation.file as u64;
            let hashes = Hashes::of(file);
            let mut found: Option<u64> = None;
            let mut unknown: Vec<(Table, &[u8])> = Vec::new();
            for (index, hash) in [
                (Table::BySha256, &hashes.sha256[..]),
                (Table::BySha1, &hashes.sha1[..]),
                (Table::ByMd5, &hashes.md5[..]),
            ] {
                if let Some(id) = found
                    && records[&id].carries(index, hash)
                {
                    continue;
                }
                let cache_key = (index, hash.to_vec());
                let id = match ids.get(&cache_key) {
                    Some(&id) => Some(id),
                    None => {
                        let id = engine
                            .get(index, hash)?
                            .map(|bytes| id_from(&bytes))
                            .transpose()?;
                        if let Some(id) = id {
                            ids.insert(cache_key, id);
                        }
                        id
                    }
                };
                match (id, found) {
                    (Some(id), None) => {
                        if !records.contains_key(&id) {
                            let bytes = engine
                                .get(Table::Files, &id.to_be_bytes())?
                                .ok_or("index points at no record")?;
                            records.insert(id, Record::decode(&bytes)?);
                        }
                        found = Some(id);
                    }
                    (Some(_), Some(_)) => {}
                    (None, _) => unknown.push((index, hash)),
                }
            }
            let id = found.unwrap_or_else(|| {
                let id = next_id;
                next_id += 1;
                let record = Record {
                    sha256: hashes.sha256,
                    sha1: hashes.sha1,
                    md5: hashes.md5,
                    first: timestamp,
                    last: timestamp,
                    observations: 0,
                    devices: 0,
                    size: 4096 + splitmix64(file ^ 0x51) % (1 << 24),
                };
                records.insert(id, record);
                new_files.insert(id);
                id
            });
            for (index, hash) in unknown {
                ids.insert((index, hash.to_vec()), id);
                new_index.push((index, hash.to_vec(), id.to_be_bytes().to_vec()));
            }
            let record = records.get_mut(&id).ok_or("lost a record")?;
            record.observations += 1;
            record.first = record.first.min(timestamp);
            record.last = record.last.max(timestamp);

            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&id.to_be_bytes());
            key[8..12].copy_from_slice(&TENANT.to_be_bytes());
            key[12..].copy_from_slice(&observation.device.to_be_bytes());
            let known = match sightings.get(&key) {
                Some(value) => Some(value.clone()),
                // A file this batch created has no sightings in the engine yet: no need to ask.
                None if new_files.contains(&id) => None,
                None => engine.get(Table::Sightings, &key)?,
            };
            let value = match known {
                Some(value) if value.len() >= 16 => {
                    let first = u64::from_le_bytes(value[..8].try_into()?);
                    let last = u64::from_le_bytes(value[8..16].try_into()?);
                    encode_sighting(first.min(timestamp), last.max(timestamp), &file_name(file))
                }
                Some(_) => return Err("short sighting".into()),
                None => {
                    record.devices += 1;
                    counts.new_sightings += 1;
                    encode_sighting(timestamp, timestamp, &file_name(file))
                }
            };
            sightings.insert(key, value);
        }
        counts.new_files += new_files.len() as u64;
        let mut writes = new_index;
        writes.extend(
            records
                .iter()
                .map(|(id, record)| (Table::Files, id.to_be_bytes().to_vec(), record.encode())),
        );
        writes.extend(
            sightings
                .into_iter()
                .map(|(key, value)| (Table::Sightings, key.to_vec(), value)),
        );
        // Key order is what a B-tree wants, and costs the LSM nothing; every engine gets the same.
        writes.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        engine.commit(writes)?;
    }
    Ok(counts)
}

fn id_from(bytes: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(
        bytes.try_into().map_err(|_| "id is not 8 bytes")?,
    ))
}

/// Mean microseconds per lookup over `files`, after one untimed pass to warm the caches.
fn time_lookups(engine: &dyn Engine, files: &[u64], index: Table) -> Result<f64> {
    let pass = || -> Result<()> {
        for &file in files {
            let hashes = Hashes::of(file);
            let hash: &[u8] = if index == Table::BySha256 {
                &hashes.sha256
            } else {
                &hashes.sha1
            };
            let record = engine
                .lookup(index, hash)?
                .ok_or_else(|| format!("file {file} not found"))?;
            if !Record::decode(&record)?.carries(index, hash) {
                return Err(format!("file {file}: the index led to another record").into());
            }
        }
        Ok(())
    };
    pass()?;
    let start = Instant::now();
    pass()?;
    Ok(start.elapsed().as_secs_f64() * 1e6 / files.len() as f64)
}

/// Allocated bytes, not apparent sizes: sparse or preallocated files count for what they occupy.
/// Only paths `counted` accepts add up, which lets fjall's write-ahead journal be shown apart.
fn disk_usage(path: &Path, counted: &dyn Fn(&Path) -> bool) -> Result<u64> {
    let metadata = std::fs::symlink_metadata(path)?;
    let mut total = if counted(path) {
        metadata.blocks() * 512
    } else {
        0
    };
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            total += disk_usage(&entry?.path(), counted)?;
        }
    }
    Ok(total)
}

fn everything(_: &Path) -> bool {
    true
}

/// fjall's journal: it only shrinks when it passes 64 MB and rotates, so it is a fixed cost of up
/// to that much rather than a per-file one.
fn journal(path: &Path) -> bool {
    path.extension().is_some_and(|extension| extension == "jnl")
}

struct Outcome {
    engine: &'static str,
    ingest_seconds: f64,
    observations_per_second: f64,
    disk_bytes: u64,
    journal_bytes: u64,
    bytes_per_file: f64,
    lookup_sha256_us: f64,
    lookup_sha1_us: f64,
}

fn run(
    name: &'static str,
    args: &Args,
    observations: &[Observation],
    expected_sightings: u64,
    lookups: &[u64],
) -> Result<Outcome> {
    let files = args.files;
    let dir = args
        .dir
        .join(format!("engine-compare-{name}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<Outcome> {
        let mut engine: Box<dyn Engine> = match name {
            "fjall" => Box::new(Fjall::open(&dir)?),
            "redb" => Box::new(Redb::open(&dir)?),
            "lmdb" => Box::new(Lmdb::open(&dir)?),
            other => return Err(format!("unknown engine {other}").into()),
        };
        let start = Instant::now();
        let counts = ingest(engine.as_mut(), observations)?;
        let ingest_seconds = start.elapsed().as_secs_f64();
        // The same logic on every engine must reach the same state; a miss would show here.
        if counts.new_files != files || counts.new_sightings != expected_sightings {
            return Err(format!(
                "{name}: {} files and {} sightings, expected {files} and {expected_sightings}",
                counts.new_files, counts.new_sightings
            )
            .into());
        }
        engine.flush()?;
        let bytes = disk_usage(&dir, &everything)?;
        let journal_bytes = disk_usage(&dir, &journal)?;
        let lookup_sha256_us = time_lookups(engine.as_ref(), lookups, Table::BySha256)?;
        let lookup_sha1_us = time_lookups(engine.as_ref(), lookups, Table::BySha1)?;
        eprintln!(
            "{name}: ingest {ingest_seconds:.1} s; {bytes} bytes on disk after flush ({journal_bytes} of them \
             journal), {} after the lookups",
            disk_usage(&dir, &everything)?
        );
        Ok(Outcome {
            engine: name,
            ingest_seconds,
            observations_per_second: observations.len() as f64 / ingest_seconds,
            disk_bytes: bytes,
            journal_bytes,
            bytes_per_file: bytes as f64 / files as f64,
            lookup_sha256_us,
            lookup_sha1_us,
        })
    })();
    if args.keep {
        eprintln!("{name}: kept {}", dir.display());
    } else {
        std::fs::remove_dir_all(&dir)?;
    }
    result
}

struct Args {
    files: u64,
    lookups: usize,
    engines: Vec<String>,
    dir: PathBuf,
    out: Option<PathBuf>,
    keep: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        files: 1_000_000,
        lookups: 200_000,
        engines: vec!["fjall".into(), "redb".into(), "lmdb".into()],
        dir: std::env::temp_dir(),
        out: None,
        keep: false,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--files" => args.files = value()?.replace('_', "").parse()?,
            "--lookups" => args.lookups = value()?.replace('_', "").parse()?,
            "--engines" => args.engines = value()?.split(',').map(str::to_owned).collect(),
            "--dir" => args.dir = value()?.into(),
            "--out" => args.out = Some(value()?.into()),
            "--keep" => args.keep = true,
            _ => return Err(format!("unknown argument {flag}; see the top of src/main.rs").into()),
        }
    }
    if args.files == 0 || args.files > u32::MAX as u64 {
        return Err("--files must be between 1 and 2^32 - 1".into());
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let observations = observations(args.files);
    let expected_sightings = observations
        .iter()
        .map(|o| (o.file, o.device))
        .collect::<HashSet<_>>()
        .len() as u64;
    let mut rng = Rng(0x100c);
    let lookups: Vec<u64> = (0..args.lookups).map(|_| rng.below(args.files)).collect();
    eprintln!(
        "{} files, {} observations ({expected_sightings} distinct sightings), batches of {BATCH}, {} lookups",
        args.files,
        observations.len(),
        args.lookups
    );
    let mut outcomes = Vec::new();
    for engine in &args.engines {
        let name = VERSIONS
            .iter()
            .map(|(name, _)| *name)
            .find(|name| name == engine)
            .ok_or_else(|| format!("unknown engine {engine}"))?;
        outcomes.push(run(
            name,
            &args,
            &observations,
            expected_sightings,
            &lookups,
        )?);
    }

    println!(
        "{:<22} {:>14} {:>11} {:>17} {:>15}",
        "engine", "ingest obs/s", "bytes/file", "lookup µs sha256", "lookup µs sha1"
    );
    for o in &outcomes {
        let version = VERSIONS
            .iter()
            .find(|(name, _)| *name == o.engine)
            .map_or("", |(_, v)| v);
        println!(
            "{:<22} {:>14.0} {:>11.1} {:>17.2} {:>15.2}",
            format!("{} {version}", o.engine),
            o.observations_per_second,
            o.bytes_per_file,
            o.lookup_sha256_us,
            o.lookup_sha1_us
        );
    }
    if let Some(out) = &args.out {
        let rows: Vec<String> = outcomes
            .iter()
            .map(|o| {
                let version = VERSIONS.iter().find(|(name, _)| *name == o.engine).map_or("", |(_, v)| v);
                format!(
                    "    {{\"engine\": \"{}\", \"version\": \"{version}\", \"ingest_seconds\": {:.3}, \"ingest_obs_per_s\": {:.0}, \"disk_bytes\": {}, \"journal_bytes\": {}, \"bytes_per_file\": {:.1}, \"lookup_us_sha256\": {:.3}, \"lookup_us_sha1\": {:.3}}}",
                    o.engine, o.ingest_seconds, o.observations_per_second, o.disk_bytes, o.journal_bytes, o.bytes_per_file, o.lookup_sha256_us, o.lookup_sha1_us
                )
            })
            .collect();
        let json = format!(
            "{{\n  \"files\": {},\n  \"observations\": {},\n  \"batch\": {BATCH},\n  \"lookups\": {},\n  \"engines\": [\n{}\n  ]\n}}\n",
            args.files,
            observations.len(),
            args.lookups,
            rows.join(",\n")
        );
        std::fs::write(out, json)?;
    }
    Ok(())
}
