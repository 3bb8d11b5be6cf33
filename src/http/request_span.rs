//! The span each request is logged in: its method, path and request id. The
//! target is the path without its query string, which may carry what should
//! never reach a log (a token sent as `?token=`, a client id).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

/// [`RootSpanBuilder`] that records `http.target` as the path only.
pub struct PathOnly;

impl RootSpanBuilder for PathOnly {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.target = %request.path(),
            request_id = %request_id,
        )
    }

    /// Nothing is recorded at the end: no line is written when a request's
    /// span closes, so fields set then would reach no log, and recording
    /// them re-renders the span's fields on every request.
    fn on_request_end<B: MessageBody>(_: Span, _: &Result<ServiceResponse<B>, Error>) {}
}
