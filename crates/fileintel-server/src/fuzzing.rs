//! The server's own parsers of request text, reachable from outside the crate only for the fuzz
//! targets (fuzz/fuzz_targets) and the tests that replay their findings. Nothing else uses them.

use std::collections::HashMap;

/// What a query string yields to the parsers that read it: the `lookBackHours` value as
/// `query_param` finds it, the window `look_back_hours` makes of it (or `None` where it refuses
/// it), and the OData system options the request names.
#[derive(Debug)]
pub struct Query<'a> {
    pub look_back_value: Option<&'a str>,
    pub look_back_hours: Option<i64>,
    pub system_options: Vec<String>,
}

pub fn query(text: &str) -> Query<'_> {
    Query {
        look_back_value: crate::odata::query_param(Some(text), "lookBackHours"),
        look_back_hours: crate::files::look_back_hours(Some(text)).ok(),
        system_options: crate::odata::system_options(text),
    }
}

/// A token request's body as the token endpoint reads it, or `None` where it refuses it.
pub fn token_form(body: &[u8]) -> Option<HashMap<String, String>> {
    crate::tokens::read_form(body).ok()
}

/// The token an `Authorization` header value carries, or `None` where it is no bearer token.
pub fn bearer(value: &[u8]) -> Option<String> {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(axum::http::header::AUTHORIZATION, axum::http::HeaderValue::from_bytes(value).ok()?);
    crate::auth::bearer(&headers).ok().map(str::to_owned)
}
