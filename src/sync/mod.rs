//! The delivery worker: claim due clients, merge their pending events into one
//! write, send it, record the outcome. An event is marked done only in the same
//! transaction that records Salesforce's confirmation.

pub mod retry;

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use crate::salesforce::{Batch, Credentials, Failure, Salesforce, MAX_BATCH};
use crate::store::{
    Claim, ClientRecord, ClientState, ClientUpdate, NextAttempt, Store, StoreError, StoredEvent,
    SyncError,
};
use crate::webhook::{event, Parsed};
pub use retry::RetryPolicy;

/// Batches of done events one pruning pass deletes, at most.
const PRUNE_PASS: usize = 20;

/// Rejections handled by resending without a field, per write, at most.
const MAX_ROUNDS: usize = 8;

/// How the worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    pub retry: RetryPolicy,
    /// How long a claimed client stays leased (a killed worker's clients come back after it).
    pub lease: Duration,
    /// Clients claimed per round (written 200 to a collections call).
    pub batch: u32,
    /// Sleep between empty rounds when no webhook wakes the worker.
    pub poll: Duration,
    /// After a webhook wakes an idle worker, how long it waits for more to
    /// arrive so a burst goes out in few calls. A lone event waits this long.
    pub linger: Duration,
    /// How long a connection pauses after Salesforce's daily limit, and how
    /// long non-urgent work waits while the API budget is spent.
    pub daily_limit_pause: Duration,
    /// Percent of the org's daily API allocation past which only urgent work
    /// (webhooks) is written; non-urgent work (backfill) waits.
    pub quota_budget_percent: u8,
    /// How long done events are kept (for duplicate detection and inspection)
    /// before they are deleted.
    pub event_retention: Duration,
    /// How often the worker deletes done events past their retention.
    pub prune_every: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(5 * 60),
            batch: 400,
            poll: Duration::from_millis(500),
            linger: Duration::from_millis(200),
            daily_limit_pause: Duration::from_secs(15 * 60),
            quota_budget_percent: 80,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            prune_every: Duration::from_secs(10 * 60),
        }
    }
}

/// Writes due clients to Salesforce.
pub struct Worker {
    store: Arc<Store>,
    salesforce: Arc<Salesforce>,
    master_key: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    settings: SyncSettings,
    owner: String,
    wake: Arc<Notify>,
}

/// A claimed client with its merged pending events.
struct Job {
    claim: Claim,
    client: ClientRecord,
    /// The events read (by seq): the ones an outcome marks done.
    read: Vec<i64>,
    merge: Merge,
    /// Whether any of its pending events is urgent (a webhook).
    urgent: bool,
    /// When each event read was received, and whether it came by webhook.
    received: Vec<(DateTime<Utc>, bool)>,
}

impl Job {
    /// The outcome when no call is needed: a converted Lead, or nothing that
    /// differs from what was last written (no wasted write).
    fn settled(&self, upserts: bool) -> Option<Attempt> {
        if self.client.state == ClientState::Converted {
            return Some(Attempt::Converted {
                message: "the Lead was converted; updates stopped".into(),
            });
        }
        let written_before = if upserts {
            self.client.company_sent
        } else {
            self.client.lead_id.is_some()
        };
        if self.read.is_empty() || (written_before && self.merge.delta.is_empty()) {
            return Some(Attempt::NothingToSend);
        }
        None
    }
}

/// What one write attempt came to.
enum Attempt {
    /// Not tried: non-urgent work while the API budget is spent.
    Deferred,
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
        store: Arc<Store>,
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
            settings,
            owner: format!("worker-{}", uuid::Uuid::new_v4()),
            wake,
        }
    }

    /// The name its leases carry.
    pub fn owner(&self) -> &str {
        &self.owner
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
        let mut by_connection: BTreeMap<String, Vec<Claim>> = BTreeMap::new();
        for claim in claims {
            by_connection
                .entry(claim.connection_id.clone())
                .or_default()
                .push(claim);
        }
        futures_util::future::join_all(
            by_connection
                .into_iter()
                .map(|(id, claims)| self.sync_connection(id, claims)),
        )
        .await;
        Ok(n)
    }

    /// Deletes every event done longer ago than the retention period; returns how many.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let (n, more) = self.prune_pass().await?;
            total += n;
            if !more {
                return Ok(total);
            }
        }
    }

    /// Deletes up to [`PRUNE_PASS`] batches of events past their retention;
    /// returns how many and whether more remain. Short pauses between
    /// batches leave the database to webhooks' commits.
    async fn prune_pass(&self) -> Result<(u64, bool), StoreError> {
        const BATCH: u32 = 5_000;
        let before = self.clock.now() - self.settings.event_retention;
        let mut total = 0;
        let mut more = true;
        for _ in 0..PRUNE_PASS {
            let n = self.store.prune_events(before, BATCH).await?;
            total += n;
            if n < u64::from(BATCH) {
                more = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if total > 0 {
            crate::metrics::events_pruned(total);
            tracing::info!(
                pruned = total,
                more,
                "done events past their retention deleted"
            );
        }
        Ok((total, more))
    }

    /// Runs rounds until `stop` turns true. When idle it sleeps until woken or
    /// `poll` passes; once woken it lingers briefly so a burst fills a batch.
    /// Every `prune_every` it deletes done events past their retention.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tracing::info!(owner = %self.owner, "sync worker started");
        let mut next_prune = tokio::time::Instant::now();
        while !*stop.borrow() {
            if tokio::time::Instant::now() >= next_prune {
                // A large backlog of old events goes a pass a minute, between rounds.
                let again = match self.prune_pass().await {
                    Ok((_, true)) => Duration::from_secs(60),
                    Ok((_, false)) => self.settings.prune_every,
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning done events failed; tried again later");
                        self.settings.prune_every
                    }
                };
                next_prune = tokio::time::Instant::now() + again;
            }
            let claimed = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "sync round failed; the store is unavailable");
                    0
                }
            };
            if claimed == 0 {
                tokio::select! {
                    _ = self.wake.notified() => {
                        tokio::time::sleep(self.settings.linger).await;
                    }
                    _ = tokio::time::sleep(self.settings.poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        tracing::info!("sync worker stopped");
    }

    /// Syncs one connection's claimed clients: several at once go out as
    /// sObject Collections calls, a lone one as a single-record call.
    async fn sync_connection(&self, connection_id: String, claims: Vec<Claim>) {
        let span = tracing::info_span!("sync", %connection_id);
        let result = async {
            let Some(conn) = self.store.connection_by_id(&connection_id).await? else {
                return Ok(());
            };
            let jobs = self.prepare(&conn, claims).await?;
            let upserts = conn.external_id_field.is_some();
            let budget = self.settings.quota_budget_percent;
            // A reading older than the pause no longer counts: the next write refreshes it.
            let now = self.clock.now();
            let over_budget = conn.api_usage.is_some_and(|u| {
                u.at_least(budget)
                    && (now - u.at).to_std().unwrap_or_default() < self.settings.daily_limit_pause
            });
            let mut outcomes = Vec::with_capacity(jobs.len());
            let mut to_write = Vec::new();
            for job in jobs {
                if over_budget && !job.urgent {
                    outcomes.push((job, Attempt::Deferred));
                    continue;
                }
                match job.settled(upserts) {
                    Some(attempt) => outcomes.push((job, attempt)),
                    None => to_write.push(job),
                }
            }
            if to_write.len() > 1 {
                outcomes.extend(self.write_batched(&conn, to_write).await);
            } else {
                for job in to_write {
                    let attempt = self.write_bounded(&conn, &job, None).await;
                    outcomes.push((job, attempt));
                }
            }
            self.conclude(&conn, outcomes).await?;
            self.record_usage(&conn).await
        };
        if let Err(e) = result.instrument(span).await {
            // Leases end on their own; the clients are picked up again then.
            tracing::warn!(%connection_id, error = %e, "sync not recorded; the clients stay due");
        }
    }

    /// Loads the claimed clients and their pending events (two queries), and
    /// merges each client's events.
    async fn prepare(&self, conn: &Connection, claims: Vec<Claim>) -> Result<Vec<Job>, StoreError> {
        let ids: Vec<String> = claims.iter().map(|c| c.client_id.clone()).collect();
        let mut clients: HashMap<String, ClientRecord> = self
            .store
            .clients_by_id(&conn.id, &ids)
            .await?
            .into_iter()
            .map(|c| (c.client_id.clone(), c))
            .collect();
        let mut events: HashMap<String, Vec<StoredEvent>> = HashMap::new();
        for e in self.store.events_of_clients(&conn.id, &ids).await? {
            events.entry(e.client_id.clone()).or_default().push(e);
        }
        let mut jobs = Vec::with_capacity(claims.len());
        for claim in claims {
            let Some(client) = clients.remove(&claim.client_id) else {
                continue;
            };
            let events = events.remove(&claim.client_id).unwrap_or_default();
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
            let urgent = events.iter().any(|e| e.urgent);
            let received = events.iter().map(|e| (e.received_at, e.urgent)).collect();
            jobs.push(Job {
                claim,
                client,
                read,
                merge,
                urgent,
                received,
            });
        }
        Ok(jobs)
    }

    /// A single-record write, bounded well inside the lease so no other worker
    /// can claim the client while it may still reach Salesforce.
    async fn write_bounded(&self, conn: &Connection, job: &Job, first: Option<Failure>) -> Attempt {
        let budget = self.settings.lease / 2;
        match tokio::time::timeout(budget, self.write(conn, &job.client, &job.merge, first)).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::Failed(Failure::Transient {
                code: "TIMEOUT".into(),
                message: format!("the write took longer than {} s", budget.as_secs()),
            }),
        }
    }

    /// Writes several clients with collections calls, up to 200 records each.
    /// A record rejected in a way the single-record path can mend (a field to
    /// drop, a deleted Lead) is sent again on its own.
    async fn write_batched(&self, conn: &Connection, jobs: Vec<Job>) -> Vec<(Job, Attempt)> {
        let creds = match Credentials::of(conn, &self.master_key) {
            Ok(c) => c,
            Err(message) => {
                let f = Failure::Permanent {
                    code: "CONFIGURATION".into(),
                    message,
                };
                return jobs
                    .into_iter()
                    .map(|j| (j, Attempt::Failed(f.clone())))
                    .collect();
            }
        };
        let describe = match self.salesforce.describe_lead(&creds).await {
            Ok(d) => d,
            Err(f) => {
                return jobs
                    .into_iter()
                    .map(|j| (j, Attempt::Failed(f.clone())))
                    .collect()
            }
        };
        let none = BTreeSet::new();
        let target = Target {
            company: conn.company.as_deref(),
            mapping: &conn.field_mapping,
            fields: Some(&describe.fields),
            exclude: &none,
        };
        // Partition by call, rendering each client's body as a single write would.
        let mut groups: BTreeMap<u8, (Batch, Vec<(Job, mapping::Lead)>)> = BTreeMap::new();
        for job in jobs {
            let (key, batch, form) = match (&conn.external_id_field, &job.client.lead_id) {
                (Some(f), _) => {
                    let form = if job.client.company_sent {
                        Form::Update
                    } else {
                        Form::Create
                    };
                    (0, Batch::Upsert(f.clone()), form)
                }
                (None, Some(_)) => (1, Batch::Update, Form::Update),
                (None, None) => (2, Batch::Create, Form::Create),
            };
            let mut lead = mapping::lead(form, &job.merge, &target);
            match &batch {
                Batch::Upsert(f) => {
                    lead.body
                        .insert(f.clone(), Value::String(job.client.client_id.clone()));
                }
                Batch::Update => {
                    let id = job.client.lead_id.clone().unwrap_or_default();
                    lead.body.insert("id".into(), Value::String(id));
                }
                Batch::Create => {}
            }
            groups
                .entry(key)
                .or_insert_with(|| (batch, Vec::new()))
                .1
                .push((job, lead));
        }
        let budget = self.settings.lease / 2;
        let mut outcomes = Vec::new();
        for (_, (batch, items)) in groups {
            let mut items = items.into_iter().peekable();
            while items.peek().is_some() {
                let chunk: Vec<(Job, mapping::Lead)> = items.by_ref().take(MAX_BATCH).collect();
                let records = chunk.iter().map(|(_, l)| l.body.clone()).collect();
                let answer = tokio::time::timeout(
                    budget,
                    self.salesforce.collection(&creds, &batch, records),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(Failure::transient(
                        "TIMEOUT",
                        "the collections call timed out",
                    ))
                });
                match answer {
                    Ok(results) => {
                        for ((job, lead), result) in chunk.into_iter().zip(results) {
                            let attempt = match result {
                                Ok(w) => Attempt::Written {
                                    lead_id: w.id,
                                    warnings: lead.warnings,
                                },
                                Err(
                                    f @ (Failure::Transient { .. }
                                    | Failure::DailyLimit { .. }
                                    | Failure::SessionExpired
                                    | Failure::Auth { .. }),
                                ) => Attempt::Failed(f),
                                Err(Failure::Converted { message }) => {
                                    Attempt::Converted { message }
                                }
                                // Rejected fields, a deleted Lead, a missing field: the
                                // single-record path knows how to mend these.
                                Err(f) => self.write_bounded(conn, &job, Some(f)).await,
                            };
                            outcomes.push((job, attempt));
                        }
                    }
                    Err(f) => {
                        for (job, _) in chunk {
                            outcomes.push((job, Attempt::Failed(f.clone())));
                        }
                    }
                }
            }
        }
        outcomes
    }

    /// Records attempts: the daily limit pauses the connection and leaves its
    /// clients due; every other outcome is written, 200 clients a transaction.
    async fn conclude(
        &self,
        conn: &Connection,
        outcomes: Vec<(Job, Attempt)>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut finished = Vec::with_capacity(outcomes.len());
        let mut paused = false;
        for (job, attempt) in outcomes {
            if let Attempt::Failed(Failure::DailyLimit { message }) = &attempt {
                if !paused {
                    let until = now + self.settings.daily_limit_pause;
                    tracing::warn!(connection = %conn.name, %until, error_code = "REQUEST_LIMIT_EXCEEDED", "Salesforce's daily API limit is spent; connection paused");
                    self.store
                        .pause_connection(&conn.id, until, message)
                        .await?;
                    paused = true;
                }
                let err = SyncError {
                    code: "REQUEST_LIMIT_EXCEEDED".into(),
                    message: message.clone(),
                };
                self.store
                    .release_client(&job.claim, &self.owner, Some(&err))
                    .await?;
                continue;
            }
            if matches!(attempt, Attempt::Written { .. }) {
                for (at, webhook) in &job.received {
                    let waited = (now - *at).to_std().unwrap_or_default().as_secs_f64();
                    let source = if *webhook { "webhook" } else { "backfill" };
                    crate::metrics::sync_latency(source, waited);
                }
            }
            let update = self.outcome(conn, &job.client, attempt, &job.merge, job.read, now);
            finished.push((job.claim, update));
        }
        for chunk in finished.chunks(MAX_BATCH) {
            let recorded = self.store.finish_clients(chunk, &self.owner, now).await?;
            for ((claim, _), ok) in chunk.iter().zip(recorded) {
                if !ok {
                    tracing::warn!(connection = %conn.name, client_id = %claim.client_id, "lease lost before the outcome was recorded");
                }
            }
        }
        Ok(())
    }

    /// Stores the API usage Salesforce last reported for this connection, for
    /// every replica's budget check and the connection's view.
    async fn record_usage(&self, conn: &Connection) -> Result<(), StoreError> {
        let Ok(creds) = Credentials::of(conn, &self.master_key) else {
            return Ok(());
        };
        let Some((used, max)) = self.salesforce.usage(&creds).await else {
            return Ok(());
        };
        crate::metrics::api_usage(&conn.name, used, max);
        let usage = crate::store::ApiUsage {
            used,
            max,
            at: self.clock.now(),
        };
        self.store.record_api_usage(&conn.id, usage).await
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
            Attempt::Deferred => {
                tracing::info!(connection = %conn.name, client_id = %client.client_id, "non-urgent sync deferred: the API budget is spent");
                u.next = NextAttempt::At(now + self.settings.daily_limit_pause);
            }
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
                        now + self.settings.retry.delay(u.attempts, self.clock.jitter()),
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
    /// one, creating it again when it was deleted. `first` is a rejection this
    /// record already got (in a collections call), to mend before sending.
    async fn write(
        &self,
        conn: &Connection,
        client: &ClientRecord,
        m: &Merge,
        first: Option<Failure>,
    ) -> Attempt {
        let creds = match Credentials::of(conn, &self.master_key) {
            Ok(c) => c,
            Err(message) => {
                return Attempt::Failed(Failure::Permanent {
                    code: "CONFIGURATION".into(),
                    message,
                })
            }
        };
        let describe = match self.salesforce.describe_lead(&creds).await {
            Ok(d) => d,
            Err(f) => return Attempt::Failed(f),
        };
        let mut st = Mending {
            upsert_field: conn.external_id_field.as_deref(),
            exclude: BTreeSet::new(),
            notes: Vec::new(),
            lead_id: client.lead_id.clone(),
            company_sent: client.company_sent,
            describe,
        };
        if let Some(f) = first {
            if let Some(done) = self.mend(&creds, &mut st, f).await {
                return done;
            }
        }
        for _ in 0..MAX_ROUNDS {
            let form = match (st.upsert_field, &st.lead_id) {
                (Some(_), _) if st.company_sent => Form::Update,
                (None, Some(_)) => Form::Update,
                _ => Form::Create,
            };
            if form == Form::Update && m.delta.is_empty() {
                return Attempt::NothingToSend;
            }
            let target = Target {
                company: conn.company.as_deref(),
                mapping: &conn.field_mapping,
                fields: Some(&st.describe.fields),
                exclude: &st.exclude,
            };
            let lead = mapping::lead(form, m, &target);
            let result = match (st.upsert_field, &st.lead_id) {
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
                    st.notes.extend(lead.warnings);
                    return Attempt::Written {
                        lead_id: written.id,
                        warnings: st.notes,
                    };
                }
                Err(f) => {
                    if let Some(done) = self.mend(&creds, &mut st, f).await {
                        return done;
                    }
                }
            }
        }
        Attempt::Failed(Failure::Permanent {
            code: "TOO_MANY_REJECTIONS".into(),
            message: format!("Salesforce rejected {MAX_ROUNDS} versions of this Lead"),
        })
    }

    /// Adjusts the next attempt after a failure, or returns the final outcome.
    async fn mend(
        &self,
        creds: &Credentials,
        st: &mut Mending<'_>,
        failure: Failure,
    ) -> Option<Attempt> {
        match failure {
            Failure::Deleted { .. } if st.upsert_field.is_none() && st.lead_id.is_some() => {
                st.notes
                    .push("the Lead had been deleted in Salesforce; it was created again".into());
                st.lead_id = None;
            }
            Failure::Permanent { code, .. }
                if code == "REQUIRED_FIELD_MISSING"
                    && st.upsert_field.is_some()
                    && st.company_sent =>
            {
                // An upsert by external id found no Lead: send the whole record.
                st.notes
                    .push("the Lead was missing in Salesforce; it was created again".into());
                st.company_sent = false;
            }
            Failure::Converted { message } => return Some(Attempt::Converted { message }),
            Failure::RejectedFields {
                fields,
                code,
                message,
            } => {
                let fresh: Vec<String> = fields
                    .into_iter()
                    .filter(|f| !st.exclude.contains(f))
                    .collect();
                let required = fresh.iter().any(|f| f == "LastName" || f == "Company");
                if fresh.is_empty() || required {
                    return Some(Attempt::Failed(Failure::Permanent { code, message }));
                }
                if code == "INVALID_FIELD" {
                    // The org changed since describe was cached.
                    self.salesforce.drop_describe(creds).await;
                    st.describe = match self.salesforce.describe_lead(creds).await {
                        Ok(d) => d,
                        Err(f) => return Some(Attempt::Failed(f)),
                    };
                }
                st.notes
                    .push(format!("{} not sent: {code}: {message}", fresh.join(", ")));
                st.exclude.extend(fresh);
            }
            f => return Some(Attempt::Failed(f)),
        }
        None
    }
}

/// What the single-record path has learned about a record so far.
struct Mending<'a> {
    upsert_field: Option<&'a str>,
    exclude: BTreeSet<String>,
    notes: Vec<String>,
    lead_id: Option<String>,
    company_sent: bool,
    describe: Arc<crate::salesforce::LeadDescribe>,
}

/// The body without `field` (an upsert's body must not carry its key).
fn without(body: &Map<String, Value>, field: &str) -> Map<String, Value> {
    let mut b = body.clone();
    b.remove(field);
    b
}
