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
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::{Read, Statement};

// The export is read into these types, which hold only the fields used: every other field, and
// any value of an unexpected type, is skipped as it is read rather than kept (a generic JSON
// tree costs some forty times the export's size).

/// A JSON value where a scalar is expected: kept when it is one, skipped (nested values and
/// all) when it is not, so a field of an unexpected type is as good as absent.
#[derive(Debug, Default, Clone, PartialEq)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Text(String),
    #[default]
    Other,
}

impl Scalar {
    fn as_bool(&self) -> Option<bool> {
        match self {
            Scalar::Bool(value) => Some(*value),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Text(text) => Some(text),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("any JSON value")
            }
            fn visit_bool<E>(self, value: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(value))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(value))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Scalar, E> {
                Ok(i64::try_from(value).map_or(Scalar::Other, Scalar::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_str<E>(self, value: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(value.to_owned()))
            }
            fn visit_string<E>(self, value: String) -> Result<Scalar, E> {
                Ok(Scalar::Text(value))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A list where a list is expected; anything else reads as empty.
#[derive(Debug)]
struct List<T>(Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = List<T>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<List<T>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(List::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_unit<E>(self) -> Result<List<T>, E> {
                Ok(List::default())
            }
        }
        deserializer.deserialize_any(ListVisitor(std::marker::PhantomData))
    }
}

#[derive(Debug, Default, Deserialize)]
struct Tag {
    #[serde(default)]
    name: Scalar,
}

#[derive(Debug, Default, Deserialize)]
struct Attribute {
    #[serde(default)]
    uuid: Scalar,
    #[serde(default, rename = "type")]
    kind: Scalar,
    #[serde(default)]
    value: Scalar,
    #[serde(default)]
    to_ids: Scalar,
    #[serde(default)]
    deleted: Scalar,
    #[serde(default)]
    timestamp: Scalar,
    #[serde(default, rename = "Tag")]
    tags: List<Tag>,
}

#[derive(Debug, Default, Deserialize)]
struct Object {
    #[serde(default)]
    name: Scalar,
    #[serde(default)]
    uuid: Scalar,
    #[serde(default)]
    deleted: Scalar,
    #[serde(default, rename = "Tag")]
    tags: List<Tag>,
    #[serde(default, rename = "Attribute")]
    attributes: List<Attribute>,
}

/// Any object of the export: a search answer (`response`), a wrapper (`Event`), or an event.
#[derive(Debug, Default, Deserialize)]
struct Node {
    #[serde(default)]
    response: Option<Nodes>,
    #[serde(default, rename = "Event")]
    event: Option<Box<Node>>,
    #[serde(default)]
    info: Option<Scalar>,
    #[serde(default)]
    timestamp: Scalar,
    #[serde(default, rename = "Tag")]
    tags: List<Tag>,
    #[serde(default, rename = "Attribute")]
    attributes: Option<List<Attribute>>,
    #[serde(default, rename = "Object")]
    objects: List<Object>,
}

/// What a document or a `response` holds: a list of nodes, one node, or something else.
#[derive(Debug)]
enum Nodes {
    List(Vec<Nodes>),
    One(Box<Node>),
    Other,
}

impl<'de> Deserialize<'de> for Nodes {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodesVisitor;
        impl<'de> Visitor<'de> for NodesVisitor {
            type Value = Nodes;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a MISP event, a list of them or a search answer")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Nodes, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Nodes::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Nodes, A::Error> {
                Node::deserialize(de::value::MapAccessDeserializer::new(map)).map(|node| Nodes::One(Box::new(node)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Nodes, E> {
                Ok(Nodes::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Nodes, E> {
                Ok(Nodes::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Nodes, E> {
                Ok(Nodes::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Nodes, E> {
                Ok(Nodes::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Nodes, E> {
                Ok(Nodes::Other)
            }
            fn visit_unit<E>(self) -> Result<Nodes, E> {
                Ok(Nodes::Other)
            }
        }
        deserializer.deserialize_any(NodesVisitor)
    }
}

/// The events of a MISP export, whichever shape it has.
fn events(nodes: &Nodes) -> Vec<&Node> {
    match nodes {
        Nodes::List(items) => items.iter().flat_map(events).collect(),
        Nodes::One(node) => match (&node.response, &node.event) {
            (Some(response), _) => events(response),
            (None, Some(event)) => vec![event],
            (None, None) if node.attributes.is_some() || node.info.is_some() => vec![node],
            (None, None) => Vec::new(),
        },
        Nodes::Other => Vec::new(),
    }
}

fn tag_names(tags: &List<Tag>) -> impl Iterator<Item = &str> {
    tags.0.iter().filter_map(|tag| tag.name.as_str())
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

fn timestamp(value: &Scalar) -> Option<Timestamp> {
    let seconds = match value {
        Scalar::Text(text) => text.parse::<i64>().ok()?,
        Scalar::Int(number) => *number,
        _ => return None,
    };
    // Seconds beyond what a timestamp holds say no time, as text that is no number does.
    Timestamp::checked_from_unix_seconds(seconds)
}

/// The hash an attribute carries, when its type is one of the file-hash types.
fn attribute_hash(attribute: &Attribute) -> Option<Result<FileHash, String>> {
    let kind = attribute.kind.as_str()?;
    let value = attribute.value.as_str().unwrap_or_default();
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
    /// The statement an attribute (or a file object's attributes, the holder being the object)
    /// makes about `hashes`; `None` when it is context only.
    fn statement(
        &self,
        (holder_tags, holder_uuid): (&List<Tag>, &Scalar),
        attributes: &[&Attribute],
        hashes: FileHashes,
        at: Position,
    ) -> Option<Statement> {
        let own_tags: Vec<&str> = std::iter::once(holder_tags)
            .chain(attributes.iter().map(|attribute| &attribute.tags))
            .flat_map(tag_names)
            .collect();
        let to_ids = attributes.iter().any(|attribute| attribute.to_ids.as_bool() == Some(true));
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
        let said_at =
            attributes.iter().filter_map(|attribute| timestamp(&attribute.timestamp)).max().or(self.event_time);
        Some(Statement {
            hashes,
            label: labels.join(","),
            value,
            said_at,
            valid_from: None,
            valid_until: None,
            revoked: false,
            reference: holder_uuid.as_str().unwrap_or_default().to_owned(),
            at,
        })
    }
}

pub(crate) fn read(bytes: &[u8]) -> Read {
    let mut read = Read::default();
    let document: Nodes = match serde_json::from_slice(bytes) {
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
    let no_attributes = List::default();
    for event in events {
        let context = Context {
            event_tags: tag_names(&event.tags).collect(),
            event_time: timestamp(&event.timestamp),
            event_info: event.info.as_ref().and_then(Scalar::as_str).filter(|info| !info.trim().is_empty()),
        };
        for attribute in &event.attributes.as_ref().unwrap_or(&no_attributes).0 {
            count += 1;
            let at = Position::Record(count);
            if attribute.deleted.as_bool() == Some(true) {
                continue;
            }
            match attribute_hash(attribute) {
                None => {}
                Some(Err(reason)) => read.rejections.push(Rejection::new(
                    at,
                    format!("attribute {}: {reason}", attribute.uuid.as_str().unwrap_or("?")),
                )),
                Some(Ok(hash)) => {
                    let mut hashes = FileHashes::default();
                    add(&mut hashes, hash);
                    read.statements.extend(context.statement(
                        (&attribute.tags, &attribute.uuid),
                        &[attribute],
                        hashes,
                        at,
                    ));
                }
            }
        }
        for object in &event.objects.0 {
            count += 1;
            let at = Position::Record(count);
            if object.name.as_str() != Some("file") || object.deleted.as_bool() == Some(true) {
                continue;
            }
            let mut hashes = FileHashes::default();
            let mut used = Vec::new();
            let mut problems = Vec::new();
            for attribute in &object.attributes.0 {
                if attribute.deleted.as_bool() == Some(true) {
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
            let uuid = object.uuid.as_str().unwrap_or("?");
            if !problems.is_empty() {
                read.rejections.push(Rejection::new(at, format!("file object {uuid}: {}", problems.join("; "))));
                continue;
            }
            if used.is_empty() {
                continue;
            }
            read.statements.extend(context.statement((&object.tags, &object.uuid), &used, hashes, at));
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_beyond_what_a_timestamp_holds_is_no_time_and_no_overflow() {
        let event = serde_json::json!({"Event": {"uuid": "e1", "timestamp": "1700000000", "Attribute": [
            {"uuid": "a1", "type": "md5", "value": "f".repeat(32), "to_ids": true, "timestamp": "2629319419144089473"}
        ]}});
        let read = read(event.to_string().as_bytes());
        assert_eq!(read.statements[0].said_at, Some(Timestamp::from_unix_seconds(1_700_000_000)), "the event's time");
    }

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

    #[test]
    fn fields_of_unexpected_types_read_as_absent() {
        let event = serde_json::json!({"Event": {
            "info": {"nested": [1, 2]}, "timestamp": [1], "Tag": "none", "Extra": {"deep": [[{}]]},
            "Attribute": [
                {"uuid": "a1", "type": "sha256", "value": "a".repeat(64), "to_ids": "yes", "Tag": [{"name": "malware"}]},
                {"uuid": 7, "type": "md5", "value": "b".repeat(32), "to_ids": true, "timestamp": 1700000000}
            ],
            "Object": {"not": "a list"}
        }});
        let read = read(event.to_string().as_bytes());
        assert_eq!(read.statements.len(), 2, "{:?}", read.rejections);
        assert!(!read.statements[0].label.contains("malicious"), "a non-boolean to_ids is not set");
        assert_eq!(read.statements[0].value, None, "an info that is not text names nothing");
        assert_eq!(read.statements[1].said_at, Some(Timestamp::from_unix_seconds(1_700_000_000)));
        assert_eq!(read.statements[1].reference, "");
    }
}
