//! Throughput benchmarks (issue: ingest fast, spend the API quota sparingly).
//!
//!   cargo bench --bench throughput            # everything
//!   cargo bench --bench throughput -- ingest  # (e), then (a) and (d) for ingest
//!   cargo bench --bench throughput -- floor   # (e) alone
//!   cargo bench --bench throughput -- calls   # (b), SQLite and PostgreSQL
//!   cargo bench --bench throughput -- sync    # (c) and (d) for sync
//!
//! The release `leadbridge` binary runs as its own process with default
//! settings, logging at info to /dev/null, on an SQLite file (or a fresh
//! PostgreSQL database at BENCH_POSTGRES_URL, default the local server's
//! `test`). Ingest (a) is driven by `wrk` (installed when missing), replaying
//! pre-signed unique webhooks, at the bare actix-web endpoint (its own
//! process, measured in the same run) and at leadbridge; see `throughput/wrk.rs`.
//! Salesforce is the strict emulator of tests/support, in this process; (b)
//! and (c) send from this process, paced or as fast as answers come.
//! Results are printed as Markdown.
//!
//! Knobs: BENCH_WRK_SECS (8), BENCH_WRK_REQUESTS, BENCH_WRK_SETUPS (some of
//! `unpinned,pinned,postgres`), BENCH_LEADBRIDGE_BIN (another build, to
//! compare), BENCH_PID_FILE (the server's pid, for a profiler), BENCH_SYNC_CLIENTS,
//! BENCH_FLOOR_BATCH (webhooks per commit in (e), default 64),
//! BENCH_FLOOR_SQL (SQL run on (e)'s fresh store before it is written to, to
//! measure what a schema change would save, e.g. `DROP INDEX events_pending;`).

#[path = "throughput/wrk.rs"]
mod wrk;

use salesforce_emulator as emulator;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_leadbridge");
const CONNECTIONS: usize = 64;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(url).await.is_err() {
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Peak resident set (VmHWM) of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// A running `leadbridge serve` on a fresh SQLite file.
struct Leadbridge {
    child: std::process::Child,
    base: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Leadbridge {
    async fn start() -> Self {
        Self::start_with(None, None).await
    }

    /// On CPU `cpu` (`taskset`) and on database `database_url` when given.
    async fn start_with(cpu: Option<&str>, database_url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // BENCH_LEADBRIDGE_BIN: another build's binary, to compare builds.
        let bin = std::env::var("BENCH_LEADBRIDGE_BIN").unwrap_or_else(|_| BIN.to_string());
        let mut cmd = wrk::pinned(std::path::Path::new(&bin), cpu);
        let mut env_token = None;
        if let Some(url) = database_url {
            // Not SQLite: the secrets come from the environment.
            use secrecy::ExposeSecret;
            let token = uuid::Uuid::new_v4().simple().to_string();
            cmd.env("LEADBRIDGE_DATABASE_URL", url)
                .env("LEADBRIDGE_ADMIN_TOKEN", &token)
                .env(
                    "LEADBRIDGE_MASTER_KEY",
                    leadbridge::crypto::MasterKey::generate_encoded().expose_secret(),
                );
            env_token = Some(token);
        }
        let child = cmd
            .current_dir(dir.path())
            .env("LEADBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
            .env("LEADBRIDGE_LOG_FORMAT", "json")
            .env("LEADBRIDGE_ALLOW_INSECURE_SALESFORCE", "true")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        wait_http(&format!("{base}/health/ready")).await;
        let token = env_token.unwrap_or_else(|| {
            std::fs::read_to_string(dir.path().join("leadbridge.db.admin-token")).unwrap()
        });
        Self {
            child,
            base,
            token: token.trim().to_string(),
            _dir: dir,
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let res = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap_or(Value::Null)
    }

    /// Creates connection `acme`; returns its webhook secret.
    async fn connection(&self, body: Value) -> String {
        let created = self
            .admin(reqwest::Method::POST, "/v1/connections", body)
            .await;
        created["webhookSecret"].as_str().unwrap().to_string()
    }

    /// Creates connection `acme` on the emulated org, upserting by External
    /// ID; returns its webhook secret.
    async fn emulated_connection(&self, emu: &emulator::Emulator, enabled: bool) -> String {
        let cfg = emu.org.lock().unwrap().cfg.clone();
        self.connection(
            json!({"name": "acme", "domainUrl": emu.base, "consumerKey": cfg.client_id,
            "consumerSecret": cfg.client_secret, "company": "Bench Ltd", "enabled": enabled,
            "externalIdField": "B2C_Client_Id__c"}),
        )
        .await
    }

    fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(self.child.id())
    }
}

impl Drop for Leadbridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed, unique client event.
fn signed(secret: &SecretString, id: &str, body: &str) -> [(&'static str, String); 3] {
    let ts = chrono::Utc::now().timestamp();
    let sig = leadbridge::webhook::sign_standard(secret, id, ts, body.as_bytes());
    [
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sig),
    ]
}

fn event_body(client: usize, version: usize) -> String {
    json!({
        "type": "client.updated",
        "occurredAt": (chrono::DateTime::from_timestamp(1_764_000_000 + version as i64, 0).unwrap()).to_rfc3339(),
        "data": {"clientId": client, "email": format!("c{client}-v{version}@example.com"),
                 "info": {"firstName": "Bench", "lastName": format!("L{client}")}}
    })
    .to_string()
}

#[derive(Default)]
struct Stats {
    ok: usize,
    errors: usize,
    elapsed: Duration,
}

/// Sends unique signed events from `CONNECTIONS` keep-alive connections, as
/// fast as answers come (`rate` None) or paced to `rate` per second in total,
/// for `duration` or until `limit` events are sent. Event `n` is for client
/// `n % clients`, version `n / clients`.
async fn load(
    url: &str,
    secret: &str,
    duration: Duration,
    rate: Option<f64>,
    limit: usize,
    clients: usize,
) -> Stats {
    let secret = Arc::new(SecretString::from(secret.to_string()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Ids are unique across runs too, or a later run's events would be duplicates.
    let run = Arc::new(uuid::Uuid::new_v4().simple().to_string());
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|t| {
            let (url, secret, next, run) =
                (url.to_string(), secret.clone(), next.clone(), run.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let mut stats = Stats::default();
                let interval = rate.map(|r| Duration::from_secs_f64(CONNECTIONS as f64 / r));
                let mut tick = interval.map(|i| {
                    let mut t = tokio::time::interval_at(
                        tokio::time::Instant::now() + i.mul_f64(t as f64 / CONNECTIONS as f64),
                        i,
                    );
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                while start.elapsed() < duration {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= limit {
                        break;
                    }
                    let body = event_body(n % clients, n / clients);
                    let mut req = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone());
                    for (k, v) in signed(&secret, &format!("bench-{run}-{n}"), &body) {
                        req = req.header(k, v);
                    }
                    match req.send().await {
                        Ok(res) if res.status().as_u16() == 202 => {
                            let _ = res.bytes().await;
                            stats.ok += 1;
                        }
                        _ => stats.errors += 1,
                    }
                }
                stats
            })
        })
        .collect();
    let mut all = Stats::default();
    for t in tasks {
        let s = t.await.unwrap();
        all.ok += s.ok;
        all.errors += s.errors;
    }
    all.elapsed = start.elapsed();
    all
}

/// The bare endpoint, in its own process: `throughput baseline-server PORT`.
fn baseline_server(port: u16) {
    actix_web::rt::System::new().block_on(async move {
        actix_web::HttpServer::new(|| {
            actix_web::App::new().route(
                "/v1/webhooks/{name}",
                actix_web::web::post().to(|_body: actix_web::web::Bytes| async {
                    actix_web::HttpResponse::Accepted().json(json!({"status": "accepted"}))
                }),
            )
        })
        .bind(("127.0.0.1", port))
        .unwrap()
        .run()
        .await
        .unwrap();
    });
}

/// A webhook body with every field of the contract, about 0.9 KB.
fn full_event_body(n: usize) -> String {
    json!({
        "type": "client.updated",
        "occurredAt": "2026-11-28T10:00:00Z",
        "data": {
            "clientId": n,
            "email": format!("client{n}@example.com"),
            "info": {"firstName": "Jane", "middleName": "Quinn", "lastName": format!("Doe{n}")},
            "phones": [
                {"number": "+35799123456", "confirmed": true, "updateTime": "2026-11-01T09:00:00Z"},
                {"number": "+35799000000", "confirmed": false, "updateTime": "2026-11-20T09:00:00Z"}
            ],
            "addresses": [
                {"type": "residential", "country": "Cyprus", "countryCode": "CY", "state": "Limassol",
                 "city": "Limassol", "address": "1 Main St", "postcode": "3035",
                 "updateTime": "2026-11-01T09:00:00Z"},
                {"type": "postal", "country": "Cyprus", "countryCode": "196", "state": "Nicosia",
                 "city": "Nicosia", "address": "PO Box 1234", "postcode": "1010",
                 "updateTime": "2026-11-02T09:00:00Z"}
            ],
            "status": {"id": 1, "name": "Active"},
            "type": {"id": 2, "name": "Individual"},
            "verificationLevel": {"id": 3, "name": "Full"}
        }
    })
    .to_string()
}

/// `leadbridge_webhooks_total` of connection `acme` by outcome, from /metrics.
async fn webhook_counts(base: &str) -> std::collections::HashMap<String, f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("leadbridge_webhooks_total{"))
        .filter_map(|l| {
            let (labels, value) = l.split_once("} ")?;
            let outcome = labels.split("outcome=\"").nth(1)?.split('"').next()?;
            Some((outcome.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One wrk run at leadbridge with fresh requests (unique, signed now); the
/// count of accepted webhooks is checked against what wrk counted, so no run
/// is inflated by duplicates or errors.
async fn wrk_leadbridge(
    lb: &Leadbridge,
    secret: &SecretString,
    count: usize,
    secs: Duration,
    rate: Option<f64>,
    wrk_cpu: Option<&str>,
) -> wrk::Run {
    let host = lb.base.trim_start_matches("http://").to_string();
    let requests =
        wrk::Requests::signed(&host, "/v1/webhooks/acme", secret, count, full_event_body);
    let before = webhook_counts(&lb.base).await;
    let url = format!("{}/v1/webhooks/acme", lb.base);
    let pid = lb.child.id();
    let run = tokio::task::spawn_blocking({
        let wrk_cpu = wrk_cpu.map(str::to_string);
        move || {
            wrk::run(
                &requests,
                &url,
                CONNECTIONS,
                secs,
                rate,
                wrk_cpu.as_deref(),
                pid,
            )
        }
    })
    .await
    .unwrap();
    let after = webhook_counts(&lb.base).await;
    let delta = |k: &str| after.get(k).unwrap_or(&0.0) - before.get(k).unwrap_or(&0.0);
    let others: f64 = after
        .iter()
        .filter(|(k, _)| k.as_str() != "accepted")
        .map(|(k, _)| delta(k))
        .sum();
    assert_eq!(
        others, 0.0,
        "answers other than accepted: {after:?} (more requests needed?)"
    );
    assert_eq!(
        run.status_errors + run.socket_errors,
        0,
        "wrk saw errors: {run:?}"
    );
    // wrk does not count answers still in flight when it stops.
    assert!(
        delta("accepted") >= run.requests as f64,
        "{run:?} {after:?}"
    );
    run
}

/// leadbridge's CPU per request by thread, in both runs, and the time each
/// thread was ready to run but waited for a CPU (another thread had it): the
/// committer is one thread, so its CPU and wait per request bound the rate.
fn thread_rows(full: &wrk::Run, half: &wrk::Run) {
    println!(
        "| leadbridge thread | CPU µs/request, as fast | waiting for a CPU, as fast | \
         CPU µs/request, half rate | waiting, half rate |"
    );
    println!("|---|---|---|---|---|");
    let per_request = |r: &wrk::Run, name: &str| {
        let t = r.threads.get(name).copied().unwrap_or_default();
        let n = r.requests.max(1) as f64;
        (t.cpu * 1e6 / n, t.waiting * 1e6 / n)
    };
    for name in full.threads.keys() {
        let ((f, fw), (h, hw)) = (per_request(full, name), per_request(half, name));
        if f >= 0.5 || h >= 0.5 {
            println!("| {name} | {f:.1} | {fw:.1} | {h:.1} | {hw:.1} |");
        }
    }
    if full.threads.contains_key("leadbridge-comm") {
        let (us, wait) = per_request(full, "leadbridge-comm");
        println!(
            "\nThe committer, one thread, spent {us:.1} µs a request on a CPU and {wait:.1} µs \
             waiting for one: at most {:.0} requests/s at that cost.\n",
            1e6 / (us + wait)
        );
    } else {
        println!();
    }
}

fn wrk_row(name: &str, r: &wrk::Run) {
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} |",
        r.rate(),
        r.p50_ms,
        r.p99_ms,
        r.cpu_us(),
        r.wrk_cpu / r.secs
    );
}

async fn ingest() {
    wrk::ensure_installed();
    let secs = Duration::from_secs(env_or("BENCH_WRK_SECS", 8));
    // Requests written for a run as fast as it answers: enough for 50k/s.
    let count = env_or("BENCH_WRK_REQUESTS", 50_000 * secs.as_secs() as usize);
    println!(
        "## (a) Ingest: wrk, 1 thread, {CONNECTIONS} connections, {} s per run, \
         unique pre-signed webhooks of {} bytes\n",
        secs.as_secs(),
        full_event_body(0).len()
    );
    let postgres = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    // BENCH_WRK_SETUPS picks some of: unpinned, pinned, postgres.
    let only = std::env::var("BENCH_WRK_SETUPS").unwrap_or_default();
    let setups = [
        ("unpinned", "unpinned", None, None, None),
        (
            "pinned",
            "pinned: server on CPU 0, wrk on CPU 1",
            Some("0"),
            Some("1"),
            None,
        ),
        (
            "postgres",
            "unpinned, PostgreSQL",
            None,
            None,
            Some(postgres),
        ),
    ];
    let mut rss = Vec::new();
    for (key, setup, server_cpu, wrk_cpu, pg) in setups {
        if !only.is_empty() && !only.split(',').any(|k| k == key) {
            continue;
        }
        let port = free_port();
        let exe = std::env::current_exe().unwrap();
        let mut baseline = wrk::pinned(&exe, server_cpu)
            .args(["baseline-server", &port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let bare_url = format!("http://127.0.0.1:{port}/v1/webhooks/acme");
        wait_http(&format!("http://127.0.0.1:{port}/")).await;
        let db = match &pg {
            Some(server) => Some(fresh_postgres(server).await),
            None => None,
        };
        let lb = Leadbridge::start_with(server_cpu, db.as_deref()).await;
        // A disabled connection: events are stored and held, nothing goes to Salesforce.
        let secret = SecretString::from(lb.connection(json!({"name": "acme"})).await);
        if let Ok(path) = std::env::var("BENCH_PID_FILE") {
            std::fs::write(path, lb.child.id().to_string()).unwrap();
        }

        let bare_requests = wrk::Requests::signed(
            &format!("127.0.0.1:{port}"),
            "/v1/webhooks/acme",
            &secret,
            100_000,
            full_event_body,
        );
        let bare_pid = baseline.id();
        let (bare_url2, wc) = (bare_url.clone(), wrk_cpu.map(str::to_string));
        let bare = tokio::task::spawn_blocking(move || {
            let wc = wc.as_deref();
            let _warm = wrk::run(
                &bare_requests,
                &bare_url2,
                CONNECTIONS,
                Duration::from_secs(2),
                None,
                wc,
                bare_pid,
            );
            wrk::run(
                &bare_requests,
                &bare_url2,
                CONNECTIONS,
                secs,
                None,
                wc,
                bare_pid,
            )
        })
        .await
        .unwrap();
        let _ = baseline.kill();
        let _ = baseline.wait();
        let full = wrk_leadbridge(&lb, &secret, count, secs, None, wrk_cpu).await;
        let half_rate = full.rate() / 2.0;
        let half_count = (half_rate * secs.as_secs_f64() * 1.2) as usize;
        let half = wrk_leadbridge(&lb, &secret, half_count, secs, Some(half_rate), wrk_cpu).await;
        rss.push(lb.peak_rss_mib());

        println!("**{setup}**\n");
        println!(
            "| endpoint | requests/s | p50 ms | p99 ms | server CPU µs/request | wrk CPU (cores) |"
        );
        println!("|---|---|---|---|---|---|");
        wrk_row("bare actix-web, 202 only", &bare);
        wrk_row("leadbridge, as fast as it answers", &full);
        wrk_row(
            &format!("leadbridge, paced at half that rate ({half_rate:.0}/s)"),
            &half,
        );
        println!(
            "\nleadbridge / bare = **{:.0}%**\n",
            100.0 * full.rate() / bare.rate()
        );
        thread_rows(&full, &half);
        drop(lb);
        if let (Some(server), Some(db)) = (&pg, db) {
            drop_postgres(server, &db).await;
        }
    }
    println!("peak RSS of leadbridge (d): {rss:.1?} MiB\n");
}

/// A new, empty database on the PostgreSQL server at `server`; its URL.
async fn fresh_postgres(server: &str) -> String {
    use sqlx::Connection;
    let name = format!("leadbridge_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at BENCH_POSTGRES_URL cannot be reached: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&name);
    url.to_string()
}

async fn drop_postgres(server: &str, db: &str) {
    use sqlx::Connection;
    let name = url::Url::parse(db)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let mut conn = sqlx::PgConnection::connect(server).await.unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await;
}

/// Salesforce calls (token and REST) the emulator received.
fn calls(emu: &emulator::Emulator) -> usize {
    emu.calls().len() + emu.token_requests() as usize
}

async fn until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < deadline,
            "{what} not done in {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Whether every client has its Lead with its newest version.
fn all_current(emu: &emulator::Emulator, clients: usize, events: usize) -> bool {
    if emu.lead_count() != clients {
        return false;
    }
    let leads = emu.leads();
    leads.iter().all(|l| {
        let c: usize = l["B2C_Client_Id__c"].as_str().unwrap().parse().unwrap();
        let newest = (events - 1 - c) / clients;
        l["Email"] == format!("c{c}-v{newest}@example.com")
    })
}

async fn quota() {
    println!("## (b) Salesforce calls per 1,000 events (upserts by External ID)\n");
    println!("| store | load | events | clients | Salesforce calls (token + REST) | per 1,000 events | token requests | last event to synced |");
    println!("|---|---|---|---|---|---|---|---|");
    let postgres = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    for pg in [None, Some(postgres)] {
        for (name, events, clients, rate) in [
            (
                "steady trickle, 100 events/s",
                1_000usize,
                200usize,
                Some(100.0),
            ),
            (
                "steady stream, 300 events/s, 4 per client",
                2_000,
                500,
                Some(300.0),
            ),
            ("burst, as fast as accepted", 10_000, 2_000, None),
        ] {
            let db = match &pg {
                Some(server) => Some(fresh_postgres(server).await),
                None => None,
            };
            let emu = emulator::Emulator::start(emulator::OrgConfig::default()).await;
            let lb = Leadbridge::start_with(None, db.as_deref()).await;
            let secret = lb.emulated_connection(&emu, true).await;
            let url = format!("{}/v1/webhooks/acme", lb.base);
            let sent = load(
                &url,
                &secret,
                Duration::from_secs(120),
                rate,
                events,
                clients,
            )
            .await;
            assert_eq!(sent.ok, events, "{} errors", sent.errors);
            let took = until("sync", Duration::from_secs(120), || {
                all_current(&emu, clients, events)
            })
            .await;
            let n = calls(&emu);
            println!(
                "| {} | {name} | {events} | {clients} | {n} | {:.1} | {} | {:.1} s |",
                if pg.is_some() { "PostgreSQL" } else { "SQLite" },
                n as f64 * 1000.0 / events as f64,
                emu.token_requests(),
                took.as_secs_f64()
            );
            drop(lb);
            if let (Some(server), Some(db)) = (&pg, db) {
                drop_postgres(server, &db).await;
            }
        }
    }
    println!();
}

async fn sync() {
    // BENCH_SYNC_CLIENTS runs a smaller sync (e.g. under a profiler).
    let clients: usize = std::env::var("BENCH_SYNC_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    println!("## (c) {clients} distinct clients through the emulator\n");
    let emu = emulator::Emulator::start(emulator::OrgConfig {
        daily_max: 10_000_000,
        ..Default::default()
    })
    .await;
    let lb = Leadbridge::start().await;
    let secret = lb.emulated_connection(&emu, false).await;
    let url = format!("{}/v1/webhooks/acme", lb.base);
    let sent = load(
        &url,
        &secret,
        Duration::from_secs(600),
        None,
        clients,
        clients,
    )
    .await;
    assert_eq!(sent.ok, clients, "{} errors", sent.errors);
    println!("ingested (held) in {:.1} s", sent.elapsed.as_secs_f64());
    lb.admin(
        reqwest::Method::PATCH,
        "/v1/connections/acme",
        json!({"enabled": true}),
    )
    .await;
    if let Ok(path) = std::env::var("BENCH_PID_FILE") {
        std::fs::write(path, lb.child.id().to_string()).unwrap();
    }
    let took = until("sync", Duration::from_secs(900), || {
        emu.lead_count() == clients
    })
    .await;
    let rss = lb.peak_rss_mib();
    println!(
        "\n| clients | time to sync | clients/s | Salesforce calls | token requests | peak RSS of leadbridge (d) |\n|---|---|---|---|---|---|\n| {clients} | {:.1} s | {:.0} | {} | {} | {rss:.1} MiB |\n",
        took.as_secs_f64(),
        clients as f64 / took.as_secs_f64(),
        calls(&emu),
        emu.token_requests()
    );
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// (e) Where the floor is: the CPU that the two things every webhook needs
/// beyond the bare endpoint's work cost on their own, in this process,
/// without HTTP or threads: checking and reading the body, and storing it
/// in a 64-event group commit on an SQLite file (synchronous = FULL).
async fn floor() {
    println!("## (e) Per-webhook work beyond the bare endpoint, measured alone\n");
    let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string());
    let bodies: Vec<String> = (0..20_000).map(full_event_body).collect();
    let ts = chrono::Utc::now().timestamp();
    let start = thread_cpu();
    for (n, body) in bodies.iter().enumerate() {
        let sig =
            leadbridge::webhook::sign_standard(&secret, &format!("id-{n}"), ts, body.as_bytes());
        std::hint::black_box(sig);
    }
    let verify = (thread_cpu() - start) / bodies.len() as f64;
    let start = thread_cpu();
    for body in &bodies {
        std::hint::black_box(leadbridge::webhook::event::parse(body.as_bytes()).unwrap());
    }
    let parse = (thread_cpu() - start) / bodies.len() as f64;
    let start = thread_cpu();
    for body in &bodies {
        std::hint::black_box(leadbridge::webhook::event::check(body.as_bytes()).unwrap());
    }
    let check = (thread_cpu() - start) / bodies.len() as f64;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("floor.db").display());
    let (store, conn) = async {
        let store = leadbridge::store::open(&url).await.unwrap();
        let name = leadbridge::domain::ConnectionName::parse("acme").unwrap();
        let conn = leadbridge::domain::Connection::new(
            leadbridge::domain::ConnectionId::generate(),
            name,
            chrono::Utc::now(),
        );
        let secret = leadbridge::store::WebhookSecretRecord {
            id: uuid::Uuid::new_v4().to_string(),
            connection_id: conn.id.clone(),
            sealed: "sealed".into(),
            created_at: conn.created_at,
            expires_at: None,
        };
        store.insert_connection(&conn, &secret).await.unwrap();
        (store, conn.id)
    }
    .await;
    if let Ok(sql) = std::env::var("BENCH_FLOOR_SQL") {
        let file = rusqlite::Connection::open(dir.path().join("floor.db")).unwrap();
        file.execute_batch(&sql).unwrap();
    }
    let mut writer = store.sqlite_writer().unwrap().unwrap();
    let now = chrono::Utc::now();
    let events: Vec<leadbridge::store::NewEvent> = bodies
        .iter()
        .enumerate()
        .map(|(n, body)| leadbridge::store::NewEvent {
            id: uuid::Uuid::now_v7().to_string(),
            connection_id: conn.clone(),
            idempotency_key: format!("id-{n}"),
            client_id: leadbridge::domain::ClientId::from_stored(n.to_string()),
            event_type: "client.updated".into(),
            occurred_at: now,
            received_at: now,
            payload: body.clone(),
            urgent: true,
            job_id: None,
            signed_digest: None,
        })
        .collect();
    let (start, wall) = (thread_cpu(), Instant::now());
    let per_commit = env_or("BENCH_FLOOR_BATCH", CONNECTIONS);
    for batch in events.chunks(per_commit) {
        writer.insert_events(batch).unwrap();
    }
    let store_cpu = (thread_cpu() - start) / events.len() as f64;
    let store_wall = wall.elapsed().as_secs_f64() / events.len() as f64;
    println!("| step, per webhook | CPU µs |\n|---|---|");
    println!(
        "| HMAC-SHA256 of the signed content | {:.1} |",
        verify * 1e6
    );
    println!(
        "| checking the body (the webhook path: its types read, nothing kept) | {:.1} |",
        check * 1e6
    );
    println!(
        "| reading the body into its types (the worker) | {:.1} |",
        parse * 1e6
    );
    println!(
        "| storing it, {per_commit} per commit (wall {:.1} µs, with fsync) | {:.1} |\n",
        store_wall * 1e6,
        store_cpu * 1e6
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("baseline-server") {
        return baseline_server(args[1].parse().unwrap());
    }
    let which = args.first().cloned().unwrap_or_else(|| "all".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "# leadbridge throughput ({} cores)\n",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        );
        if matches!(which.as_str(), "all" | "ingest" | "floor") {
            floor().await;
        }
        if matches!(which.as_str(), "all" | "ingest") {
            ingest().await;
        }
        if matches!(which.as_str(), "all" | "calls") {
            quota().await;
        }
        if matches!(which.as_str(), "all" | "sync") {
            sync().await;
        }
    });
}
