//! The write itself: collections calls for several clients, single-record
//! calls for one, and the mending of a rejected record (resend without the
//! rejected field, create a deleted Lead again).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::outcome::Attempt;
use super::plan::{self, choose, save_options, Call, Job};
use super::{Worker, MAX_ROUNDS};
use crate::domain::{ClientId, ClientRecord, Connection, DuplicatePolicy};
use crate::mapping::{self, Form, Merge, Target};
use crate::salesforce::errors::codes;
use crate::salesforce::{Batch, Credentials, Failure, LeadDescribe, SaveOptions, MAX_BATCH};

impl Worker {
    /// A single-record write, bounded well inside the lease so no other worker
    /// can claim the client while it may still reach Salesforce.
    pub(super) async fn write_bounded(
        &self,
        conn: &Connection,
        job: &Job,
        first: Option<Failure>,
    ) -> Attempt {
        let budget = self.settings.lease / 2;
        match tokio::time::timeout(budget, self.write(conn, &job.client, &job.merge, first)).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::Failed(Failure::Transient {
                code: codes::TIMEOUT.into(),
                message: format!("the write took longer than {} s", budget.as_secs()),
            }),
        }
    }

    /// Writes several clients with collections calls, up to 200 records each.
    /// A record rejected in a way the single-record path can mend (a field to
    /// drop, a deleted Lead) is sent again on its own.
    pub(super) async fn write_batched(
        &self,
        conn: &Connection,
        jobs: Vec<Job>,
    ) -> Vec<(Job, Attempt)> {
        let creds = match Credentials::of(conn, &self.master_key) {
            Ok(c) => c,
            Err(message) => {
                let f = Failure::Permanent {
                    code: codes::CONFIGURATION.into(),
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
        let refused = describe.refused.snapshot();
        let target = target(conn, &describe, &none, &refused);
        // Partition by call and form (the form decides the request's headers),
        // rendering each client's body as a single write would.
        type Group = (Batch, SaveOptions, Vec<(Job, mapping::Lead)>);
        let mut groups: BTreeMap<(u8, bool), Group> = BTreeMap::new();
        for job in jobs {
            let (form, call) = choose(
                conn.external_id_field.as_deref(),
                job.client.lead_id.as_deref(),
                job.client.company_sent,
            );
            let mut lead = mapping::lead(form, &job.merge, &target);
            let kind = match call {
                Call::Upsert { field } => {
                    let id = Value::String(job.client.client_id.to_string());
                    lead.body.insert(field.to_string(), id);
                    0
                }
                Call::Update { id } => {
                    lead.body.insert("id".into(), Value::String(id.to_string()));
                    1
                }
                Call::Create => 2,
            };
            let batch = call.batch();
            let save = save_options(conn, form);
            groups
                .entry((kind, form == Form::Create))
                .or_insert_with(|| (batch, save, Vec::new()))
                .2
                .push((job, lead));
        }
        let mut outcomes = Vec::new();
        for (_, (batch, save, items)) in groups {
            let mut items = items.into_iter().peekable();
            while items.peek().is_some() {
                let chunk: Vec<(Job, mapping::Lead)> = items.by_ref().take(MAX_BATCH).collect();
                if batch == Batch::Create {
                    let ids: Vec<ClientId> = chunk
                        .iter()
                        .map(|(j, _)| j.client.client_id.clone())
                        .collect();
                    if let Err(f) = self.mark_creates_sent(conn, &ids).await {
                        outcomes.extend(
                            chunk
                                .into_iter()
                                .map(|(j, _)| (j, Attempt::Failed(f.clone()))),
                        );
                        continue;
                    }
                }
                outcomes.extend(self.write_chunk(conn, &creds, (&batch, save), chunk).await);
            }
        }
        outcomes
    }

    /// One collections call for `chunk`. When the org's automation fails the
    /// whole call, or every record of it with one trigger or flow error (a
    /// governor limit is per transaction, and a call is one), the halves are
    /// sent apart, down to single records, before any client is blamed.
    fn write_chunk<'a>(
        &'a self,
        conn: &'a Connection,
        creds: &'a Credentials,
        (batch, save): (&'a Batch, SaveOptions),
        chunk: Vec<(Job, mapping::Lead)>,
    ) -> futures_util::future::BoxFuture<'a, Vec<(Job, Attempt)>> {
        Box::pin(async move {
            let budget = self.settings.lease / 2;
            let records = chunk.iter().map(|(_, l)| l.body.clone()).collect();
            let answer = tokio::time::timeout(
                budget,
                self.salesforce.collection(creds, batch, records, save),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Failure::transient(
                    codes::TIMEOUT,
                    "the collections call timed out",
                ))
            });
            let automation = match &answer {
                Err(f) => f.is_automation(),
                Ok(results) => {
                    let codes: BTreeSet<&str> = results
                        .iter()
                        .map(|r| r.as_ref().err().map_or("", |f| f.code()))
                        .collect();
                    codes.len() == 1
                        && results
                            .iter()
                            .all(|r| r.as_ref().is_err_and(Failure::is_automation))
                }
            };
            if automation && chunk.len() > 1 {
                let mut first = chunk;
                let second = first.split_off(first.len() / 2);
                tracing::info!(
                    connection = %conn.name,
                    records = first.len() + second.len(),
                    "the org's automation failed a whole call; sending it in halves"
                );
                let mut out = self.write_chunk(conn, creds, (batch, save), first).await;
                out.extend(self.write_chunk(conn, creds, (batch, save), second).await);
                return out;
            }
            let mut outcomes = Vec::with_capacity(chunk.len());
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
                            Err(Failure::Converted { message }) => Attempt::Converted { message },
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
            outcomes
        })
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
                    code: codes::CONFIGURATION.into(),
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
            on_duplicate: conn.on_duplicate,
            adopted: false,
            asked_alone: false,
            sent: Map::new(),
        };
        if plan::create_may_be_lost(client, st.upsert_field.is_some()) {
            match self.find_lost_create(conn, &creds, client, m, &st).await {
                Ok(Some(id)) => {
                    st.notes.push(format!(
                        "found the Lead {id} that an earlier create made (its answer never came); it is updated, not created again"
                    ));
                    st.lead_id = Some(id);
                    st.adopted = true;
                }
                Ok(None) => {}
                Err(f) => return Attempt::Failed(f),
            }
        }
        if let Some(f) = first {
            // The body the collections call carried: rendered as the batch did.
            let (form, _) = choose(st.upsert_field, st.lead_id.as_deref(), st.company_sent);
            let refused = st.describe.refused.snapshot();
            let target = target(conn, &st.describe, &st.exclude, &refused);
            st.sent = mapping::lead(form, m, &target).body;
            if let Some(done) = self.mend(&creds, &mut st, f).await {
                return done;
            }
        }
        for _ in 0..MAX_ROUNDS {
            let (form, call) = match (st.adopted, st.lead_id.as_deref()) {
                // An adopted Lead is updated by Id, even where writes are upserts.
                (true, Some(id)) => (Form::Update, Call::Update { id }),
                _ => choose(st.upsert_field, st.lead_id.as_deref(), st.company_sent),
            };
            if form == Form::Update && m.delta.is_empty() {
                return Attempt::NothingToSend;
            }
            let save = save_options(conn, form);
            let refused = st.describe.refused.snapshot();
            let target = target(conn, &st.describe, &st.exclude, &refused);
            let mut lead = mapping::lead(form, m, &target);
            st.sent = lead.body.clone();
            if let (true, Some(field)) = (st.adopted, st.upsert_field) {
                // From now on the adopted Lead is found by its external id.
                let id = Value::String(client.client_id.to_string());
                lead.body.insert(field.to_string(), id);
            }
            let result = match call {
                Call::Upsert { field } => {
                    let body = without(&lead.body, field);
                    self.salesforce
                        .upsert(&creds, field, &client.client_id, &body, save)
                        .await
                }
                Call::Update { id } => self.salesforce.update(&creds, id, &lead.body, save).await,
                Call::Create => match self
                    .mark_creates_sent(conn, std::slice::from_ref(&client.client_id))
                    .await
                {
                    Ok(()) => self.salesforce.create(&creds, &lead.body, save).await,
                    Err(f) => Err(f),
                },
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
            code: codes::TOO_MANY_REJECTIONS.into(),
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
                if let Err(f) = self.follow_merge(creds, st).await {
                    return Some(Attempt::Failed(f));
                }
                if st.lead_id.is_none() {
                    st.notes.push(
                        "the Lead had been deleted in Salesforce; it was created again".into(),
                    );
                }
            }
            Failure::Permanent { code, .. }
                if code == codes::REQUIRED_FIELD_MISSING
                    && st.upsert_field.is_some()
                    && st.company_sent =>
            {
                // An upsert by external id found no Lead: merged away, or
                // deleted (then the whole record is sent).
                if st.lead_id.is_some() && !st.adopted {
                    if let Err(f) = self.follow_merge(creds, st).await {
                        return Some(Attempt::Failed(f));
                    }
                }
                if !st.adopted {
                    st.notes
                        .push("the Lead was missing in Salesforce; it was created again".into());
                    st.company_sent = false;
                    st.lead_id = None;
                }
            }
            Failure::Converted { message } => return Some(Attempt::Converted { message }),
            Failure::Duplicates {
                matches,
                allow_save,
                rule,
                message,
            } => {
                if matches.is_empty() && !st.asked_alone {
                    // A collections result does not name the matches: ask alone.
                    st.asked_alone = true;
                    return None;
                }
                // The form just sent: a create, unless the Lead is known.
                let creating = !st.adopted
                    && match st.upsert_field {
                        Some(_) => !st.company_sent,
                        None => st.lead_id.is_none(),
                    };
                if let ([id], true, DuplicatePolicy::Adopt) =
                    (matches.as_slice(), creating, st.on_duplicate)
                {
                    st.notes.push(format!(
                        "adopted the existing Lead {id}, which the org's duplicate rule matched"
                    ));
                    st.lead_id = Some(id.clone());
                    st.adopted = true;
                    return None;
                }
                let rule = rule.map(|r| format!(" by {r}")).unwrap_or_default();
                let kind = match allow_save {
                    Some(false) => "blocked",
                    _ => "reported",
                };
                let ids = if matches.is_empty() {
                    "not named".to_string()
                } else {
                    matches.join(", ")
                };
                return Some(Attempt::Failed(Failure::Permanent {
                    code: codes::DUPLICATES_DETECTED.into(),
                    message: format!("{message} ({kind}{rule}; matched Leads: {ids})"),
                }));
            }
            Failure::RejectedFields {
                fields,
                code,
                message,
            } => {
                if fields.iter().any(|f| f == "LastName" || f == "Company") {
                    return Some(Attempt::Failed(Failure::Permanent { code, message }));
                }
                // A value the org does not have (a country, state or picklist
                // value) is refused for every client: remember it, so no
                // other write spends a call on it, and render again.
                let refused = st.describe.refused.snapshot();
                let mut remembered = Vec::new();
                let mut fresh = Vec::new();
                for f in fields {
                    let sent = st.sent.get(&f).and_then(Value::as_str).map(str::to_string);
                    match sent {
                        Some(v)
                            if REFUSED_FOR_ALL.contains(&code.as_str())
                                && !refused.contains(&(f.clone(), Some(v.clone()))) =>
                        {
                            st.describe.refused.add(&f, Some(&v));
                            remembered.push(f);
                        }
                        _ if !st.exclude.contains(&f) => fresh.push(f),
                        _ => {}
                    }
                }
                if !remembered.is_empty() {
                    st.notes.push(format!(
                        "{} refused by the org: {code}: {message}",
                        remembered.join(", ")
                    ));
                }
                if fresh.is_empty() {
                    if remembered.is_empty() {
                        return Some(Attempt::Failed(Failure::Permanent { code, message }));
                    }
                    return None;
                }
                if code == codes::INVALID_FIELD_FOR_INSERT_UPDATE {
                    // The org will not take the field from this user at all.
                    for f in &fresh {
                        st.describe.refused.add(f, None);
                    }
                }
                if code == codes::INVALID_FIELD {
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

/// Where a body for `conn` goes, as describe and earlier refusals say.
fn target<'a>(
    conn: &'a Connection,
    describe: &'a LeadDescribe,
    exclude: &'a BTreeSet<String>,
    refused: &'a crate::salesforce::Refused,
) -> Target<'a> {
    Target {
        company: conn.company.as_deref(),
        mapping: &conn.field_mapping,
        fields: Some(&describe.fields),
        picklists: describe.picklists.as_ref(),
        exclude,
        refused,
    }
}

/// The store failed in the middle of a write: the client is tried again.
fn store_failure(e: crate::store::StoreError) -> Failure {
    tracing::warn!(error = %e, "the store could not be read or written during a write");
    Failure::transient(
        codes::STORE_UNAVAILABLE,
        "the database could not be read or written",
    )
}

/// Refusals of a value that any client would meet: the org has no such
/// country, state or picklist value.
const REFUSED_FOR_ALL: [&str; 2] = [
    codes::FIELD_INTEGRITY_EXCEPTION,
    codes::INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST,
];

impl Worker {
    /// A create whose answer was lost may have made the Lead: look for one
    /// this connection's user created since the first failed attempt began
    /// (a call lasts at most half the lease), with the LastName, Email and
    /// Company that create carried, that no other client holds. One API call.
    async fn find_lost_create(
        &self,
        conn: &Connection,
        creds: &Credentials,
        client: &ClientRecord,
        m: &Merge,
        st: &Mending<'_>,
    ) -> Result<Option<String>, Failure> {
        let refused = st.describe.refused.snapshot();
        let body = mapping::lead(
            Form::Create,
            m,
            &target(conn, &st.describe, &st.exclude, &refused),
        )
        .body;
        let value = |f: &str| body.get(f).and_then(Value::as_str);
        let matching: Vec<(&str, Option<&str>)> = ["LastName", "Email", "Company"]
            .into_iter()
            .map(|f| (f, value(f)))
            .collect();
        // The mark is set before the call; allow for the clocks' skew.
        let began = client.create_sent_at.unwrap_or_else(|| self.clock.now());
        let slack = chrono::Duration::seconds(60);
        let found = self
            .salesforce
            .created_since(creds, began - slack, &matching)
            .await?;
        for id in found {
            let holder = self
                .store
                .lead_holder(&conn.id, &id)
                .await
                .map_err(store_failure)?;
            if holder.is_none() {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Records that creates of these clients' Leads go out now, before they do.
    async fn mark_creates_sent(&self, conn: &Connection, ids: &[ClientId]) -> Result<(), Failure> {
        self.store
            .mark_creates_sent(&conn.id, ids, self.clock.now())
            .await
            .map_err(store_failure)
    }

    /// The known Lead is gone: if a user merged it, the client follows it to
    /// the surviving Lead (found with `queryAll`); if it was deleted, the
    /// client forgets it, to be created again.
    async fn follow_merge(&self, creds: &Credentials, st: &mut Mending<'_>) -> Result<(), Failure> {
        let Some(old) = st.lead_id.clone() else {
            return Ok(());
        };
        match self.salesforce.merged_into(creds, &old).await? {
            Some(master) if master != old => {
                st.notes.push(format!(
                    "the Lead {old} was merged into {master} in Salesforce; updates go there now"
                ));
                st.lead_id = Some(master);
                st.adopted = true;
            }
            _ => {
                st.lead_id = None;
                st.adopted = false;
            }
        }
        Ok(())
    }
}

/// What the single-record path has learned about a record so far.
struct Mending<'a> {
    upsert_field: Option<&'a str>,
    exclude: BTreeSet<String>,
    notes: Vec<String>,
    lead_id: Option<String>,
    company_sent: bool,
    describe: Arc<LeadDescribe>,
    on_duplicate: DuplicatePolicy,
    /// The client was linked to another Lead than its own: one the duplicate
    /// rule matched, or the one its Lead was merged into. It is updated by Id.
    adopted: bool,
    /// A duplicate answer without its matches was asked again alone.
    asked_alone: bool,
    /// The body last sent (or, before the first send, the batch's).
    sent: Map<String, Value>,
}

/// The body without `field` (an upsert's body must not carry its key).
fn without(body: &Map<String, Value>, field: &str) -> Map<String, Value> {
    let mut b = body.clone();
    b.remove(field);
    b
}
