//! Secrets at rest: AES-256-GCM under the master key, and generation of new secrets.
//!
//! Every sealed value is bound to where it lives (its "context", e.g. the
//! connection id and the field name) as associated data, so a ciphertext copied
//! into another row or column does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};

/// Prefix of every sealed value, so the format can change later.
const SEALED_PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

/// The 32-byte master key. Its `Debug` prints nothing of the key.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

/// Why a master key or a sealed value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes encoded as base64 (e.g. `openssl rand -base64 32`)")]
    BadMasterKey,
    #[error("a stored secret could not be decrypted: wrong master key or damaged data")]
    Undecryptable,
}

impl MasterKey {
    /// Parses a base64 (standard alphabet, padded or not) 32-byte key.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| CryptoError::BadMasterKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadMasterKey)?;
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    /// A new random key, as the base64 text that `parse` takes.
    pub fn generate_encoded() -> SecretString {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        SecretString::from(STANDARD.encode(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose_secret().into())
    }

    /// Encrypts `plaintext` for the place named by `context`.
    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    /// Decrypts a value made by `seal` with the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<SecretString, CryptoError> {
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(CryptoError::Undecryptable)?;
        let raw = STANDARD
            .decode(encoded)
            .map_err(|_| CryptoError::Undecryptable)?;
        if raw.len() < NONCE_LEN {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let plaintext = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| CryptoError::Undecryptable)
    }
}

/// A new webhook secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_webhook_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(format!("whsec_{}", STANDARD.encode(bytes)))
}

/// A new admin bearer token: 32 random bytes, base64url without padding.
pub fn generate_admin_token() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// Constant-time equality; different lengths are unequal (the length itself is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::parse(MasterKey::generate_encoded().expose_secret()).unwrap()
    }

    #[test]
    fn sealed_value_opens_with_the_same_key_and_context() {
        let k = key();
        let sealed = k.seal("conn-1/consumer_secret", "s3cr3t");
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(
            k.open("conn-1/consumer_secret", &sealed)
                .unwrap()
                .expose_secret(),
            "s3cr3t"
        );
    }

    #[test]
    fn sealed_value_does_not_open_in_another_context_or_under_another_key() {
        let k = key();
        let sealed = k.seal("conn-1/consumer_secret", "s3cr3t");
        assert_eq!(
            k.open("conn-2/consumer_secret", &sealed).unwrap_err(),
            CryptoError::Undecryptable
        );
        assert_eq!(
            key().open("conn-1/consumer_secret", &sealed).unwrap_err(),
            CryptoError::Undecryptable
        );
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let k = key();
        assert_ne!(k.seal("c", "same"), k.seal("c", "same"));
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        assert_eq!(
            MasterKey::parse("not base64!").unwrap_err(),
            CryptoError::BadMasterKey
        );
        assert_eq!(
            MasterKey::parse(&STANDARD.encode([0u8; 16])).unwrap_err(),
            CryptoError::BadMasterKey
        );
        assert!(MasterKey::parse(&STANDARD.encode([7u8; 32])).is_ok());
    }

    #[test]
    fn debug_of_a_master_key_prints_nothing_of_it() {
        let encoded = STANDARD.encode([7u8; 32]);
        let k = MasterKey::parse(&encoded).unwrap();
        assert!(!format!("{k:?}").contains(&encoded));
    }

    #[test]
    fn generated_webhook_secret_has_the_standard_form() {
        let s = generate_webhook_secret();
        let text = s.expose_secret();
        let b64 = text.strip_prefix("whsec_").unwrap();
        assert_eq!(STANDARD.decode(b64).unwrap().len(), 32);
    }

    #[test]
    fn constant_time_eq_checks_length_and_content() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
