//! MISP events as MISP exports them (JSON): one event (`{"Event": {...}}` or bare), a list of
//! them, or a search answer (`{"response": [...]}`).
//!
//! Taken: attributes of type `md5`, `sha1`, `sha256`, the `filename|md5`-style pairs and
//! `malware-sample`, and objects of template `file`, whose hash attributes name one file
//! together. Deleted attributes are skipped. The label is the attribute's tags, then the
//! event's, each tag read whole and by its value (`ms-caro-malware:malware-type="Trojan"` also
//! as `Trojan`), then `malicious` when the attribute is marked `to_ids`; an attribute neither
//! marked nor tagged is context, not a verdict, and is passed over. The threat name is the
//! first cluster tag of a malware or tool galaxy (`misp-galaxy:malpedia="Emotet"`, see
//! [`THREAT_GALAXIES`]) of the attribute, then of the event, and else the event's `info`. The
//! attribute's `timestamp` (else the event's) is when it was said.

use fileintel_core::{FileHash, FileHashes, Position, Rejection, Timestamp};
use serde_json::Value;

use crate::{Read, Statement};

/// The events of a MISP export, whichever shape it has.
fn events(document: &Value) -> Vec<&Value> {
    match document {
        Value::Array(items) => items.iter().flat_map(events).collect(),
        Value::Object(object) if object.contains_key("response") => events(&document["response"]),
        Value::Object(object) if object.contains_key("Event") => vec![&document["Event"]],
        Value::Object(object) if object.contains_key("Attribute") || object.contains_key("info") => vec![document],
        _ => Vec::new(),
    }
}

fn tag_names(holder: &Value) -> Vec<&str> {
    holder["Tag"].as_array().into_iter().flatten().filter_map(|tag| tag["name"].as_str()).collect()
}

/// The galaxies whose clusters name malware or tools, and so can name a file's threat. Others
/// (attack patterns, threat actors, sectors, countries) say something about the event, not
/// about what the file is.
const THREAT_GALAXIES: &[&str] = &[
    "malpedia",
    "ransomware",
    "rat",
    "tool",
    "botnet",
    "banker",
    "stealer",
    "backdoor",
    "android",
    "exploit-kit",
    "cryptominers",
    "mitre-malware",
    "mitre-tool",
    "mitre-enterprise-attack-malware",
    "mitre-enterprise-attack-tool",
    "mitre-mobile-attack-malware",
    "mitre-mobile-attack-tool",
];

/// A threat name from a galaxy cluster's tag: `misp-galaxy:malpedia="Emotet"` is `Emotet`;
/// `None` for clusters of other galaxies.
fn galaxy_name(tag: &str) -> Option<&str> {
    let (galaxy, value) = tag.strip_prefix("misp-galaxy:")?.split_once('=')?;
    THREAT_GALAXIES.contains(&galaxy).then(|| value.trim_matches('"'))
}

/// A tag as labels: whole, and its value after `=` (unquoted) or after the last `:`.
fn tag_labels(tag: &str) -> Vec<String> {
    let mut labels = vec![tag.to_owned()];
    if let Some((_, value)) = tag.split_once('=') {
        labels.push(value.trim_matches('"').to_owned());
    } else if let Some((_, value)) = tag.rsplit_once(':') {
        labels.push(value.to_owned());
    }
    labels
}

fn timestamp(holder: &Value) -> Option<Timestamp> {
    let seconds = match &holder["timestamp"] {
        Value::String(text) => text.parse::<i64>().ok()?,
        Value::Number(number) => number.as_i64()?,
        _ => return None,
    };
    Some(Timestamp::from_unix_seconds(seconds))
}

/// The hash an attribute carries, when its type is one of the file-hash types.
fn attribute_hash(attribute: &Value) -> Option<Result<FileHash, String>> {
    let kind = attribute["type"].as_str()?;
    let value = attribute["value"].as_str().unwrap_or_default();
    let (algorithm, hash) = match kind {
        "md5" | "sha1" | "sha256" => (kind, value),
        "filename|md5" | "filename|sha1" | "filename|sha256" | "malware-sample" => {
            let algorithm = kind.strip_prefix("filename|").unwrap_or("md5");
            (algorithm, value.rsplit_once('|').map_or(value, |(_, hash)| hash))
        }
        _ => return None,
    };
    Some(match (algorithm, FileHash::parse(hash)) {
        ("md5", Ok(hash @ FileHash::Md5(_)))
        | ("sha1", Ok(hash @ FileHash::Sha1(_)))
        | ("sha256", Ok(hash @ FileHash::Sha256(_))) => Ok(hash),
        (_, Ok(_)) => Err(format!("a {kind} attribute holds another kind of hash")),
        (_, Err(error)) => Err(format!("{kind}: {error}")),
    })
}

fn add(hashes: &mut FileHashes, hash: FileHash) {
    match hash {
        FileHash::Md5(md5) => hashes.md5 = Some(md5),
        FileHash::Sha1(sha1) => hashes.sha1 = Some(sha1),
        FileHash::Sha256(sha256) => hashes.sha256 = Some(sha256),
    }
}

struct Context<'a> {
    event_tags: Vec<&'a str>,
    event_time: Option<Timestamp>,
    event_info: Option<&'a str>,
}

impl Context<'_> {
    /// The statement an attribute (or a file object's attributes, `holder` being the object)
    /// makes about `hashes`; `None` when it is context only.
    fn statement(&self, holder: &Value, attributes: &[&Value], hashes: FileHashes, at: Position) -> Option<Statement> {
        let own_tags: Vec<&str> =
            std::iter::once(holder).chain(attributes.iter().copied()).flat_map(tag_names).collect();
        let to_ids = attributes.iter().any(|attribute| attribute["to_ids"].as_bool() == Some(true));
        let mut labels: Vec<String> =
            own_tags.iter().chain(self.event_tags.iter()).flat_map(|tag| tag_labels(tag)).collect();
        if to_ids {
            labels.push("malicious".to_owned());
        }
        if !to_ids && own_tags.is_empty() {
            return None;
        }
        let value = own_tags
            .iter()
            .chain(self.event_tags.iter())
            .find_map(|tag| galaxy_name(tag))
            .or(self.event_info)
            .map(str::to_owned);
        let said_at = attributes.iter().filter_map(|attribute| timestamp(attribute)).max().or(self.event_time);
        Some(Statement {
            hashes,
            label: labels.join(","),
            value,
            said_at,
            valid_from: None,
            valid_until: None,
            revoked: false,
            reference: holder["uuid"].as_str().unwrap_or_default().to_owned(),
            at,
        })
    }
}

pub(crate) fn read(bytes: &[u8]) -> Read {
    let mut read = Read::default();
    let document: Value = match serde_json::from_slice(bytes) {
        Ok(document) => document,
        Err(error) => {
            read.rejections.push(Rejection::new(Position::Offset(0), format!("not MISP JSON: {error}")));
            return read;
        }
    };
    let events = events(&document);
    if events.is_empty() {
        read.rejections.push(Rejection::new(Position::Offset(0), "no MISP event in it"));
    }
    let mut count = 0u64;
    for event in events {
        let context = Context {
            event_tags: tag_names(event),
            event_time: timestamp(event),
            event_info: event["info"].as_str().filter(|info| !info.trim().is_empty()),
        };
        for attribute in event["Attribute"].as_array().into_iter().flatten() {
            count += 1;
            let at = Position::Record(count);
            if attribute["deleted"].as_bool() == Some(true) {
                continue;
            }
            match attribute_hash(attribute) {
                None => {}
                Some(Err(reason)) => read.rejections.push(Rejection::new(
                    at,
                    format!("attribute {}: {reason}", attribute["uuid"].as_str().unwrap_or("?")),
                )),
                Some(Ok(hash)) => {
                    let mut hashes = FileHashes::default();
                    add(&mut hashes, hash);
                    read.statements.extend(context.statement(attribute, &[attribute], hashes, at));
                }
            }
        }
        for object in event["Object"].as_array().into_iter().flatten() {
            count += 1;
            let at = Position::Record(count);
            if object["name"].as_str() != Some("file") || object["deleted"].as_bool() == Some(true) {
                continue;
            }
            let mut hashes = FileHashes::default();
            let mut used = Vec::new();
            let mut problems = Vec::new();
            for attribute in object["Attribute"].as_array().into_iter().flatten() {
                if attribute["deleted"].as_bool() == Some(true) {
                    continue;
                }
                match attribute_hash(attribute) {
                    None => {}
                    Some(Ok(hash)) => {
                        add(&mut hashes, hash);
                        used.push(attribute);
                    }
                    Some(Err(reason)) => problems.push(reason),
                }
            }
            let uuid = object["uuid"].as_str().unwrap_or("?");
            if !problems.is_empty() {
                read.rejections.push(Rejection::new(at, format!("file object {uuid}: {}", problems.join("; "))));
                continue;
            }
            if used.is_empty() {
                continue;
            }
            read.statements.extend(context.statement(object, &used, hashes, at));
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_attributes_and_file_objects_read_with_their_names() {
        let event = serde_json::json!({"Event": {
            "info": "wave", "timestamp": "1700000000",
            "Tag": [{"name": "misp-galaxy:mitre-attack-pattern=\"Phishing - T1566\""},
                    {"name": "misp-galaxy:malpedia=\"Emotet\""}],
            "Attribute": [
                {"uuid": "a1", "type": "sha256", "value": "a".repeat(64), "to_ids": true, "timestamp": "1700000100",
                 "Tag": [{"name": "ms-caro-malware:malware-type=\"Trojan\""}]},
                {"uuid": "a2", "type": "md5", "value": "b".repeat(32), "to_ids": false},
                {"uuid": "a3", "type": "filename|sha1", "value": format!("x.exe|{}", "c".repeat(40)), "to_ids": true},
                {"uuid": "a4", "type": "sha1", "value": "d".repeat(40), "to_ids": true, "deleted": true},
                {"uuid": "a5", "type": "sha1", "value": "nothex", "to_ids": true},
                {"uuid": "a6", "type": "ip-dst", "value": "10.0.0.1", "to_ids": true}
            ],
            "Object": [{"name": "file", "uuid": "o1", "Attribute": [
                {"type": "sha256", "value": "e".repeat(64), "to_ids": true},
                {"type": "md5", "value": "f".repeat(32), "to_ids": true},
                {"type": "filename", "value": "y.exe"}]}]
        }});
        let read = read(event.to_string().as_bytes());
        let references: Vec<&str> = read.statements.iter().map(|statement| statement.reference.as_str()).collect();
        assert_eq!(references, ["a1", "a3", "o1"], "a2 is context, a4 deleted, a5 rejected, a6 no file");
        assert_eq!(read.statements[0].value.as_deref(), Some("Emotet"));
        assert!(read.statements[0].label.starts_with("ms-caro-malware:malware-type=\"Trojan\",Trojan"));
        assert_eq!(read.statements[0].said_at, Some(Timestamp::from_unix_seconds(1_700_000_100)));
        assert_eq!(read.statements[1].said_at, Some(Timestamp::from_unix_seconds(1_700_000_000)), "the event's time");
        let object = &read.statements[2];
        assert!(object.hashes.sha256.is_some() && object.hashes.md5.is_some(), "one file by two hashes");
        assert_eq!(read.rejections.len(), 1);
        assert_eq!(read.rejections[0].at, Position::Record(5));
        assert!(read.rejections[0].reason.starts_with("attribute a5: sha1"));
        // A search answer of several events reads the same; something else is refused.
        let answer = serde_json::json!({"response": [event.clone(), event]});
        assert_eq!(super::read(answer.to_string().as_bytes()).statements.len(), 6);
        assert_eq!(super::read(b"{\"hello\": 1}").rejections.len(), 1);
        // Without a malware or tool cluster, the event's info names the threat.
        let plain = serde_json::json!({"Event": {"info": "Ransomware - Xorist", "Tag": [{"name": "tlp:white"}],
            "Attribute": [{"uuid": "p1", "type": "md5", "value": "b".repeat(32), "to_ids": true}]}});
        assert_eq!(
            super::read(plain.to_string().as_bytes()).statements[0].value.as_deref(),
            Some("Ransomware - Xorist")
        );
    }
}
