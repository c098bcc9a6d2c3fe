//! What sources say about files (verdicts) and the analysts' indicators that speak through them.

use fileintel_core::{FileHash, FileHashes, Indicator, Timestamp, Verdict, VerdictSource};
use fjall::PersistMode;

use super::codec::{decode, encode};
use super::keys::{
    indicator_counter_key, indicator_key, indicator_value_key, keyable, tenant_prefix, verdict_keys, verdict_prefixes,
};
use super::{Inner, export};
use crate::StoreError;

impl Inner {
    pub(super) fn end_unlisted_verdicts(
        &self,
        source: &VerdictSource,
        listed: &std::collections::HashSet<FileHash>,
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        let _guard = self.verdict_writes()?;
        let source_key = source.key();
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        let mut ended = 0;
        // Verdicts are keyed by hash first: a source's are found by a pass over them all, which
        // a whole-feed import (itself a pass over the feed) can afford.
        for item in self.keyspaces.verdicts.iter() {
            let (key, value) = item.into_inner()?;
            if !key.ends_with(source_key.as_bytes()) {
                continue;
            }
            let hash = export::verdict_key_hash(&key)?;
            if key.len() != 1 + hash.bytes().len() + source_key.len() || listed.contains(&hash) {
                continue;
            }
            let mut verdict: Verdict = decode("verdict", &value)?;
            if verdict.source != *source || verdict.valid_until.is_some_and(|until| until <= at) {
                continue;
            }
            verdict.valid_until = Some(at);
            write.insert(&self.keyspaces.verdicts, key, encode(&verdict));
            ended += 1;
        }
        write.commit()?;
        Ok(ended)
    }

    pub(super) fn delete_verdict(&self, hashes: &FileHashes, source: &VerdictSource) -> Result<bool, StoreError> {
        let _guard = self.verdict_writes()?;
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        let mut found = false;
        for key in verdict_keys(hashes, source) {
            if self.keyspaces.verdicts.get(&key)?.is_some() {
                found = true;
                write.remove(&self.keyspaces.verdicts, key);
            }
        }
        write.commit()?;
        Ok(found)
    }

    pub(super) fn list_indicators(&self, tenant: &str) -> Result<Vec<Indicator>, StoreError> {
        if !keyable(&[tenant]) {
            return Ok(Vec::new());
        }
        let mut indicators = Vec::new();
        for item in self.keyspaces.indicators.prefix(tenant_prefix(tenant)) {
            indicators.push(decode("indicator", &item.value()?)?);
        }
        Ok(indicators)
    }

    pub(super) fn delete_indicator(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let _guard = self.verdict_writes()?;
        let Ok(number) = id.parse::<u64>() else { return Ok(false) };
        if !keyable(&[tenant]) {
            return Ok(false);
        }
        let key = indicator_key(tenant, number);
        let Some(bytes) = self.keyspaces.indicators.get(&key)? else { return Ok(false) };
        let indicator: Indicator = decode("indicator", &bytes)?;
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        write.remove(&self.keyspaces.indicators, key);
        write.remove(&self.keyspaces.indicators_by_value, indicator_value_key(&indicator));
        if let Ok(hash) = indicator.hash() {
            let source = VerdictSource::Indicator { tenant: tenant.to_owned(), id: indicator.id.clone() };
            for key in verdict_keys(&FileHashes::from(hash), &source) {
                write.remove(&self.keyspaces.verdicts, key);
            }
        }
        write.commit()?;
        Ok(true)
    }

    pub(super) fn put_indicator(&self, mut indicator: Indicator) -> Result<Indicator, StoreError> {
        let _guard = self.verdict_writes()?;
        let value_key = indicator_value_key(&indicator);
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        match self.keyspaces.indicators_by_value.get(&value_key)? {
            Some(id) => {
                let id = String::from_utf8_lossy(&id).into_owned();
                let number: u64 = id.parse().map_err(|_| StoreError::Corrupt(format!("indicator id {id}")))?;
                if let Some(bytes) = self.keyspaces.indicators.get(indicator_key(&indicator.tenant, number))? {
                    let previous: Indicator = decode("indicator", &bytes)?;
                    indicator.creation_time = previous.creation_time;
                    indicator.created_by = previous.created_by;
                }
                indicator.id = id;
            }
            None => {
                // Each tenant numbers its own, so an id tells nothing of other tenants'. A store
                // from before kept one count for all tenants: a tenant's own count starts past
                // it, so no id it ever gave out is given again.
                let counter = indicator_counter_key(&indicator.tenant);
                let last = match self.keyspaces.meta.get(&counter)? {
                    Some(bytes) => decode::<u64>("indicator counter", &bytes)?,
                    None => match self.keyspaces.meta.get("indicator_seq")? {
                        Some(bytes) => decode::<u64>("indicator sequence", &bytes)?,
                        None => 0,
                    },
                };
                let next = last + 1;
                write.insert(&self.keyspaces.meta, counter, encode(&next));
                indicator.id = next.to_string();
                write.insert(&self.keyspaces.indicators_by_value, value_key, indicator.id.clone().into_bytes());
            }
        }
        let number: u64 = indicator.id.parse().unwrap_or_default();
        write.insert(&self.keyspaces.indicators, indicator_key(&indicator.tenant, number), encode(&indicator));
        let source = VerdictSource::Indicator { tenant: indicator.tenant.clone(), id: indicator.id.clone() };
        match indicator.verdict() {
            Some((hashes, verdict)) => {
                for key in verdict_keys(&hashes, &source) {
                    write.insert(&self.keyspaces.verdicts, key, encode(&verdict));
                }
                self.has_verdicts.store(true, std::sync::atomic::Ordering::Release);
            }
            None => {
                if let Ok(hash) = indicator.hash() {
                    for key in verdict_keys(&FileHashes::from(hash), &source) {
                        write.remove(&self.keyspaces.verdicts, key);
                    }
                }
            }
        }
        write.commit()?;
        Ok(indicator)
    }

    pub(super) fn put_verdicts(&self, verdicts: Vec<(FileHashes, Verdict)>) -> Result<u64, StoreError> {
        let _guard = self.verdict_writes()?;
        let mut write = self.db.batch().durability(Some(PersistMode::SyncAll));
        // Later statements in the same call compete with earlier ones as with stored ones.
        let mut pending: ahash::AHashMap<Vec<u8>, Verdict> = ahash::AHashMap::new();
        let mut changed = 0;
        for (hashes, verdict) in verdicts {
            let mut wrote = false;
            for key in verdict_keys(&hashes, &verdict.source) {
                let stored = match pending.get(&key) {
                    Some(verdict) => Some(verdict.clone()),
                    None => self
                        .keyspaces
                        .verdicts
                        .get(&key)?
                        .map(|bytes| decode::<Verdict>("verdict", &bytes))
                        .transpose()?,
                };
                if stored.as_ref().is_some_and(|stored| !verdict.supersedes(stored) || *stored == verdict) {
                    continue;
                }
                write.insert(&self.keyspaces.verdicts, key.clone(), encode(&verdict));
                pending.insert(key, verdict.clone());
                wrote = true;
            }
            changed += u64::from(wrote);
        }
        write.commit()?;
        if changed > 0 {
            self.has_verdicts.store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(changed)
    }

    pub(super) fn verdicts(&self, hashes: &FileHashes) -> Result<Vec<Verdict>, StoreError> {
        if !self.has_verdicts.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(Vec::new());
        }
        let mut by_source: std::collections::BTreeMap<String, Verdict> = std::collections::BTreeMap::new();
        for prefix in verdict_prefixes(hashes) {
            for item in self.keyspaces.verdicts.prefix(&prefix) {
                let verdict: Verdict = decode("verdict", &item.value()?)?;
                let key = verdict.source.key();
                if by_source.get(&key).is_none_or(|known| verdict.said_at > known.said_at) {
                    by_source.insert(key, verdict);
                }
            }
        }
        Ok(by_source.into_values().collect())
    }
}
