//! Plugin lifecycle (SPEC LC-1..LC-4): hot reload within 1 s, versions side
//! by side, pins, the content-addressed store, rejections with reasons.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use warden_test_artifacts as artifacts;

use crate::{TestServer, install};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Copies the template of examples/ as a plugin author would, with
/// `version`, and builds it with `cargo build --target wasm32-wasip2`.
fn build_template(into: &Path, version: &str) -> PathBuf {
    let src = root().join("examples/playbook-template");
    std::fs::create_dir_all(into.join("src")).unwrap();
    std::fs::copy(src.join("src/lib.rs"), into.join("src/lib.rs")).unwrap();
    let manifest = std::fs::read_to_string(src.join("Cargo.toml")).unwrap();
    let sdk = root().join("sdk");
    let manifest = manifest
        .replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
        .replace("../../sdk", &sdk.display().to_string());
    // The test kit is only for the template's own tests.
    let manifest = manifest
        .split("[dev-dependencies]")
        .next()
        .unwrap()
        .to_string()
        + "\n[workspace]\n[profile.release]\nopt-level = \"s\"\n";
    std::fs::write(into.join("Cargo.toml"), manifest).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("wasm-plugins");
    let built = warden_build::build(into, &target).expect("template builds");
    // Both versions build to the same path in the shared target directory:
    // keep a copy of each.
    let out = into.join(format!("my-playbook-{version}.wasm"));
    std::fs::copy(built.get("my-playbook").expect("my-playbook.wasm"), &out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_is_live_within_a_second_and_pins_hold() {
    let server = TestServer::start(
        r#"
        [workspaces."*".plugins.my-playbook]
        grants = ["health:read", "tasks:read"]
        "#,
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    let v1 = build_template(&work.path().join("v1"), "1.0.0");
    let v2 = build_template(&work.path().join("v2"), "2.0.0");

    install(
        &server.plugin_dir(),
        v1.to_str().unwrap(),
        "my-playbook.wasm",
    );
    let took = server
        .wait_for_plugin("my-playbook", "1.0.0", Duration::from_secs(5))
        .await;
    eprintln!("version 1 live {took:?} after the copy");
    assert!(
        took < Duration::from_secs(1),
        "version 1 took {took:?} to go live"
    );
    let first = server.run("default", "my-playbook", &json!({})).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["version"], "1.0.0");
    let digest_v1 = first["digest"].as_str().unwrap().to_string();

    let (status, pin) = server
        .put(
            "/v1/workspaces/pinned/pins/my-playbook",
            &json!({ "version": "1.0.0" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pin}");
    assert_eq!(pin["resolves_to"]["digest"], digest_v1.as_str());

    // Version 2 overwrites the same file name.
    install(
        &server.plugin_dir(),
        v2.to_str().unwrap(),
        "my-playbook.wasm",
    );
    let took = server
        .wait_for_plugin("my-playbook", "2.0.0", Duration::from_secs(5))
        .await;
    eprintln!("version 2 live {took:?} after the copy");
    assert!(
        took < Duration::from_secs(1),
        "version 2 took {took:?} to go live"
    );

    let latest = server.run("default", "my-playbook", &json!({})).await;
    assert_eq!(latest["version"], "2.0.0");
    assert_ne!(latest["digest"], digest_v1.as_str());
    let pinned = server.run("pinned", "my-playbook", &json!({})).await;
    assert_eq!(pinned["version"], "1.0.0", "{pinned}");
    assert_eq!(pinned["digest"], digest_v1.as_str());

    // Pinning by digest works too, and the listing says what each workspace uses.
    let (status, _) = server
        .put(
            "/v1/workspaces/bydigest/pins/my-playbook",
            &json!({ "selector": digest_v1 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = server.get("/v1/plugins/my-playbook?workspace=pinned").await;
    assert_eq!(listed["pinned_version"], "1.0.0");
    assert_eq!(listed["latest"], "2.0.0");
    let states: Vec<(String, String)> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_string(),
                v["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("2.0.0".into(), "active".into()),
            ("1.0.0".into(), "retired".into())
        ]
    );

    // Removing the file takes effect too; the stored copy keeps pins working.
    std::fs::remove_file(server.plugin_dir().join("my-playbook.wasm")).unwrap();
    let started = std::time::Instant::now();
    loop {
        let (status, body) = server
            .post(
                "/v1/workspaces/default/playbooks/my-playbook/runs",
                &json!({}),
            )
            .await;
        if status == StatusCode::NOT_FOUND {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("no live version"),
                "{body}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "removal not applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let still = server.run("bydigest", "my-playbook", &json!({})).await;
    assert_eq!(still["status"], "succeeded");
    assert_eq!(still["digest"], digest_v1.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_listed_as_rejected_and_nothing_else_is_disturbed() {
    let server = TestServer::start("").await;
    let dir = server.plugin_dir();
    std::fs::write(
        dir.join("corrupt.wasm"),
        b"\x00asm\x0d\x00\x01\x00garbage that is not a component",
    )
    .unwrap();
    std::fs::write(dir.join("core-module.wasm"), b"\x00asm\x01\x00\x00\x00").unwrap();
    std::fs::write(dir.join("text.wasm"), b"hello, I am not wasm").unwrap();
    install(&dir, artifacts::UNKNOWN_WORLD, "unknown-world.wasm");
    install(&dir, artifacts::NO_METADATA, "no-metadata.wasm");
    install(&dir, artifacts::HOSTILE_UNDECLARED, "undeclared.wasm");

    let mut reasons = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let (status, health) = server
            .request(reqwest::Method::GET, "/health", None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{health}");
        let (_, v) = server.get("/v1/plugins").await;
        reasons = v["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let file = r["source"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string();
                (file, r["reason"].as_str().unwrap().to_string())
            })
            .collect();
        if reasons.len() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    assert!(
        reasons["corrupt.wasm"].starts_with("invalid component")
            || reasons["corrupt.wasm"].starts_with("cannot compile"),
        "{reasons:?}"
    );
    assert!(
        reasons["core-module.wasm"].contains("a core WebAssembly module, not a component"),
        "{reasons:?}"
    );
    assert!(
        reasons["text.wasm"].starts_with("not a WebAssembly file"),
        "{reasons:?}"
    );
    assert!(
        reasons["unknown-world.wasm"].contains("does not implement the playbook world"),
        "{reasons:?}"
    );
    assert!(
        reasons["no-metadata.wasm"].starts_with("no plugin metadata"),
        "{reasons:?}"
    );
    assert!(
        reasons["undeclared.wasm"].contains("needs capability \"tasks:write\""),
        "{reasons:?}"
    );

    // Running plugins are undisturbed, and the diagnosis reports the rejects.
    let run = server.run("default", "diagnose-system", &json!({})).await;
    assert_eq!(run["status"], "succeeded");
    let rejected = run["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "plugins.rejected")
        .count();
    assert_eq!(rejected, 6, "{run}");

    // Fixing a file clears its rejection.
    install(&dir, artifacts::NOOP, "text.wasm");
    server
        .wait_for_plugin("noop", "1.0.0", Duration::from_secs(5))
        .await;
    let (_, v) = server.get("/v1/plugins").await;
    assert_eq!(v["rejected"].as_array().unwrap().len(), 5);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_over_http_and_restart_keeps_every_version() {
    let server = TestServer::start(
        "[workspaces.\"*\".plugins.healthy]\ngrants = [\"health:read\", \"tasks:read\", \"kv\"]\n",
    )
    .await;
    let bytes = std::fs::read(artifacts::HEALTHY).unwrap();
    let resp = server
        .client
        .post(format!("{}/v1/plugins", server.url))
        .bearer_auth(crate::ADMIN)
        .header("content-type", "application/wasm")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["name"], "healthy");

    // A bad upload is refused with its reason.
    let resp = server
        .client
        .post(format!("{}/v1/plugins", server.url))
        .bearer_auth(crate::ADMIN)
        .body(b"\x00asm\x01\x00\x00\x00".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a component"),
        "{body}"
    );

    let run = server.run("default", "healthy", &json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // The store keeps it by digest, and an upload stays live across a restart.
    let digest = run["digest"].as_str().unwrap().to_string();
    let extra =
        "[workspaces.\"*\".plugins.healthy]\ngrants = [\"health:read\", \"tasks:read\", \"kv\"]\n";
    let dir = server.stop().await;
    let cas = dir
        .path()
        .join("data/plugins/sha256")
        .join(format!("{}.wasm", &digest[7..]));
    assert_eq!(std::fs::read(&cas).unwrap(), bytes);
    let server = TestServer::start_in(dir, extra).await;
    let again = server.run("default", "healthy", &json!({})).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["digest"], digest.as_str());
    // kv state survived as well: this is the second run.
    let runs: Vec<_> = again["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "healthy.runs")
        .collect();
    assert_eq!(runs[0]["summary"], "run number 2");
    server.stop().await;
}
