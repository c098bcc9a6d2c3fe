//! Replays every input kept in tests/fuzz-regressions/<target>/ (fuzz findings once fixed, and
//! interesting inputs) through the same checks the fuzz targets run (fuzz/fuzz_targets/server.rs),
//! so that the normal test suite keeps them fixed without a fuzzer. An empty folder fails: a
//! replay with nothing to replay would pass by having nothing to do.

#[path = "../../../fuzz/fuzz_targets/server.rs"]
mod server;

fn replay(target: &str, check: impl Fn(&[u8])) {
    fileintel_testing::replay(env!("CARGO_MANIFEST_DIR"), target, check);
}

#[test]
fn every_kept_bearer_input_is_refused_or_accepted_without_panicking() {
    replay("bearer", server::bearer);
}

#[test]
fn every_kept_query_string_gives_a_window_within_range_or_a_refusal() {
    replay("query", server::query);
}

#[test]
fn every_kept_token_form_reads_or_is_refused() {
    replay("token-form", server::token_form);
}
