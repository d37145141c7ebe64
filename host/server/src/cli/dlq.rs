//! `warden dlq ...`: the tasks in the dead-letter queue, and putting one
//! back in the queue.

use clap::{Args, Subcommand};
use serde_json::json;
use warden_api::views;

use super::{Client, parse, print};

/// `warden dlq ...`
#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// Tasks in the dead-letter queue, with their last error.
    Ls(Ls),
    /// Put a dead task back in the queue.
    Redrive(Redrive),
}

impl DlqCommand {
    /// Runs the command.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            DlqCommand::Ls(cmd) => cmd.run(client).await,
            DlqCommand::Redrive(cmd) => cmd.run(client).await,
        }
    }
}

/// `warden dlq ls`
#[derive(Args, Debug)]
pub struct Ls {
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
}

impl Ls {
    /// Prints the dead tasks as a table.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client
            .get(&format!("/v1/workspaces/{}/dead-letters", self.workspace))
            .await?;
        if client.json() {
            return print::pretty(&v["dead_letters"]);
        }
        let dead: views::DeadLetters = parse(&v, "the dead-letter queue")?;
        print::tasks(&dead.dead_letters)
    }
}

/// `warden dlq redrive <id>`
#[derive(Args, Debug)]
pub struct Redrive {
    /// Task id.
    id: String,
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
}

impl Redrive {
    /// Redrives the task and prints its state and stage.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client
            .post(
                &format!(
                    "/v1/workspaces/{}/dead-letters/{}/redrive",
                    self.workspace, self.id
                ),
                json!({}),
            )
            .await?;
        let task: views::Task = parse(&v, "a task")?;
        println!("{} {} at {}", task.id, task.state, task.stage);
        Ok(())
    }
}
