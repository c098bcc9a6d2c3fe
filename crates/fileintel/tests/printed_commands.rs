//! Every command fileintel prints for a user to paste works as printed: the demo's token and
//! lookup (over plain HTTP and over TLS with `dev-cert`'s certificate), `dev-cert`'s own `serve`
//! command, and the `--server` command suggested when a server holds the data directory. Each
//! is run by bash exactly as printed, with `fileintel` on the PATH; only placeholders a user
//! fills (`FILE...`) are filled.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

mod common;

use common::{BIN, Printing, serve_command};

/// The README's example hash, which the demo's lookup asks for.
const DEMO_SHA1: &str = "2c4cd67ad70a478e658e5a9cbf26ae44e666d039";

impl Printing {
    /// The commands of the demo's block: the lines after its heading, a command continued on
    /// the next line where one ends in a backslash. The block is printed in one write, so the
    /// lines after the heading are all there once the heading is.
    fn demo_commands(&self) -> Vec<String> {
        let mut heading = self.line();
        while !heading.starts_with("demo application") {
            heading = self.line();
        }
        let mut block = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            if !line.starts_with(' ') {
                break;
            }
            block.push(line);
        }
        commands(&block.join("\n"))
    }
}

/// The commands of a printed block: its indented lines, joined where one ends in a backslash.
fn commands(printed: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in printed.lines().filter(|line| line.starts_with("  ")) {
        current.push_str(line.trim());
        match current.strip_suffix('\\') {
            Some(continued) => current = format!("{continued} "),
            None => commands.push(std::mem::take(&mut current)),
        }
    }
    commands
}

/// Runs commands as a user pasting them would, in one bash, stopping at the first that fails.
fn paste(commands: &[String], dir: &Path) -> Output {
    let path = format!("{}:{}", Path::new(BIN).parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let script = format!("set -eo pipefail\n{}\n", commands.join("\n"));
    Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("PATH", path)
        .env("FILEINTEL_LOG", "warn")
        .env_remove("FILEINTEL_DATA_DIR")
        .output()
        .unwrap()
}

fn succeeded(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}\nstdout: {}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the demo's commands print last: the demo file's entity.
fn assert_demo_lookup(printed: &str) {
    let entity: Value = serde_json::from_str(printed.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("not the entity ({error}): {printed}"));
    assert_eq!(entity["sha1"], DEMO_SHA1, "{printed}");
}

#[test]
fn the_demos_commands_and_the_held_data_directorys_suggestions_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Printing::start(serve_command(&data, &["--demo"]));
    let demo = server.demo_commands();
    assert_eq!(demo.len(), 2, "{demo:?}");
    assert_demo_lookup(&succeeded(&paste(&demo, dir.path()), "the demo's commands"));

    // A second process on the held data directory says what to run instead; pasted after the
    // demo's commands (which set TOKEN), with the file named, it works.
    let observations = dir.path().join("more.ndjson");
    std::fs::write(
        &observations,
        "{\"deviceId\":\"pc-9\",\"sha1\":\"a94a8fe5ccb19ba61f4c0873d391e987982fbbd3\",\"timestamp\":\"2026-11-20T08:15:30Z\"}\n",
    )
    .unwrap();
    let script = dir.path().join("tool.sh");
    std::fs::write(&script, "#!/bin/sh\necho tool\n").unwrap();
    for (command, file) in [("ingest", &observations), ("analyze", &script)] {
        let refused = Command::new(BIN).args([command, "--data-dir"]).arg(&data).arg(file).output().unwrap();
        assert!(!refused.status.success(), "{command} opened a held data directory");
        let said = String::from_utf8_lossy(&refused.stderr);
        let suggested = commands(&said);
        assert_eq!(suggested.len(), 1, "{command}: {said}");
        assert!(suggested[0].contains("--token"), "{said}");
        let filled = suggested[0].replace("FILE...", &file.display().to_string());
        let mut pasted = demo[..1].to_vec();
        pasted.push(filled);
        let printed = succeeded(&paste(&pasted, dir.path()), &format!("{command}'s suggestion"));
        if command == "analyze" {
            let profile: Value = serde_json::from_str(printed.trim()).unwrap();
            assert_eq!(profile["fileType"], "Script");
        }
    }
}

#[test]
fn over_tls_the_dev_certs_serve_command_and_the_demos_commands_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new(BIN).args(["dev-cert", "--out", "certs"]).current_dir(dir.path()).output().unwrap();
    let printed = succeeded(&made, "dev-cert");
    let serve = printed
        .lines()
        .find_map(|line| line.strip_prefix("serve with: "))
        .unwrap_or_else(|| panic!("dev-cert printed no serve command: {printed}"));

    // dev-cert's command as printed; where to listen, the demo and the data directory come from
    // the environment, as the flags' variables.
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("exec {serve}"))
        .current_dir(dir.path())
        .env(
            "PATH",
            format!("{}:{}", Path::new(BIN).parent().unwrap().display(), std::env::var("PATH").unwrap_or_default()),
        )
        .env("FILEINTEL_LISTEN", "127.0.0.1:0")
        .env("FILEINTEL_DEMO", "true")
        .env("FILEINTEL_DATA_DIR", dir.path().join("data"))
        .env("FILEINTEL_LOG", "warn");
    let server = Printing::start(command);
    let demo = server.demo_commands();
    assert_eq!(demo.len(), 2, "{demo:?}");
    assert!(demo.iter().all(|command| command.contains("https://") && command.contains("--cacert")), "{demo:?}");
    assert_demo_lookup(&succeeded(&paste(&demo, dir.path()), "the demo's commands over TLS"));

    // --server speaks plain HTTP only: beside a TLS server no command is suggested that would fail.
    let input = dir.path().join("x.ndjson");
    std::fs::write(&input, "").unwrap();
    let refused =
        Command::new(BIN).args(["ingest", "--data-dir"]).arg(dir.path().join("data")).arg(&input).output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(commands(&said).is_empty() && said.contains("HTTPS"), "{said}");
}
