//! Helpers for tests and fuzz targets, not for production use.

/// A PE image with its certificate table replaced by these entries (each PKCS #7 DER, written
/// as `WIN_CERTIFICATE`s of revision 2 and type PKCS_SIGNED_DATA), as a signing tool would write
/// them: the old table (at the end of the image, where signing tools put it) is cut off, the new
/// one appended at an 8-byte boundary, and the security directory pointed at it. The
/// Authenticode digest covers neither, so signatures of the image still match. `None` when the
/// headers do not leave room for the security directory.
pub fn with_certificate_table(image: &[u8], entries: &[&[u8]]) -> Option<Vec<u8>> {
    let word = |at: usize| image.get(at..at + 4).map(|bytes| u32::from_le_bytes(bytes.try_into().unwrap()) as usize);
    let optional = word(0x3c)? + 24;
    let magic = image.get(optional..optional + 2)?;
    let security = optional + if magic == [0x0b, 0x02] { 112 } else { 96 } + 4 * 8;
    let old_table = word(security)?;
    word(security + 4)?;
    let mut out =
        image.get(..if old_table == 0 || old_table > image.len() { image.len() } else { old_table })?.to_vec();
    out.resize(out.len().next_multiple_of(8), 0);
    let table = out.len();
    for entry in entries {
        out.extend_from_slice(&u32::try_from(8 + entry.len()).ok()?.to_le_bytes());
        out.extend_from_slice(&0x0200u16.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(entry);
        out.resize(out.len().next_multiple_of(8), 0);
    }
    let size = u32::try_from(out.len() - table).ok()?;
    out[security..security + 4].copy_from_slice(&u32::try_from(table).ok()?.to_le_bytes());
    out[security + 4..security + 8].copy_from_slice(&size.to_le_bytes());
    Some(out)
}
