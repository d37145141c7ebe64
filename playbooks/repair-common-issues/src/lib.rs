//! `repair-common-issues`: the common self-heal repairs of the task queue
//! (SPEC PB-6).
//!
//! - A `running` task whose lease expired is requeued (`tasks::requeue`):
//!   its worker is gone, the stage goes back to the queue.
//! - A `running` task without any event for longer than `stuck_after_secs`
//!   is reset (`tasks::reset`): back to the queue at its stage, attempts and
//!   last error cleared, so that a fresh worker starts it over.
//! - Tasks `blocked` by the same failure repeated (SPEC TS-6) get one fix
//!   task per distinct failure (`tasks::create` with dedup key
//!   `fix:<task id>`, so a second run does not file it again while it is
//!   open). The blocked tasks stay blocked: unblocking them is a human's
//!   call once the fix is in.
//!
//! In `diagnose` mode it only reports what it finds; in `plan` mode the
//! host records each call as a planned action; in `apply` mode each call is
//! an audited action. When the step budget is spent, the repairs left are
//! listed as manual actions.
//!
//! Config values (warden.toml
//! `[workspaces.<ws>.plugins.repair-common-issues] config = { .. }`):
//! `stuck_after_secs` (900) and `max_tasks` (100 per kind of issue).

use std::collections::BTreeMap;

use warden_sdk::tasks::{self, Filter, NewTask, Task};
use warden_sdk::{Context, Finding, HostError, Mode, Report, config, health};

/// One repair the playbook would make.
enum Repair {
    Requeue(Task),
    Reset(Task),
    FixTask {
        key: String,
        fingerprint: String,
        error: String,
        tasks: Vec<String>,
    },
}

impl Repair {
    fn describe(&self) -> String {
        match self {
            Repair::Requeue(t) => format!(
                "requeue task {} (lease expired at stage \"{}\")",
                t.id, t.stage
            ),
            Repair::Reset(t) => format!(
                "reset task {} (no progress for {}s at stage \"{}\")",
                t.id, t.last_event_age_secs, t.stage
            ),
            Repair::FixTask {
                fingerprint, tasks, ..
            } => format!(
                "create a fix task for failure {fingerprint} (blocks {})",
                tasks.join(", ")
            ),
        }
    }

    fn apply(&self) -> Result<(), HostError> {
        match self {
            Repair::Requeue(t) => tasks::requeue(&t.id, "lease expired: its worker is gone"),
            Repair::Reset(t) => tasks::reset(
                &t.id,
                &format!(
                    "stuck: no event for {}s at stage \"{}\"",
                    t.last_event_age_secs, t.stage
                ),
            ),
            Repair::FixTask {
                key,
                fingerprint,
                error,
                tasks: blocked,
            } => {
                let title: String = format!("Fix repeated failure: {error}")
                    .chars()
                    .take(200)
                    .collect();
                let body = format!(
                    "The same failure (fingerprint {fingerprint}) blocked {} task(s): {}.\n\n\
                     Error: {error}\n\nUnblock them once this is fixed.",
                    blocked.len(),
                    blocked.join(", ")
                );
                let task = NewTask {
                    title,
                    body,
                    priority: "normal".to_string(),
                    dedup_key: Some(key.clone()),
                };
                tasks::create(&task).map(|_| ())
            }
        }
    }
}

#[warden_sdk::playbook(capabilities = ["health:read", "tasks:read", "tasks:write"])]
fn run(ctx: &Context) -> Result<Report, HostError> {
    let stuck_after: u64 = config::get_or("stuck_after_secs", 900);
    let limit: u32 = config::get_or("max_tasks", 100);
    let snapshot = health::snapshot()?;
    let mut report = Report::new(String::new());

    let expired = tasks::list(&Filter::new().lease_expired().limit(limit))?;
    let stuck: Vec<Task> = tasks::list(
        &Filter::new()
            .states(&["running"])
            .stuck_for(stuck_after)
            .limit(limit),
    )?
    .into_iter()
    .filter(|t| !t.lease_expired)
    .collect();
    let blocked = if snapshot.count("blocked") > 0 {
        tasks::list(&Filter::new().states(&["blocked"]).limit(limit))?
    } else {
        Vec::new()
    };

    let mut repairs = Vec::new();
    if !expired.is_empty() {
        report.push(
            Finding::warning(
                "tasks.lease_expired",
                format!("{} running task(s) with an expired lease", expired.len()),
            )
            .evidence(ids(&expired)),
        );
    }
    if !stuck.is_empty() {
        report.push(
            Finding::warning(
                "tasks.stuck",
                format!(
                    "{} running task(s) without progress for over {stuck_after}s",
                    stuck.len()
                ),
            )
            .evidence(ids(&stuck)),
        );
    }
    let failures = same_failures(&blocked);
    for (fingerprint, (error, tasks)) in &failures {
        report.push(
            Finding::warning(
                "tasks.same_failure",
                format!(
                    "{} task(s) blocked by the same failure repeated",
                    tasks.len()
                ),
            )
            .evidence(format!(
                "fingerprint {fingerprint}: {error} (tasks {})",
                tasks.join(", ")
            )),
        );
    }
    repairs.extend(expired.into_iter().map(Repair::Requeue));
    repairs.extend(stuck.into_iter().map(Repair::Reset));
    repairs.extend(
        failures
            .into_iter()
            .map(|(fingerprint, (error, tasks))| Repair::FixTask {
                key: format!("fix:{}", tasks[0]),
                fingerprint,
                error,
                tasks,
            }),
    );

    if repairs.is_empty() {
        report.push(Finding::info(
            "tasks.ok",
            "no expired lease, no stuck task, no task blocked by a repeated failure",
        ));
        report.summary = "nothing to repair".to_string();
        return Ok(report);
    }
    if ctx.mode() == Mode::Diagnose {
        report.manual(format!(
            "run repair-common-issues in plan or apply mode to make {} repair(s)",
            repairs.len()
        ));
        report.summary = format!("{} repair(s) needed", repairs.len());
        return Ok(report);
    }

    let (mut made, mut failed) = (0, 0);
    let mut rest = repairs.iter();
    let mut stopped = None;
    for repair in rest.by_ref() {
        match repair.apply() {
            Ok(()) => made += 1,
            Err(HostError::StepBudgetSpent) => {
                stopped = Some("step budget spent".to_string());
            }
            Err(HostError::Denied(why)) => {
                stopped = Some(format!("denied: {why}"));
            }
            Err(e) => {
                // The task changed under us (finished, claimed again):
                // report it and go on with the others.
                failed += 1;
                report.push(
                    Finding::warning("repair.failed", format!("could not {}", repair.describe()))
                        .evidence(e.to_string()),
                );
            }
        }
        if let Some(why) = &stopped {
            // A further mutating call after a spent budget would end the
            // run, so this repair and the ones left go to a human.
            report.manual(format!("{} ({why})", repair.describe()));
            break;
        }
    }
    if let Some(why) = &stopped {
        for repair in rest {
            report.manual(format!("{} ({why})", repair.describe()));
        }
    }
    let verb = if ctx.mode() == Mode::Plan {
        "planned"
    } else {
        "made"
    };
    let left = repairs.len() - made - failed;
    report.summary = format!(
        "{made} of {} repair(s) {verb}, {failed} failed, {left} left as manual actions",
        repairs.len()
    );
    Ok(report)
}

fn ids(tasks: &[Task]) -> String {
    let mut s: Vec<String> = tasks
        .iter()
        .take(20)
        .map(|t| format!("{} ({})", t.id, t.stage))
        .collect();
    if tasks.len() > 20 {
        s.push(format!("and {} more", tasks.len() - 20));
    }
    s.join(", ")
}

/// Blocked tasks grouped by the repeated failure that blocked them:
/// fingerprint → (first line of the error, task ids oldest first). The
/// scheduler's block reason reads `the same failure N times in a row
/// (fingerprint F): <error>`.
fn same_failures(blocked: &[Task]) -> BTreeMap<String, (String, Vec<String>)> {
    let mut groups: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for t in blocked {
        let Some(reason) = t.last_error.as_deref() else {
            continue;
        };
        let Some(rest) = reason.strip_prefix("the same failure") else {
            continue;
        };
        let (fingerprint, error) = match rest
            .split_once("(fingerprint ")
            .and_then(|(_, r)| r.split_once(')'))
        {
            Some((fp, error)) => (
                fp.to_string(),
                error.trim_start_matches(':').trim().to_string(),
            ),
            None => (rest.trim().to_string(), rest.trim().to_string()),
        };
        let group = groups
            .entry(fingerprint)
            .or_insert_with(|| (error, Vec::new()));
        group.1.push(t.id.clone());
    }
    for (_, tasks) in groups.values_mut() {
        // Ids are time-ordered: the smallest is the oldest task, a stable
        // key for the fix task across runs.
        tasks.sort();
    }
    groups
}
