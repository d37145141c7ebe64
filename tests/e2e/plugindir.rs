//! The plugin directory and the content-addressed store are safe to write
//! into (issue 15, item 8 and item 15): a file's size is checked before it
//! is read, symbolic links out of the directory are not followed, a version
//! is immutable, the store verifies what it loads and repairs what a crash
//! tore, and a rejected file is listed once however its path is spelled.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_test_artifacts as artifacts;

use crate::{PgSchema, TestServer, install};

/// `bytes` with one more custom section appended: the same component, the
/// same metadata (so the same name and version), another digest.
fn rebuilt(bytes: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"warden-test-rebuild";
    let payload = b"the same plugin, built again with other bytes";
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

fn digest(bytes: &[u8]) -> String {
    warden_runtime::digest_of(bytes)
}

/// Writes `bytes` into the plugin directory as `name`, atomically.
fn install_bytes(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The rejected list of `GET /v1/plugins`.
async fn rejected(server: &TestServer) -> Vec<Value> {
    let (status, v) = server.get("/v1/plugins").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["rejected"].as_array().cloned().unwrap_or_default()
}

/// Waits until a rejection whose source ends with `suffix` is listed;
/// returns its reason.
async fn wait_rejected(server: &TestServer, suffix: &str) -> String {
    let started = Instant::now();
    loop {
        let found = rejected(server)
            .await
            .into_iter()
            .find(|r| r["source"].as_str().is_some_and(|s| s.ends_with(suffix)));
        if let Some(r) = found {
            return r["reason"].as_str().unwrap_or_default().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{suffix} not rejected after 10 s: {:?}",
            rejected(server).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The versions `GET /v1/plugins/{name}` lists: (version, digest, state).
async fn versions(server: &TestServer, name: &str) -> Vec<(String, String, String)> {
    let (status, v) = server.get(&format!("/v1/plugins/{name}")).await;
    if status == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(status, StatusCode::OK, "{v}");
    v["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["version"].as_str().unwrap_or_default().to_string(),
                v["digest"].as_str().unwrap_or_default().to_string(),
                v["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `path` spelled relative to this process's working directory (`../..`
/// up to the root, then down), so that it differs from its absolute
/// spelling however the directories are named.
fn relative_to_cwd(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap();
    let mut relative = PathBuf::new();
    for _ in cwd.components().skip(1) {
        relative.push("..");
    }
    relative.join(path.strip_prefix("/").unwrap())
}

/// Regression (issue 15, item 15): with a relative `plugin_dir`, the
/// watcher named a file `/abs/plugins/bad.wasm` (notify makes the watched
/// path absolute) and the rescan every 2 s `plugins/bad.wasm`, and the
/// rejected list showed the one file twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_file_is_listed_once_however_its_path_is_spelled() {
    let dir = tempfile::tempdir().unwrap();
    let relative = relative_to_cwd(&dir.path().join("plugins"));
    let server = TestServer::start_edited(dir, "", |c| c.plugin_dir = relative).await;
    let plugins = server.plugin_dir();
    std::fs::write(plugins.join("bad.wasm"), b"hello, I am not wasm").unwrap();
    wait_rejected(&server, "bad.wasm").await;
    // The watcher saw it first; give the rescan time to see it as well.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let listed = rejected(&server).await;
    assert_eq!(listed.len(), 1, "one file, one entry: {listed:?}");
    assert!(
        listed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a WebAssembly file"),
        "{listed:?}"
    );

    // Fixing the file clears the one entry, and a good file is one live
    // source however it was seen.
    install(&plugins, artifacts::NOOP, "bad.wasm");
    server
        .wait_for_plugin("noop", "1.0.0", Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rejected(&server).await, Vec::<Value>::new());
    std::fs::remove_file(plugins.join("bad.wasm")).unwrap();
    let started = Instant::now();
    while versions(&server, "noop")
        .await
        .iter()
        .any(|v| v.2 == "active")
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the removed file still provides noop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

/// A 64 GiB sparse file is refused from its size, before any byte of it is
/// read (it used to be read whole, and the runtime then refused it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_file_is_rejected_before_it_is_read() {
    let server = TestServer::start("").await;
    let plugins = server.plugin_dir();
    let huge = std::fs::File::create(plugins.join("huge.wasm")).unwrap();
    huge.set_len(64 << 30).unwrap();
    drop(huge);
    let reason = wait_rejected(&server, "huge.wasm").await;
    assert_eq!(
        reason,
        "file of 68719476736 bytes exceeds the 32 MiB limit (limits.max_plugin_mib)"
    );
    let (status, health) = server
        .request(reqwest::Method::GET, "/health", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{health}");
    server.stop().await;
}

/// A symbolic link that leads out of the plugin directory is not followed,
/// whether its target is absolute or climbs with `..`; one that stays
/// inside works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_out_of_the_plugin_directory_are_not_followed() {
    let server = TestServer::start("").await;
    let plugins = server.plugin_dir();
    let outside = server.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(artifacts::NOOP, outside.join("noop.wasm")).unwrap();
    std::os::unix::fs::symlink(outside.join("noop.wasm"), plugins.join("absolute.wasm")).unwrap();
    std::os::unix::fs::symlink("../outside/noop.wasm", plugins.join("climbing.wasm")).unwrap();
    std::fs::create_dir_all(plugins.join("lib")).unwrap();
    std::fs::copy(artifacts::HEALTHY, plugins.join("lib/healthy.wasm")).unwrap();
    std::os::unix::fs::symlink("lib/healthy.wasm", plugins.join("healthy.wasm")).unwrap();

    server
        .wait_for_plugin("healthy", "1.0.0", Duration::from_secs(5))
        .await;
    for name in ["absolute.wasm", "climbing.wasm"] {
        let reason = wait_rejected(&server, name).await;
        assert!(
            reason.contains("leads outside the plugin directory"),
            "{name}: {reason}"
        );
    }
    assert!(
        versions(&server, "noop").await.is_empty(),
        "noop was loaded through a link out of the directory"
    );
    server.stop().await;
}

/// A `name@version` is immutable: a second build claiming a stored version
/// is rejected, from the directory and over HTTP, and `latest` never moves
/// to an impostor of a bundled plugin. On SQLite and PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_is_immutable() {
    let sqlite = TestServer::start("").await;
    version_is_immutable(&sqlite).await;
    sqlite.stop().await;

    let Some(pg) = PgSchema::create("a_version_is_immutable").await else {
        return;
    };
    let postgres = TestServer::start(&format!("database_url = \"{}\"\n", pg.url)).await;
    version_is_immutable(&postgres).await;
    postgres.stop().await;
    pg.drop().await;
}

async fn version_is_immutable(server: &TestServer) {
    let plugins = server.plugin_dir();
    let noop = std::fs::read(artifacts::NOOP).unwrap();
    install(&plugins, artifacts::NOOP, "noop.wasm");
    server
        .wait_for_plugin("noop", "1.0.0", Duration::from_secs(5))
        .await;
    let again = rebuilt(&noop);
    install_bytes(&plugins, "noop-rebuilt.wasm", &again);
    let reason = wait_rejected(server, "noop-rebuilt.wasm").await;
    assert_eq!(
        reason,
        format!(
            "\"noop@1.0.0\" is already stored with digest {}; a version is immutable: give this build a new version",
            digest(&noop)
        )
    );
    let run = server.run("default", "noop", &json!({})).await;
    assert_eq!(run["digest"], digest(&noop).as_str(), "{run}");
    assert_eq!(
        versions(server, "noop").await,
        vec![("1.0.0".into(), digest(&noop), "active".into())]
    );

    // The impostor of a bundled plugin, from the directory.
    let bundled = versions(server, "diagnose-system").await;
    assert_eq!(bundled.len(), 1, "{bundled:?}");
    let bundled_digest = bundled[0].1.clone();
    install(&plugins, artifacts::IMPOSTOR, "diagnose-system.wasm");
    let reason = wait_rejected(server, "diagnose-system.wasm").await;
    assert!(
        reason.starts_with(&format!(
            "\"diagnose-system@1.0.0\" is already stored with digest {bundled_digest}"
        )),
        "{reason}"
    );
    let run = server.run("default", "diagnose-system", &json!({})).await;
    assert_eq!(run["digest"], bundled_digest.as_str(), "{run}");
    assert_ne!(run["report"]["summary"], "impostor ran");

    // And over HTTP.
    let resp = server
        .client
        .post(format!("{}/v1/plugins", server.url))
        .bearer_auth(crate::ADMIN)
        .body(std::fs::read(artifacts::IMPOSTOR).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is already stored with digest"),
        "{body}"
    );
    let after = versions(server, "diagnose-system").await;
    assert_eq!(after, bundled, "nothing of the impostor was stored");
}

/// The store verifies a file's digest when it loads it, and before it
/// skips a write: a stored file whose bytes do not match its name is not
/// loaded (it used to be, under the name's digest), and a torn one is
/// rewritten by the next copy or upload (it used to stay torn, because the
/// file existed). On SQLite and PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_verifies_digests_and_repairs_torn_files() {
    store_repairs("").await;
    let Some(pg) = PgSchema::create("the_store_verifies_digests_and_repairs_torn_files").await
    else {
        return;
    };
    store_repairs(&format!("database_url = \"{}\"\n", pg.url)).await;
    pg.drop().await;
}

async fn store_repairs(extra: &str) {
    let server = TestServer::start(extra).await;
    let noop = std::fs::read(artifacts::NOOP).unwrap();
    let healthy = std::fs::read(artifacts::HEALTHY).unwrap();
    let upload = |server: &TestServer, bytes: Vec<u8>| {
        server
            .client
            .post(format!("{}/v1/plugins", server.url))
            .bearer_auth(crate::ADMIN)
            .body(bytes)
            .send()
    };
    let resp = upload(&server, noop.clone()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    install(&server.plugin_dir(), artifacts::HEALTHY, "healthy.wasm");
    server
        .wait_for_plugin("healthy", "1.0.0", Duration::from_secs(5))
        .await;
    let dir = server.stop().await;

    let cas = dir.path().join("data/plugins/sha256");
    let file_of = |bytes: &[u8]| cas.join(format!("{}.wasm", &digest(bytes)[7..]));
    // The upload's stored file now holds other bytes (a valid component,
    // so only the digest can tell), the directory plugin's is torn.
    std::fs::write(file_of(&noop), rebuilt(&noop)).unwrap();
    std::fs::write(file_of(&healthy), &healthy[..healthy.len() / 2]).unwrap();

    let server = TestServer::start_in(dir, extra).await;
    let listed = rejected(&server).await;
    let store_key = format!("store:{}", digest(&noop));
    let noop_rejection = listed
        .iter()
        .find(|r| r["source"] == store_key.as_str())
        .unwrap_or_else(|| panic!("no rejection of {store_key}: {listed:?}"));
    assert!(
        noop_rejection["reason"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "does not match its digest (it holds {})",
                digest(&rebuilt(&noop))
            )),
        "{noop_rejection}"
    );
    let (status, body) = server
        .post(
            "/v1/workspaces/default/playbooks/noop/runs?wait=true",
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The plugin directory still has healthy.wasm: the rescan at start
    // repaired its stored copy.
    assert_eq!(std::fs::read(file_of(&healthy)).unwrap(), healthy);
    server
        .wait_for_plugin("healthy", "1.0.0", Duration::from_secs(5))
        .await;

    // Uploading the plugin again repairs its stored copy.
    let resp = upload(&server, noop.clone()).await.unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    assert_eq!(std::fs::read(file_of(&noop)).unwrap(), noop);
    let run = server.run("default", "noop", &json!({})).await;
    assert_eq!(run["digest"], digest(&noop).as_str(), "{run}");
    assert!(
        !rejected(&server)
            .await
            .iter()
            .any(|r| r["source"] == store_key.as_str()),
        "the repaired file is no longer listed as rejected"
    );

    // Both load cleanly after another restart.
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, extra).await;
    assert_eq!(rejected(&server).await, Vec::<Value>::new());
    let run = server.run("default", "noop", &json!({})).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    server.stop().await;
}
