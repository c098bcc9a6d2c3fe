//! Sysmon events as observations, whichever container they came in (event log, flat JSON, ECS).

use std::borrow::Cow;

use fileintel_core::{FileHashes, Md5, Observation, ReportedFacts, Sha1, Sha256, Timestamp};

/// The fields of one Sysmon event that fileintel reads; the rest is skipped unparsed.
#[derive(Debug, Default, serde::Deserialize)]
pub struct EventData<'a> {
    #[serde(rename = "Hashes", alias = "hashes", borrow, default)]
    pub hashes: Option<Cow<'a, str>>,
    #[serde(rename = "Image", alias = "image", borrow, default)]
    pub image: Option<Cow<'a, str>>,
    #[serde(rename = "ImageLoaded", alias = "imageLoaded", alias = "image_loaded", borrow, default)]
    pub image_loaded: Option<Cow<'a, str>>,
    #[serde(rename = "TargetFilename", alias = "targetFilename", alias = "target_filename", borrow, default)]
    pub target_filename: Option<Cow<'a, str>>,
    #[serde(rename = "UtcTime", alias = "utcTime", alias = "utc_time", borrow, default)]
    pub utc_time: Option<Cow<'a, str>>,
    #[serde(rename = "Signed", alias = "signed", default)]
    pub signed: Option<Flag>,
    #[serde(rename = "Signature", alias = "signature", borrow, default)]
    pub signature: Option<Cow<'a, str>>,
    #[serde(rename = "SignatureStatus", alias = "signatureStatus", alias = "signature_status", borrow, default)]
    pub signature_status: Option<Cow<'a, str>>,
    #[serde(rename = "Company", alias = "company", borrow, default)]
    pub company: Option<Cow<'a, str>>,
    #[serde(rename = "Product", alias = "product", borrow, default)]
    pub product: Option<Cow<'a, str>>,
}

/// `Signed` arrives as the string `"true"` from event logs and as a boolean from some shippers.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(untagged)]
pub enum Flag {
    Bool(bool),
    Text(#[serde(deserialize_with = "text_flag")] Option<bool>),
}

fn text_flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    let text: Cow<'de, str> = serde::Deserialize::deserialize(deserializer)?;
    Ok(match text.trim() {
        value if value.eq_ignore_ascii_case("true") => Some(true),
        value if value.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    })
}

impl Flag {
    fn value(self) -> Option<bool> {
        match self {
            Flag::Bool(value) => Some(value),
            Flag::Text(value) => value,
        }
    }
}

/// An event's `EventID`, which shippers write as a number, a string, or `{"#text": 1}`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum EventId<'a> {
    Number(u64),
    #[serde(borrow)]
    Text(Cow<'a, str>),
    Qualified {
        #[serde(rename = "#text")]
        text: u64,
    },
}

impl EventId<'_> {
    pub fn number(&self) -> Option<u32> {
        match self {
            EventId::Number(number) | EventId::Qualified { text: number } => u32::try_from(*number).ok(),
            EventId::Text(text) => text.trim().parse().ok(),
        }
    }
}

/// One Sysmon event, reduced to what an observation needs.
pub struct SysmonEvent<'a> {
    pub event_id: u32,
    pub computer: Option<&'a str>,
    /// The record's own time (`System/TimeCreated`, `@timestamp`), used when `UtcTime` is missing.
    pub system_time: Option<&'a str>,
    pub data: EventData<'a>,
    pub os_platform: Option<&'a str>,
}

/// A field's text, unless it is empty or one of Sysmon's placeholders (`-`, and `?` for version
/// information the file does not have).
fn present<'v>(value: &'v Option<Cow<'_, str>>) -> Option<&'v str> {
    value.as_deref().map(str::trim).filter(|text| !text.is_empty() && *text != "-" && *text != "?")
}

/// A path as Sysmon writes it, unless it is a placeholder like `-` or `<unknown process>`.
fn path_value<'v>(value: &'v Option<Cow<'_, str>>) -> Option<&'v str> {
    present(value).filter(|text| !text.starts_with('<'))
}

/// Splits `C:\dir\name.exe` into (`name.exe`, `C:\dir`); a bare name has no folder.
pub fn split_path(path: &str) -> (Option<String>, Option<String>) {
    match path.rfind(['\\', '/']) {
        Some(at) => {
            let name = &path[at + 1..];
            let folder = &path[..at];
            ((!name.is_empty()).then(|| name.to_owned()), (!folder.is_empty()).then(|| folder.to_owned()))
        }
        None => (Some(path.to_owned()), None),
    }
}

/// Parses Sysmon's `Hashes` (`SHA1=..,MD5=..,SHA256=..,IMPHASH=..`, any subset, any order).
pub fn parse_hashes(text: &str) -> Result<FileHashes, String> {
    let mut hashes = FileHashes::default();
    for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
        let Some((algorithm, value)) = pair.split_once('=') else {
            return Err(format!("Hashes entry '{pair}' is not ALGORITHM=HEX"));
        };
        let value = value.trim();
        let invalid = |error| format!("Hashes {}: {error}", algorithm.trim());
        match algorithm.trim().to_ascii_uppercase().as_str() {
            "SHA1" => hashes.sha1 = Some(Sha1::parse(value).map_err(invalid)?),
            "SHA256" => hashes.sha256 = Some(Sha256::parse(value).map_err(invalid)?),
            "MD5" => hashes.md5 = Some(Md5::parse(value).map_err(invalid)?),
            _ => {}
        }
    }
    if hashes.is_empty() {
        return Err(format!("Hashes '{text}' names no SHA1, SHA256 or MD5"));
    }
    Ok(hashes)
}

impl SysmonEvent<'_> {
    /// The observation this event makes, `Ok(None)` when it names no file hash at all, or why it
    /// cannot be taken.
    pub fn observation(&self, tenant: &str) -> Result<Option<Observation>, String> {
        let Some(hashes) = present(&self.data.hashes) else {
            return Ok(None);
        };
        let hashes = parse_hashes(hashes)?;
        let device =
            self.computer.map(str::trim).filter(|name| !name.is_empty()).ok_or("the event names no Computer")?;
        let timestamp = match present(&self.data.utc_time).map(Timestamp::parse_utc) {
            Some(Ok(time)) => time,
            _ => {
                let system = self.system_time.ok_or("the event has neither UtcTime nor a record time")?;
                Timestamp::parse_utc(system).map_err(|error| error.to_string())?
            }
        };
        let data = &self.data;
        let path = match self.event_id {
            1 => path_value(&data.image),
            6 | 7 => path_value(&data.image_loaded),
            15 | 23 | 26 | 29 => path_value(&data.target_filename),
            _ => path_value(&data.target_filename)
                .or_else(|| path_value(&data.image_loaded))
                .or_else(|| path_value(&data.image)),
        };
        let (file_name, folder_path) = path.map(split_path).unwrap_or_default();
        let reported = ReportedFacts {
            signed: data.signed.and_then(Flag::value),
            signature: present(&data.signature).map(str::to_owned),
            signature_status: present(&data.signature_status).map(str::to_owned),
            company: present(&data.company).map(str::to_owned),
            product: present(&data.product).map(str::to_owned),
        };
        Ok(Some(Observation {
            tenant_id: tenant.to_owned(),
            device_id: device.to_owned(),
            device_name: Some(device.to_owned()),
            timestamp,
            hashes,
            size: None,
            file_name,
            folder_path,
            os_platform: self.os_platform.map(str::to_owned),
            reported: (!reported.is_empty()).then(|| Box::new(reported)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_parse_in_any_order_and_case() {
        let hashes = parse_hashes(
            "IMPHASH=114E27FBB0E975697F2F9988DE884FA7,md5=B1B981CD8B111783B80F3C4E10086912,SHA1=68B26C16080D71013123C6DEE7B1AABC3D2857D0",
        )
        .unwrap();
        assert_eq!(hashes.sha1.unwrap().to_string(), "68b26c16080d71013123c6dee7b1aabc3d2857d0");
        assert_eq!(hashes.md5.unwrap().to_string(), "b1b981cd8b111783b80f3c4e10086912");
        assert!(hashes.sha256.is_none());
        assert!(parse_hashes("IMPHASH=114E27FBB0E975697F2F9988DE884FA7").unwrap_err().contains("no SHA1"));
        assert!(parse_hashes("SHA1=68B26C").unwrap_err().contains("SHA1"));
        assert!(parse_hashes("SHA1").is_err());
    }

    #[test]
    fn paths_split_into_name_and_folder() {
        assert_eq!(
            split_path(r"C:\Windows\System32\cmd.exe"),
            (Some("cmd.exe".into()), Some(r"C:\Windows\System32".into()))
        );
        assert_eq!(split_path("cmd.exe"), (Some("cmd.exe".into()), None));
        assert_eq!(split_path("/usr/bin/ls"), (Some("ls".into()), Some("/usr/bin".into())));
    }

    fn event(event_id: u32, data: EventData<'static>) -> SysmonEvent<'static> {
        SysmonEvent {
            event_id,
            computer: Some("ws1"),
            system_time: Some("2020-02-10T08:28:12.8563634Z"),
            data,
            os_platform: None,
        }
    }

    #[test]
    fn the_path_comes_from_the_field_the_event_id_names() {
        let data = || EventData {
            hashes: Some("SHA1=68B26C16080D71013123C6DEE7B1AABC3D2857D0".into()),
            image: Some(r"C:\a\proc.exe".into()),
            image_loaded: Some(r"C:\b\lib.dll".into()),
            target_filename: Some(r"C:\c\target.bin".into()),
            ..Default::default()
        };
        let name = |id| event(id, data()).observation("t").unwrap().unwrap().file_name.unwrap();
        assert_eq!(name(1), "proc.exe");
        assert_eq!(name(7), "lib.dll");
        assert_eq!(name(6), "lib.dll");
        assert_eq!(name(23), "target.bin");
        assert_eq!(name(99), "target.bin");
    }

    #[test]
    fn utc_time_wins_and_the_record_time_is_the_fallback() {
        let mut data = EventData { hashes: Some("MD5=B1B981CD8B111783B80F3C4E10086912".into()), ..Default::default() };
        data.utc_time = Some("2020-02-10 08:28:12.848".into());
        let observation = event(1, data).observation("t").unwrap().unwrap();
        assert_eq!(observation.timestamp.to_string(), "2020-02-10T08:28:12.848Z");
        let data = EventData { hashes: Some("MD5=B1B981CD8B111783B80F3C4E10086912".into()), ..Default::default() };
        let observation = event(1, data).observation("t").unwrap().unwrap();
        assert_eq!(observation.timestamp.to_string(), "2020-02-10T08:28:12.8563634Z");
    }

    #[test]
    fn events_without_hashes_are_not_observations_and_placeholders_are_not_names() {
        assert!(event(3, EventData::default()).observation("t").unwrap().is_none());
        let data = EventData {
            hashes: Some("SHA1=68B26C16080D71013123C6DEE7B1AABC3D2857D0".into()),
            image: Some("<unknown process>".into()),
            signed: Some(Flag::Text(Some(true))),
            signature: Some("Microsoft Windows".into()),
            signature_status: Some("Valid".into()),
            company: Some("-".into()),
            ..Default::default()
        };
        let observation = event(1, data).observation("t").unwrap().unwrap();
        assert_eq!(observation.file_name, None);
        let reported = observation.reported.unwrap();
        assert_eq!(reported.signed, Some(true));
        assert_eq!(reported.signature.as_deref(), Some("Microsoft Windows"));
        assert_eq!(reported.company, None);
    }
}
