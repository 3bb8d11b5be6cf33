//! Which store the suite runs against: SQLite by default, PostgreSQL when
//! `LEADBRIDGE_TEST_POSTGRES_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/test`).
//! Each test gets a database of its own.

use std::io::Write;
use std::sync::{Arc, Once};

use leadbridge::store::Store;
use sqlx::Connection;

pub const POSTGRES_ENV: &str = "LEADBRIDGE_TEST_POSTGRES_URL";

static NOTICE: Once = Once::new();

/// The Postgres server to use, if the Postgres suite was asked for.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            NOTICE.call_once(|| {
                // Straight to the process's stderr: libtest captures eprintln!.
                let _ = writeln!(
                    std::io::stderr(),
                    "\nNOTE: the PostgreSQL suite did NOT run; these tests used SQLite.\n\
                     Run it with: {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432/test cargo test\n"
                );
            });
            None
        }
    }
}

/// A database for one test, removed when dropped.
pub struct TestDb {
    pub url: String,
    /// (server URL, database name) of a Postgres database to drop.
    postgres: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        match postgres_url() {
            None => Self {
                url: format!("sqlite://{}", dir.path().join("test.db").display()),
                postgres: None,
                _dir: dir,
            },
            Some(server) => {
                let name = format!("leadbridge_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&server)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{POSTGRES_ENV} is set but PostgreSQL cannot be reached: {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let _ = conn.close().await;
                let mut url = url::Url::parse(&server).unwrap();
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    postgres: Some((server, name)),
                    _dir: dir,
                }
            }
        }
    }

    /// An SQLite database whatever the suite's backend (tests about SQLite itself).
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: format!("sqlite://{}", dir.path().join("test.db").display()),
            postgres: None,
            _dir: dir,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The directory the SQLite file (and its secret files) live in.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn open(&self) -> Arc<Store> {
        leadbridge::store::open(&self.url).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside a runtime: use a thread with one of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            });
        })
        .join();
    }
}
