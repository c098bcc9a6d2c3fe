//! TLS to the server as libpq's `sslmode` and `sslrootcert` describe it, through rustls with
//! ring. The driver reads `sslmode` itself but knows only `disable`, `prefer` and `require`, and
//! refuses `sslrootcert`; so both are taken out of the connection string here, and the
//! certificate check each mode asks for is built from them:
//!
//! | `sslmode`            | encrypted                        | server certificate checked                      |
//! |----------------------|----------------------------------|-------------------------------------------------|
//! | `disable`            | never                            | -                                               |
//! | `allow`, `prefer` (the default) | when the server offers it | against `sslrootcert` when given (its chain only), else not |
//! | `require`            | always                           | against `sslrootcert` when given (its chain only), else not |
//! | `verify-ca`          | always                           | its chain, against `sslrootcert` (required)     |
//! | `verify-full`        | always                           | its chain and the host name, against `sslrootcert` (required) |
//!
//! As in libpq, `sslrootcert=system` takes the operating system's trust roots and needs
//! `verify-full` (which it is when no `sslmode` is given). Unlike libpq, nothing is read from
//! `~/.postgresql/root.crt` or `PGSSLMODE`: a service's trust is what its configuration says.
//! `allow` (plain first, TLS if refused) is taken as `prefer`, which tries TLS first.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fileintel_store::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a connection uses TLS: libpq's `sslmode` values (`allow` is read as `prefer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// What a server's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// Nothing: the certificate is taken as it is (`prefer` and `require` without `sslrootcert`).
    None,
    /// The certificates in a PEM file (`sslrootcert=<file>`).
    File(PathBuf),
    /// The operating system's trust roots (`sslrootcert=system`).
    System,
}

/// A connection string read: the driver's configuration and the TLS connector its `sslmode`
/// asks for.
pub(crate) struct Connection {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: MakeRustlsConnect,
    pub(crate) mode: SslMode,
    /// Whether the server's certificate is checked against roots (when TLS is used).
    pub(crate) checked: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("mode", &self.mode).finish_non_exhaustive()
    }
}

fn invalid(text: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("the PostgreSQL address: {text}"))
}

/// Reads a connection string (`postgres://...?sslmode=verify-full&sslrootcert=ca.pem`, or
/// `host=... sslmode=verify-full sslrootcert=ca.pem`), loading the CA file it names.
pub(crate) fn read(url: &str) -> Result<Connection, StoreError> {
    let (config, mode, roots) = parse(url)?;
    let tls = MakeRustlsConnect::new(client_config(mode, &roots)?);
    Ok(Connection { config, tls, mode, checked: roots != Roots::None })
}

/// The driver's configuration of a connection string, reading no file: for naming the
/// database, say.
pub(crate) fn driver_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    Ok(parse(url)?.0)
}

fn parse(url: &str) -> Result<(tokio_postgres::Config, SslMode, Roots), StoreError> {
    let (rest, sslmode, sslrootcert) = split_tls_keys(url);
    // A string whose TLS keys could not be taken out must not fall back to `prefer`, which a
    // server in the middle can answer without TLS: fail closed instead.
    if sslmode.is_none() && sslrootcert.is_none() && (rest.contains("sslmode") || rest.contains("sslrootcert")) {
        return Err(invalid(
            "the connection string names sslmode or sslrootcert where they cannot be read (a stray quote or backslash?); nothing was connected",
        ));
    }
    let mut config: tokio_postgres::Config = rest.parse().map_err(invalid)?;
    let roots = match sslrootcert.as_deref() {
        None | Some("") => Roots::None,
        Some("system") => Roots::System,
        Some(path) => Roots::File(PathBuf::from(path)),
    };
    let mode = match sslmode.as_deref() {
        None if roots == Roots::System => SslMode::VerifyFull,
        None | Some("allow" | "prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some(other) => {
            return Err(invalid(format!(
                "sslmode {other:?} is none of disable, allow, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    if roots == Roots::System && mode != SslMode::VerifyFull {
        return Err(invalid(format!(
            "sslrootcert=system needs sslmode=verify-full (any CA the system trusts could vouch for another host), not {}",
            sslmode.as_deref().unwrap_or_default()
        )));
    }
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && roots == Roots::None {
        let name = if mode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" };
        return Err(invalid(format!(
            "sslmode={name} needs sslrootcert=<file>: the CA certificates (PEM) the server's certificate must chain to (or sslrootcert=system)"
        )));
    }
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    Ok((config, mode, roots))
}

/// Whether every host the configuration names is this machine (a loopback address, `localhost`,
/// or a Unix socket), where a connection without TLS crosses no network.
pub(crate) fn is_local(config: &tokio_postgres::Config) -> bool {
    let addresses = config.get_hostaddrs();
    config.get_hosts().iter().enumerate().all(|(index, host)| match host {
        Host::Unix(_) => true,
        // The address connected to is `hostaddr` where one is given, else the host.
        Host::Tcp(name) => match addresses.get(index) {
            Some(address) => address.is_loopback(),
            None => name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        },
    })
}

/// What to warn of about a connection, if anything: whether it is `local` (see [`is_local`]),
/// `encrypted` (as the server says), and its server's certificate `checked`.
pub(crate) fn exposure(local: bool, encrypted: bool, checked: bool) -> Option<&'static str> {
    match (local, encrypted, checked) {
        (true, _, _) => None,
        (false, false, _) => Some(
            "the connection to PostgreSQL is not encrypted, and the server is not on this machine: \
             passwords and signing keys cross the network in clear",
        ),
        (false, true, false) => Some(
            "the connection to PostgreSQL is encrypted but its server's certificate is not checked: \
             whoever answers at its address is taken for it",
        ),
        (false, true, true) => None,
    }
}

fn client_config(mode: SslMode, roots: &Roots) -> Result<ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| StoreError::Backend(format!("TLS for PostgreSQL: {error}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (roots, mode) {
        (_, SslMode::Disable) | (Roots::None, _) => Arc::new(WithoutHostName { roots: None, algorithms }),
        (roots, SslMode::VerifyFull) => WebPkiServerVerifier::builder_with_provider(Arc::new(load(roots)?), provider)
            .build()
            .map_err(|error| StoreError::Backend(format!("TLS for PostgreSQL: {error}")))?,
        (roots, _) => Arc::new(WithoutHostName { roots: Some(Arc::new(load(roots)?)), algorithms }),
    };
    let mut config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
    // PostgreSQL 17 refuses a direct TLS connection (`sslnegotiation=direct`) without it, and
    // older servers ignore it; libpq sends it too.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

/// The trust roots to check a server against.
fn load(roots: &Roots) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::None => {}
        Roots::File(path) => {
            let certificates = read_certificates(path)?;
            for certificate in certificates {
                store.add(certificate).map_err(|error| {
                    invalid(format!("sslrootcert {}: a certificate that cannot be a root: {error}", path.display()))
                })?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(invalid(format!(
                    "sslrootcert=system: no trust roots found on this system ({:?})",
                    found.errors
                )));
            }
        }
    }
    Ok(store)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let unreadable = |error: &dyn std::fmt::Display| invalid(format!("sslrootcert {}: {error}", path.display()));
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| unreadable(&error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(&error))?;
    if certificates.is_empty() {
        return Err(unreadable(&"no PEM certificate in the file"));
    }
    Ok(certificates)
}

/// The connection string without its `sslmode` and `sslrootcert`, and their values (the last of
/// each, as the driver takes the last of a repeated key). A string this cannot read is returned
/// whole, for the driver to report what is wrong with it.
fn split_tls_keys(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut sslmode, mut sslrootcert) = (None, None);
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            sslmode = Some(value);
            true
        }
        "sslrootcert" => {
            sslrootcert = Some(value);
            true
        }
        _ => false,
    };
    let rest = match url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) {
        Some(_) => {
            // The query starts at the first `?` after the credentials, which end at the first
            // `@`: where the driver's own reading puts them.
            let after_credentials = url.find('@').map_or(0, |at| at + 1);
            match url[after_credentials..].find('?').map(|at| after_credentials + at) {
                None => url.to_owned(),
                Some(start) => {
                    let kept: Vec<&str> = url[start + 1..]
                        .split('&')
                        .filter(|pair| match pair.split_once('=') {
                            Some((key, value)) => !take(&percent_decode(key), percent_decode(value)),
                            None => true,
                        })
                        .collect();
                    match kept.is_empty() {
                        true => url[..start].to_owned(),
                        false => format!("{}?{}", &url[..start], kept.join("&")),
                    }
                }
            }
        }
        None => match key_value_pairs(url) {
            Some(pairs) => {
                let mut rest = String::new();
                let mut from = 0;
                for (key, value, span) in pairs {
                    if take(&key, value) {
                        rest.push_str(&url[from..span.start]);
                        from = span.end;
                    }
                }
                rest.push_str(&url[from..]);
                rest
            }
            None => url.to_owned(),
        },
    };
    (rest, sslmode, sslrootcert)
}

/// `%XX` escapes decoded; anything else (a `%` not followed by two hex digits included) as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes.get(at + 1..at + 3).and_then(|pair| std::str::from_utf8(pair).ok());
        match (bytes[at], hex.and_then(|hex| u8::from_str_radix(hex, 16).ok())) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                at += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The `key = value` pairs of a key-value connection string with where each lies in it, values
/// unquoted and unescaped as libpq reads them; `None` when it is not one.
fn key_value_pairs(text: &str) -> Option<Vec<(String, String, std::ops::Range<usize>)>> {
    let mut pairs = Vec::new();
    let mut chars = text.char_indices().peekable();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_space(&mut chars);
        let Some(&(start, _)) = chars.peek() else { return Some(pairs) };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        skip_space(&mut chars);
        chars.next_if(|(_, c)| *c == '=')?;
        skip_space(&mut chars);
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                Some((at, '\'')) if quoted => break at + 1,
                Some((_, '\\')) => value.push(chars.next()?.1),
                Some((at, c)) if !quoted && c.is_whitespace() => break at,
                Some((_, c)) => value.push(c),
                None if quoted => return None,
                None => break text.len(),
            }
        };
        if value.is_empty() && !quoted {
            return None;
        }
        pairs.push((key, value, start..end));
    }
}

/// A certificate check short of `verify-full`'s. Without roots (`prefer` and `require` without
/// `sslrootcert`) it is encryption against whoever answers, as libpq does; with roots
/// (`verify-ca`, and `prefer` or `require` given `sslrootcert`) the certificate must chain to one
/// of them, whichever host name it was made for. Either way the handshake's signatures are
/// checked, so the key that signed it is the certificate's.
#[derive(Debug)]
struct WithoutHostName {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for WithoutHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let certificate = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(&certificate, roots, intermediates, now, self.algorithms.all)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, certificate, signed, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, certificate, signed, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, Option<String>, Option<String>) {
        split_tls_keys(url)
    }

    #[test]
    fn tls_keys_leave_a_url_and_the_rest_of_its_query_stays() {
        assert_eq!(
            split("postgres://u:p@db:5432/x?sslmode=verify-full&application_name=a&sslrootcert=%2Fetc%2Fca%20x.pem"),
            (
                "postgres://u:p@db:5432/x?application_name=a".into(),
                Some("verify-full".into()),
                Some("/etc/ca x.pem".into())
            )
        );
        assert_eq!(
            split("postgresql://db/x?sslmode=require"),
            ("postgresql://db/x".into(), Some("require".into()), None)
        );
        // A `?` in the password is the password's: the query starts after the credentials.
        assert_eq!(split("postgres://u:p?w@db/x"), ("postgres://u:p?w@db/x".into(), None, None));
        assert_eq!(
            split("postgres://db/x?sslmode=disable&sslmode=verify-ca"),
            ("postgres://db/x".into(), Some("verify-ca".into()), None)
        );
    }

    #[test]
    fn tls_keys_leave_a_key_value_string_with_quotes_and_escapes_read_as_libpq_reads_them() {
        assert_eq!(
            split(r"host=db sslmode = verify-full dbname=x sslrootcert='/etc/my ca\'s.pem' user=u"),
            ("host=db  dbname=x  user=u".into(), Some("verify-full".into()), Some("/etc/my ca's.pem".into()))
        );
        assert_eq!(split(r"sslrootcert=a\ b.pem host=db"), (" host=db".into(), None, Some("a b.pem".into())));
        // Not a key-value string: left whole for the driver to report.
        assert_eq!(split("host=db sslmode='unterminated"), ("host=db sslmode='unterminated".into(), None, None));
    }

    /// What the splitter cannot read is refused, never connected as `prefer`: here the driver
    /// would read `sslmode=require`, and our reading of the string would have lost it.
    #[test]
    fn tls_keys_that_cannot_be_read_are_refused_not_weakened() {
        for url in [r"host=db sslmode=require password=x\", "host=db sslmode='unterminated"] {
            let error = read(url).err().unwrap_or_else(|| panic!("{url} connected"));
            assert!(error.to_string().contains("cannot be read"), "{url}: {error}");
        }
    }

    #[test]
    fn every_libpq_sslmode_is_read_and_the_driver_sees_what_it_knows() {
        use tokio_postgres::config::SslMode as Driver;
        for (given, mode, driver) in [
            ("", SslMode::Prefer, Driver::Prefer),
            ("?sslmode=disable", SslMode::Disable, Driver::Disable),
            ("?sslmode=allow", SslMode::Prefer, Driver::Prefer),
            ("?sslmode=prefer", SslMode::Prefer, Driver::Prefer),
            ("?sslmode=require", SslMode::Require, Driver::Require),
        ] {
            let connection = read(&format!("postgres://u@db/x{given}")).unwrap();
            assert_eq!((connection.mode, connection.config.get_ssl_mode()), (mode, driver), "{given}");
        }
    }

    #[test]
    fn verifying_modes_need_a_root_and_an_unknown_mode_is_refused_by_name() {
        for mode in ["verify-ca", "verify-full"] {
            let error = read(&format!("postgres://u@db/x?sslmode={mode}")).unwrap_err().to_string();
            assert!(error.contains(&format!("sslmode={mode} needs sslrootcert")), "{error}");
        }
        let error = read("postgres://u@db/x?sslmode=verify_full").unwrap_err().to_string();
        assert!(error.contains("\"verify_full\" is none of"), "{error}");
        let error = read("postgres://u@db/x?sslmode=require&sslrootcert=system").unwrap_err().to_string();
        assert!(error.contains("sslrootcert=system needs sslmode=verify-full"), "{error}");
        let error = read("postgres://u@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem").unwrap_err();
        assert!(error.to_string().contains("sslrootcert /nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn a_database_is_named_whatever_its_tls_keys_and_without_reading_its_ca_file() {
        assert_eq!(
            crate::address_without_password(
                "postgres://app:s3cret@db/fi?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
            )
            .as_deref(),
            Some("postgres://app@db:5432/fi")
        );
    }

    #[test]
    fn remote_connections_in_clear_or_to_an_unchecked_server_are_warned_of() {
        assert!(exposure(false, false, true).unwrap().contains("not encrypted"));
        assert!(exposure(false, true, false).unwrap().contains("not checked"));
        assert_eq!(exposure(false, true, true), None);
        assert_eq!(exposure(true, false, false), None);
    }

    #[test]
    fn only_loopback_hosts_and_sockets_are_local() {
        let local = |url: &str| is_local(&url.parse().unwrap());
        assert!(local("postgres://u@127.0.0.1/x"));
        assert!(local("postgres://u@localhost,[::1]/x"));
        assert!(local("host=/run/postgresql user=u"));
        assert!(local("host=db.internal hostaddr=127.0.0.1 user=u"));
        assert!(!local("postgres://u@db.internal/x"));
        assert!(!local("postgres://u@localhost,10.0.0.5/x"));
        assert!(!local("host=localhost hostaddr=10.0.0.5 user=u"));
    }
}
