//! Any bytes as the Authenticode signature (the one WIN_CERTIFICATE entry) of a real unsigned
//! PE image, named by `FILEINTEL_FUZZ_TEMPLATE`: the fuzzer works on the PKCS #7 directly
//! instead of finding its way to it through the PE headers.
#![no_main]

mod common;

use std::sync::OnceLock;

fn template() -> &'static [u8] {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let path = std::env::var_os("FILEINTEL_FUZZ_TEMPLATE").expect("FILEINTEL_FUZZ_TEMPLATE names an unsigned PE");
        std::fs::read(path).expect("reading FILEINTEL_FUZZ_TEMPLATE")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let image = fileintel_analysis::testing::with_certificate_table(template(), &[data]).expect("the template is a PE");
    let analysis = common::analyzer().analyze(&image);
    assert_eq!(analysis.is_pe_file, Some(true), "the template stays a PE: {:?}", analysis.problems);
});
