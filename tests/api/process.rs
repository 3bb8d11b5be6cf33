//! The real `leadbridge` binary: first start, restart after SIGKILL, refusals.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadbridge::crypto::{generate_admin_token, MasterKey};
use leadbridge::domain::ConnectionName;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::backend::TestDb;
use crate::helpers::{client_event, Webhook};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_leadbridge");

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `leadbridge` with a clean environment of its own settings.
pub(crate) fn command(dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("LEADBRIDGE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("LEADBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("LEADBRIDGE_LOG_FORMAT", "json");
    cmd
}

/// Where a spawned service keeps its data: the suite's backend. With SQLite the
/// service uses its default `leadbridge.db` in a fresh directory and makes its
/// own secrets; with PostgreSQL it gets the URL, token and key as variables.
pub(crate) struct Target {
    pub(crate) db: TestDb,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) token: Option<String>,
}

impl Target {
    pub(crate) async fn new() -> Self {
        let db = TestDb::new().await;
        if !db.is_postgres() {
            return Self {
                db,
                env: vec![],
                token: None,
            };
        }
        let token = generate_admin_token().expose_secret().to_string();
        let key = MasterKey::generate_encoded().expose_secret().to_string();
        let env = vec![
            ("LEADBRIDGE_DATABASE_URL".to_string(), db.url.clone()),
            ("LEADBRIDGE_ADMIN_TOKEN".to_string(), token.clone()),
            ("LEADBRIDGE_MASTER_KEY".to_string(), key),
        ];
        Self {
            db,
            env,
            token: Some(token),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.db.dir()
    }

    /// The URL of the database the service uses.
    pub(crate) fn database_url(&self) -> String {
        match self.token {
            Some(_) => self.db.url.clone(),
            None => format!("sqlite://{}", self.dir().join("leadbridge.db").display()),
        }
    }

    pub(crate) fn command(&self, port: u16) -> Command {
        let mut cmd = command(self.dir(), port);
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }
}

pub(crate) struct Service {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) log: PathBuf,
    pub(crate) token: String,
}

impl Service {
    pub(crate) fn start(target: &Target, port: u16, log_name: &str) -> Self {
        Self::start_with(target, port, log_name, &[])
    }

    pub(crate) fn start_with(
        target: &Target,
        port: u16,
        log_name: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let log = target.dir().join(log_name);
        let out = std::fs::File::create(&log).unwrap();
        let child = target
            .command(port)
            .envs(env.iter().copied())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            token: target.token.clone().unwrap_or_default(),
        }
    }

    pub(crate) async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::Client::new();
        loop {
            if let Ok(res) = client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
            {
                if res.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("leadbridge exited with {status}: {}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "not ready in 20 s: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The admin token (read once the service has started).
    pub(crate) fn admin_token(&self) -> String {
        if self.token.is_empty() {
            let dir = self.log.parent().unwrap();
            let text = std::fs::read_to_string(dir.join("leadbridge.db.admin-token")).unwrap();
            return text.trim().to_string();
        }
        self.token.clone()
    }

    /// Creates a connection through the API; returns the create answer.
    pub(crate) async fn create_connection(&self, body: Value) -> Value {
        let res = reqwest::Client::new()
            .post(format!("{}/v1/connections", self.base))
            .bearer_auth(self.admin_token())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        res.json().await.unwrap()
    }

    /// Sends a signed webhook to connection `acme`.
    pub(crate) async fn post_event(
        &self,
        secret: &str,
        id: &str,
        body: &Value,
    ) -> reqwest::Response {
        let now = chrono::Utc::now().timestamp();
        let hook = Webhook::standard(secret, id, now, &body.to_string());
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/webhooks/acme", self.base))
            .body(hook.body.clone());
        for (k, v) in &hook.headers {
            req = req.header(k, v);
        }
        req.send().await.unwrap()
    }

    /// Client `id` of connection `acme`, as the admin API shows it.
    pub(crate) async fn client_state(&self, id: u32) -> Value {
        reqwest::Client::new()
            .get(format!("{}/v1/connections/acme/clients/{id}", self.base))
            .bearer_auth(self.admin_token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn first_start_creates_the_secret_files_and_logs_their_paths_only() {
    // About the SQLite first start, so always on SQLite.
    let target = Target {
        db: TestDb::sqlite().await,
        env: vec![],
        token: None,
    };
    let mut svc = Service::start(&target, free_port(), "out.log");
    svc.wait_ready().await;
    let token = std::fs::read_to_string(target.dir().join("leadbridge.db.admin-token")).unwrap();
    let key = std::fs::read_to_string(target.dir().join("leadbridge.db.master-key")).unwrap();
    #[cfg(unix)]
    for f in ["leadbridge.db.admin-token", "leadbridge.db.master-key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(target.dir().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let res = reqwest::Client::new()
        .get(format!("{}/v1/connections", svc.base))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let logs = svc.logs();
    assert!(
        logs.contains("leadbridge.db.admin-token") && logs.contains("leadbridge.db.master-key"),
        "{logs}"
    );
    assert!(!logs.contains(token.trim()) && !logs.contains(key.trim()));
}

#[tokio::test]
async fn a_restart_after_sigkill_keeps_every_accepted_event() {
    let target = Target::new().await;
    let port = free_port();
    let mut svc = Service::start(&target, port, "first.log");
    svc.wait_ready().await;
    let token = svc.admin_token();
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/v1/connections", svc.base))
        .bearer_auth(token.trim())
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["webhookSecret"].as_str().unwrap().to_string();

    let base = svc.base.clone();
    let send = |id: String| {
        let client = client.clone();
        let base = base.clone();
        let now = chrono::Utc::now().timestamp();
        let hook = Webhook::standard(&secret, &id, now, &client_event(id.clone()));
        async move {
            let mut req = client
                .post(format!("{base}/v1/webhooks/acme"))
                .body(hook.body.clone());
            for (k, v) in &hook.headers {
                req = req.header(k, v);
            }
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let answers = futures_util::future::join_all((0..200).map(|i| send(format!("evt-{i}")))).await;
    let mut accepted = Vec::new();
    for (status, body) in &answers {
        assert_eq!(*status, 202, "{body}");
        accepted.push(body["eventId"].as_str().unwrap().to_string());
    }
    svc.kill9();

    // What the database holds after the kill, read by a fresh store.
    let store = leadbridge::store::open(&target.database_url())
        .await
        .unwrap();
    let conn = store
        .get_connection(&ConnectionName::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut stored: Vec<String> = store
        .pending_events(&conn.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    store.close().await;
    stored.sort();
    accepted.sort();
    assert_eq!(stored, accepted);

    // The restarted service knows every id: resending each is a duplicate with the same event id.
    let mut svc = Service::start(&target, port, "second.log");
    svc.wait_ready().await;
    let again = futures_util::future::join_all((0..200).map(|i| send(format!("evt-{i}")))).await;
    for ((status, body), (_, first)) in again.iter().zip(&answers) {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["eventId"], first["eventId"]);
    }
    let logs = format!(
        "{}{}",
        std::fs::read_to_string(target.dir().join("first.log")).unwrap(),
        svc.logs()
    );
    assert!(!logs.contains(&secret) && !logs.contains(token.trim()));
}

#[tokio::test]
async fn postgres_without_its_secrets_refuses_to_start_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), free_port())
        .env("LEADBRIDGE_DATABASE_URL", "postgres://127.0.0.1:5432/test")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("LEADBRIDGE_ADMIN_TOKEN and LEADBRIDGE_MASTER_KEY must be set"),
        "{text}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no files are made for Postgres"
    );
}

#[tokio::test]
async fn a_master_key_other_than_the_databases_refuses_to_start() {
    let target = Target::new().await;
    let mut svc = Service::start(&target, free_port(), "out.log");
    svc.wait_ready().await;
    svc.kill9();
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let out = target
        .command(free_port())
        .env("LEADBRIDGE_MASTER_KEY", other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("not the key this database was created with"),
        "{text}"
    );
    assert!(!text.contains(other));
}

#[tokio::test]
async fn healthcheck_exits_0_when_ready_and_1_when_nothing_listens() {
    let target = Target::new().await;
    let port = free_port();
    let mut svc = Service::start(&target, port, "out.log");
    svc.wait_ready().await;
    let ok = target.command(port).arg("healthcheck").status().unwrap();
    assert!(ok.success());
    svc.kill9();
    let down = target
        .command(port)
        .arg("healthcheck")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(down.code(), Some(1));
}

/// A connection `acme` on the emulator's org, with `extra` settings.
pub(crate) fn emulator_connection(emu: &crate::emulator::Emulator, extra: Value) -> Value {
    let cfg = emu.org.lock().unwrap().cfg.clone();
    let mut body = json!({
        "name": "acme", "domainUrl": emu.base, "consumerKey": cfg.client_id,
        "consumerSecret": cfg.client_secret, "company": "Acme Ltd", "enabled": true
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    body
}

/// Counts the connection's clients in `state`, through the API.
pub(crate) async fn count_in_state(base: &str, token: &str, state: &str) -> usize {
    let page: Value = reqwest::Client::new()
        .get(format!(
            "{base}/v1/connections/acme/clients?state={state}&limit=500"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["clients"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_kill_9_in_the_middle_of_a_sync_loses_nothing() {
    use crate::emulator::{Emulator, OrgConfig};
    let emu = Emulator::start(OrgConfig::default()).await;
    // Slow writes, so the kill lands while some are in flight.
    emu.set_latency(Duration::from_millis(300));
    let target = Target::new().await;
    let port = free_port();
    // With PostgreSQL the killed process's leases are taken over when they end
    // (SQLite, one process, releases them at start): keep them short here.
    let env = [
        ("LEADBRIDGE_ALLOW_INSECURE_SALESFORCE", "true"),
        ("LEADBRIDGE_LEASE_SECS", "3"),
        ("LEADBRIDGE_SALESFORCE_TIMEOUT_SECS", "1"),
    ];
    let mut svc = Service::start_with(&target, port, "first.log", &env);
    svc.wait_ready().await;
    let token = svc.admin_token();
    let client = reqwest::Client::new();
    let created = svc
        .create_connection(emulator_connection(
            &emu,
            json!({"enabled": false, "externalIdField": "B2C_Client_Id__c"}),
        ))
        .await;
    let secret = created["webhookSecret"].as_str().unwrap().to_string();
    let event = |i: usize, v: usize| {
        json!({"type": "client.updated", "occurredAt": format!("2026-11-28T10:00:0{v}Z"),
               "data": {"clientId": i, "email": format!("c{i}-v{v}@x.io"), "info": {"lastName": format!("L{i}")}}})
    };
    // Wave 1: 30 clients, held, then released together: one batch that commits.
    for i in 0..30 {
        let res = svc
            .post_event(&secret, &format!("w1-{i}"), &event(i, 1))
            .await;
        assert_eq!(res.status(), 202);
    }
    let res = client
        .patch(format!("{}/v1/connections/acme", svc.base))
        .bearer_auth(&token)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_in_state(&svc.base, &token, "synced").await < 30 {
        assert!(
            Instant::now() < deadline,
            "wave 1 not synced: {}",
            svc.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Wave 2: updates to half of them and 30 new clients. Kill as soon as their
    // batch reaches the emulator (it holds each call 300 ms).
    let calls_before = emu.writes();
    for i in 15..60 {
        let res = svc
            .post_event(&secret, &format!("w2-{i}"), &event(i, 2))
            .await;
        assert_eq!(res.status(), 202);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while emu.writes() == calls_before {
        assert!(
            Instant::now() < deadline,
            "wave 2 never left: {}",
            svc.logs()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    svc.kill9();
    let clients = 60;

    let mut svc = Service::start_with(&target, port, "second.log", &env);
    svc.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_in_state(&svc.base, &token, "synced").await < clients {
        assert!(
            Instant::now() < deadline,
            "not all synced after restart: {}",
            svc.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every client is there exactly once, with its data (upserts are idempotent).
    let leads = emu.leads();
    assert_eq!(leads.len(), clients);
    for i in 0..clients {
        let lead = leads
            .iter()
            .find(|l| l["B2C_Client_Id__c"].as_str() == Some(i.to_string().as_str()))
            .unwrap_or_else(|| panic!("client {i} is missing"));
        let version = if i < 15 { 1 } else { 2 };
        assert_eq!(lead["Email"], format!("c{i}-v{version}@x.io"));
        assert_eq!(lead["LastName"], format!("L{i}"));
    }
    assert_eq!(
        emu.max_in_flight_per_lead(),
        1,
        "two writes for one client overlapped"
    );
}

#[tokio::test]
async fn the_worker_can_run_alone_beside_a_serve_without_one() {
    use crate::emulator::{Emulator, OrgConfig};
    let emu = Emulator::start(OrgConfig::default()).await;
    let target = Target::new().await;
    let port = free_port();
    let insecure = ("LEADBRIDGE_ALLOW_INSECURE_SALESFORCE", "true");
    let mut svc = Service::start_with(
        &target,
        port,
        "serve.log",
        &[insecure, ("LEADBRIDGE_WORKER", "false")],
    );
    svc.wait_ready().await;
    let token = svc.admin_token();
    let created = svc
        .create_connection(emulator_connection(&emu, json!({})))
        .await;
    let secret = created["webhookSecret"].as_str().unwrap().to_string();
    let body = json!({"type": "client.created", "data": {"clientId": 1, "email": "a@x.io"}});
    assert_eq!(svc.post_event(&secret, "evt-1", &body).await.status(), 202);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(emu.writes(), 0, "serve without its worker writes nothing");

    let log = std::fs::File::create(target.dir().join("worker.log")).unwrap();
    let mut worker = target
        .command(free_port())
        .env(insecure.0, insecure.1)
        .arg("worker")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_in_state(&svc.base, &token, "synced").await < 1 {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(target.dir().join("worker.log")).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(emu.leads()[0]["Email"], "a@x.io");
    worker.kill().unwrap();
    worker.wait().unwrap();
}

/// Delivers event `i` to `first`, falling back to `second` when `first` is down
/// (as a load balancer and B2CORE's retries would).
pub(crate) async fn deliver(
    client: &reqwest::Client,
    first: &str,
    second: &str,
    secret: &str,
    i: usize,
    body: &Value,
) {
    let hook = Webhook::standard(
        secret,
        &format!("evt-{i}"),
        chrono::Utc::now().timestamp(),
        &body.to_string(),
    );
    for base in [first, second, second] {
        let mut req = client
            .post(format!("{base}/v1/webhooks/acme"))
            .body(hook.body.clone());
        for (k, v) in &hook.headers {
            req = req.header(k, v);
        }
        if let Ok(res) = req.send().await {
            if matches!(res.status().as_u16(), 200 | 202) {
                return;
            }
        }
    }
    panic!("event {i} was refused by both replicas");
}

#[tokio::test]
async fn two_replicas_on_one_postgres_survive_a_sigkill_and_write_each_client_once_at_a_time() {
    use crate::emulator::{Emulator, OrgConfig};
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let target = Target::new().await;
    if !target.db.is_postgres() {
        // Said on stderr by the backend's notice: this one needs the Postgres suite.
        return;
    }
    let emu = Emulator::start(OrgConfig::default()).await;
    // Calls take long enough that two replicas writing one client would overlap.
    emu.set_latency(Duration::from_millis(250));
    let env = [
        ("LEADBRIDGE_ALLOW_INSECURE_SALESFORCE", "true"),
        ("LEADBRIDGE_LEASE_SECS", "3"),
        ("LEADBRIDGE_SALESFORCE_TIMEOUT_SECS", "1"),
    ];
    let mut a = Service::start_with(&target, free_port(), "a.log", &env);
    let mut b = Service::start_with(&target, free_port(), "b.log", &env);
    a.wait_ready().await;
    b.wait_ready().await;
    let created = a
        .create_connection(emulator_connection(
            &emu,
            json!({"externalIdField": "B2C_Client_Id__c"}),
        ))
        .await;
    let secret = created["webhookSecret"].as_str().unwrap().to_string();

    // 2,000 events over 300 clients; a client's events alternate between the
    // replicas, and each later version of a client happened later.
    let (clients, events) = (300usize, 2000usize);
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    let body = move |i: usize| {
        let (client, version) = (i % clients, i / clients);
        json!({
            "type": "client.updated",
            "occurredAt": (base + chrono::Duration::seconds(version as i64)).to_rfc3339(),
            "data": {"clientId": client, "email": format!("c{client}-v{version}@x.io"),
                     "info": {"lastName": format!("L{client}")}}
        })
    };
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (sent, secret) = (sent.clone(), secret.clone());
        let (a_base, b_base) = (a.base.clone(), b.base.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            futures_util::stream::iter(0..events)
                .for_each_concurrent(8, |i| {
                    let (http, sent, secret) = (http.clone(), sent.clone(), secret.clone());
                    // Even events go to A (falling back to B once A is dead), odd ones to B.
                    let first = if i % 2 == 0 {
                        a_base.clone()
                    } else {
                        b_base.clone()
                    };
                    let second = b_base.clone();
                    async move {
                        deliver(&http, &first, &second, &secret, i, &body(i)).await;
                        // A steady stream, so both replicas run many rounds that overlap.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .await;
        })
    };
    // Kill replica A halfway, with webhooks and writes in flight.
    while sent.load(Ordering::SeqCst) < events / 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    a.kill9();
    sender.await.unwrap();

    let token = b.admin_token();
    let store = leadbridge::store::open(&target.database_url())
        .await
        .unwrap();
    let conn = store
        .get_connection(&ConnectionName::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let synced = count_in_state(&b.base, &token, "synced").await;
        let pending = store.pending_events(&conn.id).await.unwrap().len();
        if synced == clients && pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{synced} of {clients} synced, {pending} events stranded: {}",
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    store.close().await;

    eprintln!(
        "DEBUG calls={} max_in_flight={}",
        emu.writes(),
        emu.max_in_flight_per_lead()
    );
    let leads = emu.leads();
    assert_eq!(
        leads.len(),
        clients,
        "one Lead per client, nothing duplicated"
    );
    let last_version = (events - 1) / clients;
    for c in 0..clients {
        let lead = leads
            .iter()
            .find(|l| l["B2C_Client_Id__c"].as_str() == Some(c.to_string().as_str()))
            .unwrap_or_else(|| panic!("client {c} has no Lead"));
        // The newest event of client c is the largest i with i % clients == c.
        let newest = if c <= (events - 1) % clients {
            last_version
        } else {
            last_version - 1
        };
        assert_eq!(lead["Email"], format!("c{c}-v{newest}@x.io"), "client {c}");
    }
    assert_eq!(
        emu.max_in_flight_per_lead(),
        1,
        "a client had two writes in flight at once"
    );
}
