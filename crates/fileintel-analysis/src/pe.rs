//! Portable Executable facts through `pelite`, which reads 32- and 64-bit images from a byte
//! slice without trusting any offset in them.

use std::collections::HashMap;

use pelite::resources::version_info::Language;

/// What a PE's headers and version resource say.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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
const IMAGE_FILE_DLL: u16 = 0x2000;
const CLR_DIRECTORY: usize = 14;
const SECURITY_DIRECTORY: usize = 4;

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

/// The language to read: US English, then language-neutral, then the first the resource's
/// translation table lists, then the lowest id; never whichever a hash map yields first.
fn preferred(strings: &HashMap<Language, HashMap<String, String>>, translation: &[Language]) -> Option<Language> {
    let with = |id: u16| {
        let mut found: Vec<Language> = strings.keys().copied().filter(|language| language.lang_id == id).collect();
        found.sort_by_key(|language| language.charset_id);
        found.first().copied()
    };
    with(US_ENGLISH)
        .or_else(|| with(NEUTRAL))
        .or_else(|| translation.iter().copied().find(|language| strings.contains_key(language)))
        .or_else(|| strings.keys().copied().min_by_key(|language| (language.lang_id, language.charset_id)))
}

/// The version strings of an image's resources. A file can carry its version resource in several
/// languages (Wine's DLLs carry 36), each with its own string tables: the resource is chosen by
/// language first, with the same preference as the string table inside it.
fn version_from(resources: pelite::resources::Resources<'_>) -> Result<Option<VersionStrings>, String> {
    use pelite::resources::{FindError, Name};
    let root = match resources.root() {
        Ok(root) => root,
        Err(pelite::Error::Null) => return Ok(None),
        Err(error) => return Err(format!("resources: {error}")),
    };
    let versions = match root.get_dir(Name::VERSION) {
        Ok(versions) => versions,
        Err(FindError::NotFound) => return Ok(None),
        Err(error) => return Err(format!("version information: {error}")),
    };
    let names = versions.first_dir().map_err(|error| format!("version information: {error}"))?;
    // Per language of the resource: its id, and its bytes.
    let mut entries: Vec<(u16, &[u8])> = Vec::new();
    for entry in names.entries() {
        let Ok(Name::Id(id)) = entry.name() else { continue };
        let Some(data) = entry.entry().ok().and_then(|entry| entry.data()) else { continue };
        if let Ok(bytes) = data.bytes() {
            entries.push((u16::try_from(id).unwrap_or(u16::MAX), bytes));
        }
    }
    let chosen = entries
        .iter()
        .find(|(id, _)| *id == US_ENGLISH)
        .or_else(|| entries.iter().find(|(id, _)| *id == NEUTRAL))
        .or_else(|| entries.first());
    let Some((_, bytes)) = chosen else { return Ok(None) };
    let info = pelite::resources::version_info::VersionInfo::try_from(bytes)
        .map_err(|error| format!("version information: {error}"))?;
    let mut strings = version_strings(info);
    if let Some(strings) = &mut strings {
        let mut languages: Vec<u16> =
            entries.iter().map(|(id, _)| *id).chain(strings.languages.iter().copied()).collect();
        languages.sort_unstable();
        languages.dedup();
        strings.languages = languages;
    }
    Ok(strings)
}

fn version_strings(info: pelite::resources::version_info::VersionInfo<'_>) -> Option<VersionStrings> {
    let file_info = info.file_info();
    let language = preferred(&file_info.strings, file_info.langs)?;
    let table = file_info.strings.get(&language)?;
    let value = |key: &str| {
        table.get(key).map(|value| value.trim_end_matches('\0').trim().to_owned()).filter(|value| !value.is_empty())
    };
    let mut languages: Vec<u16> = file_info.strings.keys().map(|language| language.lang_id).collect();
    languages.sort_unstable();
    languages.dedup();
    Some(VersionStrings {
        language: language.lang_id,
        company: value("CompanyName"),
        product: value("ProductName"),
        languages,
    })
}

macro_rules! facts_of {
    ($pe:expr, $bits:expr, $problems:expr) => {{
        let pe = $pe;
        let file_header = pe.file_header();
        let optional = pe.optional_header();
        let directories = pe.data_directory();
        let present =
            |index: usize| directories.get(index).is_some_and(|entry| entry.VirtualAddress != 0 && entry.Size != 0);
        let version = match pe.resources() {
            Ok(resources) => version_from(resources).unwrap_or_else(|problem| {
                $problems.push(problem);
                None
            }),
            Err(pelite::Error::Null) => None,
            Err(error) => {
                $problems.push(format!("resources: {error}"));
                None
            }
        };
        PeFacts {
            machine: machine_name(file_header.Machine),
            bits: $bits,
            subsystem: subsystem_name(optional.Subsystem),
            is_dll: file_header.Characteristics & IMAGE_FILE_DLL != 0,
            is_dotnet: present(CLR_DIRECTORY),
            has_certificate_table: present(SECURITY_DIRECTORY),
            version,
        }
    }};
}

/// The PE facts of an image, with what could not be read; `None` when the headers themselves
/// do not parse.
pub(crate) fn read(bytes: &[u8]) -> (Option<PeFacts>, Vec<String>) {
    let mut problems = Vec::new();
    // pelite checks every offset it follows; should it still fail on a hostile image, the file
    // is reported as unreadable rather than taking the caller down.
    let parsed = std::panic::catch_unwind(|| {
        let mut problems = Vec::new();
        let facts = match pelite::PeFile::from_bytes(bytes) {
            Ok(pelite::Wrap::T32(pe)) => {
                use pelite::pe32::Pe;
                Some(facts_of!(pe, 32, problems))
            }
            Ok(pelite::Wrap::T64(pe)) => {
                use pelite::pe64::Pe;
                Some(facts_of!(pe, 64, problems))
            }
            Err(error) => {
                problems.push(format!("PE headers: {error}"));
                None
            }
        };
        (facts, problems)
    });
    match parsed {
        Ok((facts, found)) => {
            problems.extend(found);
            (facts, problems)
        }
        Err(_) => {
            problems.push("the PE parser failed on this file".into());
            (None, problems)
        }
    }
}
