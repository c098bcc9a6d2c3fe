//! The MDE `File` entity: the exact JSON shape `GET /api/files/{id}` answers with.

use serde::Serialize;

use crate::hash::{Md5, Sha1, Sha256};
use crate::record::{DeterminationType, FileRecord};
use crate::time::Timestamp;

/// The `File` entity in the order of MDE's `$metadata`, every property present, `null` where unknown.
/// Field order is the wire order: serde writes struct fields as declared.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntity<'a> {
    #[serde(rename = "@odata.context")]
    pub odata_context: String,
    pub sha1: Option<Sha1>,
    pub sha256: Option<Sha256>,
    pub md5: Option<Md5>,
    pub global_prevalence: Option<u64>,
    #[serde(serialize_with = "timestamp_text")]
    pub global_first_observed: Option<Timestamp>,
    #[serde(serialize_with = "timestamp_text")]
    pub global_last_observed: Option<Timestamp>,
    pub size: Option<u64>,
    pub file_type: Option<&'a str>,
    pub is_pe_file: Option<bool>,
    pub file_publisher: Option<&'a str>,
    pub file_product_name: Option<&'a str>,
    pub signer: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub signer_hash: Option<Sha1>,
    pub is_valid_certificate: Option<bool>,
    pub determination_type: DeterminationType,
    pub determination_value: Option<&'a str>,
}

fn timestamp_text<S: serde::Serializer>(value: &Option<Timestamp>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(timestamp) => serializer.collect_str(timestamp),
        None => serializer.serialize_none(),
    }
}

/// `{scheme}://{host}/api/$metadata#Files/$entity`, from the scheme and host the client called.
pub fn file_entity_context(scheme: &str, host: &str) -> String {
    format!("{scheme}://{host}/api/$metadata#Files/$entity")
}

impl<'a> FileEntity<'a> {
    /// The entity of `record`, showing `facts` (usually [`FileRecord::effective_facts`]).
    pub fn new(odata_context: String, record: &'a FileRecord, facts: &'a crate::FileFacts) -> Self {
        // A file nobody has observed (known only from analysis or a feed) has no prevalence yet, rather than zero.
        let observed = record.global_first_observed.is_some();
        FileEntity {
            odata_context,
            sha1: record.hashes.sha1,
            sha256: record.hashes.sha256,
            md5: record.hashes.md5,
            global_prevalence: observed.then_some(record.global_prevalence),
            global_first_observed: record.global_first_observed,
            global_last_observed: record.global_last_observed,
            size: record.size,
            file_type: facts.file_type.as_deref(),
            is_pe_file: facts.is_pe_file,
            file_publisher: facts.file_publisher.as_deref(),
            file_product_name: facts.file_product_name.as_deref(),
            signer: facts.signer.as_deref(),
            issuer: facts.issuer.as_deref(),
            signer_hash: facts.signer_hash,
            is_valid_certificate: facts.is_valid_certificate,
            determination_type: facts.determination_type,
            determination_value: facts.determination_value.as_deref(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings, numbers and options into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::FileHashes;
    use crate::record::FileFacts;

    #[test]
    fn the_entity_has_every_key_in_metadata_order_with_explicit_nulls() {
        let record = FileRecord {
            hashes: FileHashes {
                sha1: Some(Sha1::parse("4388963AAA83AFE2042A46A3C017AD50BDCDAFB3").unwrap()),
                sha256: None,
                md5: None,
            },
            global_prevalence: 3,
            global_first_observed: Some(Timestamp::parse("2017-09-19T03:51:27.6785431Z").unwrap()),
            global_last_observed: Some(Timestamp::parse("2020-01-06T03:59:21Z").unwrap()),
            size: Some(22139496),
            facts: FileFacts {
                file_publisher: Some("CHENGDU \"YIWO\"".into()),
                determination_type: DeterminationType::Pua,
                determination_value: Some("PUA:Win32/FusionCore".into()),
                ..Default::default()
            },
            reported: Default::default(),
            tenants: Vec::new(),
        };
        let context = file_entity_context("https", "api.example");
        let json = String::from_utf8(FileEntity::new(context, &record, &record.facts).to_json()).unwrap();
        let expected = concat!(
            r#"{"@odata.context":"https://api.example/api/$metadata#Files/$entity","#,
            r#""sha1":"4388963aaa83afe2042a46a3c017ad50bdcdafb3","sha256":null,"md5":null,"#,
            r#""globalPrevalence":3,"globalFirstObserved":"2017-09-19T03:51:27.6785431Z","#,
            r#""globalLastObserved":"2020-01-06T03:59:21Z","size":22139496,"fileType":null,"isPeFile":null,"#,
            r#""filePublisher":"CHENGDU \"YIWO\"","fileProductName":null,"signer":null,"issuer":null,"#,
            r#""signerHash":null,"isValidCertificate":null,"determinationType":"Pua","#,
            r#""determinationValue":"PUA:Win32/FusionCore"}"#
        );
        assert_eq!(json, expected);
    }

    #[test]
    fn an_unobserved_file_has_null_prevalence_and_unknown_determination() {
        let record = FileRecord::default();
        let json: serde_json::Value = serde_json::from_slice(
            &FileEntity::new(file_entity_context("http", "h"), &record, &record.facts).to_json(),
        )
        .unwrap();
        assert_eq!(json["globalPrevalence"], serde_json::Value::Null);
        assert_eq!(json["determinationType"], "Unknown");
        assert_eq!(json.as_object().unwrap().len(), 18);
    }
}
