//! When the worker starts its next round. Idle, the first webhook wakes it
//! and it lingers briefly, so a lone event goes out within the linger. Under
//! a steady stream each round would otherwise catch only what arrived during
//! the last Salesforce call, a few clients a call; instead, after a round
//! that did not fill its batch, the next one waits until enough events have
//! arrived to fill a call, or until the pace has passed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Wakes the worker, and counts the events that arrived for it.
#[derive(Debug, Default)]
pub struct Wake {
    notify: Notify,
    arrived: AtomicU64,
}

impl Wake {
    /// `events` new events were stored.
    pub fn arrived(&self, events: u64) {
        self.arrived.fetch_add(events, Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// Something became due without new events (a client requeued by hand).
    pub fn notify_one(&self) {
        self.notify.notify_one();
    }

    pub(super) async fn notified(&self) {
        self.notify.notified().await
    }

    /// Events arrived since the last call; starts counting again.
    pub(super) fn take(&self) -> u64 {
        self.arrived.swap(0, Ordering::Relaxed)
    }

    pub(super) fn count(&self) -> u64 {
        self.arrived.load(Ordering::Relaxed)
    }
}

/// How rounds are paced while events keep arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Events that make the next round worth starting at once: about what
    /// one collections call carries.
    pub events: u64,
    /// The longest a round waits after the previous one started.
    pub max_wait: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            events: 200,
            max_wait: Duration::from_secs(2),
        }
    }
}

impl Pace {
    /// After a round that claimed `claimed` of at most `batch` clients and
    /// started `since` ago, with `arrived` events stored since it started:
    /// `None` to start the next round now, or how much longer to wait (for
    /// more events or for that time to pass).
    pub fn wait(
        &self,
        claimed: usize,
        batch: usize,
        since: Duration,
        arrived: u64,
    ) -> Option<Duration> {
        if claimed >= batch || arrived >= self.events || since >= self.max_wait {
            // A full round has more behind it: a backlog drains at full speed.
            None
        } else {
            Some(self.max_wait - since)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_full_round_is_followed_at_once() {
        assert_eq!(Pace::default().wait(400, 400, MS, 0), None);
    }

    #[test]
    fn a_partial_round_waits_for_a_call_worth_of_events_or_the_pace() {
        let pace = Pace::default();
        assert_eq!(pace.wait(12, 400, 300 * MS, 40), Some(1700 * MS));
        assert_eq!(pace.wait(12, 400, 300 * MS, 200), None);
        assert_eq!(pace.wait(12, 400, 2000 * MS, 1), None);
        assert_eq!(pace.wait(12, 400, 2500 * MS, 0), None);
    }

    #[test]
    fn arrivals_are_counted_until_taken() {
        let wake = Wake::default();
        wake.arrived(3);
        wake.arrived(2);
        wake.notify_one();
        assert_eq!(wake.count(), 5);
        assert_eq!(wake.take(), 5);
        assert_eq!(wake.count(), 0);
    }
}
