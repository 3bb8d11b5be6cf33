//! Before a write: load the claimed clients with their pending events, merge
//! each client's events, and choose the form and the call.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::outcome::Attempt;
use crate::domain::{ClientId, ClientRecord, ClientState, Connection, DuplicatePolicy};
use crate::mapping::{self, Form, Known, Merge, Pending};
use crate::salesforce::{Batch, SaveOptions};
use crate::store::{Claim, Store, StoreError, StoredEvent};
use crate::webhook::{event, Parsed};

/// A claimed client with its merged pending events.
pub(super) struct Job {
    pub claim: Claim,
    pub client: ClientRecord,
    /// The events read (by seq): the ones an outcome marks done.
    pub read: Vec<i64>,
    pub merge: Merge,
    /// Whether any of its pending events is urgent (a webhook).
    pub urgent: bool,
    /// When each event read was received, and whether it came by webhook.
    pub received: Vec<(DateTime<Utc>, bool)>,
}

/// Which Salesforce call writes a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call<'a> {
    /// `PATCH sobjects/Lead/{field}/{clientId}` (or its collections form).
    Upsert { field: &'a str },
    /// `PATCH sobjects/Lead/{id}`.
    Update { id: &'a str },
    /// `POST sobjects/Lead/`.
    Create,
}

impl Call<'_> {
    /// The collections call of the same kind.
    pub fn batch(self) -> Batch {
        match self {
            Call::Upsert { field } => Batch::Upsert(field.to_string()),
            Call::Update { .. } => Batch::Update,
            Call::Create => Batch::Create,
        }
    }
}

/// The form and the call of a client's next write, for single and batched
/// writes alike. With an external id every write is an upsert, and Company
/// goes with the first one the service makes (`company_sent` false);
/// without one, a known Lead Id is updated and an unknown one created.
pub(super) fn choose<'a>(
    upsert_field: Option<&'a str>,
    lead_id: Option<&'a str>,
    company_sent: bool,
) -> (Form, Call<'a>) {
    match (upsert_field, lead_id) {
        (Some(field), _) if company_sent => (Form::Update, Call::Upsert { field }),
        (Some(field), _) => (Form::Create, Call::Upsert { field }),
        (None, Some(id)) => (Form::Update, Call::Update { id }),
        (None, None) => (Form::Create, Call::Create),
    }
}

/// The request headers of a write in `form`: the first create runs the
/// assignment rule if the connection says so, and passes an alert duplicate
/// rule only when the connection creates anyway; later writes never reassign
/// and are not held up by an alert rule.
pub(super) fn save_options(conn: &Connection, form: Form) -> SaveOptions {
    match form {
        Form::Create => SaveOptions {
            assign: conn.assign_on_create,
            allow_duplicates: conn.on_duplicate == DuplicatePolicy::Create,
        },
        Form::Update => SaveOptions::UPDATE,
    }
}

/// Whether a create of the client's Lead (no Lead Id, no external id to
/// upsert by) was sent and never answered: its answer was lost, or the
/// process stopped during the call. The Lead may exist.
pub(super) fn create_may_be_lost(client: &ClientRecord, upserts: bool) -> bool {
    !upserts && client.lead_id.is_none() && client.create_sent_at.is_some()
}

impl Job {
    /// The outcome when no call is needed: a converted Lead, or nothing that
    /// differs from what was last written (no wasted write).
    pub fn settled(&self, upserts: bool) -> Option<Attempt> {
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

/// Loads the claimed clients and their pending events (two queries), and
/// merges each client's events.
pub(super) async fn prepare(
    store: &Store,
    conn: &Connection,
    claims: Vec<Claim>,
) -> Result<Vec<Job>, StoreError> {
    let ids: Vec<ClientId> = claims.iter().map(|c| c.client_id.clone()).collect();
    let mut clients: HashMap<ClientId, ClientRecord> = store
        .clients_by_id(&conn.id, &ids)
        .await?
        .into_iter()
        .map(|c| (c.client_id.clone(), c))
        .collect();
    let mut events: HashMap<ClientId, Vec<StoredEvent>> = HashMap::new();
    for e in store.events_of_clients(&conn.id, &ids).await? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_and_call_follow_the_identity_rules() {
        assert_eq!(
            choose(Some("B2C_Id__c"), None, false),
            (Form::Create, Call::Upsert { field: "B2C_Id__c" })
        );
        assert_eq!(
            choose(Some("B2C_Id__c"), Some("00Q1"), true),
            (Form::Update, Call::Upsert { field: "B2C_Id__c" })
        );
        assert_eq!(
            choose(None, Some("00Q1"), true),
            (Form::Update, Call::Update { id: "00Q1" })
        );
        assert_eq!(choose(None, None, false), (Form::Create, Call::Create));
        assert_eq!(
            choose(None, None, true),
            (Form::Create, Call::Create),
            "a Lead forgotten after deletion is created again, Company and all"
        );
    }
}
