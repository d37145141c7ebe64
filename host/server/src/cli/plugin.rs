//! `warden plugin ...`: the server's plugins, listed or one in detail, and
//! `plugin new`, which writes a plugin crate without any server.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use warden_api::views;

use super::{Client, ServerArgs, new, parse, print};

/// `warden plugin ...`
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Every plugin with its versions, and every rejected file with why.
    Ls(Ls),
    /// One plugin in detail: versions, digests, imports, limits, grants.
    Inspect(Inspect),
    /// Write a new plugin crate (source, Cargo.toml, a test with the test
    /// kit) that builds wherever it is written. Needs no server.
    New(New),
}

impl PluginCommand {
    /// Runs the command; only those that call the server open a client.
    pub async fn run(self, server: &ServerArgs) -> anyhow::Result<()> {
        match self {
            PluginCommand::New(cmd) => cmd.run(),
            PluginCommand::Ls(cmd) => cmd.run(&Client::new(server)?).await,
            PluginCommand::Inspect(cmd) => cmd.run(&Client::new(server)?).await,
        }
    }
}

/// `warden plugin ls`
#[derive(Args, Debug)]
pub struct Ls {
    /// Show grants and pins of this workspace.
    #[arg(long, short, default_value = "default")]
    workspace: String,
}

impl Ls {
    /// Prints the plugins, or the raw answer with `--json`.
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client
            .get(&format!("/v1/plugins?workspace={}", self.workspace))
            .await?;
        if client.json() {
            return print::pretty(&v);
        }
        let list: views::PluginList = parse(&v, "a list of plugins")?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{:<24} {:<15} {:<10} {:<9} {:<20} {:<30} GRANTED",
            "NAME", "KIND", "VERSION", "STATE", "DIGEST", "REQUESTED"
        )?;
        for p in &list.plugins {
            for ver in &p.versions {
                version_row(&mut out, p, ver)?;
            }
        }
        if !list.rejected.is_empty() {
            writeln!(out, "\nREJECTED")?;
            for r in &list.rejected {
                writeln!(out, "  {}: {}", r.source, r.reason)?;
            }
        }
        writeln!(
            out,
            "\n* = the version workspace \"{}\" uses",
            self.workspace
        )?;
        Ok(())
    }
}

/// One line of `plugin ls`: plugin `p` at version `ver`, starred and with
/// its grants when it is the version the workspace is pinned to.
fn version_row(
    out: &mut impl std::io::Write,
    p: &views::Plugin,
    ver: &views::PluginVersion,
) -> anyhow::Result<()> {
    let digest = ver.digest.as_str();
    let short = digest.get(..19).unwrap_or(digest);
    let pinned = p.pinned_digest.as_deref() == Some(digest);
    writeln!(
        out,
        "{:<24} {:<15} {:<10} {:<9} {:<20} {:<30} {}",
        p.name,
        p.kind,
        format!("{}{}", ver.version, if pinned { "*" } else { "" }),
        ver.state,
        short,
        ver.capabilities_requested.join(","),
        if pinned {
            p.capabilities_granted.join(",")
        } else {
            String::new()
        },
    )?;
    Ok(())
}

/// `warden plugin inspect <name>`
#[derive(Args, Debug)]
pub struct Inspect {
    /// Plugin name.
    name: String,
    /// Workspace for pins and grants.
    #[arg(long, short, default_value = "default")]
    workspace: String,
}

impl Inspect {
    /// Prints the server's answer as it is: JSON, with or without `--json`
    /// (once it has read as a plugin).
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        let v = client
            .get(&format!(
                "/v1/plugins/{}?workspace={}",
                self.name, self.workspace
            ))
            .await?;
        let _: views::Plugin = parse(&v, "a plugin")?;
        print::pretty(&v)
    }
}

/// `warden plugin new <kind> <name>`
#[derive(Args, Debug)]
pub struct New {
    /// playbook, gate or router.
    kind: new::Kind,
    /// The plugin's name: lowercase letters, digits and dashes.
    name: String,
    /// Where to write it (missing or empty); default: ./<name>.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The sdk directory of a Warden checkout to build against;
    /// default: the one this binary was built from.
    #[arg(long, env = "WARDEN_SDK")]
    sdk: Option<PathBuf>,
}

impl New {
    /// Writes the crate; no server is involved.
    pub fn run(self) -> anyhow::Result<()> {
        new::run(self.kind, &self.name, self.dir, self.sdk)
    }
}
