//! The OAuth 2.0 client credentials token: fetched once for all concurrent
//! callers, reused for the configured lifetime (Salesforce's answer names
//! none), dropped on `INVALID_SESSION_ID` or a credentials change.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::errors::{self, Failure};
use super::{is_record_id, transport, url, Credentials, Salesforce};

/// An access token and the instance it is for.
pub struct Token {
    pub(super) access_token: SecretString,
    pub instance_url: String,
    /// The user the token acts as (the run-as user), from the answer's `id`
    /// URL (`…/id/{orgId}/{userId}`).
    pub user_id: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({})", self.instance_url)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    instance_url: String,
    #[serde(default)]
    id: Option<String>,
}

impl Salesforce {
    /// The cached token, fetched once for all concurrent callers when missing.
    pub async fn token(&self, c: &Credentials) -> Result<Arc<Token>, Failure> {
        self.tokens
            .try_get_with(c.cache_key.clone(), async {
                self.fresh_token(c).await.map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())
    }

    /// A new token from the token endpoint, bypassing and not filling the cache.
    pub async fn fresh_token(&self, c: &Credentials) -> Result<Token, Failure> {
        let result = self.request_token(c).await;
        crate::metrics::token_fetch(match &result {
            Ok(_) => "ok",
            Err(f) => f.code(),
        });
        if let Err(f) = &result {
            tracing::warn!(domain = %c.domain_url, error_code = crate::metrics::token_outcome(f.code()), "salesforce token request failed");
        }
        result
    }

    async fn request_token(&self, c: &Credentials) -> Result<Token, Failure> {
        let url = format!("{}/services/oauth2/token", c.domain_url);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.expose_secret()),
        ];
        let res = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        let status = res.status();
        let body = super::read_capped(res, self.caps.0).await?;
        crate::metrics::salesforce_request("token", status.as_u16());
        if !status.is_success() {
            return Err(errors::classify_oauth(status.as_u16(), &body));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Failure::transient(
                errors::codes::BAD_TOKEN_ANSWER,
                format!("unreadable token answer: {e}"),
            )
        })?;
        // Data calls go to `instance_url` with the token: it must be an org
        // URL by the same rules as `domainUrl`.
        let instance_url = url::domain_url(&answer.instance_url, self.rules).map_err(|why| {
            Failure::Permanent {
                code: errors::codes::BAD_INSTANCE_URL.into(),
                message: format!("the token answer's instance_url {why}"),
            }
        })?;
        tracing::info!(domain = %c.domain_url, "salesforce token fetched");
        let user_id = answer
            .id
            .as_deref()
            .and_then(|url| url.trim_end_matches('/').rsplit('/').next())
            .filter(|id| is_record_id(id))
            .map(str::to_string);
        Ok(Token {
            access_token: SecretString::from(answer.access_token),
            instance_url,
            user_id,
        })
    }

    /// Drops the cached token if it is still `failed` (another caller may have renewed it).
    pub async fn drop_token(&self, c: &Credentials, failed: &Arc<Token>) {
        if let Some(current) = self.tokens.get(&c.cache_key).await {
            if Arc::ptr_eq(&current, failed) {
                self.tokens.invalidate(&c.cache_key).await;
            }
        }
    }

    /// Forgets the token cached for these credentials (they are being replaced).
    pub async fn forget_token(&self, c: &Credentials) {
        self.tokens.invalidate(&c.cache_key).await;
    }
}
