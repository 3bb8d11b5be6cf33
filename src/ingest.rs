//! Group commit for accepted webhooks: one task takes every event waiting,
//! stores them in one transaction (one fsync), then answers each request.
//! Idle, a batch is one event and adds no wait; under load batches grow with
//! concurrency. A request is answered only after its batch has committed.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Inserted, NewEvent, Store, StoreError};

/// Events committed together, at most.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Inserted, StoreError>>;

/// Handle to the committer.
#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<(NewEvent, Reply)>,
}

impl Ingest {
    /// Starts the committer on the current runtime.
    pub fn start(store: Arc<Store>) -> Self {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(commit_loop(store, rx));
        Self { queue }
    }

    /// Stores one event durably (with whatever else is waiting). A stopped
    /// committer is reported as the store being unavailable.
    pub async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((event, reply))
            .await
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }
}

async fn commit_loop(store: Arc<Store>, mut rx: mpsc::Receiver<(NewEvent, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
        match insert_retrying(store.as_ref(), &events).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            // One event the database refuses must not fail its neighbours:
            // store each on its own, so only that one is refused.
            Err(StoreError::Rejected(_)) if events.len() > 1 => {
                for (event, reply) in events.iter().zip(replies) {
                    let one = insert_retrying(store.as_ref(), std::slice::from_ref(event))
                        .await
                        .map(|mut a| a.pop().expect("one answer per event"));
                    if let Err(e) = &one {
                        tracing::warn!(error = %e, event_id = %event.id, "a webhook could not be stored");
                    }
                    let _ = reply.send(one);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, events = events.len(), "a batch of webhooks could not be stored");
                for reply in replies {
                    let _ = reply.send(Err(e.shared()));
                }
            }
        }
    }
}

/// Stores events in one transaction, running it again when the database
/// aborted it to resolve a deadlock with another writer.
pub async fn insert_retrying(
    store: &Store,
    events: &[NewEvent],
) -> Result<Vec<Inserted>, StoreError> {
    crate::store::retry_conflicts(|| store.insert_events(events)).await
}
