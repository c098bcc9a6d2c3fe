//! Portable Executable facts through `object`, which reads 32- and 64-bit images from a byte
//! slice through unaligned little-endian types, checking every offset it follows, and the
//! version resource through fileintel's own reader (`version.rs`).
//!
//! pelite did this before; the fuzzer found it misaligning section headers (undefined behaviour)
//! and panicking on version resources, so it went.

use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile, ResourceDirectoryEntryData, ResourceNameOrId};

use crate::version;

/// What a PE's headers and version resource say.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeFacts {
    /// `x86`, `x64`, `ARM64`, `ARM`, ... or the machine number in hex.
    pub machine: String,
    pub bits: u8,
    /// `WindowsGui`, `WindowsCui`, `Native`, `EfiApplication`, ... or the number.
    pub subsystem: String,
    pub is_dll: bool,
    /// Whether it is a .NET assembly (it has a CLR header).
    pub is_dotnet: bool,
    /// Whether it carries a certificate table (an Authenticode signature, checked or not).
    pub has_certificate_table: bool,
    pub version: Option<VersionStrings>,
}

/// The strings of one language of the version resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionStrings {
    /// The language id the strings were taken from (0x0409 is US English).
    pub language: u16,
    pub company: Option<String>,
    pub product: Option<String>,
    /// Every language the resource has strings in, in order.
    pub languages: Vec<u16>,
}

const US_ENGLISH: u16 = 0x0409;
const NEUTRAL: u16 = 0x0000;

fn machine_name(machine: u16) -> String {
    match machine {
        0x014c => "x86".into(),
        0x8664 => "x64".into(),
        0xaa64 => "ARM64".into(),
        0x01c0 | 0x01c4 => "ARM".into(),
        0x0200 => "IA64".into(),
        0x5064 => "RISCV64".into(),
        0xebc => "EBC".into(),
        other => format!("0x{other:04x}"),
    }
}

fn subsystem_name(subsystem: u16) -> String {
    match subsystem {
        1 => "Native".into(),
        2 => "WindowsGui".into(),
        3 => "WindowsCui".into(),
        9 => "WindowsCeGui".into(),
        10 => "EfiApplication".into(),
        11 => "EfiBootServiceDriver".into(),
        12 => "EfiRuntimeDriver".into(),
        13 => "EfiRom".into(),
        14 => "Xbox".into(),
        16 => "WindowsBootApplication".into(),
        other => other.to_string(),
    }
}

/// The version strings of an image's resources. A file can carry its version resource in several
/// languages (Wine's DLLs carry 36), each with its own string tables: the resource is chosen by
/// language first (US English, then language-neutral, then the first listed), with the same
/// preference as the string table inside it.
fn version_of<Pe: ImageNtHeaders>(file: &PeFile<'_, Pe>, bytes: &[u8]) -> Result<Option<VersionStrings>, String> {
    let sections = file.section_table();
    let Some(directory) =
        file.data_directories().resource_directory(bytes, &sections).map_err(|error| format!("resources: {error}"))?
    else {
        return Ok(None);
    };
    let root = directory.root().map_err(|error| format!("resources: {error}"))?;
    let Some(versions) =
        root.entries.iter().find(|entry| matches!(entry.name_or_id(), ResourceNameOrId::Id(pe::RT_VERSION)))
    else {
        return Ok(None);
    };
    let table = |entry: &pe::ImageResourceDirectoryEntry| match entry.data(directory) {
        Ok(ResourceDirectoryEntryData::Table(table)) => Ok(table),
        Ok(ResourceDirectoryEntryData::Data(_)) => {
            Err("version information: a data entry where a table belongs".to_owned())
        }
        Err(error) => Err(format!("version information: {error}")),
    };
    let names = table(versions)?;
    let Some(first) = names.entries.first() else { return Ok(None) };
    let languages = table(first)?;
    // Per language of the resource: its id, and its bytes.
    let mut entries: Vec<(u16, &[u8])> = Vec::new();
    for entry in languages.entries {
        let ResourceNameOrId::Id(id) = entry.name_or_id() else { continue };
        let Ok(ResourceDirectoryEntryData::Data(data)) = entry.data(directory) else { continue };
        let size = data.size.get(LE) as usize;
        let Some(bytes) = sections.pe_data_at(bytes, data.offset_to_data.get(LE)) else { continue };
        entries.push((id, &bytes[..size.min(bytes.len())]));
    }
    let chosen = entries
        .iter()
        .find(|(id, _)| *id == US_ENGLISH)
        .or_else(|| entries.iter().find(|(id, _)| *id == NEUTRAL))
        .or_else(|| entries.first());
    let Some((_, resource)) = chosen else { return Ok(None) };
    let info = version::read(resource);
    let Some(table) = info.preferred(&[US_ENGLISH, NEUTRAL]) else { return Ok(None) };
    let mut languages: Vec<u16> =
        entries.iter().map(|(id, _)| *id).chain(info.tables.iter().map(|table| table.language)).collect();
    languages.sort_unstable();
    languages.dedup();
    Ok(Some(VersionStrings {
        language: table.language,
        company: table.value("CompanyName"),
        product: table.value("ProductName"),
        languages,
    }))
}

/// The facts of a parsed image (`bytes` is its whole file), with what could not be read.
pub(crate) fn facts_of<Pe: ImageNtHeaders>(file: &PeFile<'_, Pe>, bytes: &[u8]) -> (PeFacts, Vec<String>) {
    let headers = file.nt_headers();
    let present = |index: usize| {
        file.data_directory(index).is_some_and(|entry| entry.virtual_address.get(LE) != 0 && entry.size.get(LE) != 0)
    };
    let mut problems = Vec::new();
    let version = version_of(file, bytes).unwrap_or_else(|problem| {
        problems.push(problem);
        None
    });
    let facts = PeFacts {
        machine: machine_name(headers.file_header().machine.get(LE)),
        bits: if headers.is_type_64() { 64 } else { 32 },
        subsystem: subsystem_name(headers.optional_header().subsystem()),
        is_dll: headers.file_header().characteristics.get(LE) & pe::IMAGE_FILE_DLL != 0,
        is_dotnet: present(pe::IMAGE_DIRECTORY_ENTRY_COM_DESCRIPTOR),
        has_certificate_table: present(pe::IMAGE_DIRECTORY_ENTRY_SECURITY),
        version,
    };
    (facts, problems)
}
