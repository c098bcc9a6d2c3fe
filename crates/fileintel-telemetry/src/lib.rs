//! Importers for endpoint telemetry. Each format has a [`Decoder`] that reads its input as a
//! stream (memory stays flat whatever the input size) and yields [`ParsedBatch`]es: observations
//! with their positions, and every record it could not take with its position and reason.
//!
//! | format        | input                                                                    |
//! |---------------|--------------------------------------------------------------------------|
//! | `ndjson`      | fileintel's native observations, one JSON object per line               |
//! | `evtx`        | Windows event logs with Sysmon events                                    |
//! | `sysmon-json` | Sysmon events as JSON lines, flat (NXLog) or ECS (Winlogbeat)            |
//! | `mde-csv`     | MDE advanced-hunting CSV exports (DeviceFile/Process/ImageLoadEvents)    |
//! | `mde-json`    | MDE Streaming API records, one record or `{"records": [...]}` per line   |
//!
//! ```
//! use fileintel_telemetry::{Format, decoder};
//! let input = br#"{"deviceId":"d","timestamp":"2026-01-01T00:00:00Z","sha1":"4388963aaa83afe2042a46a3c017ad50bdcdafb3"}"#;
//! let mut decoder = decoder(None, std::io::Cursor::new(&input[..]), None).unwrap();
//! let batch = decoder.next_batch(1000).unwrap().unwrap();
//! assert_eq!(batch.observations.len(), 1);
//! ```

use std::io::{self, BufRead, BufReader, Read};

use fileintel_core::{DEFAULT_TENANT, NdjsonReader, ParsedBatch};

mod binxml;
mod evtx_log;
mod lines;
pub mod mde;
pub mod sysmon;
pub mod sysmon_json;

/// The shared Sysmon logs the tests read in place: `FILEINTEL_TESTDATA` (a folder holding
/// `evtx/`), or `shared/testdata` beside the checkout (`../shared/testdata`, found by walking up
/// from this crate).
#[doc(hidden)]
pub fn shared_evtx_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("FILEINTEL_TESTDATA") {
        return std::path::PathBuf::from(dir).join("evtx");
    }
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .ancestors()
        .map(|dir| dir.join("shared/testdata/evtx"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| crate_dir.join("../../../shared/testdata/evtx"))
}

/// Bytes of the input looked at to tell its format.
const DETECT_BYTES: usize = 1 << 20;
const READ_BUFFER: usize = 256 << 10;
/// How far into a JSON document spread over many lines detection looks.
const DETECT_WINDOW: usize = 64 << 10;

/// An input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Evtx,
    SysmonJson,
    MdeCsv,
    MdeJson,
}

impl Format {
    pub const ALL: [Format; 5] = [Format::Ndjson, Format::Evtx, Format::SysmonJson, Format::MdeCsv, Format::MdeJson];

    pub fn name(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Evtx => "evtx",
            Format::SysmonJson => "sysmon-json",
            Format::MdeCsv => "mde-csv",
            Format::MdeJson => "mde-json",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Format::ALL.into_iter().find(|format| format.name().eq_ignore_ascii_case(text)).ok_or_else(|| {
            let names: Vec<&str> = Format::ALL.iter().map(|format| format.name()).collect();
            format!("unknown format '{text}': expected one of {}", names.join(", "))
        })
    }
}

/// Why an input could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "cannot tell the input's format: {0}; name it (--format, or ?format= over HTTP) as one of ndjson, evtx, sysmon-json, mde-csv, mde-json"
    )]
    Undetected(String),
    #[error("reading the input: {0}")]
    Io(#[from] io::Error),
}

/// Tells a format from the first bytes of an input.
pub fn detect(prefix: &[u8]) -> Result<Format, String> {
    if prefix.starts_with(evtx_log::FILE_MAGIC) {
        return Ok(Format::Evtx);
    }
    let prefix = prefix.strip_prefix(b"\xef\xbb\xbf").unwrap_or(prefix);
    let start = prefix.iter().position(|byte| !byte.is_ascii_whitespace());
    let Some(start) = start else { return Err("the input is empty".into()) };
    let rest = &prefix[start..];
    let first_line = rest.split(|&byte| byte == b'\n').next().unwrap_or(rest);
    if rest[0] == b'{' {
        let value: serde_json::Value = match serde_json::from_slice(first_line) {
            Ok(value) => value,
            // A document over many lines: a Streaming API message written out whole.
            Err(_)
                if memchr::memmem::find(rest, b"\"records\"").is_some()
                    && memchr::memmem::find(rest, b"AdvancedHunting-").is_some() =>
            {
                return Ok(Format::MdeJson);
            }
            Err(error) => return Err(format!("the first line is not a complete JSON object ({error})")),
        };
        if mde::looks_like(&value) {
            return Ok(Format::MdeJson);
        }
        if let Some(object) = value.as_object() {
            if sysmon_json::looks_like(object) {
                return Ok(Format::SysmonJson);
            }
            if object.contains_key("deviceId") && object.contains_key("timestamp") {
                return Ok(Format::Ndjson);
            }
        }
        return Err("the first line is JSON, but neither an observation, a Sysmon event nor an MDE record".into());
    }
    let line = String::from_utf8_lossy(first_line);
    if mde::is_header(&line) {
        return Ok(Format::MdeCsv);
    }
    Err("it is neither an event log, JSON lines, nor a CSV export with Timestamp and DeviceId columns".into())
}

/// The first bytes of an input, as many as [`detect`] needs to tell its format: up to the end of
/// the first line (within a bound), further for JSON written over many lines. Whoever reads the
/// input afterwards starts with these bytes.
pub fn read_prefix<R: Read>(input: &mut R) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::new();
    let mut buffer = [0u8; 8192];
    while prefix.len() < DETECT_BYTES && !prefix.contains(&b'\n') {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        prefix.extend_from_slice(&buffer[..read]);
        if prefix.starts_with(evtx_log::FILE_MAGIC) {
            break;
        }
    }
    // JSON written over many lines: look further for what kind it is.
    let trimmed = prefix.trim_ascii_start();
    let first_line = trimmed.split(|&byte| byte == b'\n').next().unwrap_or(trimmed);
    if trimmed.starts_with(b"{") && serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_err() {
        while prefix.len() < DETECT_WINDOW {
            match input.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => prefix.extend_from_slice(&buffer[..read]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
    }
    Ok(prefix)
}

/// Reads one input as a stream of parsed batches.
pub trait Decoder: Send {
    /// The next batch of at most about `max` observations, with the rejections met on the way;
    /// `None` once the input is exhausted. Only I/O failures are errors: a bad record is a rejection.
    fn next_batch(&mut self, max: usize) -> io::Result<Option<ParsedBatch>>;
}

struct NdjsonDecoder<R> {
    input: R,
    reader: NdjsonReader,
    finished: bool,
}

impl<R: BufRead + Send> Decoder for NdjsonDecoder<R> {
    fn next_batch(&mut self, max: usize) -> io::Result<Option<ParsedBatch>> {
        if self.finished {
            return Ok(None);
        }
        while self.reader.pending() < max {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                self.reader.finish();
                self.finished = true;
                break;
            }
            let length = available.len();
            self.reader.push(available);
            self.input.consume(length);
        }
        Ok(Some(self.reader.take_batch()))
    }
}

/// An event-log decoder that reads every record through the evtx crate, never the direct
/// reader: for the fuzz target of the crate path (fuzz/fuzz_targets/evtx-crate.rs) and its replay.
#[doc(hidden)]
pub fn evtx_crate_decoder<'a, R: Read + Send + 'a>(input: R, tenant: String) -> Box<dyn Decoder + 'a> {
    Box::new(evtx_log::EvtxDecoder::crate_only(input, tenant))
}

/// A decoder for `input` in `format`, or in the format its first bytes show when `format` is `None`.
///
/// `scope` is the tenant the observations belong to: for the native format, lines naming another
/// tenant are refused (and lines naming none take it; with no scope, lines name their own); the
/// other formats carry no tenant and go to `scope`, or to the default tenant.
pub fn decoder<'a, R: Read + Send + 'a>(
    format: Option<Format>,
    mut input: R,
    scope: Option<String>,
) -> Result<Box<dyn Decoder + 'a>, OpenError> {
    // Read up to the end of the first line (or a bounded prefix), tell the format, then read the
    // stream again from its start: the prefix is chained back in front of the rest.
    let prefix = if format.is_none() { read_prefix(&mut input)? } else { Vec::new() };
    let format = match format {
        Some(format) => format,
        None => detect(&prefix).map_err(OpenError::Undetected)?,
    };
    let input = io::Cursor::new(prefix).chain(input);
    let tenant = || scope.clone().unwrap_or_else(|| DEFAULT_TENANT.to_owned());
    let buffered = |input| BufReader::with_capacity(READ_BUFFER, input);
    Ok(match format {
        // Event logs are read a whole 64 KiB chunk at a time: a buffer in between would only copy.
        Format::Evtx => Box::new(evtx_log::EvtxDecoder::new(input, tenant())),
        Format::Ndjson => {
            Box::new(NdjsonDecoder { input: buffered(input), reader: NdjsonReader::scoped(scope), finished: false })
        }
        Format::SysmonJson => Box::new(sysmon_json::SysmonJsonDecoder::new(buffered(input), tenant())),
        Format::MdeCsv => Box::new(mde::MdeCsvDecoder::new(buffered(input), tenant())),
        Format::MdeJson => Box::new(mde::MdeJsonDecoder::new(buffered(input), tenant())),
    })
}
