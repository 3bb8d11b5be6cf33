//! Prometheus metrics: one process-wide recorder, rendered at `GET /metrics`.

use std::sync::OnceLock;

use std::fmt::Write;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::ClientState;
use crate::store::{Backlog, Store, StoreError};

/// The backlog, counted at most once per `ttl` however often `/metrics` is
/// scraped: counting is proportional to the backlog, and scrapes need no
/// token. Concurrent scrapes wait for one count.
pub struct BacklogCache {
    ttl: std::time::Duration,
    last: tokio::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<Vec<Backlog>>)>>,
}

impl BacklogCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The last count if it is younger than the ttl, else a new one.
    pub async fn get(&self, store: &Store) -> Result<std::sync::Arc<Vec<Backlog>>, StoreError> {
        let mut last = self.last.lock().await;
        if let Some((at, backlog)) = last.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(backlog.clone());
            }
        }
        let backlog = std::sync::Arc::new(store.backlog().await?);
        *last = Some((std::time::Instant::now(), backlog.clone()));
        Ok(backlog)
    }
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The sync latency histogram.
const SYNC_LATENCY: &str = "leadbridge_sync_latency_seconds";

/// Buckets of [`SYNC_LATENCY`]: from a linger-sized wait to a day of retries.
const LATENCY_BUCKETS: [f64; 16] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 21_600.0,
    86_400.0, 259_200.0,
];

/// Installs the recorder on first use and returns the handle that renders it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(SYNC_LATENCY.into()), &LATENCY_BUCKETS)
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// Everything `/metrics` shows: the counters and gauges recorded so far, and
/// the backlog read from the store now (absent, with `leadbridge_store_up 0`,
/// when the store does not answer).
pub fn render(backlog: Option<&[Backlog]>) -> String {
    let mut out = handle().render();
    let _ = writeln!(
        out,
        "# HELP leadbridge_store_up Whether the store answered this scrape."
    );
    let _ = writeln!(out, "# TYPE leadbridge_store_up gauge");
    let _ = writeln!(out, "leadbridge_store_up {}", u8::from(backlog.is_some()));
    let Some(backlog) = backlog else {
        return out;
    };
    let _ = writeln!(out, "# HELP leadbridge_clients Clients by connection and sync state (held: pending or retrying on a disabled connection).");
    let _ = writeln!(out, "# TYPE leadbridge_clients gauge");
    for b in backlog {
        let c = escape(&b.connection);
        for (state, n) in &b.clients {
            let shown = match state {
                ClientState::Pending | ClientState::Retrying if !b.enabled => "held",
                s => s.as_str(),
            };
            let _ = writeln!(
                out,
                "leadbridge_clients{{connection=\"{c}\",state=\"{shown}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP leadbridge_dead_clients Clients that stopped retrying and wait for an operator."
    );
    let _ = writeln!(out, "# TYPE leadbridge_dead_clients gauge");
    for b in backlog {
        let dead: u64 = b
            .clients
            .iter()
            .filter(|(s, _)| *s == ClientState::Dead)
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(
            out,
            "leadbridge_dead_clients{{connection=\"{}\"}} {dead}",
            escape(&b.connection)
        );
    }
    let _ = writeln!(
        out,
        "# HELP leadbridge_pending_events Stored events not yet synced, by connection."
    );
    let _ = writeln!(out, "# TYPE leadbridge_pending_events gauge");
    for b in backlog {
        let _ = writeln!(
            out,
            "leadbridge_pending_events{{connection=\"{}\"}} {}",
            escape(&b.connection),
            b.pending_events
        );
    }
    out
}

/// A label value in the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts a connection closed as it was accepted: its address held the
/// most connections it may (`LEADBRIDGE_MAX_CONNECTIONS_PER_PEER`).
pub fn connection_refused() {
    metrics::counter!("leadbridge_http_connections_refused_total").increment(1);
}

/// Counts a request answered 4xx, by its status (a bounded set).
pub fn request_refused(status: u16) {
    metrics::counter!(
        "leadbridge_http_requests_refused_total",
        "status" => status.to_string()
    )
    .increment(1);
}

/// Counts one token request by outcome (`ok`, or the OAuth / transport
/// error as [`token_outcome`] names it).
pub fn token_fetch(outcome: &str) {
    metrics::counter!(
        "leadbridge_salesforce_token_fetches_total",
        "outcome" => token_outcome(outcome)
    )
    .increment(1);
}

/// A token request's outcome as a label from a fixed set: the OAuth errors
/// Salesforce documents and leadbridge's own transport codes keep their
/// name, any other text the token endpoint sent is `other` (an org or a
/// proxy in between could otherwise add a series per answer, of any size).
pub fn token_outcome(code: &str) -> &'static str {
    use crate::salesforce::errors::codes;
    const KNOWN: [&str; 18] = [
        "ok",
        "invalid_client_id",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
        "invalid_request",
        "invalid_scope",
        "inactive_user",
        "inactive_org",
        "rate_limit_exceeded",
        "unauthorized_client",
        "access_denied",
        codes::TIMEOUT,
        codes::CONNECTION_ERROR,
        codes::BAD_TOKEN_ANSWER,
        codes::BAD_INSTANCE_URL,
        codes::INVALID_SESSION_ID,
        codes::ANSWER_TOO_LARGE,
    ];
    if let Some(known) = KNOWN.iter().find(|k| **k == code) {
        return known;
    }
    let prefix = code.get(..6).map(str::to_ascii_lowercase);
    match prefix.as_deref() {
        Some("http_5") => "http_5xx",
        Some("http_4") => "http_4xx",
        _ => "other",
    }
}

/// Records how long one event took from receipt to Salesforce's confirmation.
/// `source` is `webhook` or `backfill`.
pub fn sync_latency(source: &'static str, seconds: f64) {
    metrics::histogram!(SYNC_LATENCY, "source" => source).record(seconds);
}

/// Counts one webhook by connection and outcome (`accepted`, `duplicate`, `ignored`, or an error code).
pub fn webhook(connection: &str, outcome: &str) {
    webhook_counter(connection, outcome).increment(1);
}

fn webhook_counter(connection: &str, outcome: &str) -> metrics::Counter {
    metrics::counter!(
        "leadbridge_webhooks_total",
        "connection" => connection.to_string(),
        "outcome" => outcome.to_string()
    )
}

/// A connection's counts of webhooks, the common outcomes looked up once:
/// each of those is then one atomic add, not a registry look-up.
pub struct WebhookCounts {
    connection: String,
    accepted: metrics::Counter,
    duplicate: metrics::Counter,
}

impl WebhookCounts {
    pub fn new(connection: &str) -> Self {
        Self {
            connection: connection.to_string(),
            accepted: webhook_counter(connection, "accepted"),
            duplicate: webhook_counter(connection, "duplicate"),
        }
    }

    /// Counts one webhook by outcome, as [`webhook`] does.
    pub fn count(&self, outcome: &str) {
        match outcome {
            "accepted" => self.accepted.increment(1),
            "duplicate" => self.duplicate.increment(1),
            other => webhook(&self.connection, other),
        }
    }
}

/// Counts one Salesforce call by operation (`token`, `describe`, `create`, …) and HTTP status.
pub fn salesforce_request(operation: &'static str, status: u16) {
    metrics::counter!(
        "leadbridge_salesforce_requests_total",
        "operation" => operation,
        "status" => status.to_string()
    )
    .increment(1);
}

/// The org's daily API usage and allocation, as Salesforce last reported them.
pub fn api_usage(connection: &str, used: i64, max: i64) {
    let c = connection.to_string();
    metrics::gauge!("leadbridge_salesforce_api_used", "connection" => c.clone()).set(used as f64);
    metrics::gauge!("leadbridge_salesforce_api_max", "connection" => c).set(max as f64);
}

/// Counts a backfill upload's lines by outcome (`accepted`, `rejected`).
pub fn backfill_lines(connection: &str, accepted: u64, rejected: u64) {
    for (outcome, n) in [("accepted", accepted), ("rejected", rejected)] {
        metrics::counter!(
            "leadbridge_backfill_lines_total",
            "connection" => connection.to_string(),
            "outcome" => outcome
        )
        .increment(n);
    }
}

/// Counts done events deleted after their retention period.
pub fn events_pruned(n: u64) {
    metrics::counter!("leadbridge_events_pruned_total").increment(n);
}

#[cfg(test)]
mod tests {
    use super::token_outcome;

    #[test]
    fn a_token_outcome_is_one_of_a_fixed_set_whatever_the_org_sent() {
        for (code, label) in [
            ("ok", "ok"),
            ("invalid_client", "invalid_client"),
            ("invalid_grant", "invalid_grant"),
            ("TIMEOUT", "TIMEOUT"),
            ("ANSWER_TOO_LARGE", "ANSWER_TOO_LARGE"),
            ("HTTP_503", "http_5xx"),
            ("http_418", "http_4xx"),
            ("err_\u{0}evil", "other"),
            ("", "other"),
        ] {
            assert_eq!(token_outcome(code), label, "{code:?}");
        }
        assert_eq!(token_outcome(&"x".repeat(200_000)), "other");
    }
}
