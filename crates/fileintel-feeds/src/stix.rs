//! STIX 2.1 bundles: `indicator` objects whose patterns name file hashes.
//!
//! Of a pattern, fileintel takes comparisons `file:hashes.'SHA-256' = '…'` (also `'SHA-1'`,
//! `MD5`, quoted or not) joined by `OR`, within one observation (`[...]`) or across several. A
//! comparison of anything else, and any observation that joins comparisons with `AND` (taking
//! its hash alone would claim more than the indicator says), are skipped and reported; so is an
//! indicator whose pattern is not STIX, or names no file hash at all. Qualifiers (`WITHIN`,
//! `REPEATS`, ...) and `FOLLOWEDBY` make the whole indicator skipped.
//!
//! The threat name is the `name` of the `malware` an `indicates` relationship points to from
//! the indicator, else the indicator's own name. `indicator_types` then `labels` give the label.
//! `modified` (else `created`) is when it was said; `valid_from`, `valid_until` and `revoked`
//! are kept.

use std::borrow::Cow;

use fileintel_core::{FileHash, Position, Rejection, Timestamp};
use serde::Deserialize;

use fileintel_core::FileHashes;

use crate::{Read, Statement};

#[derive(Deserialize)]
struct Bundle<'a> {
    #[serde(rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    objects: Vec<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize, Default)]
struct Object<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pattern: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pattern_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    indicator_types: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    labels: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    created: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    modified: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    valid_from: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    valid_until: Option<Cow<'a, str>>,
    #[serde(default)]
    revoked: bool,
    #[serde(borrow, default)]
    relationship_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source_ref: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    target_ref: Option<Cow<'a, str>>,
}

/// One comparison of a pattern: `left = 'value'`, or the text of anything else.
enum Comparison {
    Hash(FileHash),
    Other(String),
}

/// Splits `text` at top-level occurrences of ` KEYWORD ` outside quotes and brackets.
fn split_outside(text: &str, keywords: &[&str]) -> Vec<(String, Option<String>)> {
    let bytes = text.as_bytes();
    let (mut parts, mut start, mut depth, mut quoted, mut at) = (Vec::new(), 0, 0i32, false, 0);
    while at < bytes.len() {
        match bytes[at] {
            b'\\' if quoted => at += 1,
            b'\'' => quoted = !quoted,
            b'[' | b'(' if !quoted => depth += 1,
            b']' | b')' if !quoted => depth -= 1,
            byte if !quoted && depth == 0 && byte.is_ascii_whitespace() => {
                let rest = &text[at + 1..];
                if let Some(keyword) = keywords.iter().find(|keyword| {
                    rest.starts_with(**keyword) && rest[keyword.len()..].starts_with(|c: char| c.is_whitespace())
                }) {
                    parts.push((text[start..at].trim().to_owned(), Some((*keyword).to_owned())));
                    at += 1 + keyword.len();
                    start = at;
                    continue;
                }
            }
            _ => {}
        }
        at += 1;
    }
    parts.push((text[start.min(text.len())..].trim().to_owned(), None));
    parts
}

/// The hash a comparison names, when it is `file:hashes.NAME = 'value'`.
fn comparison(text: &str) -> Comparison {
    let other = || Comparison::Other(text.to_owned());
    let Some((left, right)) = text.split_once('=') else { return other() };
    let left = left.trim();
    let Some(name) = left.strip_prefix("file:hashes.") else { return other() };
    let name = name.trim_matches('\'').to_ascii_uppercase().replace('-', "");
    let value = right.trim();
    let Some(value) = value.strip_prefix('\'').and_then(|value| value.strip_suffix('\'')) else { return other() };
    match (name.as_str(), FileHash::parse(value)) {
        ("SHA256", Ok(hash @ FileHash::Sha256(_)))
        | ("SHA1", Ok(hash @ FileHash::Sha1(_)))
        | ("MD5", Ok(hash @ FileHash::Md5(_))) => Comparison::Hash(hash),
        _ => other(),
    }
}

/// The hashes a pattern names by the rule in the module's comment, and what it skipped.
fn pattern_hashes(pattern: &str) -> Result<(Vec<FileHash>, Vec<String>), String> {
    let observations = split_outside(pattern.trim(), &["OR", "AND", "FOLLOWEDBY"]);
    let mut hashes = Vec::new();
    let mut skipped = Vec::new();
    for (observation, operator) in &observations {
        if operator.as_deref().is_some_and(|operator| operator != "OR") {
            return Err(format!("observations joined by {}", operator.as_deref().unwrap_or_default()));
        }
        let Some(inner) = observation.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) else {
            return Err(format!("'{observation}' is not an observation in brackets (qualifiers are not taken)"));
        };
        let comparisons = split_outside(inner, &["OR", "AND"]);
        if comparisons.iter().any(|(_, operator)| operator.as_deref() == Some("AND")) {
            skipped.push(format!("[{inner}] (joined by AND)"));
            continue;
        }
        for (text, _) in comparisons {
            match comparison(&text) {
                Comparison::Hash(hash) => hashes.push(hash),
                Comparison::Other(text) => skipped.push(text),
            }
        }
    }
    Ok((hashes, skipped))
}

fn time(text: Option<&Cow<'_, str>>) -> Result<Option<Timestamp>, String> {
    text.map(|text| Timestamp::parse(text).map_err(|error| error.to_string())).transpose()
}

/// The type of a raw object when its first key is `type` (as STIX writers put it), found
/// without parsing the rest; `None` when it is not first, and the object must be parsed to tell.
fn leading_type(raw: &str) -> Option<&str> {
    let rest = raw.trim_start().strip_prefix('{')?.trim_start().strip_prefix("\"type\"")?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes()[end] == b'"').then(|| &rest[..end])
}

/// The statements an indicator makes, or why it makes none, into `read`.
fn indicator(at: Position, object: &Object<'_>, indicates: &ahash::AHashMap<String, String>, read: &mut Read) {
    let reject = |reason: String| Rejection::new(at, format!("{}: {reason}", object.id));
    if object.pattern_type.as_deref().is_some_and(|kind| kind != "stix") {
        let kind = object.pattern_type.as_deref().unwrap_or_default();
        return read.rejections.push(reject(format!("pattern type {kind} is not stix")));
    }
    let Some(pattern) = object.pattern.as_deref() else { return read.rejections.push(reject("no pattern".into())) };
    let (hashes, skipped) = match pattern_hashes(pattern) {
        Ok(found) => found,
        Err(reason) => return read.rejections.push(reject(format!("pattern skipped: {reason}"))),
    };
    if !skipped.is_empty() {
        read.rejections.push(reject(format!("skipped in the pattern: {}", skipped.join("; "))));
    }
    if hashes.is_empty() {
        return;
    }
    let times = (|| {
        Ok::<_, String>((
            time(object.modified.as_ref().or(object.created.as_ref()))?,
            time(object.valid_from.as_ref())?,
            time(object.valid_until.as_ref())?,
        ))
    })();
    let (said_at, valid_from, valid_until) = match times {
        Ok(times) => times,
        Err(reason) => return read.rejections.push(reject(reason)),
    };
    let label =
        object.indicator_types.iter().chain(object.labels.iter()).map(AsRef::as_ref).collect::<Vec<&str>>().join(",");
    let value = indicates.get(object.id.as_ref()).cloned().or_else(|| object.name.as_deref().map(str::to_owned));
    for hash in hashes {
        read.statements.push(Statement {
            hashes: FileHashes::from(hash),
            label: label.clone(),
            value: value.clone(),
            said_at,
            valid_from,
            valid_until,
            revoked: object.revoked,
            reference: object.id.to_string(),
            at,
        });
    }
}

/// Reads a bundle; every object gets a record position (its place in `objects`, from 1).
///
/// Two passes: the first parses malware and relationships (for the names) and only notes where
/// the indicators are, by their leading `type` key where they have one; the second parses the
/// indicators.
pub(crate) fn read(bytes: &[u8]) -> Read {
    let mut read = Read::default();
    let bundle: Bundle<'_> = match serde_json::from_slice(bytes) {
        Ok(bundle) => bundle,
        Err(error) => {
            read.rejections.push(Rejection::new(Position::Offset(0), format!("not a STIX bundle: {error}")));
            return read;
        }
    };
    if bundle.kind.as_deref() != Some("bundle") {
        read.rejections.push(Rejection::new(Position::Offset(0), "not a STIX bundle: its type is not \"bundle\""));
        return read;
    }
    let mut malware: ahash::AHashMap<String, String> = ahash::AHashMap::new();
    let mut relationships: Vec<(String, String)> = Vec::new();
    let mut indicators: Vec<(usize, Option<Object<'_>>)> = Vec::new();
    for (index, raw) in bundle.objects.iter().enumerate() {
        let at = Position::Record(index as u64 + 1);
        let kind = leading_type(raw.get());
        if kind == Some("indicator") {
            indicators.push((index, None));
            continue;
        }
        if kind.is_some_and(|kind| kind != "malware" && kind != "relationship") {
            continue;
        }
        let object = match serde_json::from_str::<Object<'_>>(raw.get()) {
            Ok(object) => object,
            Err(error) => {
                read.rejections.push(Rejection::new(at, format!("not a STIX object: {error}")));
                continue;
            }
        };
        match object.kind.as_ref() {
            "malware" => {
                if let Some(name) = &object.name {
                    malware.insert(object.id.to_string(), name.to_string());
                }
            }
            "relationship" if object.relationship_type.as_deref() == Some("indicates") => {
                if let (Some(source), Some(target)) = (&object.source_ref, &object.target_ref) {
                    relationships.push((source.to_string(), target.to_string()));
                }
            }
            "indicator" => indicators.push((index, Some(object))),
            _ => {}
        }
    }
    let indicates: ahash::AHashMap<String, String> = relationships
        .into_iter()
        .filter_map(|(source, target)| Some((source, malware.get(&target)?.clone())))
        .collect();
    for (index, parsed) in &indicators {
        let at = Position::Record(*index as u64 + 1);
        match parsed {
            Some(object) => indicator(at, object, &indicates, &mut read),
            None => match serde_json::from_str::<Object<'_>>(bundle.objects[*index].get()) {
                Ok(object) => indicator(at, &object, &indicates, &mut read),
                Err(error) => read.rejections.push(Rejection::new(at, format!("not a STIX object: {error}"))),
            },
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "094fd325049b8a9cf6d3e5ef2a6d4cc6a567d7d49c35f8bb8dd9e3c6acf3d78d";
    const SHA1: &str = "4388963aaa83afe2042a46a3c017ad50bdcdafb3";
    const MD5: &str = "f31b4b4d9c4b4a2e8e0f0c6a1b2c3d4e";

    #[test]
    fn a_leading_type_is_found_without_parsing_and_anything_else_is_left_to_the_parser() {
        assert_eq!(leading_type(r#" { "type" : "indicator", "id": "x"}"#), Some("indicator"));
        assert_eq!(leading_type(r#"{"id": "x", "type": "indicator"}"#), None);
        assert_eq!(leading_type(r#"{"type": "ind\u0069cator"}"#), None, "an escape is the parser's");
    }

    #[test]
    fn patterns_yield_hashes_joined_by_or_and_report_the_rest() {
        let (hashes, skipped) = pattern_hashes(&format!("[file:hashes.'SHA-256' = '{SHA256}']")).unwrap();
        assert_eq!((hashes.len(), skipped.len()), (1, 0));
        let (hashes, skipped) = pattern_hashes(&format!(
            "[file:hashes.MD5 = '{MD5}' OR file:hashes.'SHA-1' = '{SHA1}'] OR [url:value = 'http://x/']"
        ))
        .unwrap();
        assert_eq!(hashes.len(), 2);
        assert_eq!(skipped, ["url:value = 'http://x/'"]);
        let (hashes, skipped) =
            pattern_hashes(&format!("[file:hashes.MD5 = '{MD5}' AND file:name = 'a OR b.exe']")).unwrap();
        assert!(hashes.is_empty());
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(
            pattern_hashes(&format!("[file:hashes.MD5 = '{MD5}'] FOLLOWEDBY [file:hashes.MD5 = '{MD5}']")).is_err()
        );
        assert!(pattern_hashes(&format!("[file:hashes.MD5 = '{MD5}'] WITHIN 5 SECONDS")).is_err());
        // A hash of the wrong length for its name is not taken.
        let (hashes, skipped) = pattern_hashes(&format!("[file:hashes.MD5 = '{SHA1}']")).unwrap();
        assert_eq!((hashes.len(), skipped.len()), (0, 1));
    }

    #[test]
    fn a_bundle_reads_indicators_names_and_validity() {
        let bundle = format!(
            r#"{{"type":"bundle","id":"bundle--1","objects":[
            {{"type":"indicator","spec_version":"2.1","id":"indicator--a","created":"2024-01-01T00:00:00Z","modified":"2024-02-01T00:00:00Z",
              "pattern":"[file:hashes.'SHA-256' = '{SHA256}']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z",
              "valid_until":"2025-01-01T00:00:00Z","indicator_types":["malicious-activity"],"name":"bad file"}},
            {{"type":"malware","spec_version":"2.1","id":"malware--m","name":"Emotet","is_family":true}},
            {{"type":"relationship","spec_version":"2.1","id":"relationship--r","relationship_type":"indicates","source_ref":"indicator--a","target_ref":"malware--m"}},
            {{"type":"indicator","spec_version":"2.1","id":"indicator--b","created":"2024-01-01T00:00:00Z","pattern":"[ipv4-addr:value = '10.0.0.1']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"}},
            {{"type":"indicator","id":"indicator--c","pattern":"x","pattern_type":"sigma","valid_from":"2024-01-01T00:00:00Z"}},
            17
            ]}}"#
        );
        let read = read(bundle.as_bytes());
        assert_eq!(read.statements.len(), 1);
        let statement = &read.statements[0];
        assert_eq!(statement.value.as_deref(), Some("Emotet"), "the malware it indicates");
        assert_eq!(statement.label, "malicious-activity");
        assert_eq!(statement.said_at.unwrap().to_string(), "2024-02-01T00:00:00Z");
        assert_eq!(statement.valid_until.unwrap().to_string(), "2025-01-01T00:00:00Z");
        assert_eq!(statement.reference, "indicator--a");
        let rejected: Vec<(Position, &str)> =
            read.rejections.iter().map(|rejection| (rejection.at, rejection.reason.as_str())).collect();
        assert_eq!(rejected.len(), 3, "{rejected:?}");
        assert_eq!(rejected[0].0, Position::Record(6), "the object that is not one");
        assert!(rejected[1].1.starts_with("indicator--b: skipped in the pattern: ipv4-addr:value"));
        assert!(rejected[2].1.contains("sigma"));
        assert_eq!(read_not_a_bundle(), 1);
    }

    fn read_not_a_bundle() -> usize {
        read(br#"{"type":"indicator"}"#).rejections.len() + read(b"nonsense").statements.len()
    }
}
