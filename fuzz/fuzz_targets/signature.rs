//! Signature verification on arbitrary headers and bodies: never panics, and
//! accepts only what the secret really signed.
#![no_main]

use leadbridge::webhook::verify::{self, StandardHeaders};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_614_265_330;

fuzz_target!(|data: &[u8]| {
    // Input: id \n timestamp \n signature \n body.
    let mut parts = data.splitn(4, |b| *b == b'\n');
    fn text(p: Option<&[u8]>) -> Option<&str> {
        p.and_then(|b| std::str::from_utf8(b).ok())
    }
    let (id, ts, sig) = (text(parts.next()), text(parts.next()), text(parts.next()));
    let body = parts.next().unwrap_or_default();
    let secret = SecretString::from(SECRET.to_string());
    let headers = StandardHeaders {
        id,
        timestamp: ts,
        signature: sig,
    };
    if let Ok(got) = verify::verify_standard(headers, body, std::slice::from_ref(&secret), NOW) {
        // Accepted: the offered list held the real signature of this content.
        let ts: i64 = ts.unwrap().trim().parse().unwrap();
        let expected = verify::sign_standard(&secret, got, ts, body);
        assert!(sig.unwrap().split(' ').any(|s| s == expected));
        assert!((NOW - ts).abs() <= 300);
    }
    if verify::verify_hex("X-Signature", sig, body, std::slice::from_ref(&secret)).is_ok() {
        let expected = verify::sign_hex(&secret, body);
        let offered = sig.unwrap().trim();
        assert!(offered == expected || format!("sha256={offered}") == expected);
    }
});
