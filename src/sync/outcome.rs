//! What an attempt did to a client's record: a pure function of the record,
//! the attempt, the retry policy and the time. No I/O, no clock.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::retry::RetryPolicy;
use crate::domain::{ClientRecord, ClientState, ClientUpdate, NextAttempt, SyncError};
use crate::mapping::Known;
use crate::salesforce::errors::codes;
use crate::salesforce::Failure;

/// What one write attempt came to.
#[derive(Debug, Clone)]
pub enum Attempt {
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

/// The rules an outcome follows besides the attempt itself.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub retry: RetryPolicy,
    /// How long deferred (non-urgent) work waits while the budget is spent.
    pub defer_for: Duration,
}

/// The client's new record after `attempt`. `merged` is what the client's
/// data is once the events `read` (by seq) are applied; `jitter` is a draw in
/// [0, 1) for the retry delay.
pub fn outcome(
    client: &ClientRecord,
    attempt: Attempt,
    merged: &Known,
    read: &[i64],
    rules: Rules,
    now: DateTime<Utc>,
    jitter: f64,
) -> ClientUpdate {
    let merged = serde_json::to_string(merged).expect("Known serializes");
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
        // Kept unless Salesforce answered: Deferred and NothingToSend made no call.
        create_unconfirmed: true,
        processed: Vec::new(),
    };
    match attempt {
        Attempt::Deferred => {
            u.next = NextAttempt::At(now + rules.defer_for);
        }
        Attempt::Written { lead_id, warnings } => {
            u.state = ClientState::Synced;
            u.lead_id = Some(lead_id);
            u.attempts = 0;
            u.first_failure_at = None;
            u.last_error = None;
            u.last_synced_at = Some(now);
            u.warnings = warnings;
            u.known = merged;
            u.company_sent = true;
            u.create_unconfirmed = false;
            u.processed = read.to_vec();
        }
        Attempt::NothingToSend => {
            if client.lead_id.is_some() {
                u.state = ClientState::Synced;
            }
            u.known = merged;
            u.processed = read.to_vec();
        }
        Attempt::Converted { message } => {
            u.state = ClientState::Converted;
            u.create_unconfirmed = false;
            u.last_error = Some(SyncError {
                code: codes::CANNOT_UPDATE_CONVERTED_LEAD.into(),
                message,
            });
            u.processed = read.to_vec();
        }
        Attempt::Failed(failure) => {
            u.attempts = client.attempts + 1;
            u.create_unconfirmed = ANSWER_MAY_BE_LOST.contains(&failure.code());
            let since = *u.first_failure_at.get_or_insert(now);
            let failing_for = (now - since).to_std().unwrap_or_default();
            let permanent = matches!(failure, Failure::Permanent { .. });
            if permanent || rules.retry.exhausted(failing_for) {
                u.state = ClientState::Dead;
                u.next = NextAttempt::Never;
            } else {
                u.state = ClientState::Retrying;
                u.next = NextAttempt::At(now + rules.retry.delay(u.attempts, jitter));
            }
            u.last_error = Some(SyncError {
                code: failure.code().to_string(),
                message: failure.message(),
            });
        }
    }
    u
}

/// Failures after which a call may have been carried out unheard: it timed
/// out or its connection broke, perhaps after Salesforce committed.
const ANSWER_MAY_BE_LOST: [&str; 2] = [codes::TIMEOUT, codes::CONNECTION_ERROR];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientId, ConnectionId};

    fn rules() -> Rules {
        Rules {
            retry: RetryPolicy::default(),
            defer_for: Duration::from_secs(900),
        }
    }

    fn client(state: ClientState) -> ClientRecord {
        ClientRecord {
            connection_id: ConnectionId::from_stored("c".into()),
            client_id: ClientId::from_stored("1".into()),
            state,
            lead_id: Some("00Q1".into()),
            attempts: 0,
            first_failure_at: None,
            next_attempt_at: None,
            last_error: None,
            last_synced_at: None,
            warnings: vec![],
            known: "{}".into(),
            company_sent: true,
            pending_events: 1,
            create_sent_at: None,
        }
    }

    #[test]
    fn the_create_mark_stays_only_while_an_answer_may_have_been_lost() {
        let c = client(ClientState::Pending);
        let mark = |attempt: Attempt| {
            outcome(&c, attempt, &Known::default(), &[1], rules(), now(), 0.5).create_unconfirmed
        };
        assert!(mark(Attempt::Failed(Failure::transient("TIMEOUT", "t"))));
        assert!(mark(Attempt::Failed(Failure::transient(
            "CONNECTION_ERROR",
            "c"
        ))));
        assert!(mark(Attempt::Deferred), "no call made: kept as it is");
        assert!(
            !mark(transient()),
            "Salesforce answered: nothing was created"
        );
        assert!(!mark(Attempt::Written {
            lead_id: "00Q2".into(),
            warnings: vec![]
        }));
        assert!(!mark(Attempt::Converted {
            message: "c".into()
        }));
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn transient() -> Attempt {
        Attempt::Failed(Failure::transient("UNABLE_TO_LOCK_ROW", "locked"))
    }

    #[test]
    fn a_write_syncs_the_client_and_marks_every_event_read_done() {
        let mut c = client(ClientState::Retrying);
        c.attempts = 3;
        c.first_failure_at = Some(now());
        let attempt = Attempt::Written {
            lead_id: "00Q2".into(),
            warnings: vec!["Email not sent".into()],
        };
        let u = outcome(&c, attempt, &Known::default(), &[4, 7], rules(), now(), 0.5);
        assert_eq!(u.state, ClientState::Synced);
        assert_eq!(u.lead_id.as_deref(), Some("00Q2"));
        assert_eq!((u.attempts, u.first_failure_at), (0, None));
        assert_eq!(u.processed, [4, 7]);
        assert_eq!(u.last_synced_at, Some(now()));
        assert_eq!(u.warnings, ["Email not sent"]);
        assert!(u.company_sent);
        assert_eq!(u.next, NextAttempt::IfEventsPending);
    }

    #[test]
    fn a_transient_failure_retries_with_backoff_and_keeps_the_events() {
        let u = outcome(
            &client(ClientState::Pending),
            transient(),
            &Known::default(),
            &[1],
            rules(),
            now(),
            0.5,
        );
        assert_eq!(u.state, ClientState::Retrying);
        assert_eq!(u.attempts, 1);
        assert_eq!(u.first_failure_at, Some(now()));
        // Full jitter over the first ceiling (1 s): half of it.
        assert_eq!(
            u.next,
            NextAttempt::At(now() + chrono::Duration::milliseconds(500))
        );
        assert!(
            u.processed.is_empty(),
            "nothing is done until Salesforce confirms it"
        );
        assert_eq!(u.last_error.unwrap().code, "UNABLE_TO_LOCK_ROW");
    }

    #[test]
    fn transient_failures_give_up_after_72_hours_of_failing() {
        let mut c = client(ClientState::Retrying);
        c.attempts = 40;
        c.first_failure_at = Some(now() - chrono::Duration::hours(72));
        let u = outcome(
            &c,
            transient(),
            &Known::default(),
            &[1],
            rules(),
            now(),
            0.5,
        );
        assert_eq!((u.state, u.next), (ClientState::Dead, NextAttempt::Never));
        assert_eq!(u.attempts, 41);
        c.first_failure_at = Some(now() - chrono::Duration::hours(71));
        let u = outcome(
            &c,
            transient(),
            &Known::default(),
            &[1],
            rules(),
            now(),
            0.5,
        );
        assert_eq!(u.state, ClientState::Retrying);
    }

    #[test]
    fn a_permanent_failure_is_dead_at_once_with_salesforces_error() {
        let f = Failure::Permanent {
            code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
            message: "Phone required".into(),
        };
        let u = outcome(
            &client(ClientState::Pending),
            Attempt::Failed(f),
            &Known::default(),
            &[1],
            rules(),
            now(),
            0.5,
        );
        assert_eq!((u.state, u.next), (ClientState::Dead, NextAttempt::Never));
        let e = u.last_error.unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Phone required")
        );
    }

    #[test]
    fn a_converted_lead_stops_updates_and_its_events_are_done() {
        let u = outcome(
            &client(ClientState::Synced),
            Attempt::Converted {
                message: "converted".into(),
            },
            &Known::default(),
            &[9],
            rules(),
            now(),
            0.5,
        );
        assert_eq!(u.state, ClientState::Converted);
        assert_eq!(u.processed, [9]);
        assert_eq!(u.last_error.unwrap().code, "CANNOT_UPDATE_CONVERTED_LEAD");
    }

    #[test]
    fn deferred_work_waits_the_pause_and_changes_nothing_else() {
        let c = client(ClientState::Pending);
        let u = outcome(
            &c,
            Attempt::Deferred,
            &Known::default(),
            &[1],
            rules(),
            now(),
            0.5,
        );
        assert_eq!(u.state, ClientState::Pending);
        assert_eq!(
            u.next,
            NextAttempt::At(now() + chrono::Duration::seconds(900))
        );
        assert!(u.processed.is_empty());
        assert_eq!(u.known, c.known);
    }

    #[test]
    fn nothing_to_send_marks_events_done_and_a_known_lead_synced() {
        let u = outcome(
            &client(ClientState::Pending),
            Attempt::NothingToSend,
            &Known::default(),
            &[2, 3],
            rules(),
            now(),
            0.5,
        );
        assert_eq!(u.state, ClientState::Synced);
        assert_eq!(u.processed, [2, 3]);
        let mut fresh = client(ClientState::Pending);
        fresh.lead_id = None;
        let u = outcome(
            &fresh,
            Attempt::NothingToSend,
            &Known::default(),
            &[2],
            rules(),
            now(),
            0.5,
        );
        assert_eq!(u.state, ClientState::Pending, "no Lead yet: not synced");
    }
}
