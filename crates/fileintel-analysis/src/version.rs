//! The version resource (`VS_VERSIONINFO`): a tree of nodes, each `wLength`, `wValueLength`,
//! `wType`, a NUL-terminated UTF-16 key, its value and its children, 32-bit aligned. Its
//! `StringFileInfo` holds one string table per language and code page (`040904b0`), its
//! `VarFileInfo` the `Translation` list of the languages the file declares.
//!
//! Read leniently, as Windows' Explorer reads it: lengths that overrun are cut to what the
//! bytes hold, a string's value is read up to its NUL whatever `wValueLength` says (linkers get
//! it wrong: some count bytes, some count nothing), and a node that cannot be read ends its
//! siblings, never the whole resource. Every step consumes at least one node header, so the
//! walk ends on any input.

/// One string table: its language, code page, and strings in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Table {
    pub language: u16,
    pub codepage: u16,
    pub strings: Vec<(String, String)>,
}

impl Table {
    /// The value of `key`, trimmed; `None` when absent or empty.
    pub fn value(&self, key: &str) -> Option<String> {
        self.strings
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.trim_end_matches('\0').trim().to_owned())
            .filter(|value| !value.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VersionInfo {
    pub tables: Vec<Table>,
    /// The `Translation` list: (language, code page) pairs.
    pub translations: Vec<(u16, u16)>,
}

impl VersionInfo {
    /// The table to read: the first language of `order` present (the lowest code page among its
    /// tables), then the first the translation list names, then the lowest language id; never
    /// an arbitrary one.
    pub fn preferred(&self, order: &[u16]) -> Option<&Table> {
        let with = |language: u16| {
            self.tables.iter().filter(|table| table.language == language).min_by_key(|table| table.codepage)
        };
        order
            .iter()
            .find_map(|&language| with(language))
            .or_else(|| {
                self.translations.iter().find_map(|&(language, codepage)| {
                    self.tables.iter().find(|table| table.language == language && table.codepage == codepage)
                })
            })
            .or_else(|| self.tables.iter().min_by_key(|table| (table.language, table.codepage)))
    }
}

struct Node<'a> {
    key: String,
    /// From the value's start to the node's end: the value, then the children.
    tail: &'a [u8],
    /// The value as `wValueLength` sizes it (in bytes; text lengths are in characters).
    value: &'a [u8],
    children: &'a [u8],
}

fn word(bytes: &[u8], at: usize) -> Option<u16> {
    bytes.get(at..at + 2).map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
}

fn align4(offset: usize) -> usize {
    offset.next_multiple_of(4)
}

/// UTF-16 text from the start of `bytes` up to its NUL (or its end).
fn text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .take_while(|&unit| unit != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// The node at the start of `bytes`, and what follows it.
fn node(bytes: &[u8]) -> Option<(Node<'_>, &[u8])> {
    let length = usize::from(word(bytes, 0)?);
    if length < 6 {
        return None;
    }
    let node = &bytes[..length.min(bytes.len())];
    let value_length = usize::from(word(node, 2)?);
    let is_text = word(node, 4)? == 1;
    let units: Vec<u16> = node
        .get(6..)?
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .take_while(|&unit| unit != 0)
        .collect();
    let key = String::from_utf16_lossy(&units);
    let value_start = align4(6 + 2 * (units.len() + 1)).min(node.len());
    let value_end = (value_start + if is_text { 2 * value_length } else { value_length }).min(node.len());
    let children = &node[align4(value_end).min(node.len())..];
    let rest = &bytes[align4(length).min(bytes.len())..];
    Some((Node { key, tail: &node[value_start..], value: &node[value_start..value_end], children }, rest))
}

/// The nodes laid one after another in `bytes`.
fn nodes(mut bytes: &[u8]) -> impl Iterator<Item = Node<'_>> {
    std::iter::from_fn(move || {
        let (node, rest) = node(bytes)?;
        bytes = rest;
        Some(node)
    })
}

/// Reads a `VS_VERSIONINFO` resource; what cannot be read is left out.
pub(crate) fn read(resource: &[u8]) -> VersionInfo {
    let mut info = VersionInfo::default();
    let Some((root, _)) = node(resource) else { return info };
    for child in nodes(root.children) {
        match child.key.as_str() {
            "StringFileInfo" => {
                for table in nodes(child.children) {
                    let hex = |range: std::ops::Range<usize>| {
                        table.key.get(range).and_then(|digits| u16::from_str_radix(digits, 16).ok())
                    };
                    let (Some(language), Some(codepage)) = (hex(0..4), hex(4..8)) else { continue };
                    let strings = nodes(table.children).map(|string| (string.key, text(string.tail))).collect();
                    info.tables.push(Table { language, codepage, strings });
                }
            }
            "VarFileInfo" => {
                for var in nodes(child.children).filter(|var| var.key == "Translation") {
                    info.translations.extend(
                        var.value.chunks_exact(4).map(|pair| {
                            (u16::from_le_bytes([pair[0], pair[1]]), u16::from_le_bytes([pair[2], pair[3]]))
                        }),
                    );
                }
            }
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node as a linker writes one.
    fn encode(key: &str, value: &[u8], is_text: bool, children: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0, 0, 0, 0, u8::from(is_text), 0];
        for unit in key.encode_utf16().chain([0]) {
            out.extend_from_slice(&unit.to_le_bytes());
        }
        out.resize(align4(out.len()), 0);
        out.extend_from_slice(value);
        let value_length = if is_text { value.len() / 2 } else { value.len() };
        for child in children {
            out.resize(align4(out.len()), 0);
            out.extend_from_slice(child);
        }
        let length = out.len() as u16;
        out[0..2].copy_from_slice(&length.to_le_bytes());
        out[2..4].copy_from_slice(&(value_length as u16).to_le_bytes());
        out
    }

    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect()
    }

    fn resource(tables: &[(&str, &[(&str, &str)])], translations: &[(u16, u16)]) -> Vec<u8> {
        let tables: Vec<Vec<u8>> = tables
            .iter()
            .map(|(key, strings)| {
                let strings: Vec<Vec<u8>> =
                    strings.iter().map(|(name, value)| encode(name, &utf16(value), true, &[])).collect();
                encode(key, &[], true, &strings)
            })
            .collect();
        let translation: Vec<u8> = translations
            .iter()
            .flat_map(|(language, codepage)| [language.to_le_bytes(), codepage.to_le_bytes()])
            .flatten()
            .collect();
        let var = encode("Translation", &translation, false, &[]);
        let children = [encode("StringFileInfo", &[], true, &tables), encode("VarFileInfo", &[], true, &[var])];
        encode("VS_VERSION_INFO", &[0xbd, 0x04, 0xef, 0xfe], false, &children)
    }

    #[test]
    fn strings_are_read_by_language_preference() {
        let bytes = resource(
            &[
                ("040704b0", &[("CompanyName", "Beispiel GmbH"), ("ProductName", "Werkzeug")]),
                ("040904b0", &[("CompanyName", "Example Inc."), ("ProductName", "Tool ")]),
            ],
            &[(0x0407, 0x04b0), (0x0409, 0x04b0)],
        );
        let info = read(&bytes);
        assert_eq!(info.tables.len(), 2);
        assert_eq!(info.translations, [(0x0407, 0x04b0), (0x0409, 0x04b0)]);
        let table = info.preferred(&[0x0409, 0x0000]).unwrap();
        assert_eq!(
            (table.value("CompanyName").as_deref(), table.value("ProductName").as_deref()),
            (Some("Example Inc."), Some("Tool"))
        );
        // Without US English or neutral, the translation list's first language.
        let table = info.preferred(&[0x0411]).unwrap();
        assert_eq!(table.value("CompanyName").as_deref(), Some("Beispiel GmbH"));
    }

    #[test]
    fn a_string_whose_length_is_wrong_is_read_to_its_nul() {
        let mut string = encode("CompanyName", &utf16("Example Inc."), true, &[]);
        // wValueLength 0, as some linkers write it.
        string[2..4].copy_from_slice(&0u16.to_le_bytes());
        let table = encode("040904b0", &[], true, &[string]);
        let strings = encode("StringFileInfo", &[], true, &[table]);
        let bytes = encode("VS_VERSION_INFO", &[], false, &[strings]);
        let info = read(&bytes);
        assert_eq!(info.tables[0].value("CompanyName").as_deref(), Some("Example Inc."));
        assert_eq!(info.preferred(&[]).map(|table| table.language), Some(0x0409));
    }

    #[test]
    fn cut_or_garbled_resources_yield_what_they_hold_and_end() {
        let bytes =
            resource(&[("040904b0", &[("CompanyName", "Example Inc."), ("ProductName", "Tool")])], &[(0x0409, 0x04b0)]);
        for cut in 0..bytes.len() {
            let _ = read(&bytes[..cut]);
        }
        let mut garbled = bytes.clone();
        for at in (0..garbled.len()).step_by(7) {
            garbled[at] ^= 0xff;
            let _ = read(&garbled);
        }
        assert_eq!(read(&[0xff; 3]), VersionInfo::default());
    }
}
