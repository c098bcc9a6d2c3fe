//! The pure core of fileintel: file hashes, observations, file records, determinations and the MDE
//! `File` entity. No I/O, no async: everything here is a value and a function over values.
//!
//! Principal types: [`FileHash`] (any one hash, as a client names a file), [`FileHashes`] (all the
//! hashes known for one file), [`Observation`] (a device saw a file at a time), [`FileRecord`] (what
//! the store keeps per file) and [`FileEntity`] (its JSON on the wire).
//!
//! ```
//! use fileintel_core::{FileHash, Observation};
//! let hash = FileHash::parse("4388963AAA83AFE2042A46A3C017AD50BDCDAFB3").unwrap();
//! assert_eq!(hash.to_string(), "4388963aaa83afe2042a46a3c017ad50bdcdafb3");
//! let line = br#"{"deviceId":"d-1","timestamp":"2026-11-20T08:15:30Z","sha1":"4388963aaa83afe2042a46a3c017ad50bdcdafb3"}"#;
//! let observation = Observation::parse_json(line).unwrap();
//! assert_eq!(observation.tenant_id, "default");
//! ```

pub mod determination;
pub mod entity;
pub mod hash;
pub mod identity;
pub mod indicator;
pub mod ndjson;
pub mod observation;
pub mod record;
pub mod time;
pub mod trust;

pub use determination::{Decision, Verdict, VerdictSource, decide};
pub use entity::{FileEntity, file_entity_context};
pub use hash::{FileHash, FileHashes, HashError, Md5, PairingConflict, Resolution, Sha1, Sha256};
pub use identity::{Application, SigningKey, User};
pub use indicator::Indicator;
pub use ndjson::{IngestSummary, NdjsonReader, ParsedBatch, RejectionList};
pub use observation::{
    DEFAULT_TENANT, IdentifierTooLong, MAX_ID_BYTES, MAX_REASON_BYTES, Observation, ObservationError, Position,
    Rejection, ReportedFacts, check_identifier,
};
pub use record::{
    DeterminationType, FactSource, FactSources, FileFacts, FileRecord, NAMES_PER_SIGHTING, Sighting, top_names,
};
pub use time::{
    AcceptedTimes, DEFAULT_CLOCK_SKEW_SECONDS, EARLIEST_OBSERVATION, MAX_LOOKBACK_HOURS, TICKS_PER_DAY, TICKS_PER_HOUR,
    TICKS_PER_SECOND, Timestamp, TimestampError, WINDOW_HORIZON_HOURS,
};
pub use trust::{TenantFile, Trust, Viewer};
