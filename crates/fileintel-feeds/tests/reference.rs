//! Feeds nobody on the team wrote: `scripts/feeds-reference.py` builds them with the libraries
//! their communities use (OASIS's `stix2`, CIRCL's `pymisp`) and says what each one states, and
//! it fetches public examples (stix2-validator's STIX 2.1 example bundles, pymisp's test events)
//! and says, as those libraries read them, what each states; the importer must read exactly
//! that. Needs `FILEINTEL_E2E_PYTHON` (a Python that can pip-install stix2 and pymisp and
//! download the examples' sdists); `.ci/run` sets it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use fileintel_core::DeterminationType;
use fileintel_feeds::{Format, Source};
use serde_json::Value;

fn generated() -> Option<tempfile::TempDir> {
    let python = fileintel_testing::env_or_skip("FILEINTEL_E2E_PYTHON", "to a Python with pip")?;
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("scripts/feeds-reference.py");
    // The public examples' sdists are downloaded once per checkout.
    let cache = root.join("target/feed-examples");
    let output = Command::new(python).arg(script).arg(dir.path()).arg(cache).output().unwrap();
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

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The ids a feed's rejections name (`indicator--…: reason`, `attribute …: reason`).
fn rejected_ids(read: &fileintel_feeds::Read) -> BTreeSet<String> {
    read.rejections
        .iter()
        .map(|rejection| {
            let reason = rejection.reason.trim_start_matches("attribute ").trim_start_matches("file object ");
            reason.split(':').next().unwrap().to_owned()
        })
        .collect()
}

fn id_set(ids: &Value) -> BTreeSet<String> {
    ids.as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect()
}

/// Asserts a STIX bundle reads as `expected` says: the same statements, every one, and the
/// same indicators reported.
fn assert_stix_reads_as(name: &str, read: &fileintel_feeds::Read, expected: &Value) {
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
    assert_eq!(ours, theirs, "{name}");
    assert_eq!(rejected_ids(read), id_set(&expected["rejected"]), "{name}: {:?}", read.rejections);
}

#[test]
fn stix_bundles_made_by_the_stix2_library_read_as_they_were_made() {
    let Some(dir) = generated() else { return };
    let bundle = std::fs::read(dir.path().join("stix-bundle.json")).unwrap();
    let expected = json_file(&dir.path().join("stix-expected.json"));
    let read = fileintel_feeds::read(Format::Stix, &bundle);
    assert_stix_reads_as("generated", &read, &expected);

    // By the default labels: malicious-activity is Malware, benign is Clean,
    // anomalous-activity is Unwanted.
    let must = id_set(&expected["rejected"]);
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

/// The verdicts a MISP event gives as comparable JSON: reference, hashes, threat name and,
/// when `with_determination`, the determination.
fn misp_verdicts(
    verdicts: &[(fileintel_core::FileHashes, fileintel_core::Verdict)],
    with_determination: bool,
) -> BTreeSet<String> {
    verdicts
        .iter()
        .map(|(hashes, verdict)| {
            let mut json = serde_json::json!({
                "reference": verdict.reference,
                "hashes": hash_texts(hashes),
                "value": verdict.determination_value,
            });
            if with_determination {
                json["determination"] = Value::from(verdict.determination_type.as_str());
            }
            json.to_string()
        })
        .collect()
}

fn misp_expected(expected: &Value, with_determination: bool) -> BTreeSet<String> {
    expected["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|statement| {
            let mut json = serde_json::json!({
                "reference": statement["reference"], "hashes": statement["hashes"], "value": statement["value"],
            });
            if with_determination {
                json["determination"] = statement["determination"].clone();
            }
            json.to_string()
        })
        .collect()
}

#[test]
fn misp_events_made_by_pymisp_read_as_they_were_made() {
    let Some(dir) = generated() else { return };
    let event = std::fs::read(dir.path().join("misp-event.json")).unwrap();
    let expected = json_file(&dir.path().join("misp-expected.json"));
    let read = fileintel_feeds::read(Format::Misp, &event);
    let must = id_set(&expected["rejected"]);
    assert_eq!(rejected_ids(&read), must, "{:?}", read.rejections);

    let (verdicts, rejections) = fileintel_feeds::verdicts(&Source::new("misp", 10), read);
    assert_eq!(rejections.len(), must.len(), "every statement maps by the default labels: {rejections:?}");
    assert_eq!(misp_verdicts(&verdicts, true), misp_expected(&expected, true));
}

/// Public examples: every STIX 2.1 example bundle of OASIS's stix2-validator and every MISP
/// event of pymisp's tests (CIRCL OSINT events among them) reads as those libraries read it:
/// the same hashes, threat names and references, the same records reported. What they say
/// for detection (`malicious-activity` indicators, `to_ids` attributes) comes out Malware.
///
/// Whose expectations these are: the hashes, references and records are what stix2 and pymisp
/// read from the examples; a MISP threat name is the galaxy cluster the event's authors exported
/// for the tag (its galaxy type and name, as pymisp reads them). Still ours, and so unable to
/// catch a mistake in fileintel's own rules: which galaxy types name a threat, the `to_ids`
/// rule, and the event's name as the fallback; the generated bundle and event of the tests
/// above are ours throughout.
#[test]
fn public_example_bundles_and_events_read_as_their_libraries_read_them() {
    let Some(dir) = generated() else { return };
    let public = dir.path().join("public");
    let index = json_file(&public.join("index.json"));
    let names = |kind: &str| -> Vec<String> {
        index[kind].as_array().unwrap().iter().map(|name| name.as_str().unwrap().to_owned()).collect()
    };
    let expected_of =
        |kind: &str, name: &str| json_file(&public.join(kind).join(name.replace(".json", ".expected.json")));
    let (mut stix_taken, mut misp_taken) = (0, 0);

    let stix = names("stix");
    assert!(stix.iter().any(|name| name.contains("apt1")), "APT1's report is among them: {stix:?}");
    for name in &stix {
        let read = fileintel_feeds::read(Format::Stix, &std::fs::read(public.join("stix").join(name)).unwrap());
        let expected = expected_of("stix", name);
        assert_stix_reads_as(name, &read, &expected);
        let (verdicts, _) = fileintel_feeds::verdicts(&Source::new("oasis-examples", 10), read);
        for (_, verdict) in &verdicts {
            assert_eq!(verdict.determination_type, DeterminationType::Malware, "{name}: {verdict:?}");
            stix_taken += 1;
        }
    }

    for name in &names("misp") {
        let read = fileintel_feeds::read(Format::Misp, &std::fs::read(public.join("misp").join(name)).unwrap());
        let expected = expected_of("misp", name);
        assert_eq!(rejected_ids(&read), id_set(&expected["rejected"]), "{name}: {:?}", read.rejections);
        let ours: BTreeSet<String> = read
            .statements
            .iter()
            .map(|statement| {
                serde_json::json!({"reference": statement.reference, "hashes": hash_texts(&statement.hashes), "value": statement.value})
                    .to_string()
            })
            .collect();
        assert_eq!(ours, misp_expected(&expected, false), "{name}");
        let detection: BTreeSet<String> = expected["statements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|statement| statement["to_ids"] == true)
            .map(|statement| statement["reference"].as_str().unwrap().to_owned())
            .collect();
        let (verdicts, _) = fileintel_feeds::verdicts(&Source::new("circl", 10), read);
        let taken: BTreeSet<String> = verdicts.iter().filter_map(|(_, verdict)| verdict.reference.clone()).collect();
        assert!(detection.is_subset(&taken), "{name}: every detection is a verdict");
        for (_, verdict) in &verdicts {
            if detection.contains(verdict.reference.as_deref().unwrap_or_default()) {
                assert_eq!(verdict.determination_type, DeterminationType::Malware, "{name}: {verdict:?}");
            }
        }
        misp_taken += verdicts.len();
    }
    assert!(stix_taken >= 4 && misp_taken >= 300, "{stix_taken} STIX and {misp_taken} MISP verdicts");
}
