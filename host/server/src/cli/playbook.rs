//! `warden playbook run`: triggers a run, follows its events on stderr and
//! prints its report.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use serde_json::{Value, json};
use warden_api::views;

use super::{Client, parse, print};

/// `warden playbook ...`
#[derive(Subcommand, Debug)]
pub enum PlaybookCommand {
    /// Trigger a run, follow its events, print its report.
    Run(Run),
}

impl PlaybookCommand {
    /// Runs the command.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            PlaybookCommand::Run(cmd) => cmd.run(client).await,
        }
    }
}

/// `warden playbook run <name>`
#[derive(Args, Debug)]
pub struct Run {
    /// Playbook name.
    name: String,
    /// Workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
    /// diagnose, plan or apply.
    #[arg(long, short, default_value = "diagnose")]
    mode: String,
    /// Input as JSON.
    #[arg(long, short)]
    input: Option<String>,
    /// Idempotency key.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Return right after the run is accepted.
    #[arg(long)]
    no_wait: bool,
}

impl Run {
    /// Starts the run; unless `--no-wait`, waits for its end and fails
    /// when it did not succeed.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let input: Value = match &self.input {
            Some(text) => serde_json::from_str(text).context("--input is not valid JSON")?,
            None => Value::Null,
        };
        let ws = &self.workspace;
        let body =
            json!({ "mode": self.mode, "input": input, "idempotency_key": self.idempotency_key });
        let started = client
            .post(
                &format!("/v1/workspaces/{ws}/playbooks/{}/runs", self.name),
                body,
            )
            .await?;
        let accepted: views::RunAccepted = parse(&started, "a run just triggered")?;
        let id = accepted.id;
        if self.no_wait {
            if client.json() {
                print::pretty(&started)?;
            } else {
                println!("{id}");
            }
            return Ok(());
        }
        eprintln!(
            "run {id} of {} ({}, {})",
            self.name, self.mode, accepted.digest
        );
        follow(client, ws, &id).await;
        let answer = client
            .get(&format!("/v1/workspaces/{ws}/runs/{id}"))
            .await?;
        let run: views::Run = parse(&answer, "a run")?;
        if client.json() {
            print::pretty(&answer)?;
        } else {
            print_run(&run)?;
        }
        if run.status != "succeeded" {
            bail!(
                "run {id} {}: {}",
                run.status,
                run.error.as_deref().unwrap_or("")
            );
        }
        Ok(())
    }
}

/// Prints the run's events to stderr as they come: the progress of long
/// runs.
async fn follow(client: &Client, ws: &str, id: &str) {
    let resp = client
        .stream(&format!("/v1/workspaces/{ws}/runs/{id}/events"))
        .await;
    let Ok(resp) = resp else { return };
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            print_event(&frame);
        }
    }
}

/// Prints one server-sent event frame of a run, if it is of a kind worth
/// showing.
fn print_event(frame: &str) {
    let mut kind = "";
    let mut data = String::new();
    for line in frame.lines() {
        if let Some(k) = line.strip_prefix("event:") {
            kind = k.trim();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.trim_start());
        }
    }
    let d: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
    match kind {
        "status" => eprintln!("  status: {}", d["status"].as_str().unwrap_or("?")),
        "tool_start" => eprintln!("  → {}", d["name"].as_str().unwrap_or("?")),
        "tool_result" => eprintln!(
            "    {} {}",
            if d["ok"] == true { "ok" } else { "error" },
            d["summary"].as_str().unwrap_or("")
        ),
        "log" => eprintln!(
            "  [{}] {}",
            d["level"].as_str().unwrap_or("info"),
            d["message"].as_str().unwrap_or("")
        ),
        "guardrails" => eprintln!("  limit hit: {}", d["message"].as_str().unwrap_or("")),
        _ => {}
    }
}

/// A finished run: its outcome, report, actions and usage. The report and
/// the usage are the plugin's and the runtime's JSON, read as such.
fn print_run(run: &views::Run) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} {}@{} [{}] {}",
        run.id, run.plugin, run.version, run.mode, run.status
    )?;
    writeln!(out, "digest {}", run.digest)?;
    if let Some(err) = &run.error {
        writeln!(out, "error: {err}")?;
    }
    let report = run.report.as_ref().unwrap_or(&Value::Null);
    if let Some(summary) = report["summary"].as_str() {
        writeln!(out, "\n{summary}")?;
    }
    for f in report["findings"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  [{:<8}] {}: {}",
            f["severity"].as_str().unwrap_or(""),
            f["code"].as_str().unwrap_or(""),
            f["summary"].as_str().unwrap_or("")
        )?;
        if let Some(e) = f["evidence"].as_str() {
            writeln!(out, "             {e}")?;
        }
    }
    print_actions(&mut out, run)?;
    let u = run.usage.as_ref().unwrap_or(&Value::Null);
    writeln!(
        out,
        "\nused {} ms, {} fuel, {} KiB peak memory, {} step(s)",
        u["wall_ms"],
        u["fuel"],
        u["peak_memory_bytes"].as_u64().unwrap_or(0) >> 10,
        u["steps"]
    )?;
    Ok(())
}

/// The actions of a run, applied, planned and refused, then the manual
/// ones its report asks a human for.
fn print_actions(out: &mut impl std::io::Write, run: &views::Run) -> anyhow::Result<()> {
    if let Some(actions) = &run.actions {
        for (title, list) in [
            ("APPLIED", &actions.applied),
            ("PLANNED (not applied)", &actions.planned),
            ("REFUSED", &actions.refused),
        ] {
            if !list.is_empty() {
                writeln!(out, "\n{title}")?;
                for a in list {
                    writeln!(
                        out,
                        "  #{} {} {} {}",
                        a.seq,
                        a.call,
                        a.target.as_deref().unwrap_or(""),
                        a.detail.as_deref().unwrap_or("")
                    )?;
                }
            }
        }
    }
    let report = run.report.as_ref().unwrap_or(&Value::Null);
    let manual = report["manual_actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !manual.is_empty() {
        writeln!(out, "\nMANUAL ACTIONS (a human must do these)")?;
        for m in manual {
            writeln!(out, "  ! {}", m.as_str().unwrap_or(""))?;
        }
    }
    Ok(())
}
