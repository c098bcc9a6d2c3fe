//! Issue 17's attacks, through the HTTP API with two tenants: what one tenant says must not
//! rewrite what the other sees. contoso is the victim, fabrikam the tenant that lies.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fileintel_server::testing::{TestApp, spawn_app_with};
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
