//! How the embedded store spells its keys (the layout is the table of [`Keyspaces`](super::Keyspaces)):
//! every integer big-endian so keys sort numerically, times and buckets with their sign bit
//! flipped so they sort before 1970 too.

use fileintel_core::{FileHashes, Indicator, Timestamp, VerdictSource};

use crate::StoreError;

/// Times as key bytes that sort in time order, before 1970 too.
pub(super) fn time_bytes(time: Timestamp) -> [u8; 8] {
    ((time.0 as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn time_from_bytes(bytes: &[u8]) -> Timestamp {
    Timestamp((u64::from_be_bytes(bytes.try_into().unwrap_or_default()) ^ (1 << 63)) as i64)
}

/// File id and tenant id: the prefix every per-tenant key of a file starts with.
pub(super) fn file_tenant(file: u64, tenant: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&file.to_be_bytes());
    key[8..].copy_from_slice(&tenant.to_be_bytes());
    key
}

pub(super) fn recent_time_key(file: u64, tenant: u32, time: Timestamp) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..12].copy_from_slice(&file_tenant(file, tenant));
    key[12..].copy_from_slice(&time_bytes(time));
    key
}

pub(super) fn recent_device_key(file: u64, tenant: u32, last: Timestamp, device: u32) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..20].copy_from_slice(&recent_time_key(file, tenant, last));
    key[20..].copy_from_slice(&device.to_be_bytes());
    key
}

/// The two levels of `recent_counts`.
pub(super) const HOUR_LEVEL: u8 = 0;
pub(super) const DAY_LEVEL: u8 = 1;

pub(super) fn count_key(file: u64, tenant: u32, level: u8, bucket: i64) -> [u8; 21] {
    let mut key = [0u8; 21];
    key[..12].copy_from_slice(&file_tenant(file, tenant));
    key[12] = level;
    key[13..].copy_from_slice(&((bucket as u64) ^ (1 << 63)).to_be_bytes());
    key
}

/// The hour and the day counters a last sighting at `time` counts in.
pub(super) fn count_keys(file: u64, tenant: u32, time: Timestamp) -> [[u8; 21]; 2] {
    [count_key(file, tenant, HOUR_LEVEL, time.hour()), count_key(file, tenant, DAY_LEVEL, time.day())]
}

pub(super) fn bucket_of_key(key: &[u8]) -> i64 {
    (u64::from_be_bytes(key[13..21].try_into().unwrap_or_default()) ^ (1 << 63)) as i64
}

pub(super) fn name_key(file: u64, tenant: u32, name: &str) -> Vec<u8> {
    let mut key = file_tenant(file, tenant).to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

pub(super) fn sighting_key(file: u64, tenant: u32, device: u32) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&file.to_be_bytes());
    key[8..12].copy_from_slice(&tenant.to_be_bytes());
    key[12..].copy_from_slice(&device.to_be_bytes());
    key
}

pub(super) fn device_key(tenant: u32, device_id: &str) -> Vec<u8> {
    let mut key = tenant.to_be_bytes().to_vec();
    key.extend_from_slice(device_id.as_bytes());
    key
}

/// Whether names can be part of a key: no longer than the core's identifier rule. Nothing longer
/// is ever stored, so a lookup by a longer one finds nothing (and the engine, which refuses keys
/// over 64 KiB, is never asked).
pub(super) fn keyable(names: &[&str]) -> bool {
    names.iter().all(|name| name.len() <= fileintel_core::MAX_ID_BYTES)
}

/// Refuses to store under names longer than the core's identifier rule.
pub(super) fn check_keyable(fields: &[(&'static str, &str)]) -> Result<(), StoreError> {
    for (field, value) in fields {
        fileintel_core::check_identifier(field, value).map_err(|error| StoreError::Backend(error.to_string()))?;
    }
    Ok(())
}

pub(super) fn application_key(tenant: &str, client_id: &str) -> Vec<u8> {
    let mut key = tenant.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(client_id.as_bytes());
    key
}

pub(super) fn tenant_prefix(tenant: &str) -> Vec<u8> {
    [tenant.as_bytes(), &[0]].concat()
}

pub(super) fn indicator_key(tenant: &str, number: u64) -> Vec<u8> {
    [tenant_prefix(tenant), format!("{number:020}").into_bytes()].concat()
}

/// The `meta` key of a tenant's last indicator id.
pub(super) fn indicator_counter_key(tenant: &str) -> Vec<u8> {
    [b"indicator_seq\0".as_slice(), tenant.as_bytes()].concat()
}

pub(super) fn indicator_value_key(indicator: &Indicator) -> Vec<u8> {
    [
        tenant_prefix(&indicator.tenant),
        indicator.indicator_type.as_bytes().to_vec(),
        vec![0],
        indicator.indicator_value.to_ascii_lowercase().into_bytes(),
    ]
    .concat()
}

/// The prefixes under which verdicts about a file with these hashes are kept.
pub(super) fn verdict_prefixes(hashes: &FileHashes) -> Vec<Vec<u8>> {
    let mut prefixes = Vec::new();
    if let Some(md5) = hashes.md5 {
        prefixes.push([&[0u8][..], &md5.0].concat());
    }
    if let Some(sha1) = hashes.sha1 {
        prefixes.push([&[1u8][..], &sha1.0].concat());
    }
    if let Some(sha256) = hashes.sha256 {
        prefixes.push([&[2u8][..], &sha256.0].concat());
    }
    prefixes
}

pub(super) fn verdict_keys(hashes: &FileHashes, source: &VerdictSource) -> Vec<Vec<u8>> {
    let source = source.key();
    verdict_prefixes(hashes).into_iter().map(|prefix| [prefix, source.as_bytes().to_vec()].concat()).collect()
}
