//! OData system query options (`$filter`, `$top`, `$select`, ...). No route implements one yet,
//! so every one is refused with 400 in the envelope, naming it: a client that asked for
//! `$filter=action eq 'Block'` must not be handed every indicator as if that were the answer.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

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
