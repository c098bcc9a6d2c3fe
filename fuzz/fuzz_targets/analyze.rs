//! Any bytes as a whole file. libFuzzer's panic hook aborts on a panic even inside the
//! analyzer's own guards, so a panic anywhere is a finding.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    std::hint::black_box(common::analyzer().analyze(data));
});
