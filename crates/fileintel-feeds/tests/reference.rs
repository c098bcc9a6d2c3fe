//! Feeds nobody on the team wrote: `scripts/feeds-reference.py` builds them with the libraries
//! their communities use (OASIS's `stix2`) and says what each one states; the importer must
//! read exactly that. Needs `FILEINTEL_E2E_PYTHON` (a Python that can pip-install stix2);
//! `.ci/run` sets it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use fileintel_core::DeterminationType;
use fileintel_feeds::{Format, Source};
use serde_json::Value;

fn generated() -> Option<tempfile::TempDir> {
    let Ok(python) = std::env::var("FILEINTEL_E2E_PYTHON") else {
        eprintln!("skipped: set FILEINTEL_E2E_PYTHON to a Python with pip");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/feeds-reference.py");
    let output = Command::new(python).arg(script).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    Some(dir)
}

/// A file's hashes as text, sorted.
fn hash_texts(hashes: &fileintel_core::FileHashes) -> Vec<String> {
    let mut texts: Vec<String> = [
        hashes.md5.map(|hash| hash.to_string()),
        hashes.sha1.map(|hash| hash.to_string()),
        hashes.sha256.map(|hash| hash.to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    texts.sort();
    texts
}

#[test]
fn stix_bundles_made_by_the_stix2_library_read_as_they_were_made() {
    let Some(dir) = generated() else { return };
    let bundle = std::fs::read(dir.path().join("stix-bundle.json")).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("stix-expected.json")).unwrap()).unwrap();
    let read = fileintel_feeds::read(Format::Stix, &bundle);

    let ours: BTreeSet<String> = read
        .statements
        .iter()
        .map(|statement| {
            let hash = hash_texts(&statement.hashes).join("+");
            serde_json::json!({
                "hash": hash,
                "label": statement.label,
                "value": statement.value,
                "valid_until": statement.valid_until.map(|time| time.to_string()),
                "revoked": statement.revoked,
                "reference": statement.reference,
            })
            .to_string()
        })
        .collect();
    let theirs: BTreeSet<String> = expected["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|statement| {
            let mut statement = statement.clone();
            // Python writes the time as given; ours prints RFC 3339 without a zero fraction.
            if let Some(until) = statement["valid_until"].as_str() {
                statement["valid_until"] = Value::from(until.replace(".000", ""));
            }
            serde_json::json!({
                "hash": statement["hash"], "label": statement["label"], "value": statement["value"],
                "valid_until": statement["valid_until"], "revoked": statement["revoked"], "reference": statement["reference"],
            })
            .to_string()
        })
        .collect();
    assert_eq!(ours, theirs);

    // Exactly the indicators the script says must be reported are, each by its id.
    let reported: BTreeSet<String> =
        read.rejections.iter().map(|rejection| rejection.reason.split(':').next().unwrap().to_owned()).collect();
    let must: BTreeSet<String> =
        expected["rejected"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect();
    assert_eq!(reported, must, "{:?}", read.rejections);

    // By the default labels: malicious-activity is Malware, benign is Clean,
    // anomalous-activity is Unwanted.
    let (verdicts, rejections) = fileintel_feeds::verdicts(&Source::new("oasis", 10), read);
    assert_eq!(rejections.len(), must.len());
    let kinds: BTreeSet<(String, &str)> = verdicts
        .iter()
        .map(|(_, verdict)| {
            (verdict.determination_value.clone().unwrap_or_default(), verdict.determination_type.as_str())
        })
        .collect();
    assert!(kinds.contains(&("Emotet".to_owned(), DeterminationType::Malware.as_str())));
    assert!(kinds.contains(&("known good installer".to_owned(), DeterminationType::Clean.as_str())));
    assert!(kinds.contains(&("campaign files".to_owned(), DeterminationType::Unwanted.as_str())));
}

#[test]
fn misp_events_made_by_pymisp_read_as_they_were_made() {
    let Some(dir) = generated() else { return };
    let event = std::fs::read(dir.path().join("misp-event.json")).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("misp-expected.json")).unwrap()).unwrap();
    let read = fileintel_feeds::read(Format::Misp, &event);
    let reported: BTreeSet<String> = read
        .rejections
        .iter()
        .map(|rejection| rejection.reason.trim_start_matches("attribute ").split(':').next().unwrap().to_owned())
        .collect();
    let must: BTreeSet<String> =
        expected["rejected"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect();
    assert_eq!(reported, must, "{:?}", read.rejections);

    let (verdicts, rejections) = fileintel_feeds::verdicts(&Source::new("misp", 10), read);
    assert_eq!(rejections.len(), must.len(), "every statement maps by the default labels: {rejections:?}");
    let ours: BTreeSet<String> = verdicts
        .iter()
        .map(|(hashes, verdict)| {
            let hashes = hash_texts(hashes);
            serde_json::json!({
                "reference": verdict.reference,
                "hashes": hashes,
                "value": verdict.determination_value,
                "determination": verdict.determination_type.as_str(),
            })
            .to_string()
        })
        .collect();
    let theirs: BTreeSet<String> = expected["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|statement| {
            serde_json::json!({
                "reference": statement["reference"], "hashes": statement["hashes"],
                "value": statement["value"], "determination": statement["determination"],
            })
            .to_string()
        })
        .collect();
    assert_eq!(ours, theirs);
}
