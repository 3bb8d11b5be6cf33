//! `POST /v1/connections/{name}/backfill` and `GET …/backfill/{jobId}`: an
//! NDJSON upload of existing clients, stored chunk by chunk as it streams in.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::Admin;
use super::problem::Problem;
use super::{ApiError, AppState};
use crate::backfill::Backfill;
use crate::domain::{BackfillJob, JobState, Rejection};

/// Media types taken as NDJSON.
const NDJSON_TYPES: [&str; 3] = [
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
];

/// A backfill job: what was read, stored and synced.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub job_id: String,
    pub connection: String,
    /// `receiving` (the upload is still streaming), `received` (the whole file
    /// was read) or `interrupted` (the upload stopped early; the lines stored
    /// before that are kept and synced).
    pub state: &'static str,
    /// Non-blank lines read.
    pub read: u64,
    /// Lines stored as events, to be synced.
    pub accepted: u64,
    /// Accepted lines whose data Salesforce has confirmed (or that needed no write).
    pub synced: u64,
    /// Lines rejected, in all.
    pub rejected_count: u64,
    /// The first 1,000 rejected lines, with why (lines counted from 1).
    pub rejected: Vec<Rejection>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl JobView {
    fn of(job: BackfillJob, connection: &str, now: DateTime<Utc>) -> Self {
        let state = job.state_at(now);
        Self {
            job_id: job.id,
            connection: connection.to_string(),
            state: state.as_str(),
            read: job.read,
            accepted: job.accepted,
            synced: job.synced,
            rejected_count: job.rejected_count,
            rejected: job.rejected,
            created_at: job.created_at,
            updated_at: job.updated_at,
            finished_at: job.finished_at,
        }
    }
}

/// Options of a backfill upload.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct BackfillQuery {
    /// When the file was exported (RFC 3339). Its rows then override webhook
    /// data older than this, and never newer. Without it, rows only fill in
    /// what no webhook has said.
    pub as_of: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post, operation_id = "upload_backfill", path = "/v1/connections/{name}/backfill", tag = "backfill",
    params(("name" = String, Path), BackfillQuery),
    request_body(content = String, content_type = "application/x-ndjson",
        description = "One client per line: the `data` object of a webhook. Streamed; any size."),
    responses(
        (status = 202, description = "The whole upload was read; accepted lines are stored and queued", body = JobView),
        (status = 400, description = "The upload broke off, or `asOf` is in the future", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "As many uploads as LEADBRIDGE_MAX_RUNNING_BACKFILLS are being received for this connection", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/x-ndjson`, or compressed (`Content-Encoding`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; lines stored before it stay stored", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn upload(
    _: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<BackfillQuery>,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let conn = state.connection(&path).await?;
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !media.as_deref().is_some_and(|m| NDJSON_TYPES.contains(&m)) {
        return Err(ApiError::UnsupportedMediaType(
            "send the clients as `Content-Type: application/x-ndjson`, one JSON object per line"
                .into(),
        ));
    }
    let encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    if encoding.as_deref().is_some_and(|e| e != "identity") {
        return Err(ApiError::UnsupportedMediaType(
            "a compressed upload is not supported: send the NDJSON as it is".into(),
        ));
    }
    let now = state.clock.now();
    let max = state.limits.max_running_backfills;
    let receiving = state
        .store
        .backfill_jobs(&conn.id, 50)
        .await?
        .iter()
        .filter(|j| j.state_at(now) == JobState::Receiving)
        .count() as u64;
    if receiving >= max {
        return Err(ApiError::Conflict(format!(
            "{receiving} uploads are being received for this connection, the most it takes at once \
             (LEADBRIDGE_MAX_RUNNING_BACKFILLS): wait for one to end"
        )));
    }
    let backfill = Backfill {
        store: &state.store,
        clock: state.clock.as_ref(),
        wake: &state.wake,
        max_line: state.max_body_bytes,
    };
    let job = backfill.receive(&conn, query.as_of, &mut payload).await?;
    Ok(HttpResponse::Accepted().json(JobView::of(job, &conn.name, state.clock.now())))
}

/// The route of an upload, as the route table mounts it.
pub const UPLOAD_ROUTE: &str = "/v1/connections/{name}/backfill";

/// Whether a request is an upload to [`UPLOAD_ROUTE`] (`POST`, one name
/// segment): only those stream their body without a deadline for the whole.
pub fn is_upload(method: &actix_web::http::Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1/connections/") else {
        return false;
    };
    method == actix_web::http::Method::POST
        && rest
            .split_once('/')
            .is_some_and(|(name, tail)| !name.is_empty() && tail == "backfill")
}

/// A connection's recent backfill jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// The 50 most recent, newest first.
    pub jobs: Vec<JobView>,
}

#[utoipa::path(
    get, operation_id = "list_backfill_jobs", path = "/v1/connections/{name}/backfill", tag = "backfill",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The 50 most recent jobs, newest first", body = JobList),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let conn = state.connection(&path).await?;
    let now = state.clock.now();
    let jobs = state
        .store
        .backfill_jobs(&conn.id, 50)
        .await?
        .into_iter()
        .map(|j| JobView::of(j, &conn.name, now))
        .collect();
    Ok(HttpResponse::Ok().json(JobList { jobs }))
}

#[utoipa::path(
    get, operation_id = "get_backfill_job", path = "/v1/connections/{name}/backfill/{jobId}", tag = "backfill",
    params(("name" = String, Path), ("jobId" = String, Path)),
    responses(
        (status = 200, description = "The job's counts", body = JobView),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection or job", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    _: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (name, job_id) = path.into_inner();
    let conn = state.connection(&name).await?;
    let job = state
        .store
        .backfill_job(&conn.id, &job_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no backfill job `{job_id}` on `{name}`")))?;
    Ok(HttpResponse::Ok().json(JobView::of(job, &conn.name, state.clock.now())))
}
