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

mod asn1;
mod authenticode;
mod chain;
mod digest;
mod kind;
mod pe;
pub mod roots;
#[doc(hidden)]
pub mod testing;
mod trust;
mod version;

pub use authenticode::{SignatureFacts, TimestampFacts};
pub use digest::{Digests, digest};
pub use kind::{FileKind, kind_of};
pub use pe::{PeFacts, VersionStrings};
pub use trust::{RootPolicy, TrustStore};

use fileintel_core::{FileFacts, FileHashes};

/// What static analysis found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub hashes: FileHashes,
    pub size: u64,
    /// The type by magic (see [`FileKind`]); `None` when nothing is recognised.
    pub file_type: Option<String>,
    pub is_pe_file: Option<bool>,
    /// For a Portable Executable: what its headers and resources say.
    pub pe: Option<PeFacts>,
    /// Its Authenticode signatures, the primary (first) one first, nested ones after their parent.
    pub signatures: Vec<SignatureFacts>,
    /// What could not be read, and why.
    pub problems: Vec<String>,
}

impl Analysis {
    /// The profile fields the analysis answers.
    pub fn facts(&self) -> FileFacts {
        let version = self.pe.as_ref().and_then(|pe| pe.version.as_ref());
        let primary = self.signatures.first();
        FileFacts {
            file_type: self.file_type.clone(),
            is_pe_file: self.is_pe_file,
            file_publisher: version.and_then(|version| version.company.clone()),
            file_product_name: version.and_then(|version| version.product.clone()),
            signer: primary.and_then(|signature| signature.signer.clone()),
            issuer: primary.and_then(|signature| signature.issuer.clone()),
            signer_hash: primary
                .and_then(|signature| signature.signer_hash.as_deref())
                .and_then(|hash| fileintel_core::Sha1::parse(hash).ok()),
            is_valid_certificate: primary.and_then(|signature| signature.verified),
            ..FileFacts::default()
        }
    }
}

/// Runs a reader of hostile input so that, should it panic, the file gets a problem instead.
fn guarded<T: Default>(read: impl FnOnce() -> (T, Vec<String>)) -> (T, Vec<String>) {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
        .unwrap_or_else(|_| (T::default(), vec!["a parser failed on this file".to_owned()]))
}

/// Analyses files against a set of trust roots, at the time of analysis or a time fixed.
#[derive(Debug, Clone, Default)]
pub struct Analyzer {
    trust: std::sync::Arc<TrustStore>,
    at: Option<i64>,
}

impl Analyzer {
    pub fn new(trust: TrustStore) -> Self {
        Self { trust: std::sync::Arc::new(trust), at: None }
    }

    /// Verifies signatures without a timestamp as of `unix_seconds` instead of now.
    pub fn at(mut self, unix_seconds: i64) -> Self {
        self.at = Some(unix_seconds);
        self
    }

    /// Analyses a whole file held in memory (or mapped).
    pub fn analyze(&self, bytes: &[u8]) -> Analysis {
        self.analyze_hashed(bytes, digest(bytes).hashes())
    }

    /// Analyses a file whose hashes were computed already (as its bytes streamed in).
    pub fn analyze_hashed(&self, bytes: &[u8], hashes: FileHashes) -> Analysis {
        let kind = kind_of(bytes);
        let mut analysis = Analysis {
            hashes,
            size: bytes.len() as u64,
            file_type: kind.map(|kind| kind.name().to_owned()),
            is_pe_file: Some(kind == Some(FileKind::PortableExecutable)),
            ..Analysis::default()
        };
        if kind == Some(FileKind::PortableExecutable) {
            // The headers are parsed once, for the PE facts and the signatures alike.
            match object::FileKind::parse(bytes) {
                Ok(object::FileKind::Pe32) => self.pe_image::<object::pe::ImageNtHeaders32>(bytes, &mut analysis),
                Ok(object::FileKind::Pe64) => self.pe_image::<object::pe::ImageNtHeaders64>(bytes, &mut analysis),
                Ok(other) => analysis.problems.push(format!("PE headers: read as {other:?}")),
                Err(error) => analysis.problems.push(format!("PE headers: {error}")),
            }
            if analysis.pe.is_none() {
                // "MZ" and a PE signature, but headers that do not hold together.
                analysis.is_pe_file = Some(false);
                analysis.file_type = Some(FileKind::DosExecutable.name().to_owned());
            }
        }
        analysis
    }
}

impl Analyzer {
    /// The PE facts and signatures of an image whose headers say it is `Pe`.
    fn pe_image<Pe: object::read::pe::ImageNtHeaders>(&self, bytes: &[u8], analysis: &mut Analysis) {
        let file = match object::read::pe::PeFile::<Pe>::parse(bytes) {
            Ok(file) => file,
            Err(error) => return analysis.problems.push(format!("PE headers: {error}")),
        };
        let (facts, problems) = pe::facts_of(&file, bytes);
        analysis.problems.extend(problems);
        if facts.has_certificate_table {
            let now = self.at.unwrap_or_else(|| fileintel_core::Timestamp::now().unix_seconds());
            let verification = authenticode::Verification { trust: &self.trust, now };
            let (signatures, problems) = guarded(|| authenticode::signatures(&file, &verification));
            analysis.signatures = signatures;
            analysis.problems.extend(problems);
        }
        analysis.pe = Some(facts);
    }
}

/// Analyses a whole file held in memory (or mapped), with no trust roots: signatures are read
/// and their digests and signer signatures checked, but `verified` stays `None`.
pub fn analyze(bytes: &[u8]) -> Analysis {
    Analyzer::default().analyze(bytes)
}
