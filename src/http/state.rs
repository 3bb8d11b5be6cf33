//! What every handler can reach: the store, the caches and the settings.

use std::sync::Arc;

use secrecy::SecretString;

use super::ApiError;
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::domain::{Connection, ConnectionName};
use crate::salesforce::url::Rules;
use crate::store::Store;

/// What every handler can reach.
pub struct AppState {
    pub store: Arc<Store>,
    pub master_key: Arc<MasterKey>,
    pub salesforce: Arc<crate::salesforce::Salesforce>,
    /// Connections with opened webhook secrets, reused briefly by the webhook path.
    pub receivers: crate::webhook::Receivers,
    /// Ceilings on what callers can make the service hold.
    pub limits: crate::configuration::Limits,
    /// Group commit of accepted webhooks.
    pub ingest: crate::ingest::Ingest,
    /// Wakes the sync worker when an event is stored.
    pub wake: Arc<crate::sync::pace::Wake>,
    pub admin_token: SecretString,
    pub rules: Rules,
    /// Percent of the daily API allocation past which only urgent writes go out.
    pub quota_budget_percent: u8,
    pub max_body_bytes: usize,
    /// Webhook body bytes all requests may hold at once.
    pub body_budget: super::extract::BodyBudget,
    /// How long a request body may take to arrive (a backfill: may stall).
    pub body_timeout: std::time::Duration,
    /// What `/metrics` last counted of the backlog.
    pub backlog: crate::metrics::BacklogCache,
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// Every edit of a connection goes through this: it drops the caches
    /// the edit makes stale.
    pub fn edit(&self) -> crate::connections::edit::Edit<'_> {
        crate::connections::edit::Edit {
            store: &self.store,
            receivers: &self.receivers,
            salesforce: &self.salesforce,
            master_key: &self.master_key,
            limits: self.limits,
        }
    }

    /// The connection named `name`, or 404 (a name that cannot exist is unknown too).
    pub async fn connection(&self, name: &str) -> Result<Connection, ApiError> {
        let not_found = || {
            ApiError::NotFound(format!(
                "no connection is named {}",
                super::problem::shown_name(name)
            ))
        };
        let name = ConnectionName::parse(name).map_err(|_| not_found())?;
        self.store
            .get_connection(&name)
            .await?
            .ok_or_else(not_found)
    }
}
