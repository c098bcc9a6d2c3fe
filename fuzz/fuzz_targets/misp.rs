//! Any bytes as a Misp feed, read whole and made verdicts as a feed import does.
#![no_main]

mod feeds;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    feeds::run(fileintel_feeds::Format::Misp, data);
});
