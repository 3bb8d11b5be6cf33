//! Backfill jobs and their progress.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::events::insert_events_in;
use super::rows::{job_from_row, JOB_SELECT};
use super::{to_millis, NewEvent, Store, StoreError};
use crate::domain::{BackfillJob, JobProgress, JobState};

use crate::domain::ConnectionId;

impl Store {
    /// Stores a chunk of a backfill's events and the job's progress in one
    /// transaction, so the job's `accepted` is exact whatever happens next.
    pub async fn insert_backfill_chunk(
        &self,
        events: &[NewEvent],
        progress: &JobProgress,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !events.is_empty() {
            insert_events_in(&mut tx, self.dialect, events).await?;
        }
        update_job_in(&mut tx, progress).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a backfill job in state `receiving`.
    pub async fn create_backfill_job(
        &self,
        job_id: &str,
        connection_id: &ConnectionId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO backfill_jobs (id, connection_id, state, created_at, updated_at)
             VALUES ($1, $2, 'receiving', $3, $4)",
        )
        .bind(job_id)
        .bind(connection_id)
        .bind(to_millis(now))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how far an upload has come.
    pub async fn update_backfill_job(&self, p: &JobProgress) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        update_job_in(&mut conn, p).await
    }

    /// A connection's most recent jobs, newest first.
    pub async fn backfill_jobs(
        &self,
        connection_id: &ConnectionId,
        limit: u32,
    ) -> Result<Vec<BackfillJob>, StoreError> {
        sqlx::query(&format!(
            "{JOB_SELECT} WHERE j.connection_id = $1 ORDER BY j.created_at DESC, j.id DESC LIMIT $2"
        ))
        .bind(connection_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job_from_row)
        .collect()
    }

    /// A job of a connection, with its events counted.
    pub async fn backfill_job(
        &self,
        connection_id: &ConnectionId,
        job_id: &str,
    ) -> Result<Option<BackfillJob>, StoreError> {
        sqlx::query(&format!(
            "{JOB_SELECT} WHERE j.connection_id = $1 AND j.id = $2"
        ))
        .bind(connection_id)
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(job_from_row)
        .transpose()
    }
}

/// Records a job's progress within `tx`.
async fn update_job_in(tx: &mut AnyConnection, p: &JobProgress) -> Result<(), StoreError> {
    let done = p.state != JobState::Receiving;
    sqlx::query(
        "UPDATE backfill_jobs SET state = $1, lines_read = $2, accepted = $8, rejected_count = $3,
            rejected = $4, updated_at = $5, finished_at = $6
         WHERE id = $7",
    )
    .bind(p.state.as_str())
    .bind(p.read as i64)
    .bind(p.rejected_count as i64)
    .bind(serde_json::to_string(&p.rejected).expect("rejections serialize"))
    .bind(to_millis(p.at))
    .bind(done.then(|| to_millis(p.at)))
    .bind(&p.job_id)
    .bind(p.accepted as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
