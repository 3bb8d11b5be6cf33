//! Builds the application: store, key check, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::clock::{Clock, SystemClock};
use crate::configuration::Settings;
use crate::crypto::MasterKey;
use crate::http::{self, AppState};
use crate::salesforce::url::Rules;
use crate::salesforce::Salesforce;
use crate::store::{self, Store};
use crate::sync::Worker;
use tokio::sync::watch;

use crate::sync::pace::Wake;

const KEY_CHECK: &str = "master_key_check";

/// A bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    worker: Arc<Worker>,
    store: Arc<Store>,
    run_worker: bool,
    shutdown_timeout: Duration,
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
        store: Arc<Store>,
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
        let salesforce = Arc::new(salesforce_client(
            settings.salesforce,
            settings.allow_insecure_salesforce,
        ));
        let wake = Arc::new(Wake::default());
        let worker = Arc::new(Worker::new(
            store.clone(),
            salesforce.clone(),
            master_key.clone(),
            clock.clone(),
            settings.sync,
            wake.clone(),
        ));
        let ingest = crate::ingest::Ingest::start(store.clone())?;
        let state = web::Data::new(AppState {
            store: store.clone(),
            ingest,
            receivers: crate::webhook::Receivers::new(settings.limits.max_previous_secrets),
            limits: settings.limits,
            master_key,
            salesforce,
            wake,
            admin_token: settings.admin_token,
            rules: Rules {
                allow_insecure_salesforce: settings.allow_insecure_salesforce,
            },
            max_body_bytes: settings.max_body_bytes,
            body_budget: crate::http::extract::BodyBudget::new(
                settings.limits.max_body_bytes_in_flight,
            ),
            body_timeout: settings.body_timeout,
            backlog: crate::metrics::BacklogCache::new(settings.metrics_backlog_ttl),
            quota_budget_percent: settings.sync.quota_budget_percent,
            clock,
        });
        let (workers, per_worker) = connection_limits(settings.max_connections);
        let guard = http::connection_guard::ConnectionGuard::new(
            settings.limits.write_timeout,
            settings.limits.max_connections_per_peer,
        );
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(
                    http::body_guard::hold_request_body,
                ))
                .wrap(TracingLogger::<http::request_span::PathOnly>::new())
                .app_data(state.clone())
                .app_data(http::query_config())
                .configure(http::routes)
                .default_service(web::to(http::not_found))
        })
        .on_connect(move |conn, data| guard.on_connect(conn, data))
        // Signals are handled in `run_until`, for the server and the worker together.
        .disable_signals()
        .workers(workers)
        .max_connections(per_worker)
        .shutdown_timeout(settings.shutdown_timeout.as_secs().max(1))
        .listen(listener)?
        .run();
        tracing::info!(address = %settings.listen, port, "listening");
        Ok(Self {
            port,
            server,
            worker,
            store,
            run_worker: settings.run_worker,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The sync worker, for driving it round by round (tests).
    pub fn worker(&self) -> Arc<Worker> {
        self.worker.clone()
    }

    /// Serves until SIGINT/SIGTERM, then stops within the shutdown deadline.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes (or the server fails). Then, within the
    /// shutdown deadline: no new connections are accepted, requests in flight
    /// finish, and the worker finishes its round. Writes still running at the
    /// deadline are abandoned and their clients released, so another process
    /// (or the next start) writes them; nothing stored is lost.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let (stop_worker, stopped) = watch::channel(false);
        let worker = self
            .run_worker
            .then(|| tokio::spawn(self.worker.clone().run(stopped)));
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let mut deadline = tokio::time::Instant::now();
        let result = tokio::select! {
            r = &mut server => r.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            _ = stop => {
                deadline = tokio::time::Instant::now() + self.shutdown_timeout;
                tracing::info!(deadline_secs = self.shutdown_timeout.as_secs(), "stopping: no new requests; finishing the work in flight");
                let _ = stop_worker.send(true);
                let stopping = async {
                    handle.stop(true).await;
                    server.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
                };
                tokio::time::timeout_at(deadline, stopping)
                    .await
                    .unwrap_or(Ok(()))
            }
        };
        let _ = stop_worker.send(true);
        if deadline <= tokio::time::Instant::now() {
            // The server ended on its own: the worker gets the whole deadline.
            deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        }
        if let Some(task) = worker {
            finish_worker(task, &self.worker, self.store.as_ref(), deadline).await;
        }
        tracing::info!("leadbridge stopped");
        result
    }
}

/// Waits up to `deadline` for the worker's round to end; past it, abandons
/// the writes in flight and releases their clients.
async fn finish_worker(
    mut task: tokio::task::JoinHandle<()>,
    worker: &Worker,
    store: &Store,
    deadline: tokio::time::Instant,
) {
    if tokio::time::timeout_at(deadline, &mut task).await.is_ok() {
        return;
    }
    task.abort();
    let _ = task.await;
    match store.release_leases_of(worker.owner()).await {
        Ok(released) => tracing::warn!(
            released,
            "shutdown deadline reached: writes in flight abandoned, their clients released"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "shutdown deadline reached; leases could not be released and will expire")
        }
    }
}

/// Worker threads, and connections each may hold: `max` in all, and never so
/// many that the file descriptors left (the store, Salesforce, the log) run
/// out. Past the limit, new connections wait in the listen queue.
fn connection_limits(max: usize) -> (usize, usize) {
    const RESERVED_FDS: usize = 64;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    let total = max.min(fds.saturating_sub(RESERVED_FDS).max(workers));
    if total < max {
        tracing::warn!(
            max_connections = total,
            fd_limit = fds,
            "LEADBRIDGE_MAX_CONNECTIONS lowered to fit the file descriptor limit"
        );
    }
    (workers, total.div_ceil(workers).max(1))
}

/// The Salesforce client, held to the same host rules as `domainUrl`.
fn salesforce_client(
    settings: crate::salesforce::SalesforceSettings,
    insecure: bool,
) -> Salesforce {
    Salesforce::new(crate::salesforce::SalesforceSettings {
        allow_insecure: insecure,
        ..settings
    })
}

/// Runs only the sync worker until SIGINT/SIGTERM.
pub async fn run_worker_alone(settings: Settings) -> anyhow::Result<()> {
    let store = store::open(&settings.database_url).await?;
    check_master_key(store.as_ref(), &settings.master_key).await?;
    prepare_single_process_store(&settings, store.as_ref()).await?;
    let worker = Arc::new(Worker::new(
        store.clone(),
        Arc::new(salesforce_client(
            settings.salesforce,
            settings.allow_insecure_salesforce,
        )),
        Arc::new(settings.master_key),
        Arc::new(SystemClock),
        settings.sync,
        Arc::new(Wake::default()),
    ));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(worker.clone().run(stopped));
    shutdown_signal().await;
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + settings.shutdown_timeout;
    finish_worker(task, &worker, store.as_ref(), deadline).await;
    Ok(())
}

/// An SQLite store serves one process: leases left by a killed predecessor are released.
async fn prepare_single_process_store(settings: &Settings, store: &Store) -> anyhow::Result<()> {
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
async fn check_master_key(store: &Store, key: &MasterKey) -> anyhow::Result<()> {
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
