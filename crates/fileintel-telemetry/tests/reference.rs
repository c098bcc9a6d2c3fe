//! The importers against what independent tools read from the same real data:
//! - every Sysmon `.evtx` in `../shared/testdata/evtx` (public EVTX-ATTACK-SAMPLES), against
//!   python-evtx through `crates/fileintel/tests/e2e/sysmon_reference.py`, which also converts the
//!   same events into the flat (NXLog) and ECS (Winlogbeat) JSON shapes for the JSON importer;
//! - MDE exports built from Microsoft's documented schema (`tests/data`, see its README),
//!   against `tests/data/mde_expected.json`, computed by Python's csv and json modules.
//!
//! The python-evtx comparisons need `FILEINTEL_E2E_PYTHON` (a Python with `python-evtx`); CI sets it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use fileintel_core::{Observation, ParsedBatch, Position};
use fileintel_telemetry::{Format, decoder};
use serde_json::{Value, json};

fn testdata() -> PathBuf {
    fileintel_telemetry::shared_evtx_dir()
}

fn evtx_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "evtx") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&testdata(), &mut files);
    files.sort();
    assert!(files.len() >= 50, "expected the shared Sysmon logs in {}", testdata().display());
    files
}

/// Everything a decoder yields for one input.
fn read_all(format: Option<Format>, bytes: Vec<u8>) -> ParsedBatch {
    let mut decoder = decoder(format, std::io::Cursor::new(bytes), Some("contoso".into())).unwrap();
    let mut all = ParsedBatch::default();
    // A small batch size, so that state carried across batches is exercised too.
    while let Some(batch) = decoder.next_batch(7).unwrap() {
        all.observations.extend(batch.observations);
        all.positions.extend(batch.positions);
        all.rejections.extend(batch.rejections);
        all.records += batch.records;
    }
    all
}

fn python() -> Option<String> {
    fileintel_testing::env_or_skip("FILEINTEL_E2E_PYTHON", "to a Python with python-evtx to compare against it")
}

fn reference(python: &str, mode: Option<&str>, files: &[PathBuf]) -> Vec<u8> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fileintel/tests/e2e/sysmon_reference.py");
    let mut command = Command::new(python);
    command.arg(script);
    if let Some(mode) = mode {
        command.arg(mode);
    }
    let output = command.args(files).output().expect("running the python-evtx reference");
    assert!(output.status.success(), "reference failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn as_reference(observation: &Observation) -> Value {
    let reported = observation.reported.as_deref().cloned().unwrap_or_default();
    json!({
        "deviceId": observation.device_id,
        "timestamp": observation.timestamp.to_string(),
        "sha1": observation.hashes.sha1.map(|h| h.to_string()),
        "sha256": observation.hashes.sha256.map(|h| h.to_string()),
        "md5": observation.hashes.md5.map(|h| h.to_string()),
        "fileName": observation.file_name,
        "folderPath": observation.folder_path,
        "signed": reported.signed,
        "signature": reported.signature,
        "signatureStatus": reported.signature_status,
        "company": reported.company,
        "product": reported.product,
    })
}

#[test]
fn every_sysmon_log_yields_what_python_evtx_reads() {
    let Some(python) = python() else { return };
    let files = evtx_files();
    let lines = reference(&python, None, &files);
    let mut expected: BTreeMap<String, Vec<(u64, Value)>> = BTreeMap::new();
    for line in lines.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
        let mut value: Value = serde_json::from_slice(line).unwrap();
        assert!(value.get("rejected").is_none(), "the reference rejected {value}");
        let file = value["file"].as_str().unwrap().to_owned();
        let record = value["recordId"].as_u64().unwrap();
        let object = value.as_object_mut().unwrap();
        for key in ["file", "recordId", "eventId"] {
            object.remove(key);
        }
        expected.entry(file).or_default().push((record, value));
    }
    let counts = reference(&python, Some("--count"), &files);
    let mut total = (0, 0);
    for line in counts.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
        let count: Value = serde_json::from_slice(line).unwrap();
        let file = count["file"].as_str().unwrap();
        let read = read_all(Some(Format::Evtx), std::fs::read(file).unwrap());
        assert!(read.rejections.is_empty(), "{file}: {:?}", read.rejections);
        assert_eq!(read.records, count["records"].as_u64().unwrap(), "{file}: records");
        let ours: Vec<(u64, Value)> = read
            .positions
            .iter()
            .zip(&read.observations)
            .map(|(position, observation)| {
                let Position::Record(record) = position else { panic!("{file}: position {position:?}") };
                assert_eq!(observation.tenant_id, "contoso");
                assert_eq!(observation.os_platform.as_deref(), Some("Windows"));
                (*record, as_reference(observation))
            })
            .collect();
        let theirs = expected.remove(file).unwrap_or_default();
        assert_eq!(ours.len() as u64, count["observations"].as_u64().unwrap(), "{file}: observations");
        for (ours, theirs) in ours.iter().zip(&theirs) {
            assert_eq!(ours, theirs, "{file}");
        }
        total.0 += read.records;
        total.1 += ours.len();
    }
    assert!(expected.is_empty(), "files the reference read and we did not: {:?}", expected.keys());
    assert_eq!(total, (767, 476), "the shared logs hold 767 records, 476 of them Sysmon events with hashes");
}

/// The JSON inputs here are ours: our script writes python-evtx's reading of the public logs
/// in the NXLog and Winlogbeat shapes, so this holds the JSON importer to the event-log
/// importer, not to JSON that its shippers wrote. No public Sysmon JSON dataset is published
/// on a package registry (PyPI, npm, Debian) to take instead.
#[test]
fn sysmon_json_in_both_shapes_yields_the_same_as_the_event_logs() {
    let Some(python) = python() else { return };
    let files = evtx_files();
    let from_logs: Vec<Value> = files
        .iter()
        .flat_map(|file| read_all(Some(Format::Evtx), std::fs::read(file).unwrap()).observations)
        .map(|observation| as_reference(&observation))
        .collect();
    for mode in ["--flat", "--flat-la", "--ecs", "--ecs7"] {
        let json = reference(&python, Some(mode), &files);
        // Told apart by content, as `fileintel ingest` does without --format.
        let read = read_all(None, json);
        assert!(read.rejections.is_empty(), "{mode}: {:?}", &read.rejections[..read.rejections.len().min(3)]);
        assert_eq!(read.records, 767, "{mode}: every event is a record");
        assert!(read.positions.iter().all(|position| matches!(position, Position::Line(_))));
        let ours: Vec<Value> = read.observations.iter().map(as_reference).collect();
        assert_eq!(ours.len(), from_logs.len(), "{mode}");
        for (index, (ours, theirs)) in ours.iter().zip(&from_logs).enumerate() {
            assert_eq!(ours, theirs, "{mode}: observation {index}");
        }
    }
}

#[test]
fn a_truncated_log_yields_what_it_can_then_says_where_it_stopped() {
    let file = evtx_files().into_iter().max_by_key(|file| std::fs::metadata(file).unwrap().len()).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let whole = read_all(Some(Format::Evtx), bytes.clone());
    assert!(bytes.len() > 4096 + 2 * 65536, "{} is too small to cut", file.display());
    let cut = 4096 + 65536 + 1000;
    let read = read_all(Some(Format::Evtx), bytes[..cut].to_vec());
    assert!(read.records > 0 && read.records < whole.records, "{} of {}", read.records, whole.records);
    assert_eq!(read.observations[..], whole.observations[..read.observations.len()], "the first chunk's records");
    let last = read.rejections.last().expect("the truncation is reported");
    assert_cut_record(&bytes, cut, last);

    // A chunk overwritten with garbage costs its own records only.
    let mut damaged = bytes.clone();
    damaged[4096..4096 + 65536].fill(0xA5);
    let read = read_all(Some(Format::Evtx), damaged);
    assert_eq!(read.rejections.len(), 1, "{:?}", read.rejections);
    assert_eq!(read.rejections[0].at, Position::Offset(4096));
    assert!(read.records > 0, "later chunks are still read");

    let not_a_log = read_all(Some(Format::Evtx), b"MZ\x90\x00 not an event log".to_vec());
    assert!(not_a_log.rejections[0].reason.contains("not an event log"));
}

/// The rejection names the record that `cut` goes through, as the bytes themselves say: a record
/// header (`**\0\0`, then its size) at that offset, starting before the cut and ending after it.
fn assert_cut_record(bytes: &[u8], cut: usize, rejection: &fileintel_core::Rejection) {
    assert!(rejection.reason.contains("truncated"), "{}", rejection.reason);
    let Position::Offset(offset) = rejection.at else { panic!("{:?}", rejection.at) };
    let offset = offset as usize;
    assert_eq!(&bytes[offset..offset + 4], b"**\0\0", "a record starts at {offset}");
    let size = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().unwrap()) as usize;
    assert!(offset <= cut && cut < offset + size, "the cut at {cut} goes through {offset}..{}", offset + size);
}

/// A log of one chunk, cut anywhere inside its records: every record wholly before the cut is
/// read, from the last (here the only) chunk too, and the one the cut goes through is rejected.
#[test]
fn a_log_cut_inside_its_only_chunk_keeps_every_record_before_the_cut() {
    let file = evtx_files()
        .into_iter()
        .filter(|file| std::fs::metadata(file).unwrap().len() == 4096 + 65536)
        .max_by_key(|file| read_all(Some(Format::Evtx), std::fs::read(file).unwrap()).observations.len())
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let whole = read_all(Some(Format::Evtx), bytes.clone());
    assert!(whole.observations.len() >= 4, "{}: {} observations", file.display(), whole.observations.len());
    let free = u32::from_le_bytes(bytes[4096 + 48..4096 + 52].try_into().unwrap()) as usize + 4096;
    let mut before = 0;
    let mut cuts = 0;
    for cut in (4096 + 512 + 1..free).step_by(331) {
        let read = read_all(Some(Format::Evtx), bytes[..cut].to_vec());
        assert_eq!(read.observations[..], whole.observations[..read.observations.len()], "cut at {cut}");
        assert!(read.observations.len() >= before, "cut at {cut}: fewer than at an earlier cut");
        before = read.observations.len();
        if read.rejections.last().is_some_and(|last| matches!(last.at, Position::Offset(at) if at as usize > 4096)) {
            assert_cut_record(&bytes, cut, read.rejections.last().unwrap());
            cuts += 1;
        }
    }
    assert!(cuts > 10, "the cuts went through records");
    // Cut after the last record: everything is read, and the cut is named after it.
    let read = read_all(Some(Format::Evtx), bytes[..free + 10].to_vec());
    assert_eq!(read.observations, whole.observations);
    assert_eq!(read.rejections.last().unwrap().at, Position::Offset(free as u64 + 10));
    assert!(before > 0 && before < whole.observations.len() + 1);
    // `head -c 69000` of such a log, as the issue that found this put it.
    let read = read_all(Some(Format::Evtx), bytes[..69000].to_vec());
    assert!(!read.observations.is_empty(), "records before the cut are read");
}

#[test]
fn mde_exports_yield_the_documented_observations() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let expected: BTreeMap<String, Vec<Value>> =
        serde_json::from_slice(&std::fs::read(data.join("mde_expected.json")).unwrap()).unwrap();
    for (file, expected) in expected {
        let bytes = std::fs::read(data.join(&file)).unwrap();
        let format = if file.ends_with(".csv") { Format::MdeCsv } else { Format::MdeJson };
        // Detection by content agrees with the extension.
        let detected = read_all(None, bytes.clone());
        let read = read_all(Some(format), bytes);
        assert_eq!(detected.observations, read.observations, "{file}: detected as another format");
        let mut taken = read.observations.iter().zip(&read.positions);
        let mut rejections = read.rejections.iter();
        for entry in &expected {
            if let Some(reason) = entry.get("rejected") {
                let rejection = rejections.next().unwrap_or_else(|| panic!("{file}: missing rejection {entry}"));
                if format == Format::MdeCsv {
                    assert_eq!(rejection.at, Position::Line(entry["row"].as_u64().unwrap()), "{file}: {entry}");
                }
                // "malformed SHA1" of the target is our "SHA1: ..."; of the initiating process, "InitiatingProcessSHA1: ...".
                let algorithm = reason.as_str().unwrap().rsplit(' ').next().unwrap();
                let prefix = if entry["role"] == "target" { "" } else { "InitiatingProcess" };
                let field = format!("{prefix}{algorithm}:");
                assert!(rejection.reason.contains(&field), "{file}: {} vs {reason} ({field})", rejection.reason);
                continue;
            }
            let (observation, position) = taken.next().unwrap_or_else(|| panic!("{file}: missing {entry}"));
            if format == Format::MdeCsv {
                assert_eq!(*position, Position::Line(entry["row"].as_u64().unwrap()), "{file}: {entry}");
            }
            let ours = json!({
                "sha1": observation.hashes.sha1.map(|h| h.to_string()),
                "sha256": observation.hashes.sha256.map(|h| h.to_string()),
                "md5": observation.hashes.md5.map(|h| h.to_string()),
                "deviceId": observation.device_id,
                "deviceName": observation.device_name,
                "timestamp": observation.timestamp.to_string(),
                "fileName": observation.file_name,
                "folderPath": observation.folder_path,
                "size": observation.size,
            });
            for (key, value) in ours.as_object().unwrap() {
                assert_eq!(&entry[key], value, "{file}: {key} of {entry}");
            }
        }
        assert!(taken.next().is_none(), "{file}: more observations than expected");
        assert!(rejections.next().is_none(), "{file}: more rejections than expected");
    }
}

#[test]
fn an_input_of_no_known_shape_is_refused_with_the_formats_named() {
    for input in [&b"hello,world\n1,2\n"[..], b"[1, 2, 3]\n", b"{\"some\":\"json\"}\n", b""] {
        let Err(error) = decoder(None, std::io::Cursor::new(input.to_vec()), None) else {
            panic!("{} was given a format", String::from_utf8_lossy(input));
        };
        let message = error.to_string();
        assert!(message.contains("evtx, sysmon-json, mde-csv, mde-json"), "{message}");
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(
        b"{\"deviceId\":\"d\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"md5\":\"b1b981cd8b111783b80f3c4e10086912\"}\n",
    )
    .unwrap();
    let read = read_all(None, std::fs::read(file.path()).unwrap());
    assert_eq!(read.observations.len(), 1, "native NDJSON is told apart too");
}
