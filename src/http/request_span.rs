//! The span each request is logged in: its method, path and request id. The
//! target is the path without its query string, which may carry what should
//! never reach a log (a token sent as `?token=`, a client id).
//!
//! A webhook's span is made only when something is logged in it
//! ([`LazySpan`]): at full rate, making one for every webhook (its fields
//! are formatted for the log as it is made) costs a tenth of the HTTP
//! workers' time, and an accepted webhook logs nothing at info.

use std::cell::OnceCell;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage, HttpRequest};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

/// [`RootSpanBuilder`] that records `http.target` as the path only, and
/// leaves webhooks to a [`LazySpan`].
pub struct PathOnly;

impl RootSpanBuilder for PathOnly {
    fn on_request_start(request: &ServiceRequest) -> Span {
        if crate::webhook::is_webhook(request.method().as_str(), request.path()) {
            return Span::none();
        }
        span_of(request.request())
    }

    /// Nothing is recorded at the end: no line is written when a request's
    /// span closes, so fields set then would reach no log, and recording
    /// them re-renders the span's fields on every request.
    ///
    /// A refused request (4xx) is counted, and logged at debug only, with
    /// the peer's address: at info, anyone could write a line per request.
    fn on_request_end<B: MessageBody>(_: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let Ok(res) = outcome else { return };
        let status = res.status();
        if !status.is_client_error() {
            return;
        }
        crate::metrics::request_refused(status.as_u16());
        if tracing::enabled!(tracing::Level::DEBUG) {
            let req = res.request();
            let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            let code = res
                .response()
                .error()
                .and_then(|e| e.as_error::<super::ApiError>())
                .map_or("", |e| e.code());
            tracing::debug!(
                %peer, status = status.as_u16(), code,
                http.method = %req.method(),
                http.target = %super::problem::shown_path(req.path()),
                "request refused"
            );
        }
    }
}

fn span_of(req: &HttpRequest) -> Span {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|id| id.to_string())
        .unwrap_or_default();
    tracing::info_span!(
        "HTTP request",
        http.method = %req.method(),
        http.target = %req.path(),
        request_id = %request_id,
    )
}

/// A request's span, made the first time it is asked for: the same span,
/// with the same request id, as every other request gets at its start.
pub struct LazySpan<'r> {
    req: &'r HttpRequest,
    span: OnceCell<Span>,
}

impl<'r> LazySpan<'r> {
    pub fn new(req: &'r HttpRequest) -> Self {
        Self {
            req,
            span: OnceCell::new(),
        }
    }

    /// Runs `f` (which logs) in the request's span.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.span.get_or_init(|| span_of(self.req)).in_scope(f)
    }
}
