//! Reads that answer a lookup: a file's record, and the devices of a tenant that saw it.

use fileintel_core::{FileHash, FileRecord};

use super::Inner;
use super::codec::{corrupt, decode_device_info, decode_record, decode_sighting, u32_value};
use super::keys::keyable;
use crate::{DeviceSighting, StoreError};

impl Inner {
    pub(super) fn load_record(&self, id: u64) -> Result<FileRecord, StoreError> {
        match self.keyspaces.files.get(id.to_be_bytes())? {
            Some(bytes) => decode_record(&bytes),
            None => Err(corrupt("file record", format!("index points at missing file {id}"))),
        }
    }

    pub(super) fn get_file(&self, hash: &FileHash) -> Result<Option<FileRecord>, StoreError> {
        match self.lookup_id(hash)? {
            Some(id) => self.load_record(id).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn file_devices(&self, hash: &FileHash, tenant: &str) -> Result<Vec<DeviceSighting>, StoreError> {
        let Some(id) = self.lookup_id(hash)? else {
            return Ok(Vec::new());
        };
        if !keyable(&[tenant]) {
            return Ok(Vec::new());
        }
        let Some(tenant) = self.keyspaces.tenants.get(tenant)? else {
            return Ok(Vec::new());
        };
        let mut prefix = id.to_be_bytes().to_vec();
        prefix.extend_from_slice(&tenant);
        let mut devices = Vec::new();
        for item in self.keyspaces.sightings.prefix(prefix) {
            let (key, value) = item.into_inner()?;
            let sighting = decode_sighting(&value)?;
            let number = u32_value("sighting key", &key[12..])?;
            let info = match self.keyspaces.device_info.get(number.to_be_bytes())? {
                Some(bytes) => decode_device_info(&bytes)?,
                None => return Err(corrupt("device info", format!("missing device {number}"))),
            };
            devices.push(DeviceSighting {
                device_id: info.device_id,
                device_name: info.device_name,
                first_seen: sighting.first,
                last_seen: sighting.last,
                file_name: sighting.file_name,
                device_first_seen: info.first_seen,
                device_last_seen: info.last_seen,
                os_platform: info.os_platform,
            });
        }
        Ok(devices)
    }
}
