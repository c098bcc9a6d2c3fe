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

/// The image with `entry` appended as its certificate table, the security directory pointing
/// at it.
fn with_signature(image: &[u8], entry: &[u8]) -> Vec<u8> {
    let mut out = image.to_vec();
    out.resize(out.len().next_multiple_of(8), 0);
    let table = out.len();
    out.extend_from_slice(&(8 + entry.len() as u32).to_le_bytes());
    out.extend_from_slice(&0x0200u16.to_le_bytes()); // WIN_CERT_REVISION_2_0
    out.extend_from_slice(&2u16.to_le_bytes()); // WIN_CERT_TYPE_PKCS_SIGNED_DATA
    out.extend_from_slice(entry);
    out.resize(out.len().next_multiple_of(8), 0);
    let header = u32::from_le_bytes(image[0x3c..0x40].try_into().unwrap()) as usize;
    let optional = header + 24;
    let pe32_plus = u16::from_le_bytes([image[optional], image[optional + 1]]) == 0x20b;
    let security = optional + if pe32_plus { 112 } else { 96 } + 4 * 8;
    let size = (out.len() - table) as u32;
    out[security..security + 4].copy_from_slice(&(table as u32).to_le_bytes());
    out[security + 4..security + 8].copy_from_slice(&size.to_le_bytes());
    out
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let image = with_signature(template(), data);
    let analysis = common::analyzer().analyze(&image);
    assert_eq!(analysis.is_pe_file, Some(true), "the template stays a PE: {:?}", analysis.problems);
});
