//! Any bytes as NDJSON observations, through the decoder the ingest paths use; and the same
//! bytes pushed to an `NdjsonReader` cut in two where the first byte says, which must read them
//! exactly as whole: however a request body arrives in pieces, it means the same.
#![no_main]

mod telemetry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| telemetry::ndjson(data));
