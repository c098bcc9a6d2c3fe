//! Verdicts and indicators. Writers take one transaction-scoped advisory lock, as fjall's take
//! its `verdict_writes` mutex: whether a statement supersedes the stored one is decided on what
//! was read, so two replicas must not interleave there. Readers take no lock.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::Transaction;
use fileintel_core::{FileHashes, Indicator, Verdict, VerdictSource};

use crate::error::Failure;
use crate::reads::{from_json, to_json};

/// The advisory lock key verdict and indicator writers hold ("fiverdic" in ASCII).
const VERDICT_LOCK: i64 = 0x6669_7665_7264_6963;

/// Hash kind, hash: the keys a file's verdicts are kept under (0 MD5, 1 SHA-1, 2 SHA-256, as
/// fjall numbers them, so that lookups visit them in fjall's order).
fn verdict_keys(hashes: &FileHashes) -> Vec<(i16, &[u8])> {
    let mut keys = Vec::with_capacity(3);
    if let Some(md5) = &hashes.md5 {
        keys.push((0, &md5.0[..]));
    }
    if let Some(sha1) = &hashes.sha1 {
        keys.push((1, &sha1.0[..]));
    }
    if let Some(sha256) = &hashes.sha256 {
        keys.push((2, &sha256.0[..]));
    }
    keys
}

async fn lock(tx: &Transaction<'_>) -> Result<(), Failure> {
    let statement = tx.prepare_cached("SELECT pg_advisory_xact_lock($1)").await?;
    tx.execute(&statement, &[&VERDICT_LOCK]).await?;
    Ok(())
}

const STORED_VERDICTS: &str = "
    SELECT v.hash_kind, v.hash, v.source, v.verdict::text
    FROM verdicts AS v
    JOIN unnest($1::int2[], $2::bytea[], $3::text[]) AS k(hash_kind, hash, source)
      ON v.hash_kind = k.hash_kind AND v.hash = k.hash AND v.source = k.source";

const WRITE_VERDICTS: &str = "
    INSERT INTO verdicts (hash_kind, hash, source, verdict)
    SELECT k.hash_kind, k.hash, k.source, k.verdict::json
    FROM unnest($1::int2[], $2::bytea[], $3::text[], $4::text[]) AS k(hash_kind, hash, source, verdict)
    ON CONFLICT (hash_kind, hash, source) DO UPDATE SET verdict = excluded.verdict";

const DELETE_VERDICTS: &str = "
    DELETE FROM verdicts AS v
    USING unnest($1::int2[], $2::bytea[]) AS k(hash_kind, hash)
    WHERE v.hash_kind = k.hash_kind AND v.hash = k.hash AND v.source = $3
    RETURNING 1";

type Key = (i16, Vec<u8>, String);

/// Writes verdicts under their keys, each replacing whatever was there.
async fn write(tx: &Transaction<'_>, writes: &[(Key, &Verdict)]) -> Result<(), Failure> {
    if writes.is_empty() {
        return Ok(());
    }
    let kinds: Vec<i16> = writes.iter().map(|((kind, _, _), _)| *kind).collect();
    let hashes: Vec<&[u8]> = writes.iter().map(|((_, hash, _), _)| hash.as_slice()).collect();
    let sources: Vec<&str> = writes.iter().map(|((_, _, source), _)| source.as_str()).collect();
    let mut texts = Vec::with_capacity(writes.len());
    for (_, verdict) in writes {
        texts.push(to_json("verdict", verdict)?);
    }
    let statement = tx.prepare_cached(WRITE_VERDICTS).await?;
    tx.execute(&statement, &[&kinds, &hashes, &sources, &texts]).await?;
    Ok(())
}

async fn delete(tx: &Transaction<'_>, hashes: &FileHashes, source: &str) -> Result<bool, Failure> {
    let keys = verdict_keys(hashes);
    let kinds: Vec<i16> = keys.iter().map(|(kind, _)| *kind).collect();
    let bytes: Vec<&[u8]> = keys.iter().map(|(_, hash)| *hash).collect();
    let statement = tx.prepare_cached(DELETE_VERDICTS).await?;
    Ok(!tx.query(&statement, &[&kinds, &bytes, &source]).await?.is_empty())
}

/// `Store::put_verdicts` as one attempt of its transaction: fjall's rule, each statement
/// competing with what is stored and with the earlier statements of the same call.
pub(crate) async fn put_verdicts(tx: &Transaction<'_>, verdicts: &[(FileHashes, Verdict)]) -> Result<u64, Failure> {
    lock(tx).await?;
    let mut keys: Vec<Key> = Vec::new();
    for (hashes, verdict) in verdicts {
        let source = verdict.source.key();
        keys.extend(verdict_keys(hashes).into_iter().map(|(kind, hash)| (kind, hash.to_vec(), source.clone())));
    }
    let mut stored: HashMap<Key, Verdict> = HashMap::new();
    if !keys.is_empty() {
        let kinds: Vec<i16> = keys.iter().map(|key| key.0).collect();
        let hashes: Vec<&[u8]> = keys.iter().map(|key| key.1.as_slice()).collect();
        let sources: Vec<&str> = keys.iter().map(|key| key.2.as_str()).collect();
        let statement = tx.prepare_cached(STORED_VERDICTS).await?;
        for row in tx.query(&statement, &[&kinds, &hashes, &sources]).await? {
            let key = (row.try_get(0)?, row.try_get::<_, Vec<u8>>(1)?, row.try_get(2)?);
            stored.insert(key, from_json("verdict", row.try_get(3)?)?);
        }
    }
    // The last statement written under each key, in the order first written.
    let mut latest: Vec<(Key, &Verdict)> = Vec::new();
    let mut position: HashMap<Key, usize> = HashMap::new();
    let mut changed = 0;
    for (hashes, verdict) in verdicts {
        let source = verdict.source.key();
        let mut wrote = false;
        for (kind, hash) in verdict_keys(hashes) {
            let key = (kind, hash.to_vec(), source.clone());
            let known = position.get(&key).map(|&index| latest[index].1).or_else(|| stored.get(&key));
            if known.is_some_and(|known| !verdict.supersedes(known) || known == verdict) {
                continue;
            }
            match position.get(&key) {
                Some(&index) => latest[index].1 = verdict,
                None => {
                    position.insert(key.clone(), latest.len());
                    latest.push((key, verdict));
                }
            }
            wrote = true;
        }
        changed += u64::from(wrote);
    }
    write(tx, &latest).await?;
    Ok(changed)
}

const SOURCE_VERDICTS: &str = "SELECT hash_kind, hash, verdict::text FROM verdicts WHERE source = $1";

/// `Store::end_unlisted_verdicts` as one attempt of its transaction: the source's verdicts read
/// whole (a whole-feed import is itself a pass over the feed), those under a hash `listed` does
/// not hold ended at `at` and written back.
pub(crate) async fn end_unlisted_verdicts(
    tx: &Transaction<'_>,
    source: &VerdictSource,
    listed: &std::collections::HashSet<fileintel_core::FileHash>,
    at: fileintel_core::Timestamp,
) -> Result<u64, Failure> {
    lock(tx).await?;
    let source_key = source.key();
    let statement = tx.prepare_cached(SOURCE_VERDICTS).await?;
    let mut ended: Vec<(Key, Verdict)> = Vec::new();
    for row in tx.query(&statement, &[&source_key]).await? {
        let (kind, hash): (i16, Vec<u8>) = (row.try_get(0)?, row.try_get(1)?);
        let parsed = u8::try_from(kind).ok().and_then(|kind| fileintel_core::FileHash::from_key(kind, &hash));
        let Some(parsed) = parsed else {
            return Err(crate::reads::corrupt("verdict key", format!("hash kind {kind}")));
        };
        if listed.contains(&parsed) {
            continue;
        }
        let mut verdict: Verdict = from_json("verdict", row.try_get(2)?)?;
        if verdict.valid_until.is_some_and(|until| until <= at) {
            continue;
        }
        verdict.valid_until = Some(at);
        ended.push(((kind, hash, source_key.clone()), verdict));
    }
    let writes: Vec<(Key, &Verdict)> = ended.iter().map(|(key, verdict)| (key.clone(), verdict)).collect();
    write(tx, &writes).await?;
    Ok(ended.len() as u64)
}

/// Every source's verdict about the file with these hashes: fjall's order of visiting (MD5,
/// SHA-1, SHA-256, each by source key), the first kept unless a later one is strictly newer.
pub(crate) async fn verdicts(client: &deadpool_postgres::Client, hashes: &FileHashes) -> Result<Vec<Verdict>, Failure> {
    let keys = verdict_keys(hashes);
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let kinds: Vec<i16> = keys.iter().map(|(kind, _)| *kind).collect();
    let bytes: Vec<&[u8]> = keys.iter().map(|(_, hash)| *hash).collect();
    let statement = client
        .prepare_cached(
            "SELECT v.verdict::text
             FROM verdicts AS v
             JOIN unnest($1::int2[], $2::bytea[]) AS k(hash_kind, hash)
               ON v.hash_kind = k.hash_kind AND v.hash = k.hash
             ORDER BY v.hash_kind, v.source",
        )
        .await?;
    let rows = client.query(&statement, &[&kinds, &bytes]).await?;
    newest_per_source(rows.iter().map(|row| row.try_get(0)).collect::<Result<Vec<&str>, _>>()?)
}

/// One verdict per source from verdicts as stored (JSON text), read in fjall's order of
/// visiting (MD5, SHA-1, SHA-256, each by source key): the first kept unless a later one is
/// strictly newer.
pub(crate) fn newest_per_source<'a>(stored: impl IntoIterator<Item = &'a str>) -> Result<Vec<Verdict>, Failure> {
    let mut by_source: BTreeMap<String, Verdict> = BTreeMap::new();
    for text in stored {
        let verdict: Verdict = from_json("verdict", text)?;
        let key = verdict.source.key();
        if by_source.get(&key).is_none_or(|known| verdict.said_at > known.said_at) {
            by_source.insert(key, verdict);
        }
    }
    Ok(by_source.into_values().collect())
}

pub(crate) async fn delete_verdict(
    tx: &Transaction<'_>,
    hashes: &FileHashes,
    source: &VerdictSource,
) -> Result<bool, Failure> {
    lock(tx).await?;
    delete(tx, hashes, &source.key()).await
}

/// The last id before any tenant's first: what the one sequence of schema version 1 had given
/// out (0 on a database that began later), so that no id given then is given again.
const ID_FLOOR: &str = "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM indicator_ids)";

/// The id a new indicator brings, if it may keep it (see [`put_indicator`]); its tenant's count
/// is moved past it, so ids drawn later never meet it.
async fn kept_id(tx: &Transaction<'_>, indicator: &Indicator, keep_id: bool) -> Result<Option<i64>, Failure> {
    let Some(id) = keep_id.then(|| indicator.id.parse::<i64>().ok()).flatten().filter(|&id| id > 0) else {
        return Ok(None);
    };
    let statement = tx.prepare_cached("SELECT 1 FROM indicators WHERE tenant = $1 AND id = $2").await?;
    if tx.query_opt(&statement, &[&indicator.tenant, &id]).await?.is_some() {
        return Ok(None);
    }
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO indicator_counters (tenant, last_id) VALUES ($1, greatest($2, {ID_FLOOR}))
             ON CONFLICT (tenant) DO UPDATE SET last_id = greatest(indicator_counters.last_id, $2)"
        ))
        .await?;
    tx.execute(&statement, &[&indicator.tenant, &id]).await?;
    Ok(Some(id))
}

/// The next id of the tenant's own count.
async fn next_id(tx: &Transaction<'_>, tenant: &str) -> Result<i64, Failure> {
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO indicator_counters (tenant, last_id) VALUES ($1, {ID_FLOOR} + 1)
             ON CONFLICT (tenant) DO UPDATE SET last_id = indicator_counters.last_id + 1
             RETURNING last_id"
        ))
        .await?;
    Ok(tx.query_one(&statement, &[&tenant]).await?.try_get(0)?)
}

/// `Store::put_indicator` as one attempt of its transaction: the indicator of the same tenant,
/// type and (ASCII case-insensitive) value keeps its id and creation, else it gets the next id
/// of its tenant's own count; its verdict is written, or taken back, with it.
///
/// With `keep_id`, a new indicator keeps the numeric id it comes with when its tenant has no
/// indicator of that id yet, and the sequence moves past it: ids survive a move from the
/// embedded store (which numbers them the same way), so playbooks that kept them still work.
pub(crate) async fn put_indicator(
    tx: &Transaction<'_>,
    mut indicator: Indicator,
    keep_id: bool,
) -> Result<Indicator, Failure> {
    lock(tx).await?;
    let value_key = indicator.indicator_value.to_ascii_lowercase();
    let statement = tx
        .prepare_cached(
            "SELECT id, indicator::text FROM indicators
             WHERE tenant = $1 AND indicator_type = $2 AND value_key = $3",
        )
        .await?;
    let id: i64 = match tx.query_opt(&statement, &[&indicator.tenant, &indicator.indicator_type, &value_key]).await? {
        Some(row) => {
            let previous: Indicator = from_json("indicator", row.try_get(1)?)?;
            indicator.creation_time = previous.creation_time;
            indicator.created_by = previous.created_by;
            row.try_get(0)?
        }
        None => match kept_id(tx, &indicator, keep_id).await? {
            Some(id) => id,
            None => next_id(tx, &indicator.tenant).await?,
        },
    };
    indicator.id = id.to_string();
    let statement = tx
        .prepare_cached(
            "INSERT INTO indicators (tenant, id, indicator_type, value_key, indicator)
             VALUES ($1, $2, $3, $4, $5::text::json)
             ON CONFLICT (tenant, id) DO UPDATE SET indicator = excluded.indicator",
        )
        .await?;
    let text = to_json("indicator", &indicator)?;
    tx.execute(&statement, &[&indicator.tenant, &id, &indicator.indicator_type, &value_key, &text]).await?;
    let source = VerdictSource::Indicator { tenant: indicator.tenant.clone(), id: indicator.id.clone() }.key();
    match indicator.verdict() {
        Some((hashes, verdict)) => {
            let writes: Vec<(Key, &Verdict)> = verdict_keys(&hashes)
                .into_iter()
                .map(|(kind, hash)| ((kind, hash.to_vec(), source.clone()), &verdict))
                .collect();
            write(tx, &writes).await?;
        }
        None => {
            if let Ok(hash) = indicator.hash() {
                delete(tx, &FileHashes::from(hash), &source).await?;
            }
        }
    }
    Ok(indicator)
}

pub(crate) async fn list_indicators(
    client: &deadpool_postgres::Client,
    tenant: &str,
) -> Result<Vec<Indicator>, Failure> {
    let statement =
        client.prepare_cached("SELECT indicator::text FROM indicators WHERE tenant = $1 ORDER BY id").await?;
    let mut indicators = Vec::new();
    for row in client.query(&statement, &[&tenant]).await? {
        indicators.push(from_json("indicator", row.try_get(0)?)?);
    }
    Ok(indicators)
}

/// `Store::delete_indicator` as one attempt of its transaction; an id that is not one of ours
/// (not a number) names nothing.
pub(crate) async fn delete_indicator(tx: &Transaction<'_>, tenant: &str, id: &str) -> Result<bool, Failure> {
    let Ok(number) = id.parse::<u64>() else { return Ok(false) };
    let Ok(number) = i64::try_from(number) else { return Ok(false) };
    lock(tx).await?;
    let statement =
        tx.prepare_cached("DELETE FROM indicators WHERE tenant = $1 AND id = $2 RETURNING indicator::text").await?;
    let Some(row) = tx.query_opt(&statement, &[&tenant, &number]).await? else { return Ok(false) };
    let indicator: Indicator = from_json("indicator", row.try_get(0)?)?;
    if let Ok(hash) = indicator.hash() {
        let source = VerdictSource::Indicator { tenant: tenant.to_owned(), id: indicator.id.clone() }.key();
        delete(tx, &FileHashes::from(hash), &source).await?;
    }
    Ok(true)
}
