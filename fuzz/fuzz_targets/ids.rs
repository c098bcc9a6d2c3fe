//! The fileintel-core target' checks, shared with fileintel-core's tests/fuzz_regressions.rs,
//! which replays the kept findings through them.

use fileintel_core::FileHash;

/// A hash parses only from its hex length, and what parses prints back as the same hash.
pub fn hash_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(hash) = FileHash::parse(text) {
        assert!(matches!(text.len(), 32 | 40 | 64), "{text:?} parsed");
        let printed = hash.to_string();
        assert!(printed.eq_ignore_ascii_case(text), "{text:?} printed as {printed:?}");
        assert_eq!(FileHash::parse(&printed).ok(), Some(hash));
    }
}
