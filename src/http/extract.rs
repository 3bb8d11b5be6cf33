//! What handlers take from a request: proof of the admin token, bodies read
//! under a limit, JSON, and query strings refused in problem+json.

use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{dev::Payload, FromRequest, HttpRequest};
use futures_util::StreamExt;
use secrecy::ExposeSecret;

use super::{ApiError, AppState};
use crate::crypto::constant_time_eq;

/// Query strings that do not parse are answered in problem+json too.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        ApiError::InvalidPayload(format!("the query string is invalid: {err}")).into()
    })
}

/// Refuses a request whose declared `Content-Length` is over `limit`, before reading it.
pub fn check_declared_length(req: &HttpRequest, limit: usize) -> Result<(), ApiError> {
    match declared_length(req) {
        Some(n) if n > limit as u64 => Err(ApiError::PayloadTooLarge(limit)),
        _ => Ok(()),
    }
}

/// Body bytes that all requests reading through it may hold at once: a
/// caller who sends large bodies on many connections (before anything about
/// them is authenticated) gets 503 past it instead of the process's memory.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    used: Arc<AtomicUsize>,
    max: usize,
}

/// Bytes taken from a [`BodyBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reserved {
    budget: BodyBudget,
    held: usize,
}

impl BodyBudget {
    pub fn new(max: usize) -> Self {
        Self {
            used: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Takes `n` bytes, or none when that would pass the budget.
    pub fn reserve(&self, n: usize) -> Option<Reserved> {
        let mut reserved = Reserved {
            budget: self.clone(),
            held: 0,
        };
        reserved.grow(n).then_some(reserved)
    }
}

impl Reserved {
    /// Takes `n` more bytes; false (taking none) past the budget.
    fn grow(&mut self, n: usize) -> bool {
        let taken = self
            .budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n)
                    .filter(|&total| total <= self.budget.max)
            });
        if taken.is_ok() {
            self.held += n;
        }
        taken.is_ok()
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

/// The `Content-Length` a request declared, if it did.
pub fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads a body of at most `limit` bytes within `budget`: a declared length
/// is taken from the budget before anything is read (and the buffer sized
/// to it), a chunked body's bytes as they come. 503 past the budget.
pub async fn read_body_within(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    budget: &BodyBudget,
) -> Result<(Bytes, Reserved), ApiError> {
    let busy = || {
        ApiError::Busy("too many request bodies are being received at once; retry shortly".into())
    };
    let declared = declared_length(req).map(|n| n.min(limit as u64) as usize);
    let mut reserved = budget.reserve(declared.unwrap_or(0)).ok_or_else(busy)?;
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::InvalidPayload(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let beyond = (body.len() + chunk.len()).saturating_sub(reserved.held);
        if beyond > 0 && !reserved.grow(beyond) {
            return Err(busy());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), reserved))
}

/// Reads the body, stopping with 413 as soon as it passes `limit` bytes.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::InvalidPayload(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a JSON request body of the admin API.
pub async fn read_json(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<serde_json::Value, ApiError> {
    check_declared_length(req, limit)?;
    let body = read_body(payload, limit).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidPayload(format!("the body is not valid JSON: {e}")))
}

/// Proof that the request carried the admin bearer token (compared in constant time).
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::Internal(anyhow::anyhow!(
                "app state missing"
            ))));
        };
        let offered = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let ok = offered.is_some_and(|t| {
            constant_time_eq(t.as_bytes(), state.admin_token.expose_secret().as_bytes())
        });
        ready(if ok {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        })
    }
}
