//! File hashes: fixed-size newtypes parsed from hex in either case and printed in lower case.

use std::fmt;

use std::str::FromStr;

/// Why a string is not a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("expected {expected} hex digits, found {found} characters")]
    Length { expected: usize, found: usize },
    #[error("'{0}' is not a hex digit")]
    Digit(char),
    #[error("a {0}-character string is not a SHA-1 (40), SHA-256 (64) or MD5 (32)")]
    UnknownLength(usize),
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn decode_hex<const N: usize>(text: &str) -> Result<[u8; N], HashError> {
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 {
        return Err(HashError::Length { expected: N * 2, found: text.chars().count() });
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]);
        let lo = hex_value(pair[1]);
        match (hi, lo) {
            (Some(hi), Some(lo)) => out[i] = hi << 4 | lo,
            _ => {
                // Report the first offending character, which may be multi-byte.
                let bad = text.chars().find(|c| !c.is_ascii_hexdigit()).unwrap_or('?');
                return Err(HashError::Digit(bad));
            }
        }
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 64];
    for (i, byte) in bytes.iter().enumerate() {
        buf[2 * i] = DIGITS[(byte >> 4) as usize];
        buf[2 * i + 1] = DIGITS[(byte & 15) as usize];
    }
    // Only ASCII hex digits were written.
    f.write_str(std::str::from_utf8(&buf[..bytes.len() * 2]).map_err(|_| fmt::Error)?)
}

macro_rules! hash_type {
    ($(#[$doc:meta])* $name:ident, $len:expr, $label:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length of the digest in bytes.
            pub const LEN: usize = $len;
            /// What the algorithm is called in messages.
            pub const LABEL: &'static str = $label;

            /// Parses hex digits in either case.
            pub fn parse(text: &str) -> Result<Self, HashError> {
                decode_hex::<$len>(text).map(Self)
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Builds the hash from raw digest bytes; `None` when the length is wrong.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(Self)
            }
        }

        impl FromStr for $name {
            type Err = HashError;
            fn from_str(text: &str) -> Result<Self, HashError> {
                Self::parse(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        // Hex for people (JSON), raw digest bytes for the store's binary encoding.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.collect_str(self)
                } else {
                    self.0.serialize(serializer)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                    Self::parse(&text).map_err(serde::de::Error::custom)
                } else {
                    <[u8; $len]>::deserialize(deserializer).map(Self)
                }
            }
        }
    };
}

hash_type!(
    /// SHA-1 of a file's content: the key MDE's `Files` entity set uses.
    Sha1, 20, "SHA-1"
);
hash_type!(
    /// SHA-256 of a file's content.
    Sha256, 32, "SHA-256"
);
hash_type!(
    /// MD5 of a file's content: not in today's MDE documentation, accepted as an extension.
    Md5, 16, "MD5"
);

/// Any one hash of a file, as a client names it in `GET /api/files/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileHash {
    Sha1(Sha1),
    Sha256(Sha256),
    Md5(Md5),
}

impl FileHash {
    /// Parses a SHA-1 (40 hex), SHA-256 (64 hex) or MD5 (32 hex), telling them apart by length.
    pub fn parse(text: &str) -> Result<Self, HashError> {
        match text.len() {
            40 => Sha1::parse(text).map(Self::Sha1),
            64 => Sha256::parse(text).map(Self::Sha256),
            32 => Md5::parse(text).map(Self::Md5),
            _ => Err(HashError::UnknownLength(text.chars().count())),
        }
    }

    /// The hash of a stored key: its kind as both stores number kinds (0 MD5, 1 SHA-1,
    /// 2 SHA-256) and its bytes; `None` for an unknown kind or a wrong length.
    pub fn from_key(kind: u8, bytes: &[u8]) -> Option<Self> {
        match kind {
            0 => bytes.try_into().ok().map(|bytes| Self::Md5(Md5(bytes))),
            1 => bytes.try_into().ok().map(|bytes| Self::Sha1(Sha1(bytes))),
            2 => bytes.try_into().ok().map(|bytes| Self::Sha256(Sha256(bytes))),
            _ => None,
        }
    }

    /// The hash's bytes, whatever its kind.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Sha1(hash) => hash.as_bytes(),
            Self::Sha256(hash) => hash.as_bytes(),
            Self::Md5(hash) => hash.as_bytes(),
        }
    }
}

impl FromStr for FileHash {
    type Err = HashError;
    fn from_str(text: &str) -> Result<Self, HashError> {
        Self::parse(text)
    }
}

impl fmt::Display for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha1(hash) => hash.fmt(f),
            Self::Sha256(hash) => hash.fmt(f),
            Self::Md5(hash) => hash.fmt(f),
        }
    }
}

/// Two hashes of one file disagree with what is already known: one SHA-1 paired with two SHA-256s, say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {known} is already paired with {other_kind} {paired}, not {claimed}")]
pub struct PairingConflict {
    pub kind: &'static str,
    pub known: String,
    pub other_kind: &'static str,
    pub paired: String,
    pub claimed: String,
}

/// The hashes known for one file; any of them may be missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileHashes {
    pub sha1: Option<Sha1>,
    pub sha256: Option<Sha256>,
    pub md5: Option<Md5>,
}

impl FileHashes {
    pub fn is_empty(&self) -> bool {
        self.sha1.is_none() && self.sha256.is_none() && self.md5.is_none()
    }

    /// Every hash present, strongest first.
    pub fn iter(&self) -> impl Iterator<Item = FileHash> + '_ {
        self.sha256
            .map(FileHash::Sha256)
            .into_iter()
            .chain(self.sha1.map(FileHash::Sha1))
            .chain(self.md5.map(FileHash::Md5))
    }

    /// Whether `other` names a different file than `self`: some algorithm present on both sides with different values.
    pub fn conflict(&self, other: &FileHashes) -> Option<PairingConflict> {
        // Describe the conflict from a hash both sides share, so the message names the pairing that was kept.
        let anchor = self.iter().find(|hash| other.iter().any(|theirs| theirs == *hash));
        let anchor_text = |anchor: Option<FileHash>| anchor.map(|hash| (label(&hash), hash.to_string()));
        let (kind, known) = anchor_text(anchor).unwrap_or(("file", "record".to_owned()));
        macro_rules! check {
            ($field:ident, $name:expr) => {
                if let (Some(mine), Some(theirs)) = (self.$field, other.$field) {
                    if mine != theirs {
                        return Some(PairingConflict {
                            kind,
                            known: known.clone(),
                            other_kind: $name,
                            paired: mine.to_string(),
                            claimed: theirs.to_string(),
                        });
                    }
                }
            };
        }
        check!(sha256, Sha256::LABEL);
        check!(sha1, Sha1::LABEL);
        check!(md5, Md5::LABEL);
        None
    }

    /// Decides what these hashes (an observation's, a file's facts') name, given `found`: each
    /// distinct file a store holds any of them under, once, with the hashes it has for that file,
    /// in the order the hashes were looked up. The rule every store follows, so that each names
    /// the same files and refuses the same observations with the same words.
    pub fn resolve<F: Copy>(&self, found: &[(F, FileHashes)]) -> Resolution<F> {
        match found {
            [] => Resolution::New,
            [(file, known)] => match known.conflict(self) {
                Some(conflict) => {
                    Resolution::Conflict(format!("conflicting hashes: {conflict}; the first pairing is kept"))
                }
                None => {
                    let mut hashes = *known;
                    hashes.fill_from(self);
                    Resolution::Fill(*file, hashes)
                }
            },
            [(first, one), (second, other), ..] => match one.conflict(other) {
                Some(conflict) => Resolution::Conflict(format!("hashes name two different files: {conflict}")),
                None => Resolution::Link(*first, *second),
            },
        }
    }

    /// Fills the hashes `self` lacks from `other`; call [`FileHashes::conflict`] first.
    pub fn fill_from(&mut self, other: &FileHashes) {
        self.sha1 = self.sha1.or(other.sha1);
        self.sha256 = self.sha256.or(other.sha256);
        self.md5 = self.md5.or(other.md5);
    }
}

/// What a set of hashes names ([`FileHashes::resolve`]); `F` is however a store knows a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution<F> {
    /// None of them is known: they name a new file, with these hashes.
    New,
    /// They name this file, which from now on has these hashes (its own, gaps filled).
    Fill(F, FileHashes),
    /// They show two files the store holds apart to be one (the first two found): link them,
    /// then resolve again.
    Link(F, F),
    /// They contradict a pairing already known; why, in words for the one who sent them.
    Conflict(String),
}

fn label(hash: &FileHash) -> &'static str {
    match hash {
        FileHash::Sha1(_) => Sha1::LABEL,
        FileHash::Sha256(_) => Sha256::LABEL,
        FileHash::Md5(_) => Md5::LABEL,
    }
}

impl From<FileHash> for FileHashes {
    fn from(hash: FileHash) -> Self {
        let mut hashes = FileHashes::default();
        match hash {
            FileHash::Sha1(h) => hashes.sha1 = Some(h),
            FileHash::Sha256(h) => hashes.sha256 = Some(h),
            FileHash::Md5(h) => hashes.md5 = Some(h),
        }
        hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(sha1: Option<u8>, sha256: Option<u8>, md5: Option<u8>) -> FileHashes {
        FileHashes {
            sha1: sha1.map(|n| Sha1([n; 20])),
            sha256: sha256.map(|n| Sha256([n; 32])),
            md5: md5.map(|n| Md5([n; 16])),
        }
    }

    #[test]
    fn hashes_nobody_knows_name_a_new_file() {
        assert_eq!(hashes(Some(1), None, Some(1)).resolve::<u64>(&[]), Resolution::New);
    }

    #[test]
    fn hashes_one_file_holds_fill_its_gaps() {
        let known = hashes(Some(1), None, None);
        let seen = hashes(Some(1), Some(1), None);
        assert_eq!(seen.resolve(&[(7u64, known)]), Resolution::Fill(7, hashes(Some(1), Some(1), None)));
        // Fewer hashes than the file has take nothing away.
        assert_eq!(known.resolve(&[(7u64, seen)]), Resolution::Fill(7, seen));
    }

    #[test]
    fn hashes_that_contradict_the_file_they_name_are_refused_and_the_first_pairing_kept() {
        let known = hashes(Some(1), Some(1), None);
        let Resolution::Conflict(reason) = hashes(Some(1), Some(2), None).resolve(&[(7u64, known)]) else {
            panic!("a second SHA-256 for one SHA-1 was taken")
        };
        assert!(reason.starts_with("conflicting hashes: SHA-1 0101"), "{reason}");
        assert!(reason.contains("already paired with SHA-256 0101"), "{reason}");
        assert!(reason.ends_with("; the first pairing is kept"), "{reason}");
    }

    #[test]
    fn hashes_two_files_hold_link_them_unless_the_two_disagree() {
        let by_sha1 = hashes(Some(1), None, None);
        let by_sha256 = hashes(None, Some(1), None);
        let both = hashes(Some(1), Some(1), None);
        assert_eq!(both.resolve(&[(3u64, by_sha256), (5, by_sha1)]), Resolution::Link(3, 5));
        let with_md5 = hashes(None, Some(1), Some(1));
        let other_md5 = hashes(Some(1), None, Some(2));
        let Resolution::Conflict(reason) =
            hashes(Some(1), Some(1), Some(1)).resolve(&[(3u64, with_md5), (5, other_md5)])
        else {
            panic!("two files with different MD5s were linked")
        };
        assert!(reason.starts_with("hashes name two different files: "), "{reason}");
    }

    const SHA1: &str = "4388963aaa83afe2042a46a3c017ad50bdcdafb3";
    const SHA256: &str = "413c58c8267d2c8648d8f6384bacc2ae9c929b2b96578b6860b5087cd1bd6462";
    const MD5: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn hashes_parse_in_either_case_and_print_lower_case() {
        for text in [SHA1, SHA256, MD5] {
            let upper = text.to_uppercase();
            let parsed = FileHash::parse(&upper).unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(FileHash::parse(text).unwrap(), parsed);
        }
        assert!(matches!(FileHash::parse(SHA1).unwrap(), FileHash::Sha1(_)));
        assert!(matches!(FileHash::parse(SHA256).unwrap(), FileHash::Sha256(_)));
        assert!(matches!(FileHash::parse(MD5).unwrap(), FileHash::Md5(_)));
    }

    #[test]
    fn malformed_hashes_are_refused_with_a_reason() {
        assert_eq!(FileHash::parse("abc"), Err(HashError::UnknownLength(3)));
        let bad = format!("{}g", &SHA1[..39]);
        assert_eq!(FileHash::parse(&bad), Err(HashError::Digit('g')));
        assert_eq!(Sha256::parse(SHA1), Err(HashError::Length { expected: 64, found: 40 }));
        // Multi-byte characters must not be mistaken for the right length or panic.
        let accented = "é".repeat(20);
        assert!(FileHash::parse(&accented).is_err());
        assert!(Sha1::parse(&accented).is_err());
    }

    #[test]
    fn a_sha1_paired_with_two_sha256s_is_a_conflict() {
        let sha1 = Sha1::parse(SHA1).unwrap();
        let known = FileHashes { sha1: Some(sha1), sha256: Some(Sha256([1; 32])), md5: None };
        let claimed = FileHashes { sha1: Some(sha1), sha256: Some(Sha256([2; 32])), md5: Some(Md5([3; 16])) };
        let conflict = known.conflict(&claimed).unwrap();
        assert_eq!(conflict.known, SHA1);
        assert_eq!(conflict.other_kind, "SHA-256");
        let compatible = FileHashes { sha1: Some(sha1), sha256: None, md5: Some(Md5([3; 16])) };
        assert!(known.conflict(&compatible).is_none());
        let mut merged = known;
        merged.fill_from(&compatible);
        assert_eq!(merged.md5, Some(Md5([3; 16])));
        assert_eq!(merged.sha256, Some(Sha256([1; 32])));
    }
}
