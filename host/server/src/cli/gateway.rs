//! `warden gateway ...`: the model gateway's providers with their breakers,
//! the usage summed per group, and the recorded calls.

use clap::{Args, Subcommand};
use warden_api::views;

use super::print::{self, cell};
use super::{Client, parse};

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
        let list: views::Providers = parse(&v, "a list of providers")?;
        println!(
            "{:<16} {:<10} {:>9} {:>10} {:>10}  models",
            "PROVIDER", "BREAKER", "FAILURES", "$/1K IN", "$/1K OUT"
        );
        for p in &list.providers {
            // Prices print as JSON numbers did (`2.0`, not `2`).
            let price = |f: f64| serde_json::Value::from(f).to_string();
            println!(
                "{:<16} {:<10} {:>9} {:>10} {:>10}  {}{}",
                p.name,
                p.breaker,
                p.failures,
                price(p.price_input_per_1k),
                price(p.price_output_per_1k),
                p.models.join(", "),
                p.retry_at
                    .as_deref()
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
        let usage: views::GatewayUsage = parse(&v, "the gateway's usage")?;
        let dims = &usage.group_by;
        for d in dims {
            print!("{:<24} ", d.to_uppercase());
        }
        println!(
            "{:>7} {:>7} {:>12} {:>12} {:>10}",
            "CALLS", "FAILED", "PROMPT", "COMPLETION", "COST $"
        );
        for g in &usage.groups {
            for d in dims {
                print!("{:<24} ", cell(g.key.get(d).and_then(Option::as_deref)));
            }
            println!(
                "{:>7} {:>7} {:>12} {:>12} {:>10.4}",
                g.calls, g.failed, g.prompt_tokens, g.completion_tokens, g.cost_usd
            );
        }
        println!(
            "total: {} calls, {} prompt + {} completion tokens, ${:.4} since {}",
            usage.calls, usage.prompt_tokens, usage.completion_tokens, usage.cost_usd, usage.since
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
        let list: views::GatewayCalls = parse(&v, "a list of gateway calls")?;
        for c in &list.calls {
            println!(
                "{} {:<6} {:<28} task {:<12} {:>6}+{:<6} ${:<9.5} {:>5} ms  {}@{}{}",
                c.at,
                c.status,
                format!(
                    "{}/{}",
                    cell(c.provider.as_deref()),
                    cell(c.model.as_deref())
                ),
                cell(c.task_id.as_deref()),
                c.prompt_tokens,
                c.completion_tokens,
                c.cost_usd,
                c.latency_ms,
                c.policy.name,
                c.policy.version,
                c.error
                    .as_deref()
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default(),
            );
        }
        Ok(())
    }
}
