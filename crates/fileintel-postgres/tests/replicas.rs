//! What only a shared database has to get right: several replicas migrating and ingesting at
//! once, and answering in time when the database cannot. Tests that need a server are skipped
//! (passing, with a notice) unless `FILEINTEL_TEST_DATABASE_URL` names one.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{TestDatabase, server_url, with_database};
use fileintel_core::{FileHash, FileHashes, Md5, Observation, Sha1, Sha256, Timestamp};
use fileintel_postgres::{PgOptions, PgStore};
use fileintel_store::{Store, StoreError};

const HOUR: i64 = fileintel_core::TICKS_PER_HOUR;

/// The hashes of test file `n`.
fn hashes(n: u32) -> FileHashes {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[4] = 0xCD;
    FileHashes {
        sha1: Sha1::from_slice(&bytes[..20]),
        sha256: Sha256::from_slice(&bytes),
        md5: Md5::from_slice(&bytes[..16]),
    }
}

#[test]
fn database_names_replace_the_one_in_the_address() {
    assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
    assert_eq!(with_database("postgresql://u:p@h/test?sslmode=disable", "x"), "postgresql://u:p@h/x?sslmode=disable");
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    assert_eq!(with_database("host=h user=u dbname=test", "x"), "host=h user=u dbname=test dbname=x");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_answers_in_time() {
    // Nothing listens on port 1: the connection is refused at once.
    let options = PgOptions { connect_timeout: Duration::from_secs(2), ..PgOptions::default() };
    let started = Instant::now();
    let error = PgStore::connect("postgres://fileintel@127.0.0.1:1/fileintel", options).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_when_replicas_start_together_and_again_change_nothing() {
    let Some(url) = server_url() else { return };
    let database = TestDatabase::create(&url).await;
    let starting: Vec<_> = (0..4)
        .map(|_| {
            let url = database.url.clone();
            tokio::spawn(async move { PgStore::connect(&url, PgOptions::default()).await })
        })
        .collect();
    let mut stores = Vec::new();
    for store in starting {
        stores.push(store.await.unwrap().expect("every replica starts"));
    }
    let client = database.client().await;
    let applied = async || -> Vec<(i32, std::time::SystemTime)> {
        let rows = client
            .query("SELECT version, applied_at FROM fileintel_schema_migrations ORDER BY version", &[])
            .await
            .unwrap();
        rows.iter().map(|row| (row.get(0), row.get(1))).collect()
    };
    let first = applied().await;
    let versions: Vec<i32> = first.iter().map(|(version, _)| *version).collect();
    assert_eq!(versions, (1..=versions.len() as i32).collect::<Vec<_>>(), "each version once, in order");
    assert!(!versions.is_empty());
    for store in &stores {
        store.migrate().await.unwrap();
    }
    assert_eq!(applied().await, first, "nothing applied again");
    // And every replica works on the one schema.
    let observation = Observation {
        tenant_id: "t".into(),
        device_id: "d".into(),
        device_name: None,
        timestamp: Timestamp::now(),
        hashes: hashes(1),
        size: None,
        file_name: None,
        folder_path: None,
        os_platform: None,
        reported: None,
    };
    stores[0].ingest(vec![observation]).await.unwrap();
    let record = stores[3].get_file(FileHash::Md5(hashes(1).md5.unwrap())).await.unwrap().unwrap();
    assert_eq!(record.global_prevalence, 1);
}

/// Tiny deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_ingesting_the_same_observations_at_once_count_each_device_once() {
    let Some(url) = server_url() else { return };
    let database = TestDatabase::create(&url).await;
    let options = PgOptions { max_connections: 4, ..PgOptions::default() };
    let replicas = [
        PgStore::connect(&database.url, options.clone()).await.unwrap(),
        PgStore::connect(&database.url, options).await.unwrap(),
    ];
    let (files, tenants, devices) = (40u32, 3u32, 25u32);
    let now = Timestamp::now();
    // Every (file, tenant, device) once, known by all hashes or only some of them (so records
    // are created apart and linked while other replicas write), at a time in the last 600 hours.
    let mut universe = Vec::new();
    let mut generator = Lcg(7);
    for file in 0..files {
        for tenant in 0..tenants {
            for device in 0..devices {
                let full = hashes(file);
                let known = match (file + tenant + device) % 4 {
                    0 => FileHashes { sha1: full.sha1, ..FileHashes::default() },
                    1 => FileHashes { md5: full.md5, ..FileHashes::default() },
                    2 => FileHashes { sha256: full.sha256, md5: full.md5, sha1: None },
                    _ => full,
                };
                universe.push(Observation {
                    tenant_id: format!("tenant-{tenant}"),
                    device_id: format!("device-{device}"),
                    device_name: Some(format!("host-{device}")),
                    timestamp: Timestamp(
                        now.0 - generator.below(600) as i64 * HOUR - generator.below(HOUR as u64) as i64,
                    ),
                    hashes: known,
                    size: Some(u64::from(file)),
                    file_name: Some(format!("file-{}.exe", generator.below(3))),
                    folder_path: None,
                    os_platform: None,
                    reported: None,
                });
            }
        }
    }
    // Eight tasks, four per replica, each ingesting an overlapping part of the universe in its
    // own order, plus one observation with all hashes per file, in calls of 150.
    let mut plans: Vec<Vec<Observation>> = Vec::new();
    let mut expected: HashMap<u32, HashSet<(String, String)>> = HashMap::new();
    let mut first_seen: HashMap<u32, Timestamp> = HashMap::new();
    for task in 0..8u64 {
        let mut generator = Lcg(1000 + task);
        let mut plan: Vec<Observation> = Vec::new();
        for (index, observation) in universe.iter().enumerate() {
            if generator.below(10) < 6 {
                let file = index as u32 / (tenants * devices);
                expected
                    .entry(file)
                    .or_default()
                    .insert((observation.tenant_id.clone(), observation.device_id.clone()));
                let first = first_seen.entry(file).or_insert(observation.timestamp);
                *first = (*first).min(observation.timestamp);
                plan.push(observation.clone());
            }
        }
        for file in 0..files {
            let linking = Observation { hashes: hashes(file), ..universe[(file * tenants * devices) as usize].clone() };
            expected.entry(file).or_default().insert((linking.tenant_id.clone(), linking.device_id.clone()));
            let first = first_seen.entry(file).or_insert(linking.timestamp);
            *first = (*first).min(linking.timestamp);
            plan.push(linking);
        }
        for index in (1..plan.len()).rev() {
            plan.swap(index, generator.below(index as u64 + 1) as usize);
        }
        plans.push(plan);
    }
    let running: Vec<_> = plans
        .into_iter()
        .enumerate()
        .map(|(task, plan)| {
            let store = replicas[task % 2].clone();
            tokio::spawn(async move {
                for call in plan.chunks(150) {
                    let outcome = store.ingest(call.to_vec()).await.expect("every call succeeds");
                    assert_eq!(outcome.accepted as usize, call.len(), "{:?}", outcome.rejected.first());
                }
            })
        })
        .collect();
    for task in running {
        task.await.unwrap();
    }

    let reader = &replicas[1];
    assert_eq!(reader.stats().await.unwrap().files, u64::from(files), "one record per file");
    let since = Timestamp(now.0 - 700 * HOUR);
    for file in 0..files {
        let full = hashes(file);
        let record = reader.get_file(FileHash::Sha1(full.sha1.unwrap())).await.unwrap().expect("the file is known");
        assert_eq!(record.hashes, full, "file {file}");
        assert_eq!(record.global_prevalence, expected[&file].len() as u64, "file {file}");
        assert_eq!(record.global_first_observed, Some(first_seen[&file]), "file {file}");
        for tenant in 0..tenants {
            let tenant = format!("tenant-{tenant}");
            let devices = expected[&file].iter().filter(|(owner, _)| *owner == tenant).count();
            let listed = reader.file_devices(FileHash::Md5(full.md5.unwrap()), &tenant).await.unwrap();
            assert_eq!(listed.len(), devices, "file {file}, {tenant}");
            let stats =
                reader.file_stats(FileHash::Sha256(full.sha256.unwrap()), &tenant, since).await.unwrap().unwrap();
            assert_eq!(stats.prevalence as usize, devices, "file {file}, {tenant}");
        }
    }
}

/// What one replica changes in applications and users, every other sees in the identity
/// generation at its next read, with no cache in between: that is what lets a replica trust a
/// verified token only while the generation stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_deleted_through_one_replica_moves_the_generation_every_replica_reads() {
    let Some(url) = server_url() else { return };
    let database = TestDatabase::create(&url).await;
    let one = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
    let other = PgStore::connect(&database.url, PgOptions::default()).await.unwrap();
    let client = application();
    one.put_application(client.clone()).await.unwrap();
    let before = other.identity_generation().await.unwrap();
    assert_eq!(one.identity_generation().await.unwrap(), before, "one number for all replicas");
    assert!(other.get_application("contoso", &client.client_id).await.unwrap().is_some());
    assert!(one.delete_application("contoso", &client.client_id).await.unwrap());
    let after = other.identity_generation().await.unwrap();
    assert!(after > before, "the other replica still reads {after}");
    assert_eq!(one.identity_generation().await.unwrap(), after);
    // A deletion that found nothing changes nothing anyone had verified.
    assert!(!other.delete_application("contoso", &client.client_id).await.unwrap());
    assert_eq!(one.identity_generation().await.unwrap(), after);
}

/// An application; its secret hash is no real one, as nothing signs in with it here.
fn application() -> fileintel_core::Application {
    fileintel_core::Application {
        tenant: "contoso".into(),
        client_id: "00000000-0000-0000-0000-0000000000a1".into(),
        object_id: "00000000-0000-0000-0000-0000000000b1".into(),
        name: "soar".into(),
        roles: vec!["File.Read.All".into()],
        secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_or_a_connection_that_takes_too_long_is_unavailable() {
    let Some(url) = server_url() else { return };
    let database = TestDatabase::create(&url).await;
    let options = PgOptions {
        max_connections: 1,
        acquire_timeout: Duration::from_millis(300),
        statement_timeout: Duration::from_millis(800),
        ..PgOptions::default()
    };
    let store = PgStore::connect(&database.url, options).await.unwrap();
    // Another session holds the files table: a lookup waits for it until its statement times out,
    // and meanwhile a second call waits for the pool's only connection.
    let mut blocker = database.client().await;
    let holding = blocker.transaction().await.unwrap();
    holding.batch_execute("LOCK TABLE files IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let started = Instant::now();
    let (lookup, ping) = tokio::join!(store.get_file(FileHash::Sha1(hashes(1).sha1.unwrap())), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.ping().await
    });
    assert!(matches!(lookup, Err(StoreError::Unavailable(_))), "{lookup:?}");
    assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    holding.rollback().await.unwrap();
    assert_eq!(store.get_file(FileHash::Sha1(hashes(1).sha1.unwrap())).await.unwrap(), None, "and it recovers");
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_postgresql_cannot_hold_is_refused_per_observation_and_json_keeps_any_string() {
    let Some((store, _database)) = common::fresh().await else { return };
    let seen = |device: &str, file_name: &str| Observation {
        tenant_id: "t".into(),
        device_id: device.into(),
        device_name: None,
        timestamp: Timestamp::now(),
        hashes: hashes(2),
        size: None,
        file_name: Some(file_name.into()),
        folder_path: None,
        os_platform: None,
        reported: None,
    };
    let reported = fileintel_core::ReportedFacts { company: Some("Con\0toso".into()), ..Default::default() };
    let outcome = store
        .ingest(vec![
            seen("a", "bad\0name.exe"),
            Observation { reported: Some(Box::new(reported.clone())), ..seen("b", "good.exe") },
        ])
        .await
        .unwrap();
    assert_eq!(outcome.accepted, 1);
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].0, 0);
    assert!(outcome.rejected[0].1.contains("fileName"), "{}", outcome.rejected[0].1);
    let record = store.get_file(FileHash::Sha1(hashes(2).sha1.unwrap())).await.unwrap().unwrap();
    let seen = record.seen_by(fileintel_core::Viewer::Operator).unwrap();
    assert_eq!((seen.global_prevalence, seen.reported), (1, reported), "kept in the tenant's row, as JSON");
    let facts = fileintel_core::FileFacts { file_publisher: Some("Nul\0Soft".into()), ..Default::default() };
    store.put_facts(hashes(2), None, facts.clone()).await.unwrap();
    let record = store.get_file(FileHash::Md5(hashes(2).md5.unwrap())).await.unwrap().unwrap();
    assert_eq!(record.facts, facts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeping_removes_only_what_no_window_can_reach() {
    let Some((store, database)) = common::fresh().await else { return };
    let now = Timestamp::now();
    let seen = |device: &str, hours_ago: i64| Observation {
        tenant_id: "t".into(),
        device_id: device.into(),
        device_name: None,
        timestamp: Timestamp(now.0 - hours_ago * HOUR),
        hashes: hashes(3),
        size: None,
        file_name: Some("x.exe".into()),
        folder_path: None,
        os_platform: None,
        reported: None,
    };
    store.ingest(vec![seen("old", 700), seen("new", 10)]).await.unwrap();
    let client = database.client().await;
    // A second file numbered far past the first, so the sweep must reach more than one range
    // of file ids.
    client.execute("SELECT setval('file_ids', 45000)", &[]).await.unwrap();
    store.ingest(vec![Observation { hashes: hashes(4), ..seen("old", 700) }]).await.unwrap();
    let times =
        async || -> i64 { client.query_one("SELECT count(*) FROM observation_times", &[]).await.unwrap().get(0) };
    assert_eq!(times().await, 3);
    assert_eq!(store.sweep(now).await.unwrap().removed, 0, "nothing is out of reach yet");
    // A hundred hours on, "old" (800 hours back) is out of every window; "new" is not.
    let later = Timestamp(now.0 + 100 * HOUR);
    assert_eq!(store.sweep(later).await.unwrap().removed, 2);
    assert_eq!(times().await, 1);
    let sha1 = FileHash::Sha1(hashes(3).sha1.unwrap());
    let stats = store.file_stats(sha1, "t", Timestamp(later.0 - 720 * HOUR)).await.unwrap().unwrap();
    assert_eq!((stats.prevalence, stats.first_seen), (1, Some(Timestamp(now.0 - 10 * HOUR))));
    assert_eq!(stats.record.global_prevalence, 2, "sightings themselves stay");
}
