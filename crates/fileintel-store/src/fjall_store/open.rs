//! Opening the embedded store: its private data directory, the lock file that keeps a second
//! process out (and tells it who holds the store), and the keyspaces.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use fileintel_core::Timestamp;
use fjall::Database;

use super::codec::decode;
use super::{Counters, FjallStore, Inner, Keyspaces, Writer};
use crate::StoreError;

const LOCK_FILE: &str = "fileintel.lock";
/// Point lookups read a filter, an index and a data block per table: at 10 million files the
/// filters and index blocks alone take about 100 MiB, and every one not cached costs a read.
pub const DEFAULT_CACHE_BYTES: u64 = 160 << 20;

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
        let keyspaces = Keyspaces::open(&db)?;
        let stored = keyspaces.meta.get("counters")?;
        // A store written by schema version 1 has sightings but no window entries yet; one of
        // version 1 or 2, no per-tenant rows.
        let written_by = stored.as_ref().and_then(|bytes| bytes.first().copied());
        let from_version_1 = written_by == Some(1);
        let before_tenant_rows = written_by.is_some_and(|version| version < 3);
        let counters = match stored {
            Some(bytes) => decode("counters", &bytes)?,
            None => Counters { next_file: 1, next_device: 1, next_tenant: 1, files: 0, partial: 0 },
        };
        let inner = Inner {
            verdict_writes: Mutex::new(()),
            has_verdicts: std::sync::atomic::AtomicBool::new(keyspaces.verdicts.first_key_value().is_some()),
            identity_generation: std::sync::atomic::AtomicU64::new(1),
            keyspaces,
            db,
            writer: Mutex::new(Writer {
                counters,
                horizon: Timestamp(i64::MIN),
                tenants: HashMap::new(),
                tenant_names: HashMap::new(),
                devices: HashMap::new(),
            }),
            lock: Mutex::new(lock),
        };
        let store = FjallStore { inner: Arc::new(inner) };
        if from_version_1 {
            store.inner.rebuild_windows(&mut *store.inner.writer()?)?;
        }
        if before_tenant_rows {
            tracing::info!("counting each tenant's devices of every file (a store written before tenant trust)");
            store.inner.rebuild_tenant_files(&mut *store.inner.writer()?)?;
        }
        // What the journal replayed sits in memtables, whose skiplist lookups cost several times
        // a lookup in a table on disk: write it out before serving.
        store.flush()?;
        Ok(store)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
