//! The org's API usage, from every answer's `Sforce-Limit-Info`.

use super::{Credentials, Salesforce};

/// The usage the API budget follows, from a `Sforce-Limit-Info` header:
/// `api-usage=USED/MAX` (the org's daily requests), and where the connected
/// app has a quota of its own, `per-app-api-usage=USED/MAX(appName=…)`; then
/// the tighter of the two. Parts are separated by `;` (`,` is accepted too);
/// other parts, such as `api-bursts=1/750`, are not budgets and are skipped.
pub fn parse_limit_info(header: &str) -> Option<(i64, i64)> {
    let mut org = None;
    let mut app = None;
    for part in header.split([';', ',']).map(str::trim) {
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        // `17/250(appName=x)`: the numbers end where the app's name begins.
        let numbers = value.split('(').next().unwrap_or_default();
        let Some((used, max)) = numbers.split_once('/') else {
            continue;
        };
        let (Ok(used), Ok(max)) = (used.trim().parse::<i64>(), max.trim().parse::<i64>()) else {
            continue;
        };
        if max <= 0 || used < 0 {
            continue;
        }
        match name.trim() {
            "api-usage" => org = Some((used, max)),
            "per-app-api-usage" => app = Some((used, max)),
            _ => {}
        }
    }
    match (org, app) {
        // used₁/max₁ ≥ used₂/max₂, without floats.
        (Some(o), Some(a)) if (a.0 as i128) * (o.1 as i128) > (o.0 as i128) * (a.1 as i128) => {
            Some(a)
        }
        (Some(o), _) => Some(o),
        (None, a) => a,
    }
}

impl Salesforce {
    /// The org's API usage (used, max) as the last answer for these credentials said.
    pub async fn usage(&self, c: &Credentials) -> Option<(i64, i64)> {
        self.usage.get(&c.cache_key).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn limit_info_is_read_as_used_and_max() {
        assert_eq!(
            super::parse_limit_info("api-usage=18/5000"),
            Some((18, 5000))
        );
        assert_eq!(
            super::parse_limit_info("per-app-api-usage=1/100(appName=x), api-usage=25/15000"),
            Some((1, 100)),
            "the app's 1% is tighter than the org's 0.2%"
        );
        assert_eq!(super::parse_limit_info("api-usage=x/5000"), None);
        assert_eq!(super::parse_limit_info(""), None);
    }

    #[test]
    fn every_documented_form_of_limit_info_is_read() {
        use super::parse_limit_info as parse;
        // The REST API guide's examples.
        assert_eq!(parse("api-usage=10018/100000"), Some((10018, 100_000)));
        assert_eq!(
            parse("api-usage=10018/100000; api-bursts=1/750"),
            Some((10018, 100_000))
        );
        // The app's own quota counts when it is the tighter one...
        assert_eq!(
            parse("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"),
            Some((17, 250))
        );
        // ...and not when the org's is.
        assert_eq!(
            parse("api-usage=4900/5000; per-app-api-usage=17/250(appName=b2core)"),
            Some((4900, 5000))
        );
        assert_eq!(parse("per-app-api-usage=9/10(appName=x)"), Some((9, 10)));
        assert_eq!(parse("api-usage=1/0"), None);
        assert_eq!(parse("api-bursts=1/750"), None);
        assert_eq!(parse(" api-usage = 7 / 70 ;"), Some((7, 70)));
    }
}
