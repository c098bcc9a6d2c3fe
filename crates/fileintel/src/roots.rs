//! Where Authenticode trust roots come from: `--trust-roots` paths (PEM bundles, DER
//! certificates, Microsoft certificate trust lists, or folders of them), by default the folder
//! `scripts/fetch-trust-roots.sh` fills with Microsoft's root program.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fileintel_analysis::{Analyzer, TrustStore};

#[derive(clap::Args, Clone, Debug)]
pub struct TrustArgs {
    /// Trust roots for Authenticode: PEM bundles, DER certificates, Microsoft certificate trust
    /// lists (authroot.stl) or folders of them; repeat the flag (or separate with ':') for
    /// several. Default: $XDG_DATA_HOME/fileintel/trust-roots (~/.local/share/...), which
    /// scripts/fetch-trust-roots.sh fills with Microsoft's root program.
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

/// Adds one file to the store, by what its bytes are; returns a line saying what it held.
fn add_file(store: &mut TrustStore, path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.first() == Some(&0x30) {
        if let Ok(entries) = store.add_trust_list(&bytes) {
            return Ok(format!("{}: a trust list of {entries} roots", path.display()));
        }
        store.add_der(&bytes).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        return Ok(format!("{}: one certificate", path.display()));
    }
    let (added, problems) = store.add_pem(&bytes);
    if added == 0 {
        anyhow::bail!("{}: no certificate or trust list ({})", path.display(), problems.join("; "));
    }
    for problem in problems {
        tracing::warn!(path = %path.display(), "trust roots: {problem}");
    }
    Ok(format!("{}: {added} certificates", path.display()))
}

/// Loads the roots named, or the default folder when none is; a path named that cannot be read
/// is an error, a default folder that does not exist leaves the store empty (signatures are then
/// read and checked but not verified against roots).
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
                .collect();
            files.sort();
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
                 run scripts/fetch-trust-roots.sh or pass --trust-roots"
            );
        } else {
            tracing::info!(roots = store.len(), sources = ?loaded, "Authenticode trust roots loaded");
        }
        Ok(Analyzer::new(store))
    }
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
