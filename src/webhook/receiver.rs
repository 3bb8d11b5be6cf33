//! A connection ready to receive webhooks: its settings and opened secrets,
//! cached briefly, and the check of a request's signature by the
//! connection's scheme.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::verify::{self, SigningKey, StandardHeaders, VerifyError};
use crate::crypto::{CryptoError, MasterKey};
use crate::domain::{webhook_secret_context, Connection, ConnectionName, SignatureScheme};
use crate::store::{Store, StoreError};

/// How long this process reuses a loaded [`Receiver`]. Its own edits drop it at
/// once; another replica's edits (a new secret, a deleted connection) reach it
/// within this time. Expired secrets are refused at once either way.
pub const RECEIVER_TTL: Duration = Duration::from_secs(2);

/// Longest idempotency key kept as is; longer ones are stored as their SHA-256.
const MAX_KEY_LEN: usize = 255;

/// A connection with its webhook secrets opened, as the webhook path needs it.
pub struct Receiver {
    pub conn: Connection,
    /// `leadbridge_webhooks_total` of this connection.
    pub counts: crate::metrics::WebhookCounts,
    /// (expires_at, key) of every secret not expired when loaded, its key
    /// made for the connection's scheme.
    keys: Vec<(Option<DateTime<Utc>>, SigningKey)>,
}

/// What a verified signature tells about the request.
#[derive(Debug)]
pub struct Signed {
    /// `webhook-id` (or `svix-id`), `X-Request-Id` or the body's SHA-256: duplicates share it.
    pub idempotency_key: String,
    /// The signed `webhook-timestamp` (Standard Webhooks only).
    pub timestamp: Option<i64>,
    /// `sha256:<hex>` of the signed body when the key is not signed (hex scheme).
    pub signed_digest: Option<String>,
}

/// Why a receiver could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no connection is named `{0}`")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored secret does not open under this master key.
    #[error("a webhook secret could not be opened")]
    Sealed(#[from] CryptoError),
}

/// Receivers by connection name, each kept for [`RECEIVER_TTL`].
#[derive(Clone)]
pub struct Receivers {
    cache: moka::future::Cache<ConnectionName, Arc<Receiver>>,
    /// Rotated-out secrets that still verify beside the current one: each
    /// costs an HMAC of the whole body on a request that matches none.
    max_previous: usize,
    /// Moves on at every invalidation: a receiver read before one (secrets
    /// since revoked, say) is not kept.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for Receivers {
    fn default() -> Self {
        Self::new(crate::configuration::Limits::default().max_previous_secrets)
    }
}

impl Receivers {
    /// Receivers whose connections verify with their current secret and at
    /// most `max_previous` rotated-out ones, the newest.
    pub fn new(max_previous: usize) -> Self {
        Self {
            cache: moka::future::Cache::builder()
                .time_to_live(RECEIVER_TTL)
                .max_capacity(10_000)
                .build(),
            max_previous,
            generation: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Caches `r`, read when the generation was `seen`, unless an
    /// invalidation came since: then it is not kept (or dropped again, when
    /// the invalidation ran between the check and the insert).
    async fn keep(&self, name: ConnectionName, r: Arc<Receiver>, seen: u64) {
        if self.generation() != seen {
            return;
        }
        self.cache.insert(name.clone(), r).await;
        if self.generation() != seen {
            self.cache.invalidate(&name).await;
        }
    }

    /// The connection named `name` with its secrets, from the cache or the store.
    pub async fn get(
        &self,
        store: &Store,
        key: &MasterKey,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<Receiver>, LoadError> {
        let unknown = || LoadError::Unknown(name.to_string());
        let name = ConnectionName::parse(name).map_err(|_| unknown())?;
        if let Some(r) = self.cache.get(&name).await {
            return Ok(r);
        }
        let seen = self.generation();
        let conn = store.get_connection(&name).await?.ok_or_else(unknown)?;
        let signing_key = match conn.signature_scheme {
            SignatureScheme::StandardWebhooks => SigningKey::standard,
            SignatureScheme::HmacSha256Hex => SigningKey::hex,
        };
        let keys = store
            .valid_webhook_secrets(&conn.id, now)
            .await?
            .iter()
            // Newest first: the current secret and the latest rotated-out ones.
            .take(1 + self.max_previous)
            .map(|s| {
                key.open(&webhook_secret_context(&conn.id, &s.id), &s.sealed)
                    .map(|secret| (s.expires_at, signing_key(&secret)))
            })
            .collect::<Result<_, _>>()?;
        let counts = crate::metrics::WebhookCounts::new(conn.name.as_str());
        let r = Arc::new(Receiver { conn, counts, keys });
        self.keep(name, r.clone(), seen).await;
        Ok(r)
    }

    /// Drops the cached receiver (after this process changed the connection).
    pub async fn invalidate(&self, name: &ConnectionName) {
        // First the generation, then the cache: see `keep`.
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.cache.invalidate(name).await;
    }
}

impl Receiver {
    /// Checks the request's signature over the raw `body` by the connection's
    /// scheme, with every secret still valid at `now`. `header` reads a
    /// request header by (case-insensitive) name.
    /// What can be checked before the body is read: the signature's
    /// headers are present and, for Standard Webhooks, the timestamp is
    /// within the window. [`Receiver::verify`] checks all again with the body.
    pub fn precheck<'r>(
        &self,
        header: impl Fn(&str) -> Option<&'r str>,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        match self.conn.signature_scheme {
            SignatureScheme::StandardWebhooks => {
                verify::standard_headers_usable(standard_headers(&header), now.timestamp())
                    .map(|_| ())
            }
            SignatureScheme::HmacSha256Hex => {
                let name = self.conn.effective_signature_header();
                match header(name) {
                    Some(_) => Ok(()),
                    None => Err(VerifyError::MissingHeader(name.to_string())),
                }
            }
        }
    }

    pub fn verify<'r>(
        &self,
        header: impl Fn(&str) -> Option<&'r str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Signed, VerifyError> {
        // Expiry is checked against the clock on every request, cached or not.
        let keys = self
            .keys
            .iter()
            .filter(|(expires_at, _)| expires_at.is_none_or(|t| t > now))
            .map(|(_, k)| k);
        match self.conn.signature_scheme {
            SignatureScheme::StandardWebhooks => {
                let headers = standard_headers(&header);
                let id = verify::verify_standard_keyed(headers, body, keys, now.timestamp())?;
                Ok(Signed {
                    idempotency_key: bounded_key(id),
                    timestamp: headers.timestamp.and_then(|t| t.trim().parse().ok()),
                    // The id and timestamp are signed with the body.
                    signed_digest: None,
                })
            }
            SignatureScheme::HmacSha256Hex => {
                let name = self.conn.effective_signature_header();
                verify::verify_hex_keyed(name, header(name), body, keys)?;
                // Only the body is signed: an id header can be changed by
                // anyone replaying it, so the body's digest dedupes too.
                let digest = format!("sha256:{}", hex::encode(Sha256::digest(body)));
                let key = header("webhook-id")
                    .or_else(|| header("svix-id"))
                    .or_else(|| header("x-request-id"))
                    .filter(|k| !k.trim().is_empty())
                    .map(bounded_key)
                    .unwrap_or_else(|| digest.clone());
                Ok(Signed {
                    idempotency_key: key,
                    timestamp: None,
                    signed_digest: Some(digest),
                })
            }
        }
    }
}

/// The Standard Webhooks headers of a request. Senders built on Svix name
/// the same headers `svix-*`; a request uses one set, the `webhook-*` one
/// when it has an id.
fn standard_headers<'r>(header: &impl Fn(&str) -> Option<&'r str>) -> StandardHeaders<'r> {
    let [id, timestamp, signature] =
        if header("webhook-id").is_none() && header("svix-id").is_some() {
            ["svix-id", "svix-timestamp", "svix-signature"]
        } else {
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        };
    StandardHeaders {
        id: header(id),
        timestamp: header(timestamp),
        signature: header(signature),
    }
}

fn bounded_key(key: &str) -> String {
    if key.len() <= MAX_KEY_LEN {
        key.to_string()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(name: &ConnectionName) -> Arc<Receiver> {
        let conn = Connection::new(
            crate::domain::ConnectionId::generate(),
            name.clone(),
            Utc::now(),
        );
        Arc::new(Receiver {
            counts: crate::metrics::WebhookCounts::new(name.as_str()),
            conn,
            keys: Vec::new(),
        })
    }

    #[tokio::test]
    async fn a_receiver_read_before_an_invalidation_is_not_kept() {
        let receivers = Receivers::default();
        let name = ConnectionName::parse("acme").unwrap();
        let seen = receivers.generation();
        // A revoke lands while the receiver is being read from the store.
        receivers.invalidate(&name).await;
        receivers.keep(name.clone(), receiver(&name), seen).await;
        assert!(receivers.cache.get(&name).await.is_none());
        // One read after it is kept.
        let seen = receivers.generation();
        receivers.keep(name.clone(), receiver(&name), seen).await;
        assert!(receivers.cache.get(&name).await.is_some());
    }
}
