//! Signature checks for both schemes. Pure: the raw body, header values, the
//! connection's valid secrets and "now" go in; a verdict comes out.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::crypto::constant_time_eq;

type HmacSha256 = Hmac<Sha256>;

/// Standard Webhooks' replay window, either way from now.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// Why a webhook's signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the `{0}` header is missing")]
    MissingHeader(String),
    #[error("the `webhook-timestamp` header is not a Unix time in seconds")]
    MalformedTimestamp,
    #[error("the `webhook-timestamp` is more than 300 seconds away from the server's clock")]
    TimestampOutOfTolerance,
    #[error("no signature matches a valid secret of this connection")]
    NoMatchingSignature,
}

/// The three Standard Webhooks headers, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// The HMAC key of a `whsec_` secret: the base64 part decoded (as the Standard
/// Webhooks libraries do); a secret that is not of that form is used as bytes.
fn standard_key(secret: &SecretString) -> Vec<u8> {
    let text = secret.expose_secret();
    let b64 = text.strip_prefix("whsec_").unwrap_or(text);
    STANDARD
        .decode(b64)
        .unwrap_or_else(|_| text.as_bytes().to_vec())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    SigningKey::new(key).mac(parts)
}

/// A secret made ready to check signatures: its HMAC key, derived once
/// (decoding the secret and hashing the key into HMAC's two pads is the
/// same for every request). Shows nothing of itself in `Debug`.
#[derive(Clone)]
pub struct SigningKey(HmacSha256);

impl SigningKey {
    fn new(key: &[u8]) -> Self {
        Self(HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length"))
    }

    /// The key of a secret under `standard-webhooks`.
    pub fn standard(secret: &SecretString) -> Self {
        Self::new(&standard_key(secret))
    }

    /// The key of a secret under `hmac-sha256-hex`: its text as bytes.
    pub fn hex(secret: &SecretString) -> Self {
        Self::new(secret.expose_secret().as_bytes())
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

/// The `v1,<base64>` signature Standard Webhooks puts on a message.
pub fn sign_standard(secret: &SecretString, id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac(
        &standard_key(secret),
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

/// The `sha256=<hex>` signature of the hex scheme: HMAC-SHA256 of the raw body,
/// keyed with the secret's text as bytes.
pub fn sign_hex(secret: &SecretString, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac(secret.expose_secret().as_bytes(), &[body]))
    )
}

/// Checks a Standard Webhooks request; on success returns its `webhook-id`.
pub fn verify_standard<'a>(
    headers: StandardHeaders<'a>,
    body: &[u8],
    secrets: &[SecretString],
    now_unix: i64,
) -> Result<&'a str, VerifyError> {
    let keys: Vec<SigningKey> = secrets.iter().map(SigningKey::standard).collect();
    verify_standard_keyed(headers, body, &keys, now_unix)
}

/// As [`verify_standard`], with the secrets' keys ([`SigningKey::standard`]).
pub fn verify_standard_keyed<'a, 'k>(
    headers: StandardHeaders<'a>,
    body: &[u8],
    keys: impl IntoIterator<Item = &'k SigningKey>,
    now_unix: i64,
) -> Result<&'a str, VerifyError> {
    let (id, ts_text, signatures) = standard_headers_usable(headers, now_unix)?;
    for key in keys {
        let mac = key.mac(&[id.as_bytes(), b".", ts_text.as_bytes(), b".", body]);
        let expected = STANDARD.encode(mac);
        if signatures
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .any(|candidate| constant_time_eq(candidate.as_bytes(), expected.as_bytes()))
        {
            return Ok(id);
        }
    }
    Err(VerifyError::NoMatchingSignature)
}

/// The checks of a Standard Webhooks request that need no body: the three
/// headers present and the timestamp within the window. Done before the
/// body is read, so a request that cannot pass costs no body.
pub fn standard_headers_usable<'a>(
    headers: StandardHeaders<'a>,
    now_unix: i64,
) -> Result<(&'a str, &'a str, &'a str), VerifyError> {
    let id = headers
        .id
        .ok_or_else(|| VerifyError::MissingHeader("webhook-id".into()))?;
    let ts_text = headers
        .timestamp
        .ok_or_else(|| VerifyError::MissingHeader("webhook-timestamp".into()))?;
    let signatures = headers
        .signature
        .ok_or_else(|| VerifyError::MissingHeader("webhook-signature".into()))?;
    let ts: i64 = ts_text
        .trim()
        .parse()
        .map_err(|_| VerifyError::MalformedTimestamp)?;
    // abs_diff: `now - ts` overflows for a timestamp near i64::MIN (and in
    // release builds wrapped into the window).
    if now_unix.abs_diff(ts) > TIMESTAMP_TOLERANCE_SECS as u64 {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    Ok((id, ts_text.trim(), signatures))
}

/// Checks a hex-scheme request: the header holds `sha256=<hex>` or bare `<hex>`.
pub fn verify_hex(
    header_name: &str,
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
) -> Result<(), VerifyError> {
    let keys: Vec<SigningKey> = secrets.iter().map(SigningKey::hex).collect();
    verify_hex_keyed(header_name, header, body, &keys)
}

/// As [`verify_hex`], with the secrets' keys ([`SigningKey::hex`]).
pub fn verify_hex_keyed<'k>(
    header_name: &str,
    header: Option<&str>,
    body: &[u8],
    keys: impl IntoIterator<Item = &'k SigningKey>,
) -> Result<(), VerifyError> {
    let value = header.ok_or_else(|| VerifyError::MissingHeader(header_name.to_string()))?;
    let value = value.trim();
    let offered = value.strip_prefix("sha256=").unwrap_or(value);
    let offered = offered.to_ascii_lowercase();
    for key in keys {
        let expected = hex::encode(key.mac(&[body]));
        if constant_time_eq(offered.as_bytes(), expected.as_bytes()) {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatchingSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: i64 = 1614265330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    fn headers<'a>(sig: &'a str, ts: &'a str) -> StandardHeaders<'a> {
        StandardHeaders {
            id: Some(VECTOR_ID),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn the_published_standard_webhooks_vector_verifies() {
        let ts = VECTOR_TS.to_string();
        let got = verify_standard(
            headers(VECTOR_SIG, &ts),
            VECTOR_BODY,
            &[secret(VECTOR_SECRET)],
            VECTOR_TS,
        );
        assert_eq!(got, Ok(VECTOR_ID));
    }

    #[test]
    fn signing_reproduces_the_published_vector() {
        assert_eq!(
            sign_standard(&secret(VECTOR_SECRET), VECTOR_ID, VECTOR_TS, VECTOR_BODY),
            VECTOR_SIG
        );
    }

    #[test]
    fn a_tampered_body_is_rejected() {
        let ts = VECTOR_TS.to_string();
        let got = verify_standard(
            headers(VECTOR_SIG, &ts),
            br#"{"test": 2432232315}"#,
            &[secret(VECTOR_SECRET)],
            VECTOR_TS,
        );
        assert_eq!(got, Err(VerifyError::NoMatchingSignature));
    }

    #[test]
    fn an_empty_v1_signature_and_a_truncated_one_are_rejected() {
        let ts = VECTOR_TS.to_string();
        let truncated = &VECTOR_SIG[..VECTOR_SIG.len() - 4];
        for sig in [
            "v1,",
            truncated,
            "v1",
            "",
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ] {
            let got = verify_standard(
                headers(sig, &ts),
                VECTOR_BODY,
                &[secret(VECTOR_SECRET)],
                VECTOR_TS,
            );
            assert_eq!(got, Err(VerifyError::NoMatchingSignature), "{sig:?}");
        }
    }

    #[test]
    fn any_one_of_several_signatures_passes() {
        let ts = VECTOR_TS.to_string();
        let list = format!("v1,bm9wZQ== v1a,xyz {VECTOR_SIG}");
        let got = verify_standard(
            headers(&list, &ts),
            VECTOR_BODY,
            &[secret(VECTOR_SECRET)],
            VECTOR_TS,
        );
        assert_eq!(got, Ok(VECTOR_ID));
    }

    #[test]
    fn any_currently_valid_secret_passes() {
        let ts = VECTOR_TS.to_string();
        let secrets = [
            secret("whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCBvZiAzMiBieXQ="),
            secret(VECTOR_SECRET),
        ];
        let got = verify_standard(headers(VECTOR_SIG, &ts), VECTOR_BODY, &secrets, VECTOR_TS);
        assert_eq!(got, Ok(VECTOR_ID));
    }

    #[test]
    fn timestamps_beyond_300_seconds_either_way_are_rejected() {
        for (offset, ok) in [(-301, false), (-300, true), (300, true), (301, false)] {
            let ts = VECTOR_TS.to_string();
            let got = verify_standard(
                headers(VECTOR_SIG, &ts),
                VECTOR_BODY,
                &[secret(VECTOR_SECRET)],
                VECTOR_TS + offset,
            );
            if ok {
                assert_eq!(got, Ok(VECTOR_ID), "offset {offset}");
            } else {
                assert_eq!(got, Err(VerifyError::TimestampOutOfTolerance), "{offset}");
            }
        }
    }

    #[test]
    fn extreme_timestamps_with_valid_signatures_are_out_of_tolerance() {
        let key = secret(VECTOR_SECRET);
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            let sig = sign_standard(&key, VECTOR_ID, ts, VECTOR_BODY);
            let text = ts.to_string();
            let got = verify_standard(
                headers(&sig, &text),
                VECTOR_BODY,
                std::slice::from_ref(&key),
                VECTOR_TS,
            );
            assert_eq!(got, Err(VerifyError::TimestampOutOfTolerance), "{ts}");
        }
    }

    #[test]
    fn missing_headers_and_a_malformed_timestamp_are_named() {
        let none = StandardHeaders::default();
        assert_eq!(
            verify_standard(none, b"", &[secret(VECTOR_SECRET)], 0),
            Err(VerifyError::MissingHeader("webhook-id".into()))
        );
        let got = verify_standard(
            headers(VECTOR_SIG, "yesterday"),
            VECTOR_BODY,
            &[secret(VECTOR_SECRET)],
            VECTOR_TS,
        );
        assert_eq!(got, Err(VerifyError::MalformedTimestamp));
    }

    #[test]
    fn githubs_published_hex_vector_verifies_with_and_without_prefix() {
        let s = secret("It's a Secret to Everybody");
        let hexsig = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign_hex(&s, b"Hello, World!"), format!("sha256={hexsig}"));
        let prefixed = format!("sha256={hexsig}");
        for header in [prefixed.as_str(), hexsig] {
            assert_eq!(
                verify_hex(
                    "X-Signature",
                    Some(header),
                    b"Hello, World!",
                    std::slice::from_ref(&s)
                ),
                Ok(())
            );
        }
    }

    #[test]
    fn hex_signature_that_is_empty_truncated_or_wrong_is_rejected() {
        let s = secret("It's a Secret to Everybody");
        let good = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        for header in ["", "sha256=", &good[..40], &good.replace('7', "8")] {
            assert_eq!(
                verify_hex(
                    "X-Signature",
                    Some(header),
                    b"Hello, World!",
                    std::slice::from_ref(&s)
                ),
                Err(VerifyError::NoMatchingSignature),
                "{header:?}"
            );
        }
        assert_eq!(
            verify_hex("X-Signature", None, b"Hello, World!", &[s]),
            Err(VerifyError::MissingHeader("X-Signature".into()))
        );
    }
}
