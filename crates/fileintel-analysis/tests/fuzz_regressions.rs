//! Inputs the fuzzers (`scripts/fuzz.sh`) found, kept once fixed: each must analyse without a
//! panic. `fuzz-regressions/analyze/` holds whole files; `fuzz-regressions/signature/` holds
//! signatures: real ones (`seed-*`, see its README), which must still be read with their signer,
//! and findings. They are spliced into the same unsigned PE the `signature` target uses, from
//! the fetched test files; without those that half is skipped, and under CI it fails. A folder
//! with nothing to replay fails: a replay of nothing would pass whatever the analyzer did.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions").join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect())
        .unwrap_or_default();
    inputs.retain(|path| path.is_file() && path.file_name().is_some_and(|name| name != ".keep" && name != "README"));
    inputs.sort();
    assert!(!inputs.is_empty(), "nothing to replay for the {target} target");
    inputs
}

fn analyzer() -> fileintel_analysis::Analyzer {
    fileintel_analysis::Analyzer::default().at(1_767_225_600)
}

fn no_parser_failed(path: &Path, analysis: &fileintel_analysis::Analysis) {
    assert!(
        !analysis.problems.iter().any(|problem| problem.contains("failed on this file")),
        "{}: {:?}",
        path.display(),
        analysis.problems
    );
}

#[test]
fn whole_files_the_fuzzer_found_analyse_cleanly() {
    for path in inputs("analyze") {
        let bytes = std::fs::read(&path).unwrap();
        no_parser_failed(&path, &analyzer().analyze(&bytes));
    }
}

#[test]
fn signatures_the_fuzzer_found_analyse_cleanly() {
    let inputs = inputs("signature");
    assert!(
        inputs.iter().any(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("seed-"))),
        "the real signatures are missing"
    );
    let configured = std::env::var_os("FILEINTEL_ANALYSIS_TESTDATA").map(PathBuf::from);
    let testdata = configured
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/analysis-testdata"));
    let template_path = testdata.join("files/unsigned-versioninfo/electron-winstaller-5.4.4/Squirrel.com");
    let template = match std::fs::read(&template_path) {
        Ok(template) => template,
        Err(error) if configured.is_some() => panic!("{}: {error}", template_path.display()),
        Err(_) => {
            fileintel_testing::skip::<()>("run scripts/fetch-analysis-testdata.sh for the template PE");
            return;
        }
    };
    for path in inputs {
        let signature = std::fs::read(&path).unwrap();
        let image = fileintel_analysis::testing::with_certificate_table(&template, &[&signature]).unwrap();
        let analysis = analyzer().analyze(&image);
        no_parser_failed(&path, &analysis);
        assert_eq!(analysis.is_pe_file, Some(true), "{}: the template stays a PE", path.display());
        if path.file_name().unwrap().to_string_lossy().starts_with("seed-") {
            // A real signature is read as one: its signer named, and its digest, made for
            // another file, found not to match this one.
            let signature =
                analysis.signatures.first().unwrap_or_else(|| panic!("{}: no signature read", path.display()));
            assert!(signature.signer.as_deref().is_some_and(|signer| !signer.is_empty()), "{}", path.display());
            assert_eq!(signature.digest_matches, Some(false), "{}: {:?}", path.display(), signature.problems);
        }
    }
}
