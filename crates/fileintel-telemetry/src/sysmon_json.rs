//! Sysmon events as JSON lines, in the two shapes shippers write:
//! - flat (NXLog's `im_msvistalog`, public research datasets): the `EventData` fields as top-level
//!   keys beside `EventID`, `Computer` or `Hostname`, `SourceName` or `ProviderName`;
//! - Elastic ECS (Winlogbeat): `winlog.event_data.*`, `winlog.event_id`, `winlog.computer_name`,
//!   `host.name`, `@timestamp`.

use std::io::{self, BufRead};

use fileintel_core::{Observation, ParsedBatch, Position, Rejection};
use serde_json::{Map, Value};

use crate::Decoder;
use crate::lines::Lines;
use crate::sysmon::{EventData, EventId, SysmonEvent};

const SYSMON: &str = "Microsoft-Windows-Sysmon";

pub struct SysmonJsonDecoder<R> {
    lines: Lines<R>,
    tenant: String,
}

impl<R: BufRead> SysmonJsonDecoder<R> {
    pub fn new(input: R, tenant: String) -> Self {
        SysmonJsonDecoder { lines: Lines::new(input), tenant }
    }
}

fn text<'a>(object: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|key| object.get(*key).and_then(Value::as_str)).filter(|text| !text.trim().is_empty())
}

fn path<'a>(object: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(object, |value, key| value.get(key))
}

/// Whether a line looks like a Sysmon event in either shape (for format detection).
pub fn looks_like(object: &Map<String, Value>) -> bool {
    let ecs = object.get("winlog").is_some_and(|winlog| winlog.get("event_data").is_some());
    let flat = ["EventID", "EventId", "event_id"].iter().any(|key| object.contains_key(*key))
        && ["Hashes", "UtcTime", "Computer", "Hostname", "SourceName", "ProviderName"]
            .iter()
            .any(|key| object.contains_key(*key));
    ecs || flat
}

/// The observation one line makes, if it is a Sysmon event with hashes.
pub fn observe(root: &Value, tenant: &str) -> Result<Option<Observation>, String> {
    let Some(object) = root.as_object() else { return Err("not a JSON object".into()) };
    if let Some(winlog) = object.get("winlog").and_then(Value::as_object) {
        let provider = text(winlog, &["provider_name"]);
        if provider.is_some_and(|name| name != SYSMON) {
            return Ok(None);
        }
        let Some(event_data) = winlog.get("event_data") else { return Ok(None) };
        let data = EventData::deserialize_from(event_data)?;
        let event_id = winlog
            .get("event_id")
            .or_else(|| path(root, &["event", "code"]))
            .map(EventId::deserialize_from)
            .transpose()?
            .and_then(|id| id.number())
            .ok_or("winlog.event_id is missing or not a number")?;
        let computer =
            path(root, &["host", "name"]).and_then(Value::as_str).or_else(|| text(winlog, &["computer_name"]));
        let event = SysmonEvent {
            event_id,
            computer,
            system_time: text(object, &["@timestamp"]),
            data,
            os_platform: path(root, &["host", "os", "platform"]).and_then(Value::as_str),
        };
        return event.observation(tenant);
    }
    let provider = text(object, &["SourceName", "ProviderName", "Provider_Name", "Provider"]);
    if provider.is_some_and(|name| name != SYSMON) {
        return Ok(None);
    }
    let data = EventData::deserialize_from(root)?;
    let event_id = ["EventID", "EventId", "event_id"]
        .iter()
        .find_map(|key| object.get(*key))
        .map(EventId::deserialize_from)
        .transpose()?
        .and_then(|id| id.number())
        .ok_or("EventID is missing or not a number")?;
    let event = SysmonEvent {
        event_id,
        computer: text(object, &["Computer", "Hostname", "ComputerName", "computer_name"]),
        system_time: text(object, &["TimeCreated", "SystemTime", "@timestamp", "EventTime"]),
        data,
        os_platform: None,
    };
    event.observation(tenant)
}

impl<'a> EventData<'a> {
    fn deserialize_from(value: &'a Value) -> Result<Self, String> {
        serde::Deserialize::deserialize(value).map_err(|error| format!("event data: {error}"))
    }
}

impl<'a> EventId<'a> {
    fn deserialize_from(value: &'a Value) -> Result<Self, String> {
        serde::Deserialize::deserialize(value).map_err(|error| format!("EventID: {error}"))
    }
}

impl<R: BufRead + Send> Decoder for SysmonJsonDecoder<R> {
    fn next_batch(&mut self, max: usize) -> io::Result<Option<ParsedBatch>> {
        let mut batch = ParsedBatch::default();
        let mut any = false;
        while !batch.is_full(max) {
            let Some((number, line)) = self.lines.next_record()? else { break };
            any = true;
            let at = Position::Line(number);
            batch.records += 1;
            let line = match line {
                Ok(line) => line,
                Err(reason) => {
                    batch.rejections.push(Rejection::new(at, reason));
                    continue;
                }
            };
            let root = match serde_json::from_slice::<Value>(line) {
                Ok(root) => root,
                Err(error) => {
                    batch.rejections.push(Rejection::new(at, format!("invalid JSON: {error}")));
                    continue;
                }
            };
            match observe(&root, &self.tenant) {
                Ok(Some(observation)) => batch.push(at, observation),
                Ok(None) => {}
                Err(reason) => batch.rejections.push(Rejection::new(at, reason)),
            }
        }
        Ok(any.then_some(batch))
    }
}
