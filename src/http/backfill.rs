//! `POST /v1/connections/{name}/backfill` and `GET …/backfill/{jobId}`: an
//! NDJSON upload of existing clients, stored chunk by chunk as it streams in.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::Problem;
use super::{Admin, ApiError, AppState};
use crate::backfill::{Lines, Upload};
use crate::domain::{BackfillJob, JobState, Rejection};

/// A job still `receiving` with no progress for this long is shown as
/// `interrupted`: the process that read it stopped.
const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

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
        let state = match job.state {
            JobState::Receiving if now - job.updated_at > STALE_AFTER => JobState::Interrupted,
            s => s,
        };
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
    post, path = "/v1/connections/{name}/backfill", tag = "backfill",
    params(("name" = String, Path), BackfillQuery),
    request_body(content = String, content_type = "application/x-ndjson",
        description = "One client per line: the `data` object of a webhook. Streamed; any size."),
    responses(
        (status = 202, description = "The whole upload was read; accepted lines are stored and queued", body = JobView),
        (status = 400, description = "The upload broke off, or `asOf` is in the future", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
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
    if query.as_of.is_some_and(|t| t > now) {
        return Err(ApiError::InvalidPayload(
            "`asOf` is in the future: a backfill cannot be newer than now".into(),
        ));
    }
    let job_id = uuid::Uuid::now_v7().to_string();
    state
        .store
        .create_backfill_job(&job_id, &conn.id, now)
        .await?;
    tracing::info!(connection = %conn.name, %job_id, "backfill started");

    let max_line = state.max_body_bytes;
    let as_of = query.as_of.unwrap_or(DateTime::UNIX_EPOCH);
    let mut upload = Upload::new(&job_id, &conn.id, as_of, now, max_line);
    let mut lines = Lines::new(max_line);
    let read: Result<(), ApiError> = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::InvalidPayload(format!("the upload broke off: {e}")))?;
            lines.feed(&chunk, |l| upload.line(l));
            while upload.chunk_ready() {
                store_chunk(&state, &mut upload, JobState::Receiving).await?;
            }
        }
        lines.finish(|l| upload.line(l));
        Ok(())
    }
    .await;
    // Every complete line read is stored, even when the upload broke off
    // (a partial last line is not a line).
    let last = if read.is_ok() {
        JobState::Received
    } else {
        JobState::Interrupted
    };
    let stored = async {
        while upload.has_pending() {
            store_chunk(&state, &mut upload, JobState::Receiving).await?;
        }
        store_chunk(&state, &mut upload, last).await
    }
    .await;
    let end = upload.progress(last, 0, state.clock.now());
    crate::metrics::backfill_lines(&conn.name, end.accepted, end.rejected_count);
    if let Err(e) = read.and(stored) {
        let _ = state
            .store
            .update_backfill_job(&upload.progress(JobState::Interrupted, 0, state.clock.now()))
            .await;
        tracing::warn!(connection = %conn.name, %job_id, read = end.read, error = %e, "backfill interrupted");
        return Err(e);
    }
    tracing::info!(
        connection = %conn.name, %job_id, read = end.read, accepted = end.accepted,
        rejected = end.rejected_count, "backfill received"
    );
    let job = state
        .store
        .backfill_job(&conn.id, &job_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("backfill job `{job_id}` vanished")))?;
    Ok(HttpResponse::Accepted().json(JobView::of(job, &conn.name, state.clock.now())))
}

/// Stores the events read so far and the job's progress, in one transaction.
async fn store_chunk(
    state: &AppState,
    upload: &mut Upload,
    progress: JobState,
) -> Result<(), ApiError> {
    let events = upload.take_chunk();
    let p = upload.progress(progress, events.len(), state.clock.now());
    crate::store::retry_conflicts(|| state.store.insert_backfill_chunk(&events, &p)).await?;
    upload.stored(events.len());
    if !events.is_empty() {
        state.wake.notify_one();
    }
    Ok(())
}

/// A connection's recent backfill jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// The 50 most recent, newest first.
    pub jobs: Vec<JobView>,
}

#[utoipa::path(
    get, path = "/v1/connections/{name}/backfill", tag = "backfill",
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
    get, path = "/v1/connections/{name}/backfill/{jobId}", tag = "backfill",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState, updated_at: DateTime<Utc>) -> BackfillJob {
        BackfillJob {
            id: "j".into(),
            connection_id: crate::domain::ConnectionId::from_stored("c".into()),
            state,
            read: 0,
            accepted: 0,
            synced: 0,
            rejected_count: 0,
            rejected: vec![],
            created_at: updated_at,
            updated_at,
            finished_at: None,
        }
    }

    #[test]
    fn a_job_left_receiving_by_a_stopped_process_shows_as_interrupted() {
        let now = Utc::now();
        let minutes = chrono::TimeDelta::minutes;
        let view = |state, age| JobView::of(job(state, now - age), "a", now).state;
        assert_eq!(view(JobState::Receiving, minutes(1)), "receiving");
        assert_eq!(view(JobState::Receiving, minutes(11)), "interrupted");
        assert_eq!(view(JobState::Received, minutes(3000)), "received");
    }
}
