//! OData as the handlers speak it: answers in OData's JSON (`odata_value`), the host their
//! `@odata.context` names, query parameters by OData's rules, and times as OData writes them.
//!
//! And its system query options (`$filter`, `$top`, `$select`, ...). No route implements one yet,
//! so every one is refused with 400 in the envelope, naming it: a client that asked for
//! `$filter=action eq 'Block'` must not be handed every indicator as if that were the answer.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fileintel_core::Timestamp;
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;

/// What MDE answers with; clients look for `application/json` at the front.
const ODATA_JSON: &str = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8";

/// The host the client called, for `@odata.context`; falls back to the address we listen on.
pub(crate) fn request_host<'a>(headers: &'a HeaderMap, state: &'a AppState) -> &'a str {
    headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| !host.is_empty())
        .unwrap_or(&state.config.public_host)
}

/// A JSON value as an OData answer.
pub(crate) fn odata_value(body: &Value) -> Response {
    odata_json(body.to_string().into_bytes())
}

/// JSON already written, as an OData answer.
pub(crate) fn odata_json(body: Vec<u8>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
    headers.insert("odata-version", HeaderValue::from_static("4.0"));
    response
}

/// The value of a query parameter, its name compared without regard to case as OData does.
pub(crate) fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query
        .unwrap_or_default()
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// A time as an answer writes it (RFC 3339), or null when there is none.
pub(crate) fn time_value(time: Option<Timestamp>) -> Value {
    time.map_or(Value::Null, |time| Value::String(time.to_string()))
}

/// The system query options a request names, as written (`$filter`, or `%24filter` decoded).
pub(crate) fn system_options(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            let name = match name.get(..3) {
                Some(escaped) if escaped.eq_ignore_ascii_case("%24") => format!("${}", &name[3..]),
                _ => name.to_owned(),
            };
            name.starts_with('$').then_some(name)
        })
        .collect()
}

/// Refuses a request that names a system query option, before any handler sees it.
pub(crate) async fn refuse_unsupported_options(request: Request, next: Next) -> Response {
    let options = request.uri().query().map(system_options).unwrap_or_default();
    if let Some(option) = options.first() {
        let message = format!("The query option {option} is not supported by this endpoint.");
        return ApiError::BadRequest { code: "ODataError", message }.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_options_are_found_as_written_or_escaped() {
        assert_eq!(system_options("$filter=action%20eq%20'Block'&lookBackHours=5"), ["$filter"]);
        assert_eq!(system_options("%24top=3&%24SKIP=1"), ["$top", "$SKIP"]);
        assert!(system_options("lookBackHours=48&format=evtx").is_empty());
        assert!(system_options("").is_empty());
    }
}
