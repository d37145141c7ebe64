//! Completing a stage: the next stage, the gates' judgement, a send-back
//! on rejection and the loop guard, and a human's approval (SPEC TS-1,
//! QG-1..QG-3).

use super::*;

impl Scheduler {
    /// The stage after `task`'s current one in `mode`.
    pub(super) fn next_stage(task: &TaskRow, mode: WorkspaceMode) -> AfterComplete {
        let mut i = task.stage_index as usize + 1;
        while i < task.pipeline.len() {
            let stage = &task.pipeline[i];
            if !(mode == WorkspaceMode::Minimal && MINIMAL_SKIPS.contains(&stage.as_str())) {
                return AfterComplete::Next {
                    stage: stage.clone(),
                    index: i as i64,
                };
            }
            i += 1;
        }
        AfterComplete::Done
    }

    /// Completes the stage of lease `token` (SPEC TS-2): idempotent, and a
    /// stale or expired token is refused with FAILED_PRECONDITION. When
    /// gates are bound to the stage (SPEC QG-1), `result` passes through
    /// them first and their quorum decides where the task goes.
    pub async fn complete(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        output: Value,
        result: Option<StageResult>,
    ) -> Result<(TaskRow, bool)> {
        self.forget_lease(token);
        if let Some(r) = &result {
            r.validate().map_err(Error::InvalidArgument)?;
        }
        let judgement = self.judge(workspace, task_id, token, result).await?;
        let now = warden_store::now_ms();
        let (completion, written) =
            if judgement.is_none() && self.store.dialect() == Dialect::Postgres {
                // Without gates, on PostgreSQL: with the other completions
                // under way, in one write.
                let job = crate::completions::Job {
                    workspace: workspace.to_string(),
                    task_id: task_id.to_string(),
                    token,
                    output,
                    now,
                };
                self.completions().complete(job).await?
            } else {
                self.complete_one(workspace, task_id, token, &output, now, judgement.as_ref())
                    .await?
            };
        self.completed(workspace, task_id, completion, written, judgement)
            .await
    }

    /// The writer of completions without gates, started on first use.
    pub(super) fn completions(&self) -> &crate::completions::Completions {
        self.completions.get_or_init(|| {
            crate::completions::Completions::start(
                self.store.clone(),
                |t, settings| Self::next_stage(t, mode_of(settings)),
                |t, token| completion_writes(t, token, None),
            )
        })
    }

    /// One completion in its own write, with the gates' judgement when
    /// there is one.
    pub(super) async fn complete_one(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        output: &Value,
        now: i64,
        judgement: Option<&Judgement>,
    ) -> Result<(Completion, Written)> {
        let loop_limit = i64::from(self.config.loop_limit);
        // The mode comes with the task, read by the completion itself.
        let decide = move |t: &TaskRow, settings: Option<&SettingsRow>| match judgement {
            None => Self::next_stage(t, mode_of(settings)),
            Some(j) => match j.outcome {
                Outcome::Approve => Self::next_stage(t, mode_of(settings)),
                Outcome::Waiting => AfterComplete::WaitApproval {
                    reason: j.decision.summary.clone(),
                },
                Outcome::Reject => Self::send_back(t, &j.binding.reject_to, j.delta(), loop_limit),
            },
        };
        let completing = Completing {
            workspace,
            task_id,
            token,
            output,
            now,
            decision: judgement.map(|j| Judged {
                decision: &j.decision,
                verdicts: &j.verdicts,
                window: crate::gates::BREAKER_WINDOW,
            }),
        };
        let also = |t: &TaskRow| completion_writes(t, token, judgement);
        Ok(self
            .store
            .complete_stage_with(&completing, &decide, &also)
            .await?)
    }

    /// What follows a completion the store answered.
    pub(super) async fn completed(
        &self,
        workspace: &str,
        task_id: &str,
        completion: Completion,
        written: Written,
        judgement: Option<Judgement>,
    ) -> Result<(TaskRow, bool)> {
        match completion {
            Completion::Fenced(f) => Err(Self::fence_error(task_id, &f)),
            Completion::AlreadyCompleted(t) => Ok((t, false)),
            Completion::Completed(t) => {
                // Its events, the gates' decision and the other hosts'
                // wake-up were written with the completion.
                self.events_written(&t, &written.also.events);
                if let Some(j) = &judgement {
                    self.after_judgement(&t, j, written.windows).await;
                }
                if t.state == TaskState::Queued
                    && let Some(reason) = budget_spent(&t)
                {
                    // A spent budget stops the task before its next stage.
                    let change = warden_store::tasks::TaskChange::Block {
                        reason: reason.clone(),
                    };
                    let (_, blocked) = self
                        .store
                        .apply_task_change(workspace, task_id, &change, None)
                        .await?;
                    let budget = BudgetEvent {
                        spent: true,
                        message: reason.clone(),
                    };
                    self.event(&blocked, TaskEvent::Budget(budget)).await;
                    self.event(
                        &blocked,
                        StatusEvent::new(TaskState::Blocked).reason(&reason),
                    )
                    .await;
                    return Ok((blocked, true));
                }
                if written.also.notify.is_some() {
                    self.wake.local(workspace);
                }
                // A stuck alert of this task is resolved by the stuck
                // detector's next pass, off this hot path.
                Ok((t, true))
            }
        }
    }

    /// Runs the gates bound to the stage of lease `token`, when there are
    /// any and the lease is current (a refused or repeated completion is
    /// answered by the store without judging anything).
    pub(super) async fn judge(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        result: Option<StageResult>,
    ) -> Result<Option<Judgement>> {
        let Some(gates) = &self.gates else {
            return Ok(None);
        };
        if !gates.any_bound(workspace).await? {
            return Ok(None);
        }
        // The workspace's pins and grants are read with the task: wasted
        // when its stage has no gates or the lease is stale, but the gated
        // completion waits for one read instead of two.
        let (task, assignments) = tokio::try_join!(
            async { Ok(self.store.get_task(workspace, task_id).await?) },
            gates.assignments(workspace)
        )?;
        let Some(task) = task else {
            return Err(Error::NotFound(format!("task \"{task_id}\" not found")));
        };
        if warden_store::stages::fence(&task, token, warden_store::now_ms()).is_some() {
            return Ok(None);
        }
        let Some((binding, _)) = gates.binding(workspace, &task.stage).await? else {
            return Ok(None);
        };
        let result = result.unwrap_or_default();
        let judgement = gates
            .judge(&task, token, binding, &result, assignments)
            .await?;
        Ok(Some(judgement))
    }

    /// Where a rejected task goes (SPEC QG-3): back to `reject_to` (the
    /// first stage when its pipeline has none, or it comes later) with the
    /// reasons as its plan delta; the rejection that would exceed the loop
    /// limit blocks it instead.
    pub(super) fn send_back(
        t: &TaskRow,
        reject_to: &str,
        delta: Value,
        loop_limit: i64,
    ) -> AfterComplete {
        if t.gate_rejections + 1 > loop_limit {
            return AfterComplete::Block {
                reason: format!(
                    "infinite loop: stage \"{}\" of task {} rejected by its gates for the {} time without progress (limit {loop_limit})",
                    t.stage,
                    t.id,
                    ordinal(t.gate_rejections + 1)
                ),
            };
        }
        let index = t
            .pipeline
            .iter()
            .position(|s| s == reject_to)
            .filter(|&i| i as i64 <= t.stage_index)
            .unwrap_or(0);
        AfterComplete::Back {
            stage: t
                .pipeline
                .get(index)
                .cloned()
                .unwrap_or_else(|| t.stage.clone()),
            index: index as i64,
            delta,
        }
    }

    /// After a judged transition committed (its `gate` event with it):
    /// the gates' breakers, given their windows read with it, and the
    /// alerts of where the task went.
    pub(super) async fn after_judgement(
        &self,
        t: &TaskRow,
        j: &Judgement,
        windows: Vec<Vec<String>>,
    ) {
        if let Some(gates) = &self.gates {
            gates.judged(&t.workspace, &j.binding, windows).await;
        }
        match t.state {
            TaskState::WaitingApproval => {
                self.alerts
                    .raise_logged(
                        Some(&t.workspace),
                        "gate_waiting_approval",
                        // No quorum: a critical rule (SPEC AL-1).
                        Severity::Critical,
                        &format!("approval:{}", t.id),
                        &format!("task {} waits for approval: {}", t.id, j.decision.summary),
                        json!({ "task": t.id, "decision_id": j.decision.id }),
                    )
                    .await;
            }
            TaskState::Blocked => self.loop_blocked(t).await,
            _ => {}
        }
    }

    /// The infinite-loop guard tripped on a rejection.
    pub(super) async fn loop_blocked(&self, t: &TaskRow) {
        let reason = t.last_error.clone().unwrap_or_default();
        self.guard_tripped(
            t,
            "infinite_loop",
            Severity::Critical,
            &reason,
            &reason,
            json!({ "task": t.id, "stage": t.stage, "gate_rejections": t.gate_rejections }),
        )
        .await;
    }

    /// A human's decision on a task waiting for approval (SPEC QG-2,
    /// QG-3): approve moves it past the gated stage; reject sends it back
    /// as a gate's rejection would, with `reason` as its plan delta.
    pub async fn decide_approval(
        &self,
        workspace: &str,
        task_id: &str,
        approve: bool,
        reason: &str,
        actor: &str,
    ) -> Result<TaskRow> {
        crate::validate::text("reason", reason, 4096).map_err(Error::InvalidArgument)?;
        let Some(task) = self.store.get_task(workspace, task_id).await? else {
            return Err(Error::NotFound(format!("task \"{task_id}\" not found")));
        };
        if task.state != TaskState::WaitingApproval {
            return Err(Error::FailedPrecondition(format!(
                "task {task_id} is {}, not waiting_approval",
                task.state
            )));
        }
        let (mode, _) = self.mode(workspace).await?;
        let reject_to = match &self.gates {
            Some(g) => g
                .binding(workspace, &task.stage)
                .await?
                .map(|(b, _)| b.reject_to),
            None => None,
        }
        .unwrap_or_else(|| "plan".to_string());
        let loop_limit = i64::from(self.config.loop_limit);
        let delta = json!({
            "stage": task.stage,
            "summary": format!("rejected by {actor}"),
            "reasons": [{ "gate": "human", "category": "review", "message": reason }],
        });
        let decide = move |t: &TaskRow| {
            if approve {
                Self::next_stage(t, mode)
            } else {
                Self::send_back(t, &reject_to, delta.clone(), loop_limit)
            }
        };
        let after = self
            .store
            .decide_waiting(workspace, task_id, warden_store::now_ms(), &decide)
            .await
            .map_err(|e| match e {
                warden_store::Error::Conflict(m) => Error::FailedPrecondition(m),
                other => other.into(),
            })?;
        if let Some(g) = &self.gates
            && let Err(e) = g.record_human(&task, approve, actor, reason).await
        {
            tracing::error!(task = task_id, error = %e, "cannot record a human gate decision");
        }
        let _ = self.alerts.resolve(&format!("approval:{task_id}")).await;
        let decision = GateEvent::Human {
            outcome: if approve { "approve" } else { "reject" }.to_string(),
            by: actor.to_string(),
            reason: reason.to_string(),
        };
        self.event(&after, TaskEvent::Gate(decision)).await;
        self.event(&after, StatusEvent::new(after.state).stage(&after.stage))
            .await;
        match after.state {
            TaskState::Blocked => self.loop_blocked(&after).await,
            TaskState::Done => {
                self.event(&after, TaskEvent::StopReason(StopEvent::new(Stop::Done)))
                    .await;
                self.announce(workspace).await;
            }
            _ => self.announce(workspace).await,
        }
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tests::task;

    #[test]
    fn minimal_mode_skips_think_and_review() {
        let p = DEFAULT_PIPELINE;
        let next = |i, mode| Scheduler::next_stage(&task(i, p), mode);
        assert_eq!(
            next(1, WorkspaceMode::Normal),
            AfterComplete::Next {
                stage: "think".into(),
                index: 2
            }
        );
        assert_eq!(
            next(1, WorkspaceMode::Minimal),
            AfterComplete::Next {
                stage: "implement".into(),
                index: 3
            }
        );
        assert_eq!(
            next(4, WorkspaceMode::Minimal),
            AfterComplete::Next {
                stage: "pr".into(),
                index: 6
            }
        );
        assert_eq!(next(7, WorkspaceMode::Normal), AfterComplete::Done);
    }

    #[test]
    fn the_next_stage_follows_the_pipeline_and_ends_after_the_last() {
        let p = &["a", "b", "c"];
        assert_eq!(
            Scheduler::next_stage(&task(0, p), WorkspaceMode::Normal),
            AfterComplete::Next {
                stage: "b".into(),
                index: 1
            }
        );
        assert_eq!(
            Scheduler::next_stage(&task(2, p), WorkspaceMode::Normal),
            AfterComplete::Done
        );
        // Minimal mode skipping the last stages ends the task.
        let p = &["implement", "think", "review"];
        assert_eq!(
            Scheduler::next_stage(&task(0, p), WorkspaceMode::Minimal),
            AfterComplete::Done
        );
    }

    #[test]
    fn a_rejected_stage_goes_back_to_an_earlier_stage_or_the_first_and_loops_block() {
        let p = &["plan", "implement", "test", "review"];
        let delta = json!({"reasons": ["too big"]});
        let back = |t: &TaskRow, to: &str| Scheduler::send_back(t, to, delta.clone(), 5);
        let t = task(3, p);
        assert_eq!(
            back(&t, "implement"),
            AfterComplete::Back {
                stage: "implement".into(),
                index: 1,
                delta: delta.clone()
            }
        );
        // A stage the pipeline lacks, or one after the current stage,
        // sends the task to the first stage.
        for to in ["nowhere", "review"] {
            let from_test = task(2, p);
            assert_eq!(
                back(&from_test, to),
                AfterComplete::Back {
                    stage: "plan".into(),
                    index: 0,
                    delta: delta.clone()
                },
                "{to}"
            );
        }
        // The loop guard: the rejection over the limit blocks the task.
        let mut looping = task(3, p);
        looping.gate_rejections = 5;
        match back(&looping, "implement") {
            AfterComplete::Block { reason } => {
                assert!(reason.contains("infinite loop"), "{reason}");
                assert!(reason.contains("6th time"), "{reason}");
            }
            other => panic!("expected a block, got {other:?}"),
        }
        looping.gate_rejections = 4;
        assert!(matches!(
            back(&looping, "implement"),
            AfterComplete::Back { .. }
        ));
    }

    #[test]
    fn a_stage_may_send_itself_back_and_a_zero_limit_blocks_at_once() {
        let p = &["plan", "implement", "review"];
        let delta = json!({"reasons": ["again"]});
        assert_eq!(
            Scheduler::send_back(&task(1, p), "implement", delta.clone(), 5),
            AfterComplete::Back {
                stage: "implement".into(),
                index: 1,
                delta: delta.clone()
            }
        );
        assert!(matches!(
            Scheduler::send_back(&task(1, p), "implement", delta, 0),
            AfterComplete::Block { .. }
        ));
    }
}
