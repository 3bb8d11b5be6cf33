//! Prometheus metrics: one process-wide recorder, rendered at `GET /metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder on first use and returns the handle that renders it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// Counts one webhook by connection and outcome (`accepted`, `duplicate`, `ignored`, or an error code).
pub fn webhook(connection: &str, outcome: &str) {
    metrics::counter!(
        "leadbridge_webhooks_total",
        "connection" => connection.to_string(),
        "outcome" => outcome.to_string()
    )
    .increment(1);
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
