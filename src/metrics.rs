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

/// The org's daily API usage and allocation, as Salesforce last reported them.
pub fn api_usage(connection: &str, used: i64, max: i64) {
    let c = connection.to_string();
    metrics::gauge!("leadbridge_salesforce_api_used", "connection" => c.clone()).set(used as f64);
    metrics::gauge!("leadbridge_salesforce_api_max", "connection" => c).set(max as f64);
}
