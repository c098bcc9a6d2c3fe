//! `--demo`: five made-up files seen by devices of two tenants, and an application to query
//! them with, whose secret changes at every start.

use std::sync::Arc;

use anyhow::Context;
use fileintel_core::{TICKS_PER_DAY, Timestamp};
use fileintel_store::{Ingestor, Store};

/// Observations the `--demo` flag loads: five made-up files (their hashes are those of short
/// strings, see README) seen by devices of two tenants.
const DEMO_OBSERVATIONS: &str = include_str!("../../demo/observations.ndjson");

/// The demo application's client id: fixed, so the README can name it; its secret changes at
/// every start.
pub(crate) const DEMO_CLIENT_ID: &str = "00000000-0000-0000-0000-00000000de70";
pub(crate) const DEMO_TENANT: &str = "contoso";
/// The tenants whose devices the demo observations come from, which `--demo` trusts.
pub(crate) const DEMO_TENANTS: [&str; 2] = [DEMO_TENANT, "fabrikam"];

/// Loads the demo observations (idempotent on the same day, see [`demo_observations`]).
pub(crate) async fn load(store: Arc<dyn Store>) -> anyhow::Result<()> {
    let mut ingestor = Ingestor::new(store, 10_000);
    ingestor.push(demo_observations(Timestamp::now()).as_bytes()).await?;
    let summary = ingestor.finish().await?;
    tracing::info!(observations = summary.accepted, "demo data loaded");
    Ok(())
}

/// The demo observations with their times moved forward by whole days, so that the newest falls
/// within the last day and `/stats` (which looks back at most 30 days) has something to count.
/// Loading again on the same day changes nothing; on a later day the devices are seen again.
fn demo_observations(now: Timestamp) -> String {
    let mut lines: Vec<serde_json::Value> =
        DEMO_OBSERVATIONS.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let time = |line: &serde_json::Value| {
        line["timestamp"].as_str().and_then(|text| Timestamp::parse(text).ok()).map(|time| time.0)
    };
    let newest = lines.iter().filter_map(time).max().unwrap_or(now.0);
    let shift = (now.0 - newest).div_euclid(TICKS_PER_DAY).max(0) * TICKS_PER_DAY;
    for line in &mut lines {
        if let Some(ticks) = time(line) {
            line["timestamp"] = Timestamp(ticks + shift).to_string().into();
        }
    }
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// Creates the demo application, or gives it a fresh secret; returns the secret.
pub(crate) async fn refresh_application(store: &dyn Store) -> anyhow::Result<String> {
    let roles = ["File.Read.All", "File.ReadWrite.All", "Machine.Read.All", "Ti.ReadWrite.All"];
    let secret = fileintel_auth::secrets::generate();
    let application = fileintel_core::Application {
        tenant: DEMO_TENANT.into(),
        client_id: DEMO_CLIENT_ID.into(),
        object_id: "00000000-0000-0000-0000-0000000000de".into(),
        name: "fileintel demo".into(),
        roles: roles.map(String::from).into(),
        secret_hash: fileintel_auth::secrets::hash(&secret),
        created: crate::auth::now_seconds(),
    };
    store.put_application(application).await.context("registering the demo application")?;
    Ok(secret)
}

/// The demo application's secrets were printed: it lives only while `--demo` is given.
pub(crate) async fn remove_application(store: &dyn Store) -> anyhow::Result<()> {
    if store.delete_application(DEMO_TENANT, DEMO_CLIENT_ID).await.context("removing the demo application")? {
        tracing::info!("removed the demo application (serve without --demo)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_times_move_forward_by_whole_days_only() {
        let day = 86_400;
        let authored = 1_795_000_000;
        let now = Timestamp::from_unix_seconds(authored + 40 * day + 3600);
        let original: Vec<serde_json::Value> =
            DEMO_OBSERVATIONS.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let moved: Vec<serde_json::Value> =
            demo_observations(now).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(moved.len(), original.len());
        let time = |line: &serde_json::Value| Timestamp::parse(line["timestamp"].as_str().unwrap()).unwrap();
        let newest = moved.iter().map(time).max().unwrap();
        assert!(newest <= now && now.0 - newest.0 < fileintel_core::TICKS_PER_DAY, "{newest:?} vs {now:?}");
        let shift = time(&moved[0]).0 - time(&original[0]).0;
        assert_eq!(shift % (fileintel_core::TICKS_PER_DAY), 0, "whole days");
        for (moved, original) in moved.iter().zip(&original) {
            assert_eq!(time(moved).0 - time(original).0, shift, "every time moves alike");
            assert_eq!(moved["sha1"], original["sha1"], "only times change");
        }
    }
}
