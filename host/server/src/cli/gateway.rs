//! `warden gateway ...`: the model gateway's providers with their breakers,
//! the usage summed per group, and the recorded calls.

use clap::{Args, Subcommand};

use super::Client;
use super::print::{self, text};

/// `warden gateway ...`
#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// The providers with their breakers.
    Providers(Providers),
    /// Tokens and cost, summed per group.
    Usage(Usage),
    /// Recorded calls, newest first.
    Calls(Calls),
}

impl GatewayCommand {
    /// Runs the command.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            GatewayCommand::Providers(cmd) => cmd.run(client).await,
            GatewayCommand::Usage(cmd) => cmd.run(client).await,
            GatewayCommand::Calls(cmd) => cmd.run(client).await,
        }
    }
}

/// `warden gateway providers`
#[derive(Args, Debug)]
pub struct Providers {}

impl Providers {
    /// Prints one line per provider: breaker, failures, prices, models.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client.get("/v1/gateway/providers").await?;
        if client.json() {
            return print::pretty(&v);
        }
        println!(
            "{:<16} {:<10} {:>9} {:>10} {:>10}  models",
            "PROVIDER", "BREAKER", "FAILURES", "$/1K IN", "$/1K OUT"
        );
        for p in v["providers"].as_array().into_iter().flatten() {
            let models: Vec<String> = p["models"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            println!(
                "{:<16} {:<10} {:>9} {:>10} {:>10}  {}{}",
                text(&p["name"]),
                text(&p["breaker"]),
                text(&p["failures"]),
                text(&p["price_input_per_1k"]),
                text(&p["price_output_per_1k"]),
                models.join(", "),
                p["retry_at"]
                    .as_str()
                    .map(|t| format!(" (probe at {t})"))
                    .unwrap_or_default(),
            );
        }
        Ok(())
    }
}

/// `warden gateway usage`
#[derive(Args, Debug)]
pub struct Usage {
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
    /// Any of provider, model, task, stage, mode, comma-separated.
    #[arg(long, default_value = "provider,model")]
    group_by: String,
    /// Look back this many hours.
    #[arg(long, default_value_t = 24)]
    hours: i64,
}

impl Usage {
    /// Prints one line per group, a column per grouping dimension, then
    /// the total.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client
            .get(&format!(
                "/v1/workspaces/{}/usage?group_by={}&hours={}",
                self.workspace, self.group_by, self.hours
            ))
            .await?;
        if client.json() {
            return print::pretty(&v);
        }
        let dims: Vec<String> = v["group_by"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        for d in &dims {
            print!("{:<24} ", d.to_uppercase());
        }
        println!(
            "{:>7} {:>7} {:>12} {:>12} {:>10}",
            "CALLS", "FAILED", "PROMPT", "COMPLETION", "COST $"
        );
        for g in v["groups"].as_array().into_iter().flatten() {
            for d in &dims {
                print!("{:<24} ", text(&g[d.as_str()]));
            }
            println!(
                "{:>7} {:>7} {:>12} {:>12} {:>10.4}",
                text(&g["calls"]),
                text(&g["failed"]),
                text(&g["prompt_tokens"]),
                text(&g["completion_tokens"]),
                g["cost_usd"].as_f64().unwrap_or(0.0)
            );
        }
        println!(
            "total: {} calls, {} prompt + {} completion tokens, ${:.4} since {}",
            text(&v["calls"]),
            text(&v["prompt_tokens"]),
            text(&v["completion_tokens"]),
            v["cost_usd"].as_f64().unwrap_or(0.0),
            text(&v["since"])
        );
        Ok(())
    }
}

/// `warden gateway calls`
#[derive(Args, Debug)]
pub struct Calls {
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
    /// Only this task's.
    #[arg(long)]
    task: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    limit: i64,
}

impl Calls {
    /// Prints one line per call: outcome, model, tokens, cost, latency,
    /// routing policy.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let task = self
            .task
            .as_ref()
            .map(|t| format!("&task={t}"))
            .unwrap_or_default();
        let v = client
            .get(&format!(
                "/v1/workspaces/{}/gateway/calls?limit={}{task}",
                self.workspace, self.limit
            ))
            .await?;
        if client.json() {
            return print::pretty(&v);
        }
        for c in v["calls"].as_array().into_iter().flatten() {
            println!(
                "{} {:<6} {:<28} task {:<12} {:>6}+{:<6} ${:<9.5} {:>5} ms  {}@{}{}",
                text(&c["at"]),
                text(&c["status"]),
                format!("{}/{}", text(&c["provider"]), text(&c["model"])),
                text(&c["task_id"]),
                text(&c["prompt_tokens"]),
                text(&c["completion_tokens"]),
                c["cost_usd"].as_f64().unwrap_or(0.0),
                text(&c["latency_ms"]),
                text(&c["policy"]["name"]),
                text(&c["policy"]["version"]),
                c["error"]
                    .as_str()
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default(),
            );
        }
        Ok(())
    }
}
