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
    &[(1, V1_INITIAL), (2, V2_IDENTITY_GENERATION), (3, V3_INDICATOR_IDS_PER_TENANT)];

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
        // A newer replica migrated already (a rolling upgrade): its migrations only add, so
        // this one goes on with what it knows.
        tracing::warn!(newer, known, "the database's schema is newer than this build's");
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
}
