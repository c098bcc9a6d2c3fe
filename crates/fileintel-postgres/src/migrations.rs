//! The schema, as numbered migrations applied in order, each at most once.
//!
//! `migrate` runs in one transaction under a transaction-scoped advisory lock, so replicas that
//! start together apply each migration once between them: the second waits for the first to
//! commit, then finds nothing left to do. A migration is never edited once released; a change is
//! a new one appended to [`MIGRATIONS`].

use deadpool_postgres::Client;

use crate::error::Failure;

/// The advisory lock key migrations hold ("fimigrat" in ASCII): any constant no other
/// application on the database uses.
const MIGRATION_LOCK: i64 = 0x6669_6d69_6772_6174;

/// Every migration, by version, in the order they apply.
pub(crate) const MIGRATIONS: &[(i32, &str)] =
    &[(1, V1_INITIAL), (2, V2_IDENTITY_GENERATION), (3, V3_INDICATOR_IDS_PER_TENANT), (4, V4_TENANT_ROWS)];

/// The first schema. Times are `bigint` 100-nanosecond ticks since 1970 (`Timestamp`'s own unit:
/// `timestamptz` keeps microseconds only, and reads must give back exactly what was written).
/// Keys and names are `COLLATE "C"`: they compare as bytes, like fjall's keys, which makes every
/// listing's order the embedded store's and the indexes cheaper than a language's collation.
/// Values kept whole (facts, reports, verdicts, indicators) are `json`, their serde form as
/// text: nothing queries inside them, and unlike `jsonb` it keeps any string, `\u0000` too.
/// There are no foreign keys: every write that relates rows holds its files' row locks and keeps
/// them consistent in one transaction, and a key check per sighting would cost ingest a lock each.
const V1_INITIAL: &str = r#"
CREATE SEQUENCE file_ids AS bigint;

CREATE TABLE files (
    id bigint PRIMARY KEY DEFAULT nextval('file_ids'),
    sha1 bytea CHECK (octet_length(sha1) = 20),
    sha256 bytea CHECK (octet_length(sha256) = 32),
    md5 bytea CHECK (octet_length(md5) = 16),
    prevalence bigint NOT NULL DEFAULT 0,
    first_observed bigint,
    last_observed bigint,
    size bigint,
    facts json NOT NULL,
    reported json NOT NULL
);
ALTER SEQUENCE file_ids OWNED BY files.id;

-- Every hash of every file, to its file: the one unique index on hashes. One index rather than
-- a unique index per column of `files`, because writers claim new hashes in one sorted pass
-- over it: a row of `files` carries up to three keys, so two replicas creating overlapping
-- files would take them in different orders across three indexes, and deadlock.
CREATE TABLE file_hashes (
    kind smallint NOT NULL CHECK (kind BETWEEN 0 AND 2),
    hash bytea NOT NULL,
    file_id bigint NOT NULL,
    PRIMARY KEY (kind, hash)
);

-- The count of files, in a few rows so that concurrent writers rarely wait on the same one.
CREATE TABLE file_counts (
    shard integer PRIMARY KEY,
    files bigint NOT NULL
);

CREATE TABLE sightings (
    file_id bigint NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    device_id text COLLATE "C" NOT NULL,
    first_seen bigint NOT NULL,
    last_seen bigint NOT NULL,
    file_name text,
    names text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (file_id, tenant, device_id)
);
-- A window's devices are a range of this index: /stats counts them without reading the rows.
CREATE INDEX sightings_by_last_seen ON sightings (file_id, tenant, last_seen);

CREATE TABLE observation_times (
    file_id bigint NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    time bigint NOT NULL,
    PRIMARY KEY (file_id, tenant, time)
);

CREATE TABLE devices (
    tenant text COLLATE "C" NOT NULL,
    device_id text COLLATE "C" NOT NULL,
    device_name text,
    first_seen bigint NOT NULL,
    last_seen bigint NOT NULL,
    os_platform text,
    PRIMARY KEY (tenant, device_id)
);

CREATE TABLE verdicts (
    hash_kind smallint NOT NULL CHECK (hash_kind BETWEEN 0 AND 2),
    hash bytea NOT NULL,
    source text COLLATE "C" NOT NULL,
    verdict json NOT NULL,
    PRIMARY KEY (hash_kind, hash, source)
);

CREATE SEQUENCE indicator_ids AS bigint;

CREATE TABLE indicators (
    tenant text COLLATE "C" NOT NULL,
    id bigint NOT NULL,
    indicator_type text COLLATE "C" NOT NULL,
    value_key text COLLATE "C" NOT NULL,
    indicator json NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, indicator_type, value_key)
);

CREATE TABLE applications (
    tenant text COLLATE "C" NOT NULL,
    client_id text COLLATE "C" NOT NULL,
    object_id text NOT NULL,
    name text NOT NULL,
    roles text[] NOT NULL,
    secret_hash text NOT NULL,
    created bigint NOT NULL,
    PRIMARY KEY (tenant, client_id)
);

CREATE TABLE users (
    tenant text COLLATE "C" NOT NULL,
    upn_key text COLLATE "C" NOT NULL,
    upn text NOT NULL,
    object_id text NOT NULL,
    roles text[] NOT NULL,
    password_hash text NOT NULL,
    created bigint NOT NULL,
    PRIMARY KEY (tenant, upn_key)
);

CREATE TABLE user_object_ids (
    tenant text COLLATE "C" NOT NULL,
    object_id text COLLATE "C" NOT NULL,
    upn_key text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, object_id)
);

CREATE TABLE signing_keys (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kid text NOT NULL,
    pkcs8 bytea NOT NULL,
    created bigint NOT NULL
);

-- The names a device saw a file under: `kept`, then those of `added` it lacks, in their order,
-- up to 8 in all (fileintel_core::NAMES_PER_SIGHTING).
CREATE FUNCTION merge_names(kept text[], added text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT kept || ARRAY(
        SELECT fresh.name
        FROM (
            SELECT a.name, min(a.position) AS position
            FROM unnest(added) WITH ORDINALITY AS a(name, position)
            WHERE a.name <> ALL (kept)
            GROUP BY a.name
        ) AS fresh
        ORDER BY fresh.position
        LIMIT greatest(8 - cardinality(kept), 0)
    )
$$;
"#;

/// `Store::identity_generation`: one row, moved on in the transaction of every write to
/// `applications` and `users`, which replicas read at every request to know whether the tokens
/// they verified still hold.
const V2_IDENTITY_GENERATION: &str = r#"
CREATE TABLE identity_generation (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation bigint NOT NULL
);
INSERT INTO identity_generation (generation) VALUES (1);
"#;

/// Each tenant numbers its own indicators, so that an id tells nothing of other tenants' (the
/// one sequence of version 1 let a tenant count everyone's). Ids already given keep their
/// numbers; `indicator_ids` stays, no longer drawn from, as the floor every tenant's count
/// starts from, so that no id any tenant was ever given is given to it again.
const V3_INDICATOR_IDS_PER_TENANT: &str = r#"
CREATE TABLE indicator_counters (
    tenant text COLLATE "C" PRIMARY KEY,
    last_id bigint NOT NULL
);
INSERT INTO indicator_counters (tenant, last_id)
SELECT tenant, greatest(max(id), (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM indicator_ids))
FROM indicators GROUP BY tenant;
"#;

/// What each tenant's telemetry says of a file, one `TenantFile` per tenant in byte order of
/// names as JSON (`FileRecord::tenants`), counted from the sightings. A size and report, which
/// version 3 kept once per file, go into the row of every tenant that saw the file, at its last
/// observation (the size only when the file has no facts of fileintel's own, whose analysis
/// measured it), so that they speak to no tenant that did not see it; fjall's
/// `rebuild_tenant_files` does the same. Empty facts and reports are told by their non-null
/// fields; PostgreSQL parses no `\u0000` (`json_strip_nulls` parses its input), which a report
/// may hold, so the test reads a copy with it replaced, and the report moves as it is.
///
/// `prevalence` becomes `all_devices`: a replica of an older version, which would write files
/// without their tenants' rows, fails on its first statement instead.
const V4_TENANT_ROWS: &str = r#"
ALTER TABLE files ADD COLUMN tenants json NOT NULL DEFAULT '[]';
ALTER TABLE files RENAME COLUMN prevalence TO all_devices;
WITH legacy AS (
    SELECT id,
           CASE WHEN json_strip_nulls(replace(facts::text, '\u0000', '\ufffd')::json)::text
                     = '{"determination_type":"Unknown"}' THEN size END AS size,
           CASE WHEN json_strip_nulls(replace(reported::text, '\u0000', '\ufffd')::json)::text <> '{}'
                THEN reported END AS reported
    FROM files
), rows AS (
    SELECT s.file_id,
           json_agg(json_build_object(
               'tenant', s.tenant, 'devices', s.devices, 'first', s.first_seen, 'last', s.last_seen,
               'size', CASE WHEN l.size IS NULL THEN NULL ELSE json_build_array(s.last_seen, l.size) END,
               'reported', CASE WHEN l.reported IS NULL THEN NULL ELSE json_build_array(s.last_seen, l.reported) END)
               ORDER BY s.tenant COLLATE "C") AS rows,
           bool_or(l.size IS NOT NULL) AS moved_size
    FROM (SELECT file_id, tenant, count(*) AS devices, min(first_seen) AS first_seen, max(last_seen) AS last_seen
          FROM sightings GROUP BY file_id, tenant) AS s
    JOIN legacy AS l ON l.id = s.file_id
    GROUP BY s.file_id
)
UPDATE files AS f
SET tenants = r.rows,
    size = CASE WHEN r.moved_size THEN NULL ELSE f.size END,
    reported = '{"signed":null,"signature":null,"signature_status":null,"company":null,"product":null}'
FROM rows AS r
WHERE f.id = r.file_id;
"#;

/// Applies the migrations the database lacks, in one transaction. Running it again, or from
/// several replicas at once, applies nothing twice.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), Failure> {
    // Up to date already (every start but the first after an upgrade): no lock and no DDL, so
    // a role that may not create tables can serve a schema its owner migrated.
    let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    let exists: bool =
        client.query_one("SELECT to_regclass('fileintel_schema_migrations') IS NOT NULL", &[]).await?.try_get(0)?;
    if exists {
        let current: Option<i32> =
            client.query_one("SELECT max(version) FROM fileintel_schema_migrations", &[]).await?.try_get(0)?;
        if current.is_some_and(|current| current >= known) {
            return Ok(());
        }
    }
    let tx = client.transaction().await?;
    // A migration may rewrite a large table: it is not held to a request's statement timeout.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS fileintel_schema_migrations (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let mut applied = Vec::new();
    for row in tx.query("SELECT version FROM fileintel_schema_migrations", &[]).await? {
        applied.push(row.try_get::<_, i32>(0)?);
    }
    if let Some(newer) = applied.iter().copied().filter(|version| *version > known).max() {
        // A newer replica migrated already (a rolling upgrade). Most migrations only add, and
        // this one goes on with what it knows; one that changes what every writer must keep
        // (schema 4's tenant rows) renames what older builds write, so their statements fail.
        tracing::warn!(newer, known, "the database's schema is newer than this build's: upgrade this replica");
    }
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO fileintel_schema_migrations (version) VALUES ($1)", &[version]).await?;
        tracing::info!(version, "applied a schema migration");
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use fileintel_core::{FileHash, Timestamp};
    use fileintel_store::Store;

    use crate::testing::{TestDatabase, server_url};
    use crate::{PgOptions, PgStore};

    fn indicator(tenant: &str, id: &str, n: u8) -> fileintel_core::Indicator {
        let at = fileintel_core::Timestamp::from_unix_seconds(1);
        fileintel_core::Indicator {
            tenant: tenant.into(),
            id: id.into(),
            indicator_value: format!("{n:02x}").repeat(20),
            indicator_type: "FileSha1".into(),
            action: "Audit".into(),
            title: "t".into(),
            description: "d".into(),
            severity: None,
            application: None,
            recommended_actions: None,
            rbac_group_names: Vec::new(),
            generate_alert: None,
            external_id: None,
            expiration_time: None,
            created_by: "app".into(),
            creation_time: at,
            last_update_time: at,
            last_updated_by: None,
        }
    }

    /// A database of schema version 1 numbered every tenant's indicators from one sequence:
    /// after the migration they keep their ids, and each tenant counts on from past everything
    /// the sequence gave out (a deleted id included), so no id is ever given twice.
    #[tokio::test]
    async fn indicators_keep_their_ids_when_each_tenant_starts_counting_its_own() {
        let Some(url) = server_url() else { return };
        let database = TestDatabase::create(&url).await;
        let client = database.client().await;
        client.batch_execute(super::V1_INITIAL).await.unwrap();
        client
            .batch_execute(
                "CREATE TABLE fileintel_schema_migrations (
                    version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
                 INSERT INTO fileintel_schema_migrations (version) VALUES (1);",
            )
            .await
            .unwrap();
        // contoso's 1 and 3, fabrikam's 2, and a 4 given out and deleted since.
        for (tenant, id) in [("contoso", 1_i64), ("fabrikam", 2), ("contoso", 3)] {
            let stored = indicator(tenant, &id.to_string(), id as u8);
            let value = stored.indicator_value.to_ascii_lowercase();
            client
                .execute(
                    "INSERT INTO indicators (tenant, id, indicator_type, value_key, indicator)
                     VALUES ($1, $2, 'FileSha1', $3, $4::text::json)",
                    &[&tenant, &id, &value, &serde_json::to_string(&stored).unwrap()],
                )
                .await
                .unwrap();
        }
        client.execute("SELECT setval('indicator_ids', 4)", &[]).await.unwrap();

        let store = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
        let ids = |indicators: Vec<fileintel_core::Indicator>| indicators.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(store.list_indicators("contoso").await.unwrap()), ["1", "3"]);
        assert_eq!(ids(store.list_indicators("fabrikam").await.unwrap()), ["2"]);
        for tenant in ["contoso", "fabrikam", "northwind"] {
            let new = store.put_indicator(indicator(tenant, "", 9)).await.unwrap();
            assert_eq!(new.id, "5", "{tenant}");
        }
        assert_eq!(store.put_indicator(indicator("contoso", "", 10)).await.unwrap().id, "6");
        assert_eq!(store.put_indicator(indicator("fabrikam", "", 10)).await.unwrap().id, "6");
    }

    /// A database of schema version 3 kept one report and size per file: after the migration,
    /// each tenant has its row counted from the sightings, and every tenant that saw a file
    /// keeps the report and size in its own row, so that they speak to no other tenant (fjall's
    /// `rebuild_tenant_files` does the same); an older replica can no longer write.
    #[tokio::test]
    async fn each_tenant_gets_its_row_from_the_sightings() {
        let Some(url) = server_url() else { return };
        let database = TestDatabase::create(&url).await;
        let client = database.client().await;
        for (_, sql) in &super::MIGRATIONS[..3] {
            client.batch_execute(sql).await.unwrap();
        }
        client
            .batch_execute(
                "CREATE TABLE fileintel_schema_migrations (
                    version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
                 INSERT INTO fileintel_schema_migrations (version) VALUES (1), (2), (3);",
            )
            .await
            .unwrap();
        let legacy = fileintel_core::ReportedFacts { company: Some("Legacy".into()), ..Default::default() };
        let (facts, reported) = (
            serde_json::to_string(&fileintel_core::FileFacts::default()).unwrap(),
            serde_json::to_string(&legacy).unwrap(),
        );
        // File 3 holds NUL characters in its report and facts, which JSON keeps and PostgreSQL
        // does not parse; its facts (measured, then) keep its size.
        let nul = fileintel_core::ReportedFacts { company: Some("Con\0toso".into()), ..Default::default() };
        let nul_facts = fileintel_core::FileFacts { file_publisher: Some("Nul\0Soft".into()), ..Default::default() };
        let (nul, nul_facts) = (serde_json::to_string(&nul).unwrap(), serde_json::to_string(&nul_facts).unwrap());
        for (id, tenants) in [(1_i64, &["c", "c"][..]), (2, &["c", "f"][..]), (3, &["c"][..])] {
            let sha1 = vec![id as u8; 20];
            let (facts, reported) = if id == 3 { (&nul_facts, &nul) } else { (&facts, &reported) };
            client
                .execute(
                    "INSERT INTO files (id, sha1, prevalence, first_observed, last_observed, size, facts, reported)
                     VALUES ($1, $2, $3, 10, 30, 9, $4::text::json, $5::text::json)",
                    &[&id, &sha1, &(tenants.len() as i64), facts, reported],
                )
                .await
                .unwrap();
            client
                .execute("INSERT INTO file_hashes (kind, hash, file_id) VALUES (1, $1, $2)", &[&sha1, &id])
                .await
                .unwrap();
            for (device, tenant) in tenants.iter().enumerate() {
                let (device, last) = (device.to_string(), 20 + 10 * device as i64);
                client
                    .execute(
                        "INSERT INTO sightings (file_id, tenant, device_id, first_seen, last_seen, file_name, names)
                         VALUES ($1, $2, $3, 10, $4, NULL, '{}')",
                        &[&id, tenant, &device, &last],
                    )
                    .await
                    .unwrap();
            }
        }

        let store = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
        let get = async |n: u8| store.get_file(FileHash::Sha1(fileintel_core::Sha1([n; 20]))).await.unwrap().unwrap();
        let only_c = get(1).await;
        assert_eq!((only_c.size, only_c.reported.is_empty()), (None, true), "moved to the tenant");
        let row = &only_c.tenants[..];
        let last = Timestamp(30);
        assert_eq!(row.len(), 1);
        assert_eq!(
            (row[0].tenant.as_str(), row[0].devices, row[0].first, row[0].last),
            ("c", 2, Some(Timestamp(10)), Some(last))
        );
        assert_eq!((row[0].size, row[0].reported.clone()), (Some((last, 9)), Some((last, legacy.clone()))));
        let shared = get(2).await;
        assert_eq!((shared.size, shared.reported.is_empty()), (None, true), "moved to each tenant");
        let rows: Vec<_> = shared
            .tenants
            .iter()
            .map(|row| (row.tenant.as_str(), row.devices, row.size, row.reported.clone()))
            .collect();
        let at = |time: i64| Some((Timestamp(time), legacy.clone()));
        assert_eq!(rows, [("c", 1, Some((Timestamp(20), 9)), at(20)), ("f", 1, Some((Timestamp(30), 9)), at(30))]);
        let trust = fileintel_core::Trust::default();
        assert!(
            shared.seen_by(fileintel_core::Viewer::Tenant { name: "n", trust: &trust }).is_none(),
            "n never saw it"
        );

        let with_nul = get(3).await;
        assert_eq!(with_nul.size, Some(9), "measured: its facts are fileintel's own");
        let company = with_nul.tenants[0].reported.as_ref().and_then(|(_, reported)| reported.company.clone());
        assert_eq!(company.as_deref(), Some("Con\0toso"));

        // A replica of schema 3 writes `prevalence`, which is no more.
        let old = client.execute("UPDATE files SET prevalence = 1 WHERE id = 1", &[]).await.unwrap_err();
        assert!(format!("{old:?}").contains("prevalence"), "{old:?}");
    }
}
