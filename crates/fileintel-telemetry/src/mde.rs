//! MDE advanced-hunting exports of `DeviceFileEvents`, `DeviceProcessEvents` and
//! `DeviceImageLoadEvents`: the portal's CSV, and the Streaming API's JSON (one record, or one
//! `{"records": [...]}` message, per line). A row observes up to two files: its target
//! (`SHA1`, `SHA256`, `MD5`, `FileName`, `FolderPath`, `FileSize`) and the image of the process
//! that acted (`InitiatingProcessSHA1`, ...).

use std::collections::HashMap;
use std::io::{self, BufRead, Read};

use fileintel_core::{FileHashes, Md5, Observation, ParsedBatch, Position, Rejection, Sha1, Sha256, Timestamp};
use serde_json::Value;

use crate::Decoder;
use crate::lines::Lines;

/// The columns a row must have for fileintel to read it.
pub const REQUIRED_COLUMNS: [&str; 2] = ["Timestamp", "DeviceId"];

fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|text| !text.is_empty())
}

fn hash<T>(
    field: &str,
    value: Option<&str>,
    parse: fn(&str) -> Result<T, fileintel_core::HashError>,
) -> Result<Option<T>, String> {
    present(value).map(|text| parse(text).map_err(|error| format!("{field}: {error}"))).transpose()
}

/// The observations of one row; `get` reads a column by its documented name. Rejections name
/// the side (target or initiating process) that was wrong; the other side is still taken.
fn row_observations<'r>(
    get: &dyn Fn(&str) -> Option<&'r str>,
    tenant: &str,
    fallback_time: Option<&str>,
) -> (Vec<Observation>, Vec<String>) {
    let (mut observations, mut problems) = (Vec::new(), Vec::new());
    let device_name = present(get("DeviceName"));
    let Some(device_id) = present(get("DeviceId")).or(device_name) else {
        problems.push("the row has neither DeviceId nor DeviceName".to_owned());
        return (observations, problems);
    };
    let timestamp = match present(get("Timestamp")).or(present(fallback_time)) {
        Some(text) => match parse_time(text) {
            Ok(time) => time,
            Err(error) => {
                problems.push(format!("Timestamp: {error}"));
                return (observations, problems);
            }
        },
        None => {
            problems.push("the row has no Timestamp".to_owned());
            return (observations, problems);
        }
    };
    for prefix in ["", "InitiatingProcess"] {
        let column = |name: &str| get(&format!("{prefix}{name}"));
        let hashes = (|| -> Result<FileHashes, String> {
            Ok(FileHashes {
                sha1: hash(&format!("{prefix}SHA1"), column("SHA1"), Sha1::parse)?,
                sha256: hash(&format!("{prefix}SHA256"), column("SHA256"), Sha256::parse)?,
                md5: hash(&format!("{prefix}MD5"), column("MD5"), Md5::parse)?,
            })
        })();
        let hashes = match hashes {
            Ok(hashes) if hashes.is_empty() => continue,
            Ok(hashes) => hashes,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let file_name = present(column("FileName")).map(str::to_owned);
        let folder_path = present(column("FolderPath")).map(|folder| strip_file_name(folder, file_name.as_deref()));
        let size = present(column("FileSize")).and_then(|size| size.parse::<u64>().ok());
        observations.push(Observation {
            tenant_id: tenant.to_owned(),
            device_id: device_id.to_owned(),
            device_name: device_name.map(str::to_owned),
            timestamp,
            hashes,
            size,
            file_name,
            folder_path,
            os_platform: None,
            reported: None,
        });
    }
    (observations, problems)
}

/// MDE's `FolderPath` usually ends with the file's own name; the folder is what precedes it.
fn strip_file_name(folder: &str, name: Option<&str>) -> String {
    if let Some(name) = name
        && let Some(head_length) = folder.len().checked_sub(name.len())
        && head_length > 0
        && folder.as_bytes()[head_length..].eq_ignore_ascii_case(name.as_bytes())
        && let Some(head) = folder.get(..head_length)
        && let Some(stripped) = head.strip_suffix(['\\', '/'])
    {
        return stripped.to_owned();
    }
    folder.to_owned()
}

/// Export timestamps: ISO 8601 (`2021-08-05T11:08:59.7123456Z`, with or without the `Z`).
fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_utc(text).map_err(|error| error.to_string())
}

pub struct MdeCsvDecoder<R> {
    reader: csv::Reader<R>,
    tenant: String,
    columns: Option<Result<HashMap<String, usize>, String>>,
    record: csv::ByteRecord,
}

impl<R: BufRead> MdeCsvDecoder<R> {
    pub fn new(input: R, tenant: String) -> Self {
        // Rows end at `\n`, and a `\r` before it is dropped from the last cell: with its default
        // terminator the csv crate miscounts the lines of CRLF files, and rejections name lines.
        let reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(input);
        MdeCsvDecoder { reader, tenant, columns: None, record: csv::ByteRecord::new() }
    }
}

/// A header cell as a column name: the portal writes some as `Timestamp [UTC]`.
fn column_name(cell: &str) -> String {
    let cell = cell.trim().trim_start_matches('\u{feff}');
    cell.split(" [").next().unwrap_or(cell).trim().to_ascii_lowercase()
}

/// Whether a first line is an MDE export's header (for format detection).
pub fn is_header(line: &str) -> bool {
    let names: Vec<String> = line.split(',').map(|cell| column_name(cell.trim_matches('"'))).collect();
    REQUIRED_COLUMNS.iter().all(|required| names.iter().any(|name| name == &required.to_ascii_lowercase()))
}

impl<R: BufRead + Send> Decoder for MdeCsvDecoder<R> {
    fn next_batch(&mut self, max: usize) -> io::Result<Option<ParsedBatch>> {
        let mut batch = ParsedBatch::default();
        let mut any = false;
        while !batch.is_full(max) {
            let read = match self.reader.read_byte_record(&mut self.record) {
                Ok(read) => read,
                Err(error) => match error.kind() {
                    csv::ErrorKind::Io(_) => return Err(io::Error::other(error.to_string())),
                    _ => {
                        any = true;
                        let line = error.position().map_or(0, |position| position.line());
                        batch.rejections.push(Rejection::new(Position::Line(line), format!("invalid CSV: {error}")));
                        continue;
                    }
                },
            };
            if !read {
                break;
            }
            any = true;
            let line = self.record.position().map_or(0, |position| position.line());
            let at = Position::Line(line);
            let Some(columns) = &self.columns else {
                let names: HashMap<String, usize> = self
                    .record
                    .iter()
                    .enumerate()
                    .map(|(index, cell)| (column_name(&String::from_utf8_lossy(cell)), index))
                    .collect();
                let missing: Vec<&str> = REQUIRED_COLUMNS
                    .into_iter()
                    .filter(|required| !names.contains_key(&required.to_ascii_lowercase()))
                    .collect();
                self.columns = Some(if missing.is_empty() {
                    Ok(names)
                } else {
                    Err(format!("the header lacks the column(s) {}", missing.join(", ")))
                });
                if let Some(Err(reason)) = &self.columns {
                    batch.rejections.push(Rejection::new(at, reason.clone()));
                    return Ok(Some(batch));
                }
                continue;
            };
            let Ok(columns) = columns else { break };
            if self.record.iter().all(|cell| cell.iter().all(u8::is_ascii_whitespace)) {
                continue;
            }
            batch.records += 1;
            let cells: Vec<&str> = match self
                .record
                .iter()
                .map(|cell| std::str::from_utf8(cell.strip_suffix(b"\r").unwrap_or(cell)))
                .collect::<Result<_, _>>()
            {
                Ok(cells) => cells,
                Err(_) => {
                    batch.rejections.push(Rejection::new(at, "the row is not valid UTF-8"));
                    continue;
                }
            };
            let get = |name: &str| columns.get(&name.to_ascii_lowercase()).and_then(|&index| cells.get(index).copied());
            let (observations, problems) = row_observations(&get, &self.tenant, None);
            for observation in observations {
                batch.push(at, observation);
            }
            for problem in problems {
                batch.rejections.push(Rejection::new(at, problem));
            }
        }
        Ok(any.then_some(batch))
    }
}

/// Streaming API output comes as JSON lines (one record or message per line), or as whole
/// messages written out over many lines; the first line tells which.
enum JsonInput<R: BufRead> {
    Undecided(Option<R>),
    Lines(Lines<Replayed<R>>),
    Documents(serde_json::StreamDeserializer<'static, serde_json::de::IoRead<Bounded<Replayed<R>>>, Value>, Budget),
}

/// The longest message written over many lines that is read: as long as a line may be. A
/// document is parsed whole (into a `Value` several times its size), so its size bounds memory;
/// a Streaming API message is at most 1 MB (Event Hubs' limit) anyway.
pub const MAX_DOCUMENT_BYTES: usize = fileintel_core::ndjson::MAX_LINE_BYTES;

/// Bytes the current document may still take, shared with the reader that spends them.
type Budget = std::sync::Arc<std::sync::atomic::AtomicUsize>;

/// A reader that fails once the current document's budget is spent.
struct Bounded<R> {
    input: R,
    budget: Budget,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        use std::sync::atomic::Ordering;
        let left = self.budget.load(Ordering::Relaxed);
        if left == 0 && !buffer.is_empty() {
            return Err(io::Error::other(format!("a JSON document longer than {MAX_DOCUMENT_BYTES} bytes")));
        }
        let length = buffer.len().min(left);
        let read = self.input.read(&mut buffer[..length])?;
        self.budget.fetch_sub(read, Ordering::Relaxed);
        Ok(read)
    }
}

/// The input with the bytes read to decide its shape put back in front.
type Replayed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Reads up to the end of the first line that is not blank (at most a line's limit), for the
/// caller to look at and then read again.
fn first_line<R: BufRead>(input: &mut R) -> io::Result<(Vec<u8>, usize)> {
    let mut prefix = Vec::new();
    let mut line_start = 0;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok((prefix, line_start));
        }
        let (take, ends) = match memchr::memchr(b'\n', available) {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        prefix.extend_from_slice(&available[..take]);
        input.consume(take);
        if ends {
            if !prefix[line_start..].iter().all(u8::is_ascii_whitespace) {
                return Ok((prefix, line_start));
            }
            line_start = prefix.len();
        }
        if prefix.len() - line_start > fileintel_core::ndjson::MAX_LINE_BYTES {
            return Ok((prefix, line_start));
        }
    }
}

pub struct MdeJsonDecoder<R: BufRead> {
    input: JsonInput<R>,
    tenant: String,
}

impl<R: BufRead> MdeJsonDecoder<R> {
    pub fn new(input: R, tenant: String) -> Self {
        MdeJsonDecoder { input: JsonInput::Undecided(Some(input)), tenant }
    }
}

/// Whether a JSON line is a Streaming API message or record (for format detection).
pub fn looks_like(value: &Value) -> bool {
    let record = |value: &Value| {
        value.get("category").and_then(Value::as_str).is_some_and(|category| category.starts_with("AdvancedHunting-"))
            || value.get("properties").is_some_and(|properties| properties.get("DeviceId").is_some())
    };
    match value.get("records").and_then(Value::as_array) {
        Some(records) => records.first().is_none_or(record),
        None => record(value),
    }
}

fn json_text(value: &Value) -> Option<&str> {
    value.as_str()
}

impl<R: BufRead + Send> MdeJsonDecoder<R> {
    fn record(&self, record: &Value, label: Option<usize>, at: Position, batch: &mut ParsedBatch) {
        batch.records += 1;
        let prefix = label.map(|index| format!("records[{index}]: ")).unwrap_or_default();
        let Some(properties) = record.get("properties").and_then(Value::as_object) else {
            batch.rejections.push(Rejection::new(at, format!("{prefix}the record has no properties object")));
            return;
        };
        // Numbers (FileSize) are rendered to text so that CSV and JSON share one reading.
        let rendered: HashMap<&str, String> = properties
            .iter()
            .filter_map(|(key, value)| match value {
                Value::Number(number) => Some((key.as_str(), number.to_string())),
                _ => None,
            })
            .collect();
        let get =
            |name: &str| properties.get(name).and_then(json_text).or_else(|| rendered.get(name).map(String::as_str));
        let (observations, problems) = row_observations(&get, &self.tenant, record.get("time").and_then(json_text));
        for observation in observations {
            batch.push(at, observation);
        }
        for problem in problems {
            batch.rejections.push(Rejection::new(at, format!("{prefix}{problem}")));
        }
    }

    /// A message (`{"records": [...]}`) or a single record.
    fn message(&self, value: &Value, at: Position, batch: &mut ParsedBatch) {
        match value.get("records").and_then(Value::as_array) {
            Some(records) => {
                for (index, record) in records.iter().enumerate() {
                    self.record(record, Some(index), at, batch);
                }
            }
            None => self.record(value, None, at, batch),
        }
    }
}

impl<R: BufRead + Send> Decoder for MdeJsonDecoder<R> {
    fn next_batch(&mut self, max: usize) -> io::Result<Option<ParsedBatch>> {
        if let JsonInput::Undecided(input) = &mut self.input {
            let Some(mut input) = input.take() else { return Ok(None) };
            let (prefix, line_start) = first_line(&mut input)?;
            let line = &prefix[line_start..];
            let whole_line = line.iter().all(u8::is_ascii_whitespace)
                || serde_json::from_slice::<serde::de::IgnoredAny>(line.trim_ascii()).is_ok();
            let input = io::Cursor::new(prefix).chain(input);
            self.input = if whole_line {
                JsonInput::Lines(Lines::new(input))
            } else {
                let budget = Budget::default();
                let input = Bounded { input, budget: budget.clone() };
                JsonInput::Documents(serde_json::Deserializer::from_reader(input).into_iter(), budget)
            };
        }
        let mut batch = ParsedBatch::default();
        let mut any = false;
        while !batch.is_full(max) {
            match &mut self.input {
                JsonInput::Undecided(_) => break,
                JsonInput::Lines(lines) => {
                    let Some((number, line)) = lines.next_record()? else { break };
                    any = true;
                    let at = Position::Line(number);
                    let line = match line {
                        Ok(line) => line,
                        Err(reason) => {
                            batch.records += 1;
                            batch.rejections.push(Rejection::new(at, reason));
                            continue;
                        }
                    };
                    match serde_json::from_slice::<Value>(line) {
                        Ok(value) => self.message(&value, at, &mut batch),
                        Err(error) => {
                            batch.records += 1;
                            batch.rejections.push(Rejection::new(at, format!("invalid JSON: {error}")));
                        }
                    }
                }
                JsonInput::Documents(documents, budget) => {
                    let start = documents.byte_offset() as u64;
                    budget.store(MAX_DOCUMENT_BYTES, std::sync::atomic::Ordering::Relaxed);
                    let Some(document) = documents.next() else { break };
                    any = true;
                    let at = Position::Offset(documents.byte_offset() as u64);
                    let spent = budget.load(std::sync::atomic::Ordering::Relaxed) == 0;
                    match document {
                        Ok(value) => self.message(&value, at, &mut batch),
                        Err(error) if error.is_io() && spent => {
                            // Nothing after it can be told from the rest of it.
                            batch.records += 1;
                            let reason = format!(
                                "a JSON document longer than {MAX_DOCUMENT_BYTES} bytes, reading stopped: send long exports as one record or message per line"
                            );
                            batch.rejections.push(Rejection::new(Position::Offset(start), reason));
                            self.input = JsonInput::Undecided(None);
                        }
                        Err(error) if error.is_io() => return Err(io::Error::other(error.to_string())),
                        Err(error) => {
                            // A document that does not parse leaves no place to resume from.
                            batch.records += 1;
                            batch
                                .rejections
                                .push(Rejection::new(at, format!("invalid JSON, reading stopped: {error}")));
                            self.input = JsonInput::Undecided(None);
                        }
                    }
                }
            }
        }
        Ok(any.then_some(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_told_from_documents_however_the_bytes_arrive() {
        let record = r#"{"time":"2024-03-01T10:00:00Z","category":"AdvancedHunting-DeviceFileEvents","properties":{"DeviceId":"d","SHA1":"68b26c16080d71013123c6dee7b1aabc3d2857d0"}}"#;
        let lines = format!("\n{record}\nnot json\n{record}\n");
        let document = format!("{{\n  \"records\": [\n    {record},\n    {record}\n  ]\n}}\n");
        for (input, observations, rejections) in [(lines, 2, 1), (document, 2, 0)] {
            // One byte at a time, as a slow body would come.
            let reader = std::io::BufReader::with_capacity(1, std::io::Cursor::new(input.into_bytes()));
            let mut decoder = MdeJsonDecoder::new(reader, "t".into());
            let mut all = ParsedBatch::default();
            while let Some(batch) = decoder.next_batch(100).unwrap() {
                all.observations.extend(batch.observations);
                all.rejections.extend(batch.rejections);
            }
            assert_eq!((all.observations.len(), all.rejections.len()), (observations, rejections));
            if rejections > 0 {
                assert_eq!(all.rejections[0].at, Position::Line(3), "line mode: the bad line is named and skipped");
            }
        }
    }

    #[test]
    fn a_document_over_the_limit_is_rejected_without_being_read_whole() {
        let record = r#"{"time":"2024-03-01T10:00:00Z","category":"AdvancedHunting-DeviceFileEvents","properties":{"DeviceId":"d","SHA1":"68b26c16080d71013123c6dee7b1aabc3d2857d0"}}"#;
        let small = format!("{{\n  \"records\": [\n    {record}\n  ]\n}}\n");
        let count = MAX_DOCUMENT_BYTES / record.len() + 10;
        let big = format!("{{\n  \"records\": [\n{}\n  ]\n}}\n", vec![record; count].join(",\n"));
        let input = format!("{small}{big}{small}");
        let mut decoder = MdeJsonDecoder::new(std::io::Cursor::new(input.into_bytes()), "t".into());
        let mut all = ParsedBatch::default();
        while let Some(batch) = decoder.next_batch(100).unwrap() {
            all.observations.extend(batch.observations);
            all.rejections.extend(batch.rejections);
        }
        assert_eq!(all.observations.len(), 1, "the document before it is read");
        assert_eq!(all.rejections.len(), 1);
        // Named by where the previous document ended.
        assert_eq!(all.rejections[0].at, Position::Offset(small.trim_end().len() as u64));
        assert!(all.rejections[0].reason.contains("longer than"), "{}", all.rejections[0].reason);
    }

    #[test]
    fn folder_paths_lose_the_trailing_file_name() {
        assert_eq!(strip_file_name(r"C:\Windows\System32\cmd.exe", Some("cmd.exe")), r"C:\Windows\System32");
        assert_eq!(strip_file_name(r"C:\Windows\System32\CMD.EXE", Some("cmd.exe")), r"C:\Windows\System32");
        assert_eq!(strip_file_name(r"C:\Windows\System32", Some("cmd.exe")), r"C:\Windows\System32");
        assert_eq!(strip_file_name(r"C:\Windows\notcmd.exe", Some("cmd.exe")), r"C:\Windows\notcmd.exe");
        // A cut inside a character is no match, and no panic.
        assert_eq!(strip_file_name("C:\\用户", Some("a.exe")), "C:\\用户");
        assert_eq!(strip_file_name("a.exe", Some("a.exe")), "a.exe");
    }

    #[test]
    fn one_row_observes_the_target_and_the_initiating_process() {
        let row: HashMap<&str, &str> = [
            ("Timestamp", "2024-03-01T10:00:00.1234567Z"),
            ("DeviceId", "d1"),
            ("DeviceName", "ws1.contoso.com"),
            ("SHA1", "68b26c16080d71013123c6dee7b1aabc3d2857d0"),
            ("FileName", "a.exe"),
            ("FolderPath", r"C:\x\a.exe"),
            ("FileSize", "42"),
            ("InitiatingProcessSHA1", "nothex"),
            ("InitiatingProcessMD5", "b1b981cd8b111783b80f3c4e10086912"),
        ]
        .into_iter()
        .collect();
        let get = |name: &str| row.get(name).copied();
        let (observations, problems) = row_observations(&get, "t", None);
        assert_eq!(observations.len(), 1, "the target is taken");
        assert_eq!(observations[0].folder_path.as_deref(), Some(r"C:\x"));
        assert_eq!(observations[0].size, Some(42));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("InitiatingProcessSHA1"), "{problems:?}");
    }
}
