//! The `warden` command line (SPEC IF-1). `serve` runs the host; every
//! other command talks to a running host over its HTTP API, one file per
//! command group (`task.rs` is `warden task ...`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub mod alert;
pub mod dlq;
pub mod gate;
pub mod gateway;
pub mod mode;
pub mod new;
pub mod playbook;
pub mod plugin;
mod print;
pub mod process;
pub mod status;
pub mod task;
pub mod token;

pub use alert::AlertCommand;
pub use dlq::DlqCommand;
pub use gate::GateCommand;
pub use gateway::GatewayCommand;
pub use mode::ModeCommand;
pub use playbook::PlaybookCommand;
pub use plugin::PluginCommand;
pub use process::ProcessCommand;
pub use task::TaskCommand;
pub use token::TokenCommand;

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
pub struct ServerArgs {
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
        server: ServerArgs,
    },
    /// Playbooks: run.
    Playbook {
        /// Which.
        #[command(subcommand)]
        command: PlaybookCommand,
        /// Server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Tasks: create, list, cancel, approve, reject.
    Task {
        /// Which.
        #[command(subcommand)]
        command: TaskCommand,
        /// Server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Quality gates: bindings, statistics, verdicts.
    Gate {
        /// Which.
        #[command(subcommand)]
        command: GateCommand,
        /// Server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The model gateway: providers, usage, calls.
    Gateway {
        /// Which.
        #[command(subcommand)]
        command: GatewayCommand,
        /// Server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Alerts: list, acknowledge, silence, notification history.
    Alert {
        /// Which.
        #[command(subcommand)]
        command: AlertCommand,
        /// Server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Managed processes: their state.
    Process {
        /// Which.
        #[command(subcommand)]
        command: ProcessCommand,
        /// Server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The dead-letter queue: list, redrive.
    Dlq {
        /// Which.
        #[command(subcommand)]
        command: DlqCommand,
        /// Server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Degradation mode of a workspace.
    Mode {
        /// Which.
        #[command(subcommand)]
        command: ModeCommand,
        /// Server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// What a workspace is doing, or why it is idle.
    Status {
        /// Which workspace.
        #[command(flatten)]
        command: status::WorkspaceStatus,
        /// Server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Tokens: create.
    Token {
        /// Which.
        #[command(subcommand)]
        command: TokenCommand,
        /// Server.
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Runs a client command: every command but `serve` and `demo`.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } | Command::Demo { .. } => bail!("not a client command"),
        // `plugin new` needs no server, so the group opens the client.
        Command::Plugin { command, server } => command.run(&server).await,
        Command::Playbook { command, server } => command.run(&Client::new(&server)?).await,
        Command::Task { command, server } => command.run(&Client::new(&server)?).await,
        Command::Gate { command, server } => command.run(&Client::new(&server)?).await,
        Command::Gateway { command, server } => command.run(&Client::new(&server)?).await,
        Command::Alert { command, server } => command.run(&Client::new(&server)?).await,
        Command::Process { command, server } => command.run(&Client::new(&server)?).await,
        Command::Dlq { command, server } => command.run(&Client::new(&server)?).await,
        Command::Mode { command, server } => command.run(&Client::new(&server)?).await,
        Command::Status { command, server } => command.run(&Client::new(&server)?).await,
        Command::Token { command, server } => command.run(&Client::new(&server)?).await,
    }
}

/// A running server's HTTP API, as the client commands call it.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    json: bool,
}

impl Client {
    /// A client for the server `args` names, with the token they give or
    /// the one `warden serve` wrote into the data directory.
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        let token = match &args.token {
            Some(t) => t.clone(),
            None => {
                let path = args.data_dir.join("admin.token");
                std::fs::read_to_string(&path)
                    .map(|s| s.trim().to_string())
                    .with_context(|| {
                        format!("no token: pass --token, set WARDEN_TOKEN, or run from the directory holding {}", path.display())
                    })?
            }
        };
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(330))
                .build()?,
            base: args.server.trim_end_matches('/').to_string(),
            token,
            json: args.json,
        })
    }

    /// Whether `--json` asked for the raw answer instead of a table.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Calls `method path` with `body` as JSON; an error answer becomes
    /// an error carrying the server's code and message.
    pub async fn call(
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

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// `PUT path` with `body`.
    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Opens `GET path` without reading it: for event streams, which the
    /// caller reads as they come.
    pub async fn stream(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
    }
}

/// Reads `answer` as the warden-api view `T` (`what` names it): the
/// commands print typed fields, and an answer that is not what its route
/// documents is an error saying so, not a blank in a table.
pub fn parse<T: DeserializeOwned>(answer: &Value, what: &str) -> anyhow::Result<T> {
    T::deserialize(answer).with_context(|| format!("the server's answer is not {what}"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    /// clap checks at run time what it cannot at compile time (clashing
    /// names, flags, groups); this runs those checks for every command.
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// An answer that is not the view its route documents is an error
    /// that names the view and the field, not a panic or a blank.
    #[test]
    fn an_answer_that_is_not_the_view_is_a_clear_error() {
        let answer = serde_json::json!({ "id": "t1", "state": 3 });
        let err = parse::<warden_api::views::Task>(&answer, "a task").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with("the server's answer is not a task: "),
            "{text}"
        );
        assert!(text.contains("expected a string"), "{text}");
        let err =
            parse::<warden_api::views::AlertList>(&Value::Null, "a list of alerts").unwrap_err();
        assert!(format!("{err:#}").contains("a list of alerts"), "{err:#}");
    }
}
