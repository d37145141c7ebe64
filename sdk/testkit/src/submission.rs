//! Submissions for gate tests.

use std::ops::{Deref, DerefMut};

use warden_runtime::types::{Artifact, DiffStats, RubricScore, Submission, TestResults};

/// A submission of `stage` for task `t1`, attempt 1, in the fake host's
/// workspace, with nothing in it yet: add what the stage produced.
///
/// The builder dereferences to [`Submission`], so `&submission(..)...` can
/// be passed to [`TestPlugin::evaluate`](crate::TestPlugin::evaluate)
/// directly.
pub fn submission(stage: &str) -> SubmissionBuilder {
    SubmissionBuilder {
        submission: Submission {
            workspace: "test".to_string(),
            task_id: "t1".to_string(),
            stage: stage.to_string(),
            attempt: 1,
            diff: None,
            diff_stats: None,
            tests: None,
            rubric: Vec::new(),
            artifacts: Vec::new(),
            text: None,
        },
    }
}

/// Builds a [`Submission`]; see [`submission`].
#[derive(Clone, Debug)]
pub struct SubmissionBuilder {
    submission: Submission,
}

impl SubmissionBuilder {
    /// The task's id.
    pub fn task(mut self, id: &str) -> Self {
        self.submission.task_id = id.to_string();
        self
    }

    /// Which attempt of the stage this is, from 1.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.submission.attempt = attempt;
        self
    }

    /// The unified diff the stage produced.
    pub fn diff(mut self, diff: impl Into<String>) -> Self {
        self.submission.diff = Some(diff.into());
        self
    }

    /// The diff's size as the worker counted it.
    pub fn diff_stats(mut self, files_changed: u32, insertions: u32, deletions: u32) -> Self {
        self.submission.diff_stats = Some(DiffStats {
            files_changed,
            insertions,
            deletions,
        });
        self
    }

    /// Test results (without failure names; see [`Self::failure`]).
    pub fn tests(mut self, passed: u32, failed: u32, skipped: u32) -> Self {
        let failures = self
            .submission
            .tests
            .take()
            .map(|t| t.failures)
            .unwrap_or_default();
        self.submission.tests = Some(TestResults {
            passed,
            failed,
            skipped,
            failures,
        });
        self
    }

    /// Names a failed test; adds test results with no counts when there
    /// are none yet.
    pub fn failure(mut self, name: &str) -> Self {
        let tests = self.submission.tests.get_or_insert_with(|| TestResults {
            passed: 0,
            failed: 0,
            skipped: 0,
            failures: Vec::new(),
        });
        tests.failures.push(name.to_string());
        self
    }

    /// One reviewer's score (0 to 100) on one criterion.
    pub fn rubric(mut self, reviewer: &str, criterion: &str, score: u8) -> Self {
        self.submission.rubric.push(RubricScore {
            reviewer: reviewer.to_string(),
            criterion: criterion.to_string(),
            score,
        });
        self
    }

    /// An artifact of the stage.
    pub fn artifact(mut self, name: &str, media_type: &str, content: impl Into<String>) -> Self {
        self.submission.artifacts.push(Artifact {
            name: name.to_string(),
            media_type: media_type.to_string(),
            content: content.into(),
        });
        self
    }

    /// The stage's free text (a summary, a plan, a review).
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.submission.text = Some(text.into());
        self
    }

    /// The submission.
    pub fn build(self) -> Submission {
        self.submission
    }
}

impl Deref for SubmissionBuilder {
    type Target = Submission;

    fn deref(&self) -> &Submission {
        &self.submission
    }
}

impl DerefMut for SubmissionBuilder {
    fn deref_mut(&mut self) -> &mut Submission {
        &mut self.submission
    }
}

impl From<SubmissionBuilder> for Submission {
    fn from(builder: SubmissionBuilder) -> Self {
        builder.submission
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_fills_in_what_the_stage_produced() {
        let s = submission("review")
            .task("t9")
            .attempt(3)
            .diff("--- a/x\n")
            .diff_stats(1, 2, 3)
            .failure("a::b")
            .tests(5, 1, 0)
            .rubric("alice", "clarity", 90)
            .artifact("log", "text/plain", "ok")
            .text("looks good")
            .build();
        assert_eq!((s.workspace.as_str(), s.task_id.as_str()), ("test", "t9"));
        assert_eq!((s.stage.as_str(), s.attempt), ("review", 3));
        let tests = s.tests.as_ref().unwrap();
        assert_eq!((tests.passed, tests.failed, tests.skipped), (5, 1, 0));
        assert_eq!(tests.failures, vec!["a::b".to_string()]);
        assert_eq!(s.diff_stats.unwrap().deletions, 3);
        assert_eq!(s.rubric[0].score, 90);
        assert_eq!(s.artifacts[0].content, "ok");
        assert_eq!(s.text.as_deref(), Some("looks good"));
    }
}
