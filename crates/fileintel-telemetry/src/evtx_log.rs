//! Sysmon event logs (`.evtx`), read chunk by chunk as the bytes arrive: a file header of 4 KiB,
//! then chunks of 64 KiB, each parsed on its own by the `evtx` crate. Memory stays at one chunk
//! whatever the file size, and a damaged chunk costs only its own records.

use std::borrow::Cow;
use std::io::{self, Read};
use std::sync::Arc;

use evtx::{EvtxChunkData, ParserSettings};
use fileintel_core::{ParsedBatch, Position, Rejection};

use crate::Decoder;
use crate::sysmon::{EventData, EventId, SysmonEvent};

pub const FILE_MAGIC: &[u8; 8] = b"ElfFile\0";
const HEADER_SIZE: usize = 4096;
const CHUNK_SIZE: usize = 65536;
const SYSMON: &str = "Microsoft-Windows-Sysmon";

#[derive(serde::Deserialize)]
struct Root<'a> {
    #[serde(rename = "Event", borrow)]
    event: Event<'a>,
}

#[derive(serde::Deserialize)]
struct Event<'a> {
    #[serde(rename = "System", borrow)]
    system: System<'a>,
    #[serde(rename = "EventData", borrow, default)]
    data: Option<EventData<'a>>,
}

#[derive(serde::Deserialize)]
struct System<'a> {
    #[serde(rename = "Provider", borrow, default)]
    provider: Option<Provider<'a>>,
    #[serde(rename = "EventID", borrow)]
    event_id: EventId<'a>,
    #[serde(rename = "Computer", borrow, default)]
    computer: Option<Cow<'a, str>>,
    #[serde(rename = "TimeCreated", borrow, default)]
    time_created: Option<TimeCreated<'a>>,
    #[serde(rename = "EventRecordID", default)]
    event_record_id: Option<u64>,
}

#[derive(serde::Deserialize)]
struct Provider<'a> {
    #[serde(rename = "#attributes", borrow)]
    attributes: ProviderAttributes<'a>,
}

#[derive(serde::Deserialize)]
struct ProviderAttributes<'a> {
    #[serde(rename = "Name", borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct TimeCreated<'a> {
    #[serde(rename = "#attributes", borrow)]
    attributes: TimeAttributes<'a>,
}

#[derive(serde::Deserialize)]
struct TimeAttributes<'a> {
    #[serde(rename = "SystemTime", borrow, default)]
    system_time: Option<Cow<'a, str>>,
}

pub struct EvtxDecoder<R> {
    input: R,
    tenant: String,
    settings: Arc<ParserSettings>,
    /// Bytes consumed so far: the offset of the next chunk.
    offset: u64,
    started: bool,
    done: bool,
    rendered: Vec<u8>,
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
        }
    }

    /// Fills `buffer` as far as the input goes; returns how much it read.
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

    fn read_chunk(&mut self, data: Vec<u8>, at: u64, batch: &mut ParsedBatch) {
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
        for record in parsed.iter() {
            batch.records += 1;
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    batch.rejections.push(Rejection::new(Position::Offset(at), format!("unreadable record: {error}")));
                    continue;
                }
            };
            // The record header's number and time can differ from the event's own
            // `EventRecordID` and `TimeCreated` (a log saved anew renumbers its headers): the
            // event's own are used, the header's only where the event lacks them.
            let header_id = record.event_record_id;
            let header_time = record.timestamp;
            self.rendered.clear();
            match record.into_json_bytes() {
                Ok(rendered) => self.rendered = rendered.data,
                Err(error) => {
                    batch.rejections.push(Rejection::new(Position::Record(header_id), format!("unrenderable record: {error}")));
                    continue;
                }
            }
            // Most records of most logs carry no hashes: skip them before parsing any JSON.
            if memchr::memmem::find(&self.rendered, b"\"Hashes\"").is_none() {
                continue;
            }
            match observe(&self.rendered, &self.tenant, header_time) {
                Ok((id, Some(observation))) => batch.push(Position::Record(id.unwrap_or(header_id)), observation),
                Ok((_, None)) => {}
                Err((id, reason)) => batch.rejections.push(Rejection::new(Position::Record(id.unwrap_or(header_id)), reason)),
            }
        }
    }
}

/// The observation a rendered record makes, with the event's own record id where it has one.
#[allow(clippy::type_complexity)]
fn observe(
    rendered: &[u8],
    tenant: &str,
    header_time: evtx::Timestamp,
) -> Result<(Option<u64>, Option<fileintel_core::Observation>), (Option<u64>, String)> {
    let root: Root<'_> =
        serde_json::from_slice(rendered).map_err(|error| (None, format!("unexpected event shape: {error}")))?;
    let Event { system, data } = root.event;
    let id = system.event_record_id;
    let provider = system.provider.and_then(|provider| provider.attributes.name);
    if provider.as_deref().is_some_and(|name| name != SYSMON) {
        return Ok((id, None));
    }
    let Some(data) = data else { return Ok((id, None)) };
    let event_id = system.event_id.number().ok_or((id, "EventID is not a number".to_owned()))?;
    let header_time = header_time.to_string();
    let system_time = system.time_created.and_then(|time| time.attributes.system_time);
    let event = SysmonEvent {
        event_id,
        computer: system.computer.as_deref(),
        system_time: Some(system_time.as_deref().unwrap_or(&header_time)),
        data,
        // Sysmon event logs are written by Windows.
        os_platform: Some("Windows"),
    };
    event.observation(tenant).map(|observation| (id, observation)).map_err(|reason| (id, reason))
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
                self.stop(&mut batch, read as u64, format!("truncated: the file ends inside its {HEADER_SIZE}-byte header"));
                return Ok(Some(batch));
            }
        }
        while batch.len() < max && !self.done {
            let mut data = vec![0u8; CHUNK_SIZE];
            let at = self.offset;
            let read = self.read_full(&mut data)?;
            self.offset += read as u64;
            if read == 0 {
                self.done = true;
            } else if read < CHUNK_SIZE {
                self.stop(
                    &mut batch,
                    at,
                    format!("truncated: the file ends {read} bytes into the chunk at byte offset {at}; records before it were read"),
                );
            } else if data.iter().all(|&byte| byte == 0) {
                // An unused chunk of a preallocated log.
            } else {
                self.read_chunk(data, at, &mut batch);
            }
        }
        Ok(Some(batch))
    }
}
