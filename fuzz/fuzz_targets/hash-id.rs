//! Any text as the `{id}` of a files route, through `FileHash::parse`.
#![no_main]

mod ids;

libfuzzer_sys::fuzz_target!(|data: &[u8]| ids::hash_id(data));
