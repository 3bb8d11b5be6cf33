//! The connection create body / merge-patch parser: never panics, and what
//! it accepts follows the contract's rules.
#![no_main]

use leadbridge::connections::apply;
use leadbridge::salesforce::url::Rules;
use leadbridge::crypto::MasterKey;
use leadbridge::domain::{Connection, ConnectionId, ConnectionName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((flags, json)) = data.split_first() else {
        return;
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    let key = MasterKey::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    let rules = Rules {
        allow_insecure_salesforce: flags & 1 == 1,
    };
    let creating = flags & 2 == 2;
    let base = Connection::new(
        ConnectionId::from_stored("fuzz".into()),
        ConnectionName::parse("acme").unwrap(),
        chrono::DateTime::UNIX_EPOCH,
    );
    match apply(&base, &body, creating, rules, &key) {
        Ok(c) => {
            if c.enabled {
                assert!(c.domain_url.is_some() && c.consumer_key.is_some());
                assert!(c.consumer_secret_sealed.is_some() && c.company.is_some());
            }
            if !rules.allow_insecure_salesforce {
                if let Some(url) = &c.domain_url {
                    assert!(url.starts_with("https://") && url.ends_with(".my.salesforce.com"));
                }
            }
            assert!(ConnectionName::parse(c.name.as_str()).is_ok());
        }
        // A refusal names at least one field.
        Err(errors) => assert!(!errors.0.is_empty()),
    }
});
