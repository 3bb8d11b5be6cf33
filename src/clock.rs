//! Time and randomness come through this seam, so tests move time instead of
//! sleeping and fix the backoff jitter instead of hoping.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// A source of "now", and of the uniform draws in [0, 1) behind backoff jitter.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    fn jitter(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("clock lock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }

    /// Half the ceiling, always: retries come at predictable times.
    fn jitter(&self) -> f64 {
        0.5
    }
}
