//! `warden task ...`: create, list and cancel tasks, and decide those
//! waiting for approval.

use clap::{Args, Subcommand};
use serde_json::json;
use warden_api::views;

use super::{Client, parse, print};

/// `warden task ...`
#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Create a task.
    Create(Create),
    /// List tasks.
    Ls(Ls),
    /// Cancel a task.
    Cancel(Cancel),
    /// Approve a task waiting for approval (a gate escalated, or no
    /// quorum): it moves past the gated stage.
    Approve(Approve),
    /// Reject a task waiting for approval: it goes back (to `plan` by
    /// default) with the reason as its plan delta.
    Reject(Reject),
}

impl TaskCommand {
    /// Runs the command.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            TaskCommand::Create(cmd) => cmd.run(client).await,
            TaskCommand::Ls(cmd) => cmd.run(client).await,
            TaskCommand::Cancel(cmd) => cmd.run(client).await,
            TaskCommand::Approve(cmd) => cmd.run(client).await,
            TaskCommand::Reject(cmd) => cmd.run(client).await,
        }
    }
}

/// `warden task create <title>`
#[derive(Args, Debug)]
pub struct Create {
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
}

impl Create {
    /// Creates the task and prints its id.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let mut req = json!({
            "title": self.title, "body": self.body,
            "priority": self.priority, "depends_on": self.depends_on,
        });
        if let Some(t) = self.token_budget {
            req["budget"] = json!({ "tokens": t });
        }
        if let Some(m) = self.max_attempts {
            req["max_attempts"] = json!(m);
        }
        let v = client
            .post(&format!("/v1/workspaces/{}/tasks", self.workspace), req)
            .await?;
        if client.json() {
            return print::pretty(&v);
        }
        let task: views::Task = parse(&v, "a task")?;
        println!("{}", task.id);
        Ok(())
    }
}

/// `warden task ls`
#[derive(Args, Debug)]
pub struct Ls {
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
    /// Only these states, comma separated.
    #[arg(long, short)]
    state: Option<String>,
}

impl Ls {
    /// Prints the tasks as a table.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let q = self
            .state
            .map(|s| format!("?state={s}"))
            .unwrap_or_default();
        let v = client
            .get(&format!("/v1/workspaces/{}/tasks{q}", self.workspace))
            .await?;
        if client.json() {
            return print::pretty(&v["tasks"]);
        }
        let list: views::TaskList = parse(&v, "a list of tasks")?;
        print::tasks(&list.tasks)
    }
}

/// `warden task cancel <id>`
#[derive(Args, Debug)]
pub struct Cancel {
    /// Task id.
    id: String,
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
}

impl Cancel {
    /// Cancels the task and prints its id and new state.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client
            .post(
                &format!("/v1/workspaces/{}/tasks/{}/cancel", self.workspace, self.id),
                json!({}),
            )
            .await?;
        let task: views::Task = parse(&v, "a task")?;
        println!("{} {}", task.id, task.state);
        Ok(())
    }
}

/// `warden task approve <id>`
#[derive(Args, Debug)]
pub struct Approve {
    /// Task id.
    id: String,
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
    /// Why.
    #[arg(long, short, default_value = "")]
    reason: String,
}

impl Approve {
    /// Approves the task and prints where it is now.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        decide(client, &self.workspace, &self.id, "approve", &self.reason).await
    }
}

/// `warden task reject <id> --reason ...`
#[derive(Args, Debug)]
pub struct Reject {
    /// Task id.
    id: String,
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
    /// Why (the plan delta).
    #[arg(long, short)]
    reason: String,
}

impl Reject {
    /// Rejects the task and prints where it went back to.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        decide(client, &self.workspace, &self.id, "reject", &self.reason).await
    }
}

/// `task approve|reject`: posts the decision, prints the task's id, state
/// and stage after it.
async fn decide(
    client: &Client,
    ws: &str,
    id: &str,
    decision: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let v = client
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/decision"),
            json!({ "decision": decision, "reason": reason }),
        )
        .await?;
    if client.json() {
        return print::pretty(&v);
    }
    let decided: views::DecisionResponse = parse(&v, "a decided task")?;
    let task = decided.task;
    println!("{} {} at {}", task.id, task.state, task.stage);
    Ok(())
}
