//! A file's type by its magic bytes: cheap checks of the first bytes, nothing parsed.

/// The types fileintel names, as `fileType` shows them. `PortableExecutable` is MDE's own name;
/// the rest follow the formats' usual names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A Windows PE image: EXE, DLL, SYS, EFI, .NET assemblies, 32 and 64 bit.
    PortableExecutable,
    /// `MZ` without a valid PE header behind it: an MS-DOS program, or a damaged PE.
    DosExecutable,
    Elf,
    MachO,
    Zip,
    Gzip,
    SevenZip,
    Rar,
    Cab,
    /// OLE compound file: legacy Office documents, MSI packages.
    OleCompoundFile,
    Pdf,
    /// A text file starting with `#!`.
    Script,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::PortableExecutable => "PortableExecutable",
            FileKind::DosExecutable => "DosExecutable",
            FileKind::Elf => "ELF",
            FileKind::MachO => "MachO",
            FileKind::Zip => "Zip",
            FileKind::Gzip => "Gzip",
            FileKind::SevenZip => "7z",
            FileKind::Rar => "RAR",
            FileKind::Cab => "Cab",
            FileKind::OleCompoundFile => "OleCompoundFile",
            FileKind::Pdf => "PDF",
            FileKind::Script => "Script",
        }
    }
}

/// The kind the first bytes show, if any.
pub fn kind_of(bytes: &[u8]) -> Option<FileKind> {
    if bytes.starts_with(b"MZ") {
        return Some(if has_pe_signature(bytes) { FileKind::PortableExecutable } else { FileKind::DosExecutable });
    }
    let magic: [(&[u8], FileKind); 12] = [
        (b"\x7fELF", FileKind::Elf),
        (b"\xfe\xed\xfa\xce", FileKind::MachO),
        (b"\xfe\xed\xfa\xcf", FileKind::MachO),
        (b"\xce\xfa\xed\xfe", FileKind::MachO),
        (b"\xcf\xfa\xed\xfe", FileKind::MachO),
        (b"PK\x03\x04", FileKind::Zip),
        (b"\x1f\x8b", FileKind::Gzip),
        (b"7z\xbc\xaf\x27\x1c", FileKind::SevenZip),
        (b"Rar!\x1a\x07", FileKind::Rar),
        (b"MSCF\0\0\0\0", FileKind::Cab),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", FileKind::OleCompoundFile),
        (b"%PDF-", FileKind::Pdf),
    ];
    if let Some((_, kind)) = magic.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return Some(*kind);
    }
    // Universal (fat) Mach-O binaries share their magic with Java class files; a fat header
    // holds few architectures, a class file a version number of 45 or more.
    if bytes.starts_with(b"\xca\xfe\xba\xbe")
        && bytes.get(4..8).is_some_and(|count| count[..3] == [0, 0, 0] && count[3] < 20)
    {
        return Some(FileKind::MachO);
    }
    if bytes.starts_with(b"#!") {
        return Some(FileKind::Script);
    }
    None
}

/// Whether `e_lfanew` points at a `PE\0\0` signature inside the file.
fn has_pe_signature(bytes: &[u8]) -> bool {
    let Some(offset) = bytes.get(0x3c..0x40).map(|field| u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
    else {
        return false;
    };
    let offset = offset as usize;
    offset.checked_add(4).and_then(|end| bytes.get(offset..end)) == Some(b"PE\0\0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_names_the_kind() {
        assert_eq!(kind_of(b"\x7fELF\x02\x01\x01"), Some(FileKind::Elf));
        assert_eq!(kind_of(b"PK\x03\x04rest"), Some(FileKind::Zip));
        assert_eq!(kind_of(b"%PDF-1.7"), Some(FileKind::Pdf));
        assert_eq!(kind_of(b"#!/usr/bin/env python3\n"), Some(FileKind::Script));
        assert_eq!(kind_of(b"\xca\xfe\xba\xbe\x00\x00\x00\x02"), Some(FileKind::MachO));
        assert_eq!(kind_of(b"\xca\xfe\xba\xbe\x00\x00\x00\x34"), None, "a Java class file");
        assert_eq!(kind_of(b"hello"), None);
        assert_eq!(kind_of(b""), None);
    }

    #[test]
    fn mz_is_a_pe_only_with_a_pe_signature_where_e_lfanew_points() {
        let mut image = vec![0u8; 0x100];
        image[..2].copy_from_slice(b"MZ");
        image[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        assert_eq!(kind_of(&image), Some(FileKind::DosExecutable));
        image[0x80..0x84].copy_from_slice(b"PE\0\0");
        assert_eq!(kind_of(&image), Some(FileKind::PortableExecutable));
        image[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(kind_of(&image), Some(FileKind::DosExecutable), "e_lfanew past the end");
        assert_eq!(kind_of(b"MZ"), Some(FileKind::DosExecutable));
    }
}
