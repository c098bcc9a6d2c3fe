//! Replays every input kept in tests/fuzz-regressions/<target>/ (fuzz findings once fixed, and
//! interesting inputs) through the same checks the fuzz targets run (fuzz/fuzz_targets/ids.rs),
//! so that the normal test suite keeps them fixed without a fuzzer. An empty folder fails: a
//! replay with nothing to replay would pass by having nothing to do.

#[path = "../../../fuzz/fuzz_targets/ids.rs"]
mod ids;

fn replay(target: &str, check: impl Fn(&[u8])) {
    fileintel_testing::replay(env!("CARGO_MANIFEST_DIR"), target, check);
}

#[test]
fn every_kept_hash_id_input_parses_only_from_its_length_and_prints_back() {
    replay("hash-id", ids::hash_id);
}
