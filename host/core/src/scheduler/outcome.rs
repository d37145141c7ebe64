//! Failures and reports: a failed stage is retried with backoff, dead or
//! blocked (SPEC TS-4, TS-6); token, cost and step reports are booked
//! against the task's budgets (SPEC TS-5).

use super::*;

impl Scheduler {
    /// Fails the stage of lease `token` (SPEC TS-4, TS-6): retried with
    /// backoff; after `max_attempts` into the dead-letter queue; the same
    /// failure fingerprint `same_failure_limit` times in a row blocks it.
    pub async fn fail(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        error: &str,
        retryable: bool,
    ) -> Result<(TaskRow, bool)> {
        self.forget_lease(token);
        crate::validate::text("error", error, 64 * 1024).map_err(Error::InvalidArgument)?;
        let fingerprint = crate::fingerprint::fingerprint(error);
        let fp = fingerprint.clone();
        let now = warden_store::now_ms();
        let same_limit = i64::from(self.config.same_failure_limit);
        let retry = RetryPolicy::of(&self.config);
        let jitter: f64 = rand::rng().random_range(0.0..=1.0);
        let decide = move |t: &TaskRow| {
            if t.fingerprint_streak >= same_limit {
                return AfterFail::Block {
                    reason: format!(
                        "the same failure {} times in a row (fingerprint {fp}): {}",
                        t.fingerprint_streak,
                        first_line(t.last_error.as_deref().unwrap_or(""))
                    ),
                };
            }
            if !retryable || t.attempts >= t.max_attempts {
                return AfterFail::Dead;
            }
            AfterFail::Retry {
                at: now.saturating_add(retry.delay_ms(t.attempts, jitter)),
            }
        };
        let result = self
            .store
            .fail_stage(workspace, task_id, token, error, &fingerprint, now, &decide)
            .await?;
        let t = match result {
            Failure::Fenced(f) => return Err(Self::fence_error(task_id, &f)),
            Failure::AlreadyFailed(t) => return Ok((t, false)),
            Failure::Failed(t) => t,
        };
        match t.state {
            TaskState::Queued => {
                let retry = StatusEvent {
                    retry_at: Some(crate::time::time(t.next_attempt_at)),
                    attempt: Some(t.attempts),
                    error: Some(first_line(error)),
                    ..StatusEvent::new(TaskState::Queued)
                };
                self.event(&t, retry).await;
                if t.attempts >= 3 && t.attempts < t.max_attempts {
                    self.alerts
                        .raise_logged(
                            Some(workspace),
                            "attempt_3",
                            Severity::Warning,
                            &format!("attempts:{task_id}:{}", t.stage),
                            &format!(
                                "task {task_id} failed attempt {} of {} at stage \"{}\"",
                                t.attempts, t.max_attempts, t.stage
                            ),
                            json!({ "task": task_id, "error": first_line(error) }),
                        )
                        .await;
                }
            }
            TaskState::Dead => {
                let dead = StatusEvent {
                    error: Some(first_line(error)),
                    ..StatusEvent::new(TaskState::Dead)
                };
                self.event(&t, dead).await;
                let stop = StopEvent {
                    attempts: Some(t.attempts),
                    ..StopEvent::new(Stop::DeadLetter)
                };
                self.event(&t, TaskEvent::StopReason(stop)).await;
                self.alerts
                    .raise_logged(Some(workspace), "dead_letter", Severity::Warning, &format!("dead:{task_id}"), &format!("task {task_id} moved to the dead-letter queue after {} attempt(s) at stage \"{}\": {}", t.attempts, t.stage, first_line(error)), json!({ "task": task_id }))
                    .await;
            }
            TaskState::Blocked => {
                let reason = t.last_error.clone().unwrap_or_default();
                self.guard_tripped(
                    &t,
                    "same_failure",
                    Severity::Critical,
                    &reason,
                    &format!("task {task_id} blocked: {reason}"),
                    json!({ "task": task_id, "fingerprint": t.last_fingerprint }),
                )
                .await;
            }
            _ => {}
        }
        Ok((t, true))
    }

    /// Records a worker's event on a task (SPEC OB-3); `token` events carry
    /// usage and count against budgets, `tool_start` counts a step.
    pub async fn report(
        &self,
        workspace: &str,
        task_id: &str,
        kind: &str,
        data: Value,
    ) -> Result<i64> {
        let kind = match kind.parse::<EventKind>() {
            Ok(k) if EventKind::REPORTED.contains(&k) => k,
            _ => {
                let kinds: Vec<&str> = EventKind::REPORTED.iter().map(|k| k.as_str()).collect();
                return Err(Error::invalid(format!(
                    "invalid event type \"{}\": expected one of {}",
                    crate::validate::truncate(kind, 40),
                    kinds.join(", ")
                )));
            }
        };
        if serde_json::to_string(&data).map_or(0, |s| s.len()) > 64 * 1024 {
            return Err(Error::invalid("event data is over the 64 KiB limit"));
        }
        // What the event books is checked before it is stored: a refused
        // report leaves no event behind.
        let delta = match kind {
            EventKind::Token => Some(self.token_usage(&data)?),
            EventKind::ToolStart => Some(UsageDelta {
                steps: 1,
                ..UsageDelta::default()
            }),
            _ => None,
        };
        let now = warden_store::now_ms();
        let seq = self
            .store
            .add_task_event(workspace, task_id, kind.as_str(), &data, now)
            .await?;
        let _ = self.task_events.send(Arc::from(task_id));
        if let Some(delta) = delta {
            self.add_usage(workspace, Some(task_id), &delta).await?;
        }
        Ok(seq)
    }

    /// The usage a `token` event books, refused with a message naming
    /// the figure when it is negative, not a number or over the limits of
    /// one event (`max_event_tokens`, `max_event_cost_usd`).
    pub(super) fn token_usage(&self, data: &Value) -> Result<UsageDelta> {
        let u: UsageReport = serde_json::from_value(data.clone())
            .map_err(|e| Error::invalid(format!("invalid token event: {e}")))?;
        if u.tokens < 0 || u.input_tokens < 0 || u.output_tokens < 0 {
            return Err(Error::invalid("token counts and cost must not be negative"));
        }
        if !u.cost_usd.is_finite() || u.cost_usd < 0.0 {
            return Err(Error::invalid("token counts and cost must not be negative"));
        }
        // Summed wide: two counts near the 64-bit limit must not wrap.
        let tokens = if u.tokens > 0 {
            i128::from(u.tokens)
        } else {
            i128::from(u.input_tokens) + i128::from(u.output_tokens)
        };
        let max_tokens = self.config.max_event_tokens;
        if tokens > i128::from(max_tokens) {
            return Err(Error::invalid(format!(
                "token event reports \"{tokens}\" tokens, over the {max_tokens} one event may book ([scheduler] max_event_tokens); report a call's usage in events of its own"
            )));
        }
        let max_cost = self.config.max_event_cost_usd;
        if u.cost_usd > max_cost {
            // Rust prints a float in full: 1e300 would be 301 digits.
            let shown = if u.cost_usd >= 1e15 {
                format!("{:e}", u.cost_usd)
            } else {
                u.cost_usd.to_string()
            };
            return Err(Error::invalid(format!(
                "token event reports cost_usd \"{shown}\", over the ${max_cost} one event may book ([scheduler] max_event_cost_usd)"
            )));
        }
        Ok(UsageDelta {
            tokens: i64::try_from(tokens).unwrap_or(max_tokens),
            cost_micros: usd_to_micros(u.cost_usd),
            steps: 0,
            wall_ms: 0,
        })
    }

    /// Adds usage to a task and its workspace's hour, then checks the
    /// budgets (see [`Scheduler::usage_booked`]).
    pub async fn add_usage(
        &self,
        workspace: &str,
        task_id: Option<&str>,
        delta: &UsageDelta,
    ) -> Result<()> {
        let now = warden_store::now_ms();
        let task = self
            .store
            .record_usage(workspace, task_id, delta, now)
            .await?;
        self.usage_booked(workspace, task.as_slice()).await
    }

    /// After usage was booked (by a worker's events or the model
    /// gateway): at 80 % of a budget of a task or of the workspace's hour
    /// raises the warning; at 100 % of a task's budget emits the `budget`
    /// event and blocks the task so that it claims no further stage (SPEC
    /// TS-5). `tasks` are the tasks whose usage changed, as they are now.
    pub async fn usage_booked(&self, workspace: &str, tasks: &[TaskRow]) -> Result<()> {
        let now = warden_store::now_ms();
        for t in tasks {
            for (name, used, limit) in budget_lines(t) {
                if at_80_percent(used, limit) {
                    self.alerts
                        .raise_logged(
                            Some(workspace),
                            "budget_80",
                            Severity::Warning,
                            &format!("budget80:{}:{name}", t.id),
                            &format!(
                                "task {} has used {}% of its {name} budget ({used} of {limit})",
                                t.id,
                                i128::from(used) * 100 / i128::from(limit.max(1))
                            ),
                            json!({ "task": t.id, "budget": name, "used": used, "limit": limit }),
                        )
                        .await;
                }
            }
            if let Some(reason) = budget_spent(t) {
                let budget = BudgetEvent {
                    spent: true,
                    message: reason.clone(),
                };
                self.event(t, TaskEvent::Budget(budget)).await;
                if t.state == TaskState::Queued {
                    let change = warden_store::tasks::TaskChange::Block {
                        reason: reason.clone(),
                    };
                    if let Err(e) = self
                        .store
                        .apply_task_change(workspace, &t.id, &change, None)
                        .await
                    {
                        tracing::warn!(task = %t.id, error = %e, "cannot block a task over budget");
                    }
                }
            }
        }
        let settings = self.settings(workspace).await?;
        if settings.hourly_tokens.is_none() && settings.hourly_cost_micros.is_none() {
            return Ok(());
        }
        let (tokens, cost) = self.store.hourly_usage(workspace, now).await?;
        for (name, used, limit, shown) in [
            (
                "hourly_tokens",
                tokens,
                settings.hourly_tokens,
                format!(
                    "{tokens} of its {} tokens",
                    settings.hourly_tokens.unwrap_or(0)
                ),
            ),
            (
                "hourly_cost",
                cost,
                settings.hourly_cost_micros,
                format!(
                    "${:.2} of its ${:.2}",
                    cost as f64 / 1e6,
                    settings.hourly_cost_micros.unwrap_or(0) as f64 / 1e6
                ),
            ),
        ] {
            if let Some(limit) = limit
                && at_80_percent(used, limit)
            {
                self.alerts
                    .raise_logged(
                        Some(workspace),
                        "budget_80",
                        Severity::Warning,
                        &format!("budget80:{workspace}:{name}"),
                        &format!("workspace \"{workspace}\" has used {shown} this hour"),
                        json!({ "budget": name, "used": used, "limit": limit }),
                    )
                    .await;
            }
        }
        Ok(())
    }
}
