//! A small typed client of the worker half of the Warden HTTP API (see
//! `docs/workers.md`): create tasks, claim stages, heartbeat, report
//! events, complete and fail.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// A claimed stage: the lease and its fencing token.
#[derive(Clone, Debug, Deserialize)]
pub struct Claim {
    /// The fencing token; every later call about this stage sends it.
    pub token: i64,
    /// The task.
    pub task_id: String,
    /// The stage claimed.
    pub stage: String,
    /// Attempt number at this stage (1 for the first claim).
    pub attempt: i64,
    /// When the lease expires unless heartbeated (RFC 3339).
    pub lease_expires_at: String,
    /// The token of an expired lease this claim took over, if any.
    #[serde(default)]
    pub took_over: Option<i64>,
}

/// Why a claim found nothing (SPEC TS-8).
#[derive(Clone, Debug, Deserialize)]
pub struct Idle {
    /// `no_tasks`, `backoff`, `all_blocked_on_dependencies`, ...
    pub reason: String,
    /// One sentence with the particulars.
    pub message: String,
}

/// The answer to a claim.
#[derive(Clone, Debug, Deserialize)]
pub struct Claims {
    /// The stages granted, possibly none.
    pub claims: Vec<Claim>,
    /// Why none was granted.
    #[serde(default)]
    pub idle: Option<Idle>,
}

/// A task as far as a worker cares.
#[derive(Clone, Debug, Deserialize)]
pub struct Task {
    /// Its id.
    pub id: String,
    /// Its state (`queued`, `running`, `done`, ...).
    pub state: String,
    /// Its current stage.
    pub stage: String,
}

/// The answer to a completion or a failure.
#[derive(Clone, Debug, Deserialize)]
pub struct Outcome {
    /// False when this token had already completed (or failed) the stage:
    /// the call was a harmless repeat.
    #[serde(alias = "failed")]
    pub completed: bool,
    /// The task after the call.
    pub task: Task,
}

/// A client of one Warden server, with one bearer token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`)
    /// sending `token` as the bearer token.
    pub fn new(base_url: &str, token: &str) -> Result<Client> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!(
                "server URL \"{base_url}\" must start with http:// or https://"
            )));
        }
        if token.is_empty() {
            return Err(Error::Config(
                "no API token: set WARDEN_TOKEN or pass --token".into(),
            ));
        }
        let http = reqwest::Client::builder()
            // Long-polling claims wait up to 60 s on the server.
            .timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            token: token.to_string(),
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: String,
        body: Option<&Value>,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let name = if method == reqwest::Method::GET {
            "GET"
        } else {
            "POST"
        };
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|source| Error::Transport {
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| Error::Transport { url, source })?;
        if !status.is_success() {
            // The SE-2 envelope; anything else is shown as it came.
            let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
            let field = |k: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v["error"][k].as_str())
                    .map(str::to_string)
            };
            return Err(Error::Api {
                method: name,
                path,
                status: status.as_u16(),
                code: field("code").unwrap_or_else(|| "UNKNOWN".to_string()),
                message: field("message")
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect()),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            method: name,
            path,
            message: e.to_string(),
        })
    }

    async fn post<T: DeserializeOwned>(&self, path: String, body: &Value) -> Result<T> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// `POST /v1/workspaces/{ws}/tasks`: creates a task (`body` as the API
    /// takes it: `title`, `pipeline`, `priority`, ...).
    pub async fn create_task(&self, workspace: &str, body: &Value) -> Result<Task> {
        self.post(format!("/v1/workspaces/{workspace}/tasks"), body)
            .await
    }

    /// `GET /v1/workspaces/{ws}/tasks/{id}`
    pub async fn task(&self, workspace: &str, id: &str) -> Result<Task> {
        self.call(
            reqwest::Method::GET,
            format!("/v1/workspaces/{workspace}/tasks/{id}"),
            None,
        )
        .await
    }

    /// `POST /v1/workspaces/{ws}/tasks/claim`: claims up to `max` stages
    /// with leases of `lease_ms`, waiting up to `wait_ms` for work when
    /// there is none (long poll). `stages` empty means any stage.
    pub async fn claim(
        &self,
        workspace: &str,
        worker_id: &str,
        max: u32,
        lease_ms: u64,
        wait_ms: u64,
        stages: &[String],
    ) -> Result<Claims> {
        let body = json!({
            "worker_id": worker_id, "max": max, "lease_ms": lease_ms,
            "wait_ms": wait_ms, "stages": stages,
        });
        self.post(format!("/v1/workspaces/{workspace}/tasks/claim"), &body)
            .await
    }

    /// `POST .../tasks/{id}/heartbeat`: extends the lease by `lease_ms`.
    pub async fn heartbeat(&self, workspace: &str, claim: &Claim, lease_ms: u64) -> Result<()> {
        let body = json!({ "token": claim.token, "lease_ms": lease_ms });
        let _: Value = self
            .post(
                format!(
                    "/v1/workspaces/{workspace}/tasks/{}/heartbeat",
                    claim.task_id
                ),
                &body,
            )
            .await?;
        Ok(())
    }

    /// `POST .../tasks/{id}/events`: one event (`status`, `tool_start`,
    /// `tool_result`, `token`, `log`, ...) with its data.
    pub async fn report(
        &self,
        workspace: &str,
        task_id: &str,
        kind: &str,
        data: Value,
    ) -> Result<()> {
        let body = json!({ "type": kind, "data": data });
        let _: Value = self
            .post(
                format!("/v1/workspaces/{workspace}/tasks/{task_id}/events"),
                &body,
            )
            .await?;
        Ok(())
    }

    /// `POST .../tasks/{id}/complete` with the lease's fencing token.
    /// Idempotent: the same token again answers `completed: false`.
    pub async fn complete(&self, workspace: &str, claim: &Claim, output: Value) -> Result<Outcome> {
        let body = json!({ "token": claim.token, "output": output });
        self.post(
            format!(
                "/v1/workspaces/{workspace}/tasks/{}/complete",
                claim.task_id
            ),
            &body,
        )
        .await
    }

    /// `POST .../tasks/{id}/fail`: a retryable failure is retried with
    /// backoff, up to the task's `max_attempts`.
    pub async fn fail(
        &self,
        workspace: &str,
        claim: &Claim,
        error: &str,
        retryable: bool,
    ) -> Result<Outcome> {
        let body = json!({ "token": claim.token, "error": error, "retryable": retryable });
        self.post(
            format!("/v1/workspaces/{workspace}/tasks/{}/fail", claim.task_id),
            &body,
        )
        .await
    }
}
