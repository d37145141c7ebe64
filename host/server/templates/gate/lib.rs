//! A quality gate: rejects a change that adds more TODO comments than the
//! workspace allows.
//!
//! Everything Warden needs to know about it is declared in the attribute
//! below and in Cargo.toml (name, version, description): the SDK embeds it
//! in the `.wasm`. The guide is docs/gate-authoring.md.

use warden_sdk::gate::{Submission, Verdict};
use warden_sdk::{config, log};

#[warden_sdk::gate(deadline_ms = 2000)]
fn evaluate(submission: &Submission) -> Result<Verdict, String> {
    // Configurable per workspace in warden.toml:
    // [workspaces.<ws>.plugins.{{name}}.config] marker = "FIXME", max = 2
    let marker = config::get("marker").unwrap_or_else(|| "TODO".to_string());
    let max: usize = config::get_parsed("max", 0)?;

    let mut found = Vec::new();
    for file in submission.diff_files() {
        for line in &file.added {
            if line.text.contains(&marker) {
                found.push(format!("{}:{}: {}", file.path, line.line, line.text.trim()));
            }
        }
    }
    log::info_with("scanned", &[("found", &found.len().to_string())]);

    if found.len() <= max {
        return Ok(
            Verdict::approve(100).reason("quality", format!("{} new {marker}(s)", found.len()))
        );
    }
    let mut verdict = Verdict::reject(50);
    for f in found.iter().take(20) {
        verdict.push("quality", format!("new {marker}: {f}"));
    }
    Ok(verdict)
}
