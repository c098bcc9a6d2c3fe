//! Sysmon event logs (`.evtx`), read chunk by chunk as the bytes arrive: a file header of 4 KiB,
//! then chunks of 64 KiB, each parsed on its own by the `evtx` crate. Memory stays at one chunk
//! whatever the file size, and a damaged chunk costs only its own records.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::Arc;

use evtx::{EvtxChunkData, ParserSettings};
use fileintel_core::{ParsedBatch, Position, Rejection};

use crate::Decoder;
use crate::binxml::{self, Member};
use crate::sysmon::{EventData, Flag, SysmonEvent};

pub const FILE_MAGIC: &[u8; 8] = b"ElfFile\0";
const HEADER_SIZE: usize = 4096;
pub(crate) const CHUNK_SIZE: usize = 65536;
/// A chunk's header, before its first record.
const CHUNK_HEADER_SIZE: usize = 512;
const SYSMON: &str = "Microsoft-Windows-Sysmon";

/// Built once: a finder costs more to build than a record takes to search.
static HASHES: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"Hashes\""));

pub struct EvtxDecoder<R> {
    input: R,
    tenant: String,
    settings: Arc<ParserSettings>,
    /// Bytes consumed so far: the offset of the next chunk.
    offset: u64,
    started: bool,
    done: bool,
    rendered: Vec<u8>,
    /// The current chunk's templates, as the direct reader maps them.
    templates: binxml::Templates,
    /// Whether records may take the direct path (tests compare it with the crate's).
    direct: bool,
    /// Records read directly and records left to the crate, for tests.
    read_directly: u64,
}

impl<R: Read + Send> EvtxDecoder<R> {
    pub fn new(input: R, tenant: String) -> Self {
        EvtxDecoder {
            input,
            tenant,
            settings: Arc::new(ParserSettings::new().num_threads(1)),
            offset: 0,
            started: false,
            done: false,
            rendered: Vec::new(),
            templates: binxml::Templates::new(),
            direct: true,
            read_directly: 0,
        }
    }

    /// A decoder that leaves every record to the crate, so that the crate path can be fuzzed
    /// on its own (the direct path would otherwise take nearly every record).
    pub(crate) fn crate_only(input: R, tenant: String) -> Self {
        EvtxDecoder { direct: false, ..Self::new(input, tenant) }
    }

    /// Fills `buffer` as far as the input goes; returns how much it read.
    /// Reads up to one chunk into `data` (spare capacity, not zeroed first); returns how much.
    fn read_chunk_bytes(&mut self, data: &mut Vec<u8>) -> io::Result<usize> {
        (&mut self.input).take(CHUNK_SIZE as u64).read_to_end(data)
    }

    fn read_full(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buffer.len() {
            match self.input.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(filled)
    }

    fn stop(&mut self, batch: &mut ParsedBatch, at: u64, reason: String) {
        batch.rejections.push(Rejection::new(Position::Offset(at), reason));
        self.done = true;
    }

    /// Reads a chunk's records; `data` is shorter than a chunk when the file was cut inside it,
    /// and then every record wholly before the cut is read and the one it goes through rejected.
    fn read_chunk(&mut self, mut data: Vec<u8>, at: u64, batch: &mut ParsedBatch) {
        let read = data.len();
        // Where the cut is: inside (or just before) the record at an offset of the chunk, after
        // the chunk's last record (`Some(None)`), or unknown (the direct reader does not follow
        // the chunk, or the cut is inside its header).
        let cut = |record: Option<Option<usize>>| match record {
            Some(Some(offset)) => {
                let offset = at + offset as u64;
                Rejection::new(
                    Position::Offset(offset),
                    format!(
                        "truncated: the file ends within the record at byte offset {offset}; every record before it was read"
                    ),
                )
            }
            Some(None) => Rejection::new(
                Position::Offset(at + read as u64),
                format!(
                    "truncated: the file ends after the last record of the chunk at byte offset {at}; every record was read"
                ),
            ),
            None => Rejection::new(
                Position::Offset(at),
                format!(
                    "truncated: the file ends {read} bytes into the chunk at byte offset {at}; every record before the cut was read"
                ),
            ),
        };
        if read < CHUNK_HEADER_SIZE {
            batch.rejections.push(cut(None));
            return;
        }
        // Most records take the direct path; the few it does not follow go through the crate.
        self.templates.clear();
        let direct = if self.direct { binxml::read_chunk(&data, &mut self.templates) } else { None };
        let mut cut_at = None;
        let leftover: Option<HashSet<u64>> = direct.map(|chunk| {
            cut_at = Some(chunk.cut_at);
            let mut leftover = HashSet::new();
            for record in chunk.records {
                batch.records += 1;
                match record {
                    binxml::Record::Read { header_id, header_time, values } => {
                        self.read_directly += 1;
                        match observe_values(&values[..], &self.tenant, header_time) {
                            Ok((id, Some(observation))) => {
                                batch.push(Position::Record(id.unwrap_or(header_id)), observation)
                            }
                            Ok((_, None)) => {}
                            Err((id, reason)) => {
                                batch.rejections.push(Rejection::new(Position::Record(id.unwrap_or(header_id)), reason))
                            }
                        }
                    }
                    binxml::Record::ForTheCrate { header_id } => {
                        leftover.insert(header_id);
                    }
                }
            }
            leftover
        });
        if read < CHUNK_SIZE {
            if cut_at.flatten().is_some_and(|offset| offset < read) {
                batch.records += 1;
            }
            batch.rejections.push(cut(cut_at));
        }
        if leftover.as_ref().is_some_and(HashSet::is_empty) {
            return;
        }
        // The crate reads whole chunks only: what the cut took is zeros to it, a record it cannot
        // read, reported at the chunk (the direct reader, when it follows the chunk, has already
        // said where the cut is, and the crate then stops at the last record it was handed).
        data.resize(CHUNK_SIZE, 0);
        // The crate is the last resort for what the direct reader does not follow: should it fail
        // on a hostile chunk, that chunk is reported and the rest of the log still read.
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut part = ParsedBatch::default();
            self.read_chunk_with_crate(data, at, leftover.as_ref(), &mut part);
            part
        }));
        match read {
            Ok(part) => {
                batch.records += part.records;
                batch.observations.extend(part.observations);
                batch.positions.extend(part.positions);
                batch.rejections.extend(part.rejections);
            }
            Err(_) => {
                batch.rejections.push(Rejection::new(Position::Offset(at), "the event log parser failed on this chunk"))
            }
        }
    }

    /// Reads a chunk's records with the `evtx` crate: all of them (`only` is `None`), or those
    /// with the given header ids, already counted.
    fn read_chunk_with_crate(&mut self, data: Vec<u8>, at: u64, only: Option<&HashSet<u64>>, batch: &mut ParsedBatch) {
        let mut chunk = match EvtxChunkData::new(data, false) {
            Ok(chunk) => chunk,
            Err(error) => {
                batch.rejections.push(Rejection::new(Position::Offset(at), format!("unreadable chunk: {error}")));
                return;
            }
        };
        let mut parsed = match chunk.parse(self.settings.clone()) {
            Ok(parsed) => parsed,
            Err(error) => {
                batch.rejections.push(Rejection::new(Position::Offset(at), format!("unreadable chunk: {error}")));
                return;
            }
        };
        let mut wanted = only.map_or(usize::MAX, HashSet::len);
        for record in parsed.iter() {
            if wanted == 0 {
                break;
            }
            if only.is_none() {
                batch.records += 1;
            }
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    batch.rejections.push(Rejection::new(Position::Offset(at), format!("unreadable record: {error}")));
                    continue;
                }
            };
            if only.is_some_and(|only| !only.contains(&record.event_record_id)) {
                continue;
            }
            if only.is_some() {
                wanted -= 1;
            }
            // The record header's number and time can differ from the event's own
            // `EventRecordID` and `TimeCreated` (a log saved anew renumbers its headers): the
            // event's own are used, the header's only where the event lacks them.
            let header_id = record.event_record_id;
            let header_time = record.timestamp;
            self.rendered.clear();
            match record.into_json_bytes() {
                Ok(rendered) => self.rendered = rendered.data,
                Err(error) => {
                    batch
                        .rejections
                        .push(Rejection::new(Position::Record(header_id), format!("unrenderable record: {error}")));
                    continue;
                }
            }
            // Most records of most logs carry no hashes: skip them before parsing any JSON.
            if HASHES.find(&self.rendered).is_none() {
                continue;
            }
            match observe(&self.rendered, &self.tenant, header_time) {
                Ok((id, Some(observation))) => batch.push(Position::Record(id.unwrap_or(header_id)), observation),
                Ok((_, None)) => {}
                Err((id, reason)) => {
                    batch.rejections.push(Rejection::new(Position::Record(id.unwrap_or(header_id)), reason))
                }
            }
        }
    }
}

/// Signature, type and error of the two readers below.
type Observed = Result<(Option<u64>, Option<fileintel_core::Observation>), (Option<u64>, String)>;

/// The observation of a Sysmon event, from its members however they were read.
fn observe_members<'a>(
    id: Option<u64>,
    event_id: u32,
    text: impl Fn(Member) -> Result<Option<Cow<'a, str>>, String>,
    system_time: &str,
    tenant: &str,
) -> Observed {
    let fail = |reason: String| (id, reason);
    let member = |member: Member| text(member).map_err(fail);
    let signed = match member(Member::Signed)? {
        Some(text) if text.eq_ignore_ascii_case("true") => Some(Flag::Bool(true)),
        Some(text) if text.eq_ignore_ascii_case("false") => Some(Flag::Bool(false)),
        _ => None,
    };
    let data = EventData {
        hashes: member(Member::Hashes)?,
        image: member(Member::Image)?,
        image_loaded: member(Member::ImageLoaded)?,
        target_filename: member(Member::TargetFilename)?,
        utc_time: member(Member::UtcTime)?,
        signed,
        signature: member(Member::Signature)?,
        signature_status: member(Member::SignatureStatus)?,
        company: member(Member::Company)?,
        product: member(Member::Product)?,
    };
    let computer = member(Member::Computer)?;
    let event = SysmonEvent {
        event_id,
        computer: computer.as_deref(),
        system_time: Some(system_time),
        data,
        // Sysmon event logs are written by Windows.
        os_platform: Some("Windows"),
    };
    event.observation(tenant).map(|observation| (id, observation)).map_err(fail)
}

/// The observation a record read directly makes, with the event's own record id where it has one.
fn observe_values(values: &[Option<binxml::Value<'_>>], tenant: &str, header_time: u64) -> Observed {
    let value = |member: Member| values[member as usize].as_ref();
    let text = |member: Member| Ok(value(member).and_then(binxml::Value::text).map(Cow::Owned));
    let id = match value(Member::EventRecordId) {
        Some(binxml::Value::Number(number)) => Some(*number),
        _ => None,
    };
    if value(Member::Provider).and_then(binxml::Value::text).is_some_and(|provider| provider != SYSMON) {
        return Ok((id, None));
    }
    // Most events carry no hashes: nothing else of theirs is read.
    if value(Member::Hashes).and_then(binxml::Value::text).is_none_or(|hashes| hashes.trim().is_empty()) {
        return Ok((id, None));
    }
    let event_id = match value(Member::EventId) {
        Some(binxml::Value::Number(number)) => {
            u32::try_from(*number).map_err(|_| (id, "EventID is out of range".to_owned()))?
        }
        _ => return Err((id, "the record has no EventID".to_owned())),
    };
    let filetime = match value(Member::SystemTime) {
        Some(binxml::Value::FileTime(filetime)) => *filetime,
        _ => header_time,
    };
    // Only read when the event has no UtcTime; a time out of range reads as none.
    let system_time = binxml::unix_ticks(filetime).map(|ticks| fileintel_core::Timestamp(ticks).to_string());
    let system_time = system_time.as_deref().unwrap_or("(no time)");
    observe_members(id, event_id, text, system_time, tenant)
}

/// The observation a rendered record makes, with the event's own record id where it has one.
///
/// The record is the `evtx` crate's compact JSON rendering, and only a dozen of its members are
/// wanted, so they are found by key rather than by parsing the whole record (see [`Fields`]).
fn observe(rendered: &[u8], tenant: &str, header_time: evtx::Timestamp) -> Observed {
    let found = Fields::scan(rendered);
    let field = |member: Member| found.value(rendered, member);
    let text = |member: Member| match field(member) {
        Some(Field::Text(text)) => Ok(Some(text)),
        Some(Field::Number(number)) => Ok(Some(Cow::Owned(number.to_string()))),
        Some(Field::Other) | None => Ok(None),
        Some(Field::Invalid) => Err(format!("{member:?} is not valid JSON")),
    };
    let id = match field(Member::EventRecordId) {
        Some(Field::Number(number)) => Some(number),
        _ => None,
    };
    let fail = |reason: String| (id, reason);
    if let Some(provider) = text(Member::Provider).map_err(fail)?
        && provider != SYSMON
    {
        return Ok((id, None));
    }
    let event_id = match field(Member::EventId) {
        Some(Field::Number(number)) => number,
        // `{"#attributes": {"Qualifiers": ...}, "#text": 1}`
        Some(Field::Other) => match found.event_id_text(rendered) {
            Some(Field::Number(number)) => number,
            _ => return Err(fail("EventID is not a number".into())),
        },
        Some(Field::Text(text)) => text.trim().parse().map_err(|_| fail("EventID is not a number".into()))?,
        _ => return Err(fail("the record has no EventID".into())),
    };
    let event_id = u32::try_from(event_id).map_err(|_| fail("EventID is out of range".into()))?;
    let system_time = match text(Member::SystemTime).map_err(fail)? {
        Some(time) => time.into_owned(),
        None => header_time.to_string(),
    };
    observe_members(id, event_id, text, &system_time, tenant)
}

enum Field<'a> {
    Text(Cow<'a, str>),
    Number(u64),
    /// An object, array, boolean or null.
    Other,
    Invalid,
}

/// The member names of the crate's JSON rendering, in the order of [`Member`] (the first
/// `Name` of a record is its provider's: `System` comes before `EventData`), and then the
/// `#text` of an `EventID` written with attributes.
const JSON_NAMES: [&[u8]; binxml::MEMBER_COUNT + 1] = [
    b"Name",
    b"EventID",
    b"EventRecordID",
    b"Computer",
    b"SystemTime",
    b"Hashes",
    b"Image",
    b"ImageLoaded",
    b"TargetFilename",
    b"UtcTime",
    b"Signed",
    b"Signature",
    b"SignatureStatus",
    b"Company",
    b"Product",
    b"#text",
];

/// Where each wanted member's value starts in a record's compact JSON (its first occurrence).
///
/// One pass over the record's quotes: a member's key always follows `{` or `,`, and inside a
/// string every `"` is escaped, so `{"key":` or `,"key":` with a bare quote can only be structure.
struct Fields([Option<usize>; JSON_NAMES.len()]);

impl Fields {
    fn scan(json: &[u8]) -> Self {
        let mut found = [None; JSON_NAMES.len()];
        // Walk the strings (a `\\` escapes the next byte inside one); a string right after `{` or
        // `,` and followed by `:` is a key.
        let mut at = 0;
        let mut opened: Option<usize> = None;
        while let Some(offset) = memchr::memchr2(b'"', b'\\', &json[at..]) {
            let position = at + offset;
            if json[position] == b'\\' {
                at = position + 2;
                continue;
            }
            at = position + 1;
            let Some(open) = opened.take() else {
                opened = Some(position);
                continue;
            };
            if open == 0 || !matches!(json[open - 1], b'{' | b',') || json.get(position + 1) != Some(&b':') {
                continue;
            }
            let name = &json[open + 1..position];
            if let Some(index) = JSON_NAMES.iter().position(|key| *key == name)
                && found[index].is_none()
            {
                found[index] = Some(position + 2);
            }
        }
        Fields(found)
    }

    fn value<'a>(&self, json: &'a [u8], member: Member) -> Option<Field<'a>> {
        value_at(&json[self.0[member as usize]?..])
    }

    fn event_id_text<'a>(&self, json: &'a [u8]) -> Option<Field<'a>> {
        value_at(&json[self.0[binxml::MEMBER_COUNT]?..])
    }
}

/// The JSON value at the start of `value`.
fn value_at(value: &[u8]) -> Option<Field<'_>> {
    match value.first()? {
        b'"' => {
            let mut index = 1;
            let mut escaped = false;
            while index < value.len() {
                match value[index] {
                    b'\\' => {
                        escaped = true;
                        index += 2;
                        continue;
                    }
                    b'"' => break,
                    _ => index += 1,
                }
            }
            if index >= value.len() {
                return Some(Field::Invalid);
            }
            if escaped {
                match serde_json::from_slice::<String>(&value[..=index]) {
                    Ok(text) => Some(Field::Text(Cow::Owned(text))),
                    Err(_) => Some(Field::Invalid),
                }
            } else {
                match std::str::from_utf8(&value[1..index]) {
                    Ok(text) => Some(Field::Text(Cow::Borrowed(text))),
                    Err(_) => Some(Field::Invalid),
                }
            }
        }
        b'0'..=b'9' => {
            let end = value.iter().position(|byte| !byte.is_ascii_digit()).unwrap_or(value.len());
            std::str::from_utf8(&value[..end]).ok()?.parse().ok().map(Field::Number)
        }
        _ => Some(Field::Other),
    }
}

impl<R: Read + Send> Decoder for EvtxDecoder<R> {
    fn next_batch(&mut self, max: usize) -> io::Result<Option<ParsedBatch>> {
        if self.done {
            return Ok(None);
        }
        let mut batch = ParsedBatch::default();
        if !self.started {
            self.started = true;
            let mut header = vec![0u8; HEADER_SIZE];
            let read = self.read_full(&mut header)?;
            self.offset = read as u64;
            if read < 8 || &header[..8] != FILE_MAGIC {
                self.stop(&mut batch, 0, "not an event log: the file does not start with 'ElfFile'".into());
                return Ok(Some(batch));
            }
            if read < HEADER_SIZE {
                self.stop(
                    &mut batch,
                    read as u64,
                    format!("truncated: the file ends inside its {HEADER_SIZE}-byte header"),
                );
                return Ok(Some(batch));
            }
        }
        while !batch.is_full(max) && !self.done {
            let mut data = Vec::with_capacity(CHUNK_SIZE);
            let at = self.offset;
            let read = self.read_chunk_bytes(&mut data)?;
            self.offset += read as u64;
            if read == 0 {
                self.done = true;
            } else if read < CHUNK_SIZE {
                self.done = true;
                self.read_chunk(data, at, &mut batch);
            } else if data.iter().all(|&byte| byte == 0) {
                // An unused chunk of a preallocated log.
            } else {
                self.read_chunk(data, at, &mut batch);
            }
        }
        Ok(Some(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shared log, read with the direct path and with the crate alone: the same records,
    /// observations, positions and rejections, and the direct path takes nearly every record.
    #[test]
    fn the_direct_path_reads_what_the_crate_reads() {
        let mut files = Vec::new();
        let mut pending = vec![crate::shared_evtx_dir()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|extension| extension == "evtx") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 50);
        let (mut direct_records, mut all_records) = (0, 0);
        for file in files {
            let read = |direct: bool| {
                let mut decoder = EvtxDecoder::new(std::fs::File::open(&file).unwrap(), "t".into());
                decoder.direct = direct;
                let mut all = ParsedBatch::default();
                while let Some(batch) = decoder.next_batch(1000).unwrap() {
                    all.records += batch.records;
                    all.observations.extend(batch.observations);
                    all.positions.extend(batch.positions);
                    all.rejections.extend(batch.rejections);
                }
                (all, decoder.read_directly)
            };
            let (fast, directly) = read(true);
            let (slow, none) = read(false);
            assert_eq!(none, 0);
            assert_eq!(fast.records, slow.records, "{}", file.display());
            assert_eq!(fast.observations, slow.observations, "{}", file.display());
            assert_eq!(fast.positions, slow.positions, "{}", file.display());
            assert_eq!(fast.rejections, slow.rejections, "{}", file.display());
            direct_records += directly;
            all_records += fast.records;
        }
        assert!(direct_records * 100 >= all_records * 95, "{direct_records} of {all_records} read directly");
    }

    #[test]
    fn json_names_follow_the_members() {
        assert_eq!(JSON_NAMES[Member::EventRecordId as usize], b"EventRecordID");
        assert_eq!(JSON_NAMES[Member::Product as usize], b"Product");
        for (index, (name, member)) in binxml::DATA_MEMBERS.iter().enumerate() {
            assert_eq!(JSON_NAMES[*member as usize], name.as_bytes(), "{index}");
        }
    }

    #[test]
    fn fields_are_found_by_key_and_only_as_keys() {
        let json = br##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},"EventID":1,"Computer":"ws1"},"EventData":{"CommandLine":"x \"Image\":\"fake\"","ParentImage":"C:\\p.exe","Image":"C:\\dir\\a.exe","Signed":"true","Nothing":null}}}"##;
        let fields = Fields::scan(json);
        let text = |key| match fields.value(json, key) {
            Some(Field::Text(text)) => Some(text.into_owned()),
            _ => None,
        };
        assert_eq!(text(Member::Image).as_deref(), Some(r"C:\dir\a.exe"), "not the one inside CommandLine");
        assert_eq!(text(Member::Computer).as_deref(), Some("ws1"));
        assert_eq!(text(Member::Provider).as_deref(), Some("Microsoft-Windows-Sysmon"));
        assert_eq!(text(Member::Signed).as_deref(), Some("true"));
        assert!(matches!(fields.value(json, Member::EventId), Some(Field::Number(1))));
        assert!(fields.value(json, Member::Hashes).is_none());
        // A value ending in `,` (a file named so) does not hide the key after it.
        let comma = br#"{"TargetFilename":"C:\\x,","Hashes":"MD5=00","Name":"{","Image":"i"}"#;
        let fields = Fields::scan(comma);
        assert!(matches!(fields.value(comma, Member::Hashes), Some(Field::Text(text)) if text == "MD5=00"));
        assert!(matches!(fields.value(comma, Member::Image), Some(Field::Text(text)) if text == "i"));
        let broken = br#"{"Image":"unterminated"#;
        assert!(matches!(Fields::scan(broken).value(broken, Member::Image), Some(Field::Invalid)));
    }
}
