//! Observations, the native feed: "this device saw this file at this time", one JSON object per line.

use std::borrow::Cow;

use crate::hash::{FileHashes, HashError, Md5, Sha1, Sha256};
use crate::time::{Timestamp, TimestampError};

/// The tenant an observation belongs to when it names none.
pub const DEFAULT_TENANT: &str = "default";

/// One device observing one file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Observation {
    pub tenant_id: String,
    pub device_id: String,
    pub device_name: Option<String>,
    pub timestamp: Timestamp,
    pub hashes: FileHashes,
    pub size: Option<u64>,
    pub file_name: Option<String>,
    pub folder_path: Option<String>,
    /// The device's operating system, where the telemetry names it (`Windows10`, `Linux`, ...).
    pub os_platform: Option<String>,
    /// What the endpoint reported about the file's signature and version information.
    pub reported: Option<Box<ReportedFacts>>,
}

/// The longest identifier anything keeps or looks up by: tenant ids, device ids and names, file
/// names, platforms, client ids, user names and source names. Keys are built from them (the
/// embedded store refuses keys over 64 KiB; rate-limit budgets are keyed by them), so every input
/// that becomes a key is held to this first.
pub const MAX_ID_BYTES: usize = 1024;

/// An identifier longer than [`MAX_ID_BYTES`]; the message names the field, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("field '{field}' is longer than {MAX_ID_BYTES} bytes")]
pub struct IdentifierTooLong {
    pub field: &'static str,
}

/// Checks one identifier against [`MAX_ID_BYTES`]: the one length rule for both stores, the
/// token endpoint and every API that looks something up by name.
pub fn check_identifier(field: &'static str, value: &str) -> Result<(), IdentifierTooLong> {
    match value.len() > MAX_ID_BYTES {
        true => Err(IdentifierTooLong { field }),
        false => Ok(()),
    }
}

impl Observation {
    /// The text fields a store keys on or keeps beside the keys, by their wire names.
    pub fn identifiers(&self) -> [(&'static str, Option<&String>); 5] {
        [
            ("tenantId", Some(&self.tenant_id)),
            ("deviceId", Some(&self.device_id)),
            ("deviceName", self.device_name.as_ref()),
            ("fileName", self.file_name.as_ref()),
            ("osPlatform", self.os_platform.as_ref()),
        ]
    }

    /// Why the observation's identifiers are too long to keep, if one is.
    pub fn oversized(&self) -> Option<String> {
        self.identifiers()
            .into_iter()
            .find_map(|(field, value)| value.and_then(|value| check_identifier(field, value).err()))
            .map(|error| error.to_string())
    }
}

/// Why one line of the feed was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObservationError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("missing required field '{0}'")]
    Missing(&'static str),
    #[error("field '{field}': {source}")]
    Hash { field: &'static str, source: HashError },
    #[error("field 'timestamp': {0}")]
    Timestamp(#[from] TimestampError),
    #[error("field '{0}' must not be empty")]
    Empty(&'static str),
    #[error("tenantId '{given}' is not the caller's tenant '{scope}'")]
    OtherTenant { given: String, scope: String },
    #[error(transparent)]
    TooLong(#[from] IdentifierTooLong),
}

// The wire form, borrowing from the input line wherever no unescaping is needed.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObservation<'a> {
    #[serde(borrow, default)]
    tenant_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    device_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    device_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sha1: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sha256: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    md5: Option<Cow<'a, str>>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(borrow, default)]
    file_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    folder_path: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    os_platform: Option<Cow<'a, str>>,
}

fn parse_hash<T>(
    field: &'static str,
    value: Option<Cow<'_, str>>,
    parse: fn(&str) -> Result<T, HashError>,
) -> Result<Option<T>, ObservationError> {
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => parse(text).map(Some).map_err(|source| ObservationError::Hash { field, source }),
    }
}

fn non_empty(value: Option<Cow<'_, str>>) -> Option<String> {
    value.filter(|text| !text.is_empty()).map(Cow::into_owned)
}

impl Observation {
    /// Parses one NDJSON line. Unknown fields are ignored so that newer writers can feed older readers.
    pub fn parse_json(line: &[u8]) -> Result<Self, ObservationError> {
        Self::parse_json_in(line, None)
    }

    /// Parses one line on behalf of a caller confined to `scope`: a line without `tenantId` is the
    /// scope's, and a line naming another tenant is refused.
    pub fn parse_json_in(line: &[u8], scope: Option<&str>) -> Result<Self, ObservationError> {
        let raw: RawObservation<'_> =
            serde_json::from_slice(line).map_err(|error| ObservationError::Json(error.to_string()))?;
        let device_id = raw.device_id.ok_or(ObservationError::Missing("deviceId"))?;
        if device_id.is_empty() {
            return Err(ObservationError::Empty("deviceId"));
        }
        let timestamp = Timestamp::parse(&raw.timestamp.ok_or(ObservationError::Missing("timestamp"))?)?;
        let hashes = FileHashes {
            sha1: parse_hash("sha1", raw.sha1, Sha1::parse)?,
            sha256: parse_hash("sha256", raw.sha256, Sha256::parse)?,
            md5: parse_hash("md5", raw.md5, Md5::parse)?,
        };
        if hashes.is_empty() {
            return Err(ObservationError::Missing("sha1, sha256 or md5"));
        }
        // Before the tenant is echoed in a rejection or anything is kept.
        if let Some(tenant) = &raw.tenant_id {
            check_identifier("tenantId", tenant)?;
        }
        check_identifier("deviceId", &device_id)?;
        let tenant_id = match (non_empty(raw.tenant_id), scope) {
            (Some(given), Some(scope)) if given != scope => {
                return Err(ObservationError::OtherTenant { given, scope: scope.to_owned() });
            }
            (Some(given), _) => given,
            (None, scope) => scope.unwrap_or(DEFAULT_TENANT).to_owned(),
        };
        Ok(Observation {
            tenant_id,
            device_id: device_id.into_owned(),
            device_name: non_empty(raw.device_name),
            timestamp,
            hashes,
            size: raw.size,
            file_name: non_empty(raw.file_name),
            folder_path: non_empty(raw.folder_path),
            os_platform: non_empty(raw.os_platform),
            reported: None,
        })
    }
}

/// Where a record sits in its input, in the unit its format counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Position {
    /// 1-based line number (NDJSON, JSON lines, CSV).
    Line(u64),
    /// An event log's own record id (`EventRecordID`).
    Record(u64),
    /// Byte offset into the input, where no record can be named (a corrupt event log chunk).
    Offset(u64),
}

impl std::fmt::Display for Position {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Line(line) => write!(formatter, "line {line}"),
            Position::Record(record) => write!(formatter, "record {record}"),
            Position::Offset(offset) => write!(formatter, "byte offset {offset}"),
        }
    }
}

/// The longest reason a [`Rejection`] keeps.
pub const MAX_REASON_BYTES: usize = 512;

/// A rejected input record: where it was and why. Serialized as `{"line": 3, "reason": ...}`
/// (or `record`, or `offset`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    /// The input it was in, when an import reads several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(flatten)]
    pub at: Position,
    pub reason: String,
}

impl Rejection {
    /// A rejection whose reason is cut to [`MAX_REASON_BYTES`]: reasons are for people, and may
    /// quote the input.
    pub fn new(at: Position, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            reason.push_str("...");
        }
        Rejection { input: None, at, reason }
    }
}

/// What the endpoint itself reported about a file it saw (Sysmon's `Signed`, `Signature`,
/// `Company`, ...): kept apart from fileintel's own analysis, which wins where it has an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ReportedFacts {
    pub signed: Option<bool>,
    /// The signer's name as the endpoint saw it.
    pub signature: Option<String>,
    /// `Valid`, `Expired`, `Revoked`, ... as the endpoint judged it.
    pub signature_status: Option<String>,
    pub company: Option<String>,
    pub product: Option<String>,
}

impl ReportedFacts {
    pub fn is_empty(&self) -> bool {
        *self == ReportedFacts::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "4388963aaa83afe2042a46a3c017ad50bdcdafb3";

    fn parse(text: &str) -> Result<Observation, ObservationError> {
        Observation::parse_json(text.as_bytes())
    }

    #[test]
    fn a_full_observation_parses() {
        let line = format!(
            r#"{{"tenantId":"contoso","deviceId":"d-1","deviceName":"ws-1","timestamp":"2026-11-20T08:15:30.1234567Z","sha1":"{}","size":42,"fileName":"setup.exe","folderPath":"C:\\Users\\a","extra":[1,2]}}"#,
            SHA1.to_uppercase()
        );
        let observation = parse(&line).unwrap();
        assert_eq!(observation.tenant_id, "contoso");
        assert_eq!(observation.device_name.as_deref(), Some("ws-1"));
        assert_eq!(observation.hashes.sha1.unwrap().to_string(), SHA1);
        assert_eq!(observation.folder_path.as_deref(), Some("C:\\Users\\a"));
        assert_eq!(observation.size, Some(42));
        assert_eq!(observation.timestamp.to_string(), "2026-11-20T08:15:30.1234567Z");
    }

    #[test]
    fn the_tenant_defaults_to_default() {
        let observation =
            parse(&format!(r#"{{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","sha1":"{SHA1}"}}"#)).unwrap();
        assert_eq!(observation.tenant_id, DEFAULT_TENANT);
    }

    #[test]
    fn a_scoped_caller_writes_only_its_own_tenant() {
        let line =
            |tenant: &str| format!(r#"{{{tenant}"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","sha1":"{SHA1}"}}"#);
        let own = Observation::parse_json_in(line("").as_bytes(), Some("contoso")).unwrap();
        assert_eq!(own.tenant_id, "contoso");
        let named = Observation::parse_json_in(line(r#""tenantId":"contoso","#).as_bytes(), Some("contoso")).unwrap();
        assert_eq!(named.tenant_id, "contoso");
        let other = Observation::parse_json_in(line(r#""tenantId":"fabrikam","#).as_bytes(), Some("contoso"));
        assert_eq!(other.unwrap_err().to_string(), "tenantId 'fabrikam' is not the caller's tenant 'contoso'");
    }

    #[test]
    fn each_kind_of_bad_line_says_why() {
        let cases = [
            ("{not json", "invalid JSON"),
            (r#"{"timestamp":"2026-01-01T00:00:00Z","sha1":"x"}"#, "missing required field 'deviceId'"),
            (r#"{"deviceId":"d","sha1":"x"}"#, "missing required field 'timestamp'"),
            (r#"{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z"}"#, "missing required field 'sha1, sha256 or md5'"),
            (r#"{"deviceId":"d","timestamp":"2026-01-01","sha1":"x"}"#, "field 'timestamp'"),
            (r#"{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","sha256":"abc"}"#, "field 'sha256'"),
            (r#"{"deviceId":"","timestamp":"2026-01-01T00:00:00Z","md5":"abc"}"#, "must not be empty"),
            (r#"{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","md5":"abc","size":-1}"#, "invalid JSON"),
        ];
        for (line, expected) in cases {
            let error = parse(line).unwrap_err().to_string();
            assert!(error.contains(expected), "{line}: {error}");
        }
    }
}
