//! Keeps a request's unread body from being drained without bound.
//!
//! When a handler answers early (413, 401, 404) and drops a chunked body,
//! actix-http discards the rest of it to the end, however long the sender keeps
//! streaming. If the body is still held while the answer is written, actix
//! instead closes the connection after a short linger
//! (`client_disconnect_timeout`). This middleware holds it until then.
//!
//! It also puts a deadline on reading the body, so a sender trickling a byte
//! at a time cannot hold a connection open: the whole body must arrive within
//! `LEADBRIDGE_BODY_TIMEOUT_SECS`. A backfill upload may take longer, but may
//! not stall that long between two chunks.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures_util::Stream;
use std::future::Future;
use std::time::Duration;

/// `LEADBRIDGE_BODY_TIMEOUT_SECS` when none is configured.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The request body, shared between the handler and the response it produces.
struct Shared {
    payload: Rc<RefCell<Payload>>,
    /// When the body must have arrived (or, for a streamed upload, the next
    /// chunk); its timer is made only once the body keeps the reader
    /// waiting: a webhook's body has most often arrived with its headers.
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set for streamed uploads: the deadline moves this far on with each chunk.
    idle: Option<Duration>,
    timeout: Duration,
}

impl Stream for Shared {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut *self.payload.borrow_mut()).poll_next(cx);
        match polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(idle) = self.idle {
                    let next = tokio::time::Instant::now() + idle;
                    self.deadline = next;
                    if let Some(timer) = self.timer.as_mut() {
                        timer.as_mut().reset(next);
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Pending => {
                let deadline = self.deadline;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let secs = self.timeout.as_secs();
                        let what = if self.idle.is_some() {
                            format!("no data arrived for {secs} s")
                        } else {
                            format!("the body did not arrive within {secs} s")
                        };
                        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            what,
                        )))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that owns the request body until it has been written.
    struct Held<B> {
        #[pin]
        body: B,
        request_body: Rc<RefCell<Payload>>,
    }
}

impl<B: MessageBody> MessageBody for Held<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }
}

/// Middleware (`actix_web::middleware::from_fn`) that holds the request body until the answer is written.
pub async fn hold_request_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let timeout = req
        .app_data::<actix_web::web::Data<super::AppState>>()
        .map_or(DEFAULT_BODY_TIMEOUT, |s| s.body_timeout);
    // Only a backfill upload streams (this runs before routing, so the
    // route's own shape decides: a webhook to a connection named
    // `backfill` ends in /backfill too, and gets the body deadline).
    let streamed = super::backfill::is_upload(req.method(), req.path());
    let (http_req, payload) = req.into_parts();
    let shared = Rc::new(RefCell::new(payload));
    let mut req = ServiceRequest::from_parts(http_req, Payload::None);
    req.set_payload(Payload::Stream {
        payload: Box::pin(Shared {
            payload: shared.clone(),
            deadline: tokio::time::Instant::now() + timeout,
            timer: None,
            idle: streamed.then_some(timeout),
            timeout,
        }),
    });
    let res = next.call(req).await?;
    Ok(res.map_body(move |_, body| Held {
        body,
        request_body: shared,
    }))
}
