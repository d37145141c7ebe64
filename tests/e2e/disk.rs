//! The disk guard (SPEC RL-3) on a real server: with its thresholds set
//! around the real usage of the file system, recording pauses, evidence
//! older than `compress_after_secs` is compressed with zstd, a critical
//! `disk_low` alert is raised; with them set above the usage, recording
//! resumes and the alert resolves. In between, nothing changes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::TestServer;

/// The guard's loop waits an hour: in these tests only `PUT
/// /v1/disk-guard` measures, so every change is the test's doing.
const CONFIG: &str = "[disk_guard]\ncheck_every_ms = 3600000\n";

pub(crate) async fn guard(s: &TestServer) -> Value {
    let (status, g) = s.get("/v1/disk-guard").await;
    assert_eq!(status, StatusCode::OK, "{g}");
    g
}

pub(crate) async fn set_guard(s: &TestServer, body: Value) -> Value {
    let (status, g) = s.put("/v1/disk-guard", &body).await;
    assert_eq!(status, StatusCode::OK, "{body} -> {g}");
    g
}

pub(crate) fn evidence_dir(s: &TestServer) -> PathBuf {
    s.dir.path().join("data").join("evidence")
}

fn run_file(s: &TestServer, ws: &str, run: &Value) -> PathBuf {
    evidence_dir(s)
        .join(ws)
        .join("runs")
        .join(format!("{}.json", run["id"].as_str().unwrap()))
}

/// The evidence file follows the run's row within moments (it is written
/// from what the database holds once the run is recorded).
pub(crate) async fn wait_for_file(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} was not written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn make_old(path: &Path, secs: u64) {
    let f = File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

async fn diagnose(s: &TestServer, ws: &str) -> Value {
    let run = s
        .run(ws, "diagnose-system", &json!({ "mode": "diagnose" }))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run
}

async fn disk_alert(s: &TestServer, status: &str) -> Option<warden_store::alerts::AlertRow> {
    let key = format!("disk:{}", evidence_dir(s).display());
    s.app()
        .store
        .list_alerts(None, Some(status), 500)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.dedup_key == key)
}

#[tokio::test]
async fn crossing_the_thresholds_pauses_compresses_and_resumes() {
    let s = TestServer::start(CONFIG).await;

    // Evidence of a finished run: report, findings, events.
    let first = diagnose(&s, "w").await;
    let old = run_file(&s, "w", &first);
    wait_for_file(&old).await;
    let original = std::fs::read(&old).unwrap();
    let v: Value = serde_json::from_slice(&original).unwrap();
    assert_eq!(v["run_id"], first["id"]);
    assert_eq!(v["status"], "succeeded");
    assert!(
        !v["report"]["findings"].as_array().unwrap().is_empty(),
        "{v}"
    );
    assert!(!v["events"].as_array().unwrap().is_empty(), "{v}");

    // A second file, recent: it must stay as it is.
    let second = diagnose(&s, "w").await;
    let recent = run_file(&s, "w", &second);
    wait_for_file(&recent).await;
    make_old(&old, 2 * 3600);

    let g = guard(&s).await;
    assert_eq!(g["paused"], false, "{g}");
    assert_eq!(g["thresholds"]["pause_above_pct"], 90.0, "{g}");
    let used = g["usage"]["used_pct"].as_f64().unwrap();
    assert!(
        used > 3.0 && used < 94.0,
        "this test sets thresholds around the real usage, which must leave room: {g}"
    );

    // A refused combination changes nothing.
    let (status, body) = s
        .put(
            "/v1/disk-guard",
            &json!({ "pause_above_pct": 50.0, "resume_below_pct": 60.0 }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must be below pause_above_pct"),
        "{body}"
    );

    // Usage above the pause threshold: paused, old evidence compressed,
    // alert raised.
    let g = set_guard(
        &s,
        json!({ "pause_above_pct": used - 2.0, "resume_below_pct": used - 3.0 }),
    )
    .await;
    assert_eq!(g["paused"], true, "{g}");
    assert_eq!(g["files_compressed"], 1, "{g}");
    assert!(g["bytes_saved"].as_u64().unwrap() > 0, "{g}");
    assert!(!old.exists(), "the original is removed once compressed");
    let zst = old.with_extension("json.zst");
    let back = zstd::decode_all(File::open(&zst).unwrap()).unwrap();
    assert_eq!(
        back, original,
        "the compressed copy decodes to the original"
    );
    assert!(
        recent.exists(),
        "evidence younger than 1 h is not compressed"
    );
    let alert = disk_alert(&s, "open").await.expect("disk_low alert open");
    assert_eq!(alert.rule, "disk_low");
    assert_eq!(alert.severity, "critical");

    // While paused, a finished run is not recorded, only counted.
    let third = diagnose(&s, "w").await;
    let started = Instant::now();
    while guard(&s).await["skipped_recordings"] != 1 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "skip not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!run_file(&s, "w", &third).exists());

    // Between the thresholds (hysteresis): still paused.
    let g = set_guard(
        &s,
        json!({ "pause_above_pct": used + 3.0, "resume_below_pct": used - 3.0 }),
    )
    .await;
    assert_eq!(g["paused"], true, "{g}");
    // Still low: the check raised the same alert again (dedup: one row,
    // count 2).
    let again = disk_alert(&s, "open").await.expect("still open");
    assert_eq!(again.id, alert.id);
    assert!(again.count >= 2, "{again:?}");
    let all = s.app().store.list_alerts(None, None, 500).await.unwrap();
    assert_eq!(
        all.iter().filter(|a| a.rule == "disk_low").count(),
        1,
        "one row"
    );

    // Usage below the resume threshold: recording resumes, alert resolved.
    let g = set_guard(
        &s,
        json!({ "pause_above_pct": (used + 5.0).min(100.0), "resume_below_pct": used + 3.0 }),
    )
    .await;
    assert_eq!(g["paused"], false, "{g}");
    assert!(disk_alert(&s, "open").await.is_none());
    assert!(disk_alert(&s, "resolved").await.is_some());
    let fourth = diagnose(&s, "w").await;
    wait_for_file(&run_file(&s, "w", &fourth)).await;

    // Between the thresholds again: still recording.
    let g = set_guard(
        &s,
        json!({ "pause_above_pct": used + 3.0, "resume_below_pct": used - 3.0 }),
    )
    .await;
    assert_eq!(g["paused"], false, "{g}");
    assert_eq!(g["skipped_recordings"], 1, "{g}");
}

/// Seeds `<evidence>/<ws>/<rel>` with `body`, written `age_secs` ago.
fn seed(s: &TestServer, ws: &str, rel: &str, body: &[u8], age_secs: u64) -> PathBuf {
    let path = evidence_dir(s).join(ws).join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
    make_old(&path, age_secs);
    path
}

async fn cleanup(s: &TestServer, ws: &str, mode: &str) -> (Value, Vec<Value>) {
    let run = s.run(ws, "disk-cleanup", &json!({ "mode": mode })).await;
    assert_eq!(run["status"], "succeeded", "{mode} run: {run}");
    let (status, actions) = s
        .get(&format!(
            "/v1/workspaces/{ws}/runs/{}/actions",
            run["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{actions}");
    (run, actions["actions"].as_array().unwrap().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_cleanup_plans_then_compresses_old_evidence_as_audited_actions() {
    let s = TestServer::start(CONFIG).await;
    let a_body = br#"{"report": "a"}"#.repeat(500);
    let b_body = br#"{"report": "b"}"#.repeat(700);
    let a = seed(&s, "w", "runs/a.json", &a_body, 2 * 3600);
    let b = seed(&s, "w", "runs/nested/b.json", &b_body, 3 * 3600);
    let recent = seed(&s, "w", "runs/recent.json", b"{}", 60);
    // Another workspace's old file: never this workspace's business.
    let other = seed(&s, "other", "runs/o.json", b"{}", 5 * 3600);
    // A symlink in the workspace's directory to a file outside it: not
    // listed, not followed.
    let outside = s.dir.path().join("outside.json");
    std::fs::write(&outside, b"{\"secret\": 1}").unwrap();
    make_old(&outside, 5 * 3600);
    std::os::unix::fs::symlink(&outside, evidence_dir(&s).join("w/runs/link.json")).unwrap();

    // Diagnose: disk use and the old files, no action.
    let (run, actions) = cleanup(&s, "w", "diagnose").await;
    assert!(actions.is_empty(), "{actions:?}");
    let findings = run["report"]["findings"].as_array().unwrap();
    let disk = findings
        .iter()
        .find(|f| f["code"] == "evidence.disk")
        .unwrap();
    assert!(
        disk["evidence"].as_str().unwrap().contains("% used"),
        "{disk}"
    );
    let old = findings
        .iter()
        .find(|f| f["code"] == "evidence.old")
        .unwrap();
    let summary = old["summary"].as_str().unwrap();
    assert!(summary.starts_with("2 evidence file(s)"), "{summary}");
    let listed = old["evidence"].as_str().unwrap();
    assert!(
        listed.contains("runs/nested/b.json") && listed.contains("runs/a.json"),
        "{listed}"
    );
    assert!(
        !listed.contains("link.json") && !listed.contains("recent.json"),
        "{listed}"
    );

    // Plan: two planned compressions, nothing compressed.
    let (run, actions) = cleanup(&s, "w", "plan").await;
    assert_eq!(actions.len(), 2, "{actions:?}");
    for action in &actions {
        assert_eq!(action["call"], "evidence.compress", "{action}");
        assert_eq!(action["status"], "planned", "{action}");
    }
    assert!(a.exists() && b.exists(), "plan mode compresses nothing");
    assert!(!a.with_extension("json.zst").exists());
    assert!(
        run["report"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("2 of 2 compression(s) planned"),
        "{run}"
    );

    // Apply: each file compressed, each an applied action with its sizes.
    let (run, actions) = cleanup(&s, "w", "apply").await;
    assert_eq!(actions.len(), 2, "{actions:?}");
    let mut targets: Vec<&str> = actions
        .iter()
        .map(|a| a["target"].as_str().unwrap())
        .collect();
    targets.sort();
    assert_eq!(targets, ["runs/a.json", "runs/nested/b.json"]);
    for action in &actions {
        assert_eq!(action["status"], "applied", "{action}");
        assert!(action["before"]["bytes"].as_u64().unwrap() > 0, "{action}");
        assert!(
            action["after"]["compressed_bytes"].as_u64().unwrap()
                < action["after"]["original_bytes"].as_u64().unwrap(),
            "{action}"
        );
    }
    assert!(
        run["report"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("2 of 2 file(s) compressed"),
        "{run}"
    );
    for (path, body) in [(&a, &a_body), (&b, &b_body)] {
        assert!(!path.exists(), "{} was not removed", path.display());
        let zst = path.with_extension("json.zst");
        let back = zstd::decode_all(File::open(&zst).unwrap()).unwrap();
        assert_eq!(&back, body, "{} does not round-trip", zst.display());
    }
    assert!(recent.exists() && other.exists() && outside.exists());
    assert!(!outside.with_extension("json.zst").exists());
    assert!(guard(&s).await["files_compressed"].as_u64().unwrap() >= 2);

    // Nothing is left to do.
    let (run, actions) = cleanup(&s, "w", "apply").await;
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(run["report"]["summary"], "nothing to compress", "{run}");
}
