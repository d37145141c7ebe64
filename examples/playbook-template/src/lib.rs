//! A playbook: looks for tasks that made no progress for a while and says
//! what to do about them.
//!
//! Everything Warden needs to know about it is declared in the attribute
//! below and in Cargo.toml (name, version, description): the SDK embeds it
//! in the `.wasm`.

use warden_sdk::{Context, Finding, Report, config, health, tasks};

#[warden_sdk::playbook(capabilities = ["health:read", "tasks:read"], deadline_ms = 2000)]
fn run(_ctx: &Context) -> Result<Report, warden_sdk::HostError> {
    // Configurable per workspace in warden.toml:
    // [workspaces.<ws>.plugins.my-playbook.config] stuck_after_secs = "900"
    let stuck_after: u64 = config::get_or("stuck_after_secs", 900);

    let snapshot = health::snapshot()?;
    let stuck = tasks::list(&tasks::Filter::new().states(&["running"]).stuck_for(stuck_after))?;

    let mut report = Report::new(format!(
        "{} queued, {} running, {} stuck for over {stuck_after}s",
        snapshot.count("queued"),
        snapshot.count("running"),
        stuck.len()
    ));
    if stuck.is_empty() {
        report.push(Finding::info("tasks.progress", "every running task made progress recently"));
    }
    for task in &stuck {
        report.push(
            Finding::warning("tasks.stuck", format!("task {} ({}) is stuck at {}", task.id, task.title, task.stage))
                .evidence(format!("no event for {}s, attempt {}", task.last_event_age_secs, task.attempts)),
        );
        report.manual(format!("look at the worker running task {}, or requeue it", task.id));
    }
    Ok(report)
}
