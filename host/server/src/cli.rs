//! The `warden` command line (SPEC IF-1). `serve` runs the host; every
//! other command talks to a running host over its HTTP API.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt as _;
use serde_json::{Value, json};

pub mod new;

/// Warden: the control plane for autonomous coding agents.
#[derive(Parser, Debug)]
#[command(name = "warden", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "WARDEN_LOG_JSON")]
    pub log_json: bool,
}

/// Where a client command finds the server.
#[derive(Args, Debug, Clone)]
pub struct Client {
    /// Base URL of the Warden server.
    #[arg(
        long,
        env = "WARDEN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Bearer token; default: `WARDEN_TOKEN`, else `<data-dir>/admin.token`.
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Where `warden serve` keeps its state (to find the admin token).
    #[arg(long, default_value = "warden-data", global = true)]
    pub data_dir: PathBuf,
    /// Print the raw JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the host: API, dashboard, plugin runtime.
    Serve {
        /// Configuration file (default: ./warden.toml when present).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address, overriding the configuration.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// A demo: stand-in model providers (one flaky), a server on its own
    /// data directory and a load of workers, gates and playbooks, so that
    /// the dashboard has something to show. Runs until Ctrl-C.
    Demo {
        /// Listen address of the demo server.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where the demo keeps its state (its own, not warden-data).
        #[arg(long, default_value = "warden-demo")]
        dir: PathBuf,
        /// Workers per workspace.
        #[arg(long, default_value_t = 3)]
        workers: usize,
        /// A new task per workspace every this many milliseconds.
        #[arg(long, default_value_t = 1500)]
        task_every_ms: u64,
    },
    /// Plugins: list, inspect, and write a new one.
    Plugin {
        /// Which.
        #[command(subcommand)]
        command: PluginCommand,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
    /// Playbooks: run.
    Playbook {
        /// Which.
        #[command(subcommand)]
        command: PlaybookCommand,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
    /// Tasks: create, list, cancel, approve, reject.
    Task {
        /// Which.
        #[command(subcommand)]
        command: TaskCommand,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
    /// Quality gates: bindings, statistics, verdicts.
    Gate {
        /// Which.
        #[command(subcommand)]
        command: GateCommand,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
    /// The model gateway: providers, usage, calls.
    Gateway {
        /// Which.
        #[command(subcommand)]
        command: GatewayCommand,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
    /// Alerts: list, acknowledge, silence, notification history.
    Alert {
        /// Which.
        #[command(subcommand)]
        command: AlertCommand,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
    /// Managed processes: their state.
    Process {
        /// Which.
        #[command(subcommand)]
        command: ProcessCommand,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
    /// The dead-letter queue: list, redrive.
    Dlq {
        /// Which.
        #[command(subcommand)]
        command: DlqCommand,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
    /// Degradation mode of a workspace.
    Mode {
        /// Which.
        #[command(subcommand)]
        command: ModeCommand,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
    /// What a workspace is doing, or why it is idle.
    Status {
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
    /// Tokens: create.
    Token {
        /// Which.
        #[command(subcommand)]
        command: TokenCommand,
        /// Server.
        #[command(flatten)]
        client: Client,
    },
}

/// `warden plugin ...`
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Every plugin with its versions, and every rejected file with why.
    Ls {
        /// Show grants and pins of this workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
    },
    /// One plugin in detail: versions, digests, imports, limits, grants.
    Inspect {
        /// Plugin name.
        name: String,
        /// Workspace for pins and grants.
        #[arg(long, short, default_value = "default")]
        workspace: String,
    },
    /// Write a new plugin crate (source, Cargo.toml, a test with the test
    /// kit) that builds wherever it is written. Needs no server.
    New {
        /// playbook, gate or router.
        kind: new::Kind,
        /// The plugin's name: lowercase letters, digits and dashes.
        name: String,
        /// Where to write it (missing or empty); default: ./<name>.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The sdk directory of a Warden checkout to build against;
        /// default: the one this binary was built from.
        #[arg(long, env = "WARDEN_SDK")]
        sdk: Option<PathBuf>,
    },
}

/// `warden playbook ...`
#[derive(Subcommand, Debug)]
pub enum PlaybookCommand {
    /// Trigger a run, follow its events, print its report.
    Run {
        /// Playbook name.
        name: String,
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
        /// diagnose, plan or apply.
        #[arg(long, short, default_value = "diagnose")]
        mode: String,
        /// Input as JSON.
        #[arg(long, short)]
        input: Option<String>,
        /// Idempotency key.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Return right after the run is accepted.
        #[arg(long)]
        no_wait: bool,
    },
}

/// `warden task ...`
#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Create a task.
    Create {
        /// Title.
        title: String,
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
        /// Body text.
        #[arg(long, default_value = "")]
        body: String,
        /// urgent, normal or low.
        #[arg(long, short, default_value = "normal")]
        priority: String,
        /// A task this one waits for (repeatable).
        #[arg(long = "depends-on")]
        depends_on: Vec<String>,
        /// Token budget.
        #[arg(long)]
        token_budget: Option<i64>,
        /// Failures allowed per stage before the dead-letter queue.
        #[arg(long)]
        max_attempts: Option<u32>,
    },
    /// List tasks.
    Ls {
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
        /// Only these states, comma separated.
        #[arg(long, short)]
        state: Option<String>,
    },
    /// Cancel a task.
    Cancel {
        /// Task id.
        id: String,
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
    },
    /// Approve a task waiting for approval (a gate escalated, or no
    /// quorum): it moves past the gated stage.
    Approve {
        /// Task id.
        id: String,
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
        /// Why.
        #[arg(long, short, default_value = "")]
        reason: String,
    },
    /// Reject a task waiting for approval: it goes back (to `plan` by
    /// default) with the reason as its plan delta.
    Reject {
        /// Task id.
        id: String,
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
        /// Why (the plan delta).
        #[arg(long, short)]
        reason: String,
    },
}

/// `warden gate ...`
#[derive(Subcommand, Debug)]
pub enum GateCommand {
    /// The gates bound to each stage.
    Ls {
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
    },
    /// Approval rates per gate and the top rejection reasons.
    Stats {
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
        /// Look back this many hours.
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
    /// The gated transitions of a task and each gate's verdict.
    Verdicts {
        /// Task id.
        task: String,
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
    },
}

/// `warden gateway ...`
#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// The providers with their breakers.
    Providers,
    /// Tokens and cost, summed per group.
    Usage {
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
        /// Any of provider, model, task, stage, mode, comma-separated.
        #[arg(long, default_value = "provider,model")]
        group_by: String,
        /// Look back this many hours.
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
    /// Recorded calls, newest first.
    Calls {
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
        /// Only this task's.
        #[arg(long)]
        task: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

/// `warden alert ...` (bootstrap admin: alerts span workspaces)
#[derive(Subcommand, Debug)]
pub enum AlertCommand {
    /// Alerts, newest first.
    Ls {
        /// Only `open`, `acknowledged` or `resolved` ones.
        #[arg(long)]
        status: Option<String>,
        /// Only this workspace's.
        #[arg(long, short)]
        workspace: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Acknowledges an alert: no more repeats; its resolve is still sent.
    Ack {
        /// The alert's id.
        id: String,
    },
    /// Holds back the notifications of matching alerts for a while.
    Silence {
        /// Only alerts of this workspace.
        #[arg(long, short)]
        workspace: Option<String>,
        /// Only alerts of this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only alerts of this severity.
        #[arg(long)]
        severity: Option<String>,
        /// Only alerts with this dedup key (a prefix when it ends in `*`).
        #[arg(long)]
        dedup_key: Option<String>,
        /// How long: `30m`, `2h`, ...
        #[arg(long = "for", default_value = "1h")]
        duration: String,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Silences in force (`--all`: expired ones too).
    Silences {
        /// Expired ones too.
        #[arg(long)]
        all: bool,
    },
    /// Ends a silence now.
    Unsilence {
        /// The silence's id.
        id: String,
    },
    /// Notifications sent (or waiting), newest first.
    History {
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// Only `pending`, `delivered` or `failed` ones.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// `warden process ...`
#[derive(Subcommand, Debug)]
pub enum ProcessCommand {
    /// Every managed process with its state, pid and restarts.
    Ls,
}

/// `warden dlq ...`
#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// Tasks in the dead-letter queue, with their last error.
    Ls {
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
    },
    /// Put a dead task back in the queue.
    Redrive {
        /// Task id.
        id: String,
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
    },
}

/// `warden mode ...`
#[derive(Subcommand, Debug)]
pub enum ModeCommand {
    /// Switch the mode: normal, minimal, read-only, emergency-stop.
    Set {
        /// The mode.
        mode: String,
        /// Workspace.
        #[arg(long, short, default_value = "default")]
        workspace: String,
        /// Why (kept with the mode and shown in status).
        #[arg(long, short)]
        reason: Option<String>,
    },
}

/// `warden token ...`
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token scoped to one workspace; prints the secret once.
    Create {
        /// Workspace.
        #[arg(long, short)]
        workspace: String,
        /// viewer, agent, operator or admin.
        #[arg(long, short)]
        role: String,
        /// A label.
        #[arg(long, short, default_value = "cli")]
        name: String,
    },
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    json: bool,
}

impl Api {
    fn new(c: &Client) -> anyhow::Result<Api> {
        let token = match &c.token {
            Some(t) => t.clone(),
            None => {
                let path = c.data_dir.join("admin.token");
                std::fs::read_to_string(&path)
                    .map(|s| s.trim().to_string())
                    .with_context(|| {
                        format!("no token: pass --token, set WARDEN_TOKEN, or run from the directory holding {}", path.display())
                    })?
            }
        };
        Ok(Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(330))
                .build()?,
            base: c.server.trim_end_matches('/').to_string(),
            token,
            json: c.json,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the Warden server at {}", self.base))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let code = value["error"]["code"].as_str().unwrap_or("ERROR");
            let message = value["error"]["message"].as_str().unwrap_or("no message");
            bail!("{code} ({status}): {message}");
        }
        Ok(value)
    }
}

/// Runs a client command.
pub async fn run_client(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } | Command::Demo { .. } => bail!("not a client command"),
        Command::Plugin {
            command:
                PluginCommand::New {
                    kind,
                    name,
                    dir,
                    sdk,
                },
            ..
        } => new::run(kind, &name, dir, sdk),
        Command::Plugin { command, client } => {
            let api = Api::new(&client)?;
            match command {
                PluginCommand::New { .. } => bail!("not a server command"),
                PluginCommand::Ls { workspace } => plugin_ls(&api, &workspace).await,
                PluginCommand::Inspect { name, workspace } => {
                    let v = api
                        .call(
                            reqwest::Method::GET,
                            &format!("/v1/plugins/{name}?workspace={workspace}"),
                            None,
                        )
                        .await?;
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    Ok(())
                }
            }
        }
        Command::Playbook { command, client } => {
            let api = Api::new(&client)?;
            let PlaybookCommand::Run {
                name,
                workspace,
                mode,
                input,
                idempotency_key,
                no_wait,
            } = command;
            let input: Value = match input {
                Some(text) => serde_json::from_str(&text).context("--input is not valid JSON")?,
                None => Value::Null,
            };
            playbook_run(
                &api,
                &workspace,
                &name,
                &mode,
                input,
                idempotency_key,
                no_wait,
            )
            .await
        }
        Command::Task { command, client } => {
            let api = Api::new(&client)?;
            match command {
                TaskCommand::Create {
                    title,
                    workspace,
                    body,
                    priority,
                    depends_on,
                    token_budget,
                    max_attempts,
                } => {
                    let mut req = json!({ "title": title, "body": body, "priority": priority, "depends_on": depends_on });
                    if let Some(t) = token_budget {
                        req["budget"] = json!({ "tokens": t });
                    }
                    if let Some(m) = max_attempts {
                        req["max_attempts"] = json!(m);
                    }
                    let v = api
                        .call(
                            reqwest::Method::POST,
                            &format!("/v1/workspaces/{workspace}/tasks"),
                            Some(req),
                        )
                        .await?;
                    if api.json {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    } else {
                        println!("{}", v["id"].as_str().unwrap_or_default());
                    }
                    Ok(())
                }
                TaskCommand::Ls { workspace, state } => {
                    let q = state.map(|s| format!("?state={s}")).unwrap_or_default();
                    let v = api
                        .call(
                            reqwest::Method::GET,
                            &format!("/v1/workspaces/{workspace}/tasks{q}"),
                            None,
                        )
                        .await?;
                    print_tasks(&api, &v["tasks"])
                }
                TaskCommand::Cancel { id, workspace } => {
                    let v = api
                        .call(
                            reqwest::Method::POST,
                            &format!("/v1/workspaces/{workspace}/tasks/{id}/cancel"),
                            Some(json!({})),
                        )
                        .await?;
                    println!(
                        "{} {}",
                        v["id"].as_str().unwrap_or_default(),
                        v["state"].as_str().unwrap_or_default()
                    );
                    Ok(())
                }
                TaskCommand::Approve {
                    id,
                    workspace,
                    reason,
                } => decide(&api, &workspace, &id, "approve", &reason).await,
                TaskCommand::Reject {
                    id,
                    workspace,
                    reason,
                } => decide(&api, &workspace, &id, "reject", &reason).await,
            }
        }
        Command::Gateway { command, client } => gateway(&Api::new(&client)?, command).await,
        Command::Alert { command, client } => alert(&Api::new(&client)?, command).await,
        Command::Process { command, client } => process(&Api::new(&client)?, command).await,
        Command::Gate { command, client } => {
            let api = Api::new(&client)?;
            match command {
                GateCommand::Ls { workspace } => {
                    let v = api
                        .call(
                            reqwest::Method::GET,
                            &format!("/v1/workspaces/{workspace}/gates"),
                            None,
                        )
                        .await?;
                    if api.json {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                        return Ok(());
                    }
                    let bindings = v["bindings"].as_array().cloned().unwrap_or_default();
                    if bindings.is_empty() {
                        println!("no gates bound in workspace {workspace}");
                    }
                    for b in bindings {
                        let gates: Vec<&str> = b["gates"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        println!(
                            "after {:<12} {:<40} quorum {:<9} reject to {:<10} on error {} ({})",
                            b["stage"].as_str().unwrap_or_default(),
                            gates.join(", "),
                            b["quorum"].as_str().unwrap_or_default(),
                            b["reject_to"].as_str().unwrap_or_default(),
                            b["on_error"].as_str().unwrap_or_default(),
                            b["source"].as_str().unwrap_or_default(),
                        );
                    }
                    Ok(())
                }
                GateCommand::Stats { workspace, hours } => {
                    let v = api
                        .call(
                            reqwest::Method::GET,
                            &format!("/v1/workspaces/{workspace}/gate-stats?hours={hours}"),
                            None,
                        )
                        .await?;
                    if api.json {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                        return Ok(());
                    }
                    println!(
                        "{:<24} {:>8} {:>9} {:>9}  breaker",
                        "GATE", "VERDICTS", "APPROVED", "REJECTED"
                    );
                    for g in v["gates"].as_array().into_iter().flatten() {
                        println!(
                            "{:<24} {:>8} {:>8.0}% {:>8.0}%  {}",
                            g["gate"].as_str().unwrap_or_default(),
                            g["verdicts"],
                            g["approval_rate"].as_f64().unwrap_or(0.0) * 100.0,
                            g["rejection_rate"].as_f64().unwrap_or(0.0) * 100.0,
                            g["breaker"]["state"].as_str().unwrap_or("closed"),
                        );
                    }
                    let top = v["top_rejection_reasons"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if !top.is_empty() {
                        println!("\ntop rejection reasons:");
                        for r in top {
                            println!(
                                "{:>5}  {} [{}] {}",
                                r["count"],
                                r["gate"].as_str().unwrap_or_default(),
                                r["category"].as_str().unwrap_or_default(),
                                r["message"].as_str().unwrap_or_default()
                            );
                        }
                    }
                    Ok(())
                }
                GateCommand::Verdicts { task, workspace } => {
                    let v = api
                        .call(
                            reqwest::Method::GET,
                            &format!("/v1/workspaces/{workspace}/tasks/{task}/verdicts"),
                            None,
                        )
                        .await?;
                    if api.json {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                        return Ok(());
                    }
                    for d in v["decisions"].as_array().into_iter().flatten() {
                        println!(
                            "{} {}",
                            d["at"].as_str().unwrap_or_default(),
                            d["summary"].as_str().unwrap_or_default()
                        );
                        for verdict in d["verdicts"].as_array().into_iter().flatten() {
                            println!(
                                "    {:<20} {:<8} score {:>3}  {}{}",
                                verdict["gate"].as_str().unwrap_or_default(),
                                verdict["decision"].as_str().unwrap_or_default(),
                                verdict["score"],
                                verdict["digest"].as_str().unwrap_or_default(),
                                verdict["error"]
                                    .as_str()
                                    .map(|e| format!("  error: {e}"))
                                    .unwrap_or_default()
                            );
                            for r in verdict["reasons"].as_array().into_iter().flatten() {
                                println!(
                                    "        [{}] {}",
                                    r["category"].as_str().unwrap_or_default(),
                                    r["message"].as_str().unwrap_or_default()
                                );
                            }
                        }
                    }
                    Ok(())
                }
            }
        }
        Command::Dlq { command, client } => {
            let api = Api::new(&client)?;
            match command {
                DlqCommand::Ls { workspace } => {
                    let v = api
                        .call(
                            reqwest::Method::GET,
                            &format!("/v1/workspaces/{workspace}/dead-letters"),
                            None,
                        )
                        .await?;
                    print_tasks(&api, &v["dead_letters"])
                }
                DlqCommand::Redrive { id, workspace } => {
                    let v = api
                        .call(
                            reqwest::Method::POST,
                            &format!("/v1/workspaces/{workspace}/dead-letters/{id}/redrive"),
                            Some(json!({})),
                        )
                        .await?;
                    println!(
                        "{} {} at {}",
                        v["id"].as_str().unwrap_or_default(),
                        v["state"].as_str().unwrap_or_default(),
                        v["stage"].as_str().unwrap_or_default()
                    );
                    Ok(())
                }
            }
        }
        Command::Mode { command, client } => {
            let api = Api::new(&client)?;
            let ModeCommand::Set {
                mode,
                workspace,
                reason,
            } = command;
            let v = api
                .call(
                    reqwest::Method::PUT,
                    &format!("/v1/workspaces/{workspace}/mode"),
                    Some(json!({ "mode": mode, "reason": reason })),
                )
                .await?;
            println!(
                "workspace {workspace} is now in {} mode",
                v["mode"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        Command::Status { workspace, client } => {
            let api = Api::new(&client)?;
            let v = api
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/workspaces/{workspace}/status"),
                    None,
                )
                .await?;
            if api.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!(
                "workspace {workspace}: mode {}",
                v["mode"].as_str().unwrap_or("")
            );
            let counts: Vec<String> = v["tasks_by_state"]
                .as_object()
                .map(|m| m.iter().map(|(k, n)| format!("{k}={n}")).collect())
                .unwrap_or_default();
            println!(
                "tasks: {}",
                if counts.is_empty() {
                    "none".to_string()
                } else {
                    counts.join(" ")
                }
            );
            for r in v["running"].as_array().into_iter().flatten() {
                println!(
                    "  running {} at {} on {} (lease until {})",
                    r["task_id"].as_str().unwrap_or(""),
                    r["stage"].as_str().unwrap_or(""),
                    r["worker"].as_str().unwrap_or("?"),
                    r["lease_expires_at"].as_str().unwrap_or("")
                );
            }
            if let Some(why) = v["why_idle"].as_object() {
                println!(
                    "idle: {} ({})",
                    why.get("message").and_then(Value::as_str).unwrap_or(""),
                    why.get("reason").and_then(Value::as_str).unwrap_or("")
                );
            }
            for a in v["alerts"].as_array().into_iter().flatten() {
                println!(
                    "  alert [{}] {}",
                    a["severity"].as_str().unwrap_or(""),
                    a["summary"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        Command::Token { command, client } => {
            let api = Api::new(&client)?;
            let TokenCommand::Create {
                workspace,
                role,
                name,
            } = command;
            let v = api
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/workspaces/{workspace}/tokens"),
                    Some(json!({ "name": name, "role": role })),
                )
                .await?;
            if api.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                eprintln!(
                    "token {} ({} in workspace {}); shown once, keep it safe:",
                    v["id"].as_str().unwrap_or("?"),
                    v["role"].as_str().unwrap_or("?"),
                    v["workspace"].as_str().unwrap_or("?")
                );
                println!("{}", v["token"].as_str().unwrap_or_default());
            }
            Ok(())
        }
    }
}

/// `task approve|reject`.
async fn decide(api: &Api, ws: &str, id: &str, decision: &str, reason: &str) -> anyhow::Result<()> {
    let v = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/workspaces/{ws}/tasks/{id}/decision"),
            Some(json!({ "decision": decision, "reason": reason })),
        )
        .await?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} {} at {}",
            v["task"]["id"].as_str().unwrap_or_default(),
            v["task"]["state"].as_str().unwrap_or_default(),
            v["task"]["stage"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

fn print_tasks(api: &Api, tasks: &Value) -> anyhow::Result<()> {
    if api.json {
        println!("{}", serde_json::to_string_pretty(tasks)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<37} {:<17} {:<10} {:<7} {:>8}  TITLE / LAST ERROR",
        "ID", "STATE", "STAGE", "PRIO", "ATTEMPTS"
    )?;
    for t in tasks.as_array().into_iter().flatten() {
        writeln!(
            out,
            "{:<37} {:<17} {:<10} {:<7} {:>8}  {}{}",
            t["id"].as_str().unwrap_or(""),
            t["state"].as_str().unwrap_or(""),
            t["stage"].as_str().unwrap_or(""),
            t["priority"].as_str().unwrap_or(""),
            format!("{}/{}", t["attempts"], t["max_attempts"]),
            t["title"].as_str().unwrap_or(""),
            t["last_error"]
                .as_str()
                .map(|e| format!(" / {e}"))
                .unwrap_or_default(),
        )?;
    }
    Ok(())
}

async fn plugin_ls(api: &Api, workspace: &str) -> anyhow::Result<()> {
    let v = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/plugins?workspace={workspace}"),
            None,
        )
        .await?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<15} {:<10} {:<9} {:<20} {:<30} GRANTED",
        "NAME", "KIND", "VERSION", "STATE", "DIGEST", "REQUESTED"
    )?;
    for p in v["plugins"].as_array().into_iter().flatten() {
        for ver in p["versions"].as_array().into_iter().flatten() {
            let digest = ver["digest"].as_str().unwrap_or("");
            let short = digest.get(..19).unwrap_or(digest);
            let list = |x: &Value| {
                x.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            };
            let pinned = p["pinned_digest"].as_str() == Some(digest);
            writeln!(
                out,
                "{:<24} {:<15} {:<10} {:<9} {:<20} {:<30} {}",
                p["name"].as_str().unwrap_or(""),
                p["kind"].as_str().unwrap_or(""),
                format!(
                    "{}{}",
                    ver["version"].as_str().unwrap_or(""),
                    if pinned { "*" } else { "" }
                ),
                ver["state"].as_str().unwrap_or(""),
                short,
                list(&ver["capabilities_requested"]),
                if pinned {
                    list(&p["capabilities_granted"])
                } else {
                    String::new()
                },
            )?;
        }
    }
    let rejected = v["rejected"].as_array().cloned().unwrap_or_default();
    if !rejected.is_empty() {
        writeln!(out, "\nREJECTED")?;
        for r in rejected {
            writeln!(
                out,
                "  {}: {}",
                r["source"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or("")
            )?;
        }
    }
    writeln!(out, "\n* = the version workspace \"{workspace}\" uses")?;
    Ok(())
}

async fn playbook_run(
    api: &Api,
    ws: &str,
    name: &str,
    mode: &str,
    input: Value,
    key: Option<String>,
    no_wait: bool,
) -> anyhow::Result<()> {
    let body = json!({ "mode": mode, "input": input, "idempotency_key": key });
    let started = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/workspaces/{ws}/playbooks/{name}/runs"),
            Some(body),
        )
        .await?;
    let id = started["id"].as_str().unwrap_or_default().to_string();
    if no_wait {
        if api.json {
            println!("{}", serde_json::to_string_pretty(&started)?);
        } else {
            println!("{id}");
        }
        return Ok(());
    }
    eprintln!(
        "run {id} of {name} ({mode}, {})",
        started["digest"].as_str().unwrap_or("")
    );
    follow(api, ws, &id).await;
    let run = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/workspaces/{ws}/runs/{id}"),
            None,
        )
        .await?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print_run(&run)?;
    }
    if run["status"] != "succeeded" {
        bail!(
            "run {id} {}: {}",
            run["status"].as_str().unwrap_or("?"),
            run["error"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// Prints the run's events to stderr as they come: the progress of long
/// runs.
async fn follow(api: &Api, ws: &str, id: &str) {
    let resp = api
        .http
        .get(format!("{}/v1/workspaces/{ws}/runs/{id}/events", api.base))
        .bearer_auth(&api.token)
        .send()
        .await;
    let Ok(resp) = resp else { return };
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut kind = "";
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(k) = line.strip_prefix("event:") {
                    kind = k.trim();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            let d: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            match kind {
                "status" => eprintln!("  status: {}", d["status"].as_str().unwrap_or("?")),
                "tool_start" => eprintln!("  → {}", d["name"].as_str().unwrap_or("?")),
                "tool_result" => eprintln!(
                    "    {} {}",
                    if d["ok"] == true { "ok" } else { "error" },
                    d["summary"].as_str().unwrap_or("")
                ),
                "log" => eprintln!(
                    "  [{}] {}",
                    d["level"].as_str().unwrap_or("info"),
                    d["message"].as_str().unwrap_or("")
                ),
                "guardrails" => eprintln!("  limit hit: {}", d["message"].as_str().unwrap_or("")),
                _ => {}
            }
        }
    }
}

fn print_run(run: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} {}@{} [{}] {}",
        run["id"].as_str().unwrap_or(""),
        run["plugin"].as_str().unwrap_or(""),
        run["version"].as_str().unwrap_or(""),
        run["mode"].as_str().unwrap_or(""),
        run["status"].as_str().unwrap_or("")
    )?;
    writeln!(out, "digest {}", run["digest"].as_str().unwrap_or(""))?;
    if let Some(err) = run["error"].as_str() {
        writeln!(out, "error: {err}")?;
    }
    let report = &run["report"];
    if let Some(summary) = report["summary"].as_str() {
        writeln!(out, "\n{summary}")?;
    }
    for f in report["findings"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  [{:<8}] {}: {}",
            f["severity"].as_str().unwrap_or(""),
            f["code"].as_str().unwrap_or(""),
            f["summary"].as_str().unwrap_or("")
        )?;
        if let Some(e) = f["evidence"].as_str() {
            writeln!(out, "             {e}")?;
        }
    }
    for (title, key) in [
        ("APPLIED", "applied"),
        ("PLANNED (not applied)", "planned"),
        ("REFUSED", "refused"),
    ] {
        let list = run["actions"][key].as_array().cloned().unwrap_or_default();
        if !list.is_empty() {
            writeln!(out, "\n{title}")?;
            for a in list {
                writeln!(
                    out,
                    "  #{} {} {} {}",
                    a["seq"],
                    a["call"].as_str().unwrap_or(""),
                    a["target"].as_str().unwrap_or(""),
                    a["detail"].as_str().unwrap_or("")
                )?;
            }
        }
    }
    let manual = report["manual_actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !manual.is_empty() {
        writeln!(out, "\nMANUAL ACTIONS (a human must do these)")?;
        for m in manual {
            writeln!(out, "  ! {}", m.as_str().unwrap_or(""))?;
        }
    }
    let u = &run["usage"];
    writeln!(
        out,
        "\nused {} ms, {} fuel, {} KiB peak memory, {} step(s)",
        u["wall_ms"],
        u["fuel"],
        u["peak_memory_bytes"].as_u64().unwrap_or(0) >> 10,
        u["steps"]
    )?;
    Ok(())
}

/// `warden process ...`
/// A JSON value as a table cell: strings bare, null as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn process(api: &Api, command: ProcessCommand) -> anyhow::Result<()> {
    let ProcessCommand::Ls = command;
    let v = api
        .call(reqwest::Method::GET, "/v1/processes", None)
        .await?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<12} {:>8} {:>9} {:>7}  last exit",
        "PROCESS", "STATE", "PID", "RESTARTS", "FAILED"
    );
    for p in v["processes"].as_array().into_iter().flatten() {
        println!(
            "{:<20} {:<12} {:>8} {:>9} {:>7}  {}{}",
            text(&p["name"]),
            text(&p["state"]),
            text(&p["pid"]),
            text(&p["restarts"]),
            text(&p["failed_restarts"]),
            text(&p["last_exit"]),
            p["next_restart_at"]
                .as_str()
                .map(|t| format!(" (restart at {t})"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

/// `warden gateway ...`
async fn gateway(api: &Api, command: GatewayCommand) -> anyhow::Result<()> {
    let path = match &command {
        GatewayCommand::Providers => "/v1/gateway/providers".to_string(),
        GatewayCommand::Usage {
            workspace,
            group_by,
            hours,
        } => format!("/v1/workspaces/{workspace}/usage?group_by={group_by}&hours={hours}"),
        GatewayCommand::Calls {
            workspace,
            task,
            limit,
        } => format!(
            "/v1/workspaces/{workspace}/gateway/calls?limit={limit}{}",
            task.as_ref()
                .map(|t| format!("&task={t}"))
                .unwrap_or_default()
        ),
    };
    let v = api.call(reqwest::Method::GET, &path, None).await?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match command {
        GatewayCommand::Providers => {
            println!(
                "{:<16} {:<10} {:>9} {:>10} {:>10}  models",
                "PROVIDER", "BREAKER", "FAILURES", "$/1K IN", "$/1K OUT"
            );
            for p in v["providers"].as_array().into_iter().flatten() {
                let models: Vec<String> = p["models"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                println!(
                    "{:<16} {:<10} {:>9} {:>10} {:>10}  {}{}",
                    text(&p["name"]),
                    text(&p["breaker"]),
                    text(&p["failures"]),
                    text(&p["price_input_per_1k"]),
                    text(&p["price_output_per_1k"]),
                    models.join(", "),
                    p["retry_at"]
                        .as_str()
                        .map(|t| format!(" (probe at {t})"))
                        .unwrap_or_default(),
                );
            }
        }
        GatewayCommand::Usage { .. } => {
            let dims: Vec<String> = v["group_by"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            for d in &dims {
                print!("{:<24} ", d.to_uppercase());
            }
            println!(
                "{:>7} {:>7} {:>12} {:>12} {:>10}",
                "CALLS", "FAILED", "PROMPT", "COMPLETION", "COST $"
            );
            for g in v["groups"].as_array().into_iter().flatten() {
                for d in &dims {
                    print!("{:<24} ", text(&g[d.as_str()]));
                }
                println!(
                    "{:>7} {:>7} {:>12} {:>12} {:>10.4}",
                    text(&g["calls"]),
                    text(&g["failed"]),
                    text(&g["prompt_tokens"]),
                    text(&g["completion_tokens"]),
                    g["cost_usd"].as_f64().unwrap_or(0.0)
                );
            }
            println!(
                "total: {} calls, {} prompt + {} completion tokens, ${:.4} since {}",
                text(&v["calls"]),
                text(&v["prompt_tokens"]),
                text(&v["completion_tokens"]),
                v["cost_usd"].as_f64().unwrap_or(0.0),
                text(&v["since"])
            );
        }
        GatewayCommand::Calls { .. } => {
            for c in v["calls"].as_array().into_iter().flatten() {
                println!(
                    "{} {:<6} {:<28} task {:<12} {:>6}+{:<6} ${:<9.5} {:>5} ms  {}@{}{}",
                    text(&c["at"]),
                    text(&c["status"]),
                    format!("{}/{}", text(&c["provider"]), text(&c["model"])),
                    text(&c["task_id"]),
                    text(&c["prompt_tokens"]),
                    text(&c["completion_tokens"]),
                    c["cost_usd"].as_f64().unwrap_or(0.0),
                    text(&c["latency_ms"]),
                    text(&c["policy"]["name"]),
                    text(&c["policy"]["version"]),
                    c["error"]
                        .as_str()
                        .map(|e| format!("  {e}"))
                        .unwrap_or_default(),
                );
            }
        }
    }
    Ok(())
}

async fn alert(api: &Api, command: AlertCommand) -> anyhow::Result<()> {
    let query = |pairs: &[(&str, Option<String>)]| {
        let q: Vec<String> = pairs
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    };
    let (method, path, body) = match &command {
        AlertCommand::Ls {
            status,
            workspace,
            limit,
        } => (
            reqwest::Method::GET,
            format!(
                "/v1/alerts{}",
                query(&[
                    ("status", status.clone()),
                    ("workspace", workspace.clone()),
                    ("limit", Some(limit.to_string())),
                ])
            ),
            None,
        ),
        AlertCommand::Ack { id } => (
            reqwest::Method::POST,
            format!("/v1/alerts/{id}/ack"),
            Some(json!({})),
        ),
        AlertCommand::Silence {
            workspace,
            rule,
            severity,
            dedup_key,
            duration,
            comment,
        } => (
            reqwest::Method::POST,
            "/v1/silences".to_string(),
            Some(json!({
                "workspace": workspace, "rule": rule, "severity": severity,
                "dedup_key": dedup_key, "duration": duration, "comment": comment,
            })),
        ),
        AlertCommand::Silences { all } => (
            reqwest::Method::GET,
            format!("/v1/silences{}", if *all { "?all=true" } else { "" }),
            None,
        ),
        AlertCommand::Unsilence { id } => {
            (reqwest::Method::DELETE, format!("/v1/silences/{id}"), None)
        }
        AlertCommand::History {
            sink,
            status,
            limit,
        } => (
            reqwest::Method::GET,
            format!(
                "/v1/notifications{}",
                query(&[
                    ("sink", sink.clone()),
                    ("status", status.clone()),
                    ("limit", Some(limit.to_string())),
                ])
            ),
            None,
        ),
    };
    let v = api.call(method, &path, body).await?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match command {
        AlertCommand::Ls { .. } => {
            println!(
                "{:<36} {:<9} {:<13} {:<12} {:<24} {:>5}  summary",
                "ID", "SEVERITY", "STATUS", "WORKSPACE", "RULE", "COUNT"
            );
            for a in v["alerts"].as_array().into_iter().flatten() {
                println!(
                    "{:<36} {:<9} {:<13} {:<12} {:<24} {:>5}  {}{}",
                    text(&a["id"]),
                    text(&a["severity"]),
                    text(&a["status"]),
                    text(&a["workspace"]),
                    text(&a["rule"]),
                    text(&a["count"]),
                    text(&a["summary"]),
                    a["silenced_by"]
                        .as_str()
                        .map(|s| format!(" (silenced by {s})"))
                        .unwrap_or_default()
                );
            }
        }
        AlertCommand::Ack { .. } => {
            println!(
                "alert {} acknowledged by {}",
                text(&v["id"]),
                text(&v["acked_by"])
            );
        }
        AlertCommand::Silence { .. } | AlertCommand::Unsilence { .. } => {
            println!(
                "silence {} {} until {}",
                text(&v["id"]),
                if v["active"] == true {
                    "in force"
                } else {
                    "ended"
                },
                text(&v["ends_at"])
            );
        }
        AlertCommand::Silences { .. } => {
            println!(
                "{:<36} {:<24} {:<12} {:<20} {:<9} {:<24}  comment",
                "ID", "ENDS", "WORKSPACE", "RULE", "SEVERITY", "DEDUP KEY"
            );
            for s in v["silences"].as_array().into_iter().flatten() {
                println!(
                    "{:<36} {:<24} {:<12} {:<20} {:<9} {:<24}  {}",
                    text(&s["id"]),
                    text(&s["ends_at"]),
                    text(&s["workspace"]),
                    text(&s["rule"]),
                    text(&s["severity"]),
                    text(&s["dedup_key"]),
                    text(&s["comment"])
                );
            }
        }
        AlertCommand::History { .. } => {
            println!(
                "{:<24} {:<10} {:<8} {:<10} {:>8}  dedup key / last error",
                "QUEUED", "SINK", "KIND", "STATUS", "ATTEMPTS"
            );
            for n in v["notifications"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<10} {:<8} {:<10} {:>8}  {}{}",
                    text(&n["created_at"]),
                    text(&n["sink"]),
                    text(&n["kind"]),
                    text(&n["status"]),
                    text(&n["attempts"]),
                    text(&n["dedup_key"]),
                    n["last_error"]
                        .as_str()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
