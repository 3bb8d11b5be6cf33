//! RFC 9457 problem+json: every error the API answers goes through [`ApiError`].

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::connections::FieldError;
use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `https://leadbridge.dev/problems/<code>`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable snake_case word, e.g. `invalid_signature`.
    pub code: String,
    /// For `validation_failed`: each refused field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// An error answer of the API.
#[derive(thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    InvalidSignature(String),
    #[error("the webhook-timestamp is more than 300 seconds away from the server's clock")]
    TimestampOutOfTolerance,
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    InvalidPayload(String),
    /// The name as [`shown_name`] makes it.
    #[error("no connection is named {0}")]
    UnknownConnection(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Conflict(String),
    /// The method is not one of `allowed` on this path.
    #[error("{method} is not supported here; use {allowed}")]
    MethodNotAllowed {
        method: String,
        allowed: &'static str,
    },
    #[error("invalid fields: {}", .0.iter().map(|e| e.field.as_str()).collect::<Vec<_>>().join(", "))]
    Validation(Vec<FieldError>),
    #[error("the store is unavailable; try again shortly")]
    Unavailable(#[source] anyhow::Error),
    /// Too much is being received at once: shed, not failed (no error logged).
    #[error("{0}")]
    Busy(String),
    #[error("an internal error occurred")]
    Internal(#[source] anyhow::Error),
}

impl std::fmt::Debug for ApiError {
    // Prints the cause chain, for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{self}")?;
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            writeln!(f, "caused by: {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// A connection name from a request, as an answer may echo it: quoted when
/// it could be a name; else not echoed at all (it could be 30 KB, or hold a
/// line break that forges a log line).
pub fn shown_name(name: &str) -> String {
    match crate::domain::ConnectionName::parse(name) {
        Ok(_) => format!("`{name}`"),
        Err(_) => "that name (names are [a-z0-9][a-z0-9_-]{0,62})".into(),
    }
}

/// A request path as an answer or a log may show it: control characters
/// escaped, at most 200 characters.
pub fn shown_path(path: &str) -> String {
    let escaped: String = path.escape_debug().collect();
    match escaped.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::Conflict("the resource already exists".into()),
            StoreError::Unavailable(_) | StoreError::Stopped => ApiError::Unavailable(e.into()),
            StoreError::Corrupt(_) | StoreError::Rejected(_) => ApiError::Internal(e.into()),
        }
    }
}

impl From<crate::connections::edit::EditError> for ApiError {
    fn from(e: crate::connections::edit::EditError) -> Self {
        use crate::connections::edit::EditError;
        match e {
            EditError::Store(e) => e.into(),
            EditError::Ceiling(why) => ApiError::Conflict(why),
        }
    }
}

impl From<crate::webhook::LoadError> for ApiError {
    fn from(e: crate::webhook::LoadError) -> Self {
        use crate::webhook::LoadError;
        match e {
            LoadError::Unknown(name) => ApiError::UnknownConnection(shown_name(&name)),
            LoadError::Store(e) => e.into(),
            LoadError::Sealed(_) => ApiError::Internal(e.into()),
        }
    }
}

impl From<crate::webhook::IntakeError> for ApiError {
    fn from(e: crate::webhook::IntakeError) -> Self {
        use crate::webhook::{IntakeError, VerifyError};
        match e {
            IntakeError::Signature(VerifyError::TimestampOutOfTolerance) => {
                ApiError::TimestampOutOfTolerance
            }
            IntakeError::Signature(other) => ApiError::InvalidSignature(other.to_string()),
            IntakeError::Payload(message) => ApiError::InvalidPayload(message),
        }
    }
}

impl From<crate::connections::check::CheckError> for ApiError {
    fn from(e: crate::connections::check::CheckError) -> Self {
        use crate::connections::check::CheckError;
        match e {
            CheckError::Missing(fields) => ApiError::Validation(fields),
            CheckError::Unreadable(_) => ApiError::Internal(e.into()),
        }
    }
}

impl From<crate::backfill::BackfillError> for ApiError {
    fn from(e: crate::backfill::BackfillError) -> Self {
        use crate::backfill::BackfillError;
        match e {
            BackfillError::FromTheFuture | BackfillError::BrokeOff(_) => {
                ApiError::InvalidPayload(e.to_string())
            }
            BackfillError::Store(e) => e.into(),
        }
    }
}

/// Seconds a client should wait after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

impl ApiError {
    /// The stable `code` of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidSignature(_) => "invalid_signature",
            ApiError::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::InvalidPayload(_) => "invalid_payload",
            ApiError::UnknownConnection(_) => "unknown_connection",
            ApiError::NotFound(_) => "not_found",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Conflict(_) => "conflict",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unavailable(_) | ApiError::Busy(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "Unauthorized",
            ApiError::InvalidSignature(_) => "Invalid signature",
            ApiError::TimestampOutOfTolerance => "Timestamp out of tolerance",
            ApiError::PayloadTooLarge(_) => "Payload too large",
            ApiError::InvalidPayload(_) => "Invalid payload",
            ApiError::UnknownConnection(_) => "Unknown connection",
            ApiError::NotFound(_) => "Not found",
            ApiError::UnsupportedMediaType(_) => "Unsupported media type",
            ApiError::Conflict(_) => "Conflict",
            ApiError::MethodNotAllowed { .. } => "Method not allowed",
            ApiError::Validation(_) => "Validation failed",
            ApiError::Unavailable(_) | ApiError::Busy(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized
            | ApiError::InvalidSignature(_)
            | ApiError::TimestampOutOfTolerance => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidPayload(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownConnection(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() && !matches!(self, ApiError::Busy(_)) {
            tracing::error!(code = self.code(), error = ?self, "request failed");
        }
        let problem = Problem {
            kind: format!("https://leadbridge.dev/problems/{}", self.code()),
            title: self.title().into(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().into(),
            errors: match self {
                ApiError::Validation(errs) => Some(errs.clone()),
                _ => None,
            },
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            ApiError::Unavailable(_) | ApiError::Busy(_) => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS)));
            }
            ApiError::Unauthorized => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed { allowed, .. } => {
                res.insert_header((header::ALLOW, *allowed));
            }
            _ => {}
        }
        res.body(serde_json::to_string(&problem).expect("a Problem always serializes"))
    }
}
