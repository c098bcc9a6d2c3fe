//! For tests, this crate's and the binary's: each test gets a database of its own on the server
//! that `FILEINTEL_TEST_DATABASE_URL` names, dropped again when the test ends; and for
//! benchmarks, a database made afresh under a given name. Not for serving.

use std::hash::{BuildHasher, Hasher};

use fileintel_store::StoreError;

use crate::{PgOptions, PgStore};

pub const URL_VARIABLE: &str = "FILEINTEL_TEST_DATABASE_URL";

/// A database created for one test; dropping it drops the database (connections and all).
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// The address of the test's own database.
    pub url: String,
}

/// The server to test against, or `None` (with the notice printed) when none is configured;
/// under CI, where one always is, a missing one fails the test instead.
pub fn server_url() -> Option<String> {
    fileintel_testing::env_or_skip(URL_VARIABLE, "to a PostgreSQL the tests may make databases on")
}

/// `url` with its database replaced by `name`, for URLs (`postgres://host/db?x=y`) and for
/// key-value strings (`host=... dbname=...`, where a later key wins).
pub fn with_database(url: &str, name: &str) -> String {
    let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) else {
        return format!("{url} dbname={name}");
    };
    let scheme = &url[..url.len() - rest.len()];
    let (address, query) = match rest.find('?') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let authority = address.split('/').next().unwrap_or(address);
    format!("{scheme}{authority}/{name}{query}")
}

fn random_hex() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    format!("{:016x}", hasher.finish())
}

/// A driver connection to `url` outside any pool, over TLS as its `sslmode` says (as
/// [`PgStore::connect`] reads it), its connection task running until the client is dropped.
async fn driver_connection(url: &str) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), StoreError> {
    let crate::tls::Connection { config, tls, .. } = crate::tls::read(url)?;
    let (client, connection) = config.connect(tls).await.map_err(|error| crate::error::classify(&error))?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, connection))
}

async fn admin(url: &str) -> tokio_postgres::Client {
    driver_connection(url).await.expect("connecting to the test server").0
}

/// Makes the database `name` afresh (dropping what was there) on the server at `server_url` and
/// returns its address: for benchmarks, which keep theirs after the run to be looked at.
pub async fn recreate_database(server_url: &str, name: &str) -> Result<String, StoreError> {
    let (client, connection) = driver_connection(server_url).await?;
    let run = async |statement: String| {
        client.batch_execute(&statement).await.map_err(|error| crate::error::classify(&error))
    };
    run(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    run(format!("CREATE DATABASE {name}")).await?;
    drop(client);
    let _ = connection.await;
    Ok(with_database(server_url, name))
}

impl TestDatabase {
    /// Creates an empty database `fileintel_t_<random hex>` on the server at `admin_url`.
    pub async fn create(admin_url: &str) -> TestDatabase {
        let name = format!("fileintel_t_{}", random_hex());
        let client = admin(admin_url).await;
        let mut attempt = 0;
        // CREATE DATABASE copies template1 and fails while another session is creating one
        // from it too: tests create theirs in parallel.
        while let Err(error) = client.batch_execute(&format!("CREATE DATABASE {name}")).await {
            attempt += 1;
            assert!(attempt < 20, "creating {name}: {error}");
            tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
        }
        TestDatabase { admin_url: admin_url.to_owned(), url: with_database(admin_url, &name), name }
    }

    /// A client of the test's database, for looking at tables directly.
    pub async fn client(&self) -> tokio_postgres::Client {
        admin(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // On a thread with a runtime of its own: a test's runtime may be shutting down, and
        // a runtime cannot be started inside one.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async {
                let (client, connection) = driver_connection(&admin_url).await?;
                let dropped = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|error| crate::error::classify(&error));
                drop(client);
                let _ = connection.await;
                dropped
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: the test database {} was not dropped: {dropped:?}", self.name);
        }
    }
}

/// A fresh store on a database of its own, or `None` when no server is configured.
pub async fn fresh() -> Option<(PgStore, TestDatabase)> {
    let url = server_url()?;
    let database = TestDatabase::create(&url).await;
    let store = PgStore::connect(&database.url, PgOptions::default()).await.expect("connecting a PgStore");
    Some((store, database))
}
