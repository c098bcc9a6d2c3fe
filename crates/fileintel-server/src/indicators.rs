//! MDE's indicator API, for file indicators, scoped to the caller's tenant:
//! `POST /api/indicators` (submit or update one), `POST /api/indicators/import` (up to 500),
//! `GET /api/indicators`, `DELETE /api/indicators/{id}`. Needs `Ti.ReadWrite` or
//! `Ti.ReadWrite.All`. An indicator's action becomes its file's determination for its tenant
//! (see `fileintel_core::indicator`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use fileintel_core::indicator::{ACTIONS, FILE_INDICATOR_TYPES, SEVERITIES};
use fileintel_core::{Indicator, Timestamp};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Authenticated, TI_READ_WRITE, TI_READ_WRITE_ALL};
use crate::error::ApiError;
use crate::odata::{odata_value, request_host, time_value};
use crate::routes::Routes;

/// The most indicators one import takes, as in MDE.
pub const MAX_IMPORT: usize = 500;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .limited("/api/indicators", "indicators", get(list).post(submit))
        .limited("/api/indicators/import", "indicators", axum::routing::post(import))
        .limited("/api/indicators/{id}", "indicators", delete(remove))
}

fn require(caller: &Authenticated) -> Result<(), ApiError> {
    caller.require_role(TI_READ_WRITE_ALL).or_else(|_| caller.require_role(TI_READ_WRITE)).map(|_| ())
}

/// An indicator from a request body, checked field by field; `Err` names what is wrong.
fn from_request(body: &Value, caller: &Authenticated, at: Timestamp) -> Result<Indicator, String> {
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    let required = |name: &str| text(name).filter(|value| !value.is_empty()).ok_or(format!("{name} is required"));
    let indicator_type = required("indicatorType")?;
    if !FILE_INDICATOR_TYPES.contains(&indicator_type.as_str()) {
        return Err(format!(
            "indicatorType {indicator_type}: fileintel keeps file indicators (FileSha1, FileSha256, FileMd5)"
        ));
    }
    let action = required("action")?;
    if !ACTIONS.contains(&action.as_str()) {
        return Err(format!("action {action} is not one of {}", ACTIONS.join(", ")));
    }
    let severity = text("severity");
    if let Some(severity) = &severity
        && !SEVERITIES.contains(&severity.as_str())
    {
        return Err(format!("severity {severity} is not one of {}", SEVERITIES.join(", ")));
    }
    let expiration_time = text("expirationTime")
        .map(|time| Timestamp::parse(&time).map_err(|error| format!("expirationTime: {error}")))
        .transpose()?;
    let caller_name = caller.0.as_ref().map_or("fileintel (no authentication)".to_owned(), |caller| {
        caller.upn.clone().or_else(|| caller.app_id.clone()).unwrap_or_else(|| caller.object_id.clone())
    });
    let indicator = Indicator {
        tenant: caller.tenant_or_default().to_owned(),
        id: String::new(),
        indicator_value: required("indicatorValue")?.to_ascii_lowercase(),
        indicator_type,
        action,
        title: required("title")?,
        description: required("description")?,
        severity,
        application: text("application"),
        recommended_actions: text("recommendedActions"),
        rbac_group_names: body
            .get("rbacGroupNames")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
        generate_alert: body.get("generateAlert").and_then(Value::as_bool),
        external_id: text("externalID"),
        expiration_time,
        created_by: caller_name.clone(),
        creation_time: at,
        last_update_time: at,
        last_updated_by: Some(caller_name),
    };
    indicator.hash()?;
    Ok(indicator)
}

/// The Indicator entity as MDE writes it: every property `$metadata` declares, null
/// where fileintel keeps nothing (MDE's defaults where the property may not be null), then
/// `source`, `sourceType` and `externalID`, which MDE's own answers carry beside them.
fn entity(indicator: &Indicator) -> Value {
    json!({
        "id": indicator.id,
        "indicatorValue": indicator.indicator_value,
        "indicatorType": indicator.indicator_type,
        "action": indicator.action,
        "createdBy": indicator.created_by,
        "severity": indicator.severity.as_deref().unwrap_or("Informational"),
        "category": null,
        "application": indicator.application,
        "educateUrl": null,
        "bypassDurationHours": null,
        "title": indicator.title,
        "description": indicator.description,
        "recommendedActions": indicator.recommended_actions,
        "creationTimeDateTimeUtc": time_value(Some(indicator.creation_time)),
        "expirationTime": time_value(indicator.expiration_time),
        "lastUpdateTime": time_value(Some(indicator.last_update_time)),
        "lastUpdatedBy": indicator.last_updated_by,
        "rbacGroupNames": indicator.rbac_group_names,
        "rbacGroupIds": [],
        "certificateInfo": null,
        "notificationId": null,
        "notificationBody": null,
        "version": null,
        "mitreTechniques": [],
        "historicalDetection": false,
        "lookBackPeriod": null,
        "generateAlert": indicator.generate_alert.unwrap_or(false),
        "additionalInfo": null,
        "createdByDisplayName": indicator.created_by,
        "externalId": indicator.external_id,
        "createdBySource": "PublicApi",
        "source": indicator.created_by,
        "sourceType": "AadApp",
        "externalID": indicator.external_id,
    })
}

fn json_body(bytes: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| ApiError::bad_request(format!("The body is not JSON: {error}")))
}

async fn submit(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require(&caller)?;
    let indicator = from_request(&json_body(&body)?, &caller, Timestamp::now()).map_err(ApiError::bad_request)?;
    let stored = state.store.put_indicator(indicator).await?;
    let mut body = entity(&stored);
    let context =
        format!("{}://{}/api/$metadata#Indicators/$entity", state.config.scheme, request_host(&headers, &state));
    body.as_object_mut().expect("an object").insert("@odata.context".into(), Value::String(context));
    Ok(odata_value(&body))
}

async fn import(State(state): State<AppState>, caller: Authenticated, body: Bytes) -> Result<Response, ApiError> {
    require(&caller)?;
    let body = json_body(&body)?;
    let indicators = body
        .get("Indicators")
        .or_else(|| body.get("indicators"))
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("The body must be {\"Indicators\": [...]}."))?;
    if indicators.len() > MAX_IMPORT {
        return Err(ApiError::BadRequest {
            code: "MaximumBatchSizeExceeded",
            message: format!("Maximum batch size is {MAX_IMPORT}; this one has {}.", indicators.len()),
        });
    }
    let at = Timestamp::now();
    let mut results = Vec::with_capacity(indicators.len());
    for item in indicators {
        let value = item.get("indicatorValue").and_then(Value::as_str).unwrap_or_default().to_owned();
        match from_request(item, &caller, at) {
            Ok(indicator) => {
                let stored = state.store.put_indicator(indicator).await?;
                results.push(json!({"id": stored.id, "indicator": value, "isFailed": false, "failureReason": null}));
            }
            Err(reason) => {
                results.push(json!({"id": null, "indicator": value, "isFailed": true, "failureReason": reason}))
            }
        }
    }
    Ok(odata_value(&json!({"value": results})))
}

async fn list(State(state): State<AppState>, caller: Authenticated, headers: HeaderMap) -> Result<Response, ApiError> {
    require(&caller)?;
    let now = Timestamp::now();
    let indicators = state.store.list_indicators(caller.tenant_or_default()).await?;
    // MDE lists the active ones: an expired indicator is kept, but not listed.
    let value: Vec<Value> = indicators
        .iter()
        .filter(|indicator| indicator.expiration_time.is_none_or(|until| now < until))
        .map(entity)
        .collect();
    let context = format!("{}://{}/api/$metadata#Indicators", state.config.scheme, request_host(&headers, &state));
    Ok(odata_value(&json!({"@odata.context": context, "value": value})))
}

async fn remove(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require(&caller)?;
    if state.store.delete_indicator(caller.tenant_or_default(), &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!("Indicator {id} was not found")))
    }
}
