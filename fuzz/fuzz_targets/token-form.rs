//! Any bytes as the body of a token request (see server.rs).
#![no_main]

mod server;

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::token_form(data));
