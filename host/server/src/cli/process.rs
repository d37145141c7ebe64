//! `warden process ls`: the processes Warden manages, with their state,
//! pid and restarts.

use clap::{Args, Subcommand};

use super::Client;
use super::print::{self, text};

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
        for p in v["processes"].as_array().into_iter().flatten() {
            println!(
                "{:<20} {:<12} {:>8} {:>9} {:>7}  {}{}",
                text(&p["name"]),
                text(&p["state"]),
                text(&p["pid"]),
                text(&p["restarts"]),
                text(&p["failed_restarts"]),
                text(&p["last_exit"]),
                p["next_restart_at"]
                    .as_str()
                    .map(|t| format!(" (restart at {t})"))
                    .unwrap_or_default(),
            );
        }
        Ok(())
    }
}
