//! The `warden-test-upstream` binary, as another process starts it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// Kills the child when the test ends, passed or not.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test]
async fn the_binary_prints_its_address_and_serves_until_killed() {
    let mut child = Child(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_warden-test-upstream"))
            .args(["--port", "0", "--name", "py", "--models", "a,b"])
            .args(["--api-key=sk-1", "--chunks", "3"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("the address within 30 s")
    .unwrap();
    let root = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    assert!(root.starts_with("http://127.0.0.1:"), "{root}");
    assert!(!root.ends_with('/'), "{root}");

    let c = crate::client();
    let models: Value = c
        .get(format!("{root}/v1/models"))
        .bearer_auth("sk-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][1]["id"], "b");
    let v: Value = c
        .post(format!("{root}/v1/chat/completions"))
        .bearer_auth("sk-1")
        .json(&crate::chat_body("x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "py-0 py-1 py-2");
    let stats: Value = c
        .post(format!("{root}/_control"))
        .json(&json!({ "behavior": { "mode": "fail", "status": 500 } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 2);
    let r = c
        .post(format!("{root}/v1/chat/completions"))
        .bearer_auth("sk-1")
        .json(&crate::chat_body("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    child.0.kill().await.unwrap();
}

#[tokio::test]
async fn the_binary_refuses_bad_flags() {
    for args in [&["--port", "70000"][..], &["--chunks"], &["--nope", "1"]] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden-test-upstream"))
            .args(args)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage:"),
            "{args:?}"
        );
    }
}
