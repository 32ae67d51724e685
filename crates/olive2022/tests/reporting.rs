//! `olive2022 cloudlet --tier1-url`: a cloudlet reporting itself to a tier 1
//! as a Sinfonia tier 2 does. The tier 1 is a second `olive2022 cloudlet`
//! (which records reports and lists them) or a fake HTTP server (which
//! records every request); the real Sinfonia tier 1 is `scripts/interop.sh`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{CloudletProcess, converted_to_layout, olive, text};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::http::{Reply, Request};
use testkit::registry::free_port;

const URL: &str = "vmnetx+https://olivearchive.org/launch/federation-test/package.nxpk";
const TOKEN: &str = "t0ken-that-must-never-be-logged";

/// A cloudlet for these tests: `-vv`, so its log shows every report.
fn cloudlet(
    recipes: &Path,
    data_dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> CloudletProcess {
    let mut flags = vec!["-vv"];
    flags.extend_from_slice(extra);
    CloudletProcess::start_with_env(recipes, data_dir, &flags, env)
}

fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET {api}/api/v1/cloudlets/` as JSON.
fn cloudlets(api: &str) -> Vec<Value> {
    let body = testkit::run("curl", &["-sf", &format!("{api}/api/v1/cloudlets/")]);
    serde_json::from_str::<Vec<Value>>(&body).unwrap()
}

/// The entry of `uuid` on the tier 1 at `api`, once it satisfies `ready`.
fn reported(api: &str, uuid: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let mut found = None;
    wait_until("the report on tier 1", 60, || {
        found = cloudlets(api)
            .into_iter()
            .find(|entry| entry["uuid"] == uuid && ready(entry));
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn a_cloudlet_reports_itself_to_tier1_under_a_uuid_that_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("RECIPES");
    std::fs::create_dir(&recipes).unwrap();
    let tier1 = cloudlet(&recipes, &dir.path().join("tier1"), &[], &[]);
    let public = "http://tier2.example.org:8443/sinfonia";
    let site = |location: &str| {
        vec![
            "--tier1-url".to_owned(),
            format!("{}/", tier1.api),
            "--public-url".to_owned(),
            public.to_owned(),
            "--max-vms".to_owned(),
            "3".to_owned(),
            "--location".to_owned(),
            location.to_owned(),
            "--accept-clients".to_owned(),
            "10.1.0.0/16".to_owned(),
            "--reject-clients".to_owned(),
            "10.1.2.0/24".to_owned(),
            "--local-network".to_owned(),
            "192.0.2.0/24".to_owned(),
        ]
    };
    let args = site("40.44,-79.94");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = dir.path().join("tier2");
    let mut tier2 = cloudlet(&recipes, &data, &args, &[]);
    let uuid = tier2.uuid();
    let entry = reported(&tier1.api, &uuid, |_| true);
    assert_eq!(entry["endpoint"], format!("{public}/api/v1/deploy"));
    assert_eq!(entry["locations"], serde_json::json!([[40.44, -79.94]]));
    assert_eq!(
        entry["accepted_clients"],
        serde_json::json!(["10.1.0.0/16"])
    );
    assert_eq!(
        entry["rejected_clients"],
        serde_json::json!(["10.1.2.0/24"])
    );
    assert_eq!(entry["local_networks"], serde_json::json!(["192.0.2.0/24"]));
    let resources = &entry["resources"];
    for ratio in ["cpu_ratio", "mem_ratio"] {
        let value = resources[ratio]
            .as_f64()
            .unwrap_or_else(|| panic!("{entry}"));
        assert!((0.0..=1.0).contains(&value), "{ratio}: {entry}");
    }
    for rate in ["net_rx_rate", "net_tx_rate"] {
        assert!(resources[rate].as_f64().unwrap() >= 0.0, "{entry}");
    }
    assert_eq!(resources["vm_slots_free"], 3.0, "{entry}");
    assert!(tier2.log().contains("report sent"), "{}", tier2.log());

    // Restarted on the same data directory, elsewhere: the same cloudlet
    // moves, no twin appears.
    assert!(tier2.terminate().unwrap().success(), "{}", tier2.log());
    let args = site("46.52,6.63");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tier2 = cloudlet(&recipes, &data, &args, &[]);
    assert_eq!(tier2.uuid(), uuid);
    reported(&tier1.api, &uuid, |entry| {
        entry["locations"] == serde_json::json!([[46.52, 6.63]])
    });
    let twins = cloudlets(&tier1.api)
        .iter()
        .filter(|entry| entry["endpoint"] == format!("{public}/api/v1/deploy"))
        .count();
    assert_eq!(twins, 1);
}

/// A fake tier 1 that records every request and answers 204.
fn fake_tier1() -> testkit::http::FakeServer {
    testkit::http::fake(|_: &Request| Reply::Answer(204, vec![], vec![]))
}

#[test]
fn reports_carry_the_bearer_token_and_a_stop_says_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("RECIPES");
    std::fs::create_dir(&recipes).unwrap();
    let tier1 = fake_tier1();
    let data = dir.path().join("tier2");
    let env = [("OLIVE2022_CLOUDLET_CLOUDLET_TOKEN", TOKEN)];
    let args = ["--tier1-url", &tier1.base];
    let mut tier2 = cloudlet(&recipes, &data, &args, &env);
    let uuid = tier2.uuid();
    wait_until("a report", 60, || {
        tier1.seen().iter().any(|r| r.method == "POST")
    });
    let report = tier1
        .seen()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(report.target, "/api/v1/cloudlets/");
    assert_eq!(
        report.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body: Value = serde_json::from_slice(&report.body).unwrap();
    assert_eq!(body["uuid"], uuid.as_str());
    assert_eq!(body["endpoint"], format!("{}/api/v1/deploy", tier2.api));

    assert!(tier2.terminate().unwrap().success(), "{}", tier2.log());
    let goodbye = tier1.seen().into_iter().find(|r| r.method == "DELETE");
    let goodbye = goodbye.unwrap_or_else(|| panic!("no DELETE: {}", tier2.log()));
    assert_eq!(goodbye.target, format!("/api/v1/cloudlets/{uuid}"));
    assert_eq!(
        goodbye.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let log = tier2.log();
    assert!(log.contains("goodbye sent"), "{log}");
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");

    // Nor does --print-config show it; it says it is set.
    let shown = olive()
        .args(["cloudlet", "--print-config", "--data-dir", "/nonexistent"])
        .args(["--tier1-url", &tier1.base])
        .env("OLIVE2022_CLOUDLET_CLOUDLET_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", text(&shown));
    let shown = text(&shown);
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("cloudlet-token: set"), "{shown}");
    assert!(
        shown.contains(&format!("tier1-url = [\"{}\"]", tier1.base)),
        "{shown}"
    );
}

#[test]
fn without_a_token_no_authorization_header_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("RECIPES");
    std::fs::create_dir(&recipes).unwrap();
    let tier1 = fake_tier1();
    let args = ["--tier1-url", &tier1.base];
    let tier2 = cloudlet(&recipes, &dir.path().join("tier2"), &args, &[]);
    wait_until("a report", 60, || {
        tier1.seen().iter().any(|r| r.method == "POST")
    });
    let report = tier1
        .seen()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(report.header("authorization"), None);
    drop(tier2);
}

#[test]
fn a_tier1_that_is_down_does_not_stop_the_cloudlet_serving_deploys() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = converted_to_layout(dir.path(), URL, "Federation test VM");
    let closed = format!("http://127.0.0.1:{}", free_port());
    let args = ["--tier1-url", &closed];
    let started = Instant::now();
    let tier2 = cloudlet(&recipes, &dir.path().join("tier2"), &args, &[]);

    let report = dir.path().join("report.json");
    let launched = olive()
        .args(["launch", "--timeout", "90", "--tier1-url", &tier2.api])
        .args(["--viewer", env!("CARGO_BIN_EXE_rfb-probe"), URL])
        .env("XDG_CACHE_HOME", dir.path().join("client"))
        .env("RFB_REPORT", &report)
        .env_remove("OLIVE2022_VIEWER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(launched.status.success(), "{}", text(&launched));
    let screen: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(screen["banner"], "RFB 003.008\n");

    // Attempts at about 1, 3, 7, 15 s…: one warning for the whole outage,
    // counted once three attempts have failed (the launch may be quicker).
    while started.elapsed() < Duration::from_secs(9) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = tier2.log();
    assert_eq!(
        log.matches("tier 1 unreachable").count(),
        1,
        "one warning per outage:\n{log}"
    );
    assert!(log.contains("WARN"), "{log}");
}
