//! Small readers for the ASN.1 the signatures hold, lenient where real files are.

use const_oid::ObjectIdentifier;
use der::asn1::Any;
use der::{Decode, Encode, Reader, Tagged};
use sha1::Digest as _;
use x509_cert::Certificate;

pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
pub const MD5: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The elements inside a constructed value (a SEQUENCE, a SET, an explicit tag), whatever its tag.
pub fn elements(value: &Any) -> der::Result<Vec<Any>> {
    let mut reader = der::SliceReader::new(value.value())?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(Any::decode(&mut reader)?);
    }
    Ok(out)
}

/// The name of a digest algorithm, as Authenticode tools print it.
pub fn algorithm_name(algorithm: ObjectIdentifier) -> String {
    match algorithm {
        SHA1 => "SHA1".into(),
        SHA256 => "SHA256".into(),
        SHA384 => "SHA384".into(),
        SHA512 => "SHA512".into(),
        MD5 => "MD5".into(),
        other => other.to_string(),
    }
}

/// The digest of `bytes` by a digest algorithm, when it is one fileintel knows.
pub fn hash(algorithm: ObjectIdentifier, bytes: &[u8]) -> Option<Vec<u8>> {
    use digest::Digest;
    Some(match algorithm {
        SHA1 => sha1::Sha1::digest(bytes).to_vec(),
        SHA256 => sha2::Sha256::digest(bytes).to_vec(),
        SHA384 => sha2::Sha384::digest(bytes).to_vec(),
        SHA512 => sha2::Sha512::digest(bytes).to_vec(),
        MD5 => md5::Md5::digest(bytes).to_vec(),
        _ => return None,
    })
}

/// The common name of an X.500 name, whatever string type it is written in.
pub fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    use der::asn1::{BmpString, Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
    let value = name.0.iter().flat_map(|rdn| rdn.0.iter()).find(|attribute| attribute.oid == COMMON_NAME)?;
    let value = &value.value;
    Utf8StringRef::try_from(value)
        .map(|text| text.as_str().to_owned())
        .or_else(|_| PrintableStringRef::try_from(value).map(|text| text.as_str().to_owned()))
        .or_else(|_| Ia5StringRef::try_from(value).map(|text| text.as_str().to_owned()))
        .or_else(|_| TeletexStringRef::try_from(value).map(|text| text.as_str().to_owned()))
        .or_else(|_| value.decode_as::<BmpString>().map(|text| text.to_string()))
        .ok()
}

/// A certificate's subject common name, or its whole subject when it has none.
pub fn display_name(certificate: &Certificate) -> String {
    common_name(&certificate.tbs_certificate.subject).unwrap_or_else(|| certificate.tbs_certificate.subject.to_string())
}

/// The SHA-1 thumbprint of a certificate, lower-case hex.
pub fn thumbprint(certificate: &Certificate) -> Option<String> {
    let der = certificate.to_der().ok()?;
    Some(hex(&sha1::Sha1::digest(der)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Seconds since the Unix epoch of an X.509 time.
pub fn unix(time: &x509_cert::time::Time) -> i64 {
    time.to_unix_duration().as_secs() as i64
}

/// Seconds since the Unix epoch of a GeneralizedTime or UTCTime value, read leniently:
/// fractions of a second (which timestamping authorities write, and strict DER readers refuse)
/// are dropped, and a missing `Z` is taken as UTC.
pub fn lenient_time(value: &Any) -> Option<i64> {
    let text = std::str::from_utf8(value.value()).ok()?;
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let (year, rest) = match value.tag() {
        der::Tag::GeneralizedTime if digits.len() >= 12 => (digits[..4].parse::<i64>().ok()?, &digits[4..]),
        der::Tag::UtcTime if digits.len() >= 10 => {
            let year = digits[..2].parse::<i64>().ok()?;
            (if year >= 50 { 1900 + year } else { 2000 + year }, &digits[2..])
        }
        _ => return None,
    };
    let field = |at: usize| rest.get(at..at + 2);
    let text =
        format!("{year:04}-{}-{}T{}:{}:{}Z", field(0)?, field(2)?, field(4)?, field(6)?, field(8).unwrap_or("00"));
    fileintel_core::Timestamp::parse(&text).ok().map(fileintel_core::Timestamp::unix_seconds)
}

/// RFC 3339 text of Unix seconds.
pub fn unix_to_rfc3339(seconds: i64) -> String {
    fileintel_core::Timestamp::from_unix_seconds(seconds).to_string()
}

/// How deep BER re-encoding follows constructed values.
const MAX_BER_DEPTH: usize = 64;

/// One BER element at the start of `input` re-encoded as DER lengths and primitive strings,
/// appended to `out`; returns the bytes it took. Indefinite lengths become definite, and
/// constructed OCTET STRINGs (as BER allows and DER forbids) become primitive ones. What it
/// cannot read is `None`.
fn ber_element(input: &[u8], depth: usize, out: &mut Vec<u8>) -> Option<usize> {
    if depth > MAX_BER_DEPTH {
        return None;
    }
    // The tag: one byte, or more for numbers from 31 on.
    let mut at = 1;
    if input.first()? & 0x1f == 0x1f {
        while input.get(at)? & 0x80 != 0 {
            at += 1;
        }
        at += 1;
    }
    let tag = &input[..at];
    let constructed = tag[0] & 0x20 != 0;
    let first = *input.get(at)?;
    at += 1;
    let length = match first {
        0x80 => None,
        short if short < 0x80 => Some(usize::from(short)),
        long => {
            let count = usize::from(long & 0x7f);
            if count > 4 {
                return None;
            }
            let mut length = 0usize;
            for _ in 0..count {
                length = length << 8 | usize::from(*input.get(at)?);
                at += 1;
            }
            Some(length)
        }
    };
    let mut content = Vec::new();
    let end = match length {
        Some(length) if !constructed => {
            content.extend_from_slice(input.get(at..at.checked_add(length)?)?);
            at + length
        }
        Some(length) => {
            let inner = input.get(at..at.checked_add(length)?)?;
            let mut offset = 0;
            while offset < inner.len() {
                offset += ber_element(&inner[offset..], depth + 1, &mut content)?;
            }
            at + length
        }
        None if constructed => {
            let mut offset = at;
            while input.get(offset..offset + 2)? != [0, 0] {
                offset += ber_element(&input[offset..], depth + 1, &mut content)?;
            }
            offset + 2
        }
        None => return None,
    };
    let tag: Vec<u8> = if tag == [0x24] {
        // A constructed OCTET STRING: its pieces, re-encoded, are primitive OCTET STRINGs whose
        // contents join into one.
        let mut joined = Vec::new();
        let mut reader = der::SliceReader::new(&content).ok()?;
        while !reader.is_finished() {
            joined.extend_from_slice(Any::decode(&mut reader).ok()?.value());
        }
        content = joined;
        vec![0x04]
    } else {
        tag.to_vec()
    };
    out.extend_from_slice(&tag);
    let length = content.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes = length.to_be_bytes();
        let skip = bytes.iter().take_while(|&&byte| byte == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(&content);
    Some(end)
}

/// The first BER element of `input` re-encoded with DER's lengths and primitive strings, for
/// signatures written in BER, which Windows reads; `None` when it is not BER either.
pub fn ber_to_der(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    ber_element(input, 0, &mut out)?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ber_becomes_der() {
        // SEQUENCE (indefinite) { INTEGER 5, OCTET STRING constructed (indefinite) { "ab", "c" } }
        let ber = [0x30, 0x80, 0x02, 0x01, 0x05, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0];
        let der = ber_to_der(&ber).unwrap();
        assert_eq!(der, [0x30, 0x08, 0x02, 0x01, 0x05, 0x04, 0x03, b'a', b'b', b'c']);
        // DER stays as it is, and a long length is written in its shortest form.
        let long: Vec<u8> = [&[0x04, 0x81, 0x80][..], &[7; 128]].concat();
        assert_eq!(ber_to_der(&long).unwrap(), long);
        assert_eq!(ber_to_der(&[0x04, 0x82, 0x00, 0x02, 1, 2]).unwrap(), [0x04, 0x02, 1, 2]);
        // Cut, unterminated or too deep: refused, not a panic.
        assert_eq!(ber_to_der(&ber[..10]), None);
        assert_eq!(ber_to_der(&[0x30, 0x80, 0x02, 0x01, 0x05]), None);
        let deep: Vec<u8> = std::iter::repeat_n([0x30, 0x80], 100).flatten().collect();
        assert_eq!(ber_to_der(&deep), None);
    }

    #[test]
    fn times_read_leniently_and_print_back() {
        let generalized = Any::new(der::Tag::GeneralizedTime, b"20210315101112.345Z".to_vec()).unwrap();
        let seconds = lenient_time(&generalized).unwrap();
        assert_eq!(unix_to_rfc3339(seconds), "2021-03-15T10:11:12Z");
        let utc = Any::new(der::Tag::UtcTime, b"991231235959Z".to_vec()).unwrap();
        assert_eq!(unix_to_rfc3339(lenient_time(&utc).unwrap()), "1999-12-31T23:59:59Z");
        assert_eq!(unix_to_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(unix_to_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        let bad = Any::new(der::Tag::GeneralizedTime, b"20211315101112Z".to_vec()).unwrap();
        assert_eq!(lenient_time(&bad), None);
    }
}
