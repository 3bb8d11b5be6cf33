//! Which hosts leadbridge may call: an org's My Domain (`domainUrl`) and the
//! `instance_url` a token answer names pass the same rules, checked here for
//! the connection settings and for every token.

/// What a Salesforce URL may be.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules {
    /// Allow `http://` and hosts other than `*.my.salesforce.com` (emulators).
    pub allow_insecure_salesforce: bool,
}

/// Checks and normalises a Salesforce org URL (`domainUrl`, and the
/// `instance_url` a token answer names) to `scheme://host[:port]`.
pub fn domain_url(s: &str, rules: Rules) -> Result<String, String> {
    let url =
        ::url::Url::parse(s).map_err(|_| "must be a URL such as https://acme.my.salesforce.com")?;
    let host = url
        .host_str()
        .ok_or("must name a host")?
        .to_ascii_lowercase();
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() || !matches!(url.path(), "" | "/") {
        return Err("must be the My Domain URL only, without a path or query".into());
    }
    if !rules.allow_insecure_salesforce {
        if url.scheme() != "https" {
            return Err("must use https".into());
        }
        if matches!(
            host.as_str(),
            "login.salesforce.com" | "test.salesforce.com"
        ) {
            return Err("must be your org's My Domain (https://{domain}.my.salesforce.com): the client credentials flow does not work on login.salesforce.com".into());
        }
        if !host.ends_with(".my.salesforce.com") || url.port().is_some() {
            return Err("must be your org's My Domain: https://{domain}.my.salesforce.com or https://{domain}--{sandbox}.sandbox.my.salesforce.com (set LEADBRIDGE_ALLOW_INSECURE_SALESFORCE=true for an emulator)".into());
        }
    } else if !matches!(url.scheme(), "https" | "http") {
        return Err("must use https or http".into());
    }
    let mut out = format!("{}://{}", url.scheme(), host);
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_urls_must_be_a_my_domain_unless_insecure_is_allowed() {
        let strict = Rules::default();
        for ok in [
            "https://acme.my.salesforce.com",
            "https://acme--uat.sandbox.my.salesforce.com",
        ] {
            assert!(domain_url(ok, strict).is_ok(), "{ok}");
        }
        for bad in [
            "https://login.salesforce.com",
            "http://acme.my.salesforce.com",
            "https://evil.com",
            "https://acme.my.salesforce.com/services",
            "https://acme.my.salesforce.com:8443",
            "https://u:p@acme.my.salesforce.com",
            "not a url",
            "https://acme.my.salesforce.com.evil.com",
        ] {
            assert!(domain_url(bad, strict).is_err(), "{bad}");
        }
        let lax = Rules {
            allow_insecure_salesforce: true,
        };
        assert_eq!(
            domain_url("http://127.0.0.1:9999/", lax).unwrap(),
            "http://127.0.0.1:9999"
        );
        assert!(domain_url("ftp://127.0.0.1", lax).is_err());
    }
}
