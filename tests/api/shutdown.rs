//! The real binary at its edges: SIGTERM with writes in flight, `import`,
//! logs and `--help`, timeout settings, and a create in flight at a SIGKILL.

use std::process::Command;
use std::time::{Duration, Instant};

use leadbridge::domain::{ClientId, ConnectionName};
use serde_json::{json, Value};

use crate::process::*;

#[tokio::test]
async fn sigterm_finishes_the_writes_in_flight_before_exiting() {
    use crate::emulator::{Emulator, OrgConfig};
    let emu = Emulator::start(OrgConfig::default()).await;
    emu.set_latency(Duration::from_millis(800));
    let target = Target::new().await;
    let env = [("LEADBRIDGE_ALLOW_INSECURE_SALESFORCE", "true")];
    let mut svc = Service::start_with(&target, free_port(), "out.log", &env);
    svc.wait_ready().await;
    let created = svc
        .create_connection(emulator_connection(&emu, json!({})))
        .await;
    let secret = created["webhookSecret"].as_str().unwrap().to_string();
    for i in 0..5 {
        let body = json!({"type": "client.created", "data": {"clientId": i, "email": format!("c{i}@x.io")}});
        assert_eq!(
            svc.post_event(&secret, &format!("e{i}"), &body)
                .await
                .status(),
            202
        );
    }
    // Once writes are in flight (the emulator holds each for 800 ms), ask it to stop.
    let deadline = Instant::now() + Duration::from_secs(20);
    while emu.writes() == 0 {
        assert!(Instant::now() < deadline, "{}", svc.logs());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let in_flight = emu.writes();
    assert!(emu.leads().len() < in_flight, "nothing was in flight");
    let pid = svc.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = svc.child.wait().unwrap();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}: {}",
        svc.logs()
    );
    // Every write that had started was finished and recorded before the exit.
    let store = leadbridge::store::open(&target.database_url())
        .await
        .unwrap();
    let conn = store
        .get_connection(&ConnectionName::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut recorded = 0;
    for i in 0..5 {
        let c = store
            .client(&conn.id, &ClientId::from_stored(i.to_string()))
            .await
            .unwrap()
            .unwrap();
        if c.lead_id.is_some() {
            recorded += 1;
            assert_eq!(c.pending_events, 0);
        }
    }
    store.close().await;
    assert!(
        recorded >= in_flight,
        "{recorded} recorded, {in_flight} were in flight"
    );
    assert_eq!(
        emu.leads().len(),
        recorded,
        "a Lead was written but not recorded"
    );
}

#[tokio::test]
async fn import_streams_a_file_and_prints_the_counts() {
    let target = Target::new().await;
    let port = free_port();
    let mut svc = Service::start(&target, port, "out.log");
    svc.wait_ready().await;
    svc.create_connection(json!({"name": "acme"})).await;
    let file = target.dir().join("clients.ndjson");
    std::fs::write(
        &file,
        "{\"clientId\": 1, \"email\": \"a@x.io\"}\nnot json\n{\"clientId\": 2}\n",
    )
    .unwrap();
    // The token comes from the file beside the SQLite database, or the variable.
    let out = target
        .command(port)
        .args(["import", file.to_str().unwrap(), "--connection", "acme"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("read 3, accepted 2, rejected 1"),
        "{stdout}"
    );
    assert!(stdout.contains("line 2: not valid JSON"), "{stdout}");
    assert!(!stdout.contains(&svc.admin_token()) && !stderr.contains(&svc.admin_token()));
    let job_id = stdout
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':');
    let res = reqwest::Client::new()
        .get(format!(
            "{}/v1/connections/acme/backfill/{job_id}",
            svc.base
        ))
        .bearer_auth(svc.admin_token())
        .send()
        .await
        .unwrap();
    let job: Value = res.json().await.unwrap();
    assert_eq!(job["accepted"], 2, "{job}");

    // A refusal is an exit code of 1 with the service's reason.
    let out = target
        .command(port)
        .args(["import", file.to_str().unwrap(), "--connection", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("404") && stderr.contains("nope"),
        "{stderr}"
    );
    let out = target
        .command(port)
        .args(["import", "missing.ndjson", "--connection", "acme"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open missing.ndjson"));
}

#[tokio::test]
async fn sigterm_past_the_deadline_abandons_stuck_writes_and_loses_nothing() {
    use crate::emulator::{Emulator, OrgConfig};
    let emu = Emulator::start(OrgConfig::default()).await;
    let target = Target::new().await;
    let port = free_port();
    let env = [
        ("LEADBRIDGE_ALLOW_INSECURE_SALESFORCE", "true"),
        ("LEADBRIDGE_SHUTDOWN_TIMEOUT_SECS", "2"),
    ];
    let mut svc = Service::start_with(&target, port, "out.log", &env);
    svc.wait_ready().await;
    let created = svc
        .create_connection(emulator_connection(
            &emu,
            json!({"externalIdField": "B2C_Client_Id__c"}),
        ))
        .await;
    let secret = created["webhookSecret"].as_str().unwrap().to_string();
    let deliver = |i: u32| {
        let body = json!({"type": "client.created", "data": {"clientId": i, "email": format!("c{i}@x.io")}});
        (format!("e{i}"), body)
    };
    // A first client, so the token is cached; then Salesforce hangs on every write.
    let (id, body) = deliver(0);
    assert_eq!(svc.post_event(&secret, &id, &body).await.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while emu.lead_count() == 0 {
        assert!(Instant::now() < deadline, "{}", svc.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    emu.set_latency(Duration::from_secs(60));
    let before = emu.writes();
    for i in 1..4 {
        let (id, body) = deliver(i);
        assert_eq!(svc.post_event(&secret, &id, &body).await.status(), 202);
    }
    while emu.writes() == before {
        assert!(Instant::now() < deadline, "{}", svc.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = svc.child.id().to_string();
    let asked = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // While it winds down (stuck writes keep it up to the deadline), it takes no new work.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        svc.child.try_wait().unwrap().is_none(),
        "exited before the deadline"
    );
    let refused = reqwest::Client::new()
        .get(format!("{}/health/live", svc.base))
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a new connection was served after SIGTERM: {refused:?}"
    );
    let status = svc.child.wait().unwrap();
    let took = asked.elapsed();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}: {}",
        svc.logs()
    );
    assert!(
        took < Duration::from_secs(10),
        "stopped after {took:?}, with a 2 s deadline and writes stuck for 60 s"
    );
    let logs = svc.logs();
    assert!(logs.contains("shutdown deadline reached"), "{logs}");

    // The next start writes every client at once: the leases were released.
    emu.set_latency(Duration::ZERO);
    let mut next = Service::start_with(&target, free_port(), "out2.log", &env);
    next.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while count_in_state(&next.base, &next.admin_token(), "synced").await < 4 {
        assert!(
            Instant::now() < deadline,
            "not every client synced after the restart: {}",
            next.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(emu.lead_count(), 4, "one Lead per client (upserts)");
}

#[tokio::test]
async fn logs_are_json_lines_when_stdout_is_not_a_terminal() {
    let target = Target::new().await;
    let port = free_port();
    let log = target.dir().join("plain.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = target.command(port);
    cmd.env_remove("LEADBRIDGE_LOG_FORMAT")
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let mut svc = Service {
        child: cmd.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
        log: log.clone(),
        token: target.token.clone().unwrap_or_default(),
    };
    svc.wait_ready().await;
    let text = svc.logs();
    assert!(text.contains("listening"), "{text}");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn help_names_the_database_variable_but_never_shows_its_password() {
    let out = Command::new(BIN)
        .arg("--help")
        .env(
            "LEADBRIDGE_DATABASE_URL",
            "postgres://leadbridge:hunter2-secret@db.internal/leadbridge",
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("LEADBRIDGE_DATABASE_URL"), "{text}");
    assert!(!text.contains("hunter2-secret"), "{text}");
}

#[tokio::test]
async fn a_salesforce_timeout_longer_than_half_the_lease_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), free_port())
        .env("LEADBRIDGE_LEASE_SECS", "100")
        .env("LEADBRIDGE_SALESFORCE_TIMEOUT_SECS", "60")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("LEADBRIDGE_LEASE_SECS (100) must be at least twice LEADBRIDGE_SALESFORCE_TIMEOUT_SECS (60)"),
        "{text}"
    );
    // Salesforce stops a call at 10 minutes: a longer wait is refused too.
    let out = command(dir.path(), free_port())
        .env("LEADBRIDGE_SALESFORCE_TIMEOUT_SECS", "601")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("601"), "{text}");
}

#[tokio::test]
async fn the_salesforce_timeout_is_the_configured_one() {
    use crate::emulator::{Emulator, OrgConfig};
    let emu = Emulator::start(OrgConfig::default()).await;
    emu.set_latency(Duration::from_millis(1500));
    let target = Target::new().await;
    let env = [
        ("LEADBRIDGE_ALLOW_INSECURE_SALESFORCE", "true"),
        ("LEADBRIDGE_SALESFORCE_TIMEOUT_SECS", "1"),
        ("LEADBRIDGE_LEASE_SECS", "2"),
    ];
    let mut svc = Service::start_with(&target, free_port(), "out.log", &env);
    svc.wait_ready().await;
    let created = svc
        .create_connection(emulator_connection(&emu, json!({})))
        .await;
    let secret = created["webhookSecret"].as_str().unwrap().to_string();
    let body = json!({"type": "client.created", "occurredAt": "2026-12-01T10:00:00Z",
                      "data": {"clientId": 7, "email": "c7@x.io", "info": {"lastName": "L7"}}});
    assert_eq!(svc.post_event(&secret, "t-1", &body).await.status(), 202);
    // Each call takes 1.5 s against a 1 s timeout: the client waits, not dead.
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let s = svc.client_state(7).await;
        if !s["lastError"].is_null() {
            break s;
        }
        assert!(Instant::now() < deadline, "no timeout seen: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(seen["lastError"]["code"], "TIMEOUT", "{seen}");
    assert_eq!(seen["state"], "retrying", "{seen}");
    // Under the timeout the same client is written.
    emu.set_latency(Duration::from_millis(200));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = svc.client_state(7).await;
        if s["state"] == "synced" {
            break;
        }
        assert!(Instant::now() < deadline, "not synced: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(emu.lead_count(), 1);
}

#[tokio::test]
async fn a_create_in_flight_when_the_process_is_killed_is_looked_up_not_made_twice() {
    use crate::emulator::{Emulator, Fault, OrgConfig};
    let emu = Emulator::start(OrgConfig::default()).await;
    let target = Target::new().await;
    let port = free_port();
    // No externalIdField: every first write is a create.
    let env = [
        ("LEADBRIDGE_ALLOW_INSECURE_SALESFORCE", "true"),
        ("LEADBRIDGE_LEASE_SECS", "10"),
        ("LEADBRIDGE_SALESFORCE_TIMEOUT_SECS", "5"),
    ];
    let mut svc = Service::start_with(&target, port, "first.log", &env);
    svc.wait_ready().await;
    let created = svc
        .create_connection(emulator_connection(&emu, json!({})))
        .await;
    let secret = created["webhookSecret"].as_str().unwrap().to_string();
    let client = |id: u32| {
        json!({"type": "client.created", "occurredAt": "2026-12-01T10:00:00Z",
               "data": {"clientId": id, "email": format!("c{id}@x.io"), "info": {"lastName": "Doe"}}})
    };
    // A first client, so the token and describe are fetched before the fault.
    assert_eq!(
        svc.post_event(&secret, "e-9", &client(9)).await.status(),
        202
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while svc.client_state(9).await["state"] != "synced" {
        assert!(Instant::now() < deadline, "warm-up: {}", svc.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The create commits in Salesforce; its answer is held past the kill.
    emu.fail_next(Fault::AnswerLost, 1);
    assert_eq!(
        svc.post_event(&secret, "e-1", &client(1)).await.status(),
        202
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while emu.lead_count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the create never came: {}",
            svc.logs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    svc.kill9();

    let mut svc = Service::start_with(&target, port, "second.log", &env);
    svc.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = svc.client_state(1).await;
        if s["state"] == "synced" {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "not synced after restart: {s} {}",
            svc.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let same: Vec<_> = emu
        .leads()
        .into_iter()
        .filter(|l| l["Email"] == "c1@x.io")
        .collect();
    assert_eq!(same.len(), 1, "{same:?}");
    assert_eq!(s["leadId"], same[0]["Id"], "{s}");
    assert!(
        s["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("its answer never came")),
        "{s}"
    );
}
