//! The binary's `--database-url` reads TLS as the library does (libpq's `sslmode` and
//! `sslrootcert`); the connections themselves are tested in fileintel-postgres's tests/tls.rs.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fileintel");

#[test]
fn database_urls_take_libpq_verifying_sslmodes_and_say_what_they_lack() {
    // Nothing listens on port 1, but the address is refused before any connection is tried.
    let output = Command::new(BIN)
        .args(["migrate", "--database-url", "postgres://fileintel:s3cret@127.0.0.1:1/fileintel?sslmode=verify-full"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("sslmode=verify-full needs sslrootcert"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("missing-ca.pem");
    let url = format!("postgres://fileintel@127.0.0.1:1/fileintel?sslmode=verify-ca&sslrootcert={}", ca.display());
    let output = Command::new(BIN).args(["migrate", "--database-url", &url]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(&format!("sslrootcert {}", ca.display())), "{stderr}");
}
