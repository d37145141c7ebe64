//! What every end-to-end test binary shares: test servers (in this
//! process or as the real binary), requests, plugin installs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::Value;

/// The bootstrap admin token of every test server.
pub const ADMIN: &str = "test-admin-token-0123456789";

/// A server, in this process or as a child process of the real binary.
pub struct TestServer {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    inner: Inner,
}

enum Inner {
    InProcess(Option<warden_server::Server>),
    Process(Child),
}

impl TestServer {
    /// A server in this process with `extra` appended to its warden.toml.
    pub async fn start(extra: &str) -> TestServer {
        Self::start_in(tempfile::tempdir().expect("tempdir"), extra).await
    }

    /// A server in this process over an existing directory (a restart).
    pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> TestServer {
        let config = write_config(dir.path(), extra);
        let config = warden_server::Config::load(Some(&config)).expect("config");
        let server = warden_server::start(config).await.expect("server starts");
        TestServer {
            url: format!("http://{}", server.addr),
            dir,
            client: client(),
            inner: Inner::InProcess(Some(server)),
        }
    }

    /// A server in this process over `dir` whose configuration `edit`
    /// changes after warden.toml is read: for what warden.toml spells in
    /// one way only, such as a plugin directory relative to the test's
    /// working directory.
    pub async fn start_edited(
        dir: tempfile::TempDir,
        extra: &str,
        edit: impl FnOnce(&mut warden_server::Config),
    ) -> TestServer {
        let config = write_config(dir.path(), extra);
        let mut config = warden_server::Config::load(Some(&config)).expect("config");
        edit(&mut config);
        let server = warden_server::start(config).await.expect("server starts");
        TestServer {
            url: format!("http://{}", server.addr),
            dir,
            client: client(),
            inner: Inner::InProcess(Some(server)),
        }
    }

    /// The real binary, as a child process, in `dir` (kept across
    /// restarts by the caller).
    pub async fn spawn_binary(dir: tempfile::TempDir, extra: &str) -> TestServer {
        Self::spawn_binary_with(dir, extra, &[], None).await
    }

    /// The real binary with `env` set and its stderr (its log) written to
    /// `log` instead of the test's.
    pub async fn spawn_binary_with(
        dir: tempfile::TempDir,
        extra: &str,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> TestServer {
        let port = free_port();
        let config = write_config(
            dir.path(),
            &format!("listen = \"127.0.0.1:{port}\"\n{extra}"),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("spawn warden");
        let server = TestServer {
            url: format!("http://127.0.0.1:{port}"),
            dir,
            client: client(),
            inner: Inner::Process(child),
        };
        server.wait_ready(Duration::from_secs(60)).await;
        server
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    pub fn pid(&self) -> Option<u32> {
        match &self.inner {
            Inner::Process(c) => Some(c.id()),
            Inner::InProcess(_) => None,
        }
    }

    pub fn app(&self) -> &std::sync::Arc<warden_server::app::App> {
        match &self.inner {
            Inner::InProcess(Some(s)) => &s.app,
            _ => panic!("not an in-process server"),
        }
    }

    pub async fn wait_ready(&self, timeout: Duration) {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(r) = self.client.get(format!("{}/ready", self.url)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server at {} not ready after {timeout:?}", self.url);
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, Some(ADMIN), None)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, Some(ADMIN), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::PUT, path, Some(ADMIN), Some(body))
            .await
    }

    /// Triggers a run and waits for it; returns the run.
    pub async fn run(&self, ws: &str, plugin: &str, body: &Value) -> Value {
        let (status, run) = self
            .post(
                &format!("/v1/workspaces/{ws}/playbooks/{plugin}/runs?wait=true"),
                body,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "run of {plugin}: {run}");
        run
    }

    /// Waits until `GET /v1/plugins` lists `name` at `version`; returns how
    /// long it took.
    pub async fn wait_for_plugin(&self, name: &str, version: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < timeout {
            let (_, v) = self.get("/v1/plugins").await;
            let found = v["plugins"].as_array().into_iter().flatten().any(|p| {
                p["name"] == name
                    && p["versions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|ver| ver["version"] == version && ver["state"] == "active")
            });
            if found {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_, v) = self.get("/v1/plugins").await;
        panic!("plugin {name}@{version} not listed after {timeout:?}: {v}");
    }

    /// Kills the child process with SIGKILL and returns its directory.
    pub fn kill9(mut self) -> tempfile::TempDir {
        if let Inner::Process(child) = &mut self.inner {
            // Child::kill sends SIGKILL.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.inner = Inner::InProcess(None);
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    /// Sends SIGTERM to the child process and waits up to `timeout` for it
    /// to exit: how long it took and how it ended (`None`: still running;
    /// it is killed when the server is dropped).
    pub async fn sigterm(
        &mut self,
        timeout: Duration,
    ) -> (Duration, Option<std::process::ExitStatus>) {
        let Inner::Process(child) = &mut self.inner else {
            panic!("not a child process");
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let sent = Instant::now();
        while sent.elapsed() < timeout {
            if let Some(exit) = child.try_wait().expect("wait for warden") {
                return (sent.elapsed(), Some(exit));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (sent.elapsed(), None)
    }

    /// Stops the server; returns its directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        match &mut self.inner {
            Inner::InProcess(server) => {
                if let Some(s) = server.take() {
                    s.shutdown(Duration::from_secs(5)).await;
                }
            }
            Inner::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.inner = Inner::InProcess(None);
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Inner::Process(child) = &mut self.inner {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("warden.toml");
    let listen = if extra.contains("listen =") {
        ""
    } else {
        "listen = \"127.0.0.1:0\"\n"
    };
    // Tests make requests fast; only the rate-limit test sets its own.
    let http = if extra.contains("[http]") {
        ""
    } else {
        "[http]\nrate_limit_per_sec = 100000\nunauthenticated_per_sec = 100000\n"
    };
    // `extra` may hold top-level keys followed by tables; [auth] goes last.
    let text = format!(
        "{listen}data_dir = \"{}\"\nplugin_dir = \"{}\"\n{extra}\n{http}[auth]\nadmin_token = \"{ADMIN}\"\n",
        dir.join("data").display(),
        dir.join("plugins").display(),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Copies a built test plugin into a server's plugin directory under
/// `file_name`, atomically (write then rename), as an operator's `cp` to a
/// temporary name and `mv` would.
pub fn install(server_plugins: &Path, artifact: &str, file_name: &str) {
    std::fs::create_dir_all(server_plugins).expect("plugin dir");
    let tmp = server_plugins.join(format!(".{file_name}.tmp"));
    std::fs::copy(artifact, &tmp).expect("copy plugin");
    std::fs::rename(&tmp, server_plugins.join(file_name)).expect("rename plugin");
}

/// An open Server-Sent Events response, read event by event.
pub struct Sse {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl Sse {
    pub async fn open(s: &TestServer, path: &str, last_event_id: Option<i64>) -> Sse {
        let mut req = s.client.get(format!("{}{path}", s.url)).bearer_auth(ADMIN);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.expect("stream request");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Sse {
            stream: resp.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next event: (id, event, data); `None` when the stream ended.
    pub async fn next(&mut self) -> Option<(i64, String, Value)> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, String::new(), String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                // Keep-alive comments have no id.
                if let Some(id) = id {
                    return Some((id, kind, serde_json::from_str(&data).unwrap_or(Value::Null)));
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("an event or the end within 10 s")?;
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
        }
    }
}

/// A fresh schema of the test PostgreSQL database
/// (`WARDEN_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`)
/// for a server of its own: `database_url = "<url>"` in its warden.toml.
pub struct PgSchema {
    conn: sqlx::PgConnection,
    schema: String,
    /// The URL that selects the schema.
    pub url: String,
}

impl PgSchema {
    /// A new schema; `None` (loudly) when PostgreSQL is unreachable, which
    /// fails `test` under CI=true.
    pub async fn create(test: &str) -> Option<PgSchema> {
        use sqlx::Connection as _;
        let base = std::env::var("WARDEN_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let connect = sqlx::PgConnection::connect(&base);
        let why = match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(mut conn)) => {
                let schema = format!("e2e_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .expect("create the test schema");
                let separator = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
                return Some(PgSchema { conn, schema, url });
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 10 s".to_string(),
        };
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: {test} needs PostgreSQL at {base}, unreachable ({why})"
        );
        eprintln!(
            "\n*** SKIPPED the PostgreSQL part of {test}: {base} is unreachable ({why}) ***\n"
        );
        None
    }

    /// Drops the schema.
    pub async fn drop(mut self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&mut self.conn)
        .await
        .expect("drop the test schema");
    }
}

/// A program of a Python virtualenv under `$HOME/.cache/warden/<venv>`
/// (`program` relative to it, e.g. `bin/python`): reused when `works` says
/// it has what a test needs, else created with `python3 -m venv` and
/// `pip install <requirement>` (PyPI). The error says why it cannot be had.
pub fn python_tool(
    venv: &str,
    requirement: &str,
    program: &str,
    works: impl Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/warden").join(venv);
    let tool = venv.join(program);
    if works(&tool) {
        return Ok(tool);
    }
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    let installed = created
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", requirement])
            .status()
            .is_ok_and(|s| s.success());
    if installed && works(&tool) {
        Ok(tool)
    } else {
        Err(format!(
            "cannot set up {requirement} (python3 -m venv + pip install {requirement} failed)"
        ))
    }
}

/// Whether `python` imports `module`.
pub fn imports(python: &Path, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success())
}

/// `found`, or: under CI=true the test fails naming what it needs, else
/// it is skipped, loudly (`None`).
pub fn required<T>(test: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(t) => Some(t),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: {test} is required to run: {why}"
            );
            eprintln!("\n*** SKIPPED {test}: {why} ***\n");
            None
        }
    }
}
