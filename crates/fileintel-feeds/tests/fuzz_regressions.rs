//! Replays every input kept in tests/fuzz-regressions/<target>/ (fuzz findings once fixed, and
//! interesting inputs) through the same checks the fuzz targets run (fuzz/fuzz_targets/feeds.rs),
//! so that the normal test suite keeps them fixed without a fuzzer. An empty folder fails: a
//! replay with nothing to replay would pass by having nothing to do.

#[path = "../../../fuzz/fuzz_targets/feeds.rs"]
mod feeds;

fn replay(target: &str, check: impl Fn(&[u8])) {
    fileintel_testing::replay(env!("CARGO_MANIFEST_DIR"), target, check);
}

#[test]
fn every_kept_stix_input_reads_into_verdicts_or_rejections() {
    replay("stix", |data| feeds::run(fileintel_feeds::Format::Stix, data));
}

#[test]
fn every_kept_misp_input_reads_into_verdicts_or_rejections() {
    replay("misp", |data| feeds::run(fileintel_feeds::Format::Misp, data));
}

#[test]
fn every_kept_feed_csv_input_reads_into_verdicts_or_rejections() {
    replay("feed-csv", |data| feeds::run(fileintel_feeds::Format::Csv, data));
}

#[test]
fn every_kept_bazaar_csv_input_reads_into_verdicts_or_rejections() {
    replay("bazaar-csv", |data| feeds::run(fileintel_feeds::Format::BazaarCsv, data));
}
