//! Replicas: several `fileintel serve` processes over one PostgreSQL (and one Redis) behave as
//! one service. Needs a PostgreSQL named by FILEINTEL_TEST_DATABASE_URL (each test makes a
//! database of its own there) and, for the shared rate limit, a Redis named by
//! FILEINTEL_TEST_REDIS; `.ci/run` sets both. Skipped, with a notice, otherwise.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use common::{call, call_as, client_token, fileintel_json, node_ready, start_node};
use fileintel_postgres::testing::{TestDatabase, server_url};
use serde_json::Value;

fn database() -> Option<(tokio::runtime::Runtime, TestDatabase)> {
    let server = server_url()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let database = runtime.block_on(TestDatabase::create(&server));
    Some((runtime, database))
}

/// Creates an application through the replica whose data directory is `data_dir`, as an
/// administrator on its host does: `fileintel apps` finds the replica's admin socket there.
fn create_app(data_dir: &Path, name: &str, roles: &[&str]) -> Value {
    let data_dir = data_dir.to_str().unwrap();
    let mut args = vec!["apps", "create", "--data-dir", data_dir, "--tenant", "contoso", "--name", name];
    for role in roles {
        args.extend(["--role", role]);
    }
    fileintel_json(&args)
}

fn sha1_of(file: usize) -> String {
    format!("{file:08x}{:032x}", 0x5eed_u64)
}

fn ndjson(devices: std::ops::Range<usize>, files: usize) -> String {
    let mut lines = String::new();
    for device in devices {
        for file in 0..files {
            lines.push_str(&format!(
                "{{\"deviceId\":\"dev-{device}\",\"timestamp\":\"2026-11-20T08:{:02}:30Z\",\"sha1\":\"{}\",\"fileName\":\"tool.exe\"}}\n",
                device % 60,
                sha1_of(file)
            ));
        }
    }
    lines
}

fn get(address: SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let (status, _, body) = call(address, "GET", path, "", Some(token));
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Two replicas started at the same moment on a new database (both migrate it, both may make
/// a signing key): a token from either works on both, an application made through one while
/// they run can sign in through either at once, observations sent to both at once, overlapping,
/// are counted once each, an application deleted through one stops working on both at once,
/// and with Redis they spend one rate-limit budget between them.
#[test]
fn two_replicas_on_one_database_behave_as_one_service() {
    let Some((_runtime, database)) = database() else { return };
    let redis = std::env::var("FILEINTEL_TEST_REDIS").ok();
    let dir = tempfile::tempdir().unwrap();
    // Behind a load balancer every replica names the one public address as its tokens' issuer.
    let mut args = vec!["--database-url", database.url.as_str(), "--public-url", "http://fileintel.test"];
    if let Some(redis) = &redis {
        args.extend(["--rate-limit-redis", redis.as_str()]);
    }
    // Started together: the migrations and the first signing key race.
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (start_node(&a_dir, &args), start_node(&b_dir, &args));
    let (a, b) = (node_ready(a), node_ready(b));
    let nodes = [a.address, b.address];
    for node in nodes {
        let (status, _, body) = call(node, "GET", "/ready", "", None);
        assert_eq!(status, 200, "{body}");
    }
    // Each made its data directory, where only its admin socket lives, its owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for data_dir in [&a_dir, &b_dir] {
        assert_eq!(mode(data_dir), 0o700, "{}", data_dir.display());
        assert_eq!(mode(&data_dir.join("admin.sock")), 0o600, "{}", data_dir.display());
    }

    // An application made through one while both run: a token from each node works on the other.
    let writer = create_app(&a_dir, "writer", &["File.Read.All", "File.ReadWrite.All"]);
    let from_a = client_token(a.address, "contoso", &writer);
    let from_b = client_token(b.address, "contoso", &writer);
    let unknown = format!("/api/files/{}", sha1_of(999_999));
    // A key rotated while they run, then a third replica, which signs with it: its tokens are
    // accepted by the first two, which have never loaded that key.
    let rotated = fileintel_json(&["keys", "rotate", "--database-url", &database.url]);
    let c = common::spawn_node(&dir.path().join("c"), &args);
    let from_c = client_token(c.address, "contoso", &writer);
    for (token, node) in [(&from_a, b.address), (&from_b, a.address), (&from_c, a.address), (&from_c, b.address)] {
        let (status, body) = get(node, &unknown, token);
        assert_eq!(status, 404, "{body} (rotated {rotated})");
        assert_eq!(body["error"]["code"], "ResourceNotFound");
    }
    drop(c);

    // 60 devices × 40 files, sent in four overlapping parts, two to each node, all at once.
    let parts = [0..30, 15..45, 30..60, 0..60];
    let threads: Vec<_> = parts
        .into_iter()
        .enumerate()
        .map(|(index, devices)| {
            let (node, token, body) = (nodes[index % 2], from_a.clone(), ndjson(devices, 40));
            std::thread::spawn(move || {
                call_as(node, "POST", "/api/ingest/observations", &body, Some(&token), "application/x-ndjson")
            })
        })
        .collect();
    for thread in threads {
        let (status, _, body) = thread.join().unwrap();
        assert_eq!(status, 200, "{body}");
    }
    for file in [0, 17, 39] {
        for node in nodes {
            let (status, entity) = get(node, &format!("/api/files/{}", sha1_of(file)), &from_b);
            assert_eq!(status, 200, "{entity}");
            assert_eq!(entity["globalPrevalence"], 60, "file {file} through {node}: {entity}");
            let (_, stats) = get(node, &format!("/api/files/{}/stats?lookBackHours=720", sha1_of(file)), &from_b);
            assert_eq!(stats["organizationPrevalence"], stats["globallyPrevalence"], "{stats}");
        }
    }

    // Deleted through one replica, the application's tokens, verified and remembered by both
    // above, are refused by both at their very next use; an application made beside it is not.
    let bystander = create_app(&b_dir, "bystander", &["File.Read.All"]);
    let bystanders = client_token(a.address, "contoso", &bystander);
    assert_eq!(get(b.address, &unknown, &bystanders).0, 404);
    let client_id = writer["clientId"].as_str().unwrap();
    let b_arg = b_dir.to_str().unwrap();
    let deleted = std::process::Command::new(common::BIN)
        .args(["apps", "delete", "--data-dir", b_arg, "--tenant", "contoso", "--client-id", client_id])
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    for node in nodes {
        for token in [&from_a, &from_b] {
            let (status, body) = get(node, &unknown, token);
            assert_eq!(status, 401, "a deleted application's token through {node}: {body}");
            assert_eq!(body["error"]["code"], "Unauthorized");
        }
        assert_eq!(get(node, &unknown, &bystanders).0, 404, "another application's token through {node}");
    }

    // One budget of 100 calls a minute between both nodes, when they share Redis.
    if redis.is_none() {
        // A notice, or a failure under CI=true, which sets FILEINTEL_TEST_REDIS.
        fileintel_testing::skip::<()>("the shared rate limit: set FILEINTEL_TEST_REDIS");
        return;
    }
    let reader = create_app(&b_dir, "reader", &["File.Read.All"]);
    let token = client_token(b.address, "contoso", &reader);
    let threads: Vec<_> = (0..20)
        .map(|thread| {
            let (node, token, path) = (nodes[thread % 2], token.clone(), unknown.clone());
            std::thread::spawn(move || (0..8).map(|_| call(node, "GET", &path, "", Some(&token)).0).collect::<Vec<_>>())
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect();
    let accepted = statuses.iter().filter(|&&status| status == 404).count();
    assert_eq!(accepted, 100, "{:?}", statuses.iter().collect::<BTreeSet<_>>());
    assert_eq!(statuses.iter().filter(|&&status| status == 429).count(), 60);
}

/// With its database gone, a replica answers 503 ServiceUnavailable in the envelope within a
/// bounded time, `/ready` says why, and once the database is back it recovers by itself with
/// everything it acknowledged before. Uses a PostgreSQL of the test's own (stopped and started
/// again), never the shared one.
#[test]
fn a_replica_answers_503_while_its_database_is_down_and_recovers_by_itself() {
    // It needs PostgreSQL's programs, not the shared server: `start` skips (or fails under CI)
    // without them.
    let Some(postgres) = common::OwnPostgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = postgres.url();
    let node = common::spawn_node(
        dir.path(),
        &["--database-url", &url, "--database-timeout", "2", "--insecure-no-auth", "--rate-limit-off"],
    );
    let path = format!("/api/files/{}", sha1_of(7));
    let (status, _, body) =
        call_as(node.address, "POST", "/api/ingest/observations", &ndjson(0..3, 8), None, "application/x-ndjson");
    assert_eq!(status, 200, "{body}");

    postgres.down();
    for (method, target, body) in
        [("GET", path.as_str(), String::new()), ("POST", "/api/ingest/observations", ndjson(5..6, 1))]
    {
        let started = std::time::Instant::now();
        let (status, _, answer) = call_as(node.address, method, target, &body, None, "application/x-ndjson");
        let waited = started.elapsed();
        assert_eq!(status, 503, "{method} {target}: {answer}");
        let envelope: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(envelope["error"]["code"], "ServiceUnavailable", "{answer}");
        assert!(waited < std::time::Duration::from_secs(10), "{method} {target} took {waited:?}");
    }
    let (status, _, ready) = call(node.address, "GET", "/ready", "", None);
    assert_eq!(status, 503, "{ready}");
    assert!(ready.contains("store"), "{ready}");
    let (status, _, _) = call(node.address, "GET", "/health", "", None);
    assert_eq!(status, 200, "alive, though not ready");

    postgres.up();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let entity = loop {
        let (status, _, body) = call(node.address, "GET", &path, "", None);
        if status == 200 {
            break serde_json::from_str::<Value>(&body).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "not recovered: {status} {body}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(entity["globalPrevalence"], 3, "what was acknowledged before the outage is all there: {entity}");
    // Readiness is asked of the database at most once a second: ready again within a few.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while call(node.address, "GET", "/ready", "", None).0 != 200 {
        assert!(std::time::Instant::now() < deadline, "/ready did not recover");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `fileintel migrate --from-data-dir` moves an embedded store (observations, a feed, an
/// application) into PostgreSQL: a server there answers every file as a server on the data
/// directory does, and the application's secret still signs in.
#[test]
fn an_embedded_store_moves_into_postgresql_and_answers_the_same() {
    let Some((_runtime, database)) = database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let observations = dir.path().join("seen.ndjson");
    std::fs::write(&observations, ndjson(0..5, 12)).unwrap();
    // contoso's telemetry, which contoso reads on both sides.
    let ingested = std::process::Command::new(common::BIN)
        .args(["ingest", "--tenant", "contoso", "--data-dir", data_arg])
        .arg(&observations)
        .output()
        .unwrap();
    assert!(ingested.status.success(), "{}", String::from_utf8_lossy(&ingested.stderr));
    let feed = dir.path().join("feed.csv");
    std::fs::write(&feed, format!("{},Malware,Trojan:Win32/Moved\n", sha1_of(3))).unwrap();
    let imported = std::process::Command::new(common::BIN)
        .args(["feeds", "import", "--format", "csv", "--source", "vendor", "--data-dir", data_arg])
        .arg(&feed)
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let app = fileintel_json(&[
        "apps",
        "create",
        "--data-dir",
        data_arg,
        "--tenant",
        "contoso",
        "--name",
        "soar",
        "--role",
        "File.Read.All",
        "--role",
        "Ti.ReadWrite.All",
    ]);
    // Three indicators, the first deleted: those left are numbered 2 and 3.
    let public = ["--public-url", "http://fileintel.test"];
    let indicator = |file: usize| {
        format!(
            r#"{{"indicatorValue":"{}","indicatorType":"FileSha1","action":"Block","title":"t","description":"d"}}"#,
            sha1_of(file)
        )
    };
    let post_indicator = |address: SocketAddr, token: &str, file: usize| {
        let (status, _, body) =
            call_as(address, "POST", "/api/indicators", &indicator(file), Some(token), "application/json");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_owned()
    };
    let embedded = common::spawn_node(&data, &public);
    let own = client_token(embedded.address, "contoso", &app);
    let ids: Vec<String> = [20, 21, 22].into_iter().map(|file| post_indicator(embedded.address, &own, file)).collect();
    assert_eq!(call(embedded.address, "DELETE", &format!("/api/indicators/{}", ids[0]), "", Some(&own)).0, 204);
    drop(embedded);

    let migrate = || {
        let output = std::process::Command::new(common::BIN)
            .args(["migrate", "--from-data-dir", data_arg, "--to", &database.url])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{said}");
        said
    };
    let said = migrate();
    assert!(said.contains("moved 12 files") && said.contains("checked: 12 files"), "{said}");

    let embedded = common::spawn_node(&data, &public);
    let moved = common::spawn_node(
        &dir.path().join("replica"),
        &[&["--database-url", database.url.as_str()][..], &public[..]].concat(),
    );
    // Each signs its own tokens (the data directory had no signing key before its server ran).
    let (token, own) = (client_token(moved.address, "contoso", &app), client_token(embedded.address, "contoso", &app));
    for file in [0, 3, 11] {
        for path in [format!("/api/files/{}", sha1_of(file)), format!("/api/files/{}/determinations", sha1_of(file))] {
            let (mut here, mut there) = (get(embedded.address, &path, &own), get(moved.address, &path, &token));
            // Each names itself in the context URL.
            for answer in [&mut here.1, &mut there.1] {
                answer.as_object_mut().map(|object| object.remove("@odata.context"));
            }
            assert_eq!(here.0, 200, "{}", here.1);
            assert_eq!(here, there, "{path}");
        }
    }
    // Indicators keep their ids, and ids drawn afterwards do not meet them.
    let (mut here, mut there) =
        (get(embedded.address, "/api/indicators", &own), get(moved.address, "/api/indicators", &token));
    for answer in [&mut here.1, &mut there.1] {
        answer.as_object_mut().map(|object| object.remove("@odata.context"));
    }
    let kept: Vec<&str> =
        there.1["value"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect();
    assert_eq!(kept, [ids[1].as_str(), ids[2].as_str()]);
    assert_eq!(here, there);
    let next = post_indicator(moved.address, &token, 23);
    assert!(!ids.contains(&next), "{next} was drawn again");
    let (_, entity) = get(moved.address, &format!("/api/files/{}", sha1_of(3)), &token);
    assert_eq!((&entity["globalPrevalence"], &entity["determinationType"]), (&Value::from(5), &Value::from("Malware")));
    drop(embedded);
    // A move interrupted for real, and resumed, is tests/migrate.rs.
}
