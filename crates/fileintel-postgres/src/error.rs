//! How driver and pool errors become [`StoreError`]s, and which failures are worth a retry.

use deadpool_postgres::PoolError;
use fileintel_store::StoreError;
use tokio_postgres::error::SqlState;

/// Why one attempt at a transaction failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Db(tokio_postgres::Error),
    Pool(PoolError),
    /// Another replica changed what this transaction had read (it created a file this one was
    /// about to create): running the transaction again reads the change.
    Raced(&'static str),
    /// A failure that is already the store's answer, such as a conflicting pairing in `put_facts`.
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        Failure::Db(error)
    }
}

impl From<PoolError> for Failure {
    fn from(error: PoolError) -> Self {
        Failure::Pool(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

/// For the log: what the store would say of it, without the driver's internals.
impl std::fmt::Display for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Db(error) => formatter.write_str(&describe(error)),
            Failure::Pool(error) => write!(formatter, "connection pool: {error}"),
            Failure::Raced(what) => write!(formatter, "raced another writer: {what}"),
            Failure::Store(error) => write!(formatter, "{error}"),
        }
    }
}

impl Failure {
    /// Whether running the whole transaction again can succeed: a serialization failure or a
    /// deadlock (PostgreSQL's advice is to retry both), a unique violation (a key another writer
    /// committed after this transaction looked; hash claims report that as `Raced` themselves),
    /// or a race this store detected.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            Failure::Db(error) => {
                [SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED, SqlState::UNIQUE_VIOLATION]
                    .iter()
                    .any(|code| error.code() == Some(code))
            }
            Failure::Raced(_) => true,
            Failure::Pool(_) | Failure::Store(_) => false,
        }
    }

    pub(crate) fn into_store_error(self) -> StoreError {
        match self {
            Failure::Db(error) => classify(&error),
            Failure::Pool(error) => classify_pool(error),
            Failure::Raced(what) => StoreError::Backend(format!("kept racing other writers: {what}")),
            Failure::Store(error) => error,
        }
    }
}

/// The store error for a driver error: the server or the connection going away, and statements
/// that ran out of time, are `Unavailable` (worth trying again later); anything else is `Backend`.
pub(crate) fn classify(error: &tokio_postgres::Error) -> StoreError {
    let text = describe(error);
    if let Some(code) = error.code() {
        let unavailable = code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::QUERY_CANCELED,
            ]
            .contains(code);
        return if unavailable { StoreError::Unavailable(text) } else { StoreError::Backend(text) };
    }
    // A server certificate refused stays refused however often it is tried: the address or
    // its CA file is wrong, which is no outage.
    if refused_certificate(error) {
        return StoreError::Backend(text);
    }
    // Without a SQLSTATE: the connection closed, or the socket failed (connecting included,
    // whose time-out is an I/O error too). Errors in our own encoding or decoding are bugs.
    let io = std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>());
    if error.is_closed() || io { StoreError::Unavailable(text) } else { StoreError::Backend(text) }
}

/// Whether the TLS handshake failed on the server's certificate: the driver's TLS error holds
/// the connector's I/O error, which holds rustls's.
fn refused_certificate(error: &tokio_postgres::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented))
}

fn classify_pool(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => classify(&error),
        PoolError::Timeout(kind) => {
            let what = match kind {
                deadpool_postgres::TimeoutType::Wait => "waiting for a free connection",
                deadpool_postgres::TimeoutType::Create => "connecting",
                deadpool_postgres::TimeoutType::Recycle => "checking a pooled connection",
            };
            StoreError::Unavailable(format!("no PostgreSQL connection became free in time ({what} took too long)"))
        }
        PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
        other => StoreError::Backend(format!("connection pool: {other}")),
    }
}

/// The driver's text with the server's message, detail and code where there are some: the
/// driver's own `Display` for a database error says only "db error".
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("PostgreSQL {}: {} ({})", db.severity(), db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            text
        }
        None => match std::error::Error::source(error) {
            Some(source) => format!("PostgreSQL: {error}: {source}"),
            None => format!("PostgreSQL: {error}"),
        },
    }
}
