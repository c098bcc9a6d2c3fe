//! Replays every input kept in tests/fuzz-regressions/<target>/ (fuzz findings once fixed, and
//! interesting inputs) through the same checks the fuzz targets run (fuzz/fuzz_targets/telemetry.rs),
//! so that the normal test suite keeps them fixed without a fuzzer. An empty folder fails: a
//! replay with nothing to replay would pass by having nothing to do.

#[path = "../../../fuzz/fuzz_targets/telemetry.rs"]
mod telemetry;

fn replay(target: &str, check: impl Fn(&[u8])) {
    fileintel_testing::replay(env!("CARGO_MANIFEST_DIR"), target, check);
}

#[test]
fn every_kept_ndjson_input_reads_the_same_whole_or_in_pieces() {
    replay("ndjson", telemetry::ndjson);
}

#[test]
fn every_kept_event_log_reads_through_the_evtx_crate_alone_to_its_end() {
    replay("evtx-crate", telemetry::evtx_crate);
}

#[test]
fn every_kept_event_log_reads_through_the_direct_reader_to_its_end() {
    replay("evtx", |data| telemetry::run(fileintel_telemetry::Format::Evtx, data, false));
}

#[test]
fn every_kept_sysmon_json_input_reads_to_its_end_in_line_order() {
    replay("sysmon-json", |data| telemetry::run(fileintel_telemetry::Format::SysmonJson, data, true));
}

#[test]
fn every_kept_mde_csv_input_reads_to_its_end_in_line_order() {
    replay("mde-csv", |data| telemetry::run(fileintel_telemetry::Format::MdeCsv, data, true));
}

#[test]
fn every_kept_mde_json_input_reads_to_its_end() {
    replay("mde-json", |data| telemetry::run(fileintel_telemetry::Format::MdeJson, data, false));
}
