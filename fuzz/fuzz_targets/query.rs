//! Any text as a request's query string (see server.rs).
#![no_main]

mod server;

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::query(data));
