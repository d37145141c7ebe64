//! `warden gate ...`: the gates bound to each stage, their approval
//! statistics, and the verdicts on one task.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::{Client, print};

/// `warden gate ...`
#[derive(Subcommand, Debug)]
pub enum GateCommand {
    /// The gates bound to each stage.
    Ls(Ls),
    /// Approval rates per gate and the top rejection reasons.
    Stats(Stats),
    /// The gated transitions of a task and each gate's verdict.
    Verdicts(Verdicts),
}

impl GateCommand {
    /// Runs the command.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            GateCommand::Ls(cmd) => cmd.run(client).await,
            GateCommand::Stats(cmd) => cmd.run(client).await,
            GateCommand::Verdicts(cmd) => cmd.run(client).await,
        }
    }
}

/// `warden gate ls`
#[derive(Args, Debug)]
pub struct Ls {
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
}

impl Ls {
    /// Prints one line per gated stage.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let workspace = &self.workspace;
        let v = client
            .get(&format!("/v1/workspaces/{workspace}/gates"))
            .await?;
        if client.json() {
            return print::pretty(&v);
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
}

/// `warden gate stats`
#[derive(Args, Debug)]
pub struct Stats {
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
    /// Look back this many hours.
    #[arg(long, default_value_t = 24)]
    hours: i64,
}

impl Stats {
    /// Prints a table of the gates, then the top rejection reasons.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client
            .get(&format!(
                "/v1/workspaces/{}/gate-stats?hours={}",
                self.workspace, self.hours
            ))
            .await?;
        if client.json() {
            return print::pretty(&v);
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
}

/// `warden gate verdicts <task>`
#[derive(Args, Debug)]
pub struct Verdicts {
    /// Task id.
    task: String,
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
}

impl Verdicts {
    /// Prints each gated transition with the verdicts and their reasons.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client
            .get(&format!(
                "/v1/workspaces/{}/tasks/{}/verdicts",
                self.workspace, self.task
            ))
            .await?;
        if client.json() {
            return print::pretty(&v);
        }
        for d in v["decisions"].as_array().into_iter().flatten() {
            println!(
                "{} {}",
                d["at"].as_str().unwrap_or_default(),
                d["summary"].as_str().unwrap_or_default()
            );
            for verdict in d["verdicts"].as_array().into_iter().flatten() {
                print_verdict(verdict);
            }
        }
        Ok(())
    }
}

/// One gate's verdict, indented under its decision, with its reasons.
fn print_verdict(verdict: &Value) {
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
