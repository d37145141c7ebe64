//! Claims and leases: the lease caps, the claim and what may refuse it (a
//! degradation mode, an open breaker, a spent budget, the loop guard), the
//! heartbeat and the fencing error of a stale lease (SPEC TS-2, TS-3, TS-5).

use super::*;

impl Scheduler {
    pub(super) fn lease_limits(&self, settings: &SettingsRow) -> LeaseLimits {
        let ws: WorkspaceLimits =
            serde_json::from_value(settings.limits.clone()).unwrap_or_default();
        LeaseLimits {
            global: self.config.max_leases.map(i64::from),
            workspace: ws
                .max_leases
                .or(self.config.max_leases_per_workspace)
                .map(i64::from),
            per_stage: ws
                .max_leases_per_stage
                .into_iter()
                .map(|(k, v)| (k, i64::from(v)))
                .collect(),
            // While others wait, one workspace may hold at most half of
            // the global cap (or the whole cap when it is alone).
            fair_share: self.config.max_leases.map(|g| i64::from(g.div_ceil(2))),
        }
    }

    pub(super) async fn open_breakers(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .list_breakers()
            .await?
            .into_iter()
            .filter(|b| b.state == "open")
            .map(|b| b.name)
            .collect())
    }

    /// Claims up to `opts.max` stages (SPEC TS-2). Refused in `read-only`
    /// and `emergency-stop` modes (FAILED_PRECONDITION naming the mode) and
    /// when the workspace's hourly budget is spent (RESOURCE_EXHAUSTED
    /// naming it). With nothing to claim, waits up to `opts.wait` for work,
    /// then answers empty with the reason the workspace is idle; when that
    /// reason is a spent budget, RESOURCE_EXHAUSTED naming it.
    pub async fn claim(
        &self,
        workspace: &str,
        opts: ClaimOptions,
    ) -> Result<(Vec<Claimed>, Option<Idle>)> {
        crate::validate::id("worker", &opts.worker_id).map_err(Error::InvalidArgument)?;
        if !(1..=100).contains(&opts.max) {
            return Err(Error::invalid("max must be between 1 and 100"));
        }
        let stages = claim_stages(&opts.stages)?;
        let lease_ms = opts.lease_ms.unwrap_or(self.config.lease_ms);
        if lease_ms < 1_000 || lease_ms > self.config.max_lease_ms {
            return Err(Error::invalid(format!(
                "lease_ms must be between 1000 and {}",
                self.config.max_lease_ms
            )));
        }
        let deadline = tokio::time::Instant::now() + opts.wait.min(Duration::from_secs(60));
        let notify = self.wake.of(workspace);
        loop {
            if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::Unavailable(
                    "this host is shutting down; claim from another host or retry".into(),
                ));
            }
            // Register for wake-ups before looking, so none is missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The settings and the open breakers, in one round trip.
            let (settings, open_breakers) = self.store.claim_context(workspace).await?;
            let mode = mode_of(settings.as_ref());
            let settings = settings_or_default(workspace, settings);
            if matches!(mode, WorkspaceMode::ReadOnly | WorkspaceMode::EmergencyStop) {
                return Err(self.refuse_in_mode(
                    workspace,
                    mode,
                    &settings.mode_reason,
                    "claiming",
                ));
            }
            let now = warden_store::now_ms();
            self.check_hourly_budget(workspace, &settings, now).await?;
            let req = ClaimRequest {
                workspace: workspace.to_string(),
                worker_id: opts.worker_id.clone(),
                lease_ms: ms(lease_ms),
                max: i64::from(opts.max),
                stages: stages.clone(),
                open_breakers,
                limits: self.lease_limits(&settings),
                now,
            };
            // A needed process that is down pauses the workspace: nothing is
            // claimed, so no lease is taken only to be failed.
            let claimed = if self.paused_by_process(workspace).is_some() {
                Vec::new()
            } else {
                // A claim the guards keep gets its `running` event with the
                // claim (Claimed::goes_ahead is the guards' rule).
                let events = ClaimEvents::Running {
                    loop_limit: i64::from(self.config.loop_limit),
                };
                self.store.claim_stages_with(&req, events).await?
            };
            let mut granted = Vec::with_capacity(claimed.len());
            for (c, running) in claimed {
                if let Some(kept) = self.guard_claim(c, running).await {
                    granted.push(kept);
                }
            }
            if !granted.is_empty() {
                self.remember_leases(&granted);
                return Ok((granted, None));
            }
            if tokio::time::Instant::now() >= deadline {
                let idle = self.why_idle(workspace).await?;
                if idle.reason == "budget_spent" {
                    return Err(Error::ResourceExhausted(idle.message));
                }
                return Ok((Vec::new(), Some(idle)));
            }
            // Wait for a wake-up, but look again at least every second:
            // backoffs end and leases expire without notifications.
            let pause = (deadline - tokio::time::Instant::now()).min(Duration::from_secs(1));
            let _ = tokio::time::timeout(pause, notified).await;
        }
    }

    /// Checks a fresh claim against the loop guard and the task's budgets;
    /// a claim that may not proceed is failed at once (blocking the task)
    /// and not handed out. `running` is the event written with the claim
    /// when the guards kept it ([`Scheduler::claim_block`] was `None`).
    pub(super) async fn guard_claim(
        &self,
        c: Claimed,
        running: Option<NewEvent>,
    ) -> Option<Claimed> {
        let t = &c.task;
        debug_assert_eq!(
            running.is_some(),
            self.claim_block(&c).is_none(),
            "the store's rule for a claim going ahead is the guards' rule"
        );
        if let Some(e) = running {
            self.events_written(t, &[e]);
            return Some(c);
        }
        let Some((rule, severity, reason)) = self.claim_block(&c) else {
            return Some(c);
        };
        let decided = reason.clone();
        let result = self
            .store
            .fail_stage(
                &t.workspace,
                &t.id,
                c.run.id,
                &reason,
                rule,
                warden_store::now_ms(),
                &move |_| AfterFail::Block {
                    reason: decided.clone(),
                },
            )
            .await;
        if let Err(e) = result {
            tracing::error!(task = %t.id, error = %e, "cannot block a task at claim; its lease will expire");
        }
        self.guard_tripped(
            t,
            rule,
            severity,
            &reason,
            &reason,
            json!({ "task": t.id, "stage": t.stage }),
        )
        .await;
        None
    }

    /// Why a fresh claim may not proceed under this scheduler's loop
    /// limit ([`claim_block`]).
    pub(super) fn claim_block(&self, c: &Claimed) -> Option<(&'static str, Severity, String)> {
        claim_block(c, i64::from(self.config.loop_limit))
    }

    /// A loop guard or budget blocked `t`: its `guardrails` and `status`
    /// events and the alert of `rule`, deduplicated per task as
    /// `<rule>:<task id>`.
    pub(super) async fn guard_tripped(
        &self,
        t: &TaskRow,
        rule: &str,
        severity: Severity,
        reason: &str,
        summary: &str,
        detail: Value,
    ) {
        let guard = GuardrailsEvent {
            guard: rule.to_string(),
            message: reason.to_string(),
        };
        self.event(t, TaskEvent::Guardrails(guard)).await;
        self.event(t, StatusEvent::new(TaskState::Blocked).reason(reason))
            .await;
        self.alerts
            .raise_logged(
                Some(&t.workspace),
                rule,
                severity,
                &format!("{rule}:{}", t.id),
                summary,
                detail,
            )
            .await;
    }

    pub(super) async fn check_hourly_budget(
        &self,
        workspace: &str,
        settings: &SettingsRow,
        now: i64,
    ) -> Result<()> {
        if settings.hourly_tokens.is_none() && settings.hourly_cost_micros.is_none() {
            return Ok(());
        }
        let (tokens, cost) = self.store.hourly_usage(workspace, now).await?;
        if let Some(limit) = settings.hourly_tokens
            && tokens >= limit
        {
            return Err(Error::BudgetSpent {
                budget: crate::error::Budget::Hourly {
                    workspace: workspace.to_string(),
                    measure: "token",
                },
                figures: format!(" ({tokens} of {limit} tokens this hour)"),
            });
        }
        if let Some(limit) = settings.hourly_cost_micros
            && cost >= limit
        {
            return Err(Error::BudgetSpent {
                budget: crate::error::Budget::Hourly {
                    workspace: workspace.to_string(),
                    measure: "cost",
                },
                figures: format!(
                    " (${:.2} of ${:.2} this hour)",
                    cost as f64 / 1e6,
                    limit as f64 / 1e6
                ),
            });
        }
        Ok(())
    }

    pub(super) fn fence_error(task_id: &str, fence: &Fence) -> Error {
        match fence {
            Fence::Stale { token, current } => Error::StaleLease {
                task: task_id.to_string(),
                token: *token,
                current: *current,
            },
            Fence::Expired { token, expired_at } => Error::LeaseExpired {
                task: task_id.to_string(),
                token: *token,
                expired_at: *expired_at,
            },
        }
    }

    /// Extends a lease.
    pub async fn heartbeat(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        lease_ms: Option<u64>,
    ) -> Result<TaskRow> {
        let lease_ms = lease_ms
            .unwrap_or(self.config.lease_ms)
            .clamp(1_000, self.config.max_lease_ms);
        match self
            .store
            .heartbeat(
                workspace,
                task_id,
                token,
                ms(lease_ms),
                warden_store::now_ms(),
            )
            .await?
        {
            Ok(t) => Ok(t),
            Err(fence) => Err(Self::fence_error(task_id, &fence)),
        }
    }
}

/// Why a fresh claim may not proceed: the loop guard (its attempt at the
/// stage is beyond `loop_limit`) or a spent budget of its task; its rule,
/// severity and reason. The store's [`Claimed::goes_ahead`] is the same
/// rule, applied in the claim's own statement.
pub(super) fn claim_block(
    c: &Claimed,
    loop_limit: i64,
) -> Option<(&'static str, Severity, String)> {
    let t = &c.task;
    if c.run.attempt > loop_limit {
        return Some((
            "infinite_loop",
            Severity::Critical,
            format!(
                "infinite loop: stage \"{}\" of task {} would be attempted for the {} time without progress (limit {loop_limit})",
                t.stage,
                t.id,
                ordinal(c.run.attempt)
            ),
        ));
    }
    budget_spent(t).map(|b| ("budget_spent", Severity::Warning, b))
}

#[cfg(test)]
mod tests {
    use warden_store::stages::StageRunRow;

    use super::*;
    use crate::scheduler::tests::task;

    /// A fresh claim of a test task's first stage, its `attempt`th.
    fn claimed(attempt: i64) -> Claimed {
        let task = task(0, &["plan", "implement"]);
        let run = StageRunRow {
            id: 9,
            task_id: task.id.clone(),
            workspace: task.workspace.clone(),
            stage: task.stage.clone(),
            attempt,
            worker_id: "w".into(),
            claimed_at: 0,
            expires_at: 1,
            ended_at: None,
            outcome: None,
            error: None,
            fingerprint: None,
            output: None,
        };
        Claimed {
            task,
            run,
            took_over: None,
        }
    }

    #[test]
    fn a_claim_past_the_loop_limit_is_refused_as_an_infinite_loop() {
        assert_eq!(claim_block(&claimed(3), 3), None);
        let (rule, severity, reason) = claim_block(&claimed(4), 3).expect("refused");
        assert_eq!((rule, severity), ("infinite_loop", Severity::Critical));
        assert_eq!(
            reason,
            "infinite loop: stage \"plan\" of task t would be attempted for the 4th time without progress (limit 3)"
        );
    }

    #[test]
    fn a_claim_of_a_task_with_a_spent_budget_is_refused() {
        let mut c = claimed(1);
        c.task.budget.steps = Some(10);
        c.task.used.steps = 9;
        assert_eq!(claim_block(&c, 5), None);
        c.task.used.steps = 10;
        let (rule, severity, reason) = claim_block(&c, 5).expect("refused");
        assert_eq!((rule, severity), ("budget_spent", Severity::Warning));
        assert_eq!(
            reason,
            "the step budget of task t is spent (10 of 10 steps)"
        );
        // Both at once: the loop guard is the one named.
        c.run.attempt = 6;
        assert_eq!(claim_block(&c, 5).map(|b| b.0), Some("infinite_loop"));
    }

    #[test]
    fn the_guards_refuse_exactly_the_claims_the_store_holds_back() {
        for attempt in [1, 3, 4, 9] {
            for used in [0, 99, 100, 101] {
                let mut c = claimed(attempt);
                c.task.budget.tokens = Some(100);
                c.task.used.tokens = used;
                assert_eq!(
                    claim_block(&c, 3).is_none(),
                    c.goes_ahead(3),
                    "attempt {attempt}, {used} of 100 tokens"
                );
            }
        }
    }
}
