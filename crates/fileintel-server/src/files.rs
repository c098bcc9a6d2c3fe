//! `GET /api/files/{id}`: the MDE File entity by SHA-1, SHA-256 or MD5.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use fileintel_core::{
    Decision, FileEntity, FileHash, FileRecord, Timestamp, Verdict, VerdictSource, decide, file_entity_context,
};
use fileintel_store::MAX_LOOKBACK_HOURS;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Authenticated, FILE_READ_ALL, MACHINE_READ, MACHINE_READ_ALL};
use crate::error::ApiError;
use crate::odata::{odata_json, odata_value, query_param, request_host, time_value};
use crate::routes::Routes;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .limited("/api/files/{id}", "files", get(get_file))
        .limited("/api/v1.0/files/{id}", "files", get(get_file))
        .limited("/api/files/{id}/stats", "stats", get(get_stats))
        .limited("/api/v1.0/files/{id}/stats", "stats", get(get_stats))
        .limited("/api/files/{id}/machines", "machines", get(get_machines))
        .limited("/api/v1.0/files/{id}/machines", "machines", get(get_machines))
        .limited("/api/files/{id}/sources", "files", get(get_sources))
        .limited("/api/v1.0/files/{id}/sources", "files", get(get_sources))
        .limited("/api/files/{id}/determinations", "files", get(get_determinations))
        .limited("/api/v1.0/files/{id}/determinations", "files", get(get_determinations))
}

/// The `{id}` of a path as it was given, and the hash it names; 400 `InvalidHashValue` if none.
fn file_hash(id: Result<Path<String>, PathRejection>) -> Result<(String, FileHash), ApiError> {
    let Path(id) = id.map_err(|_| ApiError::InvalidHashValue("(undecodable)".into()))?;
    let hash = FileHash::parse(&id).map_err(|_| ApiError::InvalidHashValue(id.clone()))?;
    Ok((id, hash))
}

/// The record of the file a caller who may read files names; 404 when it is unknown.
async fn readable_file(
    state: &AppState,
    caller: &Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<FileRecord, ApiError> {
    caller.require_view(state, FILE_READ_ALL).await?;
    let (id, hash) = file_hash(id)?;
    let record = state.store.get_file(hash).await?;
    record.and_then(|record| record.seen_by(caller.viewer(state))).ok_or_else(|| not_found(&id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("File {id} was not found"))
}

/// The file a caller names as the caller's tenant sees it: its record, known from telemetry or
/// analysis, or else a record of that hash alone with nothing observed; the verdicts about it
/// the tenant may see (its own indicators and every feed); and whether the record was known.
/// 404 when neither the store nor any such verdict knows the hash.
struct Judged {
    record: FileRecord,
    verdicts: Vec<Verdict>,
    known: bool,
}

async fn judged_file(
    state: &AppState,
    caller: &Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<(String, Judged), ApiError> {
    caller.require_view(state, FILE_READ_ALL).await?;
    let (id, hash) = file_hash(id)?;
    // The record and its verdicts in one read: on PostgreSQL, one round trip.
    let (stored, mut verdicts) = state.store.file_and_verdicts(hash).await?;
    let known = stored.as_ref().and_then(|record| record.seen_by(caller.viewer(state)));
    if stored.is_some() && known.is_none() {
        // A file only tenants the caller does not count know: what is said of its other
        // hashes does not speak for this one (their pairing is theirs).
        verdicts = state.store.verdicts(&hash.into()).await?;
    }
    let judged = Judged {
        verdicts: visible(caller, verdicts),
        known: known.is_some(),
        record: known.unwrap_or_else(|| FileRecord { hashes: hash.into(), ..FileRecord::default() }),
    };
    if !judged.known && judged.verdicts.is_empty() {
        return Err(not_found(&id));
    }
    Ok((id, judged))
}

/// A known record as the caller sees it.
async fn judged(state: &AppState, caller: &Authenticated, record: FileRecord) -> Result<Judged, ApiError> {
    let verdicts = visible(caller, state.store.verdicts(&record.hashes).await?);
    Ok(Judged { record, verdicts, known: true })
}

/// The verdicts the caller's tenant may see: its own indicators and feeds, and every operator's
/// feed.
fn visible(caller: &Authenticated, verdicts: Vec<Verdict>) -> Vec<Verdict> {
    let tenant = caller.tenant_or_default();
    verdicts.into_iter().filter(|verdict| verdict.source.speaks_to(tenant)).collect()
}

/// `GET /api/files/{id}`: the file's profile with the determination decided for the caller's
/// tenant. A file no endpoint reported and nobody analysed, but that a feed or one of the
/// tenant's indicators judges now, answers with that hash, no prevalence, and the
/// determination: "what is this file?" has an answer for every hash the team's threat
/// intelligence names.
async fn get_file(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (id, judged) = judged_file(&state, &caller, id).await?;
    let decision = decide(&judged.verdicts, caller.tenant_or_default(), Timestamp::now());
    if !judged.known && decision.winner.is_none() {
        return Err(not_found(&id));
    }
    Ok(entity_with(&state, &headers, &judged.record, &decision))
}

/// The File entity of a record as the caller sees it: its profile, with the determination the
/// caller's tenant gets decided; as JSON, for an answer that adds to it.
pub(crate) async fn entity_value(
    state: &AppState,
    caller: &Authenticated,
    headers: &HeaderMap,
    record: FileRecord,
) -> Result<Value, ApiError> {
    let judged = judged(state, caller, record).await?;
    let decision = decide(&judged.verdicts, caller.tenant_or_default(), Timestamp::now());
    serde_json::from_slice(&entity_json(state, headers, &judged.record, &decision))
        .map_err(|error| ApiError::Internal(format!("the File entity: {error}")))
}

fn entity_with(state: &AppState, headers: &HeaderMap, record: &FileRecord, decision: &Decision) -> Response {
    odata_json(entity_json(state, headers, record, decision))
}

fn entity_json(state: &AppState, headers: &HeaderMap, record: &FileRecord, decision: &Decision) -> Vec<u8> {
    let context = file_entity_context(&state.config.scheme, request_host(headers, state));
    let mut facts = record.effective_facts();
    if decision.winner.is_some() {
        facts.determination_type = decision.determination_type;
        facts.determination_value = decision.determination_value.clone();
    }
    FileEntity::new(context, record, &facts).to_json()
}

/// `GET /api/files/{id}/sources` (a fileintel extension): where each static field of the profile
/// came from (`FileAnalysis` or `EndpointReport`, null where it is unknown), and what endpoints
/// last reported about the file, including what the file's own analysis overrode.
async fn get_sources(
    State(state): State<AppState>,
    caller: Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let record = readable_file(&state, &caller, id).await?;
    let (_, sources) = record.sourced_facts();
    let reported = &record.reported;
    let body = json!({
        "sha1": record.hashes.sha1.map(|hash| hash.to_string()),
        "sha256": record.hashes.sha256.map(|hash| hash.to_string()),
        "sources": sources,
        "endpointReport": (!reported.is_empty()).then(|| json!({
            "signed": reported.signed,
            "signature": reported.signature,
            "signatureStatus": reported.signature_status,
            "company": reported.company,
            "product": reported.product,
        })),
    });
    Ok(odata_value(&body))
}

/// `GET /api/files/{id}/determinations` (a fileintel extension): every source that spoke about
/// the file (the caller's own tenant's indicators and every feed), what it said and when,
/// whether it speaks now, and which one decided the answer.
async fn get_determinations(
    State(state): State<AppState>,
    caller: Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (_, Judged { record, verdicts, .. }) = judged_file(&state, &caller, id).await?;
    let tenant = caller.tenant_or_default();
    let now = Timestamp::now();
    let decision = decide(&verdicts, tenant, now);
    let value: Vec<Value> = verdicts
        .iter()
        .enumerate()
        .map(|(index, verdict)| {
            let (kind, name) = match &verdict.source {
                VerdictSource::Indicator { id, .. } => ("Indicator", id),
                VerdictSource::Feed { name } => ("Feed", name),
                VerdictSource::TenantFeed { name, .. } => ("TenantFeed", name),
            };
            json!({
                "sourceType": kind,
                "source": name,
                "determinationType": verdict.determination_type.as_str(),
                "determinationValue": verdict.determination_value,
                "rank": verdict.source.is_feed().then_some(verdict.rank),
                "saidAt": time_value(verdict.said_at),
                "validFrom": time_value(verdict.valid_from),
                "validUntil": time_value(verdict.valid_until),
                "revoked": verdict.revoked,
                "speaks": verdict.speaks_at(now),
                "won": decision.winner == Some(index),
                "reference": verdict.reference,
            })
        })
        .collect();
    let body = json!({
        "sha1": record.hashes.sha1.map(|hash| hash.to_string()),
        "determinationType": decision.determination_type.as_str(),
        "determinationValue": decision.determination_value,
        "value": value,
    });
    Ok(odata_value(&body))
}

/// `lookBackHours` from the query (the name compared without regard to case, as OData does):
/// 1 to 720, 720 when absent.
pub(crate) fn look_back_hours(query: Option<&str>) -> Result<i64, ApiError> {
    let Some(value) = query_param(query, "lookBackHours") else { return Ok(MAX_LOOKBACK_HOURS) };
    value
        .parse::<i64>()
        .ok()
        .filter(|hours| (1..=MAX_LOOKBACK_HOURS).contains(hours))
        .ok_or_else(|| invalid_look_back(value))
}

fn invalid_look_back(value: &str) -> ApiError {
    ApiError::BadRequest {
        code: "InvalidInput",
        message: format!(
            "lookBackHours must be a whole number of hours from 1 to {MAX_LOOKBACK_HOURS}, not '{value}'."
        ),
    }
}

/// `GET /api/files/{id}/stats`: the file in the caller's tenant within the look-back window,
/// beside its global figures.
async fn get_stats(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require_view(&state, FILE_READ_ALL).await?;
    let (id, hash) = file_hash(id)?;
    let hours = look_back_hours(query.as_deref())?;
    let since = Timestamp::now().plus_hours(-hours);
    let tenant = caller.tenant_or_default();
    let stats = state.store.file_stats(hash, tenant, since).await?.ok_or_else(|| not_found(&id))?;
    let record = stats.record.seen_by(caller.viewer(&state)).ok_or_else(|| not_found(&id))?;
    let global = if record.global_first_observed.is_some() { record.global_prevalence } else { 0 };
    let host = request_host(&headers, &state);
    let body = json!({
        "@odata.context": format!("{}://{host}/api/$metadata#microsoft.windowsDefenderATP.api.InOrgFileStats", state.config.scheme),
        "sha1": record.hashes.sha1.map(|sha1| sha1.to_string()),
        "orgPrevalence": stats.prevalence.to_string(),
        "organizationPrevalence": stats.prevalence,
        "orgFirstSeen": time_value(stats.first_seen),
        "orgLastSeen": time_value(stats.last_seen),
        "globalPrevalence": global.to_string(),
        "globallyPrevalence": global,
        "globalFirstObserved": time_value(record.global_first_observed),
        "globalLastObserved": time_value(record.global_last_observed),
        "topFileNames": stats.top_file_names,
    });
    Ok(odata_value(&body))
}

/// `GET /api/files/{id}/machines`: the caller's tenant's devices that observed the file, as
/// MDE `Machine` entities with what telemetry tells of them and the rest null.
async fn get_machines(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require_view_as(&state, MACHINE_READ_ALL, MACHINE_READ).await?;
    // MDE takes a SHA-1 only; fileintel also takes the file's SHA-256 or MD5 (an extension),
    // resolved to the same file as `GET /api/files/{id}` resolves them.
    let (_, hash) = file_hash(id)?;
    let tenant = caller.tenant_or_default();
    let mut devices = state.store.file_devices(hash, tenant).await?;
    devices.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.device_id.cmp(&b.device_id)));
    let machines: Vec<Value> = devices
        .into_iter()
        .map(|device| {
            // Every property `$metadata` declares: what telemetry tells, MDE's
            // defaults where a property may not be null, and null for the rest.
            json!({
                "id": device.device_id,
                "mergedIntoMachineId": null,
                "isPotentialDuplication": false,
                "isExcluded": false,
                "exclusionReason": null,
                "computerDnsName": device.device_name,
                "firstSeen": time_value(device.device_first_seen.or(Some(device.first_seen))),
                "lastSeen": time_value(device.device_last_seen.or(Some(device.last_seen))),
                "osPlatform": device.os_platform,
                "osProcessor": null,
                "version": null,
                "lastIpAddress": null,
                "lastExternalIpAddress": null,
                "agentVersion": null,
                "osBuild": null,
                "healthStatus": "Unknown",
                "deviceValue": "Normal",
                "rbacGroupId": 0,
                "rbacGroupName": null,
                "ipAddresses": [],
                "riskScore": null,
                "exposureLevel": "None",
                "isAadJoined": null,
                "aadDeviceId": null,
                "machineTags": [],
                "vmMetadata": null,
                "onboardingStatus": "InsufficientInfo",
                "osArchitecture": null,
                "managedBy": "Unknown",
                "managedByStatus": "Unknown",
            })
        })
        .collect();
    let host = request_host(&headers, &state);
    let body = json!({
        "@odata.context": format!("{}://{host}/api/$metadata#Machines", state.config.scheme),
        "value": machines,
    });
    Ok(odata_value(&body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_back_hours_defaults_to_720_and_refuses_what_is_out_of_range() {
        assert_eq!(look_back_hours(None).unwrap(), 720);
        assert_eq!(look_back_hours(Some("lookBackHours=1")).unwrap(), 1);
        assert_eq!(look_back_hours(Some("$top=3&LOOKBACKHOURS=720")).unwrap(), 720);
        for bad in ["lookBackHours=0", "lookBackHours=721", "lookBackHours=-5", "lookBackHours=1.5", "lookBackHours="] {
            assert!(look_back_hours(Some(bad)).is_err(), "{bad}");
        }
    }
}
