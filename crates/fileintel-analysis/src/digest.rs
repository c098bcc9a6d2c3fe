//! MD5, SHA-1 and SHA-256 in one pass over the bytes.

use fileintel_core::{FileHashes, Md5, Sha1, Sha256};
use md5::Digest as _;

/// The three digests, fed together.
#[derive(Clone, Default)]
pub struct Digests {
    md5: md5::Md5,
    sha1: sha1::Sha1,
    sha256: sha2::Sha256,
}

impl Digests {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one piece; the pieces may come in any size.
    pub fn update(&mut self, bytes: &[u8]) {
        // Block by block, so each piece is hashed three times while it is still in cache.
        for block in bytes.chunks(64 << 10) {
            self.md5.update(block);
            self.sha1.update(block);
            self.sha256.update(block);
        }
    }

    pub fn hashes(self) -> FileHashes {
        FileHashes {
            md5: Some(Md5(self.md5.finalize().into())),
            sha1: Some(Sha1(self.sha1.finalize().into())),
            sha256: Some(Sha256(self.sha256.finalize().into())),
        }
    }
}

impl std::fmt::Debug for Digests {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Digests")
    }
}

/// The digests of bytes held whole.
pub fn digest(bytes: &[u8]) -> Digests {
    let mut digests = Digests::new();
    digests.update(bytes);
    digests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_digests_are_the_known_ones_however_the_input_is_cut() {
        let input = b"The quick brown fox jumps over the lazy dog".repeat(3000);
        let whole = digest(&input).hashes();
        let mut pieces = Digests::new();
        for piece in input.chunks(7) {
            pieces.update(piece);
        }
        assert_eq!(pieces.hashes(), whole);
        let empty = digest(b"").hashes();
        assert_eq!(empty.md5.unwrap().to_string(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(empty.sha1.unwrap().to_string(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            empty.sha256.unwrap().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let fox = digest(b"The quick brown fox jumps over the lazy dog").hashes();
        assert_eq!(fox.md5.unwrap().to_string(), "9e107d9d372bb6826bd81d3542a419d6");
        assert_eq!(fox.sha1.unwrap().to_string(), "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
        assert_eq!(fox.sha256.unwrap().to_string(), "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592");
    }
}
