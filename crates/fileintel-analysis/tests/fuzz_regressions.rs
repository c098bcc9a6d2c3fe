//! Inputs the fuzzers (`scripts/fuzz.sh`) found, kept once fixed: each must analyse without a
//! panic. `fuzz-regressions/analyze/` holds whole files; `fuzz-regressions/signature/` holds
//! signatures, spliced into the same unsigned PE the `signature` target uses (which needs the
//! fetched test files; without them that half is skipped).

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions").join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect())
        .unwrap_or_default();
    inputs.retain(|path| path.is_file() && path.file_name().is_some_and(|name| name != ".keep"));
    inputs.sort();
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
    if inputs.is_empty() {
        return;
    }
    let testdata = std::env::var_os("FILEINTEL_ANALYSIS_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/analysis-testdata"));
    let Ok(template) =
        std::fs::read(testdata.join("files/unsigned-versioninfo/electron-winstaller-5.4.4/Squirrel.com"))
    else {
        eprintln!("skipped: run scripts/fetch-analysis-testdata.sh for the template PE");
        return;
    };
    for path in inputs {
        let signature = std::fs::read(&path).unwrap();
        let image = fileintel_analysis::testing::with_certificate_table(&template, &[&signature]).unwrap();
        let analysis = analyzer().analyze(&image);
        no_parser_failed(&path, &analysis);
    }
}
