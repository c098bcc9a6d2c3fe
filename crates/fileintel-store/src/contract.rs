//! The contract every [`Store`] backend passes, written once.
//!
//! A backend's test module instantiates the whole suite with [`contract_suite!`](crate::contract_suite),
//! giving it an async factory that returns a fresh, empty store (and a guard that keeps its
//! resources alive for the test).

use fileintel_core::{
    DeterminationType, FileFacts, FileHash, FileHashes, FileRecord, Indicator, Md5, Observation, ReportedFacts, Sha1,
    Sha256, Timestamp, Trust, Verdict, VerdictSource, Viewer,
};

use crate::Store;

fn sha1(n: u8) -> Sha1 {
    Sha1([n; 20])
}
fn sha256(n: u8) -> Sha256 {
    Sha256([n; 32])
}
fn md5(n: u8) -> Md5 {
    Md5([n; 16])
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000 + seconds)
}

fn seen(tenant: &str, device: &str, seconds: i64, hashes: FileHashes) -> Observation {
    Observation {
        tenant_id: tenant.into(),
        device_id: device.into(),
        device_name: Some(format!("{device}.{tenant}.local")),
        timestamp: at(seconds),
        hashes,
        size: Some(1234),
        file_name: Some(format!("name-{seconds}.exe")),
        folder_path: None,
        os_platform: None,
        reported: None,
    }
}

const HOUR: i64 = fileintel_core::TICKS_PER_HOUR;

/// An observation of file `n` by `device` of `tenant` at `time`, under `name`.
fn seen_at(tenant: &str, device: &str, time: Timestamp, n: u8, name: &str) -> Observation {
    Observation { timestamp: time, file_name: Some(name.to_owned()), ..seen(tenant, device, 0, all_three(n)) }
}

async fn org(store: &dyn Store, n: u8, tenant: &str, since: Timestamp) -> crate::OrgFileStats {
    store.file_stats(FileHash::Sha1(sha1(n)), tenant, since).await.unwrap().expect("the file is known")
}

fn all_three(n: u8) -> FileHashes {
    FileHashes { sha1: Some(sha1(n)), sha256: Some(sha256(n)), md5: Some(md5(n)) }
}

fn only(hash: FileHash) -> FileHashes {
    FileHashes::from(hash)
}

pub async fn every_hash_resolves_to_the_same_record(store: &dyn Store) {
    let outcome = store.ingest(vec![seen("t", "d1", 0, all_three(1))]).await.unwrap();
    assert_eq!((outcome.accepted, outcome.new_files), (1, 1));
    let by_sha1 = store.get_file(FileHash::Sha1(sha1(1))).await.unwrap().unwrap();
    let by_sha256 = store.get_file(FileHash::Sha256(sha256(1))).await.unwrap().unwrap();
    let by_md5 = store.get_file(FileHash::Md5(md5(1))).await.unwrap().unwrap();
    assert_eq!(by_sha1, by_sha256);
    assert_eq!(by_sha1, by_md5);
    assert_eq!(by_sha1.hashes, all_three(1));
    assert_eq!(by_sha1.seen_by(Viewer::Operator).unwrap().size, Some(1234));
    assert_eq!(by_sha1.global_prevalence, 1);
}

pub async fn unknown_hashes_are_not_found(store: &dyn Store) {
    store.ingest(vec![seen("t", "d1", 0, all_three(1))]).await.unwrap();
    assert!(store.get_file(FileHash::Sha1(sha1(2))).await.unwrap().is_none());
    assert!(store.get_file(FileHash::Sha256(sha256(2))).await.unwrap().is_none());
    assert!(store.get_file(FileHash::Md5(md5(2))).await.unwrap().is_none());
}

pub async fn distinct_devices_are_counted_exactly_under_duplicates_and_disorder(store: &dyn Store) {
    let file = all_three(3);
    let batch = vec![
        seen("t", "d1", 50, file),
        seen("t", "d2", 10, file),
        seen("t", "d1", 5, file),
        seen("t", "d1", 50, file),
        seen("other", "d1", 70, file),
    ];
    store.ingest(batch.clone()).await.unwrap();
    // The same observations again, in reverse order and split over two calls, change no count.
    let mut again = batch.clone();
    again.reverse();
    store.ingest(again[..2].to_vec()).await.unwrap();
    store.ingest(again[2..].to_vec()).await.unwrap();
    let record = store.get_file(FileHash::Sha1(sha1(3))).await.unwrap().unwrap();
    // d1 in tenant "t" and d1 in tenant "other" are two devices.
    assert_eq!(record.global_prevalence, 3);
    assert_eq!(record.global_first_observed, Some(at(5)));
    assert_eq!(record.global_last_observed, Some(at(70)));
    // An earlier observation arriving late moves the first-observed time back.
    store.ingest(vec![seen("t", "d2", -100, file)]).await.unwrap();
    let record = store.get_file(FileHash::Md5(md5(3))).await.unwrap().unwrap();
    assert_eq!(record.global_prevalence, 3);
    assert_eq!(record.global_first_observed, Some(at(-100)));
}

pub async fn records_first_known_by_different_hashes_are_linked(store: &dyn Store) {
    // One file known only by SHA-1 (devices a, b), another only by SHA-256 (devices b, c).
    store
        .ingest(vec![
            seen("t", "a", 10, only(FileHash::Sha1(sha1(4)))),
            seen("t", "b", 20, only(FileHash::Sha1(sha1(4)))),
            seen("t", "b", 5, only(FileHash::Sha256(sha256(4)))),
            seen("t", "c", 30, only(FileHash::Sha256(sha256(4)))),
        ])
        .await
        .unwrap();
    store
        .put_facts(
            only(FileHash::Sha256(sha256(4))),
            None,
            FileFacts { file_publisher: Some("Contoso".into()), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(store.stats().await.unwrap().files, 2);
    // An observation that carries both hashes links them: nothing is lost, b counts once.
    let linking = FileHashes { sha1: Some(sha1(4)), sha256: Some(sha256(4)), md5: None };
    let outcome = store.ingest(vec![seen("t", "d", 15, linking)]).await.unwrap();
    assert_eq!(outcome.accepted, 1);
    assert!(outcome.rejected.is_empty());
    let record = store.get_file(FileHash::Sha1(sha1(4))).await.unwrap().unwrap();
    assert_eq!(record, store.get_file(FileHash::Sha256(sha256(4))).await.unwrap().unwrap());
    assert_eq!(record.hashes, linking);
    assert_eq!(record.global_prevalence, 4, "devices a, b, c, d");
    assert_eq!(record.global_first_observed, Some(at(5)));
    assert_eq!(record.global_last_observed, Some(at(30)));
    assert_eq!(record.facts.file_publisher.as_deref(), Some("Contoso"));
    assert_eq!(store.stats().await.unwrap().files, 1);
    let devices = store.file_devices(FileHash::Sha1(sha1(4)), "t").await.unwrap();
    let b = devices.iter().find(|device| device.device_id == "b").unwrap();
    assert_eq!((b.first_seen, b.last_seen), (at(5), at(20)));
    // Adding the MD5 later joins it to the same record.
    store.ingest(vec![seen("t", "a", 40, FileHashes { md5: Some(md5(4)), ..linking })]).await.unwrap();
    let by_md5 = store.get_file(FileHash::Md5(md5(4))).await.unwrap().unwrap();
    assert_eq!(by_md5.global_prevalence, 4);
    assert_eq!(by_md5.hashes.sha256, Some(sha256(4)));
}

pub async fn a_conflicting_pairing_is_rejected_and_the_first_is_kept(store: &dyn Store) {
    let first = FileHashes { sha1: Some(sha1(5)), sha256: Some(sha256(5)), md5: None };
    let second = FileHashes { sha1: Some(sha1(5)), sha256: Some(sha256(6)), md5: None };
    let outcome = store
        .ingest(vec![seen("t", "a", 0, first), seen("t", "b", 1, second), seen("t", "c", 2, first)])
        .await
        .unwrap();
    assert_eq!(outcome.accepted, 2);
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].0, 1);
    assert!(outcome.rejected[0].1.contains(&sha256(5).to_string()), "{}", outcome.rejected[0].1);
    let record = store.get_file(FileHash::Sha1(sha1(5))).await.unwrap().unwrap();
    assert_eq!(record.hashes.sha256, Some(sha256(5)));
    assert_eq!(record.global_prevalence, 2);
    assert!(store.get_file(FileHash::Sha256(sha256(6))).await.unwrap().is_none());
    // Two records already held apart cannot be joined by a third hash that names both.
    store.ingest(vec![seen("t", "a", 0, only(FileHash::Md5(md5(7))))]).await.unwrap();
    let joins_both = FileHashes { sha1: Some(sha1(5)), sha256: Some(sha256(7)), md5: Some(md5(7)) };
    store
        .ingest(vec![seen("t", "a", 0, FileHashes { sha256: Some(sha256(7)), ..only(FileHash::Md5(md5(7))) })])
        .await
        .unwrap();
    let outcome = store.ingest(vec![seen("t", "x", 9, joins_both)]).await.unwrap();
    assert_eq!(outcome.rejected.len(), 1, "{outcome:?}");
    assert_eq!(store.get_file(FileHash::Sha1(sha1(5))).await.unwrap().unwrap().global_prevalence, 2);
}

pub async fn each_tenant_sees_only_its_own_devices(store: &dyn Store) {
    let file = all_three(8);
    store
        .ingest(vec![
            seen("contoso", "d1", 10, file),
            seen("contoso", "d1", 20, file),
            seen("contoso", "d2", 15, file),
            seen("fabrikam", "d9", 30, file),
        ])
        .await
        .unwrap();
    let mut contoso = store.file_devices(FileHash::Sha256(sha256(8)), "contoso").await.unwrap();
    contoso.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    assert_eq!(contoso.len(), 2);
    assert_eq!(contoso[0].device_id, "d1");
    assert_eq!(contoso[0].device_name.as_deref(), Some("d1.contoso.local"));
    assert_eq!((contoso[0].first_seen, contoso[0].last_seen), (at(10), at(20)));
    assert_eq!(contoso[0].file_name.as_deref(), Some("name-20.exe"), "the latest name wins");
    let fabrikam = store.file_devices(FileHash::Md5(md5(8)), "fabrikam").await.unwrap();
    assert_eq!(fabrikam.iter().map(|d| d.device_id.as_str()).collect::<Vec<_>>(), ["d9"]);
    assert!(store.file_devices(FileHash::Md5(md5(8)), "nobody").await.unwrap().is_empty());
    assert!(store.file_devices(FileHash::Md5(md5(9)), "contoso").await.unwrap().is_empty());
}

pub async fn static_facts_are_kept_beside_observations(store: &dyn Store) {
    let facts = FileFacts {
        file_type: Some("PortableExecutable".into()),
        is_pe_file: Some(true),
        signer: Some("Contoso Ltd".into()),
        signer_hash: Some(sha1(42)),
        is_valid_certificate: Some(false),
        determination_type: DeterminationType::Pua,
        determination_value: Some("PUA:Win32/Example".into()),
        ..Default::default()
    };
    store.put_facts(only(FileHash::Sha256(sha256(10))), Some(77), facts.clone()).await.unwrap();
    let record = store.get_file(FileHash::Sha256(sha256(10))).await.unwrap().unwrap();
    assert_eq!(record.facts, facts);
    assert_eq!(record.size, Some(77), "the measured size");
    assert_eq!(record.global_prevalence, 0);
    assert_eq!(record.global_first_observed, None);
    store.ingest(vec![seen("t", "a", 0, all_three(10))]).await.unwrap();
    let record = store.get_file(FileHash::Sha1(sha1(10))).await.unwrap().unwrap();
    assert_eq!(record.facts, facts);
    assert_eq!(record.global_prevalence, 1);
}

pub async fn a_file_first_known_by_one_hash_gains_the_others(store: &dyn Store) {
    store.ingest(vec![seen("t", "a", 0, only(FileHash::Sha1(sha1(11))))]).await.unwrap();
    store.ingest(vec![seen("t", "b", 1, only(FileHash::Md5(md5(12))))]).await.unwrap();
    // New SHA-256s: the records can only be found by their other hash.
    store.ingest(vec![seen("t", "c", 2, all_three(11)), seen("t", "d", 3, all_three(12))]).await.unwrap();
    assert_eq!(store.stats().await.unwrap().files, 2);
    for n in [11, 12] {
        let record = store.get_file(FileHash::Sha256(sha256(n))).await.unwrap().unwrap();
        assert_eq!(record.global_prevalence, 2);
        assert_eq!(record.hashes, all_three(n));
    }
    // Once complete, a further new file with all hashes is still a new file.
    store.ingest(vec![seen("t", "e", 4, all_three(13))]).await.unwrap();
    assert_eq!(store.stats().await.unwrap().files, 3);
}

pub async fn applications_and_signing_keys_are_kept(store: &dyn Store) {
    let app = |tenant: &str, client: &str| fileintel_core::Application {
        tenant: tenant.into(),
        client_id: client.into(),
        object_id: format!("oid-{client}"),
        name: "SOAR".into(),
        roles: vec!["File.Read.All".into()],
        secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created: 1,
    };
    store.put_application(app("contoso", "b")).await.unwrap();
    store.put_application(app("contoso", "a")).await.unwrap();
    store.put_application(app("fabrikam", "a")).await.unwrap();
    assert_eq!(store.get_application("contoso", "a").await.unwrap(), Some(app("contoso", "a")));
    assert_eq!(store.get_application("contoso", "c").await.unwrap(), None);
    // A client id is only found in its own tenant.
    assert_eq!(store.get_application("contosoa", "").await.unwrap(), None);
    let listed: Vec<(String, String)> =
        store.list_applications().await.unwrap().into_iter().map(|a| (a.tenant, a.client_id)).collect();
    assert_eq!(
        listed,
        [("contoso".into(), "a".into()), ("contoso".into(), "b".into()), ("fabrikam".into(), "a".into())]
    );
    let mut rotated = app("contoso", "a");
    rotated.secret_hash = "$argon2id$new".into();
    store.put_application(rotated.clone()).await.unwrap();
    assert_eq!(store.get_application("contoso", "a").await.unwrap(), Some(rotated));
    assert!(store.delete_application("contoso", "a").await.unwrap());
    assert!(!store.delete_application("contoso", "a").await.unwrap());
    assert_eq!(store.get_application("contoso", "a").await.unwrap(), None);
    assert!(store.get_application("fabrikam", "a").await.unwrap().is_some());

    assert!(store.signing_keys().await.unwrap().is_empty());
    let key = |kid: &str, created: i64| fileintel_core::SigningKey { kid: kid.into(), pkcs8: vec![1, 2, 3], created };
    store.add_signing_key(key("z-first", 20)).await.unwrap();
    // Added later, though its clock read earlier, and in the same second as the next: the order
    // of adding decides, whatever the times and kids say.
    store.add_signing_key(key("a-second", 10)).await.unwrap();
    store.add_signing_key(key("b-third", 10)).await.unwrap();
    let kids: Vec<String> = store.signing_keys().await.unwrap().into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, ["z-first", "a-second", "b-third"]);
}

pub async fn users_are_found_by_sign_in_name_and_object_id(store: &dyn Store) {
    let user = |tenant: &str, upn: &str, oid: &str| fileintel_core::User {
        tenant: tenant.into(),
        upn: upn.into(),
        object_id: oid.into(),
        roles: vec!["Security Reader".into()],
        password_hash: "$argon2id$x".into(),
        created: 1,
    };
    store.put_user(user("contoso", "Alice@Contoso.com", "oid-a")).await.unwrap();
    store.put_user(user("fabrikam", "alice@contoso.com", "oid-f")).await.unwrap();
    let found = store.get_user("contoso", "alice@CONTOSO.com").await.unwrap().unwrap();
    assert_eq!(found.upn, "Alice@Contoso.com", "looked up case-insensitively, kept as given");
    assert_eq!(store.get_user_by_object_id("contoso", "oid-a").await.unwrap(), Some(found));
    assert_eq!(store.get_user_by_object_id("contoso", "oid-f").await.unwrap(), None, "another tenant's user");
    // Re-creating the user with a new object id retires the old one.
    store.put_user(user("contoso", "alice@contoso.com", "oid-b")).await.unwrap();
    assert_eq!(store.get_user_by_object_id("contoso", "oid-a").await.unwrap(), None);
    assert!(store.get_user_by_object_id("contoso", "oid-b").await.unwrap().is_some());
    assert_eq!(store.list_users().await.unwrap().len(), 2);
    assert!(store.delete_user("contoso", "ALICE@contoso.com").await.unwrap());
    assert!(!store.delete_user("contoso", "alice@contoso.com").await.unwrap());
    assert_eq!(store.get_user_by_object_id("contoso", "oid-b").await.unwrap(), None);
    assert!(store.get_user("fabrikam", "alice@contoso.com").await.unwrap().is_some());
}

pub async fn every_write_of_an_application_or_user_moves_the_identity_generation(store: &dyn Store) {
    let app = fileintel_core::Application {
        tenant: "contoso".into(),
        client_id: "a".into(),
        object_id: "oid-a".into(),
        name: "SOAR".into(),
        roles: vec!["File.Read.All".into()],
        secret_hash: "$argon2id$old".into(),
        created: 1,
    };
    let user = fileintel_core::User {
        tenant: "contoso".into(),
        upn: "alice@contoso.com".into(),
        object_id: "oid-u".into(),
        roles: vec!["Security Reader".into()],
        password_hash: "$argon2id$x".into(),
        created: 1,
    };
    let mut seen = store.identity_generation().await.unwrap();
    assert_eq!(store.identity_generation().await.unwrap(), seen, "reading moves nothing");
    // Telemetry is no identity: it leaves the generation where it was.
    store.ingest(vec![seen_at("contoso", "d", Timestamp::now(), 1, "a.exe")]).await.unwrap();
    assert_eq!(store.identity_generation().await.unwrap(), seen);
    store.put_application(app.clone()).await.unwrap();
    seen = moved_on(store, seen, "an application created").await;
    store.put_application(fileintel_core::Application { secret_hash: "$argon2id$new".into(), ..app }).await.unwrap();
    seen = moved_on(store, seen, "its secret rotated").await;
    store.put_user(user).await.unwrap();
    seen = moved_on(store, seen, "a user created").await;
    assert!(store.delete_application("contoso", "a").await.unwrap());
    seen = moved_on(store, seen, "the application deleted").await;
    assert!(store.delete_user("contoso", "alice@contoso.com").await.unwrap());
    moved_on(store, seen, "the user deleted").await;
}

/// The identity generation now, which must have grown past `seen` since `what`.
async fn moved_on(store: &dyn Store, seen: u64, what: &str) -> u64 {
    let now = store.identity_generation().await.unwrap();
    assert!(now > seen, "{what}: the identity generation stayed at {seen}");
    now
}

pub async fn large_calls_count_exactly_across_partial_hashes_and_links(store: &dyn Store) {
    // Files first reported by MD5 alone, then by SHA-1 alone (two records), then by all three
    // hashes (which links them), interleaved across one large call and a second one.
    let files = 1500u32;
    let mut expected: std::collections::HashMap<u32, std::collections::HashSet<(u32, u32)>> = Default::default();
    let mut observations = Vec::new();
    for i in 0..30_000u32 {
        let file = i % files;
        let (tenant, device) = (i % 2, (i * 7) % 53);
        expected.entry(file).or_default().insert((tenant, device));
        let id = |n: usize| {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&file.to_be_bytes());
            bytes[4] = 0xAB;
            bytes[..n].to_vec()
        };
        let full = FileHashes {
            sha1: Sha1::from_slice(&id(20)),
            sha256: Sha256::from_slice(&id(32)),
            md5: Md5::from_slice(&id(16)),
        };
        let hashes = match (i / files) % 5 {
            0 => FileHashes { md5: full.md5, ..Default::default() },
            1 => FileHashes { sha1: full.sha1, ..Default::default() },
            _ => full,
        };
        observations.push(seen(&format!("t{tenant}"), &format!("d{device}"), i64::from(i), hashes));
    }
    let second = observations.split_off(20_000);
    let first = store.ingest(observations).await.unwrap();
    let again = store.ingest(second).await.unwrap();
    assert_eq!(first.accepted + again.accepted, 30_000, "{:?} {:?}", first.rejected.first(), again.rejected.first());
    // Distinct files per call, however a backend splits the call into commits.
    assert_eq!((first.files_touched, again.files_touched), (u64::from(files), u64::from(files)));
    assert_eq!(store.stats().await.unwrap().files, u64::from(files));
    for file in [0u32, 1, 777, 1499] {
        let mut sha1 = [0u8; 20];
        sha1[..4].copy_from_slice(&file.to_be_bytes());
        sha1[4] = 0xAB;
        let record = store.get_file(FileHash::Sha1(Sha1(sha1))).await.unwrap().unwrap();
        assert_eq!(record.global_prevalence, expected[&file].len() as u64, "file {file}");
        assert!(record.hashes.sha256.is_some() && record.hashes.md5.is_some());
    }
}

pub async fn stats_count_the_tenants_devices_within_the_window(store: &dyn Store) {
    let now = Timestamp::now();
    let ago = |hours: i64| Timestamp(now.0 - hours * HOUR);
    store
        .ingest(vec![
            seen_at("contoso", "d1", ago(10), 1, "a.exe"),
            seen_at("contoso", "d2", ago(100), 1, "a.exe"),
            seen_at("contoso", "d3", ago(800), 1, "old.exe"),
            seen_at("contoso", "d4", ago(200), 1, "b.exe"),
            seen_at("contoso", "d4", ago(5), 1, "b.exe"),
            seen_at("fabrikam", "f1", ago(1), 1, "f.exe"),
        ])
        .await
        .unwrap();
    let day = org(store, 1, "contoso", ago(24)).await;
    assert_eq!(day.prevalence, 2, "d1 and d4 were seen in the last day");
    assert_eq!((day.first_seen, day.last_seen), (Some(ago(10)), Some(ago(5))));
    assert_eq!(day.record.global_prevalence, 5, "the global figure counts every tenant");
    let week = org(store, 1, "contoso", ago(150)).await;
    assert_eq!(week.prevalence, 3);
    assert_eq!(week.first_seen, Some(ago(100)));
    let month = org(store, 1, "contoso", ago(720)).await;
    assert_eq!(month.prevalence, 3, "d3 was last seen before the longest window");
    assert_eq!(month.first_seen, Some(ago(200)), "the first observation inside the window, not d3's");
    assert_eq!(org(store, 1, "contoso", ago(2)).await.prevalence, 0);
    assert_eq!(org(store, 1, "contoso", ago(2)).await.first_seen, None);
    let fabrikam = org(store, 1, "fabrikam", ago(720)).await;
    assert_eq!((fabrikam.prevalence, fabrikam.top_file_names.clone()), (1, vec!["f.exe".to_owned()]));
    let stranger = org(store, 1, "nobody", ago(720)).await;
    assert_eq!((stranger.prevalence, stranger.first_seen, stranger.top_file_names.len()), (0, None, 0));
    assert!(store.file_stats(FileHash::Sha1(sha1(2)), "contoso", ago(720)).await.unwrap().is_none());
}

pub async fn stats_are_exact_at_the_edge_of_the_window(store: &dyn Store) {
    let now = Timestamp::now();
    // Devices one second either side of two window starts, one early in its hour and one late,
    // so that both ways of counting the hour the window starts in are taken.
    let hour_start = Timestamp::start_of_hour(now.plus_hours(-50).hour()).0;
    let second = fileintel_core::TICKS_PER_SECOND;
    let early = Timestamp(hour_start + 100 * second);
    let late = Timestamp(hour_start + 3500 * second);
    let mut observations = Vec::new();
    for (index, edge) in [early, late].into_iter().enumerate() {
        for (offset, label) in [(-1, "before"), (0, "at"), (1, "after")] {
            let device = format!("{label}-{index}");
            observations.push(seen_at("contoso", &device, Timestamp(edge.0 + offset * second), 3, "x.exe"));
        }
    }
    store.ingest(observations).await.unwrap();
    // From `early`: at-0, after-0, and all three around `late`.
    assert_eq!(org(store, 3, "contoso", early).await.prevalence, 5);
    assert_eq!(org(store, 3, "contoso", late).await.prevalence, 2);
    assert_eq!(org(store, 3, "contoso", Timestamp(late.0 + 1)).await.prevalence, 1);
    assert_eq!(org(store, 3, "contoso", late).await.first_seen, Some(late));
    // A device seen again later moves out of its old hour and into the new one.
    store.ingest(vec![seen_at("contoso", "before-0", Timestamp(now.0 - HOUR), 3, "x.exe")]).await.unwrap();
    assert_eq!(org(store, 3, "contoso", late).await.prevalence, 3);
    assert_eq!(org(store, 3, "contoso", Timestamp(now.0 - 2 * HOUR)).await.prevalence, 1);
    assert_eq!(org(store, 3, "contoso", early).await.prevalence, 6);
}

pub async fn sweeping_changes_no_answer_a_window_can_give(store: &dyn Store) {
    let now = Timestamp::now();
    let ago = |hours: i64| Timestamp(now.0 - hours * HOUR);
    store
        .ingest(vec![
            seen_at("contoso", "gone", ago(700), 5, "old.exe"),
            seen_at("contoso", "twice", ago(710), 5, "old.exe"),
            seen_at("contoso", "twice", ago(5), 5, "new.exe"),
            seen_at("contoso", "kept", ago(600), 5, "mid.exe"),
            seen_at("contoso", "recent", ago(10), 5, "new.exe"),
        ])
        .await
        .unwrap();
    // Every answer a window from `at` gives, and what `/machines` says.
    let answers = async |at: Timestamp| {
        let mut answers = Vec::new();
        for hours in [720, 650, 600, 200, 105, 1] {
            answers.push(org(store, 5, "contoso", Timestamp(at.0 - hours * HOUR)).await);
        }
        let mut devices = store.file_devices(FileHash::Sha1(sha1(5)), "contoso").await.unwrap();
        devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        (answers, devices)
    };
    let before = answers(now).await;
    store.sweep(now).await.unwrap();
    assert_eq!(answers(now).await, before, "nothing is out of reach yet");
    // A hundred hours on, the observations of 700 and 710 hours ago are out of every window.
    let later = Timestamp(now.0 + 100 * HOUR);
    let before = answers(later).await;
    assert_eq!(before.0[0].prevalence, 3, "gone is out of the longest window; twice, kept and recent are in");
    assert_eq!(before.0[0].first_seen, Some(ago(600)));
    let swept = store.sweep(later).await.unwrap();
    assert!(swept.removed > 0, "the entries of 700 and 710 hours ago are past the horizon: {swept:?}");
    assert_eq!(answers(later).await, before);
    assert_eq!(store.sweep(later).await.unwrap().removed, 0, "a second sweep finds nothing left");
    let record = store.get_file(FileHash::Sha1(sha1(5))).await.unwrap().unwrap();
    assert_eq!(record.global_prevalence, 4, "sightings themselves stay");
}

pub async fn top_file_names_rank_names_by_devices(store: &dyn Store) {
    let time = Timestamp(Timestamp::now().0 - HOUR);
    let mut observations = Vec::new();
    for (name, devices) in
        [("one.exe", 1), ("six.exe", 6), ("four.exe", 4), ("two-b.exe", 2), ("two-a.exe", 2), ("three.exe", 3)]
    {
        for device in 0..devices {
            // Each device reports the name twice: names are ranked by devices, not observations.
            for _ in 0..2 {
                observations.push(seen_at("contoso", &format!("{name}-{device}"), time, 4, name));
            }
        }
    }
    observations.push(seen_at("fabrikam", "f", time, 4, "theirs.exe"));
    store.ingest(observations).await.unwrap();
    let stats = org(store, 4, "contoso", Timestamp(time.0 - HOUR)).await;
    assert_eq!(stats.top_file_names, ["six.exe", "four.exe", "three.exe", "two-a.exe", "two-b.exe"]);
    assert_eq!(stats.prevalence, 18);
}

/// `topFileNames` speaks of the same window as the counts: a name seen only before it does not
/// count, and names are ranked by the devices that saw the file under them within it.
pub async fn top_file_names_come_from_the_window(store: &dyn Store) {
    let now = Timestamp::now();
    let time = |hours: i64| Timestamp(now.0 - hours * HOUR);
    store
        .ingest(vec![
            // Seen only before the window.
            seen_at("contoso", "old", time(100), 7, "ancient.exe"),
            // Renamed: the old name before the window, the new one within it.
            seen_at("contoso", "renamed", time(90), 7, "before.exe"),
            seen_at("contoso", "renamed", time(5), 7, "after.exe"),
            // Both names within the window.
            seen_at("contoso", "both", time(20), 7, "before.exe"),
            seen_at("contoso", "both", time(10), 7, "after.exe"),
            seen_at("contoso", "new", time(3), 7, "fresh.exe"),
        ])
        .await
        .unwrap();
    let stats = org(store, 7, "contoso", time(48)).await;
    assert_eq!(stats.prevalence, 3);
    assert_eq!(stats.top_file_names, ["after.exe", "before.exe", "fresh.exe"]);
    let everything = org(store, 7, "contoso", time(200)).await;
    assert_eq!(everything.top_file_names, ["after.exe", "before.exe", "ancient.exe", "fresh.exe"]);
    assert!(org(store, 7, "contoso", time(1)).await.top_file_names.is_empty(), "nothing seen within the hour");
}

pub async fn stats_follow_records_when_they_are_linked(store: &dyn Store) {
    let now = Timestamp::now();
    let time = |hours: i64| Timestamp(now.0 - hours * HOUR);
    let by = |hash: FileHashes, device: &str, hours: i64, name: &str| Observation {
        timestamp: time(hours),
        file_name: Some(name.to_owned()),
        ..seen("contoso", device, 0, hash)
    };
    store
        .ingest(vec![
            by(only(FileHash::Sha1(sha1(5))), "d1", 30, "first.exe"),
            by(only(FileHash::Sha256(sha256(5))), "d2", 3, "second.exe"),
            by(only(FileHash::Sha256(sha256(5))), "d1", 2, "second.exe"),
        ])
        .await
        .unwrap();
    let both = FileHashes { sha1: Some(sha1(5)), sha256: Some(sha256(5)), md5: None };
    store.ingest(vec![by(both, "d3", 1, "second.exe")]).await.unwrap();
    let stats = org(store, 5, "contoso", time(48)).await;
    assert_eq!(stats.prevalence, 3, "d1 counted once across both records");
    assert_eq!((stats.first_seen, stats.last_seen), (Some(time(30)), Some(time(1))));
    assert_eq!(stats.top_file_names, ["second.exe", "first.exe"]);
    assert_eq!(org(store, 5, "contoso", time(10)).await.prevalence, 3, "d1's last sighting is the merged one");
}

pub async fn machines_carry_device_activity_and_platform(store: &dyn Store) {
    let now = Timestamp::now();
    let time = |hours: i64| Timestamp(now.0 - hours * HOUR);
    let mut windows = seen_at("contoso", "d1", time(9), 6, "a.exe");
    windows.os_platform = Some("Windows10".into());
    store
        .ingest(vec![
            windows,
            seen_at("contoso", "d1", time(20), 7, "other.exe"),
            seen_at("contoso", "d1", time(1), 7, "other.exe"),
        ])
        .await
        .unwrap();
    let devices = store.file_devices(FileHash::Sha1(sha1(6)), "contoso").await.unwrap();
    assert_eq!(devices.len(), 1);
    let device = &devices[0];
    assert_eq!((device.first_seen, device.last_seen), (time(9), time(9)), "the file's sightings");
    assert_eq!(
        (device.device_first_seen, device.device_last_seen),
        (Some(time(20)), Some(time(1))),
        "the device's activity"
    );
    assert_eq!(device.os_platform.as_deref(), Some("Windows10"));
}

pub async fn window_counts_match_a_count_over_every_device(store: &dyn Store) {
    // Devices seen at pseudo-random times over 31 days, some several times, in several calls;
    // then windows starting at pseudo-random instants, each checked against a plain count.
    let now = Timestamp::now();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: i64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 1) % bound as u64) as i64
    };
    for _ in 0..4 {
        let mut observations = Vec::new();
        for _ in 0..300 {
            let device = format!("d{}", next(400));
            observations.push(seen_at("contoso", &device, Timestamp(now.0 - next(744 * HOUR)), 9, "w.exe"));
        }
        store.ingest(observations).await.unwrap();
    }
    let devices = store.file_devices(FileHash::Sha1(sha1(9)), "contoso").await.unwrap();
    for _ in 0..60 {
        let since = Timestamp(now.0 - next(720 * HOUR));
        let expected = devices.iter().filter(|device| device.last_seen >= since).count() as u64;
        assert_eq!(org(store, 9, "contoso", since).await.prevalence, expected, "since {since}");
    }
}

pub async fn a_device_named_later_in_a_call_is_one_device(store: &dyn Store) {
    let time = Timestamp(Timestamp::now().0 - HOUR);
    let unnamed = Observation { device_name: None, ..seen_at("contoso", "d1", time, 10, "a.exe") };
    let named = Observation { device_name: Some("ws1.contoso".into()), ..seen_at("contoso", "d1", time, 11, "b.exe") };
    let renamed =
        Observation { device_name: Some("ws1-new.contoso".into()), ..seen_at("contoso", "d1", time, 10, "a.exe") };
    store.ingest(vec![unnamed.clone(), named, renamed, unnamed]).await.unwrap();
    for n in [10, 11] {
        let record = store.get_file(FileHash::Sha1(sha1(n))).await.unwrap().unwrap();
        assert_eq!(record.global_prevalence, 1, "file {n}");
        let devices = store.file_devices(FileHash::Sha1(sha1(n)), "contoso").await.unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].device_name.as_deref(), Some("ws1-new.contoso"));
    }
}

pub async fn identifiers_too_long_to_keep_are_rejected(store: &dyn Store) {
    let time = Timestamp(Timestamp::now().0 - HOUR);
    let long_name = seen_at("contoso", "d1", time, 12, &"n".repeat(70_000));
    let long_device = seen_at("contoso", &"d".repeat(5_000), time, 12, "a.exe");
    let fine = seen_at("contoso", "d2", time, 12, "a.exe");
    let outcome = store.ingest(vec![long_name, long_device, fine]).await.unwrap();
    assert_eq!(outcome.accepted, 1);
    let reasons: Vec<&str> = outcome.rejected.iter().map(|(_, reason)| reason.as_str()).collect();
    assert!(reasons[0].contains("fileName") && reasons[1].contains("deviceId"), "{reasons:?}");
    // The store goes on working.
    store.ingest(vec![seen_at("contoso", "d3", time, 12, "a.exe")]).await.unwrap();
    assert_eq!(store.get_file(FileHash::Sha1(sha1(12))).await.unwrap().unwrap().global_prevalence, 2);
}

pub async fn lookups_by_identifiers_too_long_to_keep_find_nothing(store: &dyn Store) {
    let long = "x".repeat(70_000);
    let time = Timestamp(Timestamp::now().0 - HOUR);
    store.ingest(vec![seen_at("contoso", "d1", time, 13, "a.exe")]).await.unwrap();
    assert!(store.get_application(&long, "c").await.unwrap().is_none());
    assert!(store.get_application("t", &long).await.unwrap().is_none());
    assert!(!store.delete_application("t", &long).await.unwrap());
    assert!(store.get_user("t", &long).await.unwrap().is_none());
    assert!(store.get_user_by_object_id(&long, "o").await.unwrap().is_none());
    assert!(!store.delete_user(&long, "u").await.unwrap());
    assert!(store.list_indicators(&long).await.unwrap().is_empty());
    assert!(!store.delete_indicator(&long, "1").await.unwrap());
    assert!(store.file_devices(FileHash::Sha1(sha1(13)), &long).await.unwrap().is_empty());
    let stats = store.file_stats(FileHash::Sha1(sha1(13)), &long, time).await.unwrap().unwrap();
    assert_eq!(stats.prevalence, 0);
}

fn verdict(source: VerdictSource, kind: DeterminationType, value: &str, said_at: i64) -> Verdict {
    Verdict {
        source,
        determination_type: kind,
        determination_value: Some(value.into()),
        rank: 10,
        said_at: Some(at(said_at)),
        valid_from: None,
        valid_until: None,
        revoked: false,
        reference: None,
    }
}

fn feed(name: &str) -> VerdictSource {
    VerdictSource::Feed { name: name.into() }
}

pub async fn verdicts_are_kept_per_source_and_the_newest_statement_wins(store: &dyn Store) {
    use DeterminationType::{Clean, Malware, Pua};
    let emotet = verdict(feed("bazaar"), Malware, "Emotet", 10);
    // Said under all three hashes, found under any one of them, once.
    assert_eq!(store.put_verdicts(vec![(all_three(1), emotet.clone())]).await.unwrap(), 1);
    for hashes in [only(FileHash::Sha1(sha1(1))), only(FileHash::Md5(md5(1))), all_three(1)] {
        assert_eq!(store.verdicts(&hashes).await.unwrap(), vec![emotet.clone()]);
    }
    assert!(store.verdicts(&all_three(2)).await.unwrap().is_empty());
    // The same statement again changes nothing; an older one cannot undo it; a newer replaces it.
    assert_eq!(store.put_verdicts(vec![(all_three(1), emotet.clone())]).await.unwrap(), 0);
    let older = verdict(feed("bazaar"), Clean, "old", 5);
    assert_eq!(store.put_verdicts(vec![(only(FileHash::Sha256(sha256(1))), older)]).await.unwrap(), 0);
    let newer = verdict(feed("bazaar"), Pua, "Adware", 20);
    assert_eq!(store.put_verdicts(vec![(only(FileHash::Sha256(sha256(1))), newer.clone())]).await.unwrap(), 1);
    assert_eq!(store.verdicts(&all_three(1)).await.unwrap(), vec![newer.clone()], "the newest, once");
    // Another source speaks beside it; an indicator can be taken back.
    let indicator = VerdictSource::Indicator { tenant: "contoso".into(), id: "7".into() };
    let allowed = verdict(indicator.clone(), Clean, "allowed", 30);
    store.put_verdicts(vec![(only(FileHash::Sha1(sha1(1))), allowed.clone())]).await.unwrap();
    assert_eq!(store.verdicts(&all_three(1)).await.unwrap(), vec![newer.clone(), allowed]);
    assert!(store.delete_verdict(&only(FileHash::Sha1(sha1(1))), &indicator).await.unwrap());
    assert!(!store.delete_verdict(&only(FileHash::Sha1(sha1(1))), &indicator).await.unwrap());
    assert_eq!(store.verdicts(&all_three(1)).await.unwrap(), vec![newer]);
    // Within one call, the later statement about the same file competes like a stored one.
    let first = verdict(feed("vendor"), Malware, "A", 40);
    let second = verdict(feed("vendor"), Malware, "B", 41);
    assert_eq!(store.put_verdicts(vec![(all_three(3), second.clone()), (all_three(3), first)]).await.unwrap(), 1);
    assert_eq!(store.verdicts(&all_three(3)).await.unwrap(), vec![second]);
}

/// A whole-feed import ends what the feed no longer lists: only that source's, only under the
/// hashes it left out, kept as history, and a later listing speaks again.
pub async fn verdicts_a_whole_feed_no_longer_lists_stop_speaking(store: &dyn Store) {
    use DeterminationType::Malware;
    let at = Timestamp(1_000_000);
    let listed_before = verdict(feed("bazaar"), Malware, "Emotet", 10);
    let dropped = verdict(feed("bazaar"), Malware, "Qakbot", 10);
    let other_source = verdict(feed("vendor"), Malware, "Qakbot", 10);
    let mut ended_earlier = verdict(feed("bazaar"), Malware, "Old", 10);
    ended_earlier.valid_until = Some(Timestamp(5));
    store
        .put_verdicts(vec![
            (all_three(1), listed_before.clone()),
            (all_three(2), dropped.clone()),
            (all_three(2), other_source.clone()),
            (only(FileHash::Sha1(sha1(3))), ended_earlier.clone()),
        ])
        .await
        .unwrap();
    // The new version of the feed lists file 1 (by its SHA-256 and SHA-1), not 2 or 3.
    let listed: std::collections::HashSet<FileHash> =
        [FileHash::Sha256(sha256(1)), FileHash::Sha1(sha1(1)), FileHash::Md5(md5(1))].into();
    // File 2's verdict is kept under its three hashes: three ended.
    assert_eq!(store.end_unlisted_verdicts(&feed("bazaar"), &listed, at).await.unwrap(), 3);
    assert_eq!(store.verdicts(&all_three(1)).await.unwrap(), vec![listed_before]);
    let mut ended = dropped.clone();
    ended.valid_until = Some(at);
    assert_eq!(store.verdicts(&all_three(2)).await.unwrap(), vec![ended.clone(), other_source], "kept as history");
    assert!(!ended.speaks_at(at) && dropped.speaks_at(at));
    assert_eq!(store.verdicts(&only(FileHash::Sha1(sha1(3)))).await.unwrap(), vec![ended_earlier], "already ended");
    // Again: nothing left to end.
    assert_eq!(store.end_unlisted_verdicts(&feed("bazaar"), &listed, at).await.unwrap(), 0);
    // Listed again by a later version, it speaks again.
    let relisted = verdict(feed("bazaar"), Malware, "Qakbot", 11);
    assert_eq!(store.put_verdicts(vec![(all_three(2), relisted.clone())]).await.unwrap(), 1);
    assert!(store.verdicts(&all_three(2)).await.unwrap().contains(&relisted));
}

pub async fn a_lookup_reads_the_record_and_every_verdict_under_any_of_its_hashes(store: &dyn Store) {
    use DeterminationType::{Malware, Pua};
    store.ingest(vec![seen("t", "d1", 0, all_three(1))]).await.unwrap();
    // Sources speak under different hashes of the known file, and about a hash no record has.
    let by_md5 = verdict(feed("alpha"), Malware, "Emotet", 10);
    let by_sha256 = verdict(feed("beta"), Pua, "Adware", 11);
    let unknown = verdict(feed("gamma"), Malware, "Qakbot", 12);
    store.put_verdicts(vec![(only(FileHash::Md5(md5(1))), by_md5.clone())]).await.unwrap();
    store.put_verdicts(vec![(only(FileHash::Sha256(sha256(1))), by_sha256.clone())]).await.unwrap();
    store.put_verdicts(vec![(only(FileHash::Sha1(sha1(9))), unknown.clone())]).await.unwrap();
    let record = store.get_file(FileHash::Sha1(sha1(1))).await.unwrap().expect("the file is known");
    for hash in all_three(1).iter() {
        let (found, verdicts) = store.file_and_verdicts(hash).await.unwrap();
        assert_eq!(found.as_ref(), Some(&record), "{hash:?}");
        assert_eq!(verdicts, vec![by_md5.clone(), by_sha256.clone()], "{hash:?}");
    }
    assert_eq!(store.file_and_verdicts(FileHash::Sha1(sha1(9))).await.unwrap(), (None, vec![unknown]));
    assert_eq!(store.file_and_verdicts(FileHash::Md5(md5(9))).await.unwrap(), (None, Vec::new()));
    // A newer statement under another of the file's hashes replaces the older one, once.
    let newer = verdict(feed("alpha"), Pua, "Downgraded", 20);
    store.put_verdicts(vec![(only(FileHash::Sha1(sha1(1))), newer.clone())]).await.unwrap();
    let (_, verdicts) = store.file_and_verdicts(FileHash::Md5(md5(1))).await.unwrap();
    assert_eq!(verdicts, vec![newer, by_sha256]);
}

fn indicator(tenant: &str, value: String, action: &str, at_seconds: i64) -> Indicator {
    Indicator {
        tenant: tenant.into(),
        id: String::new(),
        indicator_value: value,
        indicator_type: "FileSha1".into(),
        action: action.into(),
        title: "analyst said".into(),
        description: "why".into(),
        severity: None,
        application: None,
        recommended_actions: None,
        rbac_group_names: Vec::new(),
        generate_alert: None,
        external_id: None,
        expiration_time: None,
        created_by: "app-1".into(),
        creation_time: at(at_seconds),
        last_update_time: at(at_seconds),
        last_updated_by: None,
    }
}

pub async fn indicators_are_kept_per_tenant_and_speak_through_verdicts(store: &dyn Store) {
    let value = sha1(5).to_string();
    let file = only(FileHash::Sha1(sha1(5)));
    let first = store.put_indicator(indicator("contoso", value.clone(), "Block", 1)).await.unwrap();
    assert!(!first.id.is_empty());
    let other = store.put_indicator(indicator("fabrikam", value.clone(), "Allowed", 2)).await.unwrap();
    // The same value again in the same tenant updates it: same id, creation kept.
    let mut again = indicator("contoso", value.to_uppercase(), "Warn", 3);
    again.created_by = "app-2".into();
    let updated = store.put_indicator(again).await.unwrap();
    assert_eq!(
        (updated.id.clone(), updated.creation_time, updated.created_by.clone()),
        (first.id.clone(), at(1), "app-1".into())
    );
    assert_eq!(store.list_indicators("contoso").await.unwrap(), vec![updated.clone()]);
    assert_eq!(store.list_indicators("fabrikam").await.unwrap().len(), 1);
    assert!(store.list_indicators("northwind").await.unwrap().is_empty());
    // Each speaks through a verdict of its tenant.
    let verdicts = store.verdicts(&file).await.unwrap();
    let said: Vec<(VerdictSource, DeterminationType)> =
        verdicts.iter().map(|verdict| (verdict.source.clone(), verdict.determination_type)).collect();
    assert_eq!(
        said,
        [
            (VerdictSource::Indicator { tenant: "contoso".into(), id: first.id.clone() }, DeterminationType::Pua),
            (VerdictSource::Indicator { tenant: "fabrikam".into(), id: other.id.clone() }, DeterminationType::Clean),
        ]
    );
    // An audit indicator judges nothing; deleting one takes its verdict away.
    store.put_indicator(indicator("contoso", value.clone(), "Audit", 4)).await.unwrap();
    assert_eq!(store.verdicts(&file).await.unwrap().len(), 1);
    assert!(store.delete_indicator("fabrikam", &other.id).await.unwrap());
    assert!(!store.delete_indicator("fabrikam", &other.id).await.unwrap());
    assert!(!store.delete_indicator("contoso", "no-such-id").await.unwrap());
    assert!(store.verdicts(&file).await.unwrap().is_empty());
}

/// Ids count each tenant's own indicators (1, 2, 3...): one tenant's ids say nothing of how many
/// another has, and an id names an indicator of the caller's tenant only.
pub async fn each_tenant_numbers_its_own_indicators(store: &dyn Store) {
    let put = |tenant: &str, n: u8| store.put_indicator(indicator(tenant, sha1(n).to_string(), "Block", 1));
    let contoso: Vec<String> = [put("contoso", 1).await, put("contoso", 2).await, put("contoso", 3).await]
        .into_iter()
        .map(|stored| stored.unwrap().id)
        .collect();
    assert_eq!(contoso, ["1", "2", "3"]);
    let fabrikam = put("fabrikam", 1).await.unwrap();
    assert_eq!(fabrikam.id, "1", "fabrikam's first, however many contoso has");
    // The same id in another tenant is another indicator: deleting one leaves the other.
    assert!(!store.delete_indicator("fabrikam", "2").await.unwrap(), "contoso's 2 is not fabrikam's");
    assert!(store.delete_indicator("fabrikam", "1").await.unwrap());
    let left: Vec<String> = store.list_indicators("contoso").await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(left, ["1", "2", "3"]);
    let source = VerdictSource::Indicator { tenant: "contoso".into(), id: "1".into() };
    let verdicts = store.verdicts(&only(FileHash::Sha1(sha1(1)))).await.unwrap();
    assert_eq!(
        verdicts.iter().map(|verdict| &verdict.source).collect::<Vec<_>>(),
        [&source],
        "contoso's 1 still speaks"
    );
    // A deleted id is not given again.
    assert_eq!(put("fabrikam", 9).await.unwrap().id, "2");
    assert!(store.delete_indicator("contoso", "3").await.unwrap());
    assert_eq!(put("contoso", 9).await.unwrap().id, "4");
}

fn tenant<'a>(name: &'a str, trust: &'a Trust) -> Viewer<'a> {
    Viewer::Tenant { name, trust }
}

async fn record_of(store: &dyn Store, n: u8) -> FileRecord {
    store.get_file(FileHash::Sha1(sha1(n))).await.unwrap().expect("the file is known")
}

/// 50 invented devices of fabrikam, dated long before contoso's one, change nothing contoso
/// sees until the operator trusts fabrikam; every figure stays exact under a replay.
pub async fn each_tenant_counts_only_for_the_viewers_that_count_it(store: &dyn Store) {
    let mut observations = vec![seen("contoso", "c1", 100, all_three(40))];
    observations.extend((0..50).map(|d| seen("fabrikam", &format!("f{d}"), -100_000, all_three(40))));
    for round in 0..2 {
        let outcome = store.ingest(observations.clone()).await.unwrap();
        assert_eq!(outcome.new_files, if round == 0 { 2 } else { 0 }, "new to contoso and to fabrikam, once");
        let record = record_of(store, 40).await;
        let nobody = Trust::default();
        let contoso = record.seen_by(tenant("contoso", &nobody)).unwrap();
        assert_eq!(contoso.global_prevalence, 1, "fabrikam's devices do not count for contoso");
        assert_eq!(contoso.global_first_observed, Some(at(100)));
        assert_eq!(contoso.global_last_observed, Some(at(100)));
        let fabrikam = record.seen_by(tenant("fabrikam", &nobody)).unwrap();
        assert_eq!((fabrikam.global_prevalence, fabrikam.global_first_observed), (50, Some(at(-100_000))));
        let trusted = Trust::new(["fabrikam".to_owned()]);
        let trusting = record.seen_by(tenant("contoso", &trusted)).unwrap();
        assert_eq!((trusting.global_prevalence, trusting.global_first_observed), (51, Some(at(-100_000))));
        let operator = record.seen_by(Viewer::Operator).unwrap();
        assert_eq!((operator.global_prevalence, record.global_prevalence), (51, 51));
        let rows: Vec<(&str, u64)> = record.tenants.iter().map(|row| (row.tenant.as_str(), row.devices)).collect();
        assert_eq!(rows, [("contoso", 1), ("fabrikam", 50)]);
    }
    // A file other tenants saw is still new to northwind: the count tells it nothing of theirs.
    assert_eq!(store.ingest(vec![seen("northwind", "n1", 0, all_three(40))]).await.unwrap().new_files, 1);
    // The window stats carry the same rows.
    let stats = org(store, 40, "contoso", at(0)).await;
    assert_eq!(stats.record.seen_by(tenant("contoso", &Trust::default())).unwrap().global_prevalence, 1);
}

fn reporting(tenant: &str, device: &str, seconds: i64, size: u64, signer: &str) -> Observation {
    Observation {
        size: Some(size),
        reported: Some(Box::new(ReportedFacts {
            signed: Some(true),
            signature: Some(signer.into()),
            signature_status: Some("Valid".into()),
            company: Some(signer.into()),
            product: None,
        })),
        ..seen(tenant, device, seconds, all_three(41))
    }
}

/// fabrikam's newer report that Microsoft signed the file speaks for fabrikam alone; contoso
/// sees its own, older report; analysis of the bytes then speaks for both.
pub async fn a_tenants_report_and_size_speak_only_for_it_and_give_way_to_analysis(store: &dyn Store) {
    store.ingest(vec![reporting("fabrikam", "f", 500, 1, "Microsoft Windows")]).await.unwrap();
    store.ingest(vec![reporting("contoso", "c", 100, 2048, "Contoso Ltd")]).await.unwrap();
    let nobody = Trust::default();
    let record = record_of(store, 41).await;
    let contoso = record.seen_by(tenant("contoso", &nobody)).unwrap();
    assert_eq!(contoso.effective_facts().signer.as_deref(), Some("Contoso Ltd"));
    assert_eq!(contoso.size, Some(2048));
    let fabrikam = record.seen_by(tenant("fabrikam", &nobody)).unwrap();
    assert_eq!(fabrikam.effective_facts().signer.as_deref(), Some("Microsoft Windows"));
    assert_eq!(fabrikam.size, Some(1));
    let trusted = Trust::new(["fabrikam".to_owned()]);
    let trusting = record.seen_by(tenant("contoso", &trusted)).unwrap();
    assert_eq!(trusting.effective_facts().signer.as_deref(), Some("Microsoft Windows"), "the newest trusted report");

    let measured =
        FileFacts { signer: Some("Contoso Ltd".into()), is_valid_certificate: Some(true), ..FileFacts::default() };
    store.put_facts(all_three(41), Some(4096), measured).await.unwrap();
    let record = record_of(store, 41).await;
    for viewer in [tenant("contoso", &nobody), tenant("fabrikam", &nobody), tenant("contoso", &trusted)] {
        let seen = record.seen_by(viewer).unwrap();
        assert_eq!(seen.effective_facts().signer.as_deref(), Some("Contoso Ltd"), "{viewer:?}");
        assert_eq!(seen.size, Some(4096), "{viewer:?}");
    }
}

/// A hash only fabrikam reported is unknown to contoso, until something every tenant trusts
/// (here fileintel's analysis) knows it.
pub async fn a_file_only_another_tenant_saw_does_not_exist_for_a_tenant(store: &dyn Store) {
    store.ingest(vec![seen("fabrikam", "f", 0, all_three(42))]).await.unwrap();
    let nobody = Trust::default();
    let record = record_of(store, 42).await;
    assert!(record.seen_by(tenant("contoso", &nobody)).is_none());
    assert!(record.seen_by(tenant("fabrikam", &nobody)).is_some());
    let stats = org(store, 42, "contoso", at(-10)).await;
    assert!(stats.record.seen_by(tenant("contoso", &nobody)).is_none());
    store.put_facts(all_three(42), Some(10), FileFacts::default()).await.unwrap();
    let seen = record_of(store, 42).await.seen_by(tenant("contoso", &nobody)).unwrap();
    assert_eq!((seen.global_prevalence, seen.global_first_observed, seen.size), (0, None, Some(10)));
}

/// Two records found to be one file merge their tenants' rows: each tenant's devices counted
/// once, windows widened, on a store and across a replay.
pub async fn linked_records_count_each_tenants_devices_exactly(store: &dyn Store) {
    store
        .ingest(vec![
            seen("a", "1", 10, only(FileHash::Sha1(sha1(43)))),
            seen("a", "2", 20, only(FileHash::Sha1(sha1(43)))),
        ])
        .await
        .unwrap();
    store
        .ingest(vec![
            seen("a", "2", 5, only(FileHash::Sha256(sha256(43)))),
            seen("b", "3", 30, only(FileHash::Sha256(sha256(43)))),
        ])
        .await
        .unwrap();
    let link = FileHashes { sha1: Some(sha1(43)), sha256: Some(sha256(43)), md5: None };
    for _ in 0..2 {
        store.ingest(vec![seen("b", "3", 40, link)]).await.unwrap();
        let record = record_of(store, 43).await;
        assert_eq!(record.global_prevalence, 3);
        let rows: Vec<(&str, u64, Option<Timestamp>, Option<Timestamp>)> =
            record.tenants.iter().map(|row| (row.tenant.as_str(), row.devices, row.first, row.last)).collect();
        assert_eq!(rows, [("a", 2, Some(at(5)), Some(at(20))), ("b", 1, Some(at(30)), Some(at(40)))]);
    }
}

/// Instantiates the whole contract suite as `#[tokio::test]`s for one backend.
/// `$factory` is an async fn returning `(store, guard)`.
///
/// `contract_suite!(optional $factory)` is for backends that need a server: `$factory` returns
/// `Option<(store, guard)>`, and each test passes without running when it gives `None`; the
/// factory says why through `fileintel_testing::skip`, which under `CI=true` fails instead.
#[macro_export]
macro_rules! contract_suite {
    (optional $factory:ident) => {
        $crate::contract_suite!(@suite tests_optional $factory);
    };
    ($factory:ident) => {
        $crate::contract_suite!(@suite tests $factory);
    };
    // The one list of tests, for either arm.
    (@suite $arm:ident $factory:ident) => {
        $crate::contract_suite!(@$arm $factory,
            every_hash_resolves_to_the_same_record,
            unknown_hashes_are_not_found,
            distinct_devices_are_counted_exactly_under_duplicates_and_disorder,
            records_first_known_by_different_hashes_are_linked,
            a_conflicting_pairing_is_rejected_and_the_first_is_kept,
            each_tenant_sees_only_its_own_devices,
            static_facts_are_kept_beside_observations,
            large_calls_count_exactly_across_partial_hashes_and_links,
            a_file_first_known_by_one_hash_gains_the_others,
            applications_and_signing_keys_are_kept,
            users_are_found_by_sign_in_name_and_object_id,
            every_write_of_an_application_or_user_moves_the_identity_generation,
            stats_count_the_tenants_devices_within_the_window,
            stats_are_exact_at_the_edge_of_the_window,
            sweeping_changes_no_answer_a_window_can_give,
            top_file_names_rank_names_by_devices,
            top_file_names_come_from_the_window,
            stats_follow_records_when_they_are_linked,
            machines_carry_device_activity_and_platform,
            window_counts_match_a_count_over_every_device,
            a_device_named_later_in_a_call_is_one_device,
            identifiers_too_long_to_keep_are_rejected,
            lookups_by_identifiers_too_long_to_keep_find_nothing,
            verdicts_are_kept_per_source_and_the_newest_statement_wins,
            verdicts_a_whole_feed_no_longer_lists_stop_speaking,
            indicators_are_kept_per_tenant_and_speak_through_verdicts,
            each_tenant_numbers_its_own_indicators,
            a_lookup_reads_the_record_and_every_verdict_under_any_of_its_hashes,
            each_tenant_counts_only_for_the_viewers_that_count_it,
            a_tenants_report_and_size_speak_only_for_it_and_give_way_to_analysis,
            a_file_only_another_tenant_saw_does_not_exist_for_a_tenant,
            linked_records_count_each_tenants_devices_exactly,
        );
    };
    (@tests $factory:ident, $($name:ident),* $(,)?) => {
        mod contract {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _guard) = super::$factory().await;
                    $crate::contract::$name(&store).await;
                }
            )*
        }
    };
    (@tests_optional $factory:ident, $($name:ident),* $(,)?) => {
        mod contract {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((store, _guard)) = super::$factory().await else { return };
                    $crate::contract::$name(&store).await;
                }
            )*
        }
    };
}
