//! Acceptance 1 of the foundation: a fresh directory, `warden serve` with no
//! configuration at all, the bundled plugins, SQLite by default.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_defaults_lists_and_runs_diagnose_system() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("serve")
        .current_dir(dir.path())
        .env("WARDEN_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("WARDEN_ADMIN_TOKEN")
        .env_remove("WARDEN_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..600 {
        if client
            .get(format!("{url}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "warden serve did not become ready");

    // Defaults: the database and the generated admin token in ./warden-data.
    assert!(dir.path().join("warden-data/warden.db").exists());
    let token = std::fs::read_to_string(dir.path().join("warden-data/admin.token")).unwrap();
    let token = token.trim();

    let plugins: Value = client
        .get(format!("{url}/v1/plugins"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let diag = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "diagnose-system")
        .expect("diagnose-system is listed");
    let version = &diag["versions"][0];
    let digest = version["digest"].as_str().unwrap().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(
        version["capabilities_requested"],
        serde_json::json!(["health:read", "tasks:read"])
    );
    assert_eq!(
        diag["capabilities_granted"],
        serde_json::json!(["health:read", "tasks:read"])
    );
    assert_eq!(version["state"], "active");
    assert_eq!(version["source"], "bundled");

    // `curl -X POST .../runs?wait=true`: no body at all.
    let resp = client
        .post(format!(
            "{url}/v1/workspaces/default/playbooks/diagnose-system/runs?wait=true"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["digest"], digest.as_str());
    let findings = run["report"]["findings"].as_array().unwrap();
    assert!(findings.len() >= 3, "{run}");
    assert!(findings.iter().any(|f| f["code"] == "db.ok"), "{run}");
    assert!(
        findings.iter().any(|f| f["code"] == "workers.none"),
        "{run}"
    );

    // The stored run holds the digest.
    let id = run["id"].as_str().unwrap();
    let stored: Value = client
        .get(format!("{url}/v1/workspaces/default/runs/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["digest"], digest.as_str());
    assert_eq!(stored["usage"]["steps"], 0);

    // The CLI, from the same directory, finds the admin token by itself.
    let ls = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["plugin", "ls", "--server", &url])
        .current_dir(dir.path())
        .env_remove("WARDEN_TOKEN")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    assert!(
        out.contains("diagnose-system") && out.contains("playbook") && out.contains(&digest[..19]),
        "{out}"
    );

    let run = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["playbook", "run", "diagnose-system", "--server", &url])
        .current_dir(dir.path())
        .env_remove("WARDEN_TOKEN")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{out}\n{err}");
    assert!(
        out.contains("degraded") && out.contains("workers.none"),
        "{out}"
    );
    assert!(err.contains("→ health.take"), "progress is shown: {err}");

    let token_out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "token",
            "create",
            "--workspace",
            "acme",
            "--role",
            "viewer",
            "--server",
            &url,
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(token_out.status.success());
    let secret = String::from_utf8_lossy(&token_out.stdout)
        .trim()
        .to_string();
    assert!(secret.starts_with("wdn_"), "{secret}");
    let as_viewer = client
        .get(format!("{url}/v1/workspaces/acme/runs"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(as_viewer.status(), StatusCode::OK);

    let _ = child.kill();
    let _ = child.wait();
}

/// Regression: with `RUST_BACKTRACE=1` in the environment (common on a
/// Rust developer's machine), a failing command printed the Rust stack
/// trace of its error under the one line that says what was wrong.
#[test]
fn a_failing_command_says_what_went_wrong_without_a_stack_trace() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let cases: [&[&str]; 2] = [
        &["serve", "--config", missing.to_str().unwrap()],
        &[
            "task",
            "cancel",
            "t1",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "x",
        ],
    ];
    for args in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(args)
            .current_dir(dir.path())
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LIB_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.starts_with("Error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("backtrace"), "{args:?}: {stderr}");
        assert!(!stderr.contains(".rs:"), "no source locations: {stderr}");
    }
}
