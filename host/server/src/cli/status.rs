//! `warden status`: what a workspace is doing (its mode, tasks per state,
//! the running ones, open alerts), or why it is idle.

use clap::Args;
use warden_api::views;

use super::{Client, parse, print};

/// `warden status`
#[derive(Args, Debug)]
pub struct WorkspaceStatus {
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
}

impl WorkspaceStatus {
    /// Prints the workspace's status.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let workspace = &self.workspace;
        let v = client
            .get(&format!("/v1/workspaces/{workspace}/status"))
            .await?;
        if client.json() {
            return print::pretty(&v);
        }
        let status: views::WorkspaceStatus = parse(&v, "a workspace's status")?;
        println!("workspace {workspace}: mode {}", status.mode);
        let counts: Vec<String> = status
            .tasks_by_state
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        println!(
            "tasks: {}",
            if counts.is_empty() {
                "none".to_string()
            } else {
                counts.join(" ")
            }
        );
        for r in &status.running {
            println!(
                "  running {} at {} on {} (lease until {})",
                r.task_id,
                r.stage,
                r.worker.as_deref().unwrap_or("?"),
                r.lease_expires_at.as_deref().unwrap_or("")
            );
        }
        if let Some(why) = status.why_idle.as_ref().and_then(|w| w.as_object()) {
            println!(
                "idle: {} ({})",
                why.get("message").and_then(|m| m.as_str()).unwrap_or(""),
                why.get("reason").and_then(|r| r.as_str()).unwrap_or("")
            );
        }
        for a in &status.alerts {
            println!("  alert [{}] {}", a.severity, a.summary);
        }
        Ok(())
    }
}
