//! `warden mode set`: switches a workspace's degradation mode.

use clap::{Args, Subcommand};
use serde_json::json;
use warden_api::views;

use super::{Client, parse};

/// `warden mode ...`
#[derive(Subcommand, Debug)]
pub enum ModeCommand {
    /// Switch the mode: normal, minimal, read-only, emergency-stop.
    Set(Set),
}

impl ModeCommand {
    /// Runs the command.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            ModeCommand::Set(cmd) => cmd.run(client).await,
        }
    }
}

/// `warden mode set <mode>`
#[derive(Args, Debug)]
pub struct Set {
    /// The mode.
    mode: String,
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
    /// Why (kept with the mode and shown in status).
    #[arg(long, short)]
    reason: Option<String>,
}

impl Set {
    /// Sets the mode and prints the one the workspace is in now.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let workspace = &self.workspace;
        let v = client
            .put(
                &format!("/v1/workspaces/{workspace}/mode"),
                json!({ "mode": self.mode, "reason": self.reason }),
            )
            .await?;
        let mode: views::ModeView = parse(&v, "a workspace mode")?;
        println!("workspace {workspace} is now in {} mode", mode.mode);
        Ok(())
    }
}
