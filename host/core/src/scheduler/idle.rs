//! Why a workspace is idle, the lease sweeper and the stuck-task detector
//! (SPEC TS-9, ST-2).

use super::*;

impl Scheduler {
    /// Why nothing runs in a workspace (SPEC TS-8); `workers_idle` when
    /// work and workers exist but nothing is claimed.
    pub async fn why_idle(&self, workspace: &str) -> Result<Idle> {
        let now = warden_store::now_ms();
        if let Some(held) = self.held_back(workspace, now).await? {
            return Ok(held);
        }
        let counts: BTreeMap<String, i64> = self
            .store
            .count_tasks_by_state(workspace)
            .await?
            .into_iter()
            .collect();
        let n = |s: TaskState| counts.get(s.as_str()).copied().unwrap_or(0);
        if n(TaskState::Running) > 0 {
            return Ok(idle(
                "not_idle",
                format!("{} stage(s) running", n(TaskState::Running)),
            ));
        }
        if n(TaskState::Queued) == 0 {
            let (blocked, waiting) = (n(TaskState::Blocked), n(TaskState::WaitingApproval));
            return self.nothing_queued(workspace, blocked, waiting, now).await;
        }
        // Queued tasks exist: look at why none is claimable.
        let mut queued = self.queued_census(workspace, now).await?;
        if let Some(why) = queued.why_none_ready() {
            return Ok(why);
        }
        self.unclaimed(workspace, queued.ready, now).await
    }

    /// What holds the whole workspace back: its mode, its spent hourly
    /// budget, a process it needs being down.
    async fn held_back(&self, workspace: &str, now: i64) -> Result<Option<Idle>> {
        let settings = self.settings(workspace).await?;
        let mode = mode_of(Some(&settings));
        if matches!(mode, WorkspaceMode::ReadOnly | WorkspaceMode::EmergencyStop) {
            let why = settings
                .mode_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            return Ok(Some(idle(
                "mode",
                format!(
                    "workspace \"{workspace}\" is in {} mode{why}",
                    mode.as_str()
                ),
            )));
        }
        if let Err(spent @ Error::BudgetSpent { .. }) =
            self.check_hourly_budget(workspace, &settings, now).await
        {
            return Ok(Some(idle("budget_spent", spent.to_string())));
        }
        Ok(self
            .paused_by_process(workspace)
            .map(|m| idle("process_down", m)))
    }

    /// Why a workspace with nothing queued or running is idle: `blocked`
    /// tasks (one stopped by its budget named first), tasks `waiting`
    /// for approval, or no tasks at all.
    async fn nothing_queued(
        &self,
        workspace: &str,
        blocked: i64,
        waiting: i64,
        now: i64,
    ) -> Result<Idle> {
        if blocked > 0 {
            let tasks = self
                .store
                .list_tasks(
                    workspace,
                    &TaskQuery {
                        states: vec![TaskState::Blocked],
                        limit: 100,
                        now,
                        ..TaskQuery::default()
                    },
                )
                .await?;
            if let Some(t) = tasks
                .iter()
                .find(|t| Blocked::by(t.last_error.as_deref()) == Blocked::Budget)
            {
                return Ok(idle(
                    "budget_spent",
                    format!(
                        "task {} stopped: {}",
                        t.id,
                        t.last_error.clone().unwrap_or_default()
                    ),
                ));
            }
            return Ok(idle(
                "blocked",
                format!(
                    "{blocked} task(s) blocked, none queued (see their last_error; unblock them to resume)"
                ),
            ));
        }
        if waiting > 0 {
            return Ok(idle(
                "waiting_approval",
                format!("{waiting} task(s) wait for a human decision"),
            ));
        }
        Ok(idle(
            "no_tasks",
            format!("no queued or running tasks in workspace \"{workspace}\""),
        ))
    }

    /// Sorts the queued tasks (the first 200) by what holds each back:
    /// dependencies not done, open breakers, backoff, or nothing.
    async fn queued_census(&self, workspace: &str, now: i64) -> Result<Queued> {
        let queued = self
            .store
            .list_tasks(
                workspace,
                &TaskQuery {
                    states: vec![TaskState::Queued],
                    limit: 200,
                    now,
                    ..TaskQuery::default()
                },
            )
            .await?;
        let open = self.open_breakers().await?;
        // The state of each dependency (`None`: no such task), read once.
        let mut dep_state: HashMap<String, Option<TaskState>> = HashMap::new();
        let mut census = Queued {
            total: queued.len(),
            next_retry: i64::MAX,
            ..Queued::default()
        };
        for t in &queued {
            for d in &t.depends_on {
                if !dep_state.contains_key(d) {
                    let state = self.store.get_task(workspace, d).await?.map(|x| x.state);
                    dep_state.insert(d.clone(), state);
                }
            }
            let done = |d: &str| dep_state.get(d) == Some(&Some(TaskState::Done));
            census.count(hold(t, done, &open, now));
        }
        Ok(census)
    }

    /// Why `ready` tasks are not claimed: no worker seen lately, or
    /// workers present but not claiming.
    async fn unclaimed(&self, workspace: &str, ready: usize, now: i64) -> Result<Idle> {
        let workers = self
            .store
            .list_workers(workspace, now - ms(self.config.worker_gone_after_ms))
            .await?;
        if workers.is_empty() {
            return Ok(idle(
                "no_workers",
                format!(
                    "{} task(s) are ready but no worker has claimed or heartbeated in the last {} s",
                    ready.max(1),
                    self.config.worker_gone_after_ms / 1000
                ),
            ));
        }
        Ok(idle(
            "workers_idle",
            format!(
                "{ready} task(s) are ready and {} worker(s) are present but not claiming",
                workers.len()
            ),
        ))
    }

    /// Requeues expired leases (run by one host at a time), alerts on stuck
    /// tasks and on the backlog.
    pub async fn sweep(&self) -> Result<()> {
        let now = warden_store::now_ms();
        let expired = self.store.expire_leases(now).await?;
        let mut workspaces: Vec<String> = Vec::new();
        for t in &expired {
            self.event(
                t,
                StatusEvent::new(TaskState::Queued).reason("lease expired"),
            )
            .await;
            if !workspaces.contains(&t.workspace) {
                workspaces.push(t.workspace.clone());
            }
        }
        for ws in &workspaces {
            self.announce(ws).await;
        }
        Ok(())
    }

    /// Finds running tasks without any event for `stuck_after_ms` and
    /// raises a warning per task (SPEC TS-6); resolves the alerts of tasks
    /// no longer stuck.
    pub async fn detect_stuck(&self, workspaces: &[String]) -> Result<()> {
        let now = warden_store::now_ms();
        for ws in workspaces {
            let stuck = self
                .store
                .list_tasks(
                    ws,
                    &TaskQuery {
                        states: vec![TaskState::Running],
                        stuck_for_ms: Some(ms(self.config.stuck_after_ms)),
                        limit: 100,
                        now,
                        ..TaskQuery::default()
                    },
                )
                .await?;
            let still: std::collections::HashSet<String> =
                stuck.iter().map(|t| format!("stuck:{}", t.id)).collect();
            // With 100 listed there may be more: resolve nothing this pass.
            let complete_list = stuck.len() < 100;
            for t in stuck {
                self.alerts
                    .raise_logged(
                        Some(ws),
                        "stuck_task",
                        Severity::Warning,
                        &format!("stuck:{}", t.id),
                        &format!(
                            "task {} has had no event for {} s at stage \"{}\"",
                            t.id,
                            (now - t.last_event_at) / 1000,
                            t.stage
                        ),
                        json!({ "task": t.id, "worker": t.lease_owner }),
                    )
                    .await;
            }
            // Tasks that moved again: their alerts are resolved.
            for status in ["open", "acknowledged"]
                .into_iter()
                .filter(|_| complete_list)
            {
                let open = self.store.list_alerts(Some(ws), Some(status), 500).await?;
                for a in open {
                    if a.rule == "stuck_task" && !still.contains(&a.dedup_key) {
                        let _ = self.alerts.resolve(&a.dedup_key).await;
                    }
                }
            }
            self.check_backlog(ws).await;
        }
        Ok(())
    }
}

fn idle(reason: &'static str, message: String) -> Idle {
    Idle { reason, message }
}

/// What keeps a queued task from being claimed, first reason first.
#[derive(Debug, PartialEq)]
enum Hold<'a> {
    /// A task it depends on is not done (`done` said no, or it does not
    /// exist).
    Dependencies,
    /// It requires these breakers, which are open.
    Breakers(Vec<&'a String>),
    /// It waits to retry until then.
    Backoff(i64),
    /// Nothing: it is claimable.
    Ready,
}

/// What keeps queued task `t` from being claimed at `now`, given whether
/// each of its dependencies is `done` and which breakers are `open`: the
/// claim's blocking rules (SPEC TS-1, TS-4) as [`Scheduler::why_idle`]
/// explains them.
fn hold<'a>(t: &'a TaskRow, done: impl Fn(&str) -> bool, open: &[String], now: i64) -> Hold<'a> {
    if !t.depends_on.iter().all(|d| done(d)) {
        return Hold::Dependencies;
    }
    let blocking: Vec<&String> = t.requires.iter().filter(|r| open.contains(r)).collect();
    if !blocking.is_empty() {
        return Hold::Breakers(blocking);
    }
    if t.next_attempt_at > now {
        return Hold::Backoff(t.next_attempt_at);
    }
    Hold::Ready
}

/// What stopped a blocked task, read from its stored `last_error`, which
/// holds the reason it was blocked for. A spent budget of the task is
/// the text [`budget_spent`] writes (`the <budget> budget of task <id> is
/// spent (<figures>)`, whichever path blocked it); every other reason (the
/// loop guard, the same failure again and again, a playbook or an
/// operator) is `Other`, even when it mentions a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    /// One of the task's own budgets is spent.
    Budget,
    /// Anything else, or no reason stored.
    Other,
}

impl Blocked {
    /// The measures [`budget_lines`] names.
    const MEASURES: [&'static str; 4] = ["token", "cost", "step", "wall time"];

    fn by(last_error: Option<&str>) -> Blocked {
        let spent = last_error
            .and_then(|e| e.strip_prefix("the "))
            .and_then(|e| {
                Self::MEASURES
                    .iter()
                    .find_map(|m| e.strip_prefix(m)?.strip_prefix(" budget of task "))
            })
            .is_some_and(|rest| rest.contains(" is spent ("));
        if spent {
            Blocked::Budget
        } else {
            Blocked::Other
        }
    }
}

/// Where a workspace's queued tasks stand ([`Scheduler::why_idle`]).
#[derive(Default)]
struct Queued {
    total: usize,
    /// Waiting for dependencies that are not done.
    on_deps: usize,
    /// Needing a breaker that is open.
    on_breakers: usize,
    /// Waiting to retry.
    in_backoff: usize,
    /// Claimable now.
    ready: usize,
    /// The open breakers the `on_breakers` tasks need.
    open_needed: Vec<String>,
    /// The soonest retry of a task in backoff.
    next_retry: i64,
}

impl Queued {
    /// Counts one queued task held back by `hold`.
    fn count(&mut self, hold: Hold<'_>) {
        match hold {
            Hold::Dependencies => self.on_deps += 1,
            Hold::Breakers(open) => {
                self.on_breakers += 1;
                self.open_needed.extend(open.into_iter().cloned());
            }
            Hold::Backoff(at) => {
                self.in_backoff += 1;
                self.next_retry = self.next_retry.min(at);
            }
            Hold::Ready => self.ready += 1,
        }
    }

    /// Why none is ready, when none is and all wait on dependencies,
    /// on breakers, or some on backoff.
    fn why_none_ready(&mut self) -> Option<Idle> {
        if self.ready > 0 {
            return None;
        }
        let total = self.total;
        if self.on_deps == total {
            return Some(idle(
                "all_blocked_on_dependencies",
                format!("all {total} queued task(s) wait for dependencies that are not done"),
            ));
        }
        if self.on_deps + self.on_breakers == total && self.on_breakers > 0 {
            self.open_needed.sort();
            self.open_needed.dedup();
            return Some(idle(
                "breaker_open",
                format!(
                    "queued tasks need breaker(s) {} which are open",
                    self.open_needed.join(", ")
                ),
            ));
        }
        if self.in_backoff > 0 {
            return Some(idle(
                "backoff",
                format!(
                    "{} queued task(s) wait to retry; the next at {}",
                    self.in_backoff,
                    crate::time::time(self.next_retry)
                ),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::task;

    fn queued() -> TaskRow {
        let mut t = task(0, &["plan"]);
        t.state = TaskState::Queued;
        t.depends_on = vec!["a".into(), "b".into()];
        t.requires = vec!["db".into(), "mail".into()];
        t.next_attempt_at = 500;
        t
    }

    #[test]
    fn a_queued_task_waits_for_all_its_dependencies_first() {
        let t = queued();
        let open: Vec<String> = vec!["mail".into()];
        // One dependency not done (or missing) holds it back, before
        // breakers and backoff.
        assert_eq!(hold(&t, |d| d == "a", &open, 0), Hold::Dependencies);
        assert_eq!(hold(&t, |_| false, &open, 0), Hold::Dependencies);
        // Then the open breakers it requires, named.
        let mail = "mail".to_string();
        assert_eq!(hold(&t, |_| true, &open, 0), Hold::Breakers(vec![&mail]));
        // Then its backoff, until the retry time is reached.
        assert_eq!(hold(&t, |_| true, &[], 499), Hold::Backoff(500));
        assert_eq!(hold(&t, |_| true, &[], 500), Hold::Ready);
        // A breaker it does not require does not hold it.
        let other: Vec<String> = vec!["dns".into()];
        assert_eq!(hold(&t, |_| true, &other, 500), Hold::Ready);
        // Without dependencies or requirements, only backoff holds it.
        let mut free = queued();
        free.depends_on.clear();
        free.requires.clear();
        assert_eq!(hold(&free, |_| false, &open, 0), Hold::Backoff(500));
    }

    fn census(holds: Vec<Hold<'_>>) -> Queued {
        let mut q = Queued {
            total: holds.len(),
            next_retry: i64::MAX,
            ..Queued::default()
        };
        for h in holds {
            q.count(h);
        }
        q
    }

    #[test]
    fn an_idle_queue_is_explained_by_what_holds_all_of_it() {
        let (db, mail) = ("db".to_string(), "mail".to_string());
        let reason = |holds| census(holds).why_none_ready().map(|i| i.reason);
        assert_eq!(reason(vec![Hold::Ready, Hold::Dependencies]), None);
        assert_eq!(
            reason(vec![Hold::Dependencies, Hold::Dependencies]),
            Some("all_blocked_on_dependencies")
        );
        assert_eq!(
            reason(vec![Hold::Dependencies, Hold::Breakers(vec![&db])]),
            Some("breaker_open")
        );
        assert_eq!(
            reason(vec![Hold::Breakers(vec![&db]), Hold::Backoff(9)]),
            Some("backoff")
        );
        let mut q = census(vec![
            Hold::Breakers(vec![&mail, &db]),
            Hold::Breakers(vec![&db]),
        ]);
        let why = q.why_none_ready().expect("held");
        assert_eq!(
            why.message,
            "queued tasks need breaker(s) db, mail which are open"
        );
        let mut q = census(vec![Hold::Backoff(2_000), Hold::Backoff(1_000)]);
        assert_eq!(q.in_backoff, 2);
        assert_eq!(q.next_retry, 1_000);
        assert_eq!(q.why_none_ready().map(|i| i.reason), Some("backoff"));
    }

    #[test]
    fn a_spent_budget_is_recognised_from_the_stored_reason() {
        // What `budget_spent` writes for each measure (its own test in
        // scheduler/mod.rs pins the token one).
        for reason in [
            "the token budget of task t is spent (100 of 100 tokens)",
            "the cost budget of task t is spent ($1.00 of $1.00)",
            "the step budget of task t is spent (10 of 10 steps)",
            "the wall time budget of task t is spent (60 of 60 s)",
        ] {
            assert_eq!(Blocked::by(Some(reason)), Blocked::Budget, "{reason}");
        }
    }

    #[test]
    fn other_block_reasons_are_not_a_spent_budget() {
        for reason in [
            None,
            Some(""),
            Some(
                "infinite loop: stage \"x\" of task t would be attempted for the 6th time without progress (limit 5)",
            ),
            Some(
                "the same failure 3 times in a row (fingerprint ab12): the token budget of task t is spent (1 of 1 tokens)",
            ),
            Some("blocked by a playbook: over budget"),
            Some("the hourly token budget of workspace \"w\" is spent (1 of 1 tokens this hour)"),
        ] {
            assert_eq!(Blocked::by(reason), Blocked::Other, "{reason:?}");
        }
    }
}
