//! `fileintel dev-cert`: a local CA and a server certificate for localhost, so clients that insist
//! on https (MSAL does) can be pointed at a local fileintel ([`fileintel_server::devcert`]).

use std::path::PathBuf;
use std::process::ExitCode;

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
    fileintel_server::devcert::write_dev_certificates(&args.out, args.names)?;
    println!(
        "wrote {0}/ca.pem (trust this), {0}/server.pem and {0}/server-key.pem\nserve with: fileintel serve --tls-cert {0}/server.pem --tls-key {0}/server-key.pem",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
