//! Failures of a stage run (SPEC TS-4).

use super::next::{Next, RunEnd};
use super::{AfterFail, Failure, fence, run_outcome, select_task};
use crate::tasks::TaskRow;
use crate::{Result, Store};

impl Store {
    /// Fails the stage of lease `token`. In one transaction: checks the
    /// fence, updates `last_error`, `last_fingerprint` and
    /// `fingerprint_streak` (+1 when equal to the previous fingerprint, else
    /// 1), lets `decide` choose from the updated task, marks the stage run
    /// `failed`, clears the lease and applies the decision (`Retry` →
    /// `queued` with `next_attempt_at`; `Dead` → `dead` with `finished_at`;
    /// `Block` → `blocked`, `last_error` = reason). Failing again with the
    /// same token returns `AlreadyFailed`.
    ///
    /// The stage run's wall time is added to `used.wall_ms`.
    /// `Error::NotFound` when the workspace has no such task.
    #[expect(
        clippy::too_many_arguments,
        reason = "one atomic operation with its inputs"
    )]
    pub async fn fail_stage(
        &self,
        workspace: &str,
        task_id: &str,
        token: i64,
        error: &str,
        fingerprint: &str,
        now: i64,
        decide: &(dyn Fn(&TaskRow) -> AfterFail + Send + Sync),
    ) -> Result<Failure> {
        let mut tx = self.begin_write().await?;
        let task = select_task(&mut tx, self.dialect, workspace, task_id, true).await?;
        // As in `complete_stage`: only a refused token can have failed.
        if let Some(refused) = fence(&task, token, now) {
            let outcome = run_outcome(&mut tx, task_id, token).await?;
            tx.rollback().await?;
            return Ok(if outcome.as_deref() == Some("failed") {
                Failure::AlreadyFailed(task)
            } else {
                Failure::Fenced(refused)
            });
        }
        let mut failed = task.clone();
        failed.fingerprint_streak = if task.last_fingerprint.as_deref() == Some(fingerprint) {
            task.fingerprint_streak + 1
        } else {
            1
        };
        failed.last_error = Some(error.to_string());
        failed.last_fingerprint = Some(fingerprint.to_string());
        let decision = decide(&failed);
        let mut next = Next::from(&failed);
        match decision {
            AfterFail::Retry { at } => {
                next.state = crate::tasks::TaskState::Queued;
                next.next_attempt_at = at;
            }
            AfterFail::Dead => {
                next.state = crate::tasks::TaskState::Dead;
                next.finished_at = Some(now);
            }
            AfterFail::Block { reason } => {
                next.state = crate::tasks::TaskState::Blocked;
                next.last_error = Some(reason);
            }
        }
        let end = RunEnd::Failed {
            error: error.to_string(),
            fingerprint: fingerprint.to_string(),
        };
        let after = next
            .write(&mut tx, self.dialect, &task.id, token, end, now)
            .await?;
        tx.commit().await?;
        Ok(Failure::Failed(after))
    }
}
