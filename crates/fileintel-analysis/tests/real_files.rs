//! The analyzer on real files from the package registries (fetched by
//! `scripts/fetch-analysis-testdata.sh`: Windows wheels from PyPI, npm packages that ship Windows
//! binaries, Debian's signed EFI images, Wine and MinGW builds), against what pefile and hashlib
//! read from the same files through `scripts/analysis-reference.py`.
//!
//! Needs the fetched files (`FILEINTEL_ANALYSIS_TESTDATA`, default `target/analysis-testdata`)
//! and `FILEINTEL_E2E_PYTHON` (a Python with pefile); `.ci/run` provides both.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn testdata() -> Option<PathBuf> {
    let (dir, required) = match std::env::var_os("FILEINTEL_ANALYSIS_TESTDATA") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/analysis-testdata"), false),
    };
    if dir.join("files").is_dir() {
        return Some(dir);
    }
    assert!(
        !required,
        "FILEINTEL_ANALYSIS_TESTDATA={} holds no files/: run scripts/fetch-analysis-testdata.sh",
        dir.display()
    );
    eprintln!("skipped: run scripts/fetch-analysis-testdata.sh to fetch the real files");
    None
}

/// The common name of an RFC 4514 name as signify prints it (`CN=Microsoft Corporation, O=...`).
fn common_name(name: &str) -> String {
    name.split(", ").find_map(|part| part.strip_prefix("CN=")).unwrap_or_default().to_owned()
}

fn subsystem_number(name: &str) -> Option<u64> {
    let names = [
        (1, "Native"),
        (2, "WindowsGui"),
        (3, "WindowsCui"),
        (10, "EfiApplication"),
        (11, "EfiBootServiceDriver"),
        (12, "EfiRuntimeDriver"),
        (16, "WindowsBootApplication"),
    ];
    names.iter().find(|(_, known)| *known == name).map(|(number, _)| *number).or_else(|| name.parse().ok())
}

/// The version strings pefile lists, taken by fileintel's rule: US English, then
/// language-neutral, then the first listed.
fn expected_version(pe: &Value) -> Option<(Option<String>, Option<String>)> {
    let tables = pe["versioninfo"].as_array()?;
    let chosen = tables
        .iter()
        .find(|table| table["lang"].as_str().is_some_and(|lang| lang.eq_ignore_ascii_case("0409")))
        .or_else(|| tables.iter().find(|table| table["lang"] == "0000"))
        .or_else(|| tables.first())?;
    let text = |key: &str| {
        chosen[key]
            .as_str()
            .map(|value| value.trim_end_matches('\0').trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    Some((text("CompanyName"), text("ProductName")))
}

#[test]
fn real_files_read_as_pefile_reads_them() {
    let Some(dir) = testdata() else { return };
    let Ok(python) = std::env::var("FILEINTEL_E2E_PYTHON") else {
        eprintln!("skipped: set FILEINTEL_E2E_PYTHON to a Python with pefile");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/analysis-reference.py");
    let output = Command::new(python).arg(script).arg(&dir).output().expect("running the reference");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for line in output.stdout.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
        let reference: Value = serde_json::from_slice(line).unwrap();
        let Some(path) = reference["path"].as_str() else { continue };
        let bytes = std::fs::read(dir.join("files").join(path)).unwrap();
        let analysis = fileintel_analysis::analyze(&bytes);
        for (ours, theirs) in [
            (analysis.hashes.md5.map(|hash| hash.to_string()), &reference["md5"]),
            (analysis.hashes.sha1.map(|hash| hash.to_string()), &reference["sha1"]),
            (analysis.hashes.sha256.map(|hash| hash.to_string()), &reference["sha256"]),
        ] {
            assert_eq!(ours.as_deref(), theirs.as_str(), "{path}");
        }
        assert_eq!(analysis.size, reference["size"].as_u64().unwrap(), "{path}");
        let pe = &reference["pe"];
        let is_pe = pe["is_pe"].as_bool() == Some(true);
        assert_eq!(analysis.is_pe_file, Some(is_pe), "{path}: {:?}", analysis.problems);
        *checked.entry(reference["category"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        if !is_pe {
            assert!(analysis.pe.is_none(), "{path}");
            continue;
        }
        assert_eq!(analysis.file_type.as_deref(), Some("PortableExecutable"), "{path}");
        let facts = analysis.pe.as_ref().unwrap();
        assert_eq!(facts.bits == 64, pe["pe32plus"].as_bool() == Some(true), "{path}: bits");
        assert_eq!(subsystem_number(&facts.subsystem), pe["subsystem"].as_u64(), "{path}: subsystem");
        assert_eq!(facts.is_dll, pe["is_dll"].as_bool() == Some(true), "{path}: DLL");
        assert_eq!(facts.is_dotnet, pe["clr_header"].as_bool() == Some(true), "{path}: .NET");
        let certificates = pe["wincert"].as_array().map_or(0, Vec::len);
        assert_eq!(facts.has_certificate_table, certificates > 0, "{path}: certificate table");
        let ours = facts.version.as_ref().map(|version| (version.company.clone(), version.product.clone()));
        assert_eq!(ours, expected_version(pe), "{path}: version strings");
        let facts = analysis.facts();
        assert_eq!(facts.file_publisher, ours.as_ref().and_then(|(company, _)| company.clone()));

        // Every signature, nested ones included, as signify lists them: signer and issuer common
        // names, the signing certificate's SHA-1 thumbprint, and the digest algorithm.
        let theirs: Vec<(String, String, String, String)> = reference["signify"]["signatures"]
            .as_array()
            .map(|signatures| {
                signatures
                    .iter()
                    .map(|signature| {
                        let field = |key: &str| signature[key].as_str().unwrap_or_default().to_owned();
                        (
                            field("thumbprint_sha1"),
                            common_name(&field("subject")),
                            common_name(&field("issuer")),
                            field("digest"),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ours: Vec<(String, String, String, String)> = analysis
            .signatures
            .iter()
            .map(|signature| {
                (
                    signature.signer_hash.clone().unwrap_or_default(),
                    signature.signer.clone().unwrap_or_default(),
                    signature.issuer.clone().unwrap_or_default(),
                    signature.digest_algorithm.to_lowercase(),
                )
            })
            .collect();
        assert_eq!(ours, theirs, "{path}: signatures");
        assert!(analysis.signatures.iter().all(|signature| signature.digest_matches == Some(true)), "{path}");
        // signify's "verify" includes the signer's signature (with the chain and the timestamp).
        assert!(
            analysis.signatures.iter().all(|signature| signature.signer_signature_valid == Some(true)),
            "{path}: every real signature's signer signature holds"
        );
        if let Some(primary) = analysis.signatures.first() {
            assert_eq!(facts.signer, primary.signer);
            assert_eq!(facts.signer_hash.map(|hash| hash.to_string()), primary.signer_hash);
        }
        *checked.entry(format!("{} signatures", theirs.len())).or_default() += usize::from(!theirs.is_empty());
    }
    // Every kind the issue names is among them.
    for category in
        ["dotnet", "efi", "multilang-versioninfo", "unsigned-versioninfo", "not-pe", "ms-signed-valid", "multi-wincert"]
    {
        assert!(checked.get(category).is_some_and(|count| *count > 0), "no {category} file in {checked:?}");
    }
}

#[test]
fn a_signed_file_with_one_byte_changed_is_not_valid() {
    let Some(dir) = testdata() else { return };
    let file = dir.join("files/nested-sha1-sha256/msvc_runtime-14.23.27820/vcruntime140.dll");
    let mut bytes = std::fs::read(&file).unwrap();
    let signed = fileintel_analysis::analyze(&bytes);
    assert_eq!(signed.signatures.len(), 2);
    assert!(signed.signatures.iter().all(|signature| signature.digest_matches == Some(true)));
    // A byte of code, inside the hashed part of the image.
    let middle = bytes.len() / 4;
    bytes[middle] ^= 0x5a;
    let tampered = fileintel_analysis::analyze(&bytes);
    assert_eq!(tampered.signatures.len(), 2, "the signatures still read");
    assert!(tampered.signatures.iter().all(|signature| signature.digest_matches == Some(false)));
    assert_eq!(tampered.facts().is_valid_certificate, Some(false));
    assert_eq!(tampered.facts().signer, signed.facts().signer, "the claimed signer is still reported");
}

#[test]
fn a_changed_byte_in_the_signer_signature_breaks_only_that() {
    let Some(dir) = testdata() else { return };
    let file = dir.join("files/thirdparty-signed-valid/tbb-2023.2.0/tbb12.dll");
    let mut bytes = std::fs::read(&file).unwrap();
    // The signer's signature (its encryptedDigest), found in the file by its bytes.
    let pe = object::read::pe::PeFile64::parse(&bytes[..]).unwrap();
    let certificate = authenticode::AttributeCertificateIterator::new(&pe).unwrap().unwrap().next().unwrap().unwrap();
    let signature = certificate.get_authenticode_signature().unwrap().signature().to_vec();
    let at = bytes.windows(signature.len()).position(|window| window == signature).unwrap();
    bytes[at + signature.len() / 2] ^= 1;
    let analysis = fileintel_analysis::analyze(&bytes);
    let primary = &analysis.signatures[0];
    assert_eq!(primary.digest_matches, Some(true), "the image itself is unchanged");
    assert_eq!(primary.signer_signature_valid, Some(false));
    assert_eq!(primary.signer.as_deref(), Some("Intel Corporation"));
    assert_eq!(analysis.facts().is_valid_certificate, Some(false));
}

#[test]
fn one_changed_byte_changes_every_digest_and_nothing_panics_on_cut_files() {
    let Some(dir) = testdata() else { return };
    let file = dir.join("files/multilang-versioninfo/libwine/kernel32.dll");
    let bytes = std::fs::read(&file).unwrap();
    let whole = fileintel_analysis::analyze(&bytes);
    let mut changed = bytes.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 1;
    let other = fileintel_analysis::analyze(&changed);
    assert_ne!(other.hashes.sha1, whole.hashes.sha1);
    assert_ne!(other.hashes.sha256, whole.hashes.sha256);
    assert_ne!(other.hashes.md5, whole.hashes.md5);
    // Cut anywhere, a file (signed or not) still yields a profile (and problems), never a panic.
    let signed = std::fs::read(dir.join("files/nested-sha1-sha256/msvc_runtime-14.23.27820/vcruntime140.dll")).unwrap();
    for bytes in [&bytes, &signed] {
        let length = bytes.len();
        for cut in [2, 64, 0x40, 0x100, 0x400, 0x1000, length / 3, length - 2000, length - 10, length - 1] {
            let analysis = fileintel_analysis::analyze(&bytes[..cut]);
            assert_eq!(analysis.size, cut as u64);
        }
    }
}
