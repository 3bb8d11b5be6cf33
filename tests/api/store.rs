//! The store's claim, lease and bookkeeping rules and its webhook
//! committer, on the suite's backend (SQLite, or PostgreSQL in that suite).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use leadbridge::domain::{
    ClientId, ClientState, ClientUpdate, Connection, ConnectionId, ConnectionName, NextAttempt,
};
use leadbridge::store::{Claim, Inserted, NewEvent, Store, WebhookSecretRecord};

pub(crate) fn cid(s: &str) -> ClientId {
    ClientId::from_stored(s.to_string())
}

use crate::backend::TestDb;

pub(crate) async fn connection(
    store: &Store,
    name: &str,
    enabled: bool,
    now: DateTime<Utc>,
) -> ConnectionId {
    let id = ConnectionId::generate();
    let mut c = Connection::new(id.clone(), ConnectionName::parse(name).unwrap(), now);
    c.enabled = enabled;
    let secret = WebhookSecretRecord {
        id: uuid::Uuid::new_v4().to_string(),
        connection_id: id.clone(),
        sealed: "v1:sealed".into(),
        created_at: now,
        expires_at: None,
    };
    store.insert_connection(&c, &secret).await.unwrap();
    id
}

pub(crate) async fn event(
    store: &Store,
    conn: &ConnectionId,
    client: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Inserted {
    store
        .insert_event(&NewEvent {
            id: uuid::Uuid::new_v4().to_string(),
            connection_id: conn.clone(),
            idempotency_key: key.into(),
            client_id: cid(client),
            event_type: "client.updated".into(),
            occurred_at: now,
            received_at: now,
            payload: format!(r#"{{"type":"client.updated","data":{{"clientId":"{client}"}}}}"#),
            urgent: true,
            job_id: None,
            signed_digest: None,
        })
        .await
        .unwrap()
}

pub(crate) fn synced(processed: Vec<i64>) -> ClientUpdate {
    ClientUpdate {
        state: ClientState::Synced,
        lead_id: Some("00Q1".into()),
        attempts: 0,
        first_failure_at: None,
        next: NextAttempt::IfEventsPending,
        last_error: None,
        last_synced_at: None,
        warnings: vec![],
        known: "{}".into(),
        company_sent: true,
        create_unconfirmed: false,
        processed,
    }
}

pub(crate) async fn setup() -> (TestDb, Arc<Store>, DateTime<Utc>) {
    let db = TestDb::new().await;
    let store = db.open().await;
    (db, store, Utc::now())
}

#[tokio::test]
async fn two_workers_claiming_at_once_never_get_the_same_client() {
    let (_db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    for i in 0..200 {
        event(
            store.as_ref(),
            &conn,
            &format!("c{i}"),
            &format!("k{i}"),
            now,
        )
        .await;
    }
    let lease = now + Duration::minutes(5);
    let claim_all = |owner: &'static str| {
        let store = store.clone();
        async move {
            let mut got = Vec::new();
            loop {
                let batch = store.claim_due(now, owner, lease, 7).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|c| c.client_id));
            }
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(claim_all("a")), tokio::spawn(claim_all("b")));
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: HashSet<&ClientId> = a.iter().chain(&b).collect();
    assert_eq!(a.len() + b.len(), 200, "every client claimed once");
    assert_eq!(all.len(), 200, "no client claimed twice");
}

#[tokio::test]
async fn a_leased_client_returns_only_when_its_lease_ends_and_the_old_owner_cannot_finish() {
    let (_db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    event(store.as_ref(), &conn, "c1", "k1", now).await;
    let first = store
        .claim_due(now, "a", now + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let later = now + Duration::seconds(29);
    assert!(store
        .claim_due(later, "b", later + Duration::seconds(30), 10)
        .await
        .unwrap()
        .is_empty());
    let after = now + Duration::seconds(31);
    let taken = store
        .claim_due(after, "b", after + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(taken, first, "the expired lease was taken over");
    let events = store.client_events(&conn, &cid("c1")).await.unwrap();
    let seqs = events.iter().map(|e| e.seq).collect();
    assert!(
        !store
            .finish_client(&first[0], "a", &synced(seqs), after)
            .await
            .unwrap(),
        "a lost its lease"
    );
    assert_eq!(
        store.client_events(&conn, &cid("c1")).await.unwrap().len(),
        1,
        "nothing was marked done"
    );
}

#[tokio::test]
async fn finishing_a_batch_answers_once_per_client_even_when_a_lease_was_lost() {
    let (_db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    for c in ["c1", "c2", "c3"] {
        event(store.as_ref(), &conn, c, c, now).await;
    }
    let mut claims = store
        .claim_due(now, "a", now + Duration::seconds(30), 10)
        .await
        .unwrap();
    claims.sort_by(|x, y| x.client_id.cmp(&y.client_id));
    assert_eq!(claims.len(), 3);
    // a gives c2 back and worker b takes it.
    let c2 = claims[1].clone();
    store.release_client(&c2, "a", None).await.unwrap();
    let b_has = store
        .claim_due(now, "b", now + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(b_has, vec![c2]);

    let items: Vec<(Claim, ClientUpdate)> =
        claims.iter().map(|c| (c.clone(), synced(vec![]))).collect();
    let answers = store.finish_clients(&items, "a", now).await.unwrap();
    assert_eq!(
        answers,
        vec![true, false, true],
        "one answer per item, in order: c2's lease is b's"
    );
}

#[tokio::test]
async fn a_batch_outcome_the_database_refuses_is_recorded_client_by_client() {
    let (db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    for c in ["c1", "c2", "c3"] {
        event(store.as_ref(), &conn, c, c, now).await;
    }
    let mut claims = store
        .claim_due(now, "a", now + Duration::seconds(30), 10)
        .await
        .unwrap();
    claims.sort_by(|x, y| x.client_id.cmp(&y.client_id));
    // c2's error holds a NUL: PostgreSQL refuses the text, SQLite keeps it.
    let items: Vec<(Claim, ClientUpdate)> = claims
        .iter()
        .map(|c| {
            let mut u = synced(vec![]);
            if c.client_id == "c2" {
                u.state = ClientState::Dead;
                u.last_error = Some(leadbridge::domain::SyncError {
                    code: "X".into(),
                    message: "bad\u{0}text".into(),
                });
            }
            (c.clone(), u)
        })
        .collect();
    let answers = store.finish_clients(&items, "a", now).await.unwrap();
    assert_eq!(
        answers,
        vec![true, !db.is_postgres(), true],
        "one refused row holds back no other"
    );
    for c in ["c1", "c3"] {
        let client = store.client(&conn, &cid(c)).await.unwrap().unwrap();
        assert_eq!(client.state, ClientState::Synced, "{c}");
    }
}

#[tokio::test]
async fn finishing_marks_only_the_events_read_and_a_later_one_keeps_the_client_due() {
    let (_db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    event(store.as_ref(), &conn, "c1", "k1", now).await;
    let claim = store
        .claim_due(now, "a", now + Duration::minutes(5), 10)
        .await
        .unwrap()
        .remove(0);
    let read: Vec<i64> = store
        .client_events(&conn, &cid("c1"))
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    // Arrives while the write is in flight.
    event(store.as_ref(), &conn, "c1", "k2", now).await;
    assert!(store
        .finish_client(&claim, "a", &synced(read), now)
        .await
        .unwrap());
    let left = store.client_events(&conn, &cid("c1")).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].idempotency_key, "k2");
    let again = store
        .claim_due(now, "a", now + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(
        again,
        vec![Claim {
            connection_id: conn.clone(),
            client_id: cid("c1")
        }]
    );
    let client = store.client(&conn, &cid("c1")).await.unwrap().unwrap();
    assert_eq!(client.pending_events, 1);
}

#[tokio::test]
async fn disabled_and_paused_connections_are_not_claimed() {
    let (_db, store, now) = setup().await;
    let off = connection(store.as_ref(), "off", false, now).await;
    let paused = connection(store.as_ref(), "paused", true, now).await;
    event(store.as_ref(), &off, "c1", "k1", now).await;
    event(store.as_ref(), &paused, "c1", "k1", now).await;
    store
        .pause_connection(&paused, now + Duration::minutes(15), "daily limit")
        .await
        .unwrap();
    assert!(store
        .claim_due(now, "a", now + Duration::minutes(5), 10)
        .await
        .unwrap()
        .is_empty());
    let later = now + Duration::minutes(16);
    let claims = store
        .claim_due(later, "a", later + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(
        claims,
        vec![Claim {
            connection_id: paused,
            client_id: cid("c1")
        }]
    );
}

#[tokio::test]
async fn a_new_event_revives_a_dead_client_and_leaves_a_retrying_ones_backoff() {
    let (_db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    event(store.as_ref(), &conn, "dead", "dead-1", now).await;
    event(store.as_ref(), &conn, "retrying", "retrying-1", now).await;
    for claim in store
        .claim_due(now, "a", now + Duration::minutes(5), 10)
        .await
        .unwrap()
    {
        let (state, next) = match claim.client_id.as_str() {
            "dead" => (ClientState::Dead, NextAttempt::Never),
            _ => (
                ClientState::Retrying,
                NextAttempt::At(now + Duration::hours(1)),
            ),
        };
        let update = ClientUpdate {
            state,
            attempts: 3,
            next,
            lead_id: None,
            ..synced(vec![])
        };
        assert!(store
            .finish_client(&claim, "a", &update, now)
            .await
            .unwrap());
    }
    event(store.as_ref(), &conn, "dead", "dead-2", now).await;
    event(store.as_ref(), &conn, "retrying", "retrying-2", now).await;
    let claims = store
        .claim_due(now, "a", now + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].client_id, "dead");
    let revived = store.client(&conn, &cid("dead")).await.unwrap().unwrap();
    assert_eq!((revived.state, revived.attempts), (ClientState::Pending, 0));
    let retrying = store
        .client(&conn, &cid("retrying"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retrying.state, ClientState::Retrying);
    assert_eq!(
        retrying.next_attempt_at.unwrap().timestamp(),
        (now + Duration::hours(1)).timestamp()
    );
}

#[tokio::test]
async fn idempotency_keys_are_unique_per_connection() {
    let (_db, store, now) = setup().await;
    let a = connection(store.as_ref(), "a", true, now).await;
    let b = connection(store.as_ref(), "b", true, now).await;
    assert_eq!(
        event(store.as_ref(), &a, "c1", "same", now).await,
        Inserted::Accepted
    );
    assert!(matches!(
        event(store.as_ref(), &a, "c2", "same", now).await,
        Inserted::Duplicate { .. }
    ));
    assert_eq!(
        event(store.as_ref(), &b, "c1", "same", now).await,
        Inserted::Accepted
    );
}

#[tokio::test]
async fn a_batch_of_events_commits_together_and_dedupes_within_itself() {
    let (_db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    let ev = |key: &str, client: &str| NewEvent {
        id: uuid::Uuid::new_v4().to_string(),
        connection_id: conn.clone(),
        idempotency_key: key.into(),
        client_id: cid(client),
        event_type: "client.updated".into(),
        occurred_at: now,
        received_at: now,
        payload: "{}".into(),
        urgent: true,
        job_id: None,
        signed_digest: None,
    };
    let batch = [ev("k1", "c1"), ev("k2", "c2"), ev("k1", "c1")];
    let answers = store.insert_events(&batch).await.unwrap();
    assert_eq!(answers[0], Inserted::Accepted);
    assert_eq!(answers[1], Inserted::Accepted);
    assert_eq!(
        answers[2],
        Inserted::Duplicate {
            event_id: batch[0].id.clone()
        }
    );
    assert_eq!(store.pending_events(&conn).await.unwrap().len(), 2);
    assert_eq!(
        store
            .claim_due(now, "a", now + Duration::minutes(1), 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// A client is made due once per batch, urgent when any of its stored
/// events is: here a webhook beside its own older backfill row comes before
/// another client's still older backfill row.
#[tokio::test]
async fn a_client_with_any_urgent_event_in_a_batch_is_due_as_urgent() {
    let (_db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    let ev = |key: &str, client: &str, urgent: bool, ago: i64| NewEvent {
        received_at: now - Duration::minutes(ago),
        urgent,
        ..new_event(&conn, client, key, now)
    };
    let batch = [
        ev("b1", "older", false, 10),
        ev("b2", "mixed", false, 5),
        ev("w1", "mixed", true, 0),
    ];
    let answers = store.insert_events(&batch).await.unwrap();
    assert!(
        answers.iter().all(|a| *a == Inserted::Accepted),
        "{answers:?}"
    );
    let lease = now + Duration::minutes(1);
    let first = store.claim_due(now, "w1", lease, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].client_id.as_str(), "mixed", "urgent first");
    let rest = store.claim_due(now, "w2", lease, 10).await.unwrap();
    let ids: Vec<&str> = rest.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(ids, ["older"], "each client due once");
}

#[tokio::test]
async fn every_connection_gets_a_share_of_a_claim_and_webhooks_come_before_backfill() {
    let (_db, store, now) = setup().await;
    let a = connection(store.as_ref(), "a", true, now).await;
    let b = connection(store.as_ref(), "b", true, now).await;
    let off = connection(store.as_ref(), "off", false, now).await;
    for (conn, client) in [(&a, "a1"), (&a, "a2"), (&b, "b1"), (&b, "b2"), (&off, "o1")] {
        event(store.as_ref(), conn, client, client, now).await;
    }
    // A backfill row, received earlier than every webhook above.
    let early = now - Duration::minutes(5);
    store
        .insert_event(&NewEvent {
            id: uuid::Uuid::new_v4().to_string(),
            connection_id: a.clone(),
            idempotency_key: "backfill:1".into(),
            client_id: cid("a0"),
            event_type: "backfill".into(),
            occurred_at: DateTime::UNIX_EPOCH,
            received_at: early,
            payload: r#"{"type":"client.updated","data":{"clientId":"a0"}}"#.into(),
            urgent: false,
            job_id: None,
            signed_digest: None,
        })
        .await
        .unwrap();
    let lease = now + Duration::minutes(1);
    let first = store.claim_due(now, "w1", lease, 3).await.unwrap();
    let conns: HashSet<&str> = first.iter().map(|c| c.connection_id.as_str()).collect();
    assert_eq!(conns, HashSet::from([a.as_str(), b.as_str()]), "{first:?}");
    assert!(
        first.iter().all(|c| c.client_id != "a0"),
        "webhooks first: {first:?}"
    );
    let rest = store.claim_due(now, "w2", lease, 10).await.unwrap();
    let ids: HashSet<&str> = rest.iter().map(|c| c.client_id.as_str()).collect();
    assert!(ids.contains("a0"), "{rest:?}");
    assert_eq!(
        first.len() + rest.len(),
        5,
        "the disabled connection's client waits"
    );
}

#[tokio::test]
async fn an_event_the_database_refuses_fails_alone_not_with_its_batch() {
    let (_db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    let ingest = leadbridge::ingest::Ingest::start(store.clone()).unwrap();
    let new =
        |conn: &ConnectionId, i: usize| new_event(conn, &format!("c{i}"), &format!("k{i}"), now);
    // A connection that does not exist breaks a foreign key on both backends.
    let ghost = ConnectionId::generate();
    // On this (single-threaded) runtime every insert is queued before the
    // committer task runs, so on Postgres they share one batch; SQLite's
    // committer thread takes what is waiting (a refused batch on SQLite:
    // the_sqlite_committer_stores_a_batch_as_the_pool_does).
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let ingest = ingest.clone();
            let event = if i == 15 {
                new(&ghost, i)
            } else {
                new(&conn, i)
            };
            tokio::spawn(async move { ingest.insert(event).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    for (i, answer) in answers.iter().enumerate() {
        if i == 15 {
            assert!(
                matches!(answer, Err(leadbridge::store::StoreError::Rejected(_))),
                "{answer:?}"
            );
        } else {
            assert!(matches!(answer, Ok(Inserted::Accepted)), "{i}: {answer:?}");
        }
    }
    assert_eq!(store.pending_events(&conn).await.unwrap().len(), 29);
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_database_and_its_wal_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    connection(store.as_ref(), "acme", true, Utc::now()).await;
    for suffix in ["", "-wal", "-shm"] {
        let path = db.dir().join(format!("test.db{suffix}"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
}

/// The webhook committer's own SQLite connection stores a batch exactly as
/// the pool's statements do: the same answers, events and due clients.
#[tokio::test]
async fn the_sqlite_committer_stores_a_batch_as_the_pool_does() {
    let now = Utc::now();
    let batch = |conn: &ConnectionId| {
        let ev = |client: &str, key: &str, urgent: bool| NewEvent {
            urgent,
            ..new_event(conn, client, key, now)
        };
        // Client b's events interleave with a's; k1 comes twice in the batch.
        vec![
            ev("b", "k1", false),
            ev("a", "k2", false),
            ev("b", "k1", true),
            ev("b", "k3", true),
            ev("a", "k4", false),
        ]
    };
    let mut seen = Vec::new();
    for committer in [false, true] {
        let db = TestDb::sqlite().await;
        let store = db.open().await;
        let conn = connection(store.as_ref(), "acme", true, now).await;
        let events = batch(&conn);
        let answers = if committer {
            let mut writer = store.sqlite_writer().expect("a file").unwrap();
            let answers = writer.insert_events(&events).unwrap();
            // A connection that does not exist breaks a foreign key: the
            // batch is refused as the data's fault, and nothing of it stays.
            let mut ghost = batch(&ConnectionId::generate());
            ghost[0].connection_id = conn.clone();
            ghost[0].idempotency_key = "k9".into();
            let refused = writer.insert_events(&ghost).unwrap_err();
            assert!(
                matches!(refused, leadbridge::store::StoreError::Rejected(_)),
                "{refused:?}"
            );
            answers
        } else {
            store.insert_events(&events).await.unwrap()
        };
        let first_k1 = events[0].id.clone();
        assert_eq!(
            answers,
            vec![
                Inserted::Accepted,
                Inserted::Accepted,
                Inserted::Duplicate { event_id: first_k1 },
                Inserted::Accepted,
                Inserted::Accepted,
            ],
            "committer: {committer}"
        );
        let keys = pending_keys(store.as_ref(), &conn).await;
        let mut clients = Vec::new();
        for c in [cid("a"), cid("b")] {
            let r = store.client(&conn, &c).await.unwrap().unwrap();
            clients.push(format!(
                "{:?} {:?} {}",
                r.state, r.next_attempt_at, r.pending_events
            ));
        }
        let due = store
            .claim_due(now, "w", now + Duration::seconds(30), 10)
            .await
            .unwrap()
            .len();
        seen.push((keys, clients, due));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0].0.len(), 4, "{:?}", seen[0]);
    assert_eq!(seen[0].2, 2);
}

/// A batch larger than one insert statement of the committer (16 rows), with
/// duplicates within a statement's rows, across two statements, of an event
/// stored by an earlier batch, and by a hex-scheme body's digest: the
/// committer answers and stores exactly what the pool does.
#[tokio::test]
async fn the_sqlite_committer_stores_a_batch_of_many_statements_as_the_pool_does() {
    let now = Utc::now();
    let mut seen = Vec::new();
    for committer in [false, true] {
        let db = TestDb::sqlite().await;
        let store = db.open().await;
        let conn = connection(store.as_ref(), "acme", true, now).await;
        let earlier = new_event(&conn, "c3", "stored-before", now);
        let digest = |e: NewEvent, d: &str| NewEvent {
            signed_digest: Some(d.into()),
            ..e
        };
        let earlier_digest = digest(new_event(&conn, "c4", "digest-before", now), "sha256:d1");
        // 40 events over 5 clients (the batch is written in client order).
        let mut events: Vec<NewEvent> = (0..40)
            .map(|i| new_event(&conn, &format!("c{}", i % 5), &format!("k{i}"), now))
            .collect();
        events[6].idempotency_key = "k1".into(); // c1 twice: the same statement
        events[37].idempotency_key = "k0".into(); // c2 and c0: another statement
        events[12].idempotency_key = "stored-before".into();
        events[21] = digest(events[21].clone(), "sha256:d1");
        let insert = |events: Vec<NewEvent>| {
            let store = store.clone();
            async move {
                if committer {
                    let mut writer = store.sqlite_writer().expect("a file").unwrap();
                    writer.insert_events(&events).unwrap()
                } else {
                    store.insert_events(&events).await.unwrap()
                }
            }
        };
        insert(vec![earlier.clone(), earlier_digest.clone()]).await;
        let answers = insert(events.clone()).await;
        let duplicates: Vec<(usize, String)> = answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a {
                Inserted::Duplicate { event_id } => Some((i, event_id.clone())),
                Inserted::Accepted => None,
            })
            .collect();
        assert_eq!(
            duplicates,
            vec![
                (6, events[1].id.clone()),
                (12, earlier.id.clone()),
                (21, earlier_digest.id.clone()),
                (37, events[0].id.clone()),
            ],
            "committer: {committer}"
        );
        let mut stored = pending_keys(store.as_ref(), &conn).await;
        stored.sort();
        seen.push(stored);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0].len(), 2 + 40 - 4, "{:?}", seen[0]);
}

/// The committer's commits never checkpoint (they must not wait for one); the
/// checkpointer copies the log into the database file.
#[tokio::test]
async fn the_sqlite_committer_leaves_checkpoints_to_the_checkpointer() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let now = Utc::now();
    let conn = connection(store.as_ref(), "acme", true, now).await;
    let mut writer = store.sqlite_writer().expect("a file").unwrap();
    let checkpointer = writer.checkpointer().unwrap();
    checkpointer.run().unwrap();
    let file = db.dir().join("test.db");
    let size = || std::fs::metadata(&file).unwrap().len();
    let before = size();
    // Well past SQLite's automatic checkpoint (1,000 pages of 4 KiB).
    let payload = "x".repeat(2_000);
    for chunk in 0..50 {
        let events: Vec<NewEvent> = (0..50)
            .map(|i| NewEvent {
                payload: payload.clone(),
                ..new_event(
                    &conn,
                    &format!("c{chunk}-{i}"),
                    &format!("k{chunk}-{i}"),
                    now,
                )
            })
            .collect();
        writer.insert_events(&events).unwrap();
    }
    assert_eq!(size(), before, "the committer checkpointed");
    checkpointer.run().unwrap();
    assert!(size() > before + 2_500 * 2_000, "{} → {}", before, size());
    assert_eq!(store.pending_events(&conn).await.unwrap().len(), 2_500);
}

/// The connection's pending events as `client:key`, in arrival order.
pub(crate) async fn pending_keys(store: &Store, conn: &ConnectionId) -> Vec<String> {
    store
        .pending_events(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{}:{}", e.client_id.as_str(), e.idempotency_key))
        .collect()
}

/// An urgent webhook event for `client` under idempotency key `key`.
pub(crate) fn new_event(
    conn: &ConnectionId,
    client: &str,
    key: &str,
    now: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        id: uuid::Uuid::now_v7().to_string(),
        connection_id: conn.clone(),
        idempotency_key: key.into(),
        client_id: cid(client),
        event_type: "client.updated".into(),
        occurred_at: now,
        received_at: now,
        payload: "{}".into(),
        urgent: true,
        job_id: None,
        signed_digest: None,
    }
}
