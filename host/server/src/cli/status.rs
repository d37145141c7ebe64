//! `warden status`: what a workspace is doing (its mode, tasks per state,
//! the running ones, open alerts), or why it is idle.

use clap::Args;
use serde_json::Value;
use warden_api::views::Alert;

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
        let alerts: Vec<Alert> = parse(&v["alerts"], "a list of alerts")?;
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
        for a in &alerts {
            println!("  alert [{}] {}", a.severity, a.summary);
        }
        Ok(())
    }
}
