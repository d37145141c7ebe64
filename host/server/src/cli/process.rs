//! `warden process ls`: the processes Warden manages, with their state,
//! pid and restarts.

use clap::{Args, Subcommand};
use warden_api::views;

use super::print::{self, cell};
use super::{Client, parse};

/// `warden process ...`
#[derive(Subcommand, Debug)]
pub enum ProcessCommand {
    /// Every managed process with its state, pid and restarts.
    Ls(Ls),
}

impl ProcessCommand {
    /// Runs the command.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            ProcessCommand::Ls(cmd) => cmd.run(client).await,
        }
    }
}

/// `warden process ls`
#[derive(Args, Debug)]
pub struct Ls {}

impl Ls {
    /// Prints one line per process.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client.get("/v1/processes").await?;
        if client.json() {
            return print::pretty(&v);
        }
        println!(
            "{:<20} {:<12} {:>8} {:>9} {:>7}  last exit",
            "PROCESS", "STATE", "PID", "RESTARTS", "FAILED"
        );
        let list: views::Processes = parse(&v, "a list of processes")?;
        for p in &list.processes {
            println!(
                "{:<20} {:<12} {:>8} {:>9} {:>7}  {}{}",
                p.name,
                p.state,
                p.pid.map_or_else(|| "-".to_string(), |pid| pid.to_string()),
                p.restarts,
                p.failed_restarts,
                cell(p.last_exit.as_deref()),
                p.next_restart_at
                    .as_deref()
                    .map(|t| format!(" (restart at {t})"))
                    .unwrap_or_default(),
            );
        }
        Ok(())
    }
}
