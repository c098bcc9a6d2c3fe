//! `fileintel dev-cert`: a local CA and a server certificate for localhost, so clients that insist
//! on https (MSAL does) can be pointed at a local fileintel.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

#[derive(clap::Args)]
pub struct DevCertArgs {
    /// Folder to write ca.pem, server.pem and server-key.pem into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Extra names or addresses for the server certificate, besides localhost and 127.0.0.1.
    #[arg(long = "name")]
    names: Vec<String>,
}

pub fn run(args: DevCertArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.distinguished_name.push(DnType::CommonName, "fileintel development CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    names.extend(args.names);
    let mut server_params = CertificateParams::new(names)?;
    server_params.distinguished_name.push(DnType::CommonName, "localhost");
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server = server_params.signed_by(&server_key, &ca)?;

    write(&args.out.join("ca.pem"), &ca.pem(), false)?;
    write(&args.out.join("server.pem"), &format!("{}{}", server.pem(), ca.pem()), false)?;
    write(&args.out.join("server-key.pem"), &server_key.serialize_pem(), true)?;
    println!(
        "wrote {0}/ca.pem (trust this), {0}/server.pem and {0}/server-key.pem\nserve with: fileintel serve --tls-cert {0}/server.pem --tls-key {0}/server-key.pem",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
