//! A local CA and a server certificate for localhost (`fileintel dev-cert`), so clients that
//! insist on https (MSAL does) can be pointed at a local fileintel.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Why the certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error(transparent)]
    Certificate(#[from] rcgen::Error),
    #[error("{action} {}", path.display())]
    File {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Writes `ca.pem`, `server.pem` (the server's certificate, then the CA's) and `server-key.pem`
/// (readable by its owner only) into `out`, created if missing. The server certificate names
/// localhost, 127.0.0.1 and ::1, and `names` besides.
pub fn write_dev_certificates(out: &Path, names: Vec<String>) -> Result<(), DevCertError> {
    std::fs::create_dir_all(out).map_err(|source| DevCertError::File {
        action: "creating",
        path: out.into(),
        source,
    })?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.distinguished_name.push(DnType::CommonName, "fileintel development CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut all_names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    all_names.extend(names);
    let mut server_params = CertificateParams::new(all_names)?;
    server_params.distinguished_name.push(DnType::CommonName, "localhost");
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server = server_params.signed_by(&server_key, &ca)?;

    write(&out.join("ca.pem"), &ca.pem(), false)?;
    write(&out.join("server.pem"), &format!("{}{}", server.pem(), ca.pem()), false)?;
    write(&out.join("server-key.pem"), &server_key.serialize_pem(), true)?;
    Ok(())
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), DevCertError> {
    std::fs::write(path, text).map_err(|source| DevCertError::File { action: "writing", path: path.into(), source })?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
