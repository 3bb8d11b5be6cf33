//! `spawn_app()`: a fresh service on a free port with its own SQLite file, a
//! manual clock, and every log line captured for inspection.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::Utc;
use leadbridge::clock::{Clock, ManualClock};
use leadbridge::configuration::{Limits, LogFormat, Settings};
use leadbridge::crypto::{generate_admin_token, MasterKey};
use leadbridge::domain::{ConnectionId, ConnectionName};
use leadbridge::salesforce::SalesforceSettings;
use leadbridge::startup::Application;
use leadbridge::store::Store;
use leadbridge::sync::{SyncSettings, Worker};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::backend::TestDb;
use crate::emulator::{Emulator, OrgConfig};

/// Every log line written by any app in this test process.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<LogCapture> = OnceLock::new();

fn logs() -> &'static LogCapture {
    LOGS.get_or_init(|| {
        let capture = LogCapture::default();
        let writer = capture.clone();
        // Debug level, so a secret leaking into any log line at all is caught.
        leadbridge::telemetry::init(LogFormat::Json, "debug", move || writer.clone());
        capture
    })
}

/// The text of every captured log line so far.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

pub struct TestApp {
    pub address: String,
    pub admin_token: String,
    pub master_key: String,
    pub store: Arc<Store>,
    pub clock: Arc<ManualClock>,
    pub client: reqwest::Client,
    pub worker: Arc<Worker>,
    pub db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app after `tweak` has adjusted its settings.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    logs();
    let db = TestDb::new().await;
    let admin_token = generate_admin_token();
    let master_key = MasterKey::generate_encoded();
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: db.url.clone(),
        admin_token: admin_token.clone(),
        master_key: MasterKey::parse(master_key.expose_secret()).unwrap(),
        allow_insecure_salesforce: false,
        max_body_bytes: 1024 * 1024,
        // Tests drive the worker round by round with `TestApp::sync`.
        run_worker: false,
        shutdown_timeout: std::time::Duration::from_secs(5),
        salesforce: SalesforceSettings::default(),
        sync: SyncSettings::default(),
        // Counted at every scrape, so tests see what they just did.
        metrics_backlog_ttl: std::time::Duration::ZERO,
        body_timeout: std::time::Duration::from_secs(30),
        max_connections: 1000,
        limits: Limits::default(),
    };
    tweak(&mut settings);
    let store = db.open().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = Application::build_with(settings, store.clone(), clock.clone())
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let worker = app.worker();
    // Stopped only with the test: no signal handlers in the test process.
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        admin_token: admin_token.expose_secret().to_string(),
        master_key: master_key.expose_secret().to_string(),
        store,
        clock,
        client: reqwest::Client::new(),
        worker,
        db,
    }
}

/// An app that may point connections at the emulator, and an emulator org.
pub async fn spawn_with_org(org: OrgConfig) -> (TestApp, Emulator) {
    let app = spawn_app_with(|s| s.allow_insecure_salesforce = true).await;
    (app, Emulator::start(org).await)
}

/// A webhook request about to be sent: body and headers.
pub struct Webhook {
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Webhook {
    /// Signed per Standard Webhooks with `secret`, id `id`, at `timestamp`.
    pub fn standard(secret: &str, id: &str, timestamp: i64, body: &str) -> Self {
        let sig = leadbridge::webhook::sign_standard(
            &SecretString::from(secret.to_string()),
            id,
            timestamp,
            body.as_bytes(),
        );
        Self {
            body: body.into(),
            headers: vec![
                ("webhook-id".into(), id.into()),
                ("webhook-timestamp".into(), timestamp.to_string()),
                ("webhook-signature".into(), sig),
            ],
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A minimal client event body.
pub fn client_event(client_id: impl Into<Value>) -> String {
    json!({"type": "client.updated", "data": {"clientId": client_id.into(), "email": "a@example.com"}})
        .to_string()
}

impl TestApp {
    pub fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.admin_token)
    }

    /// Creates a connection; returns the create answer (with `webhookSecret`).
    pub async fn create_connection(&self, body: Value) -> Value {
        let res = self
            .admin(reqwest::Method::POST, "/v1/connections")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            201,
            "create failed: {}",
            res.text().await.unwrap()
        );
        res.json().await.unwrap()
    }

    /// Creates connection `name` with defaults; returns its webhook secret.
    pub async fn connection(&self, name: &str) -> String {
        self.create_connection(json!({"name": name})).await["webhookSecret"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn post_webhook(&self, connection: &str, hook: &Webhook) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(&format!("/v1/webhooks/{connection}")))
            .header("content-type", "application/json")
            .body(hook.body.clone());
        for (k, v) in &hook.headers {
            req = req.header(k, v);
        }
        req.send().await.unwrap()
    }

    /// Runs worker rounds until nothing is due; returns the clients claimed.
    pub async fn sync(&self) -> usize {
        let mut total = 0;
        for _ in 0..50 {
            let n = self.worker.run_once().await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
        panic!("the worker still had due clients after 50 rounds");
    }

    /// Creates an enabled connection `name` on the emulator's org; returns its webhook secret.
    pub async fn connect(&self, emu: &Emulator, name: &str, extra: Value) -> String {
        let cfg = emu.org.lock().unwrap().cfg.clone();
        let mut body = json!({
            "name": name, "domainUrl": emu.base, "consumerKey": cfg.client_id,
            "consumerSecret": cfg.client_secret, "company": "Acme Ltd", "enabled": true,
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        self.create_connection(body).await["webhookSecret"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Sends a signed client event with a fresh id.
    pub async fn send_event(
        &self,
        connection: &str,
        secret: &str,
        body: &Value,
    ) -> reqwest::Response {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let hook = Webhook::standard(secret, &id, self.now(), &body.to_string());
        self.post_webhook(connection, &hook).await
    }

    /// `GET /v1/connections/{connection}/clients/{client}`.
    pub async fn client_state(&self, connection: &str, client: &str) -> Value {
        let res = self
            .admin(
                reqwest::Method::GET,
                &format!("/v1/connections/{connection}/clients/{client}"),
            )
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The stored id of connection `name`.
    pub async fn connection_id(&self, name: &str) -> ConnectionId {
        let name = ConnectionName::parse(name).unwrap();
        self.store.get_connection(&name).await.unwrap().unwrap().id
    }
}

/// Asserts a problem+json answer with `status` and `code`; returns its body.
pub async fn assert_problem(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(
        body["type"],
        format!("https://leadbridge.dev/problems/{code}")
    );
    body
}
