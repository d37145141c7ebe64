//! `warden token create`: a token scoped to one workspace, its secret
//! printed once.

use clap::{Args, Subcommand};
use serde_json::json;
use warden_api::views;

use super::{Client, parse, print};

/// `warden token ...`
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token scoped to one workspace; prints the secret once.
    Create(Create),
}

impl TokenCommand {
    /// Runs the command.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            TokenCommand::Create(cmd) => cmd.run(client).await,
        }
    }
}

/// `warden token create`
#[derive(Args, Debug)]
pub struct Create {
    /// Workspace.
    #[arg(long, short)]
    workspace: String,
    /// viewer, agent, operator or admin.
    #[arg(long, short)]
    role: String,
    /// A label.
    #[arg(long, short, default_value = "cli")]
    name: String,
}

impl Create {
    /// Creates the token: what it is on stderr, the secret alone on
    /// stdout, so that `$(warden token create ...)` captures just it.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client
            .post(
                &format!("/v1/workspaces/{}/tokens", self.workspace),
                json!({ "name": self.name, "role": self.role }),
            )
            .await?;
        if client.json() {
            return print::pretty(&v);
        }
        let created: views::TokenCreated = parse(&v, "a token just created")?;
        eprintln!(
            "token {} ({} in workspace {}); shown once, keep it safe:",
            created.id, created.role, created.workspace
        );
        println!("{}", created.token);
        Ok(())
    }
}
