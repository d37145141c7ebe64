//! The alert rules that watch the state rather than an event (SPEC AL-1):
//! evaluated every few seconds per workspace by the host that holds the
//! scheduler lock, each raising its alert while its condition holds and
//! resolving it when the condition ends. The rules that fire on an event
//! (infinite loop, attempt 3, budget 80 %, backlog, gate quorum, breakers,
//! processes, disk) raise where the event happens; their task alerts are
//! resolved here once the task has moved on.

use serde_json::json;
use warden_store::Store;
use warden_store::tasks::TaskState;

use crate::alerts::{Alerts, Severity};
use crate::config::Config;
pub use crate::config::rules::RulesConfig;
use crate::error::Result;

/// Evaluates the rules of one workspace under `config`.
pub async fn evaluate(store: &Store, alerts: &Alerts, config: &Config, ws: &str) -> Result<()> {
    let rules = Rules {
        rules: config.alerting.rules.clone(),
        backlog_threshold: config.scheduler.backlog_threshold,
    };
    evaluate_with(store, alerts, &rules, ws).await
}

/// What the rules are evaluated with: `[alerting.rules]` and the
/// scheduler's `backlog_threshold`.
#[derive(Clone, Debug)]
pub struct Rules {
    /// `[alerting.rules]`.
    pub rules: RulesConfig,
    /// `[scheduler] backlog_threshold`.
    pub backlog_threshold: u32,
}

/// Evaluates the rules of one workspace under `rules`.
pub async fn evaluate_with(store: &Store, alerts: &Alerts, rules: &Rules, ws: &str) -> Result<()> {
    let now = warden_store::now_ms();
    let cfg = &rules.rules;
    backlog(store, alerts, rules.backlog_threshold, ws).await?;
    build_test(store, alerts, cfg, ws, now).await?;
    gate_spike(store, alerts, cfg, ws, now).await?;
    fingerprints(store, alerts, cfg, ws, now).await?;
    error_spike(store, alerts, cfg, ws, now).await?;
    task_alerts(store, alerts, ws).await?;
    Ok(())
}

/// The backlog rule: raised while more than `threshold` tasks are queued,
/// resolved once the queue is back under. The scheduler runs it when a task
/// is created (at most once a second per workspace); the evaluation catches
/// a queue that grew otherwise (retries, redrives) or drained.
pub(crate) async fn backlog(
    store: &Store,
    alerts: &Alerts,
    threshold: u32,
    ws: &str,
) -> Result<()> {
    let key = format!("backlog:{ws}");
    let queued = store
        .count_tasks_by_state(ws)
        .await?
        .into_iter()
        .find(|(s, _)| s == TaskState::Queued.as_str())
        .map_or(0, |(_, n)| n);
    let firing = (queued > i64::from(threshold)).then(|| {
        (
            format!(
                "backlog of {queued} queued tasks in workspace \"{ws}\" (threshold {threshold})"
            ),
            json!({ "queued": queued }),
        )
    });
    hold(alerts, ws, "backlog", Severity::Warning, &key, firing).await
}

/// Raises the rule's alert under `key` while it is `firing` (with its
/// summary and detail), resolves it otherwise: the shape of every rule
/// that watches a condition.
async fn hold(
    alerts: &Alerts,
    ws: &str,
    rule: &str,
    severity: Severity,
    key: &str,
    firing: Option<(String, serde_json::Value)>,
) -> Result<()> {
    match firing {
        Some((summary, detail)) => {
            alerts
                .raise(Some(ws), rule, severity, key, &summary, detail)
                .await?;
        }
        None => {
            alerts.resolve(key).await?;
        }
    }
    Ok(())
}

async fn build_test(
    store: &Store,
    alerts: &Alerts,
    cfg: &RulesConfig,
    ws: &str,
    now: i64,
) -> Result<()> {
    let key = format!("build_test:{ws}");
    let failing = store
        .tasks_failing_at(ws, &cfg.build_test_stages, now - 3_600_000)
        .await?;
    let firing = (failing.len() >= cfg.build_test_failing_tasks as usize).then(|| {
        let shown: Vec<&str> = failing.iter().take(10).map(String::as_str).collect();
        (
            format!(
                "{} tasks are failing at build/test stages ({}) in workspace \"{ws}\": {}",
                failing.len(),
                cfg.build_test_stages.join(", "),
                shown.join(", ")
            ),
            json!({ "tasks": failing, "stages": cfg.build_test_stages, "threshold": cfg.build_test_failing_tasks }),
        )
    });
    hold(
        alerts,
        ws,
        "build_test_failures",
        Severity::Critical,
        &key,
        firing,
    )
    .await
}

async fn gate_spike(
    store: &Store,
    alerts: &Alerts,
    cfg: &RulesConfig,
    ws: &str,
    now: i64,
) -> Result<()> {
    let key = format!("gate_rejections:{ws}");
    let (n, rejected) = store
        .gate_verdict_counts(ws, now - cfg.gate_rejection_window_ms as i64)
        .await?;
    let rate = if n > 0 {
        rejected as f64 / n as f64
    } else {
        0.0
    };
    let spiking = n >= cfg.gate_rejection_min_verdicts as i64 && rate > cfg.gate_rejection_rate;
    let firing = spiking.then(|| {
        (
            format!(
                "gates rejected {rejected} of {n} verdicts ({:.0}%) in workspace \"{ws}\" over the last {} min, over {:.0}%",
                rate * 100.0,
                cfg.gate_rejection_window_ms / 60_000,
                cfg.gate_rejection_rate * 100.0
            ),
            json!({ "verdicts": n, "rejected": rejected, "rate": rate, "threshold": cfg.gate_rejection_rate }),
        )
    });
    hold(
        alerts,
        ws,
        "gate_rejection_spike",
        Severity::Warning,
        &key,
        firing,
    )
    .await
}

async fn fingerprints(
    store: &Store,
    alerts: &Alerts,
    cfg: &RulesConfig,
    ws: &str,
    now: i64,
) -> Result<()> {
    let fresh = store
        .new_fingerprints(ws, now - cfg.new_fingerprint_window_ms as i64)
        .await?;
    let prefix = format!("fingerprint:{ws}:");
    for f in &fresh {
        let error = f
            .error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        alerts
            .raise(
                Some(ws),
                "new_error_fingerprint",
                Severity::Warning,
                &format!("{prefix}{}", f.fingerprint),
                &format!(
                    "a new failure at stage \"{}\" in workspace \"{ws}\" ({} time(s) since first seen): {}",
                    f.stage,
                    f.count,
                    crate::validate::truncate(error, 200)
                ),
                json!({ "fingerprint": f.fingerprint, "stage": f.stage, "count": f.count, "first_at": crate::time::time(f.first_at) }),
            )
            .await?;
    }
    // No longer new: the window has passed its first sighting.
    for a in store.list_alerts(Some(ws), Some("open"), 500).await? {
        if a.rule == "new_error_fingerprint"
            && let Some(fp) = a.dedup_key.strip_prefix(&prefix)
            && !fresh.iter().any(|f| f.fingerprint == fp)
        {
            alerts.resolve(&a.dedup_key).await?;
        }
    }
    Ok(())
}

async fn error_spike(
    store: &Store,
    alerts: &Alerts,
    cfg: &RulesConfig,
    ws: &str,
    now: i64,
) -> Result<()> {
    let key = format!("error_rate:{ws}");
    let window = cfg.error_spike_window_ms as i64;
    let recent = store.count_stage_failures(ws, now - window).await?;
    let hour = store.count_stage_failures(ws, now - 3_600_000).await?;
    // The rate of the rest of the hour, per window, as the baseline.
    let windows_before = (3_600_000 - window) as f64 / window as f64;
    let baseline = (hour - recent) as f64 / windows_before;
    let spiking = recent >= cfg.error_spike_min_failures as i64
        && recent as f64 > cfg.error_spike_factor * baseline.max(1.0);
    let firing = spiking.then(|| {
        (
            format!(
                "{recent} stage failures in the last {} s in workspace \"{ws}\", against {baseline:.1} per {} s before",
                window / 1000,
                window / 1000
            ),
            json!({ "recent": recent, "baseline": baseline, "window_ms": window, "factor": cfg.error_spike_factor }),
        )
    });
    hold(
        alerts,
        ws,
        "error_rate_spike",
        Severity::Warning,
        &key,
        firing,
    )
    .await
}

/// The alerts of single tasks, raised by the scheduler when a guard trips
/// or a gate finds no quorum, held while their condition lasts (each
/// evaluation raises them again: one row, its count growing) and resolved
/// once it is over: `infinite_loop` and `same_failure` while the task is
/// blocked, `gate_waiting_approval` while it waits for a decision,
/// `attempt_3` while it is at that stage, `budget_80` until it ends.
async fn task_alerts(store: &Store, alerts: &Alerts, ws: &str) -> Result<()> {
    for a in store.list_alerts(Some(ws), Some("open"), 500).await? {
        let (task_id, stage) = match a.rule.as_str() {
            "infinite_loop" | "same_failure" | "gate_waiting_approval" => {
                (a.dedup_key.split(':').nth(1), None)
            }
            "attempt_3" => {
                let mut parts = a.dedup_key.splitn(3, ':');
                let _ = parts.next();
                (parts.next(), parts.next())
            }
            "budget_80" => match a.detail.get("task").and_then(|t| t.as_str()) {
                Some(_) => (a.dedup_key.split(':').nth(1), None),
                None => continue,
            },
            _ => continue,
        };
        let Some(task_id) = task_id else { continue };
        let firing = match store.get_task(ws, task_id).await? {
            None => false,
            Some(t) => match a.rule.as_str() {
                "infinite_loop" | "same_failure" => t.state == TaskState::Blocked,
                "gate_waiting_approval" => t.state == TaskState::WaitingApproval,
                "attempt_3" => !t.state.is_finished() && stage.is_none_or(|s| s == t.stage),
                _ => !t.state.is_finished(),
            },
        };
        let held = matches!(
            a.rule.as_str(),
            "infinite_loop" | "same_failure" | "gate_waiting_approval"
        );
        if !firing {
            alerts.resolve(&a.dedup_key).await?;
        } else if held && let Some(severity) = Severity::parse(&a.severity) {
            alerts
                .raise(
                    Some(ws),
                    &a.rule,
                    severity,
                    &a.dedup_key,
                    &a.summary,
                    a.detail,
                )
                .await?;
        }
    }
    Ok(())
}
