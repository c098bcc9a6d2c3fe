//! The feed targets' check: a feed read whole and its statements made verdicts. Shared with
//! fileintel-feeds' tests/fuzz_regressions.rs, which replays the kept findings through it.

use fileintel_feeds::{Format, Source};

/// Every statement becomes a verdict or a rejection, never both and never neither.
pub fn run(format: Format, data: &[u8]) {
    let read = fileintel_feeds::read(format, data);
    let (statements, rejected) = (read.statements.len(), read.rejections.len());
    let source = Source::new("fuzz", 10);
    let (verdicts, rejections) = fileintel_feeds::verdicts(&source, read);
    assert_eq!(verdicts.len() + rejections.len(), statements + rejected);
}
