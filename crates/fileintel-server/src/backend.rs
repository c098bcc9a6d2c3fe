//! Opening the store: the one way every command and the server open it, the embedded store in a
//! data directory or PostgreSQL, from plain settings (the binary's flags convert into them).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fileintel_postgres::{PgOptions, PgStore};
use fileintel_store::{FjallStore, Store, StoreError};

/// Where the store lives and how it is opened.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The embedded store's directory; with a database, only this process's own files (the
    /// admin socket) are there.
    pub data_dir: PathBuf,
    /// The embedded store's block cache.
    pub cache_bytes: u64,
    /// PostgreSQL instead of the embedded store.
    pub database: Option<DatabaseSettings>,
    /// Whether a missing data directory is created (commands that add data) or an error (those
    /// that read or change what exists, where it is most likely a mistyped path).
    pub create: bool,
    /// The `fileintel` command that the refusal suggests sending the data through a running
    /// server with (`fileintel COMMAND --server ...`) when a server holds the data directory;
    /// `None` suggests none.
    pub server_command: Option<String>,
}

impl StoreSettings {
    /// The embedded store in `data_dir` with the default cache, created if missing.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        StoreSettings {
            data_dir: data_dir.into(),
            cache_bytes: fileintel_store::DEFAULT_CACHE_BYTES,
            database: None,
            create: true,
            server_command: None,
        }
    }
}

/// PostgreSQL, shared by every replica.
#[derive(Clone)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:5432/db`, TLS as libpq's `sslmode` and `sslrootcert` say.
    pub url: String,
    /// How long a request waits for a pooled connection, then for each statement; writes may
    /// wait six times as long (at least 30 s), as they may queue behind another replica's write
    /// to the same files.
    pub timeout: Duration,
    /// Connections this process keeps at most.
    pub connections: usize,
}

/// Without the password: settings printed by mistake must not leak it.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DatabaseSettings")
            .field("url", &fileintel_postgres::address_without_password(&self.url).unwrap_or_else(|| "(hidden)".into()))
            .field("timeout", &self.timeout)
            .field("connections", &self.connections)
            .finish()
    }
}

impl DatabaseSettings {
    fn options(&self) -> PgOptions {
        let timeout = self.timeout.max(Duration::from_secs(1));
        PgOptions {
            max_connections: self.connections.max(1),
            connect_timeout: timeout,
            acquire_timeout: timeout,
            statement_timeout: timeout,
            write_timeout: (timeout * 6).max(Duration::from_secs(30)),
        }
    }
}

/// Why the store could not be opened, in words for the person who ran the command.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("connecting to PostgreSQL (--database-url)")]
    Database(#[source] StoreError),
    /// A running server holds the embedded store (with [`StoreSettings::server_command`]; without
    /// it, this is [`OpenError::Embedded`] with [`StoreError::Busy`]).
    #[error("{}", held_by_server(holder, command))]
    Busy { holder: String, command: String },
    #[error("the data directory {} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("opening the store in {}", data_dir.display())]
    Embedded {
        data_dir: PathBuf,
        #[source]
        source: StoreError,
    },
}

/// The store opened: the embedded one, or PostgreSQL. Each use case takes [`OpenedStore::shared`];
/// what only one backend has (the embedded store's lock holder and its flush) is reached here.
#[derive(Clone)]
pub enum OpenedStore {
    Embedded(FjallStore),
    Postgres(PgStore),
}

impl OpenedStore {
    /// The store as every use case takes it.
    pub fn shared(&self) -> Arc<dyn Store> {
        match self {
            OpenedStore::Embedded(store) => Arc::new(store.clone()),
            OpenedStore::Postgres(store) => Arc::new(store.clone()),
        }
    }

    /// Writes the embedded store's memtables out (everything committed is durable already):
    /// that spares the next open a journal replay and leaves the store compact. PostgreSQL has
    /// nothing to do.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self {
            OpenedStore::Embedded(store) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.flush())
                    .await
                    .map_err(|error| StoreError::Backend(format!("the flush task: {error}")))?
            }
            OpenedStore::Postgres(_) => Ok(()),
        }
    }
}

/// Opens the store the settings name: PostgreSQL (migrated) when they name a database, else the
/// embedded store in the data directory.
pub async fn open_store(settings: &StoreSettings) -> Result<OpenedStore, OpenError> {
    if let Some(database) = &settings.database {
        return Ok(OpenedStore::Postgres(connect_database(database).await?));
    }
    let data_dir = &settings.data_dir;
    if !settings.create && !data_dir.exists() {
        return Err(OpenError::Missing(data_dir.clone()));
    }
    match FjallStore::open_with(data_dir, settings.cache_bytes) {
        Ok(store) => Ok(OpenedStore::Embedded(store)),
        Err(StoreError::Busy(holder)) if settings.server_command.is_some() => {
            Err(OpenError::Busy { holder, command: settings.server_command.clone().unwrap_or_default() })
        }
        Err(source) => Err(OpenError::Embedded { data_dir: data_dir.clone(), source }),
    }
}

/// Connects to PostgreSQL, applying every migration not yet applied (under an advisory lock).
pub async fn connect_database(database: &DatabaseSettings) -> Result<PgStore, OpenError> {
    PgStore::connect(&database.url, database.options()).await.map_err(OpenError::Database)
}

/// What to do when a server holds the data directory: stop it, or send the data through it with
/// the `fileintel COMMAND --server` this prints, to paste as it is once TOKEN holds a token.
pub fn held_by_server(holder: &str, command: &str) -> String {
    let stop = format!("{holder}.\nThe embedded store takes one process at a time.");
    match holder.split("listening on ").nth(1) {
        Some(address) if address.starts_with("http://") => format!(
            "{stop} Stop that server, or send the data through it with an access token in TOKEN (of an \
             application with File.ReadWrite.All):\n  fileintel {command} --server {address} --token \"$TOKEN\" FILE..."
        ),
        // --server speaks plain HTTP only, so there is no command to offer.
        Some(_) => format!("{stop} Stop that server first: it serves HTTPS, which --server does not take."),
        None => format!("{stop} Stop that process first."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_settings_printed_by_mistake_do_not_show_the_password() {
        let settings = DatabaseSettings {
            url: "postgres://app:hunter2@db.internal:5433/fileintel".into(),
            timeout: Duration::from_secs(5),
            connections: 4,
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("app@db.internal:5433/fileintel"), "{printed}");
    }

    #[tokio::test]
    async fn a_missing_data_directory_is_created_only_when_the_settings_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut settings = StoreSettings::embedded(&data_dir);
        settings.create = false;
        let Err(error) = open_store(&settings).await else { panic!("opened a missing directory") };
        assert_eq!(error.to_string(), format!("the data directory {} does not exist", data_dir.display()));
        assert!(!data_dir.exists());
        settings.create = true;
        assert!(matches!(open_store(&settings).await, Ok(OpenedStore::Embedded(_))));
    }

    #[tokio::test]
    async fn a_held_store_is_refused_naming_the_holder_and_the_command_to_use_instead() {
        let dir = tempfile::tempdir().unwrap();
        let held = FjallStore::open(dir.path()).unwrap();
        held.describe_holder("fileintel serve (pid 1) listening on http://127.0.0.1:8080").unwrap();
        let mut settings = StoreSettings::embedded(dir.path());
        settings.server_command = Some("ingest".into());
        let Err(error) = open_store(&settings).await else { panic!("opened a held store") };
        let message = error.to_string();
        assert!(message.contains("listening on http://127.0.0.1:8080"), "{message}");
        assert!(message.contains("fileintel ingest --server http://127.0.0.1:8080 --token"), "{message}");
        settings.server_command = None;
        let Err(error) = open_store(&settings).await else { panic!("opened a held store") };
        assert_eq!(error.to_string(), format!("opening the store in {}", dir.path().display()));
        assert!(matches!(error, OpenError::Embedded { source: StoreError::Busy(_), .. }));
    }
}
