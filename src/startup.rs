//! Builds the application: store, key check, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::clock::{Clock, SystemClock};
use crate::configuration::Settings;
use crate::connections::Rules;
use crate::crypto::MasterKey;
use crate::http::{self, AppState};
use crate::salesforce::Salesforce;
use crate::store::{self, Store};
use crate::sync::Worker;
use tokio::sync::{watch, Notify};

const KEY_CHECK: &str = "master_key_check";

/// A bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    worker: Arc<Worker>,
    run_worker: bool,
}

impl Application {
    /// Opens the configured store and binds the listen address (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = store::open(&settings.database_url).await?;
        Self::build_with(settings, store, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the store and clock given (tests).
    pub async fn build_with(
        settings: Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        check_master_key(store.as_ref(), &settings.master_key).await?;
        if settings.run_worker {
            prepare_single_process_store(&settings, store.as_ref()).await?;
        }
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        crate::metrics::handle();
        let master_key = Arc::new(settings.master_key);
        let salesforce = Arc::new(Salesforce::new(settings.salesforce));
        let wake = Arc::new(Notify::new());
        let worker = Arc::new(Worker::new(
            store.clone(),
            salesforce.clone(),
            master_key.clone(),
            clock.clone(),
            settings.sync,
            wake.clone(),
        ));
        let ingest = crate::ingest::Ingest::start(store.clone());
        let state = web::Data::new(AppState {
            store,
            ingest,
            receivers: http::webhooks::receiver_cache(),
            master_key,
            salesforce,
            wake,
            admin_token: settings.admin_token,
            rules: Rules {
                allow_insecure_salesforce: settings.allow_insecure_salesforce,
            },
            max_body_bytes: settings.max_body_bytes,
            quota_budget_percent: settings.sync.quota_budget_percent,
            clock,
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(
                    http::body_guard::hold_request_body,
                ))
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .app_data(http::query_config())
                .configure(http::routes)
                .default_service(web::to(http::not_found))
        })
        .listen(listener)?
        .run();
        tracing::info!(address = %settings.listen, port, "listening");
        Ok(Self {
            port,
            server,
            worker,
            run_worker: settings.run_worker,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The sync worker, for driving it round by round (tests).
    pub fn worker(&self) -> Arc<Worker> {
        self.worker.clone()
    }

    /// Serves until SIGINT/SIGTERM, then finishes the requests in flight. The
    /// sync worker runs beside the server unless it was turned off.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let worker = self
            .run_worker
            .then(|| tokio::spawn(self.worker.clone().run(stopped)));
        let result = self.server.await;
        let _ = stop.send(true);
        if let Some(w) = worker {
            let _ = w.await;
        }
        result
    }
}

/// Runs only the sync worker until SIGINT/SIGTERM.
pub async fn run_worker_alone(settings: Settings) -> anyhow::Result<()> {
    let store = store::open(&settings.database_url).await?;
    check_master_key(store.as_ref(), &settings.master_key).await?;
    prepare_single_process_store(&settings, store.as_ref()).await?;
    let worker = Arc::new(Worker::new(
        store,
        Arc::new(Salesforce::new(settings.salesforce)),
        Arc::new(settings.master_key),
        Arc::new(SystemClock),
        settings.sync,
        Arc::new(Notify::new()),
    ));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(worker.run(stopped));
    shutdown_signal().await;
    let _ = stop.send(true);
    task.await?;
    Ok(())
}

/// An SQLite store serves one process: leases left by a killed predecessor are released.
async fn prepare_single_process_store(
    settings: &Settings,
    store: &dyn Store,
) -> anyhow::Result<()> {
    if settings.database_url.starts_with("sqlite:") {
        let released = store.release_all_leases().await?;
        if released > 0 {
            tracing::info!(released, "released the leases of a previous run");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler installs");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Refuses to start with a master key other than the one the database was made with.
async fn check_master_key(store: &dyn Store, key: &MasterKey) -> anyhow::Result<()> {
    let sealed = store
        .meta_insert_if_absent(KEY_CHECK, &key.seal(KEY_CHECK, "leadbridge"))
        .await
        .context("the store cannot be read")?;
    key.open(KEY_CHECK, &sealed).map(|_| ()).map_err(|_| {
        anyhow::anyhow!(
            "LEADBRIDGE_MASTER_KEY is not the key this database was created with: its stored secrets cannot be read"
        )
    })
}
