//! A direct reader for the common shape of event-log records: one template instance whose
//! substitution values fill a template defined in the chunk (MS-EVEN6 §2.2.3). It reads only
//! the values an observation needs, found through a map from member name to substitution index
//! built once per template, and renders nothing. Anything else (records of other shapes, tokens
//! it does not know, values of unexpected types) is left to the `evtx` crate, record by record.

use std::sync::Arc as Rc;

/// What an observation reads from an event, in the order of [`MEMBERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Member {
    Provider,
    EventId,
    EventRecordId,
    Computer,
    SystemTime,
    Hashes,
    Image,
    ImageLoaded,
    TargetFilename,
    UtcTime,
    Signed,
    Signature,
    SignatureStatus,
    Company,
    Product,
}

use crate::evtx_log::CHUNK_SIZE;

pub(crate) const MEMBER_COUNT: usize = 15;

/// `EventData/Data[@Name]` members, by name.
pub(crate) const DATA_MEMBERS: [(&str, Member); 10] = [
    ("Hashes", Member::Hashes),
    ("Image", Member::Image),
    ("ImageLoaded", Member::ImageLoaded),
    ("TargetFilename", Member::TargetFilename),
    ("UtcTime", Member::UtcTime),
    ("Signed", Member::Signed),
    ("Signature", Member::Signature),
    ("SignatureStatus", Member::SignatureStatus),
    ("Company", Member::Company),
    ("Product", Member::Product),
];

/// Where a template gets each member: a substitution index, or a literal written in the template.
#[derive(Debug, Clone, Default)]
pub(crate) struct TemplateMap {
    slots: [Option<Slot>; MEMBER_COUNT],
    /// Substitutions standing for whole elements (Sysmon's `EventData` is one: a nested BinXML
    /// fragment with a template of its own).
    nested: Vec<u16>,
}

/// The templates of one chunk, by their definition's offset; `None` for one not followed. A chunk
/// holds a handful, so a list beats a hash map.
pub(crate) type Templates = Vec<(u32, Option<Rc<TemplateMap>>)>;

#[derive(Debug, Clone)]
enum Slot {
    Substitution(u16),
    Literal(String),
}

/// A value as the record holds it.
#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    /// UTF-16LE bytes.
    Text(&'a [u8]),
    Literal(String),
    Number(u64),
    /// 100 ns ticks since 1601.
    FileTime(u64),
}

impl Value<'_> {
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Value::Text(bytes) => Some(utf16_text(bytes)),
            Value::Literal(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::FileTime(_) => None,
        }
    }
}

/// UTF-16LE as a `String`, without trailing NULs; ASCII (nearly every value) is copied as is.
fn utf16_text(bytes: &[u8]) -> String {
    let mut end = bytes.len() & !1;
    while end >= 2 && bytes[end - 2] == 0 && bytes[end - 1] == 0 {
        end -= 2;
    }
    let bytes = &bytes[..end];
    if bytes.chunks_exact(2).all(|pair| pair[1] == 0 && pair[0] < 0x80) {
        return bytes.iter().step_by(2).map(|&byte| char::from(byte)).collect();
    }
    let units = bytes.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
}

/// One record read directly, or the header's record id of one left to the crate.
pub(crate) enum Record<'a> {
    Read { header_id: u64, header_time: u64, values: Box<[Option<Value<'a>>; MEMBER_COUNT]> },
    ForTheCrate { header_id: u64 },
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// The name stored at `offset` in the chunk: next offset, hash, length, UTF-16 characters.
fn name_at(chunk: &[u8], offset: usize) -> Option<String> {
    let length = usize::from(u16_at(chunk, offset + 6)?);
    let bytes = chunk.get(offset + 8..offset + 8 + 2 * length)?;
    let units = bytes.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    char::decode_utf16(units).collect::<Result<String, _>>().ok()
}

/// Skips a name that is written inline (its offset is where it starts); returns the next position.
fn skip_inline_name(chunk: &[u8], at: usize, offset: usize) -> Option<usize> {
    if offset == at { Some(at + 8 + 2 * usize::from(u16_at(chunk, at + 6)?) + 2) } else { Some(at) }
}

/// Builds the member map of the template defined at `offset` in the chunk, or `None` when its
/// definition uses tokens this reader does not follow.
fn template_map(chunk: &[u8], offset: usize) -> Option<TemplateMap> {
    // Definition header: next template offset, GUID, data size; then the BinXML.
    let size = u32_at(chunk, offset + 20)? as usize;
    let start = offset + 24;
    let end = start.checked_add(size)?;
    if end > chunk.len() {
        return None;
    }
    let mut map = TemplateMap::default();
    // Per open element: its name, and the literal of its `Name` attribute.
    let mut elements: Vec<(String, Option<String>)> = Vec::new();
    let mut attribute: Option<String> = None;
    let mut at = start;
    while at < end {
        let token = chunk[at];
        match token {
            0x0f => at += 4,
            0x01 | 0x41 => {
                // Dependency id, data size, name offset (then the name, if inline), attribute list size.
                let name_offset = u32_at(chunk, at + 7)? as usize;
                at = skip_inline_name(chunk, at + 11, name_offset)?;
                if token == 0x41 {
                    at += 4;
                }
                elements.push((name_at(chunk, name_offset)?, None));
                attribute = None;
            }
            0x06 | 0x46 => {
                let name_offset = u32_at(chunk, at + 1)? as usize;
                at = skip_inline_name(chunk, at + 5, name_offset)?;
                attribute = Some(name_at(chunk, name_offset)?);
            }
            0x02 => {
                attribute = None;
                at += 1;
            }
            0x03 | 0x04 => {
                elements.pop();
                attribute = None;
                at += 1;
            }
            0x05 | 0x45 => {
                // Only string literals are followed: a type byte, a length, UTF-16 characters.
                if chunk.get(at + 1) != Some(&0x01) {
                    return None;
                }
                let length = usize::from(u16_at(chunk, at + 2)?);
                let bytes = chunk.get(at + 4..at + 4 + 2 * length)?;
                let text = utf16_text(bytes);
                at += 4 + 2 * length;
                let element = elements.last_mut()?;
                match attribute.as_deref() {
                    Some("Name") if element.0 == "Provider" => {
                        map.slots[Member::Provider as usize] = Some(Slot::Literal(text.clone()));
                        element.1 = Some(text);
                    }
                    Some("Name") => element.1 = Some(text),
                    Some(_) => {}
                    None if element.0 == "Computer" => map.slots[Member::Computer as usize] = Some(Slot::Literal(text)),
                    None => {}
                }
            }
            0x0d | 0x0e => {
                let index = u16_at(chunk, at + 1)?;
                at += 4;
                let (element, name) = elements.last()?;
                let member = match (attribute.as_deref(), element.as_str()) {
                    (Some("Name"), "Provider") => Some(Member::Provider),
                    (Some("SystemTime"), "TimeCreated") => Some(Member::SystemTime),
                    (Some(_), _) => None,
                    (None, "EventID") => Some(Member::EventId),
                    (None, "EventRecordID") => Some(Member::EventRecordId),
                    (None, "Computer") => Some(Member::Computer),
                    (None, "Data") => name.as_deref().and_then(|name| {
                        DATA_MEMBERS.iter().find(|(data, _)| *data == name).map(|(_, member)| *member)
                    }),
                    (None, "Event" | "EventData" | "UserData") => {
                        map.nested.push(index);
                        None
                    }
                    (None, _) => None,
                };
                if let Some(member) = member {
                    map.slots[member as usize] = Some(Slot::Substitution(index));
                }
            }
            0x00 => break,
            _ => return None,
        }
    }
    Some(map)
}

/// Fills `values` from the template instance at chunk offset `base` (a fragment header and one
/// TemplateInstance), following nested fragments; `None` to leave the record to the crate.
fn fill<'a>(
    chunk: &'a [u8],
    base: usize,
    templates: &mut Templates,
    values: &mut [Option<Value<'a>>],
    depth: usize,
) -> Option<()> {
    // Sysmon nests once; a log nesting deeper than this is left to the crate (which caps it too).
    if depth > MAX_NESTING {
        return None;
    }
    // Fragment header, then one TemplateInstance: a byte, the template id, its definition's offset.
    if chunk.get(base..base + 5)? != [0x0f, 0x01, 0x01, 0x00, 0x0c] {
        return None;
    }
    let definition = u32_at(chunk, base + 10)?;
    let mut at = base + 14;
    if definition as usize == at {
        // Defined here, on first use: skip the definition.
        at += 24 + u32_at(chunk, at + 20)? as usize;
    }
    let map = match templates.iter().find(|(offset, _)| *offset == definition) {
        Some((_, map)) => map.clone()?,
        None => {
            let map = template_map(chunk, definition as usize).map(Rc::new);
            templates.push((definition, map.clone()));
            map?
        }
    };
    let count = u32_at(chunk, at)? as usize;
    at += 4;
    let descriptors = chunk.get(at..at.checked_add(4 * count)?)?;
    at += 4 * count;
    // Where each substitution's value starts, its size and its type.
    let mut starts = Vec::with_capacity(count);
    for descriptor in descriptors.chunks_exact(4) {
        let size = usize::from(u16::from_le_bytes([descriptor[0], descriptor[1]]));
        starts.push((at, size, descriptor[2]));
        at += size;
    }
    if at > chunk.len() {
        return None;
    }
    for (member, slot) in map.slots.iter().enumerate() {
        if values[member].is_some() {
            continue;
        }
        values[member] = match slot {
            None => None,
            Some(Slot::Literal(text)) => Some(Value::Literal(text.clone())),
            Some(Slot::Substitution(index)) => {
                let Some(&(start, size, kind)) = starts.get(usize::from(*index)) else { continue };
                let bytes = &chunk[start..start + size];
                match kind {
                    0x00 => None,
                    0x01 => Some(Value::Text(bytes)),
                    0x04 if size == 1 => Some(Value::Number(u64::from(bytes[0]))),
                    0x06 if size == 2 => Some(Value::Number(u64::from(u16_at(bytes, 0)?))),
                    0x08 if size == 4 => Some(Value::Number(u64::from(u32_at(bytes, 0)?))),
                    0x0a if size == 8 => Some(Value::Number(u64_at(bytes, 0)?)),
                    0x11 if size == 8 => Some(Value::FileTime(u64_at(bytes, 0)?)),
                    _ => return None,
                }
            }
        };
    }
    for index in &map.nested {
        let Some(&(start, size, kind)) = starts.get(usize::from(*index)) else { continue };
        match kind {
            0x00 => {}
            // A nested BinXML fragment.
            0x21 if size > 0 => fill(chunk, start, templates, values, depth + 1)?,
            _ => return None,
        }
    }
    Some(())
}

/// The records a chunk holds, as far as its bytes go.
pub(crate) struct ChunkRecords<'a> {
    pub records: Vec<Record<'a>>,
    /// Where the record that the end of the bytes cuts through starts: a chunk cut short by a
    /// truncated file ends inside a record; a whole chunk never does.
    pub cut_at: Option<usize>,
}

/// Reads the records of a 64 KiB chunk, or of the part of one that a truncated file holds, or
/// `None` when the chunk itself is not in the expected form.
pub(crate) fn read_chunk<'a>(chunk: &'a [u8], templates: &mut Templates) -> Option<ChunkRecords<'a>> {
    if chunk.get(..8)? != b"ElfChnk\0" {
        return None;
    }
    let whole = chunk.len() >= CHUNK_SIZE;
    let free = u32_at(chunk, 48)? as usize;
    let mut records = Vec::new();
    let mut at = 512;
    while at + 24 <= free.min(chunk.len()) {
        if chunk[at..at + 4] != [0x2a, 0x2a, 0x00, 0x00] {
            return None;
        }
        let size = u32_at(chunk, at + 4)? as usize;
        if size < 28 || at + size > free {
            return None;
        }
        if at + size > chunk.len() {
            return (!whole).then_some(ChunkRecords { records, cut_at: Some(at) });
        }
        let header_id = u64_at(chunk, at + 8)?;
        let header_time = u64_at(chunk, at + 16)?;
        let mut values: Box<[Option<Value<'a>>; MEMBER_COUNT]> = Box::default();
        records.push(match fill(chunk, at + 24, templates, &mut values[..], 0) {
            Some(()) => Record::Read { header_id, header_time, values },
            None => Record::ForTheCrate { header_id },
        });
        at += size;
    }
    // A record header cut short is a cut record too, and so is one the cut falls just before:
    // the chunk says it holds records up to `free`.
    let cut_at = (!whole && at < free).then_some(at);
    Some(ChunkRecords { records, cut_at })
}

/// FILETIME ticks (since 1601) as Unix ticks, if they fit.
pub(crate) fn unix_ticks(filetime: u64) -> Option<i64> {
    i64::try_from(filetime).ok()?.checked_sub(116_444_736_000_000_000)
}

/// How deep nested fragments are followed.
const MAX_NESTING: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn utf16_values_decode_with_their_trailing_nuls_dropped() {
        assert_eq!(utf16_text(&utf16("C:\\Windows\\cmd.exe\0")), "C:\\Windows\\cmd.exe");
        assert_eq!(utf16_text(&utf16("Überwachung 用户\0\0")), "Überwachung 用户");
        assert_eq!(utf16_text(&[0x41, 0x00, 0x42]), "A", "an odd byte is dropped");
        assert_eq!(utf16_text(&[]), "");
    }
}
