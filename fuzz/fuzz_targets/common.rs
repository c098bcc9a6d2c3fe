//! What both targets share: the analyzer, with Microsoft's root program when
//! `FILEINTEL_FUZZ_ROOTS` names the folder scripts/fetch-trust-roots.sh fills, at a fixed time.

use std::sync::OnceLock;

use fileintel_analysis::{Analyzer, TrustStore};

pub fn analyzer() -> &'static Analyzer {
    static ANALYZER: OnceLock<Analyzer> = OnceLock::new();
    ANALYZER.get_or_init(|| {
        let mut store = TrustStore::new();
        if let Some(dir) = std::env::var_os("FILEINTEL_FUZZ_ROOTS").map(std::path::PathBuf::from) {
            let pem = std::fs::read(dir.join("cacert.pem")).expect("FILEINTEL_FUZZ_ROOTS/cacert.pem");
            store.add_pem(&pem);
            let list = std::fs::read(dir.join("authroot.stl")).expect("FILEINTEL_FUZZ_ROOTS/authroot.stl");
            store.add_trust_list(&list).expect("the trust list reads");
        }
        // 2026-01-01: fixed, so that a finding replays the same way on any day.
        Analyzer::new(store).at(1_767_225_600)
    })
}
