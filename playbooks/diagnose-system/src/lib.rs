//! `diagnose-system`: looks at workers, the queue, errors, the database,
//! model providers, disks and plugins, and reports what it finds (SPEC
//! PB-6). Read-only: it needs `health:read` and `tasks:read` and never
//! changes anything, so it is safe to retry.
//!
//! Thresholds are plugin config values (warden.toml
//! `[workspaces.<ws>.plugins.diagnose-system.config]`):
//! `backlog_threshold` (20 queued tasks), `stuck_after_secs` (900),
//! `heartbeat_stale_secs` (60), `db_latency_warn_ms` (100),
//! `disk_warn_percent` (25), `disk_critical_percent` (10),
//! `error_rate_warn_per_min` (10).

use warden_sdk::health::Snapshot;
use warden_sdk::{Context, Finding, Report, Severity, config, health, tasks};

#[warden_sdk::playbook(capabilities = ["health:read", "tasks:read"], idempotent, concurrent)]
fn run(_ctx: &Context) -> Result<Report, warden_sdk::HostError> {
    let snapshot = health::snapshot()?;
    let mut report = Report::new(String::new());
    workers(&snapshot, &mut report);
    queue(&snapshot, &mut report)?;
    errors(&snapshot, &mut report);
    database(&snapshot, &mut report);
    providers(&snapshot, &mut report);
    disks(&snapshot, &mut report);
    plugins_and_runs(&snapshot, &mut report);

    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let (critical, warning) = (count(Severity::Critical), count(Severity::Warning));
    report.summary = match (critical, warning) {
        (0, 0) => "healthy: nothing needs attention".to_string(),
        (0, w) => format!("degraded: {w} warning(s)"),
        (c, w) => format!("unhealthy: {c} critical finding(s), {w} warning(s)"),
    };
    Ok(report)
}

fn workers(s: &Snapshot, report: &mut Report) {
    let stale_after: u64 = config::get_or("heartbeat_stale_secs", 60);
    if s.workers.is_empty() {
        let queued = s.count("queued");
        let finding = Finding::warning("workers.none", "no worker has sent a heartbeat");
        report.push(if queued > 0 {
            finding.evidence(format!("{queued} task(s) are waiting for a worker"))
        } else {
            finding
        });
        return;
    }
    let stale: Vec<_> = s
        .workers
        .iter()
        .filter(|w| w.last_heartbeat_age_secs > stale_after)
        .collect();
    if stale.is_empty() {
        report.push(Finding::info(
            "workers.ok",
            format!("{} worker(s), all heartbeating", s.workers.len()),
        ));
    }
    for w in stale {
        report.push(
            Finding::warning("workers.stale", format!("worker {} stopped heartbeating", w.id))
                .evidence(format!(
                    "last heartbeat {}s ago, {} lease(s) held",
                    w.last_heartbeat_age_secs, w.active_leases
                )),
        );
    }
}

fn queue(s: &Snapshot, report: &mut Report) -> Result<(), warden_sdk::HostError> {
    let backlog: u64 = config::get_or("backlog_threshold", 20);
    let stuck_after: u64 = config::get_or("stuck_after_secs", 900);
    let counts: Vec<String> = s.queue.iter().map(|c| format!("{}={}", c.state, c.count)).collect();
    let queued = s.count("queued");
    let overview = if counts.is_empty() {
        "no tasks".to_string()
    } else {
        counts.join(", ")
    };
    report.push(Finding::info("queue.depth", format!("{queued} task(s) queued")).evidence(overview));
    if queued > backlog {
        report.push(
            Finding::warning("queue.backlog", format!("backlog of {queued} queued task(s)"))
                .evidence(format!("threshold {backlog}")),
        );
    }
    for state in ["failed", "dead"] {
        let n = s.count(state);
        if n > 0 {
            report.push(Finding::warning(&format!("queue.{state}"), format!("{n} task(s) {state}")));
        }
    }
    let expired = tasks::list(&tasks::Filter::new().lease_expired().limit(20))?;
    let stuck = tasks::list(&tasks::Filter::new().states(&["running"]).stuck_for(stuck_after).limit(20))?;
    if !expired.is_empty() {
        let ids: Vec<&str> = expired.iter().map(|t| t.id.as_str()).collect();
        report.push(
            Finding::warning("tasks.lease_expired", format!("{} running task(s) with an expired lease", expired.len()))
                .evidence(ids.join(", ")),
        );
        report.manual("run repair-common-issues in apply mode to requeue tasks with expired leases");
    }
    let only_stuck: Vec<&str> = stuck
        .iter()
        .filter(|t| !t.lease_expired)
        .map(|t| t.id.as_str())
        .collect();
    if !only_stuck.is_empty() {
        report.push(
            Finding::warning("tasks.stuck", format!("{} task(s) without progress for over {stuck_after}s", only_stuck.len()))
                .evidence(only_stuck.join(", ")),
        );
    }
    Ok(())
}

fn errors(s: &Snapshot, report: &mut Report) {
    let warn_rate: f64 = config::get_or("error_rate_warn_per_min", 10.0);
    if s.error_rate_per_min > warn_rate {
        report.push(Finding::warning(
            "errors.rate",
            format!("{:.1} error line(s) per minute over the last hour", s.error_rate_per_min),
        ));
    }
    for e in s.top_errors.iter().take(5) {
        report.push(
            Finding::info("errors.top", format!("{}: {} in the last hour", e.service, e.count_1h))
                .evidence(format!("{} ({})", e.template, e.fingerprint)),
        );
    }
}

fn database(s: &Snapshot, report: &mut Report) {
    let warn_ms: u64 = config::get_or("db_latency_warn_ms", 100);
    let db = &s.database;
    if !db.reachable {
        report.push(Finding::critical("db.unreachable", format!("the {} database is unreachable", db.dialect)));
        report.manual("check the database server and Warden's database_url");
    } else if db.latency_us > warn_ms * 1000 {
        report.push(Finding::warning(
            "db.slow",
            format!("{} round trip {} ms", db.dialect, db.latency_us / 1000),
        ));
    } else {
        report.push(Finding::info(
            "db.ok",
            format!("{} reachable, round trip {:.1} ms", db.dialect, db.latency_us as f64 / 1000.0),
        ));
    }
}

fn providers(s: &Snapshot, report: &mut Report) {
    let providers: Vec<_> = s.breakers.iter().filter(|b| b.name.starts_with("provider:")).collect();
    if providers.is_empty() {
        report.push(Finding::info("providers.none", "no model provider is configured"));
    }
    for b in providers {
        match b.state.as_str() {
            "closed" => report.push(Finding::info("providers.ok", format!("{} is healthy", b.name))),
            "open" => report.push(
                Finding::critical("providers.open", format!("{} breaker is open", b.name))
                    .evidence(format!("{} consecutive failure(s)", b.consecutive_failures)),
            ),
            other => report.push(Finding::warning("providers.probing", format!("{} breaker is {other}", b.name))),
        };
    }
    for b in s.breakers.iter().filter(|b| !b.name.starts_with("provider:") && b.state != "closed") {
        report.push(Finding::warning("breakers.open", format!("breaker {} is {}", b.name, b.state)));
    }
}

fn disks(s: &Snapshot, report: &mut Report) {
    let warn: f64 = config::get_or("disk_warn_percent", 25.0);
    let critical: f64 = config::get_or("disk_critical_percent", 10.0);
    for d in &s.disks {
        let free = d.free_percent();
        let text = format!("{}: {free:.1}% free ({} MiB)", d.path, d.free_bytes >> 20);
        if free < critical {
            report.push(Finding::critical("disk.full", text));
            report.manual(format!("free space on {} (or run disk-cleanup)", d.path));
        } else if free < warn {
            report.push(Finding::warning("disk.low", text));
        } else {
            report.push(Finding::info("disk.ok", text));
        }
    }
}

fn plugins_and_runs(s: &Snapshot, report: &mut Report) {
    for p in s.plugins.iter().filter(|p| p.state != "active") {
        let finding = Finding::warning(
            &format!("plugins.{}", p.state),
            format!("plugin {}@{} is {}", p.name, p.version, p.state),
        );
        report.push(match &p.reason {
            Some(r) => finding.evidence(r.clone()),
            None => finding,
        });
    }
    if s.runs.failed_1h > 0 || s.runs.interrupted_1h > 0 {
        report.push(Finding::warning(
            "runs.failed",
            format!(
                "{} playbook run(s) failed and {} were interrupted in the last hour",
                s.runs.failed_1h, s.runs.interrupted_1h
            ),
        ));
    }
}
