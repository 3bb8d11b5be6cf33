//! Typed ids: a connection's id and name, and a client's id, are not
//! interchangeable strings.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// A connection's internal id (a UUID), the key its rows are stored under.
    ConnectionId
);
id_type!(
    /// A connection's name: `[a-z0-9][a-z0-9_-]{0,62}`, the key of its URLs.
    ConnectionName
);
id_type!(
    /// A B2CORE client's id as text (`10234` and `"10234"` are one client).
    ClientId
);

impl ConnectionId {
    /// A new random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// An id read back from the store (or made by [`ConnectionId::generate`]).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

impl ConnectionName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut chars = s.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if first_ok && rest_ok && s.len() <= 63 {
            Ok(Self(s.to_string()))
        } else {
            Err("must match [a-z0-9][a-z0-9_-]{0,62}".into())
        }
    }

    /// A name read back from the store, where only parsed names are written.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

impl ClientId {
    pub const MAX_LEN: usize = 255;

    /// Parses `clientId` as sent: an integer, or a non-blank string.
    pub fn parse(value: &serde_json::Value) -> Result<Self, String> {
        use serde_json::Value;
        match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Self(n.to_string())),
            Value::Number(_) => Err("`data.clientId` must be an integer or a string".into()),
            Value::String(s) if s.trim().is_empty() => {
                Err("`data.clientId` must not be empty".into())
            }
            Value::String(s) if s.chars().count() > Self::MAX_LEN => Err(format!(
                "`data.clientId` is longer than {} characters",
                Self::MAX_LEN
            )),
            // They would change the path of an upsert URL (`…/Lead/{field}/..`).
            Value::String(s) if s == "." || s == ".." => {
                Err("`data.clientId` cannot be `.` or `..`".into())
            }
            // Postgres cannot store a NUL in text; no id needs a control character.
            Value::String(s) if s.chars().any(char::is_control) => {
                Err("`data.clientId` must not contain control characters".into())
            }
            Value::String(s) => Ok(Self(s.clone())),
            Value::Null => Err("`data.clientId` is required".into()),
            _ => Err("`data.clientId` must be an integer or a string".into()),
        }
    }

    /// Wraps a client id read back from the store (it was parsed on the way in).
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract_pattern() {
        for ok in ["a", "acme", "0prod", "acme_eu-1", &"a".repeat(63)] {
            assert!(ConnectionName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "_a", "Acme", "a b", "a.b", &"a".repeat(64), "é"] {
            assert!(ConnectionName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blank_dot_and_control_character_client_ids_are_refused() {
        assert_eq!(
            ClientId::parse(&serde_json::json!(10234)).unwrap(),
            ClientId::parse(&serde_json::json!("10234")).unwrap()
        );
        for bad in [
            serde_json::json!(""),
            serde_json::json!("  "),
            serde_json::json!("."),
            serde_json::json!(".."),
            serde_json::json!("a\u{0}b"),
            serde_json::json!("a\nb"),
        ] {
            assert!(ClientId::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
