//! What a file is, from its own bytes: its hashes (MD5, SHA-1 and SHA-256 in one pass), its
//! type by magic, and for Portable Executables the machine, the subsystem, whether it is a .NET
//! assembly, whether it carries an Authenticode certificate table, and the publisher and product
//! of its version information.
//!
//! Pure: it maps bytes to an [`Analysis`], never panics on any input, and reports what it could
//! not read as `problems` next to what it could.
//!
//! ```
//! let analysis = fileintel_analysis::analyze(b"#!/bin/sh\necho hi\n");
//! assert_eq!(analysis.file_type.as_deref(), Some("Script"));
//! assert_eq!(analysis.is_pe_file, Some(false));
//! assert_eq!(analysis.hashes.sha1.unwrap().to_string(), "b2b62c101a156f5f12dd7197cf7ae9424164b115");
//! ```

mod digest;
mod kind;
mod pe;

pub use digest::{Digests, digest};
pub use kind::{FileKind, kind_of};
pub use pe::{PeFacts, VersionStrings};

use fileintel_core::{FileFacts, FileHashes};

/// What static analysis found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub hashes: FileHashes,
    pub size: u64,
    /// The type by magic (see [`FileKind`]); `None` when nothing is recognised.
    pub file_type: Option<String>,
    pub is_pe_file: Option<bool>,
    /// For a Portable Executable: what its headers and resources say.
    pub pe: Option<PeFacts>,
    /// What could not be read, and why.
    pub problems: Vec<String>,
}

impl Analysis {
    /// The profile fields the analysis answers.
    pub fn facts(&self) -> FileFacts {
        let version = self.pe.as_ref().and_then(|pe| pe.version.as_ref());
        FileFacts {
            file_type: self.file_type.clone(),
            is_pe_file: self.is_pe_file,
            file_publisher: version.and_then(|version| version.company.clone()),
            file_product_name: version.and_then(|version| version.product.clone()),
            ..FileFacts::default()
        }
    }
}

/// Analyses a whole file held in memory (or mapped).
pub fn analyze(bytes: &[u8]) -> Analysis {
    let digests = digest(bytes);
    let kind = kind_of(bytes);
    let mut analysis = Analysis {
        hashes: digests.hashes(),
        size: bytes.len() as u64,
        file_type: kind.map(|kind| kind.name().to_owned()),
        is_pe_file: Some(kind == Some(FileKind::PortableExecutable)),
        ..Analysis::default()
    };
    if kind == Some(FileKind::PortableExecutable) {
        let (facts, problems) = pe::read(bytes);
        analysis.pe = facts;
        analysis.problems.extend(problems);
        if analysis.pe.is_none() {
            // "MZ" and a PE signature, but headers that do not hold together.
            analysis.is_pe_file = Some(false);
            analysis.file_type = Some(FileKind::DosExecutable.name().to_owned());
        }
    }
    analysis
}
