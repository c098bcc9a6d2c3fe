//! The command line as a user meets it: what the importers take and skip, what they print, their
//! exit codes, and what `serve` says and refuses at start.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{BIN, Printing, Process, call, listening_address, serve_command, spawn_node};
use serde_json::Value;

/// The exit codes README's "Exit codes" lists.
const TAKEN: i32 = 0;
const FAILED: i32 = 1;
const USAGE: i32 = 2;
const REJECTIONS: i32 = 3;

fn fileintel(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(BIN).args(args).args(paths).env("FILEINTEL_LOG", "warn").output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn observation(device: &str, sha1: char) -> String {
    format!(r#"{{"deviceId":"{device}","timestamp":"2026-11-20T08:15:30Z","sha1":"{}"}}"#, sha1.to_string().repeat(40))
}

/// The JSON lines `ingest --json` printed.
fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// A folder of Sysmon event logs and the LICENSE beside them; `None` (failing under CI) without them.
fn event_logs() -> Option<std::path::PathBuf> {
    let dir = fileintel_telemetry::shared_evtx_dir();
    if dir.join("LICENSE.GPL").is_file() {
        return Some(dir);
    }
    assert!(std::env::var("CI").is_err(), "the shared event logs are missing at {}", dir.display());
    eprintln!("skipped: no event logs at {}", dir.display());
    None
}

#[test]
fn a_missing_input_is_an_error_of_its_own_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let missing = dir.path().join("nothing-here.ndjson");
    let output = fileintel(&["ingest", "--data-dir"], &[&data, &missing]);
    assert_eq!(output.status.code(), Some(FAILED), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("input {} does not exist", missing.display())), "{}", stderr(&output));
    assert!(output.stdout.is_empty(), "no counts: {}", String::from_utf8_lossy(&output.stdout));
    assert!(!data.exists(), "the data directory was created");
    let output =
        fileintel(&["feeds", "import", "--format", "csv", "--source", "team", "--data-dir"], &[&data, &missing]);
    assert_eq!(output.status.code(), Some(FAILED), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("input {} does not exist", missing.display())), "{}", stderr(&output));
    assert!(!data.exists(), "feeds import created the data directory");
}

#[test]
fn read_only_commands_on_a_missing_data_directory_say_so_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("DOES-NOT-EXIST");
    for command in [
        &["apps", "list"][..],
        &["users", "list"],
        &["keys", "list"],
        &["apps", "delete", "--tenant", "t", "--client-id", "c"],
        &["users", "delete", "--tenant", "t", "--upn", "u"],
    ] {
        let output = fileintel(&[command, &["--data-dir"]].concat(), &[&data]);
        assert_eq!(output.status.code(), Some(FAILED), "{command:?}");
        let message = stderr(&output);
        assert!(message.contains(&format!("the data directory {} does not exist", data.display())), "{message}");
        assert!(output.stdout.is_empty(), "{command:?} printed {}", String::from_utf8_lossy(&output.stdout));
        assert!(!data.exists(), "{command:?} created the data directory");
    }
}

#[test]
fn a_refused_administration_command_says_why_once() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["apps", "create", "--tenant", "contoso", "--name", "x", "--role", "No.Such.Role", "--data-dir"];
    // At the default log level, where the admin API's own log of a refusal would show.
    let output =
        Command::new(BIN).args(args).arg(dir.path().join("data")).env("FILEINTEL_LOG", "info").output().unwrap();
    assert_eq!(output.status.code(), Some(FAILED));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.starts_with("error: unknown application permission No.Such.Role; the known ones are"), "{message}");
}

#[test]
fn a_folder_of_event_logs_with_a_license_beside_them_imports_with_the_license_skipped() {
    let Some(logs) = event_logs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = fileintel(&["ingest", "--format", "evtx", "--json", "--data-dir"], &[&data, &logs]);
    assert_eq!(output.status.code(), Some(TAKEN), "{}", stderr(&output));
    // Beside the logs: LICENSE.GPL and a README.
    let mut others = Vec::new();
    let mut folders = vec![logs.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            match (path.is_dir(), path.extension().is_some_and(|extension| extension == "evtx")) {
                (true, _) => folders.push(path),
                (false, false) => others.push(path.display().to_string()),
                (false, true) => {}
            }
        }
    }
    assert!(others.iter().any(|other| other.ends_with("LICENSE.GPL")), "{others:?}");
    let message = stderr(&output);
    let skipped: Vec<&str> =
        message.lines().filter_map(|line| line.split_once(": skipped: it is not evtx")).map(|(name, _)| name).collect();
    others.sort();
    let mut skipped: Vec<String> = skipped.into_iter().map(str::to_owned).collect();
    skipped.sort();
    assert_eq!(skipped, others, "one line per skipped file: {message}");
    let lines = json_lines(&output);
    let evtx = lines.iter().filter(|line| line["input"].as_str().unwrap().ends_with(".evtx")).count();
    assert!(evtx > 1 && evtx == lines.len() - others.len(), "one line per log and per skipped file: {lines:?}");
    for other in &others {
        assert!(lines.iter().any(|line| line["input"] == other.as_str() && line["skipped"].is_string()), "{other}");
    }
    assert!(lines.iter().all(|line| line["skipped"].is_string() || line["rejected"] == 0), "{lines:?}");
    assert!(lines.iter().map(|line| line["accepted"].as_u64().unwrap_or(0)).sum::<u64>() > 0);
}

#[test]
fn without_a_format_files_in_a_folder_that_cannot_be_told_are_skipped_but_a_named_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (data, folder) = (dir.path().join("data"), dir.path().join("in"));
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.ndjson"), [observation("d1", 'a'), observation("d2", 'b')].join("\n")).unwrap();
    std::fs::write(folder.join("README"), "Observations of the lab, exported weekly.\n").unwrap();
    let output = fileintel(&["ingest", "--data-dir"], &[&data, &folder]);
    assert_eq!(output.status.code(), Some(TAKEN), "{}", stderr(&output));
    let readme = folder.join("README").display().to_string();
    assert!(stderr(&output).contains(&format!("{readme}: skipped: cannot tell its format")), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("accepted 2, rejected 0"));

    // Named on the command line, the same file is an input that was refused.
    let output = fileintel(&["ingest", "--data-dir"], &[&data, &folder.join("README")]);
    assert_eq!(output.status.code(), Some(REJECTIONS), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot tell the format"), "{}", stderr(&output));
}

#[test]
fn ingest_json_prints_one_object_per_input_with_its_own_counts_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (good, bad) = (dir.path().join("good.ndjson"), dir.path().join("bad.ndjson"));
    std::fs::write(&good, [observation("d1", 'a'), observation("d2", 'a'), observation("d3", 'b')].join("\n")).unwrap();
    std::fs::write(&bad, [observation("d1", 'c'), "{oops".to_owned()].join("\n")).unwrap();
    let output = fileintel(&["ingest", "--json", "--data-dir"], &[&data, &good, &bad]);
    assert_eq!(output.status.code(), Some(REJECTIONS), "{}", stderr(&output));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["input"], good.display().to_string());
    assert_eq!((lines[0]["records"].clone(), lines[0]["accepted"].clone()), (3.into(), 3.into()));
    assert_eq!(lines[0]["rejected"], 0);
    assert_eq!(lines[1]["input"], bad.display().to_string());
    assert_eq!((lines[1]["records"].clone(), lines[1]["accepted"].clone()), (2.into(), 1.into()));
    assert_eq!(lines[1]["rejected"], 1);
    assert_eq!(lines[1]["rejectedLines"][0]["line"], 2);

    // Standard input counts as one input.
    let mut child = Command::new(BIN)
        .args(["ingest", "--json", "--data-dir"])
        .arg(&data)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), observation("d9", 'e').as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(TAKEN));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0]["input"].clone(), lines[0]["accepted"].clone()), ("-".into(), 1.into()));
}

#[test]
fn a_wrong_command_line_exits_2_and_every_importer_exits_3_on_rejections() {
    let output = fileintel(&["ingest", "--no-such-flag", "x"], &[]);
    assert_eq!(output.status.code(), Some(USAGE));
    assert_eq!(fileintel(&["help"], &[]).status.code(), Some(TAKEN));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let feed = dir.path().join("feed.csv");
    std::fs::write(
        &feed,
        format!("hash,determinationType,determinationValue\n{},Malware,x\nzzz,Malware,x\n", "a".repeat(40)),
    )
    .unwrap();
    let output = fileintel(&["feeds", "import", "--format", "csv", "--source", "team", "--data-dir"], &[&data, &feed]);
    assert_eq!(output.status.code(), Some(REJECTIONS), "{}", stderr(&output));
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let unreadable = dir.path().join("unreadable");
    std::fs::create_dir(&unreadable).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone"), unreadable.join("dangling")).unwrap();
    let output = fileintel(&["analyze"], &[&empty, &unreadable]);
    assert_eq!(output.status.code(), Some(REJECTIONS), "an unreadable file: {}", stderr(&output));
    assert_eq!(fileintel(&["analyze"], &[&empty]).status.code(), Some(TAKEN));
}

#[test]
fn ingest_through_a_server_takes_folders_and_skips_what_is_not_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(&dir.path().join("data"), &["--insecure-no-auth", "--rate-limit-off"]);
    let folder = dir.path().join("in");
    std::fs::create_dir_all(folder.join("more")).unwrap();
    std::fs::write(folder.join("a.ndjson"), observation("d1", 'a')).unwrap();
    std::fs::write(folder.join("more/b.ndjson"), observation("d2", 'b')).unwrap();
    std::fs::write(folder.join("LICENSE"), "Permission is hereby granted\n").unwrap();
    let server = format!("http://{}", node.address);
    let output = fileintel(&["ingest", "--json", "--server", &server], &[&folder]);
    assert_eq!(output.status.code(), Some(TAKEN), "{}", stderr(&output));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let accepted: Vec<_> = lines.iter().filter(|line| line["accepted"] == 1).collect();
    assert_eq!(accepted.len(), 2, "{lines:?}");
    assert!(stderr(&output).contains("LICENSE: skipped"), "{}", stderr(&output));
    // Named, a file the server cannot tell is refused by it, and the inputs after it still go.
    let late = dir.path().join("late.ndjson");
    std::fs::write(&late, observation("d3", 'c')).unwrap();
    let output = fileintel(&["ingest", "--server", &server], &[&folder.join("LICENSE"), &late]);
    assert_eq!(output.status.code(), Some(REJECTIONS), "{}", stderr(&output));
    assert!(stderr(&output).contains("the server refused it (400"), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("late.ndjson: records 1, accepted 1"));
    for sha1 in ['a', 'b', 'c'] {
        let (status, _, _) =
            call(node.address, "GET", &format!("/api/files/{}", sha1.to_string().repeat(40)), "", None);
        assert_eq!(status, 200);
    }
}

/// With a configuration, a source it does not list is refused, not made an operator's feed
/// that every tenant hears (a tenant's own source imported under a mistyped name, say).
#[test]
fn a_feed_import_names_a_source_its_configuration_lists() {
    let dir = tempfile::tempdir().unwrap();
    let (data, feed, sources) = (dir.path().join("data"), dir.path().join("feed.csv"), dir.path().join("sources.json"));
    std::fs::write(&feed, format!("{},Malware,Emotet\n", "a".repeat(40))).unwrap();
    std::fs::write(&sources, r#"[{"name":"contoso-intel","rank":90,"tenant":"contoso"}]"#).unwrap();
    let import = |source: &str| {
        let args = ["feeds", "import", "--format", "csv", "--source", source, "--feed-sources"];
        fileintel(&args, &[&sources, Path::new("--data-dir"), &data, &feed])
    };
    let output = import("contoso-intels");
    assert_eq!(output.status.code(), Some(FAILED), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("configures no source 'contoso-intels' (it configures: contoso-intel)"),
        "{}",
        stderr(&output)
    );
    let output = import("contoso-intel");
    assert_eq!(output.status.code(), Some(TAKEN), "{}", stderr(&output));
}

#[test]
fn a_server_that_cannot_be_reached_is_said_to_be_unreachable_not_to_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("a.ndjson");
    std::fs::write(&input, observation("d1", 'a')).unwrap();
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = fileintel(&["ingest", "--server", &format!("http://127.0.0.1:{port}")], &[&input]);
    assert_eq!(output.status.code(), Some(FAILED));
    let message = stderr(&output);
    assert!(message.contains(&format!("could not reach the server at http://127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("refused the import"), "{message}");
}

/// Starts `fileintel serve`; returns it, its address and what it prints, line by line.
fn serve_printing(data_dir: &Path) -> (Process, std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
    let server = Printing::start(serve_command(data_dir, &[]));
    let address = listening_address(&server.lines.recv().unwrap());
    (server.process, address, server.lines)
}

#[test]
fn a_server_without_applications_prints_the_command_that_registers_one_and_it_works_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, _, printed) = serve_printing(&data);
    // The wait only bounds a failing run; a passing one finds the line at once.
    let command = std::iter::from_fn(|| printed.recv_timeout(std::time::Duration::from_secs(60)).ok())
        .map(|line| line.trim().to_owned())
        .find(|line| line.starts_with("fileintel apps create"))
        .expect("no apps create command before the output ended");
    // Pasted while the server runs, as a user would.
    let words: Vec<&str> = command.split_whitespace().collect();
    let created = Command::new(BIN).args(&words[1..]).output().unwrap();
    assert!(created.status.success(), "{command}: {}", stderr(&created));
    let app: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert!(app["clientSecret"].is_string(), "{app}");
    drop(server);

    // With an application, nothing is said: everything printed at start is out once a request
    // has been answered, and the rest is read after the server is stopped.
    let (server, address, printed) = serve_printing(&data);
    let (status, _, _) = call(address, "GET", "/health", "", None);
    assert_eq!(status, 200);
    drop(server);
    let rest: Vec<String> = printed.iter().collect();
    assert!(!rest.iter().any(|line| line.contains("apps create")), "{rest:?}");
}

#[test]
fn an_api_budget_given_by_name_limits_that_api_and_an_unknown_name_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = spawn_node(&data, &["--insecure-no-auth", "--rate-limit", "stats=1/100"]);
    let stats = format!("/api/files/{}/stats", "a".repeat(40));
    let (first, _, _) = call(node.address, "GET", &stats, "", None);
    let (second, _, body) = call(node.address, "GET", &stats, "", None);
    assert_ne!(first, 429);
    assert_eq!(second, 429, "{body}");
    let (lookup, _, _) = call(node.address, "GET", &format!("/api/files/{}", "a".repeat(40)), "", None);
    assert_eq!(lookup, 404, "other APIs keep their own budget");
    drop(node);

    let output = fileintel(&["serve", "--listen", "127.0.0.1:0", "--rate-limit", "stat=1/100", "--data-dir"], &[&data]);
    assert_eq!(output.status.code(), Some(FAILED));
    let message = stderr(&output);
    assert!(message.contains("--rate-limit stat: no such API, tenant or application"), "{message}");
    assert!(message.contains("files, stats, machines, ingest, analyze, feeds, indicators, token"), "{message}");
}
