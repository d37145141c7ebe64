//! docs/quick-start.md step 5, "write your own playbook", followed
//! literally by a newcomer in a directory of their own (issue 15, item 13):
//! `warden plugin new`, `cargo build --release --target wasm32-wasip2`,
//! copy into a running server's plugin directory, grant, run.
//!
//! Copying `examples/playbook-template` left `warden-sdk = { path =
//! "../../sdk/sdk" }` pointing outside the copy, and the first build
//! stopped with "failed to read .../sdk/sdk/Cargo.toml".

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::TestServer;

/// `warden <args>` in `dir`.
fn warden(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(dir)
        .env_remove("WARDEN_SDK")
        .output()
        .expect("run warden")
}

/// Where the nested plugin builds of the tests go: the target directory
/// the playbook template is built in too, so the SDK and its dependencies
/// are compiled once.
fn plugin_target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-plugins")
}

/// `cargo <args>` in `dir`, as a plugin author runs it, with the shared
/// target directory and none of the outer test build's settings.
fn cargo(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let outer = (key.starts_with("CARGO_")
            && key != "CARGO_HOME"
            && !key.starts_with("CARGO_NET_")
            && !key.starts_with("CARGO_HTTP_")
            && !key.starts_with("CARGO_REGISTR"))
            || matches!(
                key,
                "RUSTFLAGS" | "RUSTC" | "RUSTC_WRAPPER" | "RUSTDOCFLAGS"
            );
        if outer {
            cmd.env_remove(key);
        }
    }
    cmd.env("CARGO_TARGET_DIR", plugin_target_dir());
    cmd.output().expect("run cargo")
}

fn ok(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Writes a plugin with `warden plugin new` in `work` and builds it as the
/// quick start says; returns the built `.wasm`.
fn new_and_build(work: &Path, kind: &str, name: &str) -> PathBuf {
    let out = warden(work, &["plugin", "new", kind, name]);
    let said = ok("warden plugin new", &out);
    assert!(
        said.contains("cargo build --release --target wasm32-wasip2"),
        "{said}"
    );
    let crate_dir = work.join(name);
    let out = cargo(
        &crate_dir,
        &["build", "--release", "--target", "wasm32-wasip2"],
    );
    ok("cargo build --release --target wasm32-wasip2", &out);
    let wasm = plugin_target_dir()
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    wasm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_step_5_works_in_a_directory_of_ones_own() {
    // The newcomer's directory: the server runs in it with ./plugins, and
    // the new crate is written next to it, far from any Warden checkout.
    let work = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_binary(tempfile::tempdir().unwrap(), "").await;
    let plugins = server.plugin_dir();

    // Step 5: create, build, copy.
    let wasm = new_and_build(work.path(), "playbook", "my-playbook");
    let manifest = std::fs::read_to_string(work.path().join("my-playbook/Cargo.toml")).unwrap();
    assert!(!manifest.contains("../../sdk"), "{manifest}");
    std::fs::copy(&wasm, plugins.join("my_playbook.wasm")).unwrap();
    server
        .wait_for_plugin("my-playbook", "0.1.0", Duration::from_secs(10))
        .await;

    // Plugins other than the bundled ones get no capability by default.
    let (status, body) = server
        .post(
            "/v1/workspaces/default/playbooks/my-playbook/runs?wait=true",
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Grant it what it asks for, over the API, and run it.
    let (status, body) = server
        .put(
            "/v1/workspaces/default/grants/my-playbook",
            &json!({ "capabilities": ["health:read", "tasks:read"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = server.run("default", "my-playbook", &json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["report"]["summary"], "0 queued, 0 running, 0 stuck for over 900s",
        "{run}"
    );

    // A gate and a routing policy are written and built the same way, and
    // the server takes each as its kind.
    for (kind, name, world) in [
        ("gate", "no-todo", "quality-gate"),
        ("router", "team-router", "routing-policy"),
    ] {
        let wasm = new_and_build(work.path(), kind, name);
        std::fs::copy(&wasm, plugins.join(format!("{name}.wasm"))).unwrap();
        server
            .wait_for_plugin(name, "0.1.0", Duration::from_secs(10))
            .await;
        let (_, plugin) = server.get(&format!("/v1/plugins/{name}")).await;
        assert_eq!(plugin["kind"], world, "{plugin}");
    }
    server.stop().await;
}

/// What `warden plugin new` refuses, with a message that says why.
#[test]
fn plugin_new_refuses_what_it_cannot_write() {
    let work = tempfile::tempdir().unwrap();
    let out = warden(work.path(), &["plugin", "new", "playbook", "Bad_Name"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "invalid plugin name \"Bad_Name\": use 1 to 64 lowercase letters, digits and dashes"
        ),
        "{err}"
    );

    std::fs::create_dir_all(work.path().join("taken")).unwrap();
    std::fs::write(work.path().join("taken/keep.txt"), "mine").unwrap();
    let out = warden(
        work.path(),
        &["plugin", "new", "gate", "g", "--dir", "taken"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("directory \"taken\" exists and is not empty: choose another with --dir"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("taken/keep.txt")).unwrap(),
        "mine"
    );

    let out = warden(
        work.path(),
        &["plugin", "new", "router", "r", "--sdk", "/nonexistent"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no Warden SDK at \"/nonexistent\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --dir names the crate's directory.
    let out = warden(
        work.path(),
        &["plugin", "new", "router", "r", "--dir", "nested/here"],
    );
    ok("warden plugin new --dir", &out);
    assert!(work.path().join("nested/here/Cargo.toml").is_file());
    assert!(work.path().join("nested/here/tests/router.rs").is_file());
}

/// The test each generated crate carries runs green with the test kit
/// (`cargo test` in the crate). It builds the runtime and wasmtime for the
/// host in the shared plugin target directory, minutes on a small machine,
/// so it runs on request: `cargo test -p warden-server --test e2e --
/// --ignored generated_crates_pass_their_own_tests`.
#[test]
#[ignore = "builds wasmtime for each generated crate's own test; run on request"]
fn generated_crates_pass_their_own_tests() {
    let work = tempfile::tempdir().unwrap();
    for (kind, name) in [
        ("playbook", "my-playbook"),
        ("gate", "no-todo"),
        ("router", "team-router"),
    ] {
        ok(
            "warden plugin new",
            &warden(work.path(), &["plugin", "new", kind, name]),
        );
        let out = cargo(&work.path().join(name), &["test"]);
        let said = ok("cargo test", &out);
        assert!(said.contains("test result: ok. 1 passed"), "{said}");
    }
}
