//! The real `leadbridge` binary, started as an operator would: in an empty
//! directory, on its default SQLite store, making its own admin token.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::Value;

pub struct Service {
    child: Child,
    base: String,
    pub token: String,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Service {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("service.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadbridge"));
        for (k, _) in std::env::vars() {
            if k.starts_with("LEADBRIDGE_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .current_dir(dir.path())
            .env("LEADBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
            .env("LEADBRIDGE_LOG_FORMAT", "json")
            // The emulator listens on plain http on 127.0.0.1.
            .env("LEADBRIDGE_ALLOW_INSECURE_SALESFORCE", "true")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut svc = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            token: String::new(),
            dir,
            http: reqwest::Client::new(),
        };
        svc.wait_ready().await;
        svc.token = std::fs::read_to_string(svc.dir.path().join("leadbridge.db.admin-token"))
            .unwrap()
            .trim()
            .to_string();
        svc
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = self.http.get(self.url("/health/ready")).send().await {
                if res.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("leadbridge exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "leadbridge did not become ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts `body` signed with `secret` as B2CORE would; returns the status.
    pub async fn send_webhook(&self, connection: &str, secret: &str, body: &Value) -> u16 {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let now = chrono::Utc::now().timestamp();
        let body = body.to_string();
        let signature = leadbridge::webhook::sign_standard(
            &SecretString::from(secret.to_string()),
            &id,
            now,
            body.as_bytes(),
        );
        self.http
            .post(self.url(&format!("/v1/webhooks/{connection}")))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}
