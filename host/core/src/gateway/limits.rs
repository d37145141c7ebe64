//! The limits a call is held to before it goes upstream: the task it
//! books against, its budgets and the workspace's hourly budget, and the
//! loop guard's count of model calls per stage (SPEC GW-4, TS-5).

use super::*;

impl Gateway {
    /// A task of the workspace, from the cache when fresh.
    pub(super) async fn task(&self, workspace: &str, id: &str) -> Result<TaskInfo> {
        crate::validate::id("task", id)
            .map_err(|e| Error::invalid(format!("x-warden-task: {e}")))?;
        let key = (workspace.to_string(), id.to_string());
        if let Some((at, info)) = self.tasks.locked().get(&key)
            && at.elapsed() < SETTINGS_TTL
        {
            return Ok(info.clone());
        }
        let t = self.store.get_task(workspace, id).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "task {id} (from x-warden-task) not found in workspace \"{workspace}\""
            ))
        })?;
        let info = TaskInfo {
            stage: t.stage.clone(),
            limits: Limits {
                cost_micros: t.budget.cost_micros,
                tokens: t.budget.tokens,
            },
            used: Amount {
                cost_micros: t.used.cost_micros,
                tokens: t.used.tokens,
            },
        };
        let mut tasks = self.tasks.locked();
        if tasks.len() > 50_000 {
            tasks.clear();
        }
        tasks.insert(key, (Instant::now(), info.clone()));
        Ok(info)
    }

    /// The budgets a call counts against, with their spend refreshed.
    pub(super) async fn budgets(
        &self,
        workspace: &str,
        task: Option<&(String, TaskInfo)>,
        now: i64,
    ) -> Result<Vec<(Account, Limits)>> {
        let mut budgets = Vec::with_capacity(2);
        let hourly = self.hourly_limits(workspace).await?;
        if !hourly.is_none() {
            let account = Account::Hour {
                workspace: workspace.to_string(),
                hour: now.div_euclid(3_600_000),
            };
            if self.ledger.stale(&account) {
                let (tokens, cost_micros) = self.store.hourly_usage(workspace, now).await?;
                self.ledger.refresh(
                    &account,
                    Amount {
                        cost_micros,
                        tokens,
                    },
                );
            }
            budgets.push((account, hourly));
        }
        if let Some((id, info)) = task
            && !info.limits.is_none()
        {
            let account = Account::Task {
                workspace: workspace.to_string(),
                id: id.clone(),
            };
            // The cached task is at most a second old: its usage is the
            // database's.
            if self.ledger.stale(&account) {
                self.ledger.refresh(&account, info.used);
            }
            budgets.push((account, info.limits));
        }
        Ok(budgets)
    }

    pub(super) async fn hourly_limits(&self, workspace: &str) -> Result<Limits> {
        if let Some((at, limits)) = self.hourly.locked().get(workspace)
            && at.elapsed() < SETTINGS_TTL
        {
            return Ok(*limits);
        }
        let limits = match self.store.get_settings(workspace).await? {
            Some(s) => Limits {
                cost_micros: s.hourly_cost_micros,
                tokens: s.hourly_tokens,
            },
            None => Limits::default(),
        };
        self.hourly
            .locked()
            .insert(workspace.to_string(), (Instant::now(), limits));
        Ok(limits)
    }

    /// The smallest amount left over the call's budgets.
    pub(super) fn budget_left(&self, budgets: &[(Account, Limits)]) -> budget::Left {
        let mut left = budget::Left::default();
        for (account, limits) in budgets {
            let l = self.ledger.left(account, *limits);
            left.cost_micros = min_opt(left.cost_micros, l.cost_micros);
            left.tokens = min_opt(left.tokens, l.tokens);
        }
        left
    }

    /// Counts one more model call of a task's stage; refuses it over the
    /// policy's `max_iterations`.
    pub(super) async fn count_iteration(
        &self,
        workspace: &str,
        task: &str,
        stage: &str,
        max: Option<u32>,
    ) -> Result<()> {
        let key = (workspace.to_string(), task.to_string(), stage.to_string());
        let known = self.iterations.locked().get(&key).copied();
        let base = match known {
            Some(_) => 0,
            None => self.store.count_stage_calls(workspace, task, stage).await?,
        };
        let mut iterations = self.iterations.locked();
        if iterations.len() > 100_000 {
            iterations.clear();
        }
        let n = iterations.entry(key).or_insert(base);
        if let Some(max) = max
            && *n >= i64::from(max)
        {
            return Err(Error::ResourceExhausted(format!(
                "task {task} has made {n} model calls in stage {stage}; the routing policy allows at most {max} (max_iterations)"
            )));
        }
        *n += 1;
        Ok(())
    }
}
