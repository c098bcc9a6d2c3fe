//! Values as the embedded store writes them: a schema version byte, then postcard; and how
//! values an older version wrote are read and brought up to date.

use fileintel_core::{FileFacts, FileHashes, FileRecord, ReportedFacts, Sighting, Timestamp};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Written as the first byte of every value. Version 2 added names to sightings, activity to
/// devices and endpoint reports to file records; version 3 added each tenant's row to file
/// records. Values older versions wrote are still read.
pub(super) const SCHEMA_VERSION: u8 = 3;

impl From<fjall::Error> for StoreError {
    fn from(error: fjall::Error) -> Self {
        StoreError::Backend(error.to_string())
    }
}

pub(super) fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![SCHEMA_VERSION];
    // Encoding plain data into a Vec cannot fail.
    bytes.extend(postcard::to_stdvec(value).unwrap_or_default());
    bytes
}

pub(super) fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((version, rest)) if (1..=SCHEMA_VERSION).contains(version) => {
            postcard::from_bytes(rest).map_err(|error| corrupt(what, error))
        }
        Some((version, _)) => Err(corrupt(what, format!("unknown schema version {version}"))),
        None => Err(corrupt(what, "empty value")),
    }
}

pub(super) fn u64_value(what: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    bytes.try_into().map(u64::from_be_bytes).map_err(|_| corrupt(what, "not an 8-byte integer"))
}

pub(super) fn u32_value(what: &str, bytes: &[u8]) -> Result<u32, StoreError> {
    bytes.try_into().map(u32::from_be_bytes).map_err(|_| corrupt(what, "not a 4-byte integer"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct DeviceInfo {
    pub(super) tenant: u32,
    pub(super) device_id: String,
    pub(super) device_name: Option<String>,
    /// The device's first and last observation of any file.
    pub(super) first_seen: Option<Timestamp>,
    pub(super) last_seen: Option<Timestamp>,
    pub(super) os_platform: Option<String>,
}

/// `DeviceInfo` as schema version 1 wrote it.
#[derive(Deserialize)]
struct DeviceInfoV1 {
    tenant: u32,
    device_id: String,
    device_name: Option<String>,
}

/// Decodes a value whose layout changed in schema version 2: version 1 bytes are read as `Old`
/// and brought up to date by `upgrade`.
fn decode_upgraded<Old: for<'de> Deserialize<'de>, New: for<'de> Deserialize<'de>>(
    what: &str,
    bytes: &[u8],
    upgrade: impl FnOnce(Old) -> New,
) -> Result<New, StoreError> {
    match bytes.split_first() {
        Some((1, rest)) => postcard::from_bytes(rest).map(upgrade).map_err(|error| corrupt(what, error)),
        _ => decode(what, bytes),
    }
}

pub(super) fn decode_device_info(bytes: &[u8]) -> Result<DeviceInfo, StoreError> {
    decode_upgraded("device info", bytes, |old: DeviceInfoV1| DeviceInfo {
        tenant: old.tenant,
        device_id: old.device_id,
        device_name: old.device_name,
        first_seen: None,
        last_seen: None,
        os_platform: None,
    })
}

/// `FileRecord` as schema version 1 wrote it.
#[derive(Deserialize)]
struct FileRecordV1 {
    hashes: FileHashes,
    global_prevalence: u64,
    global_first_observed: Option<Timestamp>,
    global_last_observed: Option<Timestamp>,
    size: Option<u64>,
    facts: FileFacts,
}

/// `FileRecord` as schema version 2 wrote it.
#[derive(Deserialize)]
struct FileRecordV2 {
    hashes: FileHashes,
    global_prevalence: u64,
    global_first_observed: Option<Timestamp>,
    global_last_observed: Option<Timestamp>,
    size: Option<u64>,
    facts: FileFacts,
    reported: ReportedFacts,
}

pub(super) fn decode_record(bytes: &[u8]) -> Result<FileRecord, StoreError> {
    if let Some((2, rest)) = bytes.split_first() {
        let old: FileRecordV2 = postcard::from_bytes(rest).map_err(|error| corrupt("file record", error))?;
        return Ok(FileRecord {
            hashes: old.hashes,
            global_prevalence: old.global_prevalence,
            global_first_observed: old.global_first_observed,
            global_last_observed: old.global_last_observed,
            size: old.size,
            facts: old.facts,
            reported: old.reported,
            tenants: Vec::new(),
        });
    }
    decode_upgraded("file record", bytes, |old: FileRecordV1| FileRecord {
        hashes: old.hashes,
        global_prevalence: old.global_prevalence,
        global_first_observed: old.global_first_observed,
        global_last_observed: old.global_last_observed,
        size: old.size,
        facts: old.facts,
        reported: Default::default(),
        tenants: Vec::new(),
    })
}

/// `Sighting` as schema version 1 wrote it.
#[derive(Deserialize)]
struct SightingV1 {
    first: Timestamp,
    last: Timestamp,
    file_name: Option<String>,
}

pub(super) fn decode_sighting(bytes: &[u8]) -> Result<Sighting, StoreError> {
    decode_upgraded("sighting", bytes, |old: SightingV1| Sighting {
        first: old.first,
        last: old.last,
        names: old.file_name.iter().cloned().collect(),
        file_name: old.file_name,
    })
}
