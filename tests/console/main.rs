//! The operator's console in a real browser: Debian's Chromium, headless,
//! driven through chromedriver (WebDriver), against the real `leadbridge`
//! binary on its default SQLite store and the Salesforce emulator.
//!
//! Needs the packages `chromium` and `chromium-driver` (`.ci/run` installs
//! them). Without them these tests say so on stderr and do not run, unless
//! `LEADBRIDGE_TEST_BROWSER=required` (set by `.ci/run`), which makes a
//! missing browser a failure.

mod browser;
mod service;

use salesforce_emulator as emulator;
use serde_json::{json, Value};

use browser::Browser;
use emulator::{Emulator, OrgConfig, ValidationRule};
use service::Service;

/// A Salesforce admin's validation rule, with a message that is also a
/// script-injection attempt: the console must show it as text.
const RULE_MESSAGE: &str = "Verification level is required <img src=x onerror=\"window.__xss=1\">";

fn org() -> OrgConfig {
    OrgConfig {
        validation_rules: vec![ValidationRule {
            field: "B2C_Verification_Level__c".into(),
            message: RULE_MESSAGE.into(),
        }],
        ..OrgConfig::default()
    }
}

fn client(id: u64, last_name: &str) -> Value {
    json!({"type": "client.created", "data": {
        "clientId": id, "email": format!("c{id}@example.com"),
        "info": {"firstName": "Jane", "lastName": last_name},
        "status": {"id": 1, "name": "Active"}, "type": {"id": 2, "name": "Individual"},
        "verificationLevel": {"id": 3, "name": "Full"}}})
}

#[tokio::test]
async fn an_operator_connects_an_org_sees_a_client_fail_fixes_the_mapping_and_sees_it_synced() {
    let Some(mut b) = Browser::start().await else {
        return;
    };
    let emu = Emulator::start(org()).await;
    let svc = Service::start().await;
    let cfg = emu.org.lock().unwrap().cfg.clone();

    // Sign in: a wrong token is refused and nothing else is shown.
    b.goto(&svc.url("/console")).await;
    b.wait_text("h1", "Sign in").await;
    b.shot("sign-in").await;
    b.fill("#token", "not-the-token").await;
    b.click("form button[type=submit]").await;
    b.wait_text("[role=alert]", "refused").await;
    b.fill("#token", &svc.token).await;
    b.click("form button[type=submit]").await;
    b.wait_text("h1", "Connections").await;
    b.wait_text("main", "No connections yet.").await;
    // From here on the page only changes its hash: anything it does that the
    // Content-Security-Policy refuses is counted.
    b.js(
        "window.__violations = []; document.addEventListener('securitypolicyviolation',
          e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI))",
    )
    .await;
    assert!(
        !b.current_url().await.contains(&svc.token),
        "the token is never in a URL"
    );
    assert_eq!(b.js("return document.cookie").await, json!(""));

    // Create: errors stand next to their fields.
    b.click("a[href='#/new'].button").await;
    b.wait_text("h1", "New connection").await;
    b.fill("#f-name", "Bad Name").await;
    b.fill("#f-domainUrl", "ftp://example.com").await;
    b.click("#connection-form button[type=submit]").await;
    b.wait_text("#f-name-error", "name").await;
    b.wait_text("#f-domainUrl-error", "domainUrl").await;
    assert_eq!(
        b.attr("#f-name", "aria-invalid").await.as_deref(),
        Some("true")
    );
    b.shot("create-errors").await;
    b.fill("#f-name", "acme").await;
    b.fill("#f-caption", "<b>Acme</b> & Co").await;
    b.fill("#f-domainUrl", &emu.base).await;
    b.fill("#f-consumerKey", &cfg.client_id).await;
    b.fill("#f-consumerSecret", &cfg.client_secret).await;
    b.fill("#f-company", "Acme Ltd").await;
    b.click("#connection-form button[type=submit]").await;
    b.wait_text("h1", "Connection acme created").await;
    let secret = b.text("#webhook-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(b.text("#webhook-url").await.ends_with("/v1/webhooks/acme"));
    b.shot("created").await;
    b.click("button.copy").await;
    let copied = b.text("button.copy").await;
    assert!(
        copied == "Copied" || copied.starts_with("Selected"),
        "{copied}"
    );

    // Map fields from the org's list, enable, save.
    b.click("#open-connection").await;
    b.wait_text("h1", "Connection acme").await;
    let label = b
        .text("#f-fieldMapping\\.status option[value='B2C_Status__c']")
        .await;
    assert_eq!(label, "B2C Status (B2C_Status__c)");
    b.select("#f-fieldMapping\\.status", "B2C_Status__c").await;
    b.select("#f-fieldMapping\\.clientType", "B2C_Client_Type__c")
        .await;
    b.click("#f-enabled").await;
    b.click("#connection-form button[type=submit]").await;
    b.wait_text("#connection-form .form-status", "Saved.").await;
    b.wait_text("#conn-state", "enabled").await;
    assert_eq!(b.value("#f-fieldMapping\\.status").await, "B2C_Status__c");

    // Test: a fresh token and describe of Lead.
    b.click("#test-connection").await;
    b.wait_text("#test-report", "Credentials work").await;
    let checks = b.text("#field-checks").await;
    assert!(
        checks.contains("status B2C_Status__c yes yes no"),
        "{checks}"
    );
    assert!(
        checks.contains("clientType B2C_Client_Type__c yes yes no"),
        "{checks}"
    );

    // Preview the Lead of a pasted webhook.
    b.click("#preview-submit").await;
    b.wait_text("#preview-create", "\"B2C_Status__c\": \"Active\"")
        .await;
    b.shot("connection").await;

    // B2CORE sends two clients; the org's validation rule refuses both.
    for (id, name) in [(101, "<script>window.__xss=2</script>Doe"), (102, "Roe")] {
        let status = svc.send_webhook("acme", &secret, &client(id, name)).await;
        assert_eq!(status, 202);
    }
    b.goto(&svc.url("/console#/c/acme/clients?state=dead"))
        .await;
    b.wait_until_row_state("101", "dead").await;
    b.wait_until_row_state("102", "dead").await;
    let error = b.text("tr[data-client='101'] td.error").await;
    assert_eq!(
        error,
        format!("FIELD_CUSTOM_VALIDATION_EXCEPTION: {RULE_MESSAGE}")
    );
    assert_eq!(
        b.js("return document.querySelectorAll('main img').length")
            .await,
        json!(0)
    );
    assert_eq!(b.js("return window.__xss === undefined").await, json!(true));
    b.shot("clients-dead").await;

    // The fix: map the verification level, then retry all dead clients.
    b.click("nav.tabs a[href='#/c/acme']").await;
    b.wait_text("h1", "Connection acme").await;
    b.select(
        "#f-fieldMapping\\.verificationLevel",
        "B2C_Verification_Level__c",
    )
    .await;
    b.click("#connection-form button[type=submit]").await;
    b.wait_text("#connection-form .form-status", "Saved.").await;
    b.click("nav.tabs a[href='#/c/acme/clients']").await;
    b.wait_text("h1", "Clients of acme").await;
    b.click("tr[data-client='101'] button.retry").await;
    b.wait_text("#clients-status", "Client 101 requeued.").await;
    b.wait_until_row_state("101", "synced").await;
    assert_eq!(b.text("tr[data-client='102'] td.state").await, "dead");
    b.click("#retry-dead").await;
    b.wait_text("#clients-status", "1 dead client(s) requeued.")
        .await;
    b.wait_until_row_state("102", "synced").await;
    b.shot("clients-synced").await;
    let leads = emu.leads();
    assert_eq!(leads.len(), 2);
    assert!(leads
        .iter()
        .all(|l| l["B2C_Verification_Level__c"] == "Full"));
    assert!(leads
        .iter()
        .any(|l| l["LastName"] == "<script>window.__xss=2</script>Doe"));
    assert_eq!(b.js("return window.__xss === undefined").await, json!(true));

    // The list counts them; the caption is text, not markup.
    b.click("#nav a[href='#/']").await;
    b.wait_text("#connections", "acme").await;
    let row = b.text("#connections tbody tr").await;
    assert!(row.starts_with("acme <b>Acme</b> & Co enabled"), "{row}");
    assert_eq!(
        b.js("return document.querySelectorAll('#connections b').length")
            .await,
        json!(0)
    );
    b.eventually_text("#connections tbody tr td:nth-of-type(4)", "2")
        .await;
    b.shot("connections").await;

    // Backfill with live progress.
    let file = svc.dir.path().join("clients.ndjson");
    let lines: Vec<String> = (201..=205)
        .map(|id| client(id, "Backfilled")["data"].to_string())
        .chain(["{not json".to_string()])
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    b.goto(&svc.url("/console#/c/acme/backfill")).await;
    b.wait_text("h1", "Backfill of acme").await;
    b.send_keys("#backfill-file", file.to_str().unwrap()).await;
    // A slow org, so the page shows the job before it is synced...
    emu.set_latency(std::time::Duration::from_millis(1500));
    b.click("#backfill-submit").await;
    b.wait_text("main", "5 of 6 lines accepted").await;
    b.wait_text("main", "Refreshing every 2 seconds").await;
    // ...and follows it by itself until it is.
    b.wait_exact("#jobs tbody tr td:nth-of-type(4)", "5").await;
    emu.set_latency(std::time::Duration::ZERO);
    b.wait_text("main", "5 of 6 lines accepted").await;
    let rejected = b.text("#jobs tbody tr td:nth-of-type(6)").await;
    assert_eq!(rejected, "1");
    b.shot("backfill").await;
    assert_eq!(emu.leads().len(), 7);

    // Clients page by page (three a page here), in client id order.
    b.goto(&svc.url("/console#/c/acme/clients?limit=3")).await;
    b.wait_text("h1", "Clients of acme").await;
    let ids =
        "return [...document.querySelectorAll('#clients tbody tr')].map(r => r.dataset.client)";
    assert_eq!(b.js(ids).await, json!(["101", "102", "201"]));
    b.click("#next-page").await;
    b.wait_text("#first-page", "First page").await;
    assert_eq!(b.js(ids).await, json!(["202", "203", "204"]));
    b.click("#next-page").await;
    b.wait_text("#first-page", "First page").await;
    b.wait_text("#clients", "205").await;
    assert_eq!(b.js(ids).await, json!(["205"]));

    // Rotate the webhook secret; the old one verifies until revoked.
    b.click("nav.tabs a[href='#/c/acme']").await;
    b.wait_text("h1", "Connection acme").await;
    b.click("#rotate-secret").await;
    b.wait_text("#secret-title", "New webhook secret").await;
    let rotated = b.text("#webhook-secret").await;
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    assert_eq!(
        svc.send_webhook("acme", &secret, &client(301, "Old")).await,
        202
    );
    b.click("#revoke-secrets").await;
    b.wait_text("#revoke-secrets", "Confirm").await;
    b.click("#revoke-secrets").await;
    b.wait_text("main", "1 previous secret(s) stopped verifying.")
        .await;
    assert_eq!(
        svc.send_webhook("acme", &secret, &client(302, "Old")).await,
        401
    );
    assert_eq!(
        svc.send_webhook("acme", &rotated, &client(303, "New"))
            .await,
        202
    );

    assert_eq!(b.js("return window.__violations").await, json!([]));

    // Sign out: the token leaves the tab.
    b.click("#sign-out").await;
    b.wait_text("h1", "Sign in").await;
    assert_eq!(
        b.js("return sessionStorage.length").await,
        json!(0),
        "nothing is left in the tab"
    );
    b.close().await;
}

#[tokio::test]
async fn the_console_is_usable_from_the_keyboard_and_its_controls_are_labelled() {
    let Some(mut b) = Browser::start().await else {
        return;
    };
    let svc = Service::start().await;
    b.goto(&svc.url("/console")).await;
    b.wait_text("h1", "Sign in").await;
    // The token field has focus; typing and Enter signs in.
    b.type_into_focused(&svc.token).await;
    b.type_into_focused("\u{E007}").await;
    b.wait_text("h1", "Connections").await;
    b.goto(&svc.url("/console#/new")).await;
    b.wait_text("h1", "New connection").await;
    // Every form control has a label naming it.
    let unlabelled = b
        .js(
            "return [...document.querySelectorAll('main input, main select, main textarea')]
                .filter(c => !c.labels || c.labels.length === 0).map(c => c.id)",
        )
        .await;
    assert_eq!(unlabelled, json!([]));
    // A script injected by a test cannot run inline: the CSP forbids it.
    let blocked = b
        .js(
            "const s = document.createElement('script'); s.textContent = 'window.__inline = 1';
             document.body.append(s); return window.__inline === undefined",
        )
        .await;
    assert_eq!(blocked, json!(true));
    // ...and the browser reports it, as the journey's check expects.
    let reported = b
        .js(
            "window.__violations = []; document.addEventListener('securitypolicyviolation',
              e => window.__violations.push(e.violatedDirective));
             const s = document.createElement('script'); s.textContent = '1';
             document.body.append(s);
             return new Promise(r => setTimeout(() => r(window.__violations), 200))",
        )
        .await;
    assert_eq!(reported, json!(["script-src-elem"]));
    b.close().await;
}
