//! TLS to PostgreSQL against a server of the test's own that accepts only TLS connections
//! (`hostssl` alone in pg_hba.conf) and SCRAM passwords, with a certificate for 127.0.0.1 and
//! localhost from a CA made here. Needs PostgreSQL's programs under /usr/lib/postgresql: skipped
//! with a notice without them, and failing under CI=true.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use fileintel_core::{FileHash, FileHashes, Observation, Sha256, Timestamp};
use fileintel_postgres::{PgOptions, PgStore};
use fileintel_store::{Store, StoreError};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

const PASSWORD: &str = "tls-test-secret";

/// A PostgreSQL server of this test's own on a free port, stopped when dropped.
struct TlsPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

/// A CA of the test's own.
fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn postgres_bin() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .find(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status.lines().find(|line| line.starts_with("Uid:")).map(str::to_owned))
        .and_then(|line| line.split_whitespace().nth(1).map(|uid| uid == "0"))
        .unwrap_or(false)
}

impl TlsPostgres {
    /// Initialises and starts one whose certificate `ca` signed; `None` (with a notice) where
    /// PostgreSQL's programs are missing, except under CI, where that fails the test.
    fn start(ca: &CertifiedIssuer<'static, KeyPair>) -> Option<TlsPostgres> {
        let Some(bin) = postgres_bin() else {
            let notice = "PostgreSQL's initdb and pg_ctl were not found under /usr/lib/postgresql";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{notice}, and CI must run this test");
            println!("skipped: {notice}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // The server runs as `postgres` when the test runs as root, and must reach the folder.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = TlsPostgres { dir, bin, port };
        let password_file = server.dir.path().join("password");
        std::fs::write(&password_file, PASSWORD).unwrap();
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let output = server.as_postgres(
            &server.bin.join("initdb"),
            &[
                "-D",
                &server.data().display().to_string(),
                "-U",
                "postgres",
                "--pwfile",
                &password_file.display().to_string(),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
        );
        assert!(output.status.success(), "initdb: {}", String::from_utf8_lossy(&output.stderr));

        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, ca).unwrap();
        // The server reads its key only when it is its own and no one else's to read.
        let owner = std::fs::metadata(server.data()).unwrap();
        for (name, text) in [("server.pem", certificate.pem()), ("server-key.pem", key.serialize_pem())] {
            let path = server.data().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
        }
        let mut settings = std::fs::read_to_string(server.data().join("postgresql.conf")).unwrap();
        settings.push_str("\nssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server-key.pem'\n");
        std::fs::write(server.data().join("postgresql.conf"), settings).unwrap();
        // TLS or nothing over TCP: a connection without it finds no line of pg_hba.conf.
        std::fs::write(
            server.data().join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();

        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", server.port, server.dir.path().display());
        let log = server.dir.path().join("log").display().to_string();
        let output = server.as_postgres(
            &server.bin.join("pg_ctl"),
            &["-D", &server.data().display().to_string(), "-o", &options, "-l", &log, "-w", "start"],
        );
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(output.status.success(), "pg_ctl start: {}\n{log}", String::from_utf8_lossy(&output.stderr));
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_postgres(&self, program: &Path, args: &[&str]) -> Output {
        let mut command = match running_as_root() {
            true => {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            }
            false => Command::new(program),
        };
        command.args(args).current_dir(self.dir.path()).output().unwrap()
    }

    /// The address of its `postgres` database through `host` (connecting to 127.0.0.1 whatever
    /// the name), with `query` appended.
    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres:{PASSWORD}@{host}:{}/postgres?hostaddr=127.0.0.1&{query}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self.as_postgres(&self.bin.join("pg_ctl"), &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

fn write_pem(dir: &Path, name: &str, ca: &CertifiedIssuer<'static, KeyPair>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, ca.pem()).unwrap();
    path.display().to_string()
}

fn options() -> PgOptions {
    PgOptions { max_connections: 2, connect_timeout: Duration::from_secs(10), ..PgOptions::default() }
}

/// The store works through `url`: what is ingested is read back, over an encrypted connection.
async fn works_encrypted(url: &str) {
    let store = PgStore::connect(url, options()).await.unwrap_or_else(|error| panic!("{url}: {error}"));
    assert!(store.encrypted().await.unwrap(), "the server sees the connection as TLS");
    let sha256 = Sha256::from_slice(&[0x5A; 32]);
    let observation = Observation {
        tenant_id: "t".into(),
        device_id: "d".into(),
        device_name: None,
        timestamp: Timestamp::now(),
        hashes: FileHashes { sha1: None, sha256, md5: None },
        size: None,
        file_name: None,
        folder_path: None,
        os_platform: None,
        reported: None,
    };
    store.ingest(vec![observation]).await.unwrap();
    let record = store.get_file(FileHash::Sha256(sha256.unwrap())).await.unwrap().expect("the file ingested");
    assert!(record.global_prevalence >= 1);
}

/// The error connecting through `url`, which must fail.
async fn refused(url: &str) -> StoreError {
    match PgStore::connect(url, options()).await {
        Ok(_) => panic!("{url} connected"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn a_server_that_takes_only_tls_is_reached_with_require_and_verify_full_and_refused_a_wrong_ca_host_or_plain_text()
 {
    let ca = certificate_authority("fileintel test CA");
    let Some(server) = TlsPostgres::start(&ca) else { return };
    let files = tempfile::tempdir().unwrap();
    let right = write_pem(files.path(), "ca.pem", &ca);
    let wrong = write_pem(files.path(), "other-ca.pem", &certificate_authority("another CA"));

    // Encrypted without a check of the certificate, as libpq's `require`; a CA given, its chain
    // is checked; the full check by IP address and by name.
    works_encrypted(&server.url("127.0.0.1", "sslmode=require")).await;
    works_encrypted(&server.url("127.0.0.1", &format!("sslmode=require&sslrootcert={right}"))).await;
    works_encrypted(&server.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={right}"))).await;
    works_encrypted(&server.url("localhost", &format!("sslmode=verify-full&sslrootcert={right}"))).await;
    // The default (`prefer`) takes TLS when the server offers it.
    works_encrypted(&server.url("127.0.0.1", "application_name=default-mode")).await;

    // Another CA's certificate is refused by every mode that checks it, and says why.
    for mode in ["verify-full", "verify-ca", "require"] {
        let error = refused(&server.url("127.0.0.1", &format!("sslmode={mode}&sslrootcert={wrong}"))).await;
        let text = error.to_string();
        assert!(matches!(error, StoreError::Backend(_)), "a wrong CA is no outage: {error:?}");
        assert!(text.contains("invalid peer certificate") && text.contains("UnknownIssuer"), "{mode}: {text}");
    }

    // A name the certificate was not made for: refused by verify-full, not by verify-ca.
    let name = "db.example.invalid";
    let error = refused(&server.url(name, &format!("sslmode=verify-full&sslrootcert={right}"))).await;
    let text = error.to_string();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    assert!(text.contains("invalid peer certificate") && text.contains("not valid for name"), "{text}");
    works_encrypted(&server.url(name, &format!("sslmode=verify-ca&sslrootcert={right}"))).await;

    // Without TLS the server finds no line of pg_hba.conf for the connection: TLS is what let
    // the others in.
    let text = refused(&server.url("127.0.0.1", "sslmode=disable")).await.to_string();
    assert!(text.contains("no pg_hba.conf entry") && text.contains("no encryption"), "{text}");
}
