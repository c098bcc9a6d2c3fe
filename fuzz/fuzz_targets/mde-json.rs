//! Any bytes as a MdeJson input, through the decoder the ingest paths use, drained to its end. Not
//! checked for line order: a whole message over many lines is placed by its byte offset.
#![no_main]

mod telemetry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    telemetry::run(fileintel_telemetry::Format::MdeJson, data, false);
});
