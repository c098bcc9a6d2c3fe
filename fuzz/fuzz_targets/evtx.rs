//! Any bytes as an event log, through the decoder the ingest paths use: the direct reader for
//! the records it follows, the evtx crate for the rest. Seeded with real Sysmon logs.
#![no_main]

mod telemetry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    telemetry::run(fileintel_telemetry::Format::Evtx, data, false);
});
