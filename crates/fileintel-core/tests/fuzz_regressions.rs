//! Replays every input kept in tests/fuzz-regressions/<target>/ (fuzz findings once fixed, and
//! interesting inputs) through the same checks the fuzz targets run (fuzz/fuzz_targets/ids.rs),
//! so that the normal test suite keeps them fixed without a fuzzer. An empty folder fails: a
//! replay with nothing to replay would pass by having nothing to do.

#[path = "../../../fuzz/fuzz_targets/ids.rs"]
mod ids;

use std::path::Path;

fn replay(target: &str, check: impl Fn(&[u8])) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions").join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.is_file())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} holds no input to replay", folder.display());
    for input in inputs {
        let data = std::fs::read(&input).expect("a kept input reads");
        // Named first, so that a failure says which input it was.
        eprintln!("replaying {}", input.display());
        check(&data);
    }
}

#[test]
fn every_kept_hash_id_input_parses_only_from_its_length_and_prints_back() {
    replay("hash-id", ids::hash_id);
}
