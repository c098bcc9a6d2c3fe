//! Reading files back: a record by any of its hashes, a tenant's devices, and its window stats,
//! each in one indexed query.

use fileintel_core::{FileHash, FileHashes, FileRecord, Md5, Sha1, Sha256, Timestamp};
use fileintel_store::{DeviceSighting, OrgFileStats, StoreError};
use serde::{Serialize, de::DeserializeOwned};
use tokio_postgres::Row;

use crate::error::Failure;

/// The columns [`record_from_row`] reads, in its order, from `files` named `f`.
macro_rules! record_columns {
    () => {
        "f.id, f.sha1, f.sha256, f.md5, f.all_devices, f.first_observed, f.last_observed, f.size, \
         f.facts::text, f.reported::text, f.tenants::text"
    };
}

/// Locks the records that any of the given MD5s (`$1`), SHA-1s (`$2`) or SHA-256s (`$3`) name,
/// in id order.
pub(crate) const LOAD_RECORDS: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM files AS f",
    " WHERE f.id IN (SELECT h.file_id FROM file_hashes AS h",
    " WHERE (h.kind = 0 AND h.hash = ANY($1::bytea[]))",
    " OR (h.kind = 1 AND h.hash = ANY($2::bytea[]))",
    " OR (h.kind = 2 AND h.hash = ANY($3::bytea[])))",
    " ORDER BY f.id FOR UPDATE OF f"
);

pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> Failure {
    Failure::Store(StoreError::Corrupt(format!("{what}: {error}")))
}

pub(crate) fn to_json<T: Serialize>(what: &str, value: &T) -> Result<String, Failure> {
    serde_json::to_string(value)
        .map_err(|error| Failure::Store(StoreError::Backend(format!("encoding {what}: {error}"))))
}

pub(crate) fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, Failure> {
    serde_json::from_str(text).map_err(|error| corrupt(what, error))
}

/// The hash's key in `file_hashes` (and `verdicts`): its kind (0 MD5, 1 SHA-1, 2 SHA-256, as
/// fjall numbers them) and its bytes.
pub(crate) fn hash_key(hash: &FileHash) -> (i16, &[u8]) {
    match hash {
        FileHash::Md5(hash) => (0, &hash.0),
        FileHash::Sha1(hash) => (1, &hash.0),
        FileHash::Sha256(hash) => (2, &hash.0),
    }
}

fn hash_at<T>(row: &Row, index: usize, parse: fn(&[u8]) -> Option<T>, what: &str) -> Result<Option<T>, Failure> {
    match row.try_get::<_, Option<&[u8]>>(index)? {
        Some(bytes) => parse(bytes).map(Some).ok_or_else(|| corrupt(what, format!("{} bytes", bytes.len()))),
        None => Ok(None),
    }
}

/// A record and its id from the first eleven columns of a row (`record_columns!`).
pub(crate) fn record_from_row(row: &Row) -> Result<(i64, FileRecord), Failure> {
    let id: i64 = row.try_get(0)?;
    let record = FileRecord {
        hashes: FileHashes {
            sha1: hash_at(row, 1, Sha1::from_slice, "stored SHA-1")?,
            sha256: hash_at(row, 2, Sha256::from_slice, "stored SHA-256")?,
            md5: hash_at(row, 3, Md5::from_slice, "stored MD5")?,
        },
        global_prevalence: u64::try_from(row.try_get::<_, i64>(4)?).map_err(|error| corrupt("prevalence", error))?,
        global_first_observed: row.try_get::<_, Option<i64>>(5)?.map(Timestamp),
        global_last_observed: row.try_get::<_, Option<i64>>(6)?.map(Timestamp),
        // The bits of a u64, as written (see `writer::to_sql`).
        size: row.try_get::<_, Option<i64>>(7)?.map(|size| size as u64),
        facts: from_json("file facts", row.try_get(8)?)?,
        reported: from_json("endpoint report", row.try_get(9)?)?,
        tenants: from_json("tenant rows", row.try_get(10)?)?,
    };
    Ok((id, record))
}

/// The record the hash of kind `$1` and bytes `$2` names.
pub(crate) const GET_FILE: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM file_hashes AS h JOIN files AS f ON f.id = h.file_id WHERE h.kind = $1 AND h.hash = $2"
);

/// A lookup in one statement: the record the hash of kind `$1` and bytes `$2` names (its
/// columns null when none does), and every verdict stored under any of its hashes (under `$2`
/// alone when no record has it) as JSON text, in fjall's order of visiting: hash kind, then
/// source. The hash of kind `$1` is `$2` either way, so each kind's key is `$2` or the record's.
pub(crate) const FILE_AND_VERDICTS: &str = concat!(
    "SELECT ",
    record_columns!(),
    ",
        ARRAY(SELECT v.verdict::text FROM verdicts AS v
              WHERE (v.hash_kind = 0 AND v.hash = CASE WHEN k.kind = 0 THEN k.hash ELSE f.md5 END)
                 OR (v.hash_kind = 1 AND v.hash = CASE WHEN k.kind = 1 THEN k.hash ELSE f.sha1 END)
                 OR (v.hash_kind = 2 AND v.hash = CASE WHEN k.kind = 2 THEN k.hash ELSE f.sha256 END)
              ORDER BY v.hash_kind, v.source)
     FROM (SELECT $1::int2 AS kind, $2::bytea AS hash) AS k
     LEFT JOIN file_hashes AS h ON h.kind = k.kind AND h.hash = k.hash
     LEFT JOIN files AS f ON f.id = h.file_id"
);

/// The devices of tenant `$3` that saw the file the hash (`$1`, `$2`) names.
pub(crate) const FILE_DEVICES: &str = "
    SELECT s.device_id, d.device_name, s.first_seen, s.last_seen, s.file_name,
           d.first_seen, d.last_seen, d.os_platform
    FROM file_hashes AS h
    JOIN sightings AS s ON s.file_id = h.file_id AND s.tenant = $3
    LEFT JOIN devices AS d ON d.tenant = s.tenant AND d.device_id = s.device_id
    WHERE h.kind = $1 AND h.hash = $2";

pub(crate) fn device_from_row(row: &Row) -> Result<DeviceSighting, Failure> {
    Ok(DeviceSighting {
        device_id: row.try_get(0)?,
        device_name: row.try_get(1)?,
        first_seen: Timestamp(row.try_get(2)?),
        last_seen: Timestamp(row.try_get(3)?),
        file_name: row.try_get(4)?,
        device_first_seen: row.try_get::<_, Option<i64>>(5)?.map(Timestamp),
        device_last_seen: row.try_get::<_, Option<i64>>(6)?.map(Timestamp),
        os_platform: row.try_get(7)?,
    })
}

/// The file the hash (`$1`, `$2`) names as tenant `$3` saw it since `$4`, in one statement, so
/// from one snapshot (as fjall reads a window from one snapshot): the record; the tenant's first
/// and last observation times at or after `$4`; its devices whose last sighting is at or after
/// `$4` (a range of `sightings_by_last_seen`); and the names those devices saw the file under
/// since `$4` by `Sighting::names_since` (the latest name, and every name when the whole
/// sighting is that late), the most devices first, ties in byte order (`top_names`).
pub(crate) const FILE_STATS: &str = concat!(
    "SELECT ",
    record_columns!(),
    ",
        (SELECT min(o.time) FROM observation_times AS o
         WHERE o.file_id = f.id AND o.tenant = $3 AND o.time >= $4),
        (SELECT max(o.time) FROM observation_times AS o
         WHERE o.file_id = f.id AND o.tenant = $3 AND o.time >= $4),
        (SELECT count(*) FROM sightings AS s
         WHERE s.file_id = f.id AND s.tenant = $3 AND s.last_seen >= $4),
        ARRAY(SELECT n.name
              FROM sightings AS s CROSS JOIN LATERAL (
                  SELECT DISTINCT name FROM unnest(
                      CASE WHEN s.first_seen >= $4 THEN array_append(s.names, s.file_name)
                           ELSE ARRAY[s.file_name] END) AS name
                  WHERE name IS NOT NULL) AS n
              WHERE s.file_id = f.id AND s.tenant = $3 AND s.last_seen >= $4
              GROUP BY n.name
              ORDER BY count(*) DESC, n.name COLLATE \"C\"
              LIMIT $5)
     FROM file_hashes AS h JOIN files AS f ON f.id = h.file_id
     WHERE h.kind = $1 AND h.hash = $2"
);

pub(crate) fn stats_from_row(row: &Row) -> Result<OrgFileStats, Failure> {
    let (_, record) = record_from_row(row)?;
    let prevalence: i64 = row.try_get(13)?;
    Ok(OrgFileStats {
        record,
        prevalence: u64::try_from(prevalence).unwrap_or_default(),
        first_seen: row.try_get::<_, Option<i64>>(11)?.map(Timestamp),
        last_seen: row.try_get::<_, Option<i64>>(12)?.map(Timestamp),
        top_file_names: row.try_get(14)?,
    })
}
