//! Issue 17's attacks, through the HTTP API with two tenants: what one tenant says must not
//! rewrite what the other sees. contoso is the victim, fabrikam the tenant that lies.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fileintel_server::testing::{TestApp, spawn_app, spawn_app_with};
use fileintel_server::{FeedImport, ImportMode};

const SHA1: &str = "4388963aaa83afe2042a46a3c017ad50bdcdafb3";

/// The application with the feed sources `sources` (JSON, as `--feed-sources` reads them).
async fn app_with_sources(sources: &[u8]) -> TestApp {
    let sources = fileintel_feeds::sources_from_json(sources).unwrap();
    spawn_app_with(|config| config.server.feed_sources = sources).await
}

async fn determination(app: &TestApp, token: &str) -> String {
    let answer = app.get_file(SHA1, Some(token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json()["determinationType"].as_str().unwrap().to_owned()
}

fn feed_import(source: &str, token: &str, body: String) -> Request<Body> {
    Request::post(format!("/api/feeds/import?format=csv&source={source}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap()
}

/// Feed poisoning: a feed's verdicts speak to every tenant, so by default only the operator
/// writes a feed; a tenant's import into it is a 403 and changes nothing anyone sees.
#[tokio::test]
async fn a_tenant_cannot_rewrite_a_feed_every_tenant_trusts() {
    let app = app_with_sources(
        br#"[{"name":"bazaar","rank":40},{"name":"vendor","rank":80},
            {"name":"shared","rank":90,"writers":["operator","contoso"]}]"#,
    )
    .await;
    // The operator's import (the CLI on the data directory, or the admin socket).
    let bazaar = app.state.config.feed_sources[0].clone();
    let operator = fileintel_feeds::Writer::Operator;
    let mut import = FeedImport::new(app.state.store.as_ref(), &bazaar, &operator, ImportMode::Add).unwrap();
    import.import(fileintel_feeds::Format::Csv, format!("{SHA1},Malware,Emotet\n").into_bytes()).await.unwrap();
    let contoso = app.token_for("contoso", &["File.Read.All"]).await;
    assert_eq!(determination(&app, &contoso).await, "Malware");

    let fabrikam = app.token_for("fabrikam", &["Ti.ReadWrite.All"]).await;
    for source in ["bazaar", "vendor", "shared"] {
        let answer = app.send(feed_import(source, &fabrikam, format!("{SHA1},Clean,benign\n"))).await;
        let body = answer.assert_envelope(StatusCode::FORBIDDEN, "Forbidden");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("'fabrikam' may not write the feed source '{source}'")), "{message}");
    }
    assert_eq!(determination(&app, &contoso).await, "Malware", "no tenant's import reached the feed");

    // A source that names a tenant as a writer takes that tenant's import.
    let writer = app.token_for("contoso", &["Ti.ReadWrite.All"]).await;
    let answer = app.send(feed_import("shared", &writer, format!("{SHA1},Pua,Bundler\n"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["changed"], 1, "{}", answer.text);
    assert_eq!(determination(&app, &contoso).await, "Pua");
}

/// Dates: an observation dated in the future would be the newest report for good (no honest
/// one could replace it), one dated 1970 the first sighting for good; both are rejected at their
/// line, and what the same body says in range is kept.
#[tokio::test]
async fn observations_dated_in_the_future_or_before_2000_are_rejected_with_their_line() {
    let app = app_with_sources(b"[]").await;
    let fabrikam = app.token_for("fabrikam", &["File.Read.All", "File.ReadWrite.All"]).await;
    let line = |device: &str, time: &str| {
        format!(r#"{{"tenantId":"fabrikam","deviceId":"{device}","timestamp":"{time}","sha1":"{SHA1}"}}"#)
    };
    let now = fileintel_core::Timestamp::now();
    let body = [
        line("d1", "2099-01-01T00:00:00Z"),
        line("d2", "1970-01-01T00:00:00Z"),
        line("d3", &fileintel_core::Timestamp(now.0 + 3600 * fileintel_core::TICKS_PER_SECOND).to_string()),
        line("d4", &fileintel_core::Timestamp(now.0 - fileintel_core::TICKS_PER_DAY).to_string()),
    ]
    .join("\n");
    let answer = app.ingest(body, Some(&fabrikam)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let summary = answer.json();
    assert_eq!((summary["accepted"].as_u64(), summary["rejected"].as_u64()), (Some(1), Some(3)), "{summary}");
    let rejected: Vec<(u64, String)> = summary["rejectedLines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rejection| (rejection["line"].as_u64().unwrap(), rejection["reason"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(rejected.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [1, 2, 3], "{summary}");
    assert!(rejected[0].1.contains("in the future"), "{rejected:?}");
    assert!(rejected[1].1.contains("before 2000-01-01"), "{rejected:?}");
    assert!(rejected[2].1.contains("in the future"), "{rejected:?}");

    let file = app.get_file(SHA1, Some(&fabrikam)).await.json();
    assert_eq!(file["globalPrevalence"], 1, "{file}");
    let yesterday = fileintel_core::Timestamp(now.0 - fileintel_core::TICKS_PER_DAY).to_string();
    assert_eq!(file["globalFirstObserved"], yesterday.as_str(), "{file}");
    assert_eq!(file["globalLastObserved"], yesterday.as_str(), "{file}");
}

/// The backends every attack below runs on: the embedded store, and PostgreSQL when
/// `FILEINTEL_TEST_DATABASE_URL` names a server (under CI it always does).
#[derive(Debug, Clone, Copy)]
enum Backend {
    Embedded,
    Postgres,
}

/// The application on `backend` with `configure` applied, and the test database it keeps.
async fn app_on(
    backend: Backend,
    configure: impl FnOnce(&mut fileintel_server::application::Config),
) -> Option<(TestApp, Option<fileintel_postgres::testing::TestDatabase>)> {
    match backend {
        Backend::Embedded => Some((spawn_app_with(configure).await, None)),
        Backend::Postgres => {
            let url = fileintel_postgres::testing::server_url()?;
            let database = fileintel_postgres::testing::TestDatabase::create(&url).await;
            let settings = fileintel_server::backend::DatabaseSettings {
                url: database.url.clone(),
                timeout: std::time::Duration::from_secs(10),
                connections: 4,
            };
            let app = spawn_app_with(|config| {
                config.store.database = Some(settings);
                configure(config);
            })
            .await;
            Some((app, Some(database)))
        }
    }
}

/// Each attack, once per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        on_both_backends!(@module embedded Embedded, $($name),*);
        on_both_backends!(@module postgres Postgres, $($name),*);
    };
    (@module $module:ident $backend:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::$backend).await;
                }
            )*
        }
    };
}

on_both_backends!(
    invented_devices_and_dates_count_only_for_their_tenant_until_it_is_trusted,
    a_tenants_signer_and_size_speak_only_for_it,
    a_file_only_another_tenant_saw_is_not_found,
);

const TICKS_PER_HOUR: i64 = fileintel_core::TICKS_PER_HOUR;

fn hours_ago(hours: i64) -> fileintel_core::Timestamp {
    fileintel_core::Timestamp(fileintel_core::Timestamp::now().0 - hours * TICKS_PER_HOUR)
}

fn ndjson(tenant: &str, device: &str, time: fileintel_core::Timestamp, hash: &str, size: Option<u64>) -> String {
    let size = size.map_or(String::new(), |size| format!(r#","size":{size}"#));
    format!(r#"{{"tenantId":"{tenant}","deviceId":"{device}","timestamp":"{time}","sha1":"{hash}"{size}}}"#)
}

async fn ingested(app: &TestApp, token: &str, path: &str, body: String) {
    let request =
        Request::post(path).header("authorization", format!("Bearer {token}")).body(Body::from(body)).unwrap();
    let answer = app.send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["rejected"], 0, "{}", answer.text);
}

/// Prevalence and dates: 50 invented devices of fabrikam, dated 2001, are not contoso's
/// global figures (neither in the profile nor in `/stats`), until the operator trusts fabrikam.
async fn invented_devices_and_dates_count_only_for_their_tenant_until_it_is_trusted(backend: Backend) {
    for trusted in [false, true] {
        let Some((app, _database)) = app_on(backend, |config| {
            if trusted {
                config.server.trust.add("fabrikam");
            }
        })
        .await
        else {
            return;
        };
        let roles = ["File.Read.All", "File.ReadWrite.All"];
        let (contoso, fabrikam) = (app.token_for("contoso", &roles).await, app.token_for("fabrikam", &roles).await);
        let honest = hours_ago(24);
        ingested(&app, &contoso, "/api/ingest/observations", ndjson("contoso", "c1", honest, SHA1, None)).await;
        let invented = fileintel_core::Timestamp::parse("2001-01-01T00:00:00Z").unwrap();
        let lines: Vec<String> = (0..50).map(|d| ndjson("fabrikam", &format!("f{d}"), invented, SHA1, None)).collect();
        ingested(&app, &fabrikam, "/api/ingest/observations", lines.join("\n")).await;

        let (prevalence, first) = if trusted { (51, invented) } else { (1, honest) };
        let file = app.get_file(SHA1, Some(&contoso)).await.json();
        assert_eq!(file["globalPrevalence"], prevalence, "trusted {trusted}: {file}");
        assert_eq!(file["globalFirstObserved"], first.to_string().as_str(), "trusted {trusted}: {file}");
        assert_eq!(file["globalLastObserved"], honest.to_string().as_str(), "trusted {trusted}: {file}");
        let stats = app.get(&format!("/api/files/{SHA1}/stats"), Some(&contoso)).await.json();
        assert_eq!(stats["globalPrevalence"], prevalence.to_string().as_str(), "trusted {trusted}: {stats}");
        assert_eq!(stats["globalFirstObserved"], first.to_string().as_str(), "trusted {trusted}: {stats}");
        assert_eq!(stats["orgPrevalence"], "1", "a tenant's own devices always count: {stats}");
        let theirs = app.get_file(SHA1, Some(&fabrikam)).await.json();
        assert_eq!(theirs["globalPrevalence"], 50, "contoso is not trusted: {theirs}");
    }
}

/// A Sysmon image-load event in the `sysmon-json` form, reporting the file's signature.
fn signed_event(computer: &str, time: fileintel_core::Timestamp, sha256: &str, signer: &str, company: &str) -> String {
    // Sysmon's UtcTime: "2026-11-20 08:15:30.123".
    let time = time.to_string().replace('T', " ");
    let time = &time[..23];
    format!(
        r#"{{"EventID":7,"Computer":"{computer}","UtcTime":"{time}","ImageLoaded":"C:\\x.dll","Hashes":"SHA256={sha256}","Signed":"true","Signature":"{signer}","SignatureStatus":"Valid","Company":"{company}"}}"#
    )
}

/// Signer spoofing and the sticky size: fabrikam's newer report that Microsoft signed the file,
/// and its size, reported first, are fabrikam's view alone; contoso sees what its own endpoints
/// said.
async fn a_tenants_signer_and_size_speak_only_for_it(backend: Backend) {
    let Some((app, _database)) = app_on(backend, |_| {}).await else { return };
    let roles = ["File.Read.All", "File.ReadWrite.All"];
    let (contoso, fabrikam) = (app.token_for("contoso", &roles).await, app.token_for("fabrikam", &roles).await);
    const SHA256: &str = "0c8b1e38e1c7ef0b9e8fd2dc2cd57e9a1c1cbd6ed8c58ea6b3dbff15ed0e5a3c";
    let sized = |tenant: &str, time, size: u64| {
        format!(r#"{{"tenantId":"{tenant}","deviceId":"d","timestamp":"{time}","sha256":"{SHA256}","size":{size}}}"#)
    };
    ingested(&app, &fabrikam, "/api/ingest/observations", sized("fabrikam", hours_ago(48), 1)).await;
    ingested(&app, &contoso, "/api/ingest/observations", sized("contoso", hours_ago(30), 2048)).await;
    let sysmon = "/api/ingest/observations?format=sysmon-json";
    let honest = signed_event("pc-1.contoso.com", hours_ago(20), SHA256, "Contoso Ltd", "Contoso");
    ingested(&app, &contoso, sysmon, honest).await;
    let spoof = signed_event("ws-1.fabrikam.com", hours_ago(1), SHA256, "Microsoft Windows", "Microsoft Corporation");
    ingested(&app, &fabrikam, sysmon, spoof).await;

    let file = app.get_file(SHA256, Some(&contoso)).await.json();
    assert_eq!(
        (file["signer"].as_str(), file["filePublisher"].as_str()),
        (Some("Contoso Ltd"), Some("Contoso")),
        "{file}"
    );
    assert_eq!(file["size"], 2048, "{file}");
    let theirs = app.get_file(SHA256, Some(&fabrikam)).await.json();
    assert_eq!(theirs["signer"], "Microsoft Windows", "{theirs}");
    assert_eq!(theirs["size"], 1, "{theirs}");
}

/// Existence: a hash only fabrikam reported is unknown to contoso (the profile, its sources
/// and `/stats` are 404, `/machines` lists nothing); a feed's verdict about it still answers
/// contoso, from the verdict alone.
async fn a_file_only_another_tenant_saw_is_not_found(backend: Backend) {
    let sources = fileintel_feeds::sources_from_json(br#"[{"name":"bazaar","rank":40}]"#).unwrap();
    let Some((app, _database)) = app_on(backend, |config| config.server.feed_sources = sources).await else { return };
    let roles = ["File.Read.All", "File.ReadWrite.All", "Machine.Read.All"];
    let (contoso, fabrikam) = (app.token_for("contoso", &roles).await, app.token_for("fabrikam", &roles).await);
    ingested(&app, &fabrikam, "/api/ingest/observations", ndjson("fabrikam", "f1", hours_ago(2), SHA1, Some(7))).await;
    assert_eq!(app.get_file(SHA1, Some(&fabrikam)).await.status, StatusCode::OK);
    app.get_file(SHA1, Some(&contoso)).await.assert_envelope(StatusCode::NOT_FOUND, "ResourceNotFound");
    for path in [format!("/api/files/{SHA1}/stats"), format!("/api/files/{SHA1}/sources")] {
        app.get(&path, Some(&contoso)).await.assert_envelope(StatusCode::NOT_FOUND, "ResourceNotFound");
    }
    let machines = app.get(&format!("/api/files/{SHA1}/machines"), Some(&contoso)).await.json();
    assert_eq!(machines["value"], serde_json::json!([]), "{machines}");

    let bazaar = app.state.config.feed_sources[0].clone();
    let operator = fileintel_feeds::Writer::Operator;
    let mut import = FeedImport::new(app.state.store.as_ref(), &bazaar, &operator, ImportMode::Add).unwrap();
    import.import(fileintel_feeds::Format::Csv, format!("{SHA1},Malware,Emotet\n").into_bytes()).await.unwrap();
    let file = app.get_file(SHA1, Some(&contoso)).await.json();
    assert_eq!(file["determinationType"], "Malware", "{file}");
    assert_eq!(
        (file["globalPrevalence"].clone(), file["size"].clone()),
        (serde_json::Value::Null, serde_json::Value::Null),
        "{file}"
    );
}

/// `--demo`'s two tenants are one organisation's: the demo trusts both.
#[tokio::test]
async fn the_demo_trusts_its_two_tenants() {
    let app = spawn_app_with(|config| config.demo = true).await;
    for tenant in ["contoso", "fabrikam"] {
        assert!(app.state.config.trust.trusts(tenant), "{tenant}");
    }
    assert!(!spawn_app().await.state.config.trust.trusts("contoso"), "no tenant is trusted by default");
}

/// A tenant's own feed source speaks to it alone, ranked among the operator's feeds as the
/// operator configures; no other tenant may write it, and no other tenant hears it.
#[tokio::test]
async fn a_tenants_own_feed_speaks_to_it_alone() {
    let app =
        app_with_sources(br#"[{"name":"bazaar","rank":40},{"name":"contoso-intel","rank":90,"tenant":"contoso"}]"#)
            .await;
    let bazaar = app.state.config.feed_sources[0].clone();
    let operator = fileintel_feeds::Writer::Operator;
    let mut import = FeedImport::new(app.state.store.as_ref(), &bazaar, &operator, ImportMode::Add).unwrap();
    import.import(fileintel_feeds::Format::Csv, format!("{SHA1},Malware,Emotet\n").into_bytes()).await.unwrap();

    let roles = ["File.Read.All", "Ti.ReadWrite.All"];
    let (contoso, fabrikam) = (app.token_for("contoso", &roles).await, app.token_for("fabrikam", &roles).await);
    let answer = app.send(feed_import("contoso-intel", &fabrikam, format!("{SHA1},Clean,benign\n"))).await;
    answer.assert_envelope(StatusCode::FORBIDDEN, "Forbidden");
    let answer = app.send(feed_import("contoso-intel", &contoso, format!("{SHA1},Clean,allow-listed\n"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(determination(&app, &contoso).await, "Clean", "its own source, ranked above bazaar");
    assert_eq!(determination(&app, &fabrikam).await, "Malware", "contoso's source does not speak to fabrikam");
    let listed = app.get(&format!("/api/files/{SHA1}/determinations"), Some(&fabrikam)).await.json();
    assert!(!listed.to_string().contains("contoso-intel"), "{listed}");
    let listed = app.get(&format!("/api/files/{SHA1}/determinations"), Some(&contoso)).await.json();
    assert!(listed.to_string().contains(r#""sourceType":"TenantFeed""#), "{listed}");

    let refused =
        fileintel_feeds::sources_from_json(br#"[{"name":"x","rank":1,"tenant":"contoso","writers":["fabrikam"]}]"#);
    assert!(refused.unwrap_err().contains("the tenant 'fabrikam' may not write it"));
}
