//! Rate limits across processes: two fileintel nodes share one Redis and so one budget, and keep
//! answering when that Redis goes away. Needs a Redis named by FILEINTEL_TEST_REDIS (CI sets
//! redis://127.0.0.1:6379) and `redis-server` on the PATH for the outage; skipped otherwise, and
//! failed instead under `CI=true`.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Node, Process, call, spawn_node};
use serde_json::Value;

/// Two nodes sharing `redis`: A issues tokens, B trusts A as an external issuer, so one
/// application's token works on both and spends one budget. Returns the nodes and a token.
fn pair(dir: &Path, redis: &str) -> (Node, Node, String) {
    let (data_a, data_b) = (dir.join("a"), dir.join("b"));
    let created = Command::new(BIN)
        .args(["apps", "create", "--tenant", "contoso", "--name", "limited", "--role", "File.Read.All", "--data-dir"])
        .arg(&data_a)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let app: Value = serde_json::from_slice(&created.stdout).unwrap();
    let a = spawn_node(&data_a, &["--rate-limit-redis", redis]);
    let (_, _, jwks) = call(a.address, "GET", "/contoso/discovery/v2.0/keys", "", None);
    let jwks_file = dir.join("a-jwks.json");
    std::fs::write(&jwks_file, jwks).unwrap();
    let issuers = dir.join("issuers.json");
    let trusted = serde_json::json!([{
        "issuer": format!("http://{}/{{tenantid}}/v2.0", a.address),
        "jwks_file": jwks_file,
        "tenants": ["contoso"],
    }]);
    std::fs::write(&issuers, trusted.to_string()).unwrap();
    let b = spawn_node(&data_b, &["--rate-limit-redis", redis, "--trusted-issuers", issuers.to_str().unwrap()]);
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=https://api.securitycenter.microsoft.com/.default",
        app["clientId"].as_str().unwrap(),
        app["clientSecret"].as_str().unwrap()
    );
    let (status, _, answer) = call(a.address, "POST", "/contoso/oauth2/v2.0/token", &form, None);
    assert_eq!(status, 200, "{answer}");
    let token: Value = serde_json::from_str(&answer).unwrap();
    (a, b, token["access_token"].as_str().unwrap().to_owned())
}

const UNKNOWN_FILE: &str = "/api/files/0000000000000000000000000000000000000000";

#[test]
fn two_nodes_sharing_redis_accept_exactly_100_calls_a_minute_between_them() {
    let Some(redis) = fileintel_testing::env_or_skip(
        "FILEINTEL_TEST_REDIS",
        "(e.g. redis://127.0.0.1:6379) to run the shared-budget test",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, token) = pair(dir.path(), &redis);
    let addresses = [a.address, b.address];
    // 300 calls at once, in 30 threads, half to each node.
    let threads: Vec<_> = (0..30)
        .map(|thread| {
            let (address, token) = (addresses[thread % 2], token.clone());
            std::thread::spawn(move || {
                (0..10).map(|_| call(address, "GET", UNKNOWN_FILE, "", Some(&token))).collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<(u16, String, String)> = threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect();
    let accepted = answers.iter().filter(|(status, _, _)| *status == 404).count();
    let refused: Vec<_> = answers.iter().filter(|(status, _, _)| *status == 429).collect();
    assert_eq!(answers.len(), 300);
    assert_eq!(accepted, 100, "statuses: {:?}", answers.iter().map(|a| a.0).collect::<std::collections::BTreeSet<_>>());
    assert_eq!(refused.len(), 200);
    for (_, head, body) in &refused {
        let retry_after: u64 = head
            .split("retry-after: ")
            .nth(1)
            .and_then(|rest| rest.split("\r\n").next())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let envelope: Value = serde_json::from_str(body).unwrap();
        assert_eq!(envelope["error"]["code"], "TooManyRequests");
        assert!(head.contains("x-ratelimit-remaining: 0"));
    }
    let (_, health, body) = call(b.address, "GET", "/health", "", None);
    assert!(body.contains("\"rateLimits\":\"redis\""), "{health}{body}");
}

#[test]
fn nodes_keep_answering_when_their_redis_goes_away() {
    // The test starts a Redis of its own: it needs the program, not the shared server.
    if Command::new("redis-server").arg("--version").output().is_err() {
        fileintel_testing::skip::<()>("install redis-server to run the outage test");
        return;
    }
    // A Redis of this test's own on a free port: never the machine's shared one.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redis = Process(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the test's redis did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b, token) = pair(dir.path(), &format!("redis://127.0.0.1:{port}"));
    for node in [&a, &b] {
        assert_eq!(call(node.address, "GET", UNKNOWN_FILE, "", Some(&token)).0, 404);
    }
    drop(redis);
    for node in [&a, &b] {
        for _ in 0..5 {
            let (status, _, body) = call(node.address, "GET", UNKNOWN_FILE, "", Some(&token));
            assert_eq!(status, 404, "still answering without redis: {body}");
        }
        let (_, _, health) = call(node.address, "GET", "/health", "", None);
        assert!(health.contains("redis unreachable"), "{health}");
    }
}
