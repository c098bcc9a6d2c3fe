//! Any bytes as an event log, every record read by the evtx crate (the direct reader off): the
//! path records the direct reader does not follow take, fuzzed on its own.
#![no_main]

mod telemetry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| telemetry::evtx_crate(data));
