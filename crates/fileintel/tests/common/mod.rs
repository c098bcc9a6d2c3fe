//! What the tests of the real binary share: the one way to start `fileintel serve` children
//! (`spawn_node`, on port 0) and plain HTTP/1.1 calls.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_fileintel");

/// A child process, killed (SIGKILL) when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Node {
    pub process: Process,
    pub address: SocketAddr,
}

/// Starts `fileintel serve` on port 0 with `args`; the node is reachable once this returns.
pub fn spawn_node(data_dir: &Path, args: &[&str]) -> Node {
    let child = start_node(data_dir, args);
    node_ready(child)
}

/// Starts `fileintel serve` without waiting for it, so several can start at once.
pub fn start_node(data_dir: &Path, args: &[&str]) -> Child {
    serve_command(data_dir, args).spawn().unwrap()
}

/// The one command line the tests serve with: port 0, the data directory, then `args`; logging
/// only warnings, its stdout read by the test.
pub fn serve_command(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("FILEINTEL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Reads the address a started node bound from its first line of stdout.
pub fn node_ready(mut child: Child) -> Node {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // Keep reading what else it prints, as a terminal would.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Node { process: Process(child), address: listening_address(&line) }
}

/// The address of the first line `fileintel serve` prints: `fileintel listening on URL`.
pub fn listening_address(line: &str) -> SocketAddr {
    line.trim()
        .strip_prefix("fileintel listening on ")
        .and_then(|url| url.split_once("://"))
        .and_then(|(_, address)| address.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
}

/// A started server (`fileintel serve`, or a shell that execs one), killed when dropped, and
/// the lines it prints as they come.
pub struct Printing {
    pub process: Process,
    pub lines: Receiver<String>,
}

impl Printing {
    /// Starts `command`, its stdout read line by line.
    pub fn start(mut command: Command) -> Printing {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Printing { process: Process(child), lines }
    }

    /// The next line printed; the wait is generous, as a start on a loaded machine is slow.
    pub fn line(&self) -> String {
        self.lines.recv_timeout(Duration::from_secs(120)).expect("the server printed nothing more")
    }
}

/// (status, lower-cased head, body) of one HTTP/1.1 exchange.
pub fn call(address: SocketAddr, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String, String) {
    call_as(address, method, path, body, token, "application/x-www-form-urlencoded")
}

pub fn call_as(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
    content_type: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let authorization = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

/// An access token for an application by client credentials, from the node at `address`.
pub fn client_token(address: SocketAddr, tenant: &str, app: &Value) -> String {
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=https://api.securitycenter.microsoft.com/.default",
        app["clientId"].as_str().unwrap(),
        app["clientSecret"].as_str().unwrap()
    );
    let (status, _, answer) = call(address, "POST", &format!("/{tenant}/oauth2/v2.0/token"), &form, None);
    assert_eq!(status, 200, "{answer}");
    let token: Value = serde_json::from_str(&answer).unwrap();
    token["access_token"].as_str().unwrap().to_owned()
}

/// Runs `fileintel ARGS` and parses what it printed as JSON.
pub fn fileintel_json(args: &[&str]) -> Value {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A PostgreSQL server of the test's own, in a temporary directory on a free port, that the
/// test may stop and start (never the machine's shared server). Run as the `postgres` user when
/// the test runs as root, as PostgreSQL refuses root.
pub struct OwnPostgres {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: std::path::PathBuf,
}

impl OwnPostgres {
    /// Initialises and starts one; `None` (with a notice, or a failure under CI) where
    /// PostgreSQL's programs are missing.
    pub fn start() -> Option<OwnPostgres> {
        let bin = ["/usr/lib/postgresql"]
            .iter()
            .filter_map(|root| std::fs::read_dir(root).ok())
            .flatten()
            .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
            .find(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists());
        let Some(bin) = bin else {
            return fileintel_testing::skip("PostgreSQL's initdb and pg_ctl were not found under /usr/lib/postgresql");
        };
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = OwnPostgres { dir, port, bin };
        let data = server.data();
        let output = server
            .as_postgres(&server.bin.join("initdb"), &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]);
        assert!(output.status.success(), "initdb: {}", String::from_utf8_lossy(&output.stderr));
        server.up();
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn as_postgres(&self, program: &Path, args: &[&str]) -> std::process::Output {
        let root = running_as_root();
        let mut command = if root { Command::new("runuser") } else { Command::new(program) };
        if root {
            command.args(["-u", "postgres", "--"]).arg(program);
        }
        command.args(args).current_dir(self.dir.path()).output().unwrap()
    }

    /// Starts the server and waits until it accepts connections.
    pub fn up(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        let output = self
            .as_postgres(&self.bin.join("pg_ctl"), &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
        assert!(output.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Stops the server at once (as a crash would).
    pub fn down(&self) {
        let _ = self.as_postgres(&self.bin.join("pg_ctl"), &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.down();
    }
}

/// Whether this process runs as root (uid 0), read from /proc so no libc binding is needed.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status.lines().find(|line| line.starts_with("Uid:")).map(str::to_owned))
        .and_then(|line| line.split_whitespace().nth(1).map(|uid| uid == "0"))
        .unwrap_or(false)
}
