//! Any bytes as a MdeCsv input, through the decoder the ingest paths use, drained to its end.
#![no_main]

mod telemetry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    telemetry::run(fileintel_telemetry::Format::MdeCsv, data, true);
});
