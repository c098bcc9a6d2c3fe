//! `--demo`: five made-up files seen by devices of two tenants, and an application to query
//! them with, whose secret changes at every start.

use std::sync::Arc;

use anyhow::Context;
use fileintel_store::{Ingestor, Store};

/// Observations the `--demo` flag loads: five made-up files (their hashes are those of short
/// strings, see README) seen by devices of two tenants.
const DEMO_OBSERVATIONS: &str = include_str!("../../demo/observations.ndjson");

/// The demo application's client id: fixed, so the README can name it; its secret changes at
/// every start.
pub(crate) const DEMO_CLIENT_ID: &str = "00000000-0000-0000-0000-00000000de70";
pub(crate) const DEMO_TENANT: &str = "contoso";

/// Loads the demo observations (idempotent on the same day, see [`demo_observations`]).
pub(crate) async fn load(store: Arc<dyn Store>) -> anyhow::Result<()> {
    let mut ingestor = Ingestor::new(store, 10_000);
    ingestor.push(demo_observations(std::time::SystemTime::now()).as_bytes()).await?;
    let summary = ingestor.finish().await?;
    tracing::info!(observations = summary.accepted, "demo data loaded");
    Ok(())
}

/// The demo observations with their times moved forward by whole days, so that the newest falls
/// within the last day and `/stats` (which looks back at most 30 days) has something to count.
/// Loading again on the same day changes nothing; on a later day the devices are seen again.
fn demo_observations(now: std::time::SystemTime) -> String {
    const DAY: i64 = 86_400 * 10_000_000;
    let now = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| (elapsed.as_nanos() / 100) as i64);
    let mut lines: Vec<serde_json::Value> =
        DEMO_OBSERVATIONS.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let time = |line: &serde_json::Value| {
        line["timestamp"].as_str().and_then(|text| fileintel_core::Timestamp::parse(text).ok()).map(|time| time.0)
    };
    let newest = lines.iter().filter_map(time).max().unwrap_or(now);
    let shift = (now - newest).div_euclid(DAY).max(0) * DAY;
    for line in &mut lines {
        if let Some(ticks) = time(line) {
            line["timestamp"] = fileintel_core::Timestamp(ticks + shift).to_string().into();
        }
    }
    lines.iter().map(|line| format!("{line}\n")).collect()
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
        let day = std::time::Duration::from_secs(86_400);
        let authored = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let later = authored + 40 * day + std::time::Duration::from_secs(3600);
        let original: Vec<serde_json::Value> =
            DEMO_OBSERVATIONS.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let moved: Vec<serde_json::Value> =
            demo_observations(later).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(moved.len(), original.len());
        let time =
            |line: &serde_json::Value| fileintel_core::Timestamp::parse(line["timestamp"].as_str().unwrap()).unwrap();
        let newest = moved.iter().map(time).max().unwrap();
        let seconds = later.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let now = fileintel_core::Timestamp::from_unix_seconds(seconds);
        assert!(newest <= now && now.0 - newest.0 < 86_400 * 10_000_000, "{newest:?} vs {now:?}");
        let shift = time(&moved[0]).0 - time(&original[0]).0;
        assert_eq!(shift % (86_400 * 10_000_000), 0, "whole days");
        for (moved, original) in moved.iter().zip(&original) {
            assert_eq!(time(moved).0 - time(original).0, shift, "every time moves alike");
            assert_eq!(moved["sha1"], original["sha1"], "only times change");
        }
    }
}
