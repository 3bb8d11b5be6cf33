//! Keeps a request's unread body from being drained without bound.
//!
//! When a handler answers early (413, 401, 404) and drops a chunked body,
//! actix-http discards the rest of it to the end, however long the sender keeps
//! streaming. If the body is still held while the answer is written, actix
//! instead closes the connection after a short linger
//! (`client_disconnect_timeout`). This middleware holds it until then.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures_util::Stream;

/// The request body, shared between the handler and the response it produces.
struct Shared(Rc<RefCell<Payload>>);

impl Stream for Shared {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

/// A response body that owns the request body until it has been written.
struct Held {
    body: BoxBody,
    _request_body: Rc<RefCell<Payload>>,
}

impl MessageBody for Held {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Middleware (`actix_web::middleware::from_fn`) that holds the request body until the answer is written.
pub async fn hold_request_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let (http_req, payload) = req.into_parts();
    let shared = Rc::new(RefCell::new(payload));
    let mut req = ServiceRequest::from_parts(http_req, Payload::None);
    req.set_payload(Payload::Stream {
        payload: Box::pin(Shared(shared.clone())),
    });
    let res = next.call(req).await?;
    Ok(res.map_body(move |_, body| Held {
        body: body.boxed(),
        _request_body: shared,
    }))
}
