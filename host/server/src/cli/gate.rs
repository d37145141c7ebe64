//! `warden gate ...`: the gates bound to each stage, their approval
//! statistics, and the verdicts on one task.

use clap::{Args, Subcommand};
use warden_api::views;

use super::{Client, parse, print};

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
        let list: views::GateBindings = parse(&v, "a list of gate bindings")?;
        if list.bindings.is_empty() {
            println!("no gates bound in workspace {workspace}");
        }
        for b in &list.bindings {
            println!(
                "after {:<12} {:<40} quorum {:<9} reject to {:<10} on error {} ({})",
                b.stage,
                b.gates.join(", "),
                b.quorum,
                b.reject_to,
                b.on_error,
                b.source,
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
        let stats: views::GateStatistics = parse(&v, "the gates' statistics")?;
        println!(
            "{:<24} {:>8} {:>9} {:>9}  breaker",
            "GATE", "VERDICTS", "APPROVED", "REJECTED"
        );
        // The counts print unpadded, as they did when they were JSON
        // values (whose `Display` ignores the width).
        for g in &stats.gates {
            println!(
                "{:<24} {} {:>8.0}% {:>8.0}%  {}",
                g.gate,
                g.verdicts,
                g.approval_rate * 100.0,
                g.rejection_rate * 100.0,
                g.breaker.as_ref().map_or("closed", |b| b.state.as_str()),
            );
        }
        if !stats.top_rejection_reasons.is_empty() {
            println!("\ntop rejection reasons:");
            for r in &stats.top_rejection_reasons {
                println!("{}  {} [{}] {}", r.count, r.gate, r.category, r.message);
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
        let task: views::TaskVerdicts = parse(&v, "the verdicts of a task")?;
        for d in &task.decisions {
            println!("{} {}", d.at, d.summary);
            for verdict in &d.verdicts {
                print_verdict(verdict);
            }
        }
        Ok(())
    }
}

/// One gate's verdict, indented under its decision, with its reasons.
/// The score prints unpadded, as it did when it was a JSON value (whose
/// `Display` ignores the width).
fn print_verdict(verdict: &views::Verdict) {
    println!(
        "    {:<20} {:<8} score {}  {}{}",
        verdict.gate,
        verdict.decision,
        verdict.score,
        verdict.digest,
        verdict
            .error
            .as_deref()
            .map(|e| format!("  error: {e}"))
            .unwrap_or_default()
    );
    for r in &verdict.reasons {
        println!("        [{}] {}", r.category, r.message);
    }
}
