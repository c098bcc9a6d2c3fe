//! `GET /api/files/{id}`: the MDE File entity by SHA-1, SHA-256 or MD5.

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fileintel_core::{FileEntity, FileHash, file_entity_context};

use crate::AppState;
use crate::auth::{Authenticated, FILE_READ_ALL};
use crate::error::ApiError;

/// What MDE answers with; clients look for `application/json` at the front.
const ODATA_JSON: &str = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/files/{id}", get(get_file)).route("/api/v1.0/files/{id}", get(get_file))
}

/// The host the client called, for `@odata.context`; falls back to the address we listen on.
pub(crate) fn request_host<'a>(headers: &'a HeaderMap, state: &'a AppState) -> &'a str {
    headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| !host.is_empty())
        .unwrap_or(&state.config.public_host)
}

pub(crate) fn odata_json(body: Vec<u8>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
    headers.insert("odata-version", HeaderValue::from_static("4.0"));
    response
}

async fn get_file(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require_view(&state, FILE_READ_ALL).await?;
    let Path(id) = id.map_err(|_| ApiError::InvalidHashValue("(undecodable)".into()))?;
    let hash = FileHash::parse(&id).map_err(|_| ApiError::InvalidHashValue(id.clone()))?;
    let record =
        state.store.get_file(hash).await?.ok_or_else(|| ApiError::NotFound(format!("File {id} was not found")))?;
    let context = file_entity_context(&state.config.scheme, request_host(&headers, &state));
    let facts = record.effective_facts();
    Ok(odata_json(FileEntity::new(context, &record, &facts).to_json()))
}
