//! `warden alert ...`: alerts, acknowledgements, silences and the history
//! of notifications. Alerts span workspaces, so these need the bootstrap
//! admin token.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use warden_api::views;

use super::print::{self, cell};
use super::{Client, parse};

/// `warden alert ...` (bootstrap admin: alerts span workspaces)
#[derive(Subcommand, Debug)]
pub enum AlertCommand {
    /// Alerts, newest first.
    Ls(Ls),
    /// Acknowledges an alert: no more repeats; its resolve is still sent.
    Ack(Ack),
    /// Holds back the notifications of matching alerts for a while.
    Silence(Silence),
    /// Silences in force (`--all`: expired ones too).
    Silences(Silences),
    /// Ends a silence now.
    Unsilence(Unsilence),
    /// Notifications sent (or waiting), newest first.
    History(History),
}

impl AlertCommand {
    /// Runs the command.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            AlertCommand::Ls(cmd) => cmd.run(client).await,
            AlertCommand::Ack(cmd) => cmd.run(client).await,
            AlertCommand::Silence(cmd) => cmd.run(client).await,
            AlertCommand::Silences(cmd) => cmd.run(client).await,
            AlertCommand::Unsilence(cmd) => cmd.run(client).await,
            AlertCommand::History(cmd) => cmd.run(client).await,
        }
    }
}

/// `?k=v&...` of the pairs that have a value; empty when none has.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// `warden alert ls`
#[derive(Args, Debug)]
pub struct Ls {
    /// Only `open`, `acknowledged` or `resolved` ones.
    #[arg(long)]
    status: Option<String>,
    /// Only this workspace's.
    #[arg(long, short)]
    workspace: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

impl Ls {
    /// Prints one line per alert.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let q = query(&[
            ("status", self.status),
            ("workspace", self.workspace),
            ("limit", Some(self.limit.to_string())),
        ]);
        let v = client.get(&format!("/v1/alerts{q}")).await?;
        if client.json() {
            return print::pretty(&v);
        }
        println!(
            "{:<36} {:<9} {:<13} {:<12} {:<24} {:>5}  summary",
            "ID", "SEVERITY", "STATUS", "WORKSPACE", "RULE", "COUNT"
        );
        let list: views::AlertList = parse(&v, "a list of alerts")?;
        for a in &list.alerts {
            println!(
                "{:<36} {:<9} {:<13} {:<12} {:<24} {:>5}  {}{}",
                a.id,
                a.severity,
                a.status,
                a.workspace.as_deref().unwrap_or("-"),
                a.rule,
                a.count,
                a.summary,
                a.silenced_by
                    .as_deref()
                    .map(|s| format!(" (silenced by {s})"))
                    .unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// `warden alert ack <id>`
#[derive(Args, Debug)]
pub struct Ack {
    /// The alert's id.
    id: String,
}

impl Ack {
    /// Acknowledges the alert and says by whom.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client
            .post(&format!("/v1/alerts/{}/ack", self.id), json!({}))
            .await?;
        if client.json() {
            return print::pretty(&v);
        }
        let alert: views::Alert = parse(&v, "an alert")?;
        println!(
            "alert {} acknowledged by {}",
            alert.id,
            alert.acked_by.as_deref().unwrap_or("-")
        );
        Ok(())
    }
}

/// `warden alert silence ...`
#[derive(Args, Debug)]
pub struct Silence {
    /// Only alerts of this workspace.
    #[arg(long, short)]
    workspace: Option<String>,
    /// Only alerts of this rule.
    #[arg(long)]
    rule: Option<String>,
    /// Only alerts of this severity.
    #[arg(long)]
    severity: Option<String>,
    /// Only alerts with this dedup key (a prefix when it ends in `*`).
    #[arg(long)]
    dedup_key: Option<String>,
    /// How long: `30m`, `2h`, ...
    #[arg(long = "for", default_value = "1h")]
    duration: String,
    /// Why.
    #[arg(long, default_value = "")]
    comment: String,
}

impl Silence {
    /// Creates the silence and prints until when it holds.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let body = json!({
            "workspace": self.workspace, "rule": self.rule, "severity": self.severity,
            "dedup_key": self.dedup_key, "duration": self.duration, "comment": self.comment,
        });
        let v = client.post("/v1/silences", body).await?;
        print_silence(client, &v)
    }
}

/// `warden alert silences`
#[derive(Args, Debug)]
pub struct Silences {
    /// Expired ones too.
    #[arg(long)]
    all: bool,
}

impl Silences {
    /// Prints one line per silence.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let all = if self.all { "?all=true" } else { "" };
        let v = client.get(&format!("/v1/silences{all}")).await?;
        if client.json() {
            return print::pretty(&v);
        }
        println!(
            "{:<36} {:<24} {:<12} {:<20} {:<9} {:<24}  comment",
            "ID", "ENDS", "WORKSPACE", "RULE", "SEVERITY", "DEDUP KEY"
        );
        let list: views::SilenceList = parse(&v, "a list of silences")?;
        for s in &list.silences {
            println!(
                "{:<36} {:<24} {:<12} {:<20} {:<9} {:<24}  {}",
                s.id,
                s.ends_at,
                cell(s.workspace.as_deref()),
                cell(s.rule.as_deref()),
                cell(s.severity.as_deref()),
                cell(s.dedup_key.as_deref()),
                s.comment
            );
        }
        Ok(())
    }
}

/// `warden alert unsilence <id>`
#[derive(Args, Debug)]
pub struct Unsilence {
    /// The silence's id.
    id: String,
}

impl Unsilence {
    /// Ends the silence and prints it.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client.delete(&format!("/v1/silences/{}", self.id)).await?;
        print_silence(client, &v)
    }
}

/// A silence just created or ended: whether it is in force, and until when.
fn print_silence(client: &Client, v: &Value) -> anyhow::Result<()> {
    if client.json() {
        return print::pretty(v);
    }
    let silence: views::Silence = parse(v, "a silence")?;
    println!(
        "silence {} {} until {}",
        silence.id,
        if silence.active { "in force" } else { "ended" },
        silence.ends_at
    );
    Ok(())
}

/// `warden alert history`
#[derive(Args, Debug)]
pub struct History {
    /// Only this sink's.
    #[arg(long)]
    sink: Option<String>,
    /// Only `pending`, `delivered` or `failed` ones.
    #[arg(long)]
    status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

impl History {
    /// Prints one line per notification, with its last error if any.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let q = query(&[
            ("sink", self.sink),
            ("status", self.status),
            ("limit", Some(self.limit.to_string())),
        ]);
        let v = client.get(&format!("/v1/notifications{q}")).await?;
        if client.json() {
            return print::pretty(&v);
        }
        println!(
            "{:<24} {:<10} {:<8} {:<10} {:>8}  dedup key / last error",
            "QUEUED", "SINK", "KIND", "STATUS", "ATTEMPTS"
        );
        let list: views::Notifications = parse(&v, "a list of notifications")?;
        for n in &list.notifications {
            println!(
                "{:<24} {:<10} {:<8} {:<10} {:>8}  {}{}",
                n.created_at,
                n.sink,
                n.kind,
                n.status,
                n.attempts,
                n.dedup_key,
                n.last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
        Ok(())
    }
}
