//! The delivery worker: claim due clients, merge their pending events into one
//! write, send it, record the outcome. An event is marked done only in the same
//! transaction that records Salesforce's confirmation.

pub mod retry;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use crate::clock::Clock;
use crate::connections::Connection;
use crate::crypto::MasterKey;
use crate::mapping::{self, Form, Known, Merge, Pending, Target};
use crate::salesforce::{Credentials, Failure, Salesforce};
use crate::store::{
    Claim, ClientRecord, ClientState, ClientUpdate, NextAttempt, Store, StoreError, SyncError,
};
use crate::webhook::{event, Parsed};
pub use retry::RetryPolicy;

/// Rejections handled by resending without a field, per write, at most.
const MAX_ROUNDS: usize = 8;

/// How the worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    pub retry: RetryPolicy,
    /// How long a claimed client stays leased (a killed worker's clients come back after it).
    pub lease: Duration,
    /// Clients claimed and written concurrently per round.
    pub batch: u32,
    /// Sleep between empty rounds when no webhook wakes the worker.
    pub poll: Duration,
    /// How long a connection pauses after Salesforce's daily limit.
    pub daily_limit_pause: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(5 * 60),
            batch: 32,
            poll: Duration::from_millis(500),
            daily_limit_pause: Duration::from_secs(15 * 60),
        }
    }
}

/// Uniform draws in [0, 1) for backoff jitter; tests fix them.
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Writes due clients to Salesforce.
pub struct Worker {
    store: Arc<dyn Store>,
    salesforce: Arc<Salesforce>,
    master_key: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    jitter: Jitter,
    settings: SyncSettings,
    owner: String,
    wake: Arc<Notify>,
}

/// What one write attempt came to.
enum Attempt {
    Written {
        lead_id: String,
        warnings: Vec<String>,
    },
    NothingToSend,
    Converted {
        message: String,
    },
    Failed(Failure),
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        salesforce: Arc<Salesforce>,
        master_key: Arc<MasterKey>,
        clock: Arc<dyn Clock>,
        settings: SyncSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            salesforce,
            master_key,
            clock,
            jitter: Arc::new(rand::random::<f64>),
            settings,
            owner: format!("worker-{}", uuid::Uuid::new_v4()),
            wake,
        }
    }

    /// Replaces the jitter source (tests).
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Claims the clients due now and writes each; returns how many were claimed.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let lease_until = now + self.settings.lease;
        let claims = self
            .store
            .claim_due(now, &self.owner, lease_until, self.settings.batch)
            .await?;
        let n = claims.len();
        futures_util::future::join_all(claims.iter().map(|c| self.sync_claim(c))).await;
        Ok(n)
    }

    /// Runs rounds until `stop` turns true; sleeps when idle until woken or `poll` passes.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tracing::info!(owner = %self.owner, "sync worker started");
        while !*stop.borrow() {
            let claimed = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "sync round failed; the store is unavailable");
                    0
                }
            };
            if claimed == 0 {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        tracing::info!("sync worker stopped");
    }

    async fn sync_claim(&self, claim: &Claim) {
        let span = tracing::info_span!("sync", connection_id = %claim.connection_id, client_id = %claim.client_id);
        if let Err(e) = self.sync(claim).instrument(span).await {
            tracing::warn!(client_id = %claim.client_id, error = %e, "sync not recorded; the client stays due");
            let _ = self.store.release_client(claim, &self.owner, None).await;
        }
    }

    async fn sync(&self, claim: &Claim) -> Result<(), StoreError> {
        let Some(conn) = self.store.connection_by_id(&claim.connection_id).await? else {
            return Ok(());
        };
        let Some(client) = self
            .store
            .client(&claim.connection_id, &claim.client_id)
            .await?
        else {
            return Ok(());
        };
        let events = self
            .store
            .client_events(&claim.connection_id, &claim.client_id)
            .await?;
        let read: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let known: Known = serde_json::from_str(&client.known).unwrap_or_default();
        let pending: Vec<Pending> = events
            .iter()
            .filter_map(|e| match event::parse(e.payload.as_bytes()) {
                Ok(Parsed::Client(ev)) => Some(Pending {
                    occurred_at: e.occurred_at,
                    seq: e.seq,
                    changes: mapping::changes(&ev.data),
                }),
                _ => None,
            })
            .collect();
        let merge = mapping::merge(&known, &pending);
        let attempt = if client.state == ClientState::Converted {
            Attempt::Converted {
                message: "the Lead was converted; updates stopped".into(),
            }
        } else if events.is_empty() {
            Attempt::NothingToSend
        } else {
            // Bounded well inside the lease, so no other worker can claim the
            // client while this write may still reach Salesforce.
            let budget = self.settings.lease / 2;
            match tokio::time::timeout(budget, self.write(&conn, &client, &merge)).await {
                Ok(attempt) => attempt,
                Err(_) => Attempt::Failed(Failure::Transient {
                    code: "TIMEOUT".into(),
                    message: format!("the write took longer than {} s", budget.as_secs()),
                }),
            }
        };
        let now = self.clock.now();
        if let Attempt::Failed(Failure::DailyLimit { message }) = &attempt {
            let until = now + self.settings.daily_limit_pause;
            tracing::warn!(connection = %conn.name, %until, "Salesforce's daily API limit is spent; connection paused");
            self.store
                .pause_connection(&conn.id, until, message)
                .await?;
            let err = SyncError {
                code: "REQUEST_LIMIT_EXCEEDED".into(),
                message: message.clone(),
            };
            return self
                .store
                .release_client(claim, &self.owner, Some(&err))
                .await;
        }
        let update = self.outcome(&conn, &client, attempt, &merge, read, now);
        if !self
            .store
            .finish_client(claim, &self.owner, &update, now)
            .await?
        {
            tracing::warn!(connection = %conn.name, client_id = %client.client_id, "lease lost before the outcome was recorded");
        }
        Ok(())
    }

    /// Turns an attempt into the client's new record.
    fn outcome(
        &self,
        conn: &Connection,
        client: &ClientRecord,
        attempt: Attempt,
        merge: &Merge,
        read: Vec<i64>,
        now: DateTime<Utc>,
    ) -> ClientUpdate {
        let merged = serde_json::to_string(&merge.merged).expect("Known serializes");
        let mut u = ClientUpdate {
            state: client.state,
            lead_id: client.lead_id.clone(),
            attempts: client.attempts,
            first_failure_at: client.first_failure_at,
            next: NextAttempt::IfEventsPending,
            last_error: client.last_error.clone(),
            last_synced_at: client.last_synced_at,
            warnings: client.warnings.clone(),
            known: client.known.clone(),
            company_sent: client.company_sent,
            processed: Vec::new(),
        };
        match attempt {
            Attempt::Written { lead_id, warnings } => {
                tracing::info!(connection = %conn.name, client_id = %client.client_id, lead_id = %lead_id, "lead written");
                u.state = ClientState::Synced;
                u.lead_id = Some(lead_id);
                u.attempts = 0;
                u.first_failure_at = None;
                u.last_error = None;
                u.last_synced_at = Some(now);
                u.warnings = warnings;
                u.known = merged;
                u.company_sent = true;
                u.processed = read.clone();
            }
            Attempt::NothingToSend => {
                if client.lead_id.is_some() {
                    u.state = ClientState::Synced;
                }
                u.known = merged;
                u.processed = read.clone();
            }
            Attempt::Converted { message } => {
                tracing::info!(connection = %conn.name, client_id = %client.client_id, "lead converted; updates stopped");
                u.state = ClientState::Converted;
                u.last_error = Some(SyncError {
                    code: "CANNOT_UPDATE_CONVERTED_LEAD".into(),
                    message,
                });
                u.processed = read.clone();
            }
            Attempt::Failed(failure) => {
                let error = SyncError {
                    code: failure.code().to_string(),
                    message: failure.message(),
                };
                u.attempts = client.attempts + 1;
                let since = *u.first_failure_at.get_or_insert(now);
                let failing_for = (now - since).to_std().unwrap_or_default();
                let permanent = matches!(failure, Failure::Permanent { .. });
                if permanent || self.settings.retry.exhausted(failing_for) {
                    u.state = ClientState::Dead;
                    u.next = NextAttempt::Never;
                } else {
                    u.state = ClientState::Retrying;
                    u.next = NextAttempt::At(
                        now + self.settings.retry.delay(u.attempts, (self.jitter)()),
                    );
                }
                tracing::warn!(
                    connection = %conn.name, client_id = %client.client_id, error_code = %error.code,
                    attempts = u.attempts, state = u.state.as_str(), "sync failed"
                );
                u.last_error = Some(error);
            }
        }
        u
    }

    /// Sends the client's Lead, resending without fields Salesforce rejects one by
    /// one, creating it again when it was deleted.
    async fn write(&self, conn: &Connection, client: &ClientRecord, m: &Merge) -> Attempt {
        let creds = match Credentials::of(conn, &self.master_key) {
            Ok(c) => c,
            Err(message) => {
                return Attempt::Failed(Failure::Permanent {
                    code: "CONFIGURATION".into(),
                    message,
                })
            }
        };
        let mut describe = match self.salesforce.describe_lead(&creds).await {
            Ok(d) => d,
            Err(f) => return Attempt::Failed(f),
        };
        let upsert_field = conn.external_id_field.as_deref();
        let mut exclude = BTreeSet::new();
        let mut notes = Vec::new();
        let mut lead_id = client.lead_id.clone();
        let mut company_sent = client.company_sent;
        for _ in 0..MAX_ROUNDS {
            let form = match (upsert_field, &lead_id) {
                (Some(_), _) if company_sent => Form::Update,
                (None, Some(_)) => Form::Update,
                _ => Form::Create,
            };
            if form == Form::Update && m.delta.is_empty() {
                return Attempt::NothingToSend;
            }
            let target = Target {
                company: conn.company.as_deref(),
                mapping: &conn.field_mapping,
                fields: Some(&describe.fields),
                exclude: &exclude,
            };
            let lead = mapping::lead(form, m, &target);
            let result = match (upsert_field, &lead_id) {
                (Some(field), _) => {
                    let body = without(&lead.body, field);
                    self.salesforce
                        .upsert(&creds, field, &client.client_id, &body)
                        .await
                }
                (None, Some(id)) => self.salesforce.update(&creds, id, &lead.body).await,
                (None, None) => self.salesforce.create(&creds, &lead.body).await,
            };
            match result {
                Ok(written) => {
                    notes.extend(lead.warnings);
                    return Attempt::Written {
                        lead_id: written.id,
                        warnings: notes,
                    };
                }
                Err(Failure::Deleted { .. }) if upsert_field.is_none() && lead_id.is_some() => {
                    notes.push(
                        "the Lead had been deleted in Salesforce; it was created again".into(),
                    );
                    lead_id = None;
                }
                Err(Failure::Permanent { code, .. })
                    if code == "REQUIRED_FIELD_MISSING"
                        && upsert_field.is_some()
                        && company_sent =>
                {
                    // An upsert by external id found no Lead: send the whole record.
                    notes.push("the Lead was missing in Salesforce; it was created again".into());
                    company_sent = false;
                }
                Err(Failure::Converted { message }) => return Attempt::Converted { message },
                Err(Failure::RejectedFields {
                    fields,
                    code,
                    message,
                }) => {
                    let fresh: Vec<String> = fields
                        .into_iter()
                        .filter(|f| !exclude.contains(f))
                        .collect();
                    let required = fresh.iter().any(|f| f == "LastName" || f == "Company");
                    if fresh.is_empty() || required {
                        return Attempt::Failed(Failure::Permanent { code, message });
                    }
                    if code == "INVALID_FIELD" {
                        // The org changed since describe was cached.
                        self.salesforce.drop_describe(&creds).await;
                        describe = match self.salesforce.describe_lead(&creds).await {
                            Ok(d) => d,
                            Err(f) => return Attempt::Failed(f),
                        };
                    }
                    notes.push(format!("{} not sent: {code}: {message}", fresh.join(", ")));
                    exclude.extend(fresh);
                }
                Err(f) => return Attempt::Failed(f),
            }
        }
        Attempt::Failed(Failure::Permanent {
            code: "TOO_MANY_REJECTIONS".into(),
            message: format!("Salesforce rejected {MAX_ROUNDS} versions of this Lead"),
        })
    }
}

/// The body without `field` (an upsert's body must not carry its key).
fn without(body: &Map<String, Value>, field: &str) -> Map<String, Value> {
    let mut b = body.clone();
    b.remove(field);
    b
}
