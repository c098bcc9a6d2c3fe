//! `fileintel migrate --from-data-dir` interrupted for real: killed (SIGKILL) part-way through
//! the files, then run again, it resumes and leaves the database answering every file exactly
//! as the data directory does. Needs a PostgreSQL named by FILEINTEL_TEST_DATABASE_URL (the
//! test makes a database of its own there); skipped otherwise, and failed instead under CI.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Process, call, spawn_node};
use fileintel_postgres::testing::{TestDatabase, server_url};
use serde_json::Value;

const FILES: usize = 300;

fn sha1_of(file: usize) -> String {
    format!("{file:08x}{:032x}", 0x316_u64)
}

#[test]
fn a_move_killed_part_way_resumes_and_the_database_then_equals_the_data_directory() {
    let Some(server) = server_url() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let database = runtime.block_on(TestDatabase::create(&server));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    // Each file seen by one to four devices, under two names, at different times.
    let mut lines = String::new();
    for file in 0..FILES {
        for device in 0..1 + file % 4 {
            lines.push_str(&format!(
                "{{\"deviceId\":\"dev-{device}\",\"timestamp\":\"2026-11-{:02}T08:{:02}:30Z\",\"sha1\":\"{}\",\"fileName\":\"tool-{}.exe\"}}\n",
                1 + file % 28,
                device * 7 % 60,
                sha1_of(file),
                device % 2
            ));
        }
    }
    let input = dir.path().join("seen.ndjson");
    std::fs::write(&input, lines).unwrap();
    let ingested = Command::new(BIN).args(["ingest", "--data-dir", data_arg]).arg(&input).output().unwrap();
    assert!(ingested.status.success(), "{}", String::from_utf8_lossy(&ingested.stderr));

    // One file per page, so the move takes many durable steps; killed once some but not all
    // files have moved, by its own progress file.
    let migrate = || {
        let mut command = Command::new(BIN);
        command
            .args(["migrate", "--from-data-dir", data_arg, "--to", &database.url, "--page", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    let progress_file = data.join("migrate-progress.json");
    let mut running = Process(migrate().spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let moved_at_kill = loop {
        let moved = std::fs::read(&progress_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|state| state["files_moved"].as_u64());
        if let Some(moved) = moved.filter(|&moved| moved >= 10) {
            running.0.kill().unwrap();
            break moved;
        }
        assert!(running.0.try_wait().unwrap().is_none(), "the move ended before it could be interrupted");
        assert!(Instant::now() < deadline, "the move made no progress");
        std::thread::sleep(Duration::from_millis(2));
    };
    running.0.wait().unwrap();
    let state: Value = serde_json::from_slice(&std::fs::read(&progress_file).unwrap()).unwrap();
    let moved = state["files_moved"].as_u64().unwrap();
    assert!(moved < FILES as u64 && state["files"] != true, "killed too late to mean anything: {state}");
    println!("killed with {moved_at_kill} files moved ({moved} marked when it died)");

    // Run again: it resumes from its progress file and finishes, its own check passing.
    let resumed = migrate().output().unwrap();
    let said = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{said}");
    assert!(said.contains(&format!("checked: {FILES} files")), "{said}");
    assert!(!said.contains("moved applications"), "the first stage was done before the kill: {said}");

    // Every file, not a sample: the same answer from a server on each side.
    let open = ["--insecure-no-auth", "--rate-limit-off", "--public-url", "http://fileintel.test"];
    let embedded = spawn_node(&data, &open);
    let moved =
        spawn_node(&dir.path().join("replica"), &[&["--database-url", database.url.as_str()][..], &open].concat());
    for file in 0..FILES {
        for suffix in ["", "/stats?lookBackHours=720"] {
            let path = format!("/api/files/{}{suffix}", sha1_of(file));
            let (here_status, _, here) = call(embedded.address, "GET", &path, "", None);
            let (there_status, _, there) = call(moved.address, "GET", &path, "", None);
            assert_eq!(here_status, 200, "{path}: {here}");
            let (mut here, mut there): (Value, Value) =
                (serde_json::from_str(&here).unwrap(), serde_json::from_str(&there).unwrap());
            // Each names itself in the context URL.
            for answer in [&mut here, &mut there] {
                answer.as_object_mut().map(|object| object.remove("@odata.context"));
            }
            assert_eq!((there_status, &there), (200, &here), "{path}");
        }
    }
}
