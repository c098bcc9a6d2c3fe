//! The one error type of the API, written as MDE's error envelope whatever the status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fileintel_store::StoreError;

/// Every failure a handler can answer with. The message is for the client; internal causes go
/// only to the log, under the same `target` id the client sees.
#[derive(Debug)]
pub enum ApiError {
    InvalidHashValue(String),
    /// A malformed request other than a bad hash: `code` is one of MDE's 400 codes.
    BadRequest {
        code: &'static str,
        message: String,
    },
    NotFound(String),
    /// Missing, malformed or invalid bearer token; the cause is logged, never shown.
    Unauthorized(String),
    /// A valid token without the permission or role the request needs.
    Forbidden(String),
    MethodNotAllowed,
    PayloadTooLarge(String),
    /// A rate limit is spent; the call succeeds after `retry_after` seconds.
    TooManyRequests {
        retry_after: u64,
    },
    Internal(String),
    Unavailable(String),
}

#[derive(serde::Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(serde::Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    target: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest { code: "BadRequest", message: message.into() }
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::InvalidHashValue(id) => {
                (StatusCode::BAD_REQUEST, "InvalidHashValue", format!("Hash value {id} is invalid."))
            }
            ApiError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message.clone()),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, "ResourceNotFound", message.clone()),
            ApiError::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Authorization has been denied for this request: a valid bearer token is required.".into(),
            ),
            ApiError::Forbidden(message) => (StatusCode::FORBIDDEN, "Forbidden", message.clone()),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The HTTP method is not supported by this resource.".into(),
            ),
            ApiError::TooManyRequests { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!("The rate limit was exceeded; retry after {retry_after} seconds."),
            ),
            ApiError::PayloadTooLarge(message) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", message.clone())
            }
            ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "An unexpected error occurred.".into())
            }
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "A backing service is unavailable; try again later.".into(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// What went wrong behind a 500 or 503, kept in the response's extensions (never written to the
/// client) for a caller in this process, such as the CLI driving the admin API, to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let target = uuid::Uuid::new_v4().to_string();
        match &self {
            ApiError::Internal(cause) | ApiError::Unavailable(cause) => {
                tracing::error!(%target, %status, code, cause = %cause, "request failed");
            }
            ApiError::Unauthorized(cause) => tracing::info!(%target, %status, code, cause = %cause, "request refused"),
            _ => tracing::info!(%target, %status, code, %message, "request refused"),
        }
        let body = Envelope { error: Body { code, message: &message, target } };
        let bytes = serde_json::to_vec(&body)
            .unwrap_or_else(|_| br#"{"error":{"code":"InternalServerError","message":"","target":""}}"#.to_vec());
        let mut response = (status, bytes).into_response();
        if let ApiError::Internal(cause) | ApiError::Unavailable(cause) = &self {
            response.extensions_mut().insert(Cause(cause.clone()));
        }
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        headers.insert("odata-version", HeaderValue::from_static("4.0"));
        match self {
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn envelope(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause_and_carry_a_fresh_target() {
        let (status, first) = envelope(ApiError::Internal("disk on fire at /var/lib".into())).await;
        let (_, second) = envelope(ApiError::Internal("x".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(first["error"]["code"], "InternalServerError");
        assert!(!first.to_string().contains("disk on fire"));
        let target = first["error"]["target"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(target).is_ok());
        assert_ne!(first["error"]["target"], second["error"]["target"]);
    }

    #[test]
    fn the_cause_of_a_failure_stays_in_the_process_for_a_caller_there() {
        let response = ApiError::Unavailable("PostgreSQL: connection refused".into()).into_response();
        assert_eq!(response.extensions().get(), Some(&Cause("PostgreSQL: connection refused".into())));
        assert_eq!(ApiError::NotFound("x".into()).into_response().extensions().get::<Cause>(), None);
    }

    #[tokio::test]
    async fn an_invalid_hash_names_the_value() {
        let (status, body) = envelope(ApiError::InvalidHashValue("xyz".into())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "InvalidHashValue");
        assert_eq!(body["error"]["message"], "Hash value xyz is invalid.");
    }
}
