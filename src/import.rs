//! `leadbridge import FILE --connection NAME`: streams an NDJSON file to a
//! running service's backfill endpoint with a progress bar, then prints the
//! job's counts. The file is read in 64 KiB pieces, never whole.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Rejected lines printed; the rest are counted (all are in the job).
const SHOWN_REJECTIONS: usize = 20;

/// Where and what to import.
pub struct Import<'a> {
    pub file: &'a Path,
    pub connection: &'a str,
    /// The service, e.g. `http://127.0.0.1:8080`.
    pub base_url: &'a str,
    pub token: SecretString,
    /// `asOf` of the export (RFC 3339), if the operator knows it.
    pub as_of: Option<&'a str>,
}

/// The counts the service answers with.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub job_id: String,
    pub state: String,
    pub read: u64,
    pub accepted: u64,
    pub synced: u64,
    pub rejected_count: u64,
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Deserialize)]
pub struct Rejected {
    pub line: u64,
    pub error: String,
}

/// Uploads the file; returns the job's counts once the service has read it all.
pub async fn run(import: Import<'_>) -> anyhow::Result<Report> {
    let file = tokio::fs::File::open(import.file)
        .await
        .with_context(|| format!("cannot open {}", import.file.display()))?;
    let size = file.metadata().await?.len();
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec}, {eta} left {msg}",
        )
        .expect("the template parses")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let counted = bar.clone();
    let body = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024).inspect(move |c| {
        if let Ok(bytes) = c {
            counted.inc(bytes.len() as u64);
            if counted.position() >= size {
                counted.set_message("— sent; the service is storing the last lines");
            }
        }
    });
    let mut url = url::Url::parse(import.base_url)
        .with_context(|| format!("--url {} is not a URL", import.base_url))?;
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--url {} cannot have a path", import.base_url))?
        .pop_if_empty()
        .extend(["v1", "connections", import.connection, "backfill"]);
    if let Some(as_of) = import.as_of {
        url.query_pairs_mut().append_pair("asOf", as_of);
    }
    let res = reqwest::Client::new()
        .post(url)
        .bearer_auth(import.token.expose_secret())
        .header("content-type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    bar.finish_and_clear();
    let res = res.with_context(|| format!("cannot reach {}", import.base_url))?;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if status.as_u16() != 202 {
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|p| p["detail"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("the service answered {status}: {detail}");
    }
    serde_json::from_str(&text).context("the service's answer is not a backfill job")
}

/// The report as printed for the operator.
pub fn render(report: &Report, connection: &str) -> String {
    let mut out = format!(
        "job {}: {}\nread {}, accepted {}, rejected {}, synced so far {}\n",
        report.job_id,
        report.state,
        report.read,
        report.accepted,
        report.rejected_count,
        report.synced
    );
    for r in report.rejected.iter().take(SHOWN_REJECTIONS) {
        out.push_str(&format!("line {}: {}\n", r.line, r.error));
    }
    if report.rejected_count > SHOWN_REJECTIONS as u64 {
        out.push_str(&format!(
            "… and {} more rejected lines\n",
            report.rejected_count - SHOWN_REJECTIONS as u64
        ));
    }
    out.push_str(&format!(
        "progress: GET /v1/connections/{connection}/backfill/{}\n",
        report.job_id
    ));
    out
}
