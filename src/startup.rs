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
use crate::store::{self, Store};

const KEY_CHECK: &str = "master_key_check";

/// A bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
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
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        crate::metrics::handle();
        let state = web::Data::new(AppState {
            store,
            master_key: Arc::new(settings.master_key),
            admin_token: settings.admin_token,
            rules: Rules {
                allow_insecure_salesforce: settings.allow_insecure_salesforce,
            },
            max_body_bytes: settings.max_body_bytes,
            clock,
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(
                    http::body_guard::hold_request_body,
                ))
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .configure(http::routes)
                .default_service(web::to(http::not_found))
        })
        .listen(listener)?
        .run();
        tracing::info!(address = %settings.listen, port, "listening");
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then finishes the requests in flight.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
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
