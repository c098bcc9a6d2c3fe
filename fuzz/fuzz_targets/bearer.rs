//! Bearer tokens and `Authorization` headers against a fixed key ring (see server.rs).
#![no_main]

mod server;

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::bearer(data));
