//! What one client can cost a running `fileintel serve`: memory for one hostile upload, and
//! connections held open by clients that send nothing.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Node, call_as, spawn_node};

/// POSTs `body` and reads the answer while it is still being sent: the server may answer (and
/// stop reading) before the end of a body it refuses.
fn post(address: SocketAddr, path: &str, body: String) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        // A refusal may close the connection before the body is sent; the answer says why.
        let _ = writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(body.as_bytes()));
    });
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    sender.join().unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_owned())
}

/// The peak and current resident memory of a process, in MiB, from `/proc/<pid>/status`.
fn memory_mib(node: &Node) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.process.0.id())).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|line| line.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

const LIMIT_MIB: u64 = 300;

/// Each body cost the server far more than 300 MB before it was bounded: 20 MB of bad lines
/// (every rejection was kept), an MDE Streaming API document of 20 MB over many lines (parsed
/// whole into a JSON tree) and a MISP export of 20 MB (likewise).
#[test]
fn one_upload_of_any_kind_keeps_the_server_under_300_mb() {
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("sources.json");
    std::fs::write(&sources, r#"[{"name": "misp", "rank": 10, "writers": ["default"]}]"#).unwrap();
    let node = spawn_node(
        &dir.path().join("data"),
        &["--insecure-no-auth", "--rate-limit-off", "--feed-sources", sources.to_str().unwrap()],
    );
    let size = 20 << 20;

    let bad_lines = "{}\n".repeat(size / 3);
    let (status, answer) = post(node.address, "/api/ingest/observations", bad_lines);
    assert_eq!(status, 200, "{answer}");
    let summary: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(summary["rejected"], (size / 3) as u64);
    assert_eq!(summary["rejectedLines"].as_array().unwrap().len(), 10_000);
    assert_eq!(summary["rejectedLinesOmitted"], (size / 3 - 10_000) as u64);
    let (peak, now) = memory_mib(&node);
    assert!(peak < LIMIT_MIB, "bad lines: peak {peak} MiB (now {now} MiB)");

    // Many short properties, as real records have: a JSON tree costs most per small value.
    let extra: Vec<String> = (0..60).map(|i| format!(r#""P{i}":"v""#)).collect();
    let extra = extra.join(",");
    let record = format!(
        r#"{{"time":"2024-03-01T10:00:00Z","category":"AdvancedHunting-DeviceFileEvents","properties":{{"DeviceId":"d","SHA1":"68b26c16080d71013123c6dee7b1aabc3d2857d0",{extra}}}}}"#
    );
    let records = vec![record.as_str(); size / record.len()].join(",\n    ");
    let document = format!("{{\n  \"records\": [\n    {records}\n  ]\n}}\n");
    let path = "/api/ingest/observations?format=mde-json";
    let (status, answer) = post(node.address, path, document);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("longer than"), "the document is refused by its size: {answer}");
    let (peak, now) = memory_mib(&node);
    assert!(peak < LIMIT_MIB, "MDE document: peak {peak} MiB (now {now} MiB)");

    let attribute = format!(
        r#"{{"uuid":"5f1c2d3e-aaaa-bbbb-cccc-000000000000","type":"sha256","value":"{}","to_ids":true,"timestamp":"1700000000","Tag":[{{"name":"t"}}],{extra}}}"#,
        "a".repeat(64)
    );
    let attributes = vec![attribute.as_str(); size / attribute.len()].join(",");
    let event = format!(r#"{{"Event":{{"info":"wave","Attribute":[{attributes}]}}}}"#);
    let path = "/api/feeds/import?source=misp&format=misp";
    let (status, answer) = post(node.address, path, event);
    assert_eq!(status, 200, "{answer}");
    let (peak, now) = memory_mib(&node);
    assert!(peak < LIMIT_MIB, "MISP export: peak {peak} MiB (now {now} MiB)");
}

/// Whether the server closes `stream` within `bound`: a read that returns 0 or fails with
/// anything but a timeout.
fn closed_within(stream: &mut TcpStream, bound: Duration) -> bool {
    stream.set_read_timeout(Some(bound)).unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            // An answer (408, 400) before the close is fine; keep reading to the close.
            Ok(_) => continue,
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return started.elapsed() < bound,
        }
    }
}

fn slow_clients_are_dropped(node: &Node) {
    // One sends nothing at all; one sends half a header; one sends its headers and part of a body.
    let mut silent = TcpStream::connect(node.address).unwrap();
    let mut half_header = TcpStream::connect(node.address).unwrap();
    half_header.write_all(b"POST /contoso/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut half_body = TcpStream::connect(node.address).unwrap();
    half_body
        .write_all(b"POST /contoso/oauth2/v2.0/token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\ngrant_type")
        .unwrap();
    // The flags say one second; twenty is generous for a loaded machine, and far from never.
    let bound = Duration::from_secs(20);
    assert!(closed_within(&mut silent, bound), "a silent connection stays open");
    assert!(closed_within(&mut half_header, bound), "a connection with half a header stays open");
    assert!(closed_within(&mut half_body, bound), "a connection with half a body stays open");
}

const QUICK: [&str; 4] = ["--header-timeout", "1", "--body-timeout", "1"];

#[test]
fn slow_clients_are_dropped_within_the_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(dir.path(), &QUICK);
    slow_clients_are_dropped(&node);
    // HTTP/2 with prior knowledge, then one request's worth of settings: an HTTP/2 connection
    // would outlive every HTTP/1 timeout, so it is not spoken at all.
    let mut h2c = TcpStream::connect(node.address).unwrap();
    h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").unwrap();
    // HEADERS for `GET /health` on stream 1 (HPACK: GET, http, then /health as a literal path).
    h2c.write_all(b"\x00\x00\x0b\x01\x05\x00\x00\x00\x01\x82\x86\x44\x07/health").unwrap();
    assert!(closed_within(&mut h2c, Duration::from_secs(20)), "an HTTP/2 connection stays open");
    // The server goes on answering.
    let (status, _, _) = call_as(node.address, "GET", "/health", "", None, "x");
    assert_eq!(status, 200);
}

#[test]
fn slow_clients_are_dropped_within_the_timeouts_over_tls_too() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let made = Command::new(BIN).args(["dev-cert", "--out"]).arg(&certs).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (cert, key) = (certs.join("server.pem"), certs.join("server-key.pem"));
    let mut args = QUICK.to_vec();
    args.extend(["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let node = spawn_node(&dir.path().join("data"), &args);
    // A client that never starts the handshake, or starts it and stops.
    let mut silent = TcpStream::connect(node.address).unwrap();
    let mut half_hello = TcpStream::connect(node.address).unwrap();
    half_hello.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(20)), "a silent TLS connection stays open");
    assert!(closed_within(&mut half_hello, Duration::from_secs(20)), "half a TLS hello stays open");
    // A client that offers h2 and HTTP/1.1 in the handshake (curl does) is answered over 1.1.
    let answered = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "--cacert"])
        .arg(certs.join("ca.pem"))
        .arg(format!("https://127.0.0.1:{}/health", node.address.port()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&answered.stdout), "200 1.1", "{}", String::from_utf8_lossy(&answered.stderr));
}

#[test]
fn connections_past_the_cap_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(dir.path(), &["--max-connections", "2", "--header-timeout", "600"]);
    let address: SocketAddr = node.address;
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(address).unwrap()).collect();
    // Give the server a moment to take both before the third arrives; the bound below is what
    // is asserted, not this wait.
    std::thread::sleep(Duration::from_millis(300));
    let mut third = TcpStream::connect(address).unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(20)), "a third connection is served past the cap of 2");
    drop(held);
    // Once they are gone, connections are served again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        let mut answer = String::new();
        if stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no connection served after the held ones closed");
        std::thread::sleep(Duration::from_millis(100));
    }
}
