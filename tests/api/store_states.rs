//! The store over a client's life: create marks, listing by state, clients
//! made due after a commit, and the SQLite schema rebuilt with its rows.

use chrono::{Duration, Utc};
use leadbridge::domain::{ClientState, ClientUpdate, ConnectionId, NextAttempt};
use leadbridge::store::{Inserted, NewEvent, Store};

use crate::backend::TestDb;
use crate::store::*;

#[tokio::test]
async fn a_create_mark_keeps_its_first_time_and_only_a_lost_answer_keeps_it() {
    let (_db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    event(store.as_ref(), &conn, "c1", "k1", now).await;
    let mark_at = |t| {
        let store = store.clone();
        let conn = conn.clone();
        async move {
            store
                .mark_creates_sent(&conn, &[cid("c1")], t)
                .await
                .unwrap()
        }
    };
    let mark_of = || {
        let store = store.clone();
        let conn = conn.clone();
        async move {
            let c = store.client(&conn, &cid("c1")).await.unwrap().unwrap();
            c.create_sent_at.map(|t| t.timestamp_millis())
        }
    };
    assert_eq!(mark_of().await, None);
    mark_at(now).await;
    mark_at(now + Duration::seconds(30)).await;
    assert_eq!(
        mark_of().await,
        Some(now.timestamp_millis()),
        "the first send counts"
    );
    let claim = |owner: &'static str| {
        let store = store.clone();
        async move {
            store
                .claim_due(
                    now + Duration::hours(1),
                    owner,
                    now + Duration::hours(2),
                    10,
                )
                .await
                .unwrap()
                .remove(0)
        }
    };
    let mut lost = synced(vec![]);
    lost.state = ClientState::Retrying;
    lost.lead_id = None;
    lost.create_unconfirmed = true;
    lost.next = NextAttempt::At(now);
    let c = claim("a").await;
    assert!(store.finish_client(&c, "a", &lost, now).await.unwrap());
    assert_eq!(
        mark_of().await,
        Some(now.timestamp_millis()),
        "kept across a lost answer"
    );
    let c = claim("b").await;
    assert!(store
        .finish_client(&c, "b", &synced(vec![]), now)
        .await
        .unwrap());
    assert_eq!(mark_of().await, None, "an answer clears it");
    // A client with a Lead is never marked.
    mark_at(now).await;
    assert_eq!(mark_of().await, None);
}

/// Under a steady stream of commits the checkpointer's copy never reaches the
/// log's end before the next commit begins, so SQLite alone would never start
/// the log over: it grew by every commit (1.3 GB in one benchmark run). The
/// committer starts it over when the checkpointer asks, so the file stays
/// near its restart length, however much was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_log_starts_over_under_a_steady_stream_of_commits() {
    use futures_util::stream::{self, StreamExt};
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let now = Utc::now();
    let conn = connection(store.as_ref(), "acme", true, now).await;
    let ingest = leadbridge::ingest::Ingest::start(store.clone()).unwrap();
    let payload = "x".repeat(3_000);
    let events = 20_000;
    let stored = stream::iter(0..events)
        .map(|i| {
            let event = NewEvent {
                payload: payload.clone(),
                ..new_event(&conn, &format!("c{i}"), &format!("k{i}"), now)
            };
            let ingest = ingest.clone();
            async move { ingest.insert(event).await.unwrap() }
        })
        .buffer_unordered(64)
        .filter(|answer| std::future::ready(matches!(answer, Inserted::Accepted)))
        .count()
        .await;
    assert_eq!(stored, events);
    let written = (events * payload.len()) as u64;
    let log = std::fs::metadata(db.dir().join("test.db-wal"))
        .unwrap()
        .len();
    // Restarted at 4,096 frames of 4 KiB (about 17 MB), plus what is
    // committed while the committer is asked.
    assert!(
        log < written / 2,
        "the log is {log} bytes after {written} bytes of payloads"
    );
}

/// Every client of `conn` in `states`, read in pages of two.
async fn listed(store: &Store, conn: &ConnectionId, states: &[ClientState]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    loop {
        let after = out.last().cloned();
        let page = store
            .list_clients(conn, states, after.as_deref(), 2)
            .await
            .unwrap();
        let done = page.len() < 2;
        out.extend(page.into_iter().map(|c| c.client_id.to_string()));
        if done {
            return out;
        }
    }
}

#[tokio::test]
async fn clients_are_listed_by_each_state_page_by_page_and_dead_ones_requeued() {
    let (_db, store, now) = setup().await;
    let conn = connection(store.as_ref(), "acme", true, now).await;
    for i in 0..12 {
        event(&store, &conn, &format!("c{i:02}"), &format!("k{i}"), now).await;
    }
    let lease = now + Duration::minutes(5);
    for claim in store.claim_due(now, "a", lease, 20).await.unwrap() {
        let i: usize = claim.client_id.as_str()[1..].parse().unwrap();
        let (state, next) = match i % 4 {
            0 => (ClientState::Synced, NextAttempt::IfEventsPending),
            1 => (
                ClientState::Retrying,
                NextAttempt::At(now + Duration::hours(1)),
            ),
            2 => (ClientState::Dead, NextAttempt::Never),
            _ => (ClientState::Converted, NextAttempt::Never),
        };
        let update = ClientUpdate {
            state,
            next,
            processed: vec![],
            ..synced(vec![])
        };
        assert!(store
            .finish_client(&claim, "a", &update, now)
            .await
            .unwrap());
    }
    for (client, key) in [
        ("n00", "n0"),
        ("n01", "n1"),
        ("n02", "n2"),
        ("c00", "again"),
    ] {
        event(&store, &conn, client, key, now).await;
    }
    assert_eq!(
        listed(&store, &conn, &[ClientState::Pending]).await,
        ["c00", "n00", "n01", "n02"]
    );
    assert_eq!(
        listed(&store, &conn, &[ClientState::Synced]).await,
        ["c04", "c08"]
    );
    assert_eq!(
        listed(&store, &conn, &[ClientState::Retrying]).await,
        ["c01", "c05", "c09"]
    );
    assert_eq!(
        listed(&store, &conn, &[ClientState::Dead]).await,
        ["c02", "c06", "c10"]
    );
    assert_eq!(
        listed(&store, &conn, &[ClientState::Converted]).await,
        ["c03", "c07", "c11"]
    );
    let held = listed(
        &store,
        &conn,
        &[ClientState::Pending, ClientState::Retrying],
    )
    .await;
    assert_eq!(held, ["c00", "c01", "c05", "c09", "n00", "n01", "n02"]);
    assert_eq!(listed(&store, &conn, &[]).await.len(), 15);

    assert_eq!(store.requeue_dead(&conn, now).await.unwrap(), 3);
    assert!(listed(&store, &conn, &[ClientState::Dead]).await.is_empty());
    assert_eq!(
        listed(&store, &conn, &[ClientState::Pending]).await,
        ["c00", "c02", "c06", "c10", "n00", "n01", "n02"]
    );
}

/// The last seq of `conn`'s pending events, and the mark up to which their
/// clients have been made due (SQLite).
async fn due_mark(store: &Store, conn: &ConnectionId) -> (i64, i64) {
    let last = store
        .pending_events(conn)
        .await
        .unwrap()
        .last()
        .unwrap()
        .seq;
    let mark = store
        .meta_get("clients_due_through")
        .await
        .unwrap()
        .unwrap();
    (last, mark.parse().unwrap())
}

/// On SQLite the committer does not make each batch's clients due: it does
/// it in bulk every few hundred events, and whatever reads clients first
/// makes due what is left, even in a store opened afresh (after a restart).
#[tokio::test]
async fn the_sqlite_committer_makes_clients_due_in_bulk_and_readers_make_the_rest_due() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let now = Utc::now();
    let later = now + Duration::seconds(5);
    let conn = connection(store.as_ref(), "acme", true, now).await;
    let mut writer = store.sqlite_writer().expect("a file").unwrap();
    let at = |client: String, key: String, when| NewEvent {
        received_at: when,
        ..new_event(&conn, &client, &key, when)
    };
    // 150 clients of two events each, the second one in a later batch.
    let first =
        |range: std::ops::Range<usize>| range.map(|i| at(format!("c{i:03}"), format!("a{i}"), now));
    let second = |range: std::ops::Range<usize>| {
        range.map(|i| at(format!("c{i:03}"), format!("b{i}"), later))
    };
    writer
        .insert_events(&first(0..100).collect::<Vec<_>>())
        .unwrap();
    writer
        .insert_events(&first(100..150).chain(second(0..50)).collect::<Vec<_>>())
        .unwrap();
    let (last, mark) = due_mark(&store, &conn).await;
    assert!(mark < last, "made due before {} events", 256);
    writer
        .insert_events(&second(50..150).collect::<Vec<_>>())
        .unwrap();
    let (last, mark) = due_mark(&store, &conn).await;
    assert_eq!(mark, last, "the committer made all 300 due in bulk");

    let tail: Vec<NewEvent> = (0..10)
        .map(|i| at(format!("d{i}"), format!("d{i}"), later))
        .collect();
    writer.insert_events(&tail).unwrap();
    let (last, mark) = due_mark(&store, &conn).await;
    assert!(mark < last, "10 events are left to the readers");
    drop(writer);
    let reopened = db.open().await;
    let d0 = reopened.client(&conn, &cid("d0")).await.unwrap().unwrap();
    assert_eq!(d0.state, ClientState::Pending);
    assert_eq!(
        due_mark(&reopened, &conn).await.0,
        due_mark(&reopened, &conn).await.1
    );

    let c0 = reopened.client(&conn, &cid("c000")).await.unwrap().unwrap();
    assert_eq!(c0.pending_events, 2);
    assert_eq!(
        c0.next_attempt_at.unwrap().timestamp_millis(),
        now.timestamp_millis(),
        "due from its first event"
    );
    let claims = reopened
        .claim_due(later, "w", later + Duration::seconds(30), 500)
        .await
        .unwrap();
    assert_eq!(claims.len(), 160);

    // A mark that is gone is said, not taken for "nothing to do".
    sqlx::query("DELETE FROM meta WHERE key = 'clients_due_through'")
        .execute(&mut sqlite(&db).await)
        .await
        .unwrap();
    let err = reopened.client(&conn, &cid("d0")).await.unwrap_err();
    assert!(err.to_string().contains("clients_due_through"), "{err}");
    // The committer still stores webhooks without it (past its bulk step).
    let mut writer = reopened.sqlite_writer().expect("a file").unwrap();
    let more: Vec<NewEvent> = (0..300)
        .map(|i| at(format!("e{i}"), format!("e{i}"), later))
        .collect();
    let answers = writer.insert_events(&more).unwrap();
    assert!(answers.iter().all(|a| *a == Inserted::Accepted));
}

/// On SQLite an event the worker read and finished before its client was
/// made due does not make the client due again (no second write for it).
#[tokio::test]
async fn an_event_done_before_its_client_is_made_due_leaves_the_client_synced() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let now = Utc::now();
    let conn = connection(store.as_ref(), "acme", true, now).await;
    store
        .insert_event(&new_event(&conn, "a", "k1", now))
        .await
        .unwrap();
    let lease = now + Duration::minutes(5);
    let claims = store.claim_due(now, "w", lease, 10).await.unwrap();
    assert_eq!(claims.len(), 1);
    // A second event arrives while the client is claimed, and the worker
    // reads it with the first.
    store
        .insert_event(&new_event(&conn, "a", "k2", now))
        .await
        .unwrap();
    let read: Vec<i64> = store
        .client_events(&conn, &cid("a"))
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(read.len(), 2);
    assert!(store
        .finish_client(&claims[0], "w", &synced(read), now)
        .await
        .unwrap());
    let a = store.client(&conn, &cid("a")).await.unwrap().unwrap();
    assert_eq!((a.state, a.pending_events), (ClientState::Synced, 0));
    assert_eq!(a.next_attempt_at, None);
    assert!(store
        .claim_due(now, "w", lease, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn sqlite(db: &TestDb) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    sqlx::SqliteConnection::connect(&db.url).await.unwrap()
}

/// Making the events table again without the id's index (SQLite cannot drop
/// it in place) keeps every row and never hands out a seq already used, even
/// one of an event pruned since.
#[tokio::test]
async fn sqlite_events_made_again_keep_their_rows_and_their_seq_counter() {
    use sqlx::Connection;
    use std::borrow::Cow;
    let db = TestDb::sqlite().await;
    let rebuild = 20261204000003;
    let mut earlier = sqlx::migrate::Migrator::new(std::path::Path::new("migrations/sqlite"))
        .await
        .unwrap();
    assert!(earlier.iter().any(|m| m.version == rebuild));
    earlier.migrations = Cow::Owned(
        earlier
            .iter()
            .filter(|m| m.version < rebuild)
            .cloned()
            .collect(),
    );
    let mut file = sqlx::SqliteConnection::connect_with(
        &db.url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .create_if_missing(true),
    )
    .await
    .unwrap();
    earlier.run(&mut file).await.unwrap();
    sqlx::query(
        "INSERT INTO connections (id, name, provider, field_mapping, api_version,
           signature_scheme, created_at, updated_at)
         VALUES ('k', 'acme', 'salesforce', '{}', 'v62.0', 'standard-webhooks', 0, 0)",
    )
    .execute(&mut file)
    .await
    .unwrap();
    for n in 1..=3 {
        sqlx::query(
            "INSERT INTO events (id, connection_id, idempotency_key, client_id, event_type,
               occurred_at, received_at, payload)
             VALUES ($1, 'k', $1, 'c', 'client.updated', 0, 0, '{}')",
        )
        .bind(format!("e{n}"))
        .execute(&mut file)
        .await
        .unwrap();
    }
    // The newest event was done and pruned: seq 3 must not come again.
    sqlx::query("DELETE FROM events WHERE seq = 3")
        .execute(&mut file)
        .await
        .unwrap();
    drop(file);

    let store = db.open().await;
    let conn = ConnectionId::from_stored("k".to_string());
    let kept: Vec<(i64, String)> = store
        .pending_events(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.idempotency_key))
        .collect();
    assert_eq!(kept, [(1, "e1".to_string()), (2, "e2".to_string())]);
    let now = Utc::now();
    assert_eq!(
        store
            .insert_event(&new_event(&conn, "c", "e4", now))
            .await
            .unwrap(),
        Inserted::Accepted
    );
    assert!(matches!(
        store
            .insert_event(&new_event(&conn, "c", "e1", now))
            .await
            .unwrap(),
        Inserted::Duplicate { .. }
    ));
    let seqs: Vec<i64> = store
        .pending_events(&conn)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 4]);
    let mut file = sqlite(&db).await;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name",
    )
    .fetch_all(&mut file)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            "events_by_client",
            "events_by_job",
            "events_processed",
            "events_signed_digest",
            "sqlite_autoindex_events_1"
        ]
    );
}
